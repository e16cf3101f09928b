//! The nearest known word to a misspelt one, for errors that suggest it:
//! `widht: unknown parameter; did you mean width?`, and the same for
//! configuration keys. Pure.

/// The known word `name` was most likely meant to be: the same but for
/// case, else the nearest within two edits (a letter added, dropped,
/// changed, or two neighbours swapped), the first listed winning a tie.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for k in known {
        let d = edits(&lower, &k.to_ascii_lowercase());
        if d == 0 {
            return Some(k);
        }
        if d <= 2 && d < k.len().min(name.len()) && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions,
/// substitutions and transpositions of neighbours each count one.
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edits("widht", "width"), 1);
        assert_eq!(edits("width", "width"), 0);
        assert_eq!(edits("wdth", "width"), 1);
        assert_eq!(edits("abc", "xyz"), 3);
        assert_eq!(edits("", "ab"), 2);
    }

    #[test]
    fn the_nearest_within_two_edits_or_none() {
        let known = ["width", "height", "widths", "view"];
        assert_eq!(closest("widht", known), Some("width"));
        assert_eq!(closest("WIDTH", known), Some("width"));
        assert_eq!(closest("heigth", known), Some("height"));
        assert_eq!(closest("size", known), None);
        // Short words need a closer match than two edits.
        assert_eq!(closest("vw", known), None);
    }
}

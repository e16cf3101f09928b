//! Conditional requests (RFC 9110 §13): `If-None-Match`, for every route
//! that answers with an `ETag`.

use axum::http::{HeaderMap, header};

/// Whether `If-None-Match` matches `etag` (e.g. `"ab12"`): `*`, or any
/// listed entity tag equal to it under the weak comparison (`W/` ignored
/// on both sides), across every `If-None-Match` header line. A malformed
/// list matches nothing from the point where it stops parsing.
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let ours = opaque(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|line| tags(line).any(|t| t == "*" || t == ours))
}

/// The opaque part of an entity tag: `W/"x"` and `"x"` are both `"x"`.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// The entity tags of one header line (`*` as itself), each as its quoted
/// opaque part.
fn tags(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = line;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return None;
        }
        if let Some(after) = rest.strip_prefix('*') {
            rest = after;
            return Some("*");
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        // An entity tag is a quoted string without escapes; commas may be
        // inside it, so the list is not split on them.
        let body = tag.strip_prefix('"')?;
        let end = body.find('"')?;
        let (quoted, after) = tag.split_at(end + 2);
        rest = after;
        Some(quoted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(header::IF_NONE_MATCH, HeaderValue::from_str(l).unwrap());
        }
        h
    }

    #[test]
    fn weak_comparison_over_every_line() {
        let tag = "\"ab12\"";
        assert!(none_match(&headers(&["\"ab12\""]), tag));
        assert!(
            none_match(&headers(&["W/\"ab12\""]), tag),
            "weak matches strong"
        );
        assert!(none_match(&headers(&["\"x\", W/\"ab12\""]), tag));
        assert!(
            none_match(&headers(&["\"x\"", "\"ab12\""]), tag),
            "a second line"
        );
        assert!(none_match(&headers(&["*"]), tag));
        assert!(none_match(&headers(&["\"ab12\""]), "W/\"ab12\""));
        assert!(!none_match(&headers(&[]), tag));
        assert!(!none_match(&headers(&["\"ab1\""]), tag));
        assert!(!none_match(&headers(&["ab12"]), tag), "unquoted is no tag");
        assert!(!none_match(&headers(&["\"ab12"]), tag), "unterminated");
        // A comma inside a tag does not split it.
        assert!(none_match(&headers(&["\"a,b\""]), "\"a,b\""));
        assert!(!none_match(&headers(&["\"a,b\""]), "\"a\""));
    }
}

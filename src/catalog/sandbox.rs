//! What an asset definition may ask of the process: caps on its size
//! ([`Limits`]), and templates that reach no file and no network
//! ([`check_refs`]).
//!
//! A private token can define assets, so a definition is attacker input:
//! every count that multiplies work or memory (views × layers, options on a
//! listing page, canvas × layers in one compose) is capped before anything
//! is expanded, and a template's `<image href>` may only be a `#fragment`
//! or a `data:` URL up to `data_url_bytes`. The renderer enforces the same
//! at render time (`render::builtin`), so a reference that only appears
//! after substitution (an option's metadata) reads nothing either.

/// Caps on one asset definition (`[catalog] max_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub views: usize,
    pub layers: usize,
    pub attributes: usize,
    /// Options of one string attribute.
    pub options: usize,
    /// Bytes of one template text.
    pub template_bytes: usize,
    /// Bytes of one `data:` URL in a template.
    pub data_url_bytes: usize,
    /// Bytes of a 3D asset's scene file.
    pub scene_bytes: usize,
    /// Canvas width × height.
    pub canvas_pixels: u64,
    /// Canvas pixels × 4 × layers: what one compose may hold decoded.
    pub compose_bytes: u64,
}

impl Default for Limits {
    /// The shipped defaults (`config/layercake.toml`; a config test checks
    /// they agree).
    fn default() -> Limits {
        Limits {
            views: 64,
            layers: 128,
            attributes: 64,
            options: 512,
            template_bytes: 256 * 1024,
            data_url_bytes: 64 * 1024,
            scene_bytes: 64 * 1024 * 1024,
            canvas_pixels: 4096 * 4096,
            compose_bytes: 1 << 30,
        }
    }
}

impl Limits {
    /// No caps: for definitions recorded under earlier (maybe larger) caps.
    pub const NONE: Limits = Limits {
        views: usize::MAX,
        layers: usize::MAX,
        attributes: usize::MAX,
        options: usize::MAX,
        template_bytes: usize::MAX,
        data_url_bytes: usize::MAX,
        scene_bytes: usize::MAX,
        canvas_pixels: u64::MAX,
        compose_bytes: u64::MAX,
    };
}

/// Checks every `href` in `template` (`href=` and `xlink:href=`, as
/// written, placeholders unsubstituted): a `#fragment`, or a `data:` URL of
/// at most `data_url_bytes`; nothing that names a file or a URL.
///
/// # Errors
/// The element and the reference, and what is allowed instead.
pub fn check_refs(template: &str, data_url_bytes: usize) -> Result<(), String> {
    let bytes = template.as_bytes();
    let mut from = 0;
    while let Some(found) = find_ascii_ci(&bytes[from..], b"href") {
        let at = from + found;
        from = at + 4;
        // An attribute name: preceded by whitespace or `:` (xlink:href).
        let before = at.checked_sub(1).map(|i| bytes[i]);
        if !matches!(before, Some(b' ' | b'\t' | b'\n' | b'\r' | b':')) {
            continue;
        }
        let mut i = at + 4;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let end = bytes[i + 1..]
                    .iter()
                    .position(|&b| b == q)
                    .map_or(bytes.len(), |p| i + 1 + p);
                &template[i + 1..end]
            }
            _ => continue,
        };
        let element = element_at(template, at);
        let value = value.trim();
        if value.starts_with('#') {
            continue;
        }
        if value.len() >= 5 && value[..5].eq_ignore_ascii_case("data:") {
            if value.contains("{{") {
                return Err(format!(
                    "<{element}> href=\"{}\": a data: URL may not hold placeholders",
                    shorten(value)
                ));
            }
            if value.len() > data_url_bytes {
                return Err(format!(
                    "<{element}> has a data: URL of {} bytes, over catalog.max_data_url_bytes ({data_url_bytes})",
                    value.len()
                ));
            }
            continue;
        }
        return Err(format!(
            "<{element}> href=\"{}\": templates may not reference files or URLs; use a #fragment or a data: URL",
            shorten(value)
        ));
    }
    Ok(())
}

fn find_ascii_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// The name of the element whose start tag holds byte `at`.
fn element_at(template: &str, at: usize) -> &str {
    let open = template[..at].rfind('<').map_or(0, |i| i + 1);
    let name = &template[open..at];
    let end = name
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(name.len());
    &name[..end]
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(80).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fragments_and_small_data_urls_are_referenced() {
        let ok = [
            "<svg><rect fill='url(#g)'/><use href='#a'/></svg>",
            "<svg><use xlink:href=\"#a\"/></svg>",
            "<svg><image href='data:image/svg+xml;base64,PHN2Zy8+'/></svg>",
            "<svg><text>href = 'x' is prose</text></svg>",
            "<svg data-href='/etc/passwd'/>",
        ];
        for t in ok {
            assert_eq!(check_refs(t, 1024), Ok(()), "{t}");
        }
        for (t, needle) in [
            (
                "<svg><image href='/dev/zero'/></svg>",
                "<image> href=\"/dev/zero\"",
            ),
            (
                "<svg><image xlink:href=\"/tmp/some.fifo\"/></svg>",
                "<image>",
            ),
            (
                "<svg><image\n HREF = 'file:///etc/hostname'/></svg>",
                "file:///etc/hostname",
            ),
            (
                "<svg><image href='https://evil.example/x.svg'/></svg>",
                "evil.example",
            ),
            (
                "<svg><image href='{{Fabric.texture}}'/></svg>",
                "{{Fabric.texture}}",
            ),
            ("<svg><use href='other.svg#a'/></svg>", "<use>"),
            (
                "<svg><image href='data:image/svg+xml,{{X}}'/></svg>",
                "placeholders",
            ),
        ] {
            let e = check_refs(t, 1024).unwrap_err();
            assert!(e.contains(needle), "{t}: {e}");
        }
        let big = format!(
            "<svg><image href='data:image/png;base64,{}'/></svg>",
            "A".repeat(2000)
        );
        assert!(check_refs(&big, 4096).is_ok());
        let e = check_refs(&big, 1024).unwrap_err();
        assert!(e.contains("catalog.max_data_url_bytes (1024)"), "{e}");
    }
}

/// The counts of a definition that caps bound, read from its JSON text
/// without building it: a 2 MB body of 100,000 one-field objects is about
/// 100 MB as a `serde_json::Value`, so the caps are checked first.
/// Anything that is not the expected shape counts 0 and is left to the
/// full parse, which names it.
///
/// # Errors
/// The field and the cap it is over.
pub fn precheck(json: &[u8], limits: &Limits) -> Result<(), (String, String)> {
    let Ok(shape) = serde_json::from_slice::<shape::Shape>(json) else {
        return Ok(());
    };
    let over = |field: String, n: usize, what: &str, cap: &str, max: usize| {
        Err((field, format!("{n} {what}, over catalog.{cap} ({max})")))
    };
    if shape.views > limits.views {
        return over(
            "views".into(),
            shape.views,
            "views",
            "max_views",
            limits.views,
        );
    }
    if shape.layers > limits.layers {
        return over(
            "layers".into(),
            shape.layers,
            "layers",
            "max_layers",
            limits.layers,
        );
    }
    if shape.attributes.len() > limits.attributes {
        return over(
            "attributes".into(),
            shape.attributes.len(),
            "attributes",
            "max_attributes",
            limits.attributes,
        );
    }
    for (i, &n) in shape.attributes.iter().enumerate() {
        if n > limits.options {
            return over(
                format!("attributes[{i}].values"),
                n,
                "options",
                "max_options",
                limits.options,
            );
        }
    }
    Ok(())
}

/// Counting deserializers: every value is accepted, only lengths are kept.
mod shape {
    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// `views`, `layers`: their lengths; `attributes`: each one's `values` length.
    #[derive(Default)]
    pub struct Shape {
        pub views: usize,
        pub layers: usize,
        pub attributes: Vec<usize>,
    }

    /// Any JSON value; a map or a sequence is walked with `on_*`.
    fn walk<'de, D, T>(d: D, v: Walk<T>) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Default,
    {
        d.deserialize_any(v)
    }

    struct Walk<T> {
        on_seq: Option<fn(&mut dyn SeqStep) -> T>,
        on_map: Option<fn(&mut dyn MapStep) -> T>,
        _t: std::marker::PhantomData<fn() -> T>,
    }

    pub trait SeqStep {
        /// Skips one element; `None` at the end (or on error).
        fn skip(&mut self) -> Option<()>;
        /// Reads one element as an attribute's option count.
        fn attribute(&mut self) -> Option<usize>;
    }

    pub trait MapStep {
        fn key(&mut self) -> Option<String>;
        fn skip(&mut self) -> Option<()>;
        fn count(&mut self) -> Option<usize>;
        fn attributes(&mut self) -> Option<Vec<usize>>;
    }

    struct Seq<A>(A);
    impl<'de, A: SeqAccess<'de>> SeqStep for Seq<A> {
        fn skip(&mut self) -> Option<()> {
            self.0
                .next_element::<IgnoredAny>()
                .ok()
                .flatten()
                .map(|_| ())
        }
        fn attribute(&mut self) -> Option<usize> {
            self.0
                .next_element::<Attribute>()
                .ok()
                .flatten()
                .map(|a| a.0)
        }
    }

    struct Map<A>(A);
    impl<'de, A: MapAccess<'de>> MapStep for Map<A> {
        fn key(&mut self) -> Option<String> {
            self.0.next_key::<String>().ok().flatten()
        }
        fn skip(&mut self) -> Option<()> {
            self.0.next_value::<IgnoredAny>().ok().map(|_| ())
        }
        fn count(&mut self) -> Option<usize> {
            self.0.next_value::<Count>().ok().map(|c| c.0)
        }
        fn attributes(&mut self) -> Option<Vec<usize>> {
            self.0.next_value::<Attributes>().ok().map(|a| a.0)
        }
    }

    macro_rules! scalars {
        () => {
            fn visit_bool<E>(self, _: bool) -> Result<T, E> {
                Ok(T::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<T, E> {
                Ok(T::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<T, E> {
                Ok(T::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<T, E> {
                Ok(T::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<T, E> {
                Ok(T::default())
            }
            fn visit_unit<E>(self) -> Result<T, E> {
                Ok(T::default())
            }
        };
    }

    impl<'de, T: Default> Visitor<'de> for Walk<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        scalars!();
        fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<T, A::Error> {
            let mut s = Seq(a);
            Ok(match self.on_seq {
                Some(f) => f(&mut s),
                None => {
                    while s.skip().is_some() {}
                    T::default()
                }
            })
        }
        fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<T, A::Error> {
            let mut m = Map(a);
            Ok(match self.on_map {
                Some(f) => f(&mut m),
                None => {
                    while m.key().is_some() {
                        m.skip();
                    }
                    T::default()
                }
            })
        }
    }

    fn walker<T>(
        on_seq: Option<fn(&mut dyn SeqStep) -> T>,
        on_map: Option<fn(&mut dyn MapStep) -> T>,
    ) -> Walk<T> {
        Walk {
            on_seq,
            on_map,
            _t: std::marker::PhantomData,
        }
    }

    /// A sequence's length (0 for anything else).
    #[derive(Default)]
    struct Count(usize);
    impl<'de> Deserialize<'de> for Count {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
            walk(
                d,
                walker(
                    Some(|s| {
                        let mut n = 0;
                        while s.skip().is_some() {
                            n += 1;
                        }
                        Count(n)
                    }),
                    None,
                ),
            )
        }
    }

    /// An attribute's `values` length.
    #[derive(Default)]
    struct Attribute(usize);
    impl<'de> Deserialize<'de> for Attribute {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attribute, D::Error> {
            walk(
                d,
                walker(
                    None,
                    Some(|m| {
                        let mut n = 0;
                        while let Some(k) = m.key() {
                            if k == "values" {
                                n = m.count().unwrap_or(0);
                            } else {
                                m.skip();
                            }
                        }
                        Attribute(n)
                    }),
                ),
            )
        }
    }

    #[derive(Default)]
    struct Attributes(Vec<usize>);
    impl<'de> Deserialize<'de> for Attributes {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attributes, D::Error> {
            walk(
                d,
                walker(
                    Some(|s| {
                        let mut out = Vec::new();
                        while let Some(n) = s.attribute() {
                            out.push(n);
                        }
                        Attributes(out)
                    }),
                    None,
                ),
            )
        }
    }

    impl<'de> Deserialize<'de> for Shape {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Shape, D::Error> {
            walk(
                d,
                walker(
                    None,
                    Some(|m| {
                        let mut s = Shape::default();
                        while let Some(k) = m.key() {
                            match k.as_str() {
                                "views" => s.views = m.count().unwrap_or(0),
                                "layers" => s.layers = m.count().unwrap_or(0),
                                "attributes" => s.attributes = m.attributes().unwrap_or_default(),
                                _ => {
                                    m.skip();
                                }
                            }
                        }
                        s
                    }),
                ),
            )
        }
    }
}

#[cfg(test)]
mod precheck_tests {
    use super::*;

    #[test]
    fn counts_are_read_without_building_the_document() {
        let l = Limits {
            views: 2,
            layers: 2,
            attributes: 2,
            options: 3,
            ..Limits::default()
        };
        let ok = br#"{"views": [{}, {}], "layers": [1], "attributes": [{"values": [1, 2, 3]}, {"name": "x"}], "other": {"views": [1, 2, 3]}}"#;
        assert_eq!(precheck(ok, &l), Ok(()));
        for (doc, field, needle) in [
            (
                &br#"{"views": [1, 2, 3]}"#[..],
                "views",
                "3 views, over catalog.max_views (2)",
            ),
            (br#"{"layers": [[], {}, null]}"#, "layers", "3 layers"),
            (
                br#"{"attributes": [{}, {}, {}]}"#,
                "attributes",
                "3 attributes",
            ),
            (
                br#"{"attributes": [{"values": "x"}, {"label": 1, "values": [1, 2, 3, 4]}]}"#,
                "attributes[1].values",
                "4 options",
            ),
        ] {
            let (f, m) = precheck(doc, &l).unwrap_err();
            assert_eq!(f, field);
            assert!(m.contains(needle), "{m}");
        }
        // Not the expected shape, or not JSON: the full parse reports it.
        for doc in [
            &b"[1, 2]"[..],
            b"nope",
            b"{\"views\": 3}",
            b"{\"attributes\": [1, \"x\"]}",
        ] {
            assert_eq!(precheck(doc, &l), Ok(()));
        }
    }
}

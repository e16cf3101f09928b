//! Arbitrary input to the loader: no panic, and every rejection of a
//! document names the field at fault.

use super::*;
use proptest::prelude::*;
use serde_json::Value as J;

pub(crate) fn arb_json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        (-1e12f64..1e12).prop_map(|f| serde_json::json!(f)),
        ".{0,12}".prop_map(J::String),
        Just(J::String("{{Color.hex}}".into())),
        Just(J::String("<svg><image href='/etc/passwd'/></svg>".into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| J::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON pointers of every value inside `v` (not the root).
fn pointers(v: &J, at: String, out: &mut Vec<String>) {
    match v {
        J::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        J::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

proptest! {
    #[test]
    fn any_text_is_loaded_or_refused_without_panic(text in ".{0,200}") {
        let _ = load_asset_str("fuzz", &text, &Limits::default());
    }

    #[test]
    fn a_broken_field_is_refused_by_name(pick in any::<prop::sample::Index>(), with in arb_json()) {
        let mut doc = super::tests::minimal();
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let at = pick.get(&all).clone();
        *doc.pointer_mut(&at).unwrap() = with;
        if let Err(e) = load_asset_str("fuzz", &doc.to_string(), &Limits::default()) {
            prop_assert!(!e.field.is_empty(), "{} at {}: no field named: {}", doc, at, e);
            prop_assert!(!e.message.is_empty());
        }
    }
}

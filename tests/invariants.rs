//! The structure ARCHITECTURE.md promises, checked on the source: modules
//! depend downward only, each outside crate stays behind its one module,
//! and `compose` does no I/O.
//!
//! The checks read `src/` as text: every `crate::<module>` path (imports
//! and inline paths) and every `<crate>::` path outside comments and
//! test modules. Crude, but it fails when someone adds an upward import,
//! which is what it is for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may name modules of lower layers;
/// within a layer, only the members of one group (listed together in a
/// tuple) may name each other.
const LAYERS: &[&[&[&str]]] = &[
    // Pure leaves: pixels, metric names, URL signatures.
    &[&["compose"], &["telemetry"], &["signing"]],
    // The model: assets and their keys (a key is computed from catalogue
    // types; the loader uses the canonical JSON of keys).
    &[&["catalog", "keys"]],
    // Adapters to the outside: renderers, the object store, the database.
    &[&["render"], &["store"], &["meta"]],
    // Crate-wide error type, settings, the contract's JSON shapes.
    &[&["error"], &["config"], &["wire"]],
    // Event deliveries; the size policy of image URLs.
    &[&["webhooks"], &["sizes"]],
    // The render queue and its workers.
    &[&["jobs"]],
    // The request path from key to bytes.
    &[&["pipeline"]],
    // Record-keeping services.
    &[&["service"]],
    // The runtime built from settings.
    &[&["app"]],
    // The edge.
    &[&["http"]],
    // The binary.
    &[&["cli"], &["main"], &["lib"]],
];

/// Outside crates that only one module may name.
const CONFINED: &[(&str, &str)] = &[
    ("sqlx", "meta"),
    ("object_store", "store"),
    ("axum", "http"),
    ("hyper", "http"),
    ("hyper_util", "http"),
    ("tower", "http"),
    ("tower_http", "http"),
    ("StatusCode", "http"),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A source file's code without comments and without its test module
/// (a trailing `#[cfg(test)] mod ...`, or a file that is one).
fn code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module of `src/<rel>`: `store/mod.rs` → `store`.
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn all_code() -> Vec<(String, String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap();
            (rel.display().to_string(), module_of(rel), code(p))
        })
        .collect()
}

/// `(layer, group)` of each module.
fn positions() -> BTreeMap<&'static str, (usize, usize)> {
    let mut at = BTreeMap::new();
    for (l, groups) in LAYERS.iter().enumerate() {
        for (g, members) in groups.iter().enumerate() {
            for m in *members {
                at.insert(*m, (l, g));
            }
        }
    }
    at
}

/// Every identifier following `prefix` in `code`, e.g. `crate::` → `store`.
fn names_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .filter(|(i, _)| {
            // A whole path segment: not `my_crate::`.
            *i == 0
                || !code.as_bytes()[i - 1].is_ascii_alphanumeric() && code.as_bytes()[i - 1] != b'_'
        })
        .map(|(i, _)| {
            let rest = &code[i + prefix.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn modules_depend_downward_only() {
    let at = positions();
    let mut upward = Vec::new();
    for (file, module, code) in all_code() {
        let Some(&(layer, group)) = at.get(module.as_str()) else {
            panic!("src/{file}: module `{module}` is in no layer of this test; add it to LAYERS");
        };
        for used in names_after(&code, "crate::") {
            if used == module || used.is_empty() {
                continue;
            }
            let Some(&(l, g)) = at.get(used) else {
                panic!("src/{file}: `crate::{used}` is in no layer of this test");
            };
            if l > layer || (l == layer && g != group) {
                upward.push(format!("src/{file} ({module}) uses crate::{used}"));
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "modules that depend upward or sideways:\n{}",
        upward.join("\n")
    );
}

#[test]
fn outside_crates_stay_behind_their_module() {
    let mut strays = Vec::new();
    for (file, module, code) in all_code() {
        for (name, home) in CONFINED {
            if module == *home {
                continue;
            }
            let named = if name.chars().next().is_some_and(char::is_uppercase) {
                // A type: named anywhere, not as `reqwest::StatusCode` (a
                // client's view of another server's answer).
                code.match_indices(name)
                    .any(|(i, _)| !code[..i].ends_with("reqwest::"))
            } else {
                !names_after(&code, &format!("{name}::")).is_empty()
                    || code.contains(&format!("use {name}"))
            };
            if named {
                strays.push(format!(
                    "src/{file} ({module}) names {name}, which belongs to {home}"
                ));
            }
        }
    }
    assert!(strays.is_empty(), "{}", strays.join("\n"));
}

#[test]
fn compose_does_no_io() {
    let forbidden = [
        "std::fs",
        "std::net",
        "std::process",
        "std::io::stdin",
        "std::thread::spawn",
        "tokio",
        "reqwest",
        "File::",
    ];
    let mut found = Vec::new();
    for (file, module, code) in all_code() {
        if module != "compose" {
            continue;
        }
        for f in forbidden {
            if code.contains(f) {
                found.push(format!("src/{file} uses {f}"));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Handlers reach records only through services and the application
/// layer: `http` names neither `crate::meta` nor `crate::store`, and calls
/// no `.meta()` or `.store()` (the readiness check and the gauges are
/// `app::health`'s). And only `http::error` builds an error status.
/// (Text-based, like the rest of this file for now.)
#[test]
fn handlers_go_through_services_and_errors_through_http_error() {
    let mut found = Vec::new();
    for (file, module, code) in all_code() {
        if module != "http" {
            continue;
        }
        found.extend(records_named(&code).into_iter().map(|n| format!("src/{file} names {n}")));
        if file != "http/error.rs" {
            for status in [
                "StatusCode::GATEWAY_TIMEOUT",
                "StatusCode::RANGE_NOT_SATISFIABLE",
                "StatusCode::INTERNAL_SERVER_ERROR",
                "StatusCode::SERVICE_UNAVAILABLE",
                "StatusCode::BAD_REQUEST",
                "StatusCode::UNPROCESSABLE_ENTITY",
                "StatusCode::NOT_FOUND",
            ] {
                if code.contains(status) {
                    found.push(format!("src/{file} builds {status}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// What of the record stores `code` names: `crate::meta`, `crate::store`,
/// `.meta()`, `.store()`.
fn records_named(code: &str) -> Vec<String> {
    let mut out: Vec<String> = names_after(code, "crate::")
        .into_iter()
        .filter(|m| matches!(*m, "meta" | "store"))
        .map(|m| format!("crate::{m}"))
        .collect();
    for call in [".meta()", ".store()"] {
        if code.contains(call) {
            out.push(call.to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The checks above would pass on an empty tree: they must see the code.
#[test]
fn the_checks_see_the_source() {
    let code = all_code();
    assert!(code.len() > 50, "{} files", code.len());
    let meta = code.iter().find(|(f, ..)| f == "meta/mod.rs").unwrap();
    assert!(
        !names_after(&meta.2, "sqlx::").is_empty(),
        "meta names sqlx"
    );
    let http = code
        .iter()
        .find(|(f, ..)| f == "http/compositor.rs")
        .unwrap();
    assert!(names_after(&http.2, "crate::").contains(&"pipeline"));
    // An upward import would be caught.
    let at = positions();
    assert!(at["store"].0 < at["pipeline"].0 && at["jobs"].0 < at["service"].0);
    assert_eq!(
        names_after("x crate::store::y; my_crate::no", "crate::"),
        vec!["store"]
    );
    // A handler reaching the stores would be caught.
    assert_eq!(
        records_named("let r = app.meta().job(o, id); use crate::store::BlobStore;"),
        vec![".meta()", "crate::store"]
    );
    assert!(records_named("app.webhooks().list(o); my_crate::meta").is_empty());
}

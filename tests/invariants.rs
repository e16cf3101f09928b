//! The structure ARCHITECTURE.md promises, checked on the source.
//!
//! Every file of `src/` is parsed with `syn` (test modules dropped), so a
//! path or a call is seen whatever its layout: `use crate::{a, b::c}`
//! trees, inline `crate::x::y(..)` paths, paths inside macro calls, and
//! method calls split over lines (`app\n.meta()`). What a check finds is
//! a list of violations; `the_checks_catch_injected_violations` feeds
//! each check a small source that breaks it, so none can pass by seeing
//! nothing.
//!
//! Sizes (code lines of a file, of a function) are counted on the text
//! with comments, blank lines and test modules left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use syn::visit_mut::{self, VisitMut};

/// The layers, lowest first. A module may name modules of lower layers;
/// within a layer, only the members of one group (listed together) may
/// name each other.
const LAYERS: &[&[&[&str]]] = &[
    // Pure leaves: pixels, metric names, URL signatures, spelling hints.
    &[&["compose"], &["telemetry"], &["signing"], &["spelling"]],
    // The model: assets and their keys.
    &[&["catalog", "keys"]],
    // Adapters to the outside: renderers, the object store, the database.
    &[&["render"], &["store"], &["meta"]],
    // Crate-wide error type, settings, the contract's JSON shapes.
    &[&["error"], &["config"], &["wire"]],
    // Event deliveries; the size policy of image URLs.
    &[&["webhooks"], &["sizes"]],
    // The render queue, its executor and workers.
    &[&["jobs"]],
    // The request path from key to bytes.
    &[&["pipeline"]],
    // Record-keeping services.
    &[&["service"]],
    // The application layer: the runtime and the use cases both edges call.
    &[&["app"]],
    // The HTTP edge.
    &[&["http"]],
    // The command-line edge and the binary.
    &[&["cli"], &["main"], &["lib"]],
];

/// Outside crates (or types) that only one module may name.
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

/// What `cli` may take from `http`: the servers it starts, nothing else.
const CLI_FROM_HTTP: &[&str] = &["serve", "serve_ops", "serve_worker_ops"];

/// Error statuses only `http::error` builds.
const ERROR_STATUSES: &[&str] = &[
    "GATEWAY_TIMEOUT",
    "RANGE_NOT_SATISFIABLE",
    "INTERNAL_SERVER_ERROR",
    "SERVICE_UNAVAILABLE",
    "BAD_REQUEST",
    "UNPROCESSABLE_ENTITY",
    "NOT_FOUND",
];

const MAX_FILE_LINES: usize = 400;
const MAX_FN_LINES: usize = 80;

/// One parsed source file.
struct Source {
    /// Path below `src/` (or `tests/`), e.g. `http/compositor.rs`.
    rel: String,
    /// Top-level module: `http`.
    module: String,
    /// Code lines: no comments, no blank lines, no test module.
    code: Vec<String>,
    names: Names,
    /// `struct App`'s fields and whether each is `pub`.
    app_fields: Vec<(String, bool)>,
}

/// What a file names, collected from its syntax tree.
#[derive(Default)]
struct Names {
    /// Every path, as its segments (use trees flattened; macro bodies
    /// read as token sequences `a :: b :: c`).
    paths: Vec<Vec<String>>,
    /// Every method call with no arguments: (method).
    zero_arg_calls: Vec<String>,
    /// Every macro invocation: (name, identifiers in its tokens).
    macros: Vec<(String, Vec<String>)>,
}

impl Names {
    fn crate_paths(&self) -> impl Iterator<Item = &[String]> {
        self.paths
            .iter()
            .filter(|p| p.first().is_some_and(|s| s == "crate"))
            .map(|p| &p[1..])
    }
}

impl VisitMut for Names {
    fn visit_path_mut(&mut self, p: &mut syn::Path) {
        self.paths
            .push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        visit_mut::visit_path_mut(self, p);
    }

    fn visit_item_use_mut(&mut self, u: &mut syn::ItemUse) {
        flatten_use(&u.tree, &mut Vec::new(), &mut self.paths);
    }

    fn visit_expr_method_call_mut(&mut self, c: &mut syn::ExprMethodCall) {
        if c.args.is_empty() {
            self.zero_arg_calls.push(c.method.to_string());
        }
        visit_mut::visit_expr_method_call_mut(self, c);
    }

    fn visit_macro_mut(&mut self, m: &mut syn::Macro) {
        let name = m
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let mut idents = Vec::new();
        token_paths(m.tokens.clone(), &mut self.paths, &mut idents);
        self.macros.push((name, idents));
        visit_mut::visit_macro_mut(self, m);
    }
}

fn flatten_use(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut p = prefix.clone();
            p.push(n.ident.to_string());
            out.push(p);
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            p.push(r.ident.to_string());
            out.push(p);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

/// Paths inside a macro's tokens (`json!`, `tracing::info!` arguments...):
/// runs of `ident :: ident ...`, and every identifier.
fn token_paths(
    tokens: proc_macro2::TokenStream,
    paths: &mut Vec<Vec<String>>,
    idents: &mut Vec<String>,
) {
    use proc_macro2::TokenTree;
    let mut run: Vec<String> = Vec::new();
    let mut colons = 0;
    let flush = |run: &mut Vec<String>, paths: &mut Vec<Vec<String>>| {
        if run.len() > 1 {
            paths.push(std::mem::take(run));
        }
        run.clear();
    };
    for t in tokens {
        match t {
            TokenTree::Ident(i) => {
                let s = i.to_string();
                idents.push(s.clone());
                if !run.is_empty() && colons != 2 {
                    flush(&mut run, paths);
                }
                run.push(s);
                colons = 0;
            }
            TokenTree::Punct(p) if p.as_char() == ':' => colons += 1,
            TokenTree::Group(g) => {
                flush(&mut run, paths);
                colons = 0;
                token_paths(g.stream(), paths, idents);
            }
            _ => {
                flush(&mut run, paths);
                colons = 0;
            }
        }
    }
    flush(&mut run, paths);
}

/// Whether an item carries `#[cfg(test)]`.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
    })
}

fn strip_tests(items: &mut Vec<syn::Item>) {
    items.retain(|it| match it {
        syn::Item::Mod(m) => !is_test(&m.attrs),
        syn::Item::Fn(f) => !is_test(&f.attrs),
        syn::Item::Impl(i) => !is_test(&i.attrs),
        syn::Item::Use(u) => !is_test(&u.attrs),
        _ => true,
    });
    for it in items.iter_mut() {
        if let syn::Item::Mod(m) = it
            && let Some((_, inner)) = &mut m.content
        {
            strip_tests(inner);
        }
    }
}

/// Code lines of `text`: comments and blank lines out, and everything
/// from a `#[cfg(test)]` module on (test modules close their files).
fn code_lines(text: &str) -> Vec<String> {
    // A test module written inline closes its file; one declared
    // (`mod tests;`) is a line like another.
    let inline = text.match_indices("#[cfg(test)]\nmod ").find(|(i, _)| {
        let rest = &text[*i..];
        rest.find('{')
            .is_some_and(|b| rest.find(';').is_none_or(|s| b < s))
    });
    let text = match inline {
        Some((i, _)) => &text[..i],
        None => text,
    };
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        let t = line.trim();
        if in_block {
            in_block = !t.contains("*/");
            continue;
        }
        if t.is_empty() || t.starts_with("//") {
            continue;
        }
        if t.starts_with("/*") {
            in_block = !t.contains("*/");
            continue;
        }
        out.push(line.to_string());
    }
    out
}

fn parse(rel: &str, module: &str, text: &str) -> Source {
    let mut file = syn::parse_file(text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    strip_tests(&mut file.items);
    let mut names = Names::default();
    names.visit_file_mut(&mut file);
    let mut app_fields = Vec::new();
    for it in &file.items {
        if let syn::Item::Struct(s) = it
            && s.ident == "App"
        {
            for f in &s.fields {
                let name = f
                    .ident
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                app_fields.push((name, !matches!(f.vis, syn::Visibility::Inherited)));
            }
        }
    }
    Source {
        rel: rel.to_string(),
        module: module.to_string(),
        code: code_lines(text),
        names,
        app_fields,
    }
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every file below `<crate>/<dir>`, parsed; `tests.rs` files (test
/// modules kept apart) left out for `src`.
fn sources(dir: &str) -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files = Vec::new();
    rs_files(&root, &mut files);
    files.sort();
    files
        .iter()
        .filter(|p| dir != "src" || p.file_name().is_none_or(|n| n != "tests.rs"))
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            let module = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            parse(&rel, &module, &std::fs::read_to_string(p).unwrap())
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

fn upward_paths(srcs: &[Source]) -> Vec<String> {
    let at = positions();
    let mut found = Vec::new();
    for s in srcs {
        let Some(&(layer, group)) = at.get(s.module.as_str()) else {
            found.push(format!(
                "src/{}: module `{}` is in no layer",
                s.rel, s.module
            ));
            continue;
        };
        for p in s.names.crate_paths() {
            let Some(used) = p.first() else { continue };
            if *used == s.module {
                continue;
            }
            match at.get(used.as_str()) {
                None => found.push(format!("src/{}: crate::{used} is in no layer", s.rel)),
                Some(&(l, g)) if l > layer || (l == layer && g != group) => {
                    found.push(format!("src/{} ({}) uses crate::{used}", s.rel, s.module));
                }
                Some(_) => {}
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn confined_crates(srcs: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for s in srcs {
        for (name, home) in CONFINED {
            if s.module == *home {
                continue;
            }
            let named = s.names.paths.iter().any(|p| {
                p.iter().enumerate().any(|(i, seg)| {
                    seg == name
                        // A crate is named as a path's root; a type anywhere,
                        // but not as `reqwest::StatusCode` (a client's view
                        // of another server's answer).
                        && (i == 0 || name.starts_with(char::is_uppercase) && p[i - 1] != "reqwest")
                })
            });
            if named {
                found.push(format!(
                    "src/{} ({}) names {name}, which belongs to {home}",
                    s.rel, s.module
                ));
            }
        }
    }
    found
}

fn compose_io(srcs: &[Source]) -> Vec<String> {
    let forbidden: &[&[&str]] = &[
        &["std", "fs"],
        &["std", "net"],
        &["std", "process"],
        &["std", "io", "stdin"],
        &["std", "thread", "spawn"],
        &["tokio"],
        &["reqwest"],
        &["File"],
    ];
    let mut found = Vec::new();
    for s in srcs.iter().filter(|s| s.module == "compose") {
        for p in &s.names.paths {
            if forbidden
                .iter()
                .any(|f| p.len() >= f.len() && p[..f.len()] == **f)
            {
                found.push(format!("src/{} uses {}", s.rel, p.join("::")));
            }
        }
    }
    found
}

/// `http` reaches records through services and the application layer:
/// it names neither the metadata store nor the object store.
fn http_reaches_stores(srcs: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for s in srcs.iter().filter(|s| s.module == "http") {
        for p in s.names.crate_paths() {
            if p.first().is_some_and(|m| m == "meta" || m == "store") {
                found.push(format!("src/{} names crate::{}", s.rel, p.join("::")));
            }
        }
        for m in &s.names.zero_arg_calls {
            if m == "meta" || m == "store" {
                found.push(format!("src/{} calls .{m}()", s.rel));
            }
        }
    }
    found
}

fn cli_reaches_http(srcs: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for s in srcs.iter().filter(|s| s.module == "cli") {
        for p in s.names.crate_paths() {
            if p.first().is_some_and(|m| m == "http")
                && !p
                    .get(1)
                    .is_some_and(|f| CLI_FROM_HTTP.contains(&f.as_str()))
            {
                found.push(format!("src/{} uses crate::{}", s.rel, p.join("::")));
            }
        }
    }
    found
}

fn statuses_outside_http_error(srcs: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for s in srcs
        .iter()
        .filter(|s| s.module == "http" && s.rel != "http/error.rs")
    {
        for p in &s.names.paths {
            if let Some(i) = p.iter().position(|x| x == "StatusCode")
                && p.get(i + 1)
                    .is_some_and(|c| ERROR_STATUSES.contains(&c.as_str()))
            {
                found.push(format!("src/{} builds StatusCode::{}", s.rel, p[i + 1]));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn public_app_fields(srcs: &[Source]) -> Vec<String> {
    srcs.iter()
        .flat_map(|s| s.app_fields.iter().map(move |f| (s, f)))
        .filter(|(_, (_, public))| *public)
        .map(|(s, (name, _))| format!("src/{}: App::{name} is public", s.rel))
        .collect()
}

fn long_files(srcs: &[Source]) -> Vec<String> {
    srcs.iter()
        .filter(|s| s.code.len() > MAX_FILE_LINES)
        .map(|s| {
            format!(
                "src/{}: {} code lines (limit {MAX_FILE_LINES})",
                s.rel,
                s.code.len()
            )
        })
        .collect()
}

/// Functions longer than [`MAX_FN_LINES`] code lines: from the line that
/// opens a `fn` to the line that closes its body, by brace depth (string
/// and character literals skipped).
fn long_functions(srcs: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for s in srcs {
        let mut open: Option<(String, usize, i64)> = None;
        let mut depth: i64 = 0;
        for (n, line) in s.code.iter().enumerate() {
            let code = braces_only(line);
            let t = item_start(line);
            if open.is_none() && t.starts_with("fn ") && !t.ends_with(';') {
                let name = t[3..].split(['(', '<']).next().unwrap_or("");
                open = Some((name.to_string(), n, depth));
            }
            for c in code.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if let Some((_, _, at)) = &open
                && depth == *at
                && line.trim_end().ends_with(';')
                && !code.contains('}')
            {
                // A declaration without a body (a trait's).
                open = None;
            }
            if let Some((name, start, at)) = &open
                && depth <= *at
                && code.contains('}')
            {
                let len = n - start + 1;
                if len > MAX_FN_LINES {
                    found.push(format!(
                        "src/{}: fn {name} is {len} code lines (limit {MAX_FN_LINES})",
                        s.rel
                    ));
                }
                open = None;
            }
        }
    }
    found
}

/// A line without the qualifiers an item may start with (`pub(crate)`,
/// `async`, `const`, `unsafe`, `extern "C"`).
fn item_start(line: &str) -> &str {
    let mut t = line.trim_start();
    loop {
        let before = t;
        for q in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "async ",
            "const ",
            "unsafe ",
            "extern \"C\" ",
        ] {
            t = t.strip_prefix(q).unwrap_or(t);
        }
        if t == before {
            return t;
        }
    }
}

/// The braces of a line outside string and character literals.
fn braces_only(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => break,
            c @ (b'{' | b'}') => out.push(c as char),
            _ => {}
        }
        i += 1;
    }
    out
}

/// Speed belongs in benches: no assertion in `tests/` reads the clock
/// (`elapsed`, `Instant`). Waiting for an event with a hang guard is
/// `common::eventually`.
fn wall_clock_asserts(tests: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for s in tests {
        for (name, idents) in &s.names.macros {
            if name.starts_with("assert") && idents.iter().any(|i| i == "elapsed" || i == "Instant")
            {
                found.push(format!("tests/{}: {name}! reads the clock", s.rel));
            }
        }
    }
    found
}

fn assert_none(what: &str, found: Vec<String>) {
    assert!(found.is_empty(), "{what}:\n{}", found.join("\n"));
}

#[test]
fn modules_depend_downward_only() {
    assert_none(
        "upward or sideways dependencies",
        upward_paths(&sources("src")),
    );
}

#[test]
fn outside_crates_stay_behind_their_module() {
    assert_none(
        "outside crates named outside their module",
        confined_crates(&sources("src")),
    );
}

#[test]
fn compose_does_no_io() {
    assert_none("I/O in compose", compose_io(&sources("src")));
}

#[test]
fn edges_go_through_the_application_layer() {
    let srcs = sources("src");
    assert_none("http reaching the stores", http_reaches_stores(&srcs));
    assert_none("cli reaching into http", cli_reaches_http(&srcs));
    assert_none("App's fields", public_app_fields(&srcs));
}

#[test]
fn only_http_error_builds_error_statuses() {
    assert_none(
        "error statuses built outside http::error",
        statuses_outside_http_error(&sources("src")),
    );
}

#[test]
fn files_and_functions_read_in_one_go() {
    let srcs = sources("src");
    let mut found = long_files(&srcs);
    found.extend(long_functions(&srcs));
    assert_none("files or functions too long", found);
}

#[test]
fn timed_tests_use_events_not_the_clock() {
    assert_none("wall-clock asserts", wall_clock_asserts(&sources("tests")));
}

/// Each check, fed a small source that breaks it (laid out over several
/// lines, as real code is), reports it; and each sees the real tree.
#[test]
fn the_checks_catch_injected_violations() {
    let one = |rel: &str, text: &str| {
        vec![parse(
            rel,
            rel.split('/').next().unwrap().trim_end_matches(".rs"),
            text,
        )]
    };
    let upward = one(
        "pipeline/x.rs",
        "use crate::{\n    keys,\n    http::router,\n};",
    );
    assert_eq!(
        upward_paths(&upward).len(),
        1,
        "{:?}",
        upward_paths(&upward)
    );
    let inline = one(
        "jobs/x.rs",
        "fn f() { let _ = crate::service::\n    LayerService::new(); }",
    );
    assert_eq!(upward_paths(&inline).len(), 1);
    let in_macro = one(
        "keys/x.rs",
        "fn f() { tracing::info!(x = ?crate::meta::Meta::open); }",
    );
    assert_eq!(upward_paths(&in_macro).len(), 1);
    let tested = one("keys/x.rs", "#[cfg(test)]\nmod t { use crate::http::x; }");
    assert!(upward_paths(&tested).is_empty(), "test modules are out");

    let sqlx = one("service/x.rs", "async fn f(p: &sqlx::AnyPool) {}");
    assert_eq!(confined_crates(&sqlx).len(), 1);
    let status = one("app/x.rs", "use axum::http::StatusCode;");
    assert_eq!(confined_crates(&status).len(), 2, "axum and StatusCode");
    let client = one("jobs/x.rs", "fn f(s: reqwest::StatusCode) {}");
    assert!(confined_crates(&client).is_empty());

    let io = one(
        "compose/x.rs",
        "fn f() { let _ = std::fs::\n    read(\"x\"); }",
    );
    assert_eq!(compose_io(&io).len(), 1);

    let split_call = one(
        "http/x.rs",
        "async fn h(app: App) { app\n    .meta()\n    .job(1).await; }",
    );
    assert_eq!(http_reaches_stores(&split_call).len(), 1);
    let meta_type = one("http/x.rs", "fn h(r: &crate::meta::ConfigurationRow) {}");
    assert_eq!(http_reaches_stores(&meta_type).len(), 1);
    let cli = one("cli/x.rs", "use crate::http::{serve, image_request_for};");
    assert_eq!(
        cli_reaches_http(&cli),
        vec!["src/cli/x.rs uses crate::http::image_request_for"]
    );
    let fields = one("app/mod.rs", "pub struct App { settings: S, pub meta: M }");
    assert_eq!(public_app_fields(&fields).len(), 1);
    let status = one(
        "http/x.rs",
        "fn f() -> u16 { StatusCode::\n    NOT_FOUND.as_u16() }",
    );
    assert_eq!(statuses_outside_http_error(&status).len(), 1);

    let body = format!(
        "fn long() {{\n{}}}\nfn short() {{ let s = \"}}\"; }}\n",
        "    x();\n".repeat(MAX_FN_LINES)
    );
    let long = one("jobs/x.rs", &body);
    assert_eq!(
        long_functions(&long).len(),
        1,
        "{:?}",
        long_functions(&long)
    );
    let big = one(
        "jobs/x.rs",
        &"const X: u8 = 0;\n".repeat(MAX_FILE_LINES + 1),
    );
    assert_eq!(long_files(&big).len(), 1);

    let clock = one(
        "x.rs",
        "#[test]\nfn t() { let s = Instant::now();\n assert!(\n s.elapsed() < D); }",
    );
    assert_eq!(wall_clock_asserts(&clock).len(), 1);

    // And they see the real tree.
    let srcs = sources("src");
    assert!(srcs.len() > 50, "{} files", srcs.len());
    let meta = srcs.iter().find(|s| s.rel == "meta/mod.rs").unwrap();
    assert!(
        meta.names.paths.iter().any(|p| p[0] == "sqlx"),
        "meta names sqlx"
    );
    let app = srcs.iter().find(|s| s.rel == "app/mod.rs").unwrap();
    assert!(app.app_fields.len() > 5, "App's fields are read");
    let http = srcs.iter().filter(|s| s.module == "http");
    assert!(
        http.flat_map(|s| s.names.crate_paths())
            .any(|p| p[0] == "pipeline" || p[0] == "app")
    );
    assert!(
        sources("tests")
            .iter()
            .any(|s| s.names.macros.iter().any(|(m, _)| m == "assert"))
    );
}

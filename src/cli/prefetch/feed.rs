//! Product feeds for `layercake prefetch --feed`: which configurations to
//! warm, checked against the asset before anything is rendered.
//!
//! - CSV: a header row, then one configuration a row. Columns are the
//!   asset's attribute names; optional `assetId` (else `--asset`) and `id`
//!   (a product or SKU id carried to the output) columns; an empty cell
//!   takes the attribute's default.
//! - JSONL: one `{"assetId": "…", "configuration": {…}, "id": "…"}` a line
//!   (`assetId` optional with `--asset`, `id` optional); blank lines and
//!   lines starting with `#` are skipped.
//!
//! Every error names the line (1-based, the CSV header is line 1) and the
//! column: its number and header for CSV, the key for JSONL (serde's
//! column for malformed JSON).

use crate::catalog::{Asset, AttrKind};
use crate::keys::Configuration;
use serde_json::{Map, Value};
use uuid::Uuid;

/// One configuration of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub line: usize,
    pub asset: Uuid,
    /// The product or SKU id, if the feed has one.
    pub id: Option<String>,
    /// Only the attributes the feed set.
    pub configuration: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: line {line}, column {column}: {message}")]
pub struct FeedError {
    pub file: String,
    pub line: usize,
    /// `3 (Body)` for CSV, the key for JSONL.
    pub column: String,
    pub message: String,
}

/// Looks up assets by id (the registry locally, the server remotely).
pub trait Assets {
    fn asset(&self, id: Uuid) -> Option<std::sync::Arc<Asset>>;
}

/// Parses `text` (CSV unless `file` ends in `.jsonl` or `.ndjson`).
///
/// # Errors
/// The first [`FeedError`].
pub fn parse(
    file: &str,
    text: &str,
    default_asset: Option<Uuid>,
    assets: &dyn Assets,
) -> Result<Vec<Entry>, FeedError> {
    let lower = file.to_ascii_lowercase();
    if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        jsonl(file, text, default_asset, assets)
    } else {
        csv(file, text, default_asset, assets)
    }
}

/// The `assetId` values a feed names (before it is checked), so that only
/// those assets are looked up.
pub fn asset_ids(file: &str, text: &str) -> Vec<Uuid> {
    let lower = file.to_ascii_lowercase();
    let mut out = Vec::new();
    if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && let Some(id) = v["assetId"].as_str().and_then(|s| Uuid::parse_str(s).ok())
            {
                out.push(id);
            }
        }
    } else {
        let mut r = ::csv::ReaderBuilder::new()
            .flexible(true)
            .trim(::csv::Trim::All)
            .from_reader(text.as_bytes());
        let col = r
            .headers()
            .ok()
            .and_then(|h| h.iter().position(|c| c == "assetId"));
        if let Some(col) = col {
            for rec in r.records().flatten() {
                if let Some(id) = rec.get(col).and_then(|s| Uuid::parse_str(s).ok()) {
                    out.push(id);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn fail(
    file: &str,
    line: usize,
    column: impl Into<String>,
    message: impl Into<String>,
) -> FeedError {
    FeedError {
        file: file.to_string(),
        line,
        column: column.into(),
        message: message.into(),
    }
}

fn asset_of(
    file: &str,
    line: usize,
    column: &str,
    id: Option<&str>,
    default: Option<Uuid>,
    assets: &dyn Assets,
) -> Result<std::sync::Arc<Asset>, FeedError> {
    let id = match (id.filter(|s| !s.is_empty()), default) {
        (Some(s), _) => Uuid::parse_str(s)
            .map_err(|e| fail(file, line, column, format!("assetId \"{s}\": {e}")))?,
        (None, Some(d)) => d,
        (None, None) => {
            return Err(fail(
                file,
                line,
                column,
                "no assetId (give the column or --asset)",
            ));
        }
    };
    assets
        .asset(id)
        .ok_or_else(|| fail(file, line, column, format!("unknown asset {id}")))
}

/// A CSV cell as the attribute's JSON value.
pub(super) fn cell(kind: &AttrKind, text: &str) -> Result<Value, String> {
    match kind {
        AttrKind::String { .. } | AttrKind::Color => Ok(Value::String(text.to_string())),
        AttrKind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "\"{text}\" is not a boolean (true/false, yes/no, 1/0)"
            )),
        },
        AttrKind::Number { .. } => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("\"{text}\" is not a number")),
    }
}

fn csv(
    file: &str,
    text: &str,
    default_asset: Option<Uuid>,
    assets: &dyn Assets,
) -> Result<Vec<Entry>, FeedError> {
    let mut reader = ::csv::ReaderBuilder::new()
        .flexible(false)
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| fail(file, 1, "1", e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    let col = |i: usize| format!("{} ({})", i + 1, header[i]);
    let asset_col = header.iter().position(|h| h == "assetId");
    let id_col = header.iter().position(|h| h == "id");
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            fail(file, line, "-", e.to_string())
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let asset = asset_of(
            file,
            line,
            &asset_col.map_or_else(|| "-".into(), col),
            asset_col.and_then(|i| record.get(i)),
            default_asset,
            assets,
        )?;
        let mut configuration = Map::new();
        for (i, text) in record.iter().enumerate() {
            if Some(i) == asset_col || Some(i) == id_col {
                continue;
            }
            let (_, attr) = asset.attribute(&header[i]).ok_or_else(|| {
                let names: Vec<&str> = asset.attributes.iter().map(|a| a.name.as_str()).collect();
                fail(
                    file,
                    line,
                    col(i),
                    format!(
                        "\"{}\" is not an attribute of {} ({})",
                        header[i],
                        asset.name,
                        names.join(", ")
                    ),
                )
            })?;
            if text.is_empty() {
                continue;
            }
            let value = cell(&attr.kind, text).map_err(|m| fail(file, line, col(i), m))?;
            attr.accept(&value)
                .map_err(|e| fail(file, line, col(i), e.to_string()))?;
            configuration.insert(header[i].clone(), value);
        }
        out.push(Entry {
            line,
            asset: asset.id,
            id: id_col.and_then(|i| record.get(i)).map(str::to_string),
            configuration,
        });
    }
    Ok(out)
}

fn jsonl(
    file: &str,
    text: &str,
    default_asset: Option<Uuid>,
    assets: &dyn Assets,
) -> Result<Vec<Entry>, FeedError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let v: Value = serde_json::from_str(raw)
            .map_err(|e| fail(file, line, e.column().to_string(), e.to_string()))?;
        let Value::Object(obj) = v else {
            return Err(fail(file, line, "1", "each line must be a JSON object"));
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "assetId" | "configuration" | "id"))
        {
            return Err(fail(
                file,
                line,
                k.as_str(),
                "unknown key (expected assetId, configuration, id)",
            ));
        }
        let asset_id = match obj.get("assetId") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(fail(file, line, "assetId", "must be a string")),
        };
        let asset = asset_of(file, line, "assetId", asset_id, default_asset, assets)?;
        let configuration = match obj.get("configuration") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(fail(file, line, "configuration", "must be an object")),
        };
        if let Err(e) = Configuration::parse(&asset, &Value::Object(configuration.clone())) {
            return Err(fail(file, line, "configuration", e.to_string()));
        }
        let id = match obj.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(fail(file, line, "id", "must be a string or a number")),
        };
        out.push(Entry {
            line,
            asset: asset.id,
            id,
            configuration,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use std::sync::Arc;

    struct Demo(Arc<Asset>);
    impl Assets for Demo {
        fn asset(&self, id: Uuid) -> Option<Arc<Asset>> {
            (id == self.0.id).then(|| Arc::clone(&self.0))
        }
    }

    fn demo() -> (Demo, Uuid) {
        let c = Catalog::demo().unwrap();
        let a = Arc::clone(c.assets().next().unwrap());
        let id = a.id;
        (Demo(a), id)
    }

    #[test]
    fn csv_rows_become_checked_configurations() {
        let (assets, sofa) = demo();
        let text = "id,Body,Legs,Skirt\nSKU-1,Navy,Walnut Block,yes\nSKU-2,Rust,,0\n";
        let e = parse("feed.csv", text, Some(sofa), &assets).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].line, 2);
        assert_eq!(e[0].id.as_deref(), Some("SKU-1"));
        assert_eq!(
            Value::Object(e[0].configuration.clone()),
            serde_json::json!({"Body": "Navy", "Legs": "Walnut Block", "Skirt": true})
        );
        assert_eq!(
            Value::Object(e[1].configuration.clone()),
            serde_json::json!({"Body": "Rust", "Skirt": false}),
            "an empty cell is the default"
        );
    }

    #[test]
    fn csv_errors_name_the_line_and_the_column() {
        let (assets, sofa) = demo();
        let cases = [
            ("Body,Legs\nNavy,Oak\n", 2, "2 (Legs)", "not an option"),
            (
                "Body,Colour\nNavy,Red\n",
                2,
                "2 (Colour)",
                "not an attribute",
            ),
            (
                "Body,Skirt\nNavy,true\nSlate,maybe\n",
                3,
                "2 (Skirt)",
                "not a boolean",
            ),
            ("Body,Legs\nNavy\n", 2, "-", "field"),
        ];
        for (text, line, column, message) in cases {
            let e = parse("f.csv", text, Some(sofa), &assets).unwrap_err();
            assert_eq!((e.line, e.column.as_str()), (line, column), "{e}");
            assert!(e.message.contains(message), "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("f.csv: line {line}, column ")),
                "{e}"
            );
        }
        let e = parse("f.csv", "Body\nNavy\n", None, &assets).unwrap_err();
        assert!(e.message.contains("--asset"), "{e}");
    }

    #[test]
    fn jsonl_lines_and_their_errors() {
        let (assets, sofa) = demo();
        let ok = format!(
            "{{\"assetId\":\"{sofa}\",\"configuration\":{{\"Body\":\"Navy\"}},\"id\":7}}\n\n# comment\n{{\"configuration\":{{}}}}\n"
        );
        let e = parse("f.jsonl", &ok, Some(sofa), &assets).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].line, e[1].line), (1, 4));
        assert_eq!(e[0].id.as_deref(), Some("7"));
        let cases = [
            (
                "{\"configuration\": {\"Body\": \"Purple\"}}\n",
                1,
                "configuration",
                "Purple",
            ),
            (
                "{}\n{\"configuration\": {\"Body\": \"Navy\"\n",
                2,
                "33",
                "EOF",
            ),
            ("{\"config\": {}}\n", 1, "config", "unknown key"),
            ("{\"assetId\": \"nope\"}\n", 1, "assetId", "assetId"),
        ];
        for (text, line, column, message) in cases {
            let e = parse("f.jsonl", text, Some(sofa), &assets).unwrap_err();
            assert_eq!((e.line, e.column.as_str()), (line, column), "{e}");
            assert!(e.message.contains(message), "{e}");
        }
    }
}

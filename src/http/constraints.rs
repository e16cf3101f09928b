//! The declared constraints of the OpenAPI document: what the handlers
//! check, stated where a client (or schemathesis, which `.ci/run` runs
//! with every check against the real binary) can read it.
//!
//! Parameters mean the same on every route (`Params` parses them by name),
//! so their schemas are stated here once, by name, and applied to every
//! operation that takes them: ids are UUIDs, JSON-valued parameters are
//! `content: application/json` objects, numbers have their ranges (from
//! the configured limits), closed sets are enums. Then every operation
//! gets the error statuses the shared layers can answer (400/422 for bad
//! parameters, 401/403 from `auth`, 404 for an unknown id, 413 for a long
//! query or body, 415 from `guard`, 503 from the request deadline), and
//! the aliases of the fast compositor get its parameters.

use crate::config::Settings;
use serde_json::{Value, json};

/// A schema that is a UUID.
fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

/// The schema of query (or path) parameter `name` of `path`, if declared here.
fn parameter(path: &str, name: &str, s: &Settings) -> Option<Param> {
    let max = s.http.max_dimension;
    let int =
        |lo: u64, hi: u64| Param::Schema(json!({"type": "integer", "minimum": lo, "maximum": hi}));
    let one_of = |v: &[&str]| Param::Schema(json!({"type": "string", "enum": v}));
    let object = || Param::Json(json!({"type": "object"}));
    Some(match name {
        // A saved configuration: by id or by shortId.
        "id" if path.starts_with("/api/configurations/") => Param::Schema(short_or_uuid()),
        "configurationId" => Param::Schema(short_or_uuid()),
        // `""` is "none", as the published client sends and reads it.
        "stageId" => Param::Schema(json!({"anyOf": [uuid(), {"type": "string", "enum": [""]}]})),
        "id" | "assetId" | "jobId" | "taskId" | "runId" | "orgId" | "bearer_token" => {
            Param::Schema(uuid())
        }
        "page" | "perPage" => int(1, u64::from(u32::MAX)),
        "sort" if path == "/api/assets" => one_of(&[
            "+createdAt",
            "-createdAt",
            "createdAt",
            "+name",
            "-name",
            "name",
        ]),
        "sort" => one_of(&["+createdAt", "-createdAt", "createdAt"]),
        "width" | "height" => int(1, u64::from(max)),
        "cropX" | "cropY" => int(0, u64::from(u32::MAX)),
        "cropWidth" | "cropHeight" => int(1, u64::from(u32::MAX)),
        "quality" => int(1, 100),
        // `<version>.<epoch>`; any other text is a version that is not
        // the live one (not an error), but `v=` is refused as empty.
        "v" => Param::Schema(json!({"type": "string", "minLength": 1})),
        "format" if path.ends_with("carousel") || path == "/embed/spin" => {
            one_of(&["auto", "png", "jpg", "jpeg", "webp", "avif"])
        }
        "format" => one_of(&["png", "jpg", "jpeg", "webp", "avif", "auto"]),
        "imageFitMode" => one_of(&["contain", "cover", "fitWidth", "fitHeight"]),
        "view" => Param::Schema(json!({"type": "string", "pattern": "^[a-z0-9-]+$"})),
        "resultType" => one_of(&["file", "url", "json"]),
        "status" | "runStatus" => one_of(&["pending", "running", "stopped"]),
        "deleted" => Param::Schema(json!({"type": "boolean"})),
        "preset" if s.sizes.presets.is_empty() => return None,
        "preset" => Param::Schema(json!({
            "type": "string",
            "enum": s.sizes.presets.keys().collect::<Vec<_>>(),
        })),
        "widths" => Param::Array(json!({
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": max},
            "minItems": 1,
            "maxItems": super::carousel::MAX_WIDTHS,
        })),
        "configuration" | "assetLayerConfiguration" | "stageConfiguration" | "metadata" => object(),
        "optimization" => Param::Json(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "width": {"type": "integer", "minimum": 1, "maximum": max},
                "height": {"type": "integer", "minimum": 1, "maximum": max},
                "format": {"type": "string", "enum": ["png", "jpg", "jpeg", "webp"]},
                "quality": {"type": "integer", "minimum": 1, "maximum": 100},
            },
        })),
        _ => return None,
    })
}

fn short_or_uuid() -> Value {
    json!({"anyOf": [uuid(), {"type": "string", "pattern": "^[A-Za-z0-9_-]{7,14}$"}]})
}

enum Param {
    /// A plain `schema`.
    Schema(Value),
    /// JSON text: `content: application/json` with this schema.
    Json(Value),
    /// A comma-separated list (`style: form, explode: false`).
    Array(Value),
}

/// The form of `POST /api/files`: one or more file parts named `files`,
/// nothing else. (The server also takes the names `file`, which the
/// published client sends, and `files[]`.)
fn upload_form() -> Value {
    json!({
        "type": "object",
        "required": ["files"],
        "properties": {"files": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "minItems": 1,
        }},
        "additionalProperties": false,
    })
}

/// A webhook address as the document states it: http(s), a DNS name
/// (labels of letters, digits, `-` and `_`) whose last label starts with a
/// letter (so never an IP literal: the URL standard reads a numeric last
/// label as an IPv4 address), an optional port, no credentials. (The
/// server takes public IP literals too.)
const ADDRESS: &str = concat!(
    r"^https?://([A-Za-z0-9_-]{1,63}\.)+[A-Za-z][A-Za-z0-9_-]{0,62}\.?",
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    r"([/?#][^\s]*)?$"
);

/// The body of `POST /api/webhooks` (`create`) or `PUT /api/webhooks/{id}`:
/// `topic` and `address` are required on create; `secret` is taken only
/// there. What an address may name (public hosts only) is checked by the
/// address policy, beyond what a schema can say.
fn webhook_body(create: bool) -> Value {
    let mut body = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "orgId": {"type": "string", "format": "uuid", "description": "The caller's org (the published client sends it); another org is 403."},
            "topic": {"type": "string", "enum": crate::webhooks::TOPICS},
            "address": {
                "type": "string",
                "pattern": ADDRESS,
                "description": "Where deliveries are POSTed: an http(s) URL without credentials whose host is a DNS name (not under localhost) that resolves to public addresses when delivered.",
            },
            "filter": {
                "type": "object",
                "description": "Entries the event's data must match (arrays are any-of).",
                "properties": {
                    "status": {"type": "array", "items": {"type": "string", "enum": crate::webhooks::OUTCOMES}},
                    "type": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                },
            },
        },
    });
    if create {
        body["properties"]["secret"] = json!({
            "type": "string",
            "minLength": 16,
            "description": "The HMAC key; generated when absent.",
        });
    }
    // `null` is as absent (the published client sends it): unchanged on
    // update; on create only where the field is optional.
    let required: &[&str] = if create { &["topic", "address"] } else { &[] };
    if let Some(props) = body["properties"].as_object_mut() {
        for (name, schema) in props.iter_mut() {
            if !required.contains(&name.as_str()) {
                *schema = json!({"anyOf": [schema.take(), {"type": "null"}]});
            }
        }
    }
    if create {
        body["required"] = json!(required);
    }
    body
}

/// The body of `PUT /api/assets/{id}`: an asset definition (the catalogue
/// file format, templates inline). The top level is stated here; what the
/// parts must say of each other (layers naming attributes that exist,
/// defaults among the options, views naming stage attributes, templates
/// that parse) is checked by the loader, which names the field.
/// Puts the asset definition's schema (`catalog::schema`, with this
/// server's caps) into the document's components as `AssetDefinition` and
/// its parts, and returns a reference to it.
fn asset_definition(doc: &mut Value, s: &Settings) -> Value {
    let schema = crate::catalog::schema::asset_schema(&s.catalog.limits());
    // The parts' references point into the components instead of `$defs`.
    let text = schema
        .to_string()
        .replace("\"#/$defs/", "\"#/components/schemas/");
    let Ok(Value::Object(mut schema)) = serde_json::from_str::<Value>(&text) else {
        return json!({"type": "object"});
    };
    schema.remove("$schema");
    let parts = schema.remove("$defs");
    if let Some(components) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, part) in parts.iter().flat_map(|p| p.as_object()).flatten() {
            components.insert(name.clone(), part.clone());
        }
        components.insert("AssetDefinition".into(), Value::Object(schema));
    }
    json!({"$ref": "#/components/schemas/AssetDefinition"})
}

/// One image of `POST /api/urls`: the image route's parameters, each
/// typed as the route types it, and those it is told to ignore
/// (`http.ignored_params`); any other is refused by name, as on the route.
fn url_image(s: &Settings) -> Value {
    // A JSON parameter is an object; those the server sets itself
    // (signature, v, a token) are not the client's.
    let value = json!({"type": ["string", "number", "boolean"]});
    let properties: serde_json::Map<String, Value> = crate::app::image::PARAMS
        .iter()
        .filter(|p| !matches!(**p, "signature" | "v" | "bearer_token"))
        .map(|p| {
            let schema = match parameter("/api/fast-compositor", p, s) {
                Some(Param::Schema(schema)) => schema,
                Some(Param::Json(schema) | Param::Array(schema)) => schema,
                None => value.clone(),
            };
            (p.to_string(), schema)
        })
        .collect();
    let ignored: serde_json::Map<String, Value> = s
        .http
        .ignored_params
        .iter()
        .map(|p| match p.strip_suffix('*') {
            Some(prefix) => (format!("^{}", regex_escape(prefix)), value.clone()),
            None => (format!("^{}$", regex_escape(p)), value.clone()),
        })
        .collect();
    json!({
        "type": "object",
        "required": ["assetId"],
        "properties": properties,
        "patternProperties": ignored,
        "additionalProperties": false,
    })
}

/// Routes that answer without a token (and so never 401/403).
fn is_open(path: &str) -> bool {
    path.ends_with("/healthcheck")
        || matches!(
            path,
            "/api/openapi.json" | "/api/assets/schema.json" | "/healthz" | "/readyz"
        )
}

/// Routes that compose, render or queue: they can be over capacity (429).
fn can_be_busy(method: &str, path: &str) -> bool {
    path.starts_with("/api/fast-compositor") && !path.ends_with("/healthcheck")
        || matches!(
            path,
            "/" | "/api/carousel" | "/embed/carousel" | "/embed/spin" | "/api/layers/layer"
        )
        || (method == "post" && path == "/api/jobs")
}

/// Applies the constraints to `doc` (the document as utoipa wrote it).
pub fn refine(mut doc: Value, s: &Settings) -> Value {
    // The aliases of the image route: its parameters and answers.
    if let Some(image) = doc.pointer("/paths/~1api~1fast-compositor/get").cloned() {
        for (i, (alias, why)) in super::compositor::IMAGE_ALIASES.iter().enumerate() {
            let mut op = image.clone();
            op["operationId"] = json!(format!("image_alias_{i}"));
            op["summary"] = json!("As GET /api/fast-compositor");
            op["description"] = json!(why);
            doc["paths"][*alias] = json!({ "get": op });
        }
    }
    // Each image of POST /api/urls names its asset; the other parameters
    // are the image route's (checked as that route checks them).
    if let Some(images) = doc.pointer_mut("/components/schemas/UrlsRequest/properties/images") {
        images["description"] = json!(format!(
            "At most {} images (and the body within http.max_body_bytes).",
            super::urls::MAX_IMAGES
        ));
        images["items"] = url_image(s);
    }
    // A registered layer's stageId: a UUID, or "" / null for none.
    if let Some(stage) = doc.pointer_mut("/components/schemas/NewLayerJson/properties/stageId") {
        *stage = json!({"anyOf": [uuid(), {"type": "string", "enum": [""]}, {"type": "null"}]});
    }
    // The longest claim a node may ask for is the server's setting.
    if let Some(wait) = doc.pointer_mut("/components/schemas/ClaimRequest/properties/waitSeconds") {
        wait["maximum"] = json!(s.jobs.remote_claim_wait_secs);
    }
    // A layer's bytes (resultType=file) are binary, not a list of numbers.
    for kind in ["png", "jpeg", "webp"] {
        let at = format!("/paths/~1api~1layers~1layer/get/responses/200/content/image~1{kind}");
        if let Some(answer) = doc.pointer_mut(&at) {
            answer["schema"] = json!({"type": "string", "format": "binary"});
        }
    }
    // The asset definition: the body of PUT, the answer of GET and PUT.
    let asset = asset_definition(&mut doc, s);
    if let Some(items) = doc.pointer_mut("/components/schemas/AssetList/properties/assets") {
        items["items"] = asset.clone();
    }
    if let Some(put) = doc.pointer_mut("/paths/~1api~1assets~1{id}/put") {
        put["requestBody"]["content"]["application/json"]["schema"] = asset.clone();
        put["requestBody"]["required"] = json!(true);
    }
    for (method, status) in [("get", "200"), ("put", "200"), ("put", "201")] {
        let at = format!(
            "/paths/~1api~1assets~1{{id}}/{method}/responses/{status}/content/application~1json"
        );
        if let Some(answer) = doc.pointer_mut(&at) {
            answer["schema"] = asset.clone();
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            refine_operation(path, method, op, s);
        }
    }
    doc
}

/// One operation of the document: its parameters' schemas, and the error
/// statuses it can answer.
fn refine_operation(path: &str, method: &str, op: &mut Value, s: &Settings) {
    if path == "/api/webhooks" && method == "post"
        || path == "/api/webhooks/{id}" && method == "put"
    {
        op["requestBody"]["content"]["application/json"]["schema"] = webhook_body(method == "post");
        op["requestBody"]["required"] = json!(true);
    }
    if (method, path) == ("post", "/api/files") {
        op["requestBody"]["content"]["multipart/form-data"]["schema"] = upload_form();
        op["requestBody"]["required"] = json!(true);
    }
    let has_query = refine_parameters(path, op, s);
    let errors = error_statuses(path, method, op, has_query);
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        for (status, description) in errors {
            responses.entry(status).or_insert_with(|| {
                json!({
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                })
            });
        }
    }
}

/// Gives the operation's query and path parameters their declared
/// schemas; whether it takes any query parameter.
fn refine_parameters(path: &str, op: &mut Value, s: &Settings) -> bool {
    let mut has_query = false;
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params.iter_mut() {
            let (Some(name), Some(place)) = (
                p.get("name").and_then(Value::as_str).map(str::to_string),
                p.get("in").and_then(Value::as_str).map(str::to_string),
            ) else {
                continue;
            };
            has_query |= place == "query";
            if place == "header" {
                continue;
            }
            let Some(obj) = p.as_object_mut() else {
                continue;
            };
            match parameter(path, &name, s) {
                Some(Param::Schema(schema)) => {
                    obj.insert("schema".into(), schema);
                }
                Some(Param::Json(schema)) => {
                    obj.remove("schema");
                    obj.insert(
                        "content".into(),
                        json!({"application/json": {"schema": schema}}),
                    );
                }
                Some(Param::Array(schema)) => {
                    obj.insert("schema".into(), schema);
                    obj.insert("style".into(), json!("form"));
                    obj.insert("explode".into(), json!(false));
                }
                None => {}
            }
        }
    }
    has_query
}

/// The error statuses (and their descriptions) the shared layers can
/// answer for this operation.
fn error_statuses(
    path: &str,
    method: &str,
    op: &Value,
    has_query: bool,
) -> Vec<(&'static str, &'static str)> {
    let has_body = op.get("requestBody").is_some();
    let has_id = path.contains('{');
    let mut errors: Vec<(&'static str, &'static str)> = Vec::new();
    if has_query || has_body || has_id {
        errors.push(("400", "Malformed parameter or body (names it)"));
        errors.push(("422", "Invalid value (names it)"));
    }
    if has_query || has_body {
        errors.push(("413", "Query string or body over its limit"));
    }
    if has_body {
        errors.push((
            "415",
            "A body that is not application/json (or multipart/form-data where taken)",
        ));
    }
    let names_record = op
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| {
            ps.iter()
                .any(|p| matches!(p["name"].as_str(), Some("assetId" | "configurationId")))
        });
    // Bodies that name records (an asset, a file, a product); webhook and
    // upload bodies name none.
    let body_names_record = has_body && !path.starts_with("/api/webhooks") && path != "/api/files";
    if has_id || body_names_record || names_record {
        errors.push(("404", "No such record in the caller's org"));
    }
    if !is_open(path) {
        errors.push(("401", "No token, or an unknown one"));
        errors.push(("403", "A token that may not do this"));
    }
    if can_be_busy(method, path) {
        errors.push(("429", "Over capacity; Retry-After"));
    }
    errors.push((
        "503",
        "Not ready, or past the request deadline; Retry-After",
    ));
    errors
}

/// `s` with the characters a regular expression reads specially escaped
/// (parameter names are letters, digits and `_ - . [ ]`).
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = matches!(c, '.' | '[' | ']' | '\\');
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::load_from(
            None,
            &crate::config::Overrides::default(),
            figment::providers::Env::prefixed("LAYERCAKE_TEST_NOTHING_"),
        )
        .unwrap()
    }

    #[test]
    fn an_image_of_post_urls_takes_the_image_route_s_parameters_only() {
        let doc =
            json!({"components": {"schemas": {"UrlsRequest": {"properties": {"images": {}}}}}});
        let doc = refine(doc, &settings());
        let item = &doc["components"]["schemas"]["UrlsRequest"]["properties"]["images"]["items"];
        assert_eq!(item["additionalProperties"], json!(false));
        assert!(
            item["properties"]["view"].is_object() && item["properties"]["assetId"].is_object()
        );
        assert!(item["patternProperties"]["^utm_"].is_object(), "{item}");
        assert!(item["patternProperties"]["^gclid$"].is_object(), "{item}");
        assert_eq!(regex_escape("a.b[0]"), "a\\.b\\[0\\]");
    }

    #[test]
    fn parameters_get_their_declared_schemas_and_operations_their_errors() {
        let doc = json!({"paths": {
            "/api/jobs/{id}": {"get": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "ok"}},
            }},
            "/api/fast-compositor": {"get": {
                "parameters": [
                    {"name": "configuration", "in": "query", "schema": {"type": "string"}},
                    {"name": "width", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": {"description": "image"}},
            }},
            "/api/jobs/healthcheck": {"get": {"responses": {"200": {"description": "ok"}}}},
        }});
        let doc = refine(doc, &settings());
        let job = &doc["paths"]["/api/jobs/{id}"]["get"];
        assert_eq!(job["parameters"][0]["schema"], uuid());
        for status in ["400", "401", "403", "404", "422", "503"] {
            assert!(job["responses"][status].is_object(), "{status}");
        }
        assert!(job["responses"]["429"].is_null());
        let image = &doc["paths"]["/api/fast-compositor"]["get"];
        assert!(image["parameters"][0].get("schema").is_none());
        assert_eq!(
            image["parameters"][0]["content"]["application/json"]["schema"]["type"],
            "object"
        );
        assert_eq!(image["parameters"][1]["schema"]["maximum"], 4096);
        assert!(image["responses"]["429"].is_object());
        // The alias has the route's parameters.
        let alias = &doc["paths"]["/api/fast-compositor/"]["get"];
        assert_eq!(alias["parameters"], image["parameters"]);
        assert_eq!(alias["operationId"], "image_alias_0");
        assert!(doc["paths"]["/api/fast-compositor/undefined"]["get"]["parameters"].is_array());
        // An open route never answers 401.
        assert!(doc["paths"]["/api/jobs/healthcheck"]["get"]["responses"]["401"].is_null());
    }
}

//! The image request, as both edges make it: `GET /api/fast-compositor`
//! ([`prepare`]), and `POST /api/urls`, `layercake url` and `layercake
//! prefetch` ([`request_for`], [`pinned_url`], [`query_of`]).
//!
//! [`prepare`] checks the URL's signature first (a bad one costs one HMAC
//! and a 403 before any work), then finds the acting org (the caller's,
//! or for a signed URL without a token the asset's owner), reads a saved
//! configuration, parses the query ([`ImageQuery::parse`], pure), resolves
//! it against the asset and the settings ([`resolve::resolve`], pure) and
//! decides how the answer may be cached ([`cache::policy`], pure). What is
//! left to the edge is HTTP: the `ETag`, `If-None-Match`, `only-if-cached`
//! and the response.

mod accept;
pub mod cache;
pub mod query;
pub mod resolve;

pub use cache::{Asker, CachePolicy, Ttl};
pub use query::{ImageQuery, PARAMS};
pub use resolve::{Rules, Saved, check_output_size};

use super::App;
use super::params::Params;
use crate::catalog::Asset;
use crate::error::Error;
use crate::pipeline::ImageRequest;
use crate::signing::{Signer, Verdict};
use crate::sizes::Exactness;
use serde_json::Value;
use uuid::Uuid;

/// Response header telling where the bytes came from: `hit-memory`,
/// `hit-store` or `miss` (what `layercake prefetch` reads).
pub const CACHE_HEADER: &str = "x-layercake-cache";

/// The path image URLs are signed for (with or without a trailing slash).
pub const PATH: &str = "/api/fast-compositor";

/// An image request ready for the compositor, and how its answer may be
/// cached.
#[derive(Debug)]
pub struct Prepared {
    pub request: ImageRequest,
    pub cache: CachePolicy,
}

/// The image route's request up to the compositor: signature, acting org,
/// saved configuration, parameters, cache policy. `org` is the caller's
/// (`None` when `asker` is [`Asker::Anonymous`]); `accept` the `Accept`
/// header, for `format=auto`.
///
/// # Errors
/// 403 for a bad or (with `signing.required`) missing signature, 401 with
/// neither token nor signature, 413 for a long query, 404 for an unknown
/// asset or saved configuration, else 400/422 naming the parameter.
pub async fn prepare(
    app: &App,
    org: Option<Uuid>,
    asker: Asker,
    query: Option<&str>,
    accept: Option<&str>,
) -> Result<Prepared, Error> {
    // Before any work: a bad signature costs one HMAC.
    let verdict = verify(app, query)?;
    let params = Params::parse(query, app.settings().http.max_query_bytes)?;
    let org = acting_org(app, verdict, org, &params)?;
    let saved = match params.str("configurationId") {
        Some(key) => Some(app.configurations().get(org, key).await?),
        None => None,
    };
    let saved = saved.as_ref().map(|c| Saved {
        id: c.id,
        short_id: &c.short_id,
        asset: c.product_id,
        values: &c.variant,
    });
    let q = ImageQuery::parse(&params, &app.settings().http.ignored_params)?;
    let request = resolve_for(app, org, &q, saved, exactness(verdict, asker), accept)?;
    // A signed URL pinned to the live definition names one image forever.
    let http = &app.settings().http;
    let pinned = verdict == Verdict::Valid
        && q.version.as_deref() == Some(version_pin(&request.asset, &http.cache_buster).as_str());
    let ttl = Ttl {
        max_age_secs: http.max_age_secs,
        stale_while_revalidate_secs: http.stale_while_revalidate_secs,
    };
    let cache = cache::policy(verdict, asker, pinned, ttl);
    Ok(Prepared { request, cache })
}

/// The request of an image URL's query, taken exactly (without a saved
/// configuration or an `Accept` header): what `POST /api/urls` and
/// `layercake prefetch` check and compose.
///
/// # Errors
/// 400/404/422 naming the parameter at fault.
pub fn request_for(app: &App, org: Uuid, query: &str) -> Result<ImageRequest, Error> {
    let params = Params::parse(Some(query), app.settings().http.max_query_bytes)?;
    if params.str("configurationId").is_some() {
        return Err(Error::invalid(
            "configurationId",
            "give the configuration itself",
        ));
    }
    let q = ImageQuery::parse(&params, &app.settings().http.ignored_params)?;
    resolve_for(app, org, &q, None, Exactness::Exact, None)
}

/// The image URL (path and query) of `query`, pinned (`v`) to `asset`'s
/// definition and the pipeline, and signed when keys are configured: what
/// `layercake url` and `POST /api/urls` hand out.
pub fn pinned_url(signer: &Signer, asset: &Asset, buster: &str, query: &str) -> String {
    signer.signed_url(PATH, &format!("{query}&v={}", version_pin(asset, buster)))
}

/// The `v` parameter of URLs pinned to an asset definition and pipeline:
/// `<version>.<layer epoch>`, then `.<http.cache_buster>` when set.
pub fn version_pin(asset: &Asset, buster: &str) -> String {
    if buster.is_empty() {
        format!("{}.{}", asset.version, asset.epoch)
    } else {
        format!("{}.{}.{buster}", asset.version, asset.epoch)
    }
}

/// The query string of one image's parameters (canonical order).
///
/// # Errors
/// 422 naming a parameter that is neither a string, a number, a boolean
/// nor (for JSON-valued ones) an object.
pub fn query_of(params: &serde_json::Map<String, Value>) -> Result<String, Error> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let mut keys: Vec<&String> = params.keys().collect();
    keys.sort();
    for k in keys {
        if matches!(k.as_str(), "signature" | "v" | "bearer_token") {
            return Err(Error::invalid(k.as_str(), "is set by the server"));
        }
        let v = match &params[k] {
            Value::String(s) => s.clone(),
            // A whole number written 300.0 is 300, as in request bodies.
            Value::Number(n) => match n.as_f64() {
                Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => {
                    format!("{}", f as i64)
                }
                _ => n.to_string(),
            },
            Value::Bool(b) => b.to_string(),
            v @ Value::Object(_) => v.to_string(),
            _ => {
                return Err(Error::invalid(
                    k.as_str(),
                    "must be a string, number, boolean or object",
                ));
            }
        };
        q.append_pair(k, &v);
    }
    Ok(q.finish())
}

/// A public token's URL is in every shopper's browser, where anyone can
/// change it: unless validly signed, its sizes round to the ladder
/// (`crate::sizes`).
pub fn exactness(verdict: Verdict, asker: Asker) -> Exactness {
    match asker {
        Asker::Public if verdict != Verdict::Valid => Exactness::Rounded,
        _ => Exactness::Exact,
    }
}

/// The signature's verdict on an image URL's query.
///
/// # Errors
/// 403 when it is invalid, or absent where `signing.required`.
fn verify(app: &App, query: Option<&str>) -> Result<Verdict, Error> {
    match app.signer().verify(PATH, query) {
        Verdict::Invalid => Err(Error::Forbidden(
            "signature: does not match this URL (changed after signing, or signed with a key this server does not have)".into(),
        )),
        Verdict::Unsigned if app.settings().signing.required => Err(Error::Forbidden(
            "signature: this server serves signed image URLs only (see `layercake url` and POST /api/urls)".into(),
        )),
        v => Ok(v),
    }
}

/// The org a request acts for: the caller's; with no token, a signed URL
/// speaks for its asset's owner.
///
/// # Errors
/// 422 naming `assetId` for a signed URL without a known asset; 401 with
/// neither token nor signature.
fn acting_org(
    app: &App,
    verdict: Verdict,
    org: Option<Uuid>,
    params: &Params,
) -> Result<Uuid, Error> {
    match org {
        Some(org) => Ok(org),
        None if verdict == Verdict::Valid => params
            .str("assetId")
            .and_then(|a| Uuid::parse_str(a).ok())
            .and_then(|id| app.catalog().get(&id))
            .map(|a| a.org)
            .ok_or_else(|| {
                Error::invalid(
                    "assetId",
                    "a signed URL without a token must name its asset",
                )
            }),
        None => Err(Error::Unauthorized(
            "a token or a signed URL is needed: Authorization: Bearer <token>, bearer_token=<token>, or signature=".into(),
        )),
    }
}

/// The asset `q` names, looked up for `org`, and the request resolved
/// against it with this server's rules.
fn resolve_for(
    app: &App,
    org: Uuid,
    q: &ImageQuery,
    saved: Option<Saved>,
    exactness: Exactness,
    accept: Option<&str>,
) -> Result<ImageRequest, Error> {
    let asset = app
        .assets()
        .get(org, resolve::asset_id(q, saved.as_ref())?)?;
    let settings = app.settings();
    let rules = Rules {
        sizes: app.sizes(),
        max_dimension: settings.http.max_dimension,
        compose: &settings.compose,
        cache_buster: &settings.http.cache_buster,
    };
    resolve::resolve(q, asset, saved.as_ref(), &rules, exactness, accept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_are_canonical_and_refuse_server_parameters() {
        let params = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            query_of(&params(
                json!({"width": 5, "assetId": "a", "configuration": {"B": "x y"}, "x": true})
            )),
            Ok("assetId=a&configuration=%7B%22B%22%3A%22x+y%22%7D&width=5&x=true".into())
        );
        for k in ["signature", "v", "bearer_token"] {
            assert_eq!(
                query_of(&params(json!({ k: "1" }))),
                Err(Error::invalid(k, "is set by the server"))
            );
        }
        assert_eq!(
            query_of(&params(json!({"width": [1]}))),
            Err(Error::invalid(
                "width",
                "must be a string, number, boolean or object"
            ))
        );
    }

    #[test]
    fn pinned_urls_name_the_definition() {
        use crate::catalog::{Catalog, DEMO_ASSET_ID};
        let catalog = Catalog::demo().unwrap();
        let sofa = catalog
            .get(&Uuid::parse_str(DEMO_ASSET_ID).unwrap())
            .unwrap();
        let v = format!("{}.{}", sofa.version, sofa.epoch);
        assert_eq!(version_pin(sofa, ""), v);
        assert_eq!(version_pin(sofa, "b2"), format!("{v}.b2"));
        assert_eq!(
            pinned_url(&Signer::default(), sofa, "", "width=5"),
            format!("{PATH}?width=5&v={v}")
        );
        let signer = Signer::new(&["0123456789abcdef0123456789abcdef".to_string()]).unwrap();
        let url = pinned_url(&signer, sofa, "", "width=5");
        let query = url.split_once('?').map(|(_, q)| q);
        assert_eq!(signer.verify(PATH, query), Verdict::Valid);
    }

    #[test]
    fn only_a_public_tokens_unsigned_url_rounds() {
        use Asker::*;
        for asker in [Anonymous, Development, Private, Public] {
            let signed = exactness(Verdict::Valid, asker);
            let unsigned = exactness(Verdict::Unsigned, asker);
            assert_eq!(signed, Exactness::Exact, "{asker:?}");
            let want = if asker == Public {
                Exactness::Rounded
            } else {
                Exactness::Exact
            };
            assert_eq!(unsigned, want, "{asker:?}");
        }
    }
}

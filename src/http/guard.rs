//! What a request must look like before any route sees it: a body of a
//! type its route takes, and in development mode a loopback `Host` and
//! `Origin`.
//!
//! - **Bodies** must be `application/json` (or `…+json`). `multipart/form-data`
//!   is taken only by the two routes that document it (`POST /api/files`,
//!   `POST /api/configurations`), and `image/png` only by a remote
//!   worker's layer upload (`PUT /api/jobs/worker/runs/{runId}/result`).
//!   Anything else is 415, before the body is
//!   read. A browser can send `text/plain` across origins without asking
//!   (a "simple" request); JSON needs a CORS preflight, which this server
//!   never grants.
//! - **Development mode** (no token exists, every request acts for the
//!   default org) answers only requests whose `Host` is a loopback name or
//!   address (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`), so a
//!   DNS-rebinding page cannot reach it under a name of its own, and whose
//!   `Origin`, when sent, is loopback too, so no other site's page can post
//!   a form to it.

use super::error::ApiError;
use crate::app::App;
use crate::error::Error;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// Routes that take `multipart/form-data` besides JSON.
const MULTIPART: &[&str] = &["/api/files", "/api/configurations"];

pub async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    // Checked before the await: the body is not `Sync`, so no reference to
    // the request may live across it.
    let checked = check_body_type(&req).map(|()| Seen::of(&req));
    let checked = match checked {
        Ok(seen) => match app.tokens().development_mode().await {
            Ok(true) => seen.check_loopback(),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match checked {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError(e).into_response(),
    }
}

/// The request's `Host` and `Origin`, as sent.
struct Seen {
    host: Option<String>,
    origin: Option<String>,
}

impl Seen {
    fn of(req: &Request) -> Seen {
        let text = |name| {
            req.headers().get(name).map(|v: &axum::http::HeaderValue| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            })
        };
        Seen {
            host: text(header::HOST)
                .or_else(|| req.uri().authority().map(|a| a.as_str().to_string())),
            origin: text(header::ORIGIN),
        }
    }
}

fn has_body(req: &Request) -> bool {
    let body = req.body();
    !body.is_end_stream() && body.size_hint().exact() != Some(0)
}

fn check_body_type(req: &Request) -> Result<(), Error> {
    // Only the methods that take bodies here; any other (a TRACE, a GET
    // with a body) goes on to its route, or to 405.
    if !has_body(req) || !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return Ok(());
    }
    let declared = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    let path = req.uri().path().trim_end_matches('/');
    // A remote worker's layer upload (`http::worker`) is the PNG itself.
    let png_route = path.starts_with("/api/jobs/worker/runs/") && path.ends_with("/result");
    if png_route {
        if essence == "image/png" {
            return Ok(());
        }
        return Err(Error::UnsupportedMediaType(format!(
            "Content-Type: {} is not taken here; send image/png",
            if declared.is_empty() {
                "none"
            } else {
                declared
            }
        )));
    }
    let form_route = MULTIPART.contains(&path);
    // A form to a form route: POST is taken, any other method is left to
    // the router (405), not refused for its media type.
    let multipart = essence == "multipart/form-data" && form_route;
    if json || multipart {
        return Ok(());
    }
    let takes = if form_route {
        "application/json or multipart/form-data"
    } else {
        "application/json"
    };
    Err(Error::UnsupportedMediaType(if declared.is_empty() {
        format!("Content-Type: a body needs one, and this route takes {takes}")
    } else {
        format!("Content-Type: {declared} is not taken here; send {takes}")
    }))
}

/// Whether `host` (a `Host` value or an origin's host, port allowed) is a
/// loopback name or address.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1] or [::1]:8080
        match rest.split_once(']') {
            Some((inside, tail)) if tail.is_empty() || tail.starts_with(':') => inside,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Seen {
    fn check_loopback(&self) -> Result<(), Error> {
        match &self.host {
            Some(h) if is_loopback_host(h) => {}
            Some(h) => {
                return Err(Error::Forbidden(format!(
                    "Host: {h}: in development mode (no API token exists) this server answers only loopback host names (localhost, 127.0.0.1, [::1]); create a token with `layercake token create` to serve other names"
                )));
            }
            None => {
                return Err(Error::Forbidden(
                    "Host: missing; in development mode a loopback Host is required".into(),
                ));
            }
        }
        if let Some(origin) = &self.origin {
            let host = origin
                .split_once("://")
                .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
            if !is_loopback_host(host) {
                return Err(Error::Forbidden(format!(
                    "Origin: {origin}: in development mode only pages served from loopback may call this server"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "app.localhost:3000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1",
            "0.0.0.0:8080",
            "[::]",
            "[::1",
            "[::1]x",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    fn request(
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: &'static str,
    ) -> Request {
        let mut b = axum::http::Request::builder().method(method).uri(path);
        if let Some(c) = content_type {
            b = b.header(header::CONTENT_TYPE, c);
        }
        b.body(axum::body::Body::from(body)).unwrap()
    }

    #[test]
    fn bodies_must_be_json_or_documented_multipart() {
        let ok = |m, p, c, b| check_body_type(&request(m, p, c, b)).is_ok();
        assert!(ok(
            Method::POST,
            "/api/webhooks",
            Some("application/json"),
            "{}"
        ));
        assert!(ok(
            Method::POST,
            "/api/webhooks",
            Some("application/json; charset=utf-8"),
            "{}"
        ));
        assert!(ok(
            Method::PUT,
            "/api/assets/x",
            Some("application/merge-patch+json"),
            "{}"
        ));
        assert!(ok(
            Method::POST,
            "/api/files",
            Some("multipart/form-data; boundary=x"),
            "--x--"
        ));
        assert!(ok(
            Method::POST,
            "/api/configurations",
            Some("multipart/form-data; boundary=x"),
            "--x--"
        ));
        // No body, no type needed (cancel, restore).
        assert!(ok(Method::POST, "/api/jobs/x/cancel", None, ""));
        assert!(!ok(Method::POST, "/api/webhooks", Some("text/plain"), "{}"));
        assert!(!ok(Method::POST, "/api/webhooks", None, "{}"));
        assert!(!ok(
            Method::POST,
            "/api/webhooks",
            Some("application/x-www-form-urlencoded"),
            "a=b"
        ));
        assert!(!ok(
            Method::POST,
            "/api/webhooks",
            Some("multipart/form-data; boundary=x"),
            "--x--"
        ));
        // A form with a method no form route takes is the router's to
        // refuse (405), not a media-type error (was 415: schemathesis'
        // unsupported-method check expects 405).
        assert!(ok(
            Method::PUT,
            "/api/files",
            Some("multipart/form-data; boundary=x"),
            "--x--"
        ));
        assert!(ok(Method::TRACE, "/api/webhooks", Some("text/plain"), "x"));
        let e = check_body_type(&request(
            Method::POST,
            "/api/files",
            Some("text/plain"),
            "x",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("multipart/form-data"), "{e}");
    }
}

//! Where clients reach this service: the base of the absolute URLs in
//! answers (a layer's `url`).
//!
//! `http.public_url` when set; otherwise the request's `Host`, with
//! `X-Forwarded-Proto` and `X-Forwarded-Host` believed only when the
//! connection comes from one of `http.trusted_proxies` (anyone else could
//! point the links of an answer, and of every cache that keeps it, at a
//! host of their choosing), and then only their last value, the one the
//! proxy itself set.

use crate::config::{HttpSettings, parse_proxy};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The base URL (scheme, host, optional path prefix; no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBase(pub String);

impl PublicBase {
    /// `path` (starting with `/`) as an absolute URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl FromRequestParts<Arc<crate::app::App>> for PublicBase {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<crate::app::App>,
    ) -> Result<Self, Self::Rejection> {
        // Present only when trusted proxies are configured (`server`).
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            // An IPv4 peer of a dual-stack socket arrives as ::ffff:a.b.c.d.
            .map(|c| c.0.ip().to_canonical());
        Ok(base(&app.settings().http, &parts.headers, peer))
    }
}

/// The last value of a (possibly comma-separated, possibly repeated)
/// header: the one the nearest proxy added, whatever a client sent before.
fn last<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A host and optional port, nothing else (no path, user info or spaces).
fn valid_host(h: &str) -> bool {
    h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The base for a request with `headers` from `peer`.
pub fn base(settings: &HttpSettings, headers: &HeaderMap, peer: Option<IpAddr>) -> PublicBase {
    if !settings.public_url.is_empty() {
        return PublicBase(settings.public_url.trim_end_matches('/').to_string());
    }
    let trusted = peer.is_some_and(|ip| {
        settings
            .trusted_proxies
            .iter()
            .filter_map(|p| parse_proxy(p))
            .any(|net| net.contains(&ip))
    });
    let forwarded = |name| if trusted { last(headers, name) } else { None };
    let scheme = match forwarded("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = forwarded("x-forwarded-host")
        .filter(|h| valid_host(h))
        .or_else(|| last(headers, "host").filter(|h| valid_host(h)))
        .map_or_else(|| settings.listen.clone(), str::to_string);
    PublicBase(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(public_url: &str, proxies: &[&str]) -> HttpSettings {
        let mut s = crate::config::Settings::load_from(
            None,
            &crate::config::Overrides::default(),
            figment::providers::Env::prefixed("LAYERCAKE_TEST_NOTHING_"),
        )
        .unwrap()
        .http;
        s.public_url = public_url.into();
        s.trusted_proxies = proxies.iter().map(|p| p.to_string()).collect();
        s
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const PROXY: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)));
    const STRANGER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9)));

    #[test]
    fn the_configured_base_wins() {
        let h = headers(&[
            ("host", "evil.example"),
            ("x-forwarded-host", "evil.example"),
        ]);
        let s = settings("https://img.example.com/", &["10.0.0.0/8"]);
        assert_eq!(base(&s, &h, PROXY).0, "https://img.example.com");
        assert_eq!(
            base(&s, &h, PROXY).url("/api/files/x/content"),
            "https://img.example.com/api/files/x/content"
        );
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let h = headers(&[
            ("host", "10.1.2.3:8080"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "spoofed.example, shop.example"),
        ]);
        let s = settings("", &["10.0.0.0/8"]);
        // The last value is the trusted proxy's; earlier ones came from
        // whoever sent the request to it.
        assert_eq!(base(&s, &h, PROXY).0, "https://shop.example");
        assert_eq!(base(&s, &h, STRANGER).0, "http://10.1.2.3:8080");
        // No peer (a router test): not trusted either.
        assert_eq!(base(&s, &h, None).0, "http://10.1.2.3:8080");
        // A single address is a /32.
        let one = settings("", &["10.1.2.3"]);
        assert_eq!(base(&one, &h, PROXY).0, "https://shop.example");
        // The same proxy seen through a dual-stack socket.
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(
            base(&one, &h, Some(mapped.to_canonical())).0,
            "https://shop.example"
        );
    }

    #[test]
    fn hosts_that_are_not_hosts_are_not_echoed() {
        let s = settings("", &["10.0.0.0/8"]);
        let h = headers(&[
            ("host", "ok.example"),
            ("x-forwarded-host", "x.example/@evil"),
        ]);
        assert_eq!(base(&s, &h, PROXY).0, "http://ok.example");
        let h = headers(&[("host", "a b")]);
        assert_eq!(base(&s, &h, STRANGER).0, format!("http://{}", s.listen));
        // Only https upgrades the scheme; anything else is http.
        let h = headers(&[("host", "ok.example"), ("x-forwarded-proto", "gopher")]);
        assert_eq!(base(&s, &h, PROXY).0, "http://ok.example");
    }
}

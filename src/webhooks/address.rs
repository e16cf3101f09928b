//! Where a webhook may connect: public addresses only, unless configured.
//!
//! A webhook address is chosen by a customer, and the server connects to
//! it from inside its own network, so without a check it is a port scanner
//! for that network (loopback services, the cloud metadata service at
//! 169.254.169.254, private ranges). [`Policy`] refuses every address that
//! is not public ([`non_public`] names why):
//!
//! - when a webhook is saved: a literal address, or `localhost`;
//! - when it is delivered: every address its name resolves to. The client
//!   resolves through [`Guarded`], which hands the HTTP client only the
//!   addresses it checked, so the connection goes to a checked address
//!   and a name that answers a public address first and a private one
//!   second (DNS rebinding) gets nowhere. The client uses no proxy and
//!   follows no redirect (either would connect somewhere unchecked).
//!
//! `webhooks.allow_private_addresses` turns the check off;
//! `webhooks.private_hosts` exempts named hosts of your own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Why `ip` is not a public address, or `None` when it is one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => non_public_v4(a),
        IpAddr::V6(a) => non_public_v6(a),
    }
}

fn non_public_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [o0, o1, o2, _] = a.octets();
    Some(match (o0, o1, o2) {
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, b, _) if (16..32).contains(&b) => "private",
        (100, b, _) if (64..128).contains(&b) => "shared (carrier-grade NAT)",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "reserved",
        (192, 88, 99) => "reserved (6to4 relay)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "reserved (documentation)",
        (198, 18 | 19, _) => "reserved (benchmarking)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn non_public_v6(a: Ipv6Addr) -> Option<&'static str> {
    // Addresses that carry an IPv4 address are as public as it is.
    if let Some(v4) = a.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let s = a.segments();
    if a.is_unspecified() {
        return Some("unspecified");
    }
    if a.is_loopback() {
        return Some("loopback");
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // NAT64 (64:ff9b::/96)
        return non_public_v4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        // Local-use NAT64 (64:ff9b:1::/48): translates into the local network.
        return Some("private (local NAT64)");
    }
    if s[0..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        // IPv4-translated (::ffff:0:a.b.c.d, SIIT)
        return non_public_v4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
    }
    if s[0] == 0x2002 {
        // 6to4 (2002::/16)
        return non_public_v4(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    if s[0..6] == [0; 6] {
        // IPv4-compatible (::a.b.c.d, deprecated)
        return non_public_v4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
    }
    Some(match s[0] {
        x if x & 0xfe00 == 0xfc00 => "private (unique local)",
        x if x & 0xffc0 == 0xfe80 => "link-local",
        x if x & 0xffc0 == 0xfec0 => "private (site-local)",
        x if x & 0xff00 == 0xff00 => "multicast",
        0x2001 if s[1] == 0x0db8 => "reserved (documentation)",
        // Teredo (2001::/32) tunnels to an IPv4 address we cannot check.
        0x2001 if s[1] == 0 => "reserved (Teredo)",
        0x2001 if s[1] == 2 && s[2] == 0 => "reserved (benchmarking)",
        x if x & 0xfff0 == 0x3ff0 => "reserved (documentation)",
        0x0100 if s[1..4] == [0; 3] => "reserved (discard)",
        _ => return None,
    })
}

/// The address rules of this process (from `[webhooks]`).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub allow_private: bool,
    /// Lower-case host names exempt from the check.
    pub private_hosts: Vec<String>,
}

impl Policy {
    pub fn new(allow_private: bool, private_hosts: &[String]) -> Policy {
        Policy {
            allow_private,
            private_hosts: private_hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    fn exempt(&self, host: &str) -> bool {
        let bare = |h: &str| {
            h.trim_end_matches('.')
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        };
        self.allow_private || self.private_hosts.iter().any(|h| bare(h) == bare(host))
    }

    /// The check when a webhook is saved, and before each delivery: a
    /// literal address, or a loopback name, that is not public is refused.
    /// (Other names are checked when they are resolved.)
    ///
    /// # Errors
    /// Why the host may not be reached.
    pub fn check_host(&self, host: &url::Host<&str>) -> Result<(), String> {
        let (shown, ip) = match host {
            url::Host::Ipv4(a) => (a.to_string(), IpAddr::V4(*a)),
            url::Host::Ipv6(a) => (format!("[{a}]"), IpAddr::V6(*a)),
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if (d == "localhost" || d.ends_with(".localhost")) && !self.exempt(&d) {
                    return Err(format!("{d} is a loopback name; {}", Self::ADVICE));
                }
                return Ok(());
            }
        };
        match non_public(ip) {
            Some(why) if !self.exempt(&shown) => {
                Err(format!("{shown} is a {why} address; {}", Self::ADVICE))
            }
            _ => Ok(()),
        }
    }

    const ADVICE: &'static str = "webhooks reach only public addresses (an operator can allow others with webhooks.allow_private_addresses or webhooks.private_hosts)";

    /// The addresses `host` resolved to that may be connected to.
    ///
    /// # Errors
    /// When none may: every address and why it is refused.
    pub fn filter(
        &self,
        host: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, String> {
        let resolved: Vec<SocketAddr> = resolved.into_iter().collect();
        if self.exempt(host) {
            return Ok(resolved);
        }
        let (ok, refused): (Vec<_>, Vec<_>) =
            resolved.iter().partition(|a| non_public(a.ip()).is_none());
        if !ok.is_empty() && refused.is_empty() {
            return Ok(ok);
        }
        if resolved.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        // One non-public answer refuses the name: a name that mixes public
        // and private answers is a rebinding attempt or a misconfiguration.
        let why: Vec<String> = refused
            .iter()
            .map(|a| format!("{} ({})", a.ip(), non_public(a.ip()).unwrap_or("")))
            .collect();
        Err(format!(
            "{host} resolves to non-public addresses: {}; {}",
            why.join(", "),
            Self::ADVICE
        ))
    }
}

/// Refused by the policy: carried through the HTTP client's error chain.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refused(pub String);

/// The webhook client's name resolver: the system resolver, then [`Policy::filter`].
pub struct Guarded(pub Arc<Policy>);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.0);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let ok = policy
                .filter(&host, resolved)
                .map_err(|m| Box::new(Refused(m)) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classifies_every_non_public_range() {
        for (a, why) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "reserved"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.1", "reserved (documentation)"),
            ("198.18.0.1", "reserved (benchmarking)"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fc00::1", "private (unique local)"),
            ("fd12:3456::1", "private (unique local)"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a00:1", "private"),
            ("2002:c0a8:0101::1", "private"),
            ("::10.0.0.1", "private"),
            ("2001:db8::1", "reserved (documentation)"),
            ("64:ff9b:1::a9fe:a9fe", "private (local NAT64)"),
            ("::ffff:0:a9fe:a9fe", "link-local"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved (Teredo)"),
            ("2001:2::1", "reserved (benchmarking)"),
            ("3fff::1", "reserved (documentation)"),
            ("192.88.99.1", "reserved (6to4 relay)"),
        ] {
            assert_eq!(non_public(ip(a)), Some(why), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.0.1",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(non_public(ip(a)), None, "{a}");
        }
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| SocketAddr::new(ip(a), 443)).collect()
    }

    /// Name resolution stubbed: the addresses a name "resolved to".
    #[test]
    fn resolved_names_are_checked_on_every_address() {
        let p = Policy::default();
        assert_eq!(
            p.filter("hooks.example", addrs(&["93.184.216.34", "2606:2800::1"])),
            Ok(addrs(&["93.184.216.34", "2606:2800::1"]))
        );
        for private in [
            vec!["10.0.0.5"],
            vec!["169.254.169.254"],
            vec!["127.0.0.1"],
            vec!["::1"],
            vec!["fd00::1"],
            // Rebinding: one public answer does not launder a private one.
            vec!["93.184.216.34", "192.168.0.10"],
        ] {
            let e = p.filter("rebind.example", addrs(&private)).unwrap_err();
            assert!(e.contains("non-public"), "{e}");
            assert!(e.contains(private.last().unwrap()), "{e}");
        }
        assert!(p.filter("empty.example", Vec::new()).is_err());
        let allowed = Policy::new(true, &[]);
        assert!(allowed.filter("x", addrs(&["10.0.0.5"])).is_ok());
        let named = Policy::new(false, &["Hooks.Internal.".to_string()]);
        assert!(named.filter("hooks.internal", addrs(&["10.0.0.5"])).is_ok());
        assert!(
            named
                .filter("other.internal", addrs(&["10.0.0.5"]))
                .is_err()
        );
        let literal = Policy::new(false, &["fd00::1".to_string()]);
        let url = url::Url::parse("http://[fd00::1]/").unwrap();
        assert!(
            literal.check_host(&url.host().unwrap()).is_ok(),
            "brackets or not"
        );
    }

    #[test]
    fn literal_hosts_and_loopback_names_are_checked_when_saved() {
        let p = Policy::default();
        let check = |u: &str| {
            let url = url::Url::parse(u).unwrap();
            p.check_host(&url.host().unwrap())
        };
        for u in [
            "http://127.0.0.1:9/x",
            "http://127.1.2.3/",
            "http://[::1]:8080/",
            "http://localhost:3000/",
            "http://app.localhost/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.8/",
            "http://0.0.0.0/",
            "http://[::ffff:7f00:1]/",
            "http://2130706433/",
        ] {
            assert!(check(u).is_err(), "{u}");
        }
        for u in [
            "https://hooks.example/x",
            "http://93.184.216.34/",
            "https://[2606:4700::1111]/",
        ] {
            assert!(check(u).is_ok(), "{u}");
        }
        let allowed = Policy::new(true, &[]);
        let url = url::Url::parse("http://127.0.0.1:9/").unwrap();
        assert!(allowed.check_host(&url.host().unwrap()).is_ok());
    }
}

//! `control.bgp.health_url`: the `http://IPV4[:PORT]/PATH` URL of the local
//! application's health check, parsed once (validation and control use the
//! same parser). No host names: a health check must not wait for DNS.

use std::net::{Ipv4Addr, SocketAddrV4};

/// A parsed health-check URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthUrl {
    /// Where to connect.
    pub addr: SocketAddrV4,
    /// The request target (`/`, `/healthz?x=1`).
    pub path: String,
}

impl HealthUrl {
    /// Parses `http://IPV4[:PORT][/PATH]` (port 80 by default, path `/`).
    pub fn parse(url: &str) -> Result<HealthUrl, String> {
        let bad = |why: &str| {
            format!("must be http://IPV4[:PORT]/PATH, e.g. \"http://127.0.0.1:80/\" ({why}; got \"{url}\")")
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// is checked"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(bad("no spaces or control characters in the path"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(|| bad("the port must be 1..=65535"))?,
            ),
            None => (authority, 80),
        };
        let ip: Ipv4Addr = host
            .parse()
            .map_err(|_| bad("the host must be an IPv4 address, no name"))?;
        Ok(HealthUrl {
            addr: SocketAddrV4::new(ip, port),
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let u = HealthUrl::parse("http://127.0.0.1:8080/healthz?x=1").unwrap();
        assert_eq!(u.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(u.path, "/healthz?x=1");
        let u = HealthUrl::parse("http://198.18.0.11").unwrap();
        assert_eq!(u.addr, "198.18.0.11:80".parse().unwrap());
        assert_eq!(u.path, "/");
        for bad in [
            "https://127.0.0.1/",
            "http://localhost/",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1/a b",
            "127.0.0.1:80/",
        ] {
            assert!(HealthUrl::parse(bad).is_err(), "{bad}");
        }
    }
}

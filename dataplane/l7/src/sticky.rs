//! Session stickiness (`[services.dispatch.sticky]`, issue 15): the signed
//! cookie that names the member serving a session, the session id a URL
//! carries, and the `Set-Cookie` line the serving dataplane adds.
//!
//! The cookie's value is `<member>.<tag>`: `tag` is the first
//! [`TAG_BYTES`] bytes of HMAC-SHA256 under the cluster key of
//! `"shoal-sticky-v1\0" <service> "\0" <member>`, in lowercase hex. Only a
//! holder of the cluster key can make one, any member can check one, and it
//! carries no time: a cookie stays valid while its member is in the
//! cluster (its lifetime in the browser is `Max-Age`). A value that is a
//! member's plain name is honoured only where the service does not insert
//! cookies (the application sets them itself).
//!
//! Pure functions; the dataplane decides (`pipeline/sticky_path.rs`).

use crate::handoff::ClusterKey;
use crate::http::RequestHead;

/// Bytes of the HMAC kept in a cookie (96 bits: forging one takes 2^96
/// tries on average, each a request).
pub const TAG_BYTES: usize = 12;

/// What a request's sticky cookie says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie<'a> {
    /// No such cookie (or an empty one).
    Absent,
    /// A cookie the cluster signed, naming this member.
    Signed(&'a str),
    /// A member's plain name (set by the application).
    Plain(&'a str),
    /// A value that is neither: forged, corrupted or from another cluster
    /// or service.
    Forged,
}

fn signed_data(service: &str, member: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(16 + service.len() + 1 + member.len());
    data.extend_from_slice(b"shoal-sticky-v1\0");
    data.extend_from_slice(service.as_bytes());
    data.push(0);
    data.extend_from_slice(member.as_bytes());
    data
}

/// The cookie value naming `member` for service `service`.
pub fn token(key: &ClusterKey, service: &str, member: &str) -> String {
    let tag = key.sign(&signed_data(service, member));
    let mut value = String::with_capacity(member.len() + 1 + 2 * TAG_BYTES);
    value.push_str(member);
    value.push('.');
    for b in &tag[..TAG_BYTES] {
        value.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        value.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    value
}

/// Reads the cookie `name` of `head` for service `service`: signed (the
/// member it names), a plain member name when `plain_ok` and `is_member`
/// says so, absent, or forged.
pub fn read<'a>(
    key: &ClusterKey,
    service: &str,
    name: &str,
    head: &RequestHead<'a>,
    plain_ok: bool,
    is_member: impl Fn(&str) -> bool,
) -> Cookie<'a> {
    let Some(value) = head.cookie(name).filter(|v| !v.is_empty()) else {
        return Cookie::Absent;
    };
    let Ok(value) = core::str::from_utf8(value) else {
        return Cookie::Forged;
    };
    if let Some((member, tag)) = value.rsplit_once('.') {
        if tag.len() == 2 * TAG_BYTES && !member.is_empty() {
            let full = key.sign(&signed_data(service, member));
            if hex_eq(tag.as_bytes(), &full[..TAG_BYTES]) {
                return Cookie::Signed(member);
            }
        }
    }
    if plain_ok && is_member(value) {
        return Cookie::Plain(value);
    }
    Cookie::Forged
}

/// Whether lowercase hex `hex` spells `bytes` (every byte compared: the
/// time taken does not say where a forgery went wrong).
fn hex_eq(hex: &[u8], bytes: &[u8]) -> bool {
    if hex.len() != 2 * bytes.len() {
        return false;
    }
    let mut diff = 0u8;
    for (pair, b) in hex.chunks_exact(2).zip(bytes) {
        let digit = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => 0xFF,
        };
        let (hi, lo) = (digit(pair[0]), digit(pair[1]));
        diff |= (hi | lo) & 0xF0;
        diff |= ((hi << 4) | (lo & 15)) ^ b;
    }
    diff == 0
}

/// The `Set-Cookie` line (with its CRLF) that gives the client `value`.
pub fn set_cookie_line(name: &str, value: &str, max_age_s: u32) -> Vec<u8> {
    format!("Set-Cookie: {name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly\r\n").into_bytes()
}

/// The session id a request's path carries: the path parameter `param`
/// (`/cart;jsessionid=ID`, up to the next `;`, `?` or `/`) or the query key
/// `key` (`/cart?a=1&sid=ID`, up to the next `&`); empty ids are none.
pub fn session_id<'a>(path: &'a str, param: Option<&str>, key: Option<&str>) -> Option<&'a str> {
    let (before_query, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    if let Some(param) = param {
        for part in before_query.split(';').skip(1) {
            let part = part.split('/').next().unwrap_or("");
            if let Some(id) = part
                .strip_prefix(param)
                .and_then(|rest| rest.strip_prefix('='))
            {
                if !id.is_empty() {
                    return Some(id);
                }
            }
        }
    }
    if let (Some(key), Some(query)) = (key, query) {
        for pair in query.split('&') {
            if let Some(id) = pair
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('='))
            {
                if !id.is_empty() {
                    return Some(id);
                }
            }
        }
    }
    None
}

/// Where a line goes into a response that starts with `bytes`: just after
/// its status line, if `bytes` holds the whole status line of a final
/// (non-1xx) HTTP/1.x response; None otherwise.
pub fn insertion_point(bytes: &[u8]) -> Option<usize> {
    if !bytes.starts_with(b"HTTP/1.") || bytes.len() < 13 || bytes[9] == b'1' {
        return None;
    }
    let end = bytes.windows(2).position(|w| w == b"\r\n")?;
    Some(end + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::from_bytes(&[b; 32]).unwrap()
    }

    fn with_cookie(cookie: &str) -> Vec<u8> {
        format!("GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1; shoal_member={cookie}\r\n\r\n")
            .into_bytes()
    }

    fn read_value(k: &ClusterKey, service: &str, cookie: &str, plain_ok: bool) -> String {
        let raw = with_cookie(cookie);
        let head = parse_head(&raw).unwrap().unwrap();
        format!(
            "{:?}",
            read(k, service, "shoal_member", &head, plain_ok, |m| m == "srv2")
        )
    }

    #[test]
    fn a_signed_cookie_names_its_member_and_nothing_else_passes() {
        let k = key(7);
        let t = token(&k, "web", "srv2");
        assert!(t.starts_with("srv2.") && t.len() == 5 + 24, "{t}");
        assert_eq!(read_value(&k, "web", &t, false), "Signed(\"srv2\")");
        // Another key, another service, another member, a flipped digit, a
        // plain name where plain names are not honoured: forged.
        assert_eq!(read_value(&key(8), "web", &t, false), "Forged");
        assert_eq!(read_value(&k, "api", &t, false), "Forged");
        let other = t.replacen("srv2", "srv3", 1);
        assert_eq!(read_value(&k, "web", &other, false), "Forged");
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(read_value(&k, "web", &flipped, false), "Forged");
        let upper = t.to_ascii_uppercase().replacen("SRV2", "srv2", 1);
        assert_eq!(read_value(&k, "web", &upper, false), "Forged");
        assert_eq!(read_value(&k, "web", "srv2", false), "Forged");
        assert_eq!(read_value(&k, "web", "srv2", true), "Plain(\"srv2\")");
        assert_eq!(read_value(&k, "web", "srv9", true), "Forged");
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: other=1\r\n\r\n";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(
            read(&k, "web", "shoal_member", &head, true, |_| true),
            Cookie::Absent
        );
    }

    #[test]
    fn session_ids_from_path_parameters_and_query_keys() {
        let p = Some("jsessionid");
        let q = Some("sid");
        assert_eq!(session_id("/cart;jsessionid=AB12", p, q), Some("AB12"));
        assert_eq!(session_id("/a;jsessionid=AB12/b?x=1", p, q), Some("AB12"));
        assert_eq!(session_id("/a;x=1;jsessionid=C;y=2", p, q), Some("C"));
        assert_eq!(session_id("/cart?a=1&sid=77&b=2", p, q), Some("77"));
        assert_eq!(session_id("/cart?sid=", p, q), None);
        assert_eq!(session_id("/cart?sidx=1", p, q), None);
        assert_eq!(session_id("/cart;jsessionid=", p, q), None);
        assert_eq!(session_id("/cart?sid=1", p, None), None);
        assert_eq!(session_id("/cart", p, q), None);
    }

    #[test]
    fn the_cookie_goes_after_the_status_line_of_a_final_response() {
        assert_eq!(
            insertion_point(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"),
            Some(17)
        );
        assert_eq!(insertion_point(b"HTTP/1.1 100 Continue\r\n\r\n"), None);
        assert_eq!(insertion_point(b"HTTP/1.1 200 OK"), None);
        assert_eq!(insertion_point(b"HTTP/1."), None);
        assert_eq!(insertion_point(b"SSH-2.0-x\r\n"), None);
        assert_eq!(
            set_cookie_line("shoal_member", "srv1.ab", 60),
            b"Set-Cookie: shoal_member=srv1.ab; Path=/; Max-Age=60; HttpOnly\r\n".to_vec()
        );
    }
}

//! The client's HTTP/1.x request head as the splice inspector sees it
//! ([`parse_head`], [`RequestHead`], [`buffered_head`] over a
//! [`RequestBuffer`]).
//!
//! This module owns byte-level HTTP/1.x request knowledge only. It reads no
//! clock, does no I/O, knows nothing of flows, handoff or members (that is
//! `dispatch` and the splice state machine) and never allocates: parsing is
//! zero-copy over the buffered bytes (the `httparse` crate, with a fixed
//! header array on the stack).
//!
//! What the parser rejects, and the status each error answers with
//! ([`HttpError::status`], sent as [`crate::answers::error_response`]),
//! follows RFC 9112 and what nginx does with the same input: garbage 400, a
//! head over the buffer or over [`MAX_HEADERS`] headers 431, a
//! request-target over [`MAX_TARGET_LEN`] bytes 414, an HTTP/2 preface or
//! `CONNECT` 501; an HTTP/1.1 request without exactly one `Host`, a
//! conflicting `Content-Length` or a `Transfer-Encoding` that does not end
//! in `chunked` 400 (request-smuggling vectors a proxy must refuse).

use crate::reassembly::RequestBuffer;

/// Most header fields a request head may carry; more answer 431.
pub const MAX_HEADERS: usize = 100;

/// Longest request-target (bytes); longer answer 414 (nginx's default
/// `large_client_header_buffers` line limit is 8 KiB as well).
pub const MAX_TARGET_LEN: usize = 8192;

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113
/// §3.4), as far as it tells the request apart from HTTP/1.x.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// The client's request head parsed from the in-order prefix
/// ([`parse_head`]); `Ok(None)` while incomplete, and
/// [`HttpError::HeadersTooLarge`] once the prefix fills the capacity
/// without a complete head (the 431 case), or the FIN arrived first
/// ([`HttpError::Garbage`]: the request can never complete).
pub fn buffered_head(buf: &RequestBuffer) -> Result<Option<RequestHead<'_>>, HttpError> {
    match parse_head(buf.contiguous())? {
        Some(head) => Ok(Some(head)),
        None if buf.is_full() => Err(HttpError::HeadersTooLarge),
        None if buf.fin_received() => Err(HttpError::Garbage),
        None => Ok(None),
    }
}

/// Why a request head was refused; [`HttpError::status`] is the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum HttpError {
    /// Not an HTTP/1.x request: bad request line or header syntax.
    #[error("not an HTTP/1.0 or HTTP/1.1 request (bad request line or header syntax)")]
    Garbage,
    /// HTTP/1.x, but a request a proxy must refuse (RFC 9112).
    #[error("HTTP request refused: {0}")]
    Malformed(&'static str),
    /// The head does not fit the request buffer, or has over
    /// [`MAX_HEADERS`] header fields (431).
    #[error(
        "request head larger than dispatch.max_request_bytes or with more than {MAX_HEADERS} \
         header fields; raise max_request_bytes if such requests are legitimate"
    )]
    HeadersTooLarge,
    /// The request-target is over [`MAX_TARGET_LEN`] bytes (414).
    #[error("request-target longer than {MAX_TARGET_LEN} bytes")]
    UriTooLong,
    /// A protocol or method the splice path cannot hand over (501).
    #[error("unsupported request: {0}")]
    Unsupported(&'static str),
}

impl HttpError {
    /// The HTTP status the dataplane answers this error with (for
    /// [`error_response`](crate::answers::error_response)).
    pub fn status(self) -> u16 {
        match self {
            HttpError::Garbage | HttpError::Malformed(_) => 400,
            HttpError::HeadersTooLarge => 431,
            HttpError::UriTooLong => 414,
            HttpError::Unsupported(_) => 501,
        }
    }
}

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// A parsed request head: views into the buffered bytes, no copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// The method, e.g. `GET` (case-sensitive, as sent).
    pub method: &'a str,
    /// The raw request-target as sent (origin, absolute or asterisk form).
    pub target: &'a str,
    /// The path of the target without query string or fragment, not
    /// percent-decoded: `/a/b` for `/a/b?x=1` and for
    /// `http://example.com/a/b?x=1`; `/` for `http://example.com`; `*` for
    /// `OPTIONS *`.
    pub path: &'a str,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The host the request is for, without port: the authority of an
    /// absolute-form target, else the `Host` header (RFC 9112 §3.2.2); `None`
    /// when absent or empty (HTTP/1.0 only).
    pub host: Option<&'a str>,
    /// Length of the head (request line, header fields and the empty line):
    /// the body, if any, starts here.
    pub head_len: usize,
    /// Whether the client keeps the connection open after the response:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The `Content-Length` of the body, if sent.
    pub content_length: Option<u64>,
    /// True if the body is chunked (`Transfer-Encoding` ending in `chunked`).
    pub chunked: bool,
    /// The header section: the lines between the request line and the empty
    /// line (already validated by the parser).
    fields: &'a [u8],
}

impl<'a> RequestHead<'a> {
    /// The header fields in order, as (name, value) with the value trimmed
    /// of surrounding blanks.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.fields }
    }

    /// The value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of the first cookie called `name` (case-sensitive, RFC
    /// 6265) over every `Cookie` header, as sent (quotes included).
    pub fn cookie(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(|&b| b == b';'))
            .find_map(|pair| {
                let pair = trim(pair);
                let eq = pair.iter().position(|&b| b == b'=')?;
                (trim(&pair[..eq]) == name.as_bytes()).then(|| trim(&pair[eq + 1..]))
            })
    }
}

/// Iterator over the header fields of a [`RequestHead`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let Ok(name) = core::str::from_utf8(&line[..colon]) else {
                continue;
            };
            return Some((name, trim(&line[colon + 1..])));
        }
    }
}

/// Parses the request head at the start of `buf` (the in-order request
/// bytes): `Ok(None)` while the head is incomplete, the head once complete,
/// an [`HttpError`] as soon as the bytes cannot be a request this dataplane
/// hands over. Allocates nothing.
///
/// `buf` may hold more than the head (a body, a pipelined request); only the
/// head is looked at. A caller whose buffer is full without a complete head
/// answers [`HttpError::HeadersTooLarge`] ([`buffered_head`] does).
pub fn parse_head(buf: &[u8]) -> Result<Option<RequestHead<'_>>, HttpError> {
    if buf.starts_with(H2_PREFACE) {
        return Err(HttpError::Unsupported("HTTP/2 with prior knowledge"));
    }
    if H2_PREFACE.starts_with(buf) {
        // Possibly the start of the preface: wait for it to tell.
        return Ok(None);
    }
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // A request line this long cannot end within the target limit.
            let line_limit = MAX_TARGET_LEN + 64;
            if buf.len() > line_limit && !buf[..line_limit].contains(&b'\n') {
                return Err(HttpError::UriTooLong);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadersTooLarge),
        Err(_) => return Err(HttpError::Garbage),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::Garbage);
    };
    if target.len() > MAX_TARGET_LEN {
        return Err(HttpError::UriTooLong);
    }
    if method == "CONNECT" {
        return Err(HttpError::Unsupported("CONNECT (tunnels are not spliced)"));
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };

    let mut host_header = None;
    let mut hosts = 0;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host_header = Some(field.value);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in field.value.split(|&b| b == b',').map(trim) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(field.value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(HttpError::Malformed("conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only the last coding of the last header decides.
            chunked = field
                .value
                .rsplit(|&b| b == b',')
                .map(trim)
                .next()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        }
    }
    if transfer_encoding {
        if content_length.is_some() {
            return Err(HttpError::Malformed(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if !chunked {
            return Err(HttpError::Malformed(
                "Transfer-Encoding of a request must end in chunked",
            ));
        }
    }
    if hosts > 1 {
        return Err(HttpError::Malformed("more than one Host header"));
    }
    if version == Version::Http11 && hosts == 0 {
        return Err(HttpError::Malformed(
            "HTTP/1.1 request without a Host header",
        ));
    }

    let (authority, path) = split_target(target);
    // RFC 9112 §3.2: origin-form starts with "/", asterisk-form is "*" and
    // only for OPTIONS; anything else (e.g. "?a", "a/b") names no path and
    // would be hashed as one (a fuzzing finding).
    let origin_or_asterisk = path.starts_with('/') || (target == "*" && method == "OPTIONS");
    if authority.is_none() && !origin_or_asterisk {
        return Err(HttpError::Malformed(
            "request target is not in origin, absolute or asterisk form",
        ));
    }
    let host = match authority {
        Some(a) => Some(a),
        None => match host_header {
            Some(v) => Some(
                core::str::from_utf8(v)
                    .map_err(|_| HttpError::Malformed("Host header is not UTF-8"))?,
            ),
            None => None,
        },
    }
    .map(strip_port)
    .filter(|h| !h.is_empty());

    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    Ok(Some(RequestHead {
        method,
        target,
        path,
        version,
        host,
        head_len,
        keep_alive,
        content_length,
        chunked,
        fields: header_section(buf, head_len),
    }))
}

/// The bytes between the request line and the empty line ending the head
/// (leading empty lines, which the parser skips, are skipped here too).
fn header_section(buf: &[u8], head_len: usize) -> &[u8] {
    let head = &buf[..head_len];
    let mut at = 0;
    while at < head.len() && (head[at] == b'\r' || head[at] == b'\n') {
        at += 1;
    }
    let Some(line_end) = head[at..].iter().position(|&b| b == b'\n') else {
        return &[];
    };
    let from = at + line_end + 1;
    // The head ends in "\r\n\r\n" or "\n\n": drop the final empty line.
    let mut to = head.len();
    to -= usize::from(head[..to].ends_with(b"\n"));
    to -= usize::from(head[..to].ends_with(b"\r"));
    &head[from.min(to)..to]
}

/// Splits a request-target into (authority, path): `(Some("h:80"), "/p")`
/// for `http://h:80/p?q`, `(None, "/p")` for `/p?q`.
fn split_target(target: &str) -> (Option<&str>, &str) {
    let strip = |s: &'_ str| -> usize { s.find(['?', '#']).unwrap_or(s.len()) };
    let scheme_len = ["http://", "https://"].iter().find_map(|scheme| {
        target
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(str::len)
    });
    let Some(scheme_len) = scheme_len else {
        return (None, &target[..strip(target)]);
    };
    let rest = &target[scheme_len..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    // Userinfo ("user@host") is not part of the host.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let path = &rest[auth_end..];
    let path = &path[..strip(path)];
    (Some(authority), if path.is_empty() { "/" } else { path })
}

/// `host` without a trailing `:port` (`[v6]:port` keeps the brackets).
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

/// A `Content-Length` value: digits only (a list of equal values, which RFC
/// 9112 §6.3 allows a recipient to accept, is refused like nginx does).
fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    const BAD: HttpError = HttpError::Malformed("Content-Length is not a number");
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    Ok(value
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// `s` without leading and trailing spaces and tabs.
fn trim(s: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let from = s.iter().position(|b| !blank(b)).unwrap_or(s.len());
    let to = s.iter().rposition(|b| !blank(b)).map_or(from, |i| i + 1);
    &s[from..to]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reassembly::RequestBuffer;

    const GET: &[u8] = b"GET /img/logo.png?v=3#top HTTP/1.1\r\n\
        Host: Example.COM:8080\r\n\
        User-Agent: curl/8.5\r\n\
        Cookie: a=1; sid=abc123 ;theme=\"dark\"\r\n\
        cookie: late=yes\r\n\
        Accept:  */*  \r\n\
        \r\n";

    fn head(raw: &[u8]) -> RequestHead<'_> {
        parse_head(raw).expect("valid").expect("complete")
    }

    #[test]
    fn parses_an_origin_form_request() {
        let h = head(GET);
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/img/logo.png?v=3#top");
        assert_eq!(h.path, "/img/logo.png");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.host, Some("Example.COM"));
        assert_eq!(h.head_len, GET.len());
        assert!(h.keep_alive);
        assert_eq!(h.content_length, None);
        assert!(!h.chunked);
        assert_eq!(h.header("user-agent"), Some(&b"curl/8.5"[..]));
        assert_eq!(h.header("ACCEPT"), Some(&b"*/*"[..]));
        assert_eq!(h.header("x-missing"), None);
        assert_eq!(h.cookie("sid"), Some(&b"abc123"[..]));
        assert_eq!(h.cookie("theme"), Some(&b"\"dark\""[..]));
        assert_eq!(h.cookie("late"), Some(&b"yes"[..]));
        assert_eq!(h.cookie("SID"), None);
        assert_eq!(h.cookie("a"), Some(&b"1"[..]));
        let names: Vec<&str> = h.headers().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "User-Agent", "Cookie", "cookie", "Accept"]);
    }

    #[test]
    fn body_and_pipelined_bytes_after_the_head_are_not_parsed() {
        let raw = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /";
        let h = head(raw);
        assert_eq!(h.head_len, raw.len() - 10);
        assert_eq!(h.content_length, Some(5));
        assert_eq!(h.method, "POST");
    }

    /// Fuzzing finding (`fuzz/regressions/http_request/`): a target that is
    /// neither origin, absolute nor asterisk form was accepted with an
    /// empty path.
    #[test]
    fn targets_in_no_form_are_bad_requests() {
        for target in ["?a/b?x=1", "a/b", "*"] {
            let req = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            let got = parse_head(req.as_bytes());
            assert!(
                matches!(got, Err(HttpError::Malformed(_))),
                "{target}: {got:?}"
            );
        }
        let head = parse_head(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.path, "*");
    }

    #[test]
    fn absolute_form_target_names_the_host() {
        let h = head(b"GET http://user@Origin.test:81/a/b?q HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(h.host, Some("Origin.test"));
        assert_eq!(h.path, "/a/b");
        let h = head(b"GET HTTPS://v.test HTTP/1.1\r\nHost: v.test\r\n\r\n");
        assert_eq!((h.host, h.path), (Some("v.test"), "/"));
        let h = head(b"OPTIONS * HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n");
        assert_eq!((h.host, h.path), (Some("[2001:db8::1]"), "*"));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_tokens() {
        let ka = |raw: &[u8]| head(raw).keep_alive;
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
        ));
        let h = head(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!((h.version, h.host), (Version::Http10, None));
        assert_eq!(head(b"GET / HTTP/1.0\r\nHost:\r\n\r\n").host, None);
    }

    #[test]
    fn bare_lf_and_leading_empty_lines_are_tolerated() {
        let raw = b"\r\n\nGET /x HTTP/1.1\nHost: h\nX-A: 1\n\n";
        let h = head(raw);
        assert_eq!((h.path, h.host, h.head_len), ("/x", Some("h"), raw.len()));
        let all: Vec<(&str, &[u8])> = h.headers().collect();
        assert_eq!(all, [("Host", &b"h"[..]), ("X-A", &b"1"[..])]);
    }

    #[test]
    fn every_strict_prefix_of_a_head_is_incomplete() {
        for n in 0..GET.len() {
            assert_eq!(parse_head(&GET[..n]), Ok(None), "prefix of {n} bytes");
        }
    }

    #[test]
    fn chunked_and_content_length_rules() {
        let h = head(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
        assert!(h.chunked);
        let h =
            head(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(h.content_length, Some(7));
        let bad = [
            &b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ];
        for raw in bad {
            let err = parse_head(raw).expect_err("refused");
            assert!(matches!(err, HttpError::Malformed(_)), "{err:?}");
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn host_rules_of_http_1_1() {
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\n\r\n"),
            Err(HttpError::Malformed(
                "HTTP/1.1 request without a Host header"
            ))
        );
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HttpError::Malformed("more than one Host header"))
        );
    }

    #[test]
    fn garbage_is_400() {
        let tls_hello = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        for raw in [
            &tls_hello[..],
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
        ] {
            assert_eq!(parse_head(raw), Err(HttpError::Garbage), "{raw:?}");
        }
        assert_eq!(HttpError::Garbage.status(), 400);
    }

    #[test]
    fn http2_preface_and_connect_are_unsupported() {
        assert_eq!(parse_head(b"PRI * HTTP/2"), Ok(None));
        let err = parse_head(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").expect_err("h2");
        assert_eq!(err, HttpError::Unsupported("HTTP/2 with prior knowledge"));
        assert_eq!(err.status(), 501);
        let err = parse_head(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n");
        assert!(matches!(err, Err(HttpError::Unsupported(_))));
    }

    #[test]
    fn too_many_headers_is_431_and_a_long_target_414() {
        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&raw), Err(HttpError::HeadersTooLarge));

        let long = format!(
            "GET /{} HTTP/1.1\r\nHost: h\r\n\r\n",
            "a".repeat(MAX_TARGET_LEN)
        );
        assert_eq!(parse_head(long.as_bytes()), Err(HttpError::UriTooLong));
        // Also while the request line is still arriving.
        let partial = format!("GET /{}", "a".repeat(MAX_TARGET_LEN + 100));
        assert_eq!(parse_head(partial.as_bytes()), Err(HttpError::UriTooLong));
        assert_eq!(HttpError::UriTooLong.status(), 414);
        let fits = format!(
            "GET /{} HTTP/1.1\r\nHost: h\r\n\r\n",
            "a".repeat(MAX_TARGET_LEN - 1)
        );
        assert_eq!(head(fits.as_bytes()).target.len(), MAX_TARGET_LEN);
    }

    #[test]
    fn head_of_a_full_buffer_without_end_is_431() {
        let mut b = RequestBuffer::new(0, 24);
        b.insert(0, b"GET / HTTP/1.1\r\nHost: a");
        assert_eq!(buffered_head(&b), Ok(None));
        b.insert(23, b"b");
        assert!(b.is_full());
        assert_eq!(buffered_head(&b), Err(HttpError::HeadersTooLarge));
        assert_eq!(HttpError::HeadersTooLarge.status(), 431);
    }

    #[test]
    fn a_fin_before_a_complete_head_is_garbage() {
        let mut b = RequestBuffer::new(0, 32);
        assert_eq!(
            b.insert(0, b"GET / HT"),
            crate::reassembly::SegmentOutcome::Advanced
        );
        assert_eq!(buffered_head(&b), Ok(None));
        assert_eq!(b.fin(8), crate::reassembly::SegmentOutcome::Advanced);
        assert_eq!(buffered_head(&b), Err(HttpError::Garbage));
    }
}

//! The client's HTTP request as the splice inspector sees it: reassembly of
//! the request bytes from TCP segments ([`RequestBuffer`]), the parsed
//! request head ([`parse_head`], [`RequestHead`]) and the canned error
//! responses the dataplane answers bad requests with ([`error_response`]).
//!
//! This module owns byte-level HTTP/1.x knowledge only. It reads no clock,
//! does no I/O, knows nothing of flows, handoff or members (that is
//! `dispatch` and the splice state machine) and allocates only in
//! [`RequestBuffer::new`], once per connection, `capacity` bytes fixed by
//! `dispatch.max_request_bytes`. Parsing is zero-copy over the buffered
//! bytes (the `httparse` crate, with a fixed header array on the stack).
//!
//! What the parser rejects, and the status each error answers with
//! ([`HttpError::status`]), follows RFC 9112 and what nginx does with the
//! same input: garbage 400, a head over the buffer or over [`MAX_HEADERS`]
//! headers 431, a request-target over [`MAX_TARGET_LEN`] bytes 414, an
//! HTTP/2 preface or `CONNECT` 501; an HTTP/1.1 request without exactly one
//! `Host`, a conflicting `Content-Length` or a `Transfer-Encoding` that does
//! not end in `chunked` 400 (request-smuggling vectors a proxy must refuse).

use core::fmt;

/// Out-of-order segments a [`RequestBuffer`] keeps beyond its in-order
/// prefix; each one follows a hole. A segment that would make a fifth hole
/// is refused ([`Insert::TooManyHoles`]) and the client retransmits it.
pub const MAX_HOLES: usize = 4;

/// Largest buffer a [`RequestBuffer`] accepts (1 GiB): sequence offsets must
/// stay below 2^31 to be told apart from old data. `dispatch.max_request_bytes`
/// is validated far below this.
pub const MAX_CAPACITY: usize = 1 << 30;

/// Most header fields a request head may carry; more answer 431.
pub const MAX_HEADERS: usize = 100;

/// Longest request-target (bytes); longer answer 414 (nginx's default
/// `large_client_header_buffers` line limit is 8 KiB as well).
pub const MAX_TARGET_LEN: usize = 8192;

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113
/// §3.4), as far as it tells the request apart from HTTP/1.x.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

// ---------------------------------------------------------------------------
// Reassembly
// ---------------------------------------------------------------------------

/// What [`RequestBuffer::insert`] (or [`RequestBuffer::fin`]) did with a
/// segment. The caller counts each outcome; only [`Insert::Advanced`] moves
/// the [ack point](RequestBuffer::ack_point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Insert {
    /// New bytes extended the in-order prefix (possibly closing holes).
    Advanced,
    /// New bytes stored beyond a hole; the ack point did not move (the
    /// client should see a duplicate ACK).
    OutOfOrder,
    /// Nothing new: every byte was already held (a retransmission), lay
    /// before the first request byte, or the payload was empty.
    Duplicate,
    /// The segment overlaps stored bytes with different content, or carries
    /// data past the FIN: nothing was stored.
    Conflict,
    /// The segment would leave more than [`MAX_HOLES`] holes: nothing was
    /// stored (refused; the client retransmits it).
    TooManyHoles,
    /// Some bytes lie at or beyond the capacity and were not stored; the
    /// bytes within it were (subject to the other rules).
    TooLarge,
}

impl Insert {
    /// True for outcomes that stored nothing because the segment is bad or
    /// unacceptable ([`Conflict`](Insert::Conflict),
    /// [`TooManyHoles`](Insert::TooManyHoles)).
    pub fn is_refused(self) -> bool {
        matches!(self, Insert::Conflict | Insert::TooManyHoles)
    }
}

/// The client's request bytes, collected from TCP segments by sequence
/// number: in-order and out-of-order data (up to [`MAX_HOLES`] holes),
/// retransmissions and overlaps (which must agree with what is stored), and
/// optionally the client's FIN.
///
/// Offsets are taken relative to the first request byte (the client's
/// ISN + 1) with sequence-number wrap-around, so a buffer works across the
/// 2^32 boundary. The storage is allocated once, in [`RequestBuffer::new`].
#[derive(Clone)]
pub struct RequestBuffer {
    /// Sequence number of `data[0]`.
    start: u32,
    /// The storage, `capacity` bytes.
    data: Box<[u8]>,
    /// Length of the in-order prefix.
    contiguous: usize,
    /// Out-of-order ranges `[from, to)` as offsets: sorted, disjoint, not
    /// adjacent, all after `contiguous` (so each follows a hole).
    ranges: [(usize, usize); MAX_HOLES],
    /// Number of valid entries in `ranges`.
    n_ranges: usize,
    /// Offset of the client's FIN (one past its last data byte), if seen.
    fin: Option<usize>,
}

impl fmt::Debug for RequestBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuffer")
            .field("start", &self.start)
            .field("capacity", &self.data.len())
            .field("contiguous", &self.contiguous)
            .field("out_of_order", &&self.ranges[..self.n_ranges])
            .field("fin", &self.fin)
            .finish_non_exhaustive()
    }
}

impl RequestBuffer {
    /// A buffer whose first byte has sequence number `isn_next` (the
    /// client's ISN + 1) and which holds at most `capacity` bytes (clamped
    /// to [`MAX_CAPACITY`]). Allocates `capacity` bytes.
    pub fn new(isn_next: u32, capacity: usize) -> RequestBuffer {
        RequestBuffer {
            start: isn_next,
            data: vec![0u8; capacity.min(MAX_CAPACITY)].into_boxed_slice(),
            contiguous: 0,
            ranges: [(0, 0); MAX_HOLES],
            n_ranges: 0,
            fin: None,
        }
    }

    /// Most bytes the buffer holds.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Sequence number of the first buffered byte.
    pub fn start_seq(&self) -> u32 {
        self.start
    }

    /// The in-order prefix of the request: every byte from the first up to
    /// the first hole.
    pub fn contiguous(&self) -> &[u8] {
        &self.data[..self.contiguous]
    }

    /// True when the in-order prefix fills the whole capacity.
    pub fn is_full(&self) -> bool {
        self.contiguous == self.data.len()
    }

    /// Holes currently open (out-of-order ranges kept), at most [`MAX_HOLES`].
    pub fn holes(&self) -> usize {
        self.n_ranges
    }

    /// The next sequence number expected from the client, what the
    /// inspector acknowledges: one past the in-order prefix, plus one for
    /// the FIN once every byte before it has arrived.
    pub fn ack_point(&self) -> u32 {
        let fin = u32::from(self.fin_received());
        self.start
            .wrapping_add(self.contiguous as u32)
            .wrapping_add(fin)
    }

    /// True once the client's FIN has arrived and every byte before it too.
    pub fn fin_received(&self) -> bool {
        self.fin == Some(self.contiguous)
    }

    /// The client's request head parsed from the in-order prefix
    /// ([`parse_head`]); `Ok(None)` while incomplete, and
    /// [`HttpError::HeadersTooLarge`] once the prefix fills the capacity
    /// without a complete head (the 431 case), or the FIN arrived first
    /// ([`HttpError::Garbage`]: the request can never complete).
    pub fn head(&self) -> Result<Option<RequestHead<'_>>, HttpError> {
        match parse_head(self.contiguous())? {
            Some(head) => Ok(Some(head)),
            None if self.is_full() => Err(HttpError::HeadersTooLarge),
            None if self.fin_received() => Err(HttpError::Garbage),
            None => Ok(None),
        }
    }

    /// Stores the payload of a segment with sequence number `seq`.
    ///
    /// Bytes before the first request byte are ignored; bytes already held
    /// must match (else [`Insert::Conflict`], nothing stored); bytes at or
    /// beyond the capacity are dropped ([`Insert::TooLarge`], the rest is
    /// stored); a segment that would leave more than [`MAX_HOLES`] holes is
    /// refused. Never allocates.
    pub fn insert(&mut self, seq: u32, payload: &[u8]) -> Insert {
        let Some((off, payload)) = self.clip_front(seq, payload) else {
            return Insert::Duplicate;
        };
        let end = off + payload.len();
        if self.fin.is_some_and(|fin| end > fin) {
            return Insert::Conflict;
        }
        let cap = self.data.len();
        if off >= cap {
            return Insert::TooLarge;
        }
        let truncated = end > cap;
        let end = end.min(cap);
        let payload = &payload[..end - off];
        if !self.agrees(off, payload) {
            return Insert::Conflict;
        }

        let outcome = if off <= self.contiguous {
            if end > self.contiguous {
                let from = self.contiguous;
                self.data[from..end].copy_from_slice(&payload[from - off..]);
                self.contiguous = end;
                self.absorb_ranges();
                Insert::Advanced
            } else {
                Insert::Duplicate
            }
        } else {
            match self.merged_ranges(off, end) {
                None => return Insert::TooManyHoles,
                Some((ranges, n)) => {
                    let covered = self.ranges[..self.n_ranges]
                        .iter()
                        .any(|&(a, b)| a <= off && end <= b);
                    self.data[off..end].copy_from_slice(payload);
                    self.ranges = ranges;
                    self.n_ranges = n;
                    if covered {
                        Insert::Duplicate
                    } else {
                        Insert::OutOfOrder
                    }
                }
            }
        };
        if truncated {
            Insert::TooLarge
        } else {
            outcome
        }
    }

    /// Records the client's FIN, whose sequence number is `seq` (the
    /// segment's sequence number plus its payload length). Returns
    /// [`Insert::Advanced`] when the FIN is in order (the ack point moves
    /// past it), [`Insert::OutOfOrder`] when bytes before it are missing,
    /// [`Insert::Duplicate`] for a repeated FIN, [`Insert::Conflict`] for a
    /// FIN before bytes already received or at another place than a
    /// previous one, and [`Insert::TooLarge`] for a FIN beyond the capacity.
    pub fn fin(&mut self, seq: u32) -> Insert {
        let off = seq_offset(seq, self.start);
        let Ok(off) = usize::try_from(off) else {
            return Insert::Conflict;
        };
        if let Some(fin) = self.fin {
            return if fin == off {
                Insert::Duplicate
            } else {
                Insert::Conflict
            };
        }
        if off > self.data.len() {
            return Insert::TooLarge;
        }
        let highest = self.ranges[..self.n_ranges]
            .last()
            .map_or(self.contiguous, |&(_, to)| to);
        if off < highest {
            return Insert::Conflict;
        }
        self.fin = Some(off);
        if off == self.contiguous {
            Insert::Advanced
        } else {
            Insert::OutOfOrder
        }
    }

    /// Forgets the first `n` in-order bytes (a request handed over on a
    /// persistent connection) so that the buffer collects the next request
    /// from sequence number `start_seq() + n`. `n` is clamped to the in-order
    /// prefix. Out-of-order bytes and the FIN keep their sequence numbers.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.contiguous);
        let high = self.ranges[..self.n_ranges]
            .last()
            .map_or(self.contiguous, |&(_, to)| to);
        self.data.copy_within(n..high, 0);
        self.start = self.start.wrapping_add(n as u32);
        self.contiguous -= n;
        for r in &mut self.ranges[..self.n_ranges] {
            *r = (r.0 - n, r.1 - n);
        }
        self.fin = self.fin.map(|f| f - n);
    }

    /// The payload's offset and the part of it at or after the first
    /// request byte; `None` when nothing is left.
    fn clip_front<'p>(&self, seq: u32, payload: &'p [u8]) -> Option<(usize, &'p [u8])> {
        let off = i64::from(seq_offset(seq, self.start));
        let skip = usize::try_from(-off).unwrap_or(0);
        let payload = payload.get(skip..).filter(|p| !p.is_empty())?;
        Some((usize::try_from(off).unwrap_or(0), payload))
    }

    /// True if `payload` at `off` matches every byte already stored there.
    fn agrees(&self, off: usize, payload: &[u8]) -> bool {
        let end = off + payload.len();
        let held = core::iter::once((0, self.contiguous))
            .chain(self.ranges[..self.n_ranges].iter().copied());
        held.into_iter().all(|(a, b)| {
            let (from, to) = (a.max(off), b.min(end));
            from >= to || self.data[from..to] == payload[from - off..to - off]
        })
    }

    /// Moves out-of-order ranges the in-order prefix reached into it.
    fn absorb_ranges(&mut self) {
        let mut kept = 0;
        for i in 0..self.n_ranges {
            let (a, b) = self.ranges[i];
            if a <= self.contiguous {
                self.contiguous = self.contiguous.max(b);
            } else {
                self.ranges[kept] = (a, b);
                kept += 1;
            }
        }
        self.n_ranges = kept;
    }

    /// The out-of-order ranges with `[from, to)` (beyond the in-order
    /// prefix) merged in, or `None` if they would exceed [`MAX_HOLES`].
    fn merged_ranges(
        &self,
        from: usize,
        to: usize,
    ) -> Option<([(usize, usize); MAX_HOLES], usize)> {
        let mut out = [(0, 0); MAX_HOLES];
        let mut n = 0;
        let mut new = Some((from, to));
        let mut push = |r: (usize, usize), out: &mut [(usize, usize); MAX_HOLES]| -> bool {
            if n > 0 && r.0 <= out[n - 1].1 {
                out[n - 1].1 = out[n - 1].1.max(r.1);
                return true;
            }
            if n == MAX_HOLES {
                return false;
            }
            out[n] = r;
            n += 1;
            true
        };
        for &r in &self.ranges[..self.n_ranges] {
            if let Some(nr) = new.filter(|nr| nr.0 <= r.0) {
                if !push(nr, &mut out) {
                    return None;
                }
                new = None;
            }
            if !push(r, &mut out) {
                return None;
            }
        }
        if let Some(nr) = new {
            if !push(nr, &mut out) {
                return None;
            }
        }
        Some((out, n))
    }
}

/// The signed distance from sequence number `start` to `seq` (RFC 9293
/// modular comparison: negative means before `start`).
#[allow(clippy::cast_possible_wrap)] // The wrap is the point (`cast_signed` needs Rust 1.87).
fn seq_offset(seq: u32, start: u32) -> i32 {
    seq.wrapping_sub(start) as i32
}

// ---------------------------------------------------------------------------
// Request head
// ---------------------------------------------------------------------------

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
    /// [`error_response`]).
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
/// answers [`HttpError::HeadersTooLarge`] ([`RequestBuffer::head`] does).
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

// ---------------------------------------------------------------------------
// Error responses
// ---------------------------------------------------------------------------

/// The complete response the dataplane sends for `status` when a bad
/// request's configured outcome is `respond`: an HTTP/1.1 status line,
/// `Content-Type`, an exact `Content-Length`, `Connection: close` and a
/// one-line text body. Known statuses: 400, 408, 414, 431, 501, 503; any
/// other gets the 500 response.
pub fn error_response(status: u16) -> &'static [u8] {
    match status {
        400 => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n",
        408 => b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nRequest Timeout\n",
        414 => b"HTTP/1.1 414 URI Too Long\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nURI Too Long\n",
        431 => b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\nRequest Header Fields Too Large\n",
        501 => b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\nContent-Length: 16\r\nConnection: close\r\n\r\nNot Implemented\n",
        503 => b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\nRetry-After: 1\r\n\r\nService Unavailable\n",
        _ => b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\nInternal Server Error\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    // --- reassembly -------------------------------------------------------

    #[test]
    fn in_order_segments_advance_the_ack_point() {
        let mut b = RequestBuffer::new(1000, 64);
        assert_eq!(b.ack_point(), 1000);
        assert_eq!(b.insert(1000, b"GET / "), Insert::Advanced);
        assert_eq!(b.insert(1006, b"HTTP/1.0\r\n"), Insert::Advanced);
        assert_eq!(b.contiguous(), b"GET / HTTP/1.0\r\n");
        assert_eq!(b.ack_point(), 1016);
        assert_eq!(b.holes(), 0);
        assert!(!b.is_full());
    }

    #[test]
    fn out_of_order_bytes_wait_for_the_hole_to_fill() {
        let mut b = RequestBuffer::new(0, 64);
        assert_eq!(b.insert(6, b"ghi"), Insert::OutOfOrder);
        assert_eq!(b.insert(12, b"mno"), Insert::OutOfOrder);
        assert_eq!(b.holes(), 2);
        assert_eq!(b.contiguous(), b"");
        assert_eq!(b.ack_point(), 0);
        // Fills the first hole: the prefix reaches the end of "ghi".
        assert_eq!(b.insert(0, b"abcdef"), Insert::Advanced);
        assert_eq!(b.contiguous(), b"abcdefghi");
        assert_eq!(b.holes(), 1);
        // Bridges the second hole.
        assert_eq!(b.insert(9, b"jkl"), Insert::Advanced);
        assert_eq!(b.contiguous(), b"abcdefghijklmno");
        assert_eq!(b.ack_point(), 15);
        assert_eq!(b.holes(), 0);
    }

    #[test]
    fn retransmissions_and_agreeing_overlaps_are_accepted() {
        let mut b = RequestBuffer::new(0, 64);
        assert_eq!(b.insert(0, b"abcd"), Insert::Advanced);
        assert_eq!(b.insert(0, b"abcd"), Insert::Duplicate);
        assert_eq!(b.insert(2, b"cd"), Insert::Duplicate);
        assert_eq!(b.insert(2, b"cdef"), Insert::Advanced);
        assert_eq!(b.insert(10, b"kl"), Insert::OutOfOrder);
        assert_eq!(b.insert(10, b"kl"), Insert::Duplicate);
        assert_eq!(b.insert(9, b"jklm"), Insert::OutOfOrder);
        assert_eq!(b.insert(0, b""), Insert::Duplicate);
        assert_eq!(b.insert(6, b"ghi"), Insert::Advanced);
        assert_eq!(b.contiguous(), b"abcdefghijklm");
    }

    #[test]
    fn disagreeing_overlaps_are_refused_whole() {
        let mut b = RequestBuffer::new(0, 64);
        b.insert(0, b"abcd");
        b.insert(8, b"ijkl");
        assert_eq!(b.insert(2, b"XXef"), Insert::Conflict);
        assert_eq!(b.insert(6, b"ghiX"), Insert::Conflict);
        assert!(Insert::Conflict.is_refused());
        // Nothing of the refused segments was stored.
        assert_eq!(b.contiguous(), b"abcd");
        assert_eq!(b.insert(4, b"efgh"), Insert::Advanced);
        assert_eq!(b.contiguous(), b"abcdefghijkl");
    }

    #[test]
    fn a_fifth_hole_is_refused_but_merging_segments_are_not() {
        let mut b = RequestBuffer::new(0, 64);
        for i in 0..4u32 {
            assert_eq!(b.insert(10 * (i + 1), b"xx"), Insert::OutOfOrder);
        }
        assert_eq!(b.holes(), MAX_HOLES);
        assert_eq!(b.insert(50, b"xx"), Insert::TooManyHoles);
        assert_eq!(b.insert(5, b"x"), Insert::TooManyHoles);
        assert!(Insert::TooManyHoles.is_refused());
        // Extending or joining kept ranges needs no new hole.
        assert_eq!(b.insert(12, b"xxxxxxxx"), Insert::OutOfOrder);
        assert_eq!(b.holes(), 3);
        assert_eq!(b.insert(42, b"yy"), Insert::OutOfOrder);
        assert_eq!(b.holes(), 3);
        assert_eq!(b.insert(0, &[b'z'; 10]), Insert::Advanced);
        assert_eq!(b.contiguous().len(), 22);
        assert_eq!(b.holes(), 2);
    }

    #[test]
    fn bytes_beyond_the_capacity_are_dropped() {
        let mut b = RequestBuffer::new(500, 8);
        assert_eq!(b.insert(508, b"x"), Insert::TooLarge);
        assert_eq!(b.insert(506, b"ghij"), Insert::TooLarge);
        assert_eq!(b.holes(), 1);
        assert_eq!(b.insert(500, b"abcdef"), Insert::Advanced);
        assert_eq!(b.contiguous(), b"abcdefgh");
        assert!(b.is_full());
        assert_eq!(b.ack_point(), 508);
        assert_eq!(b.insert(504, b"efghij"), Insert::TooLarge);
        assert_eq!(b.contiguous(), b"abcdefgh");
    }

    #[test]
    fn bytes_before_the_first_request_byte_are_ignored() {
        let mut b = RequestBuffer::new(100, 16);
        assert_eq!(b.insert(90, b"0123456789"), Insert::Duplicate);
        assert_eq!(b.insert(97, b"XYZabc"), Insert::Advanced);
        assert_eq!(b.contiguous(), b"abc");
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut b = RequestBuffer::new(u32::MAX - 2, 16);
        assert_eq!(b.insert(1, b"efg"), Insert::OutOfOrder);
        assert_eq!(b.insert(u32::MAX - 2, b"abcd"), Insert::Advanced);
        assert_eq!(b.contiguous(), b"abcdefg");
        assert_eq!(b.ack_point(), 4);
    }

    #[test]
    fn fin_is_acknowledged_once_every_byte_before_it_arrived() {
        let mut b = RequestBuffer::new(0, 32);
        assert_eq!(b.insert(4, b"efgh"), Insert::OutOfOrder);
        assert_eq!(b.fin(6), Insert::Conflict, "FIN before received bytes");
        assert_eq!(b.fin(40), Insert::TooLarge);
        assert_eq!(b.fin(8), Insert::OutOfOrder);
        assert!(!b.fin_received());
        assert_eq!(b.fin(8), Insert::Duplicate);
        assert_eq!(b.fin(9), Insert::Conflict);
        assert_eq!(b.insert(6, b"ghZ"), Insert::Conflict, "data past the FIN");
        assert_eq!(b.insert(0, b"abcd"), Insert::Advanced);
        assert!(b.fin_received());
        assert_eq!(b.ack_point(), 9);
        assert_eq!(b.head(), Err(HttpError::Garbage));
    }

    #[test]
    fn consume_keeps_the_rest_at_its_sequence_numbers() {
        let mut b = RequestBuffer::new(10, 64);
        b.insert(10, b"GET /a HTTP/1.1\r\n\r\nGET /b");
        assert_eq!(b.insert(48, b"tail"), Insert::OutOfOrder);
        b.consume(19);
        assert_eq!(b.start_seq(), 29);
        assert_eq!(b.contiguous(), b"GET /b");
        assert_eq!(b.ack_point(), 35);
        assert_eq!(b.insert(35, b" HTTP/1.1\r\n\r\n"), Insert::Advanced);
        assert_eq!(b.insert(48, b"tail"), Insert::Duplicate);
        assert_eq!(b.contiguous(), b"GET /b HTTP/1.1\r\n\r\ntail");
        assert_eq!(b.ack_point(), 52);
    }

    #[test]
    fn head_of_a_full_buffer_without_end_is_431() {
        let mut b = RequestBuffer::new(0, 24);
        b.insert(0, b"GET / HTTP/1.1\r\nHost: a");
        assert_eq!(b.head(), Ok(None));
        b.insert(23, b"b");
        assert!(b.is_full());
        assert_eq!(b.head(), Err(HttpError::HeadersTooLarge));
        assert_eq!(HttpError::HeadersTooLarge.status(), 431);
    }

    // --- parsing ------------------------------------------------------------

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

    // --- responses ------------------------------------------------------------

    #[test]
    fn error_responses_are_complete_and_close() {
        assert_eq!(
            error_response(400),
            &b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\
               Connection: close\r\n\r\nBad Request\n"[..]
        );
        for (status, reason) in [
            (400, "Bad Request"),
            (408, "Request Timeout"),
            (414, "URI Too Long"),
            (431, "Request Header Fields Too Large"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (999, "Internal Server Error"),
        ] {
            let bytes = error_response(status);
            let mut fields = [httparse::EMPTY_HEADER; 8];
            let mut resp = httparse::Response::new(&mut fields);
            let Ok(httparse::Status::Complete(n)) = resp.parse(bytes) else {
                panic!("{status}: not a complete response");
            };
            assert_eq!(resp.version, Some(1));
            assert_eq!(resp.code, Some(if status == 999 { 500 } else { status }));
            assert_eq!(resp.reason, Some(reason));
            let field = |name: &str| {
                resp.headers
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(name))
                    .map(|f| f.value)
            };
            assert_eq!(field("connection"), Some(&b"close"[..]));
            let body = &bytes[n..];
            assert_eq!(body, format!("{reason}\n").as_bytes());
            assert_eq!(
                field("content-length"),
                Some(body.len().to_string().as_bytes())
            );
        }
    }
}

//! HTTP/1.1 message boundaries on a spliced connection: where each response
//! the local kernel sends ends ([`ResponseFramer`]), and where a chunked
//! body ends ([`ChunkedDecoder`], also usable on its own for a request body).
//!
//! On the serving member the dataplane sees every byte the kernel (nginx
//! behind it) sends to the client, in kernel sequence order. To move the
//! next request of a keep-alive connection to another server (partial
//! hand-off, DTCP: `docs/references.md`), it must know when the response to
//! every request released so far is complete: the stream is then at a
//! message boundary ([`ResponseState::Idle`]). When boundaries can no longer
//! be followed (a close-delimited body, an upgrade, `Connection: close`,
//! bytes nobody asked for, a malformed head or chunk), the framer says so
//! for good ([`ResponseState::Unframed`]) and the connection stays where it
//! is.
//!
//! This module owns byte-level HTTP/1.1 message-length knowledge (RFC 9112
//! §6.3) only. It reads no clock, does no I/O, knows nothing of sequence
//! numbers, flows or members (the caller feeds in-order payload and tells
//! [`ResponseFramer::expect`] when it released a request), and allocates
//! only in [`ResponseFramer::new`]: the head buffer, `max_head` bytes, once
//! per connection. Bodies are counted, never buffered.
//!
//! Memory per connection: `size_of::<ResponseFramer>()` (112 bytes on
//! x86-64, the [`MAX_PENDING`]-deep queue of expectations included) plus
//! `max_head` bytes of heap.
//!
//! Line ends: a bare LF is accepted wherever CRLF ends a line (status line,
//! header fields, chunk-size lines, after chunk data, trailer fields and
//! the empty lines ending a head or the trailers), as RFC 9112 §2.2 permits
//! and as nginx does; a CR not followed by LF is refused
//! ([`Unframed::BadHead`] in a head, [`BadChunk`] in a chunked body). Empty
//! lines before a status line are skipped (they count towards `max_head`).

use crate::http::MAX_HEADERS;

/// Most requests a [`ResponseFramer`] tracks at once (released to the
/// kernel, response not yet complete); [`ResponseFramer::expect`] refuses
/// one more.
pub const MAX_PENDING: usize = 32;

/// What kind of response the next released request expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expect {
    /// Any request but `HEAD` and `CONNECT`: the response is framed by its
    /// own headers.
    Normal,
    /// A `HEAD` request: the final response has no body whatever its headers
    /// say (RFC 9112 §6.3 rule 1).
    Head,
    /// A `CONNECT` request: a 2xx final response turns the connection into a
    /// tunnel ([`Unframed::Upgrade`]); any other is framed as usual.
    Connect,
}

/// Where the response stream stands ([`ResponseFramer::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseState {
    /// Every expected response is complete; the stream is at a message
    /// boundary (the connection may move).
    Idle,
    /// Some expected response is not complete yet.
    InProgress,
    /// Boundaries can no longer be followed on this connection (for good):
    /// the reason.
    Unframed(Unframed),
}

/// Why a [`ResponseFramer`] stopped following message boundaries. Each is
/// final: the framer ignores every byte after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Unframed {
    /// A response with neither `Content-Length` nor a chunked
    /// `Transfer-Encoding` (and not bodiless): its body ends with the
    /// connection.
    #[error("close-delimited response body (no Content-Length, not chunked)")]
    CloseDelimited,
    /// `101 Switching Protocols`, or a 2xx answer to `CONNECT`: the bytes
    /// after the head are another protocol.
    #[error("connection upgraded (101, or 2xx to CONNECT)")]
    Upgrade,
    /// A complete response with `Connection: close`, or HTTP/1.0 without
    /// `Connection: keep-alive` (or with a `Transfer-Encoding`, RFC 9112
    /// §6.1): the server closes the connection after it.
    #[error("server closes the connection after the response (Connection: close or HTTP/1.0)")]
    ConnectionClose,
    /// Response bytes while no response was expected.
    #[error("response bytes while no request was pending")]
    Unsolicited,
    /// A response head that does not parse, a status below 100, a
    /// `Content-Length` that is not digits (or two that differ), or both
    /// `Content-Length` and `Transfer-Encoding`.
    #[error("malformed response head or ambiguous framing")]
    BadHead,
    /// A response head longer than `max_head` bytes, or with more than
    /// [`MAX_HEADERS`] header fields.
    #[error("response head longer than the head buffer or with too many header fields")]
    HeadTooLong,
    /// A malformed chunked body ([`BadChunk`]).
    #[error("malformed chunked response body")]
    BadChunk,
}

/// A chunked body that does not follow RFC 9112 §7.1: a chunk size that is
/// not hex or overflows 64 bits, a missing line end after a chunk's data,
/// a CR not followed by LF, or bytes after the chunk size other than blanks,
/// `;` extensions and the line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("malformed chunked body (bad chunk size, overflow, or missing line end)")]
pub struct BadChunk;

/// Where a [`ChunkedDecoder`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// At the start of a chunk-size line: a hex digit must come.
    SizeStart,
    /// In the hex digits of a chunk size (the value so far).
    Size(u64),
    /// After the digits: blanks, then `;` or the line end.
    SizeBlank(u64),
    /// In chunk extensions, skipped up to the line end.
    Ext(u64),
    /// A CR ended the chunk-size line: LF must follow.
    SizeLf(u64),
    /// In chunk data: bytes left.
    Data(u64),
    /// After chunk data: CRLF or LF must follow.
    DataEnd,
    /// A CR followed chunk data: LF must follow.
    DataLf,
    /// At the start of a trailer field line or of the final empty line.
    TrailerStart,
    /// In a trailer field line, skipped up to its end.
    TrailerLine,
    /// A CR in a trailer field line: LF must follow.
    TrailerLineLf,
    /// A CR started the final empty line: LF must follow.
    TrailerEndLf,
    /// The body ended.
    Done,
    /// The body was malformed.
    Failed,
}

/// A streaming decoder of chunked transfer coding (RFC 9112 §7.1) that only
/// finds where the body ends: chunk data is skipped, extensions and trailer
/// fields are skipped up to their line ends, nothing is buffered or
/// allocated. Sizes are hex, up to `u64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: Chunk,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body (the byte after the head).
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: Chunk::SizeStart,
        }
    }

    /// True once the body ended (the empty line after the last chunk and
    /// its trailers was fed).
    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Feeds the next in-order body bytes. `Ok(Some(n))` when the body ended
    /// within `bytes`: `n` is the offset just past the final line end of the
    /// trailers (`bytes[n..]` is not part of the body); `Ok(Some(0))` for any
    /// feed after the end. `Ok(None)` when every byte belongs to the body and
    /// more is needed. `Err(BadChunk)` when the body is malformed, and for
    /// every feed after that.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, BadChunk> {
        match self.state {
            Chunk::Done => return Ok(Some(0)),
            Chunk::Failed => return Err(BadChunk),
            _ => {}
        }
        let mut at = 0;
        while at < bytes.len() {
            if let Chunk::Data(left) = self.state {
                let take = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - at);
                at += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                };
                continue;
            }
            let b = bytes[at];
            at += 1;
            let Ok(next) = self.step(b) else {
                self.state = Chunk::Failed;
                return Err(BadChunk);
            };
            self.state = next;
            if self.state == Chunk::Done {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    /// The state after byte `b` (every state but `Data`, which
    /// [`ChunkedDecoder::feed`] skips in bulk, and the final `Done` and
    /// `Failed`, which it never steps from).
    fn step(&self, b: u8) -> Result<Chunk, BadChunk> {
        let end_of_size_line = |size: u64| {
            if size == 0 {
                Chunk::TrailerStart
            } else {
                Chunk::Data(size)
            }
        };
        Ok(match self.state {
            Chunk::SizeStart => Chunk::Size(u64::from(hex_digit(b).ok_or(BadChunk)?)),
            Chunk::Size(size) => match hex_digit(b) {
                Some(d) => {
                    if size > u64::MAX >> 4 {
                        return Err(BadChunk);
                    }
                    Chunk::Size(size << 4 | u64::from(d))
                }
                None => return size_line_rest(size, b),
            },
            Chunk::SizeBlank(size) => size_line_rest(size, b)?,
            Chunk::Ext(size) => match b {
                b'\r' => Chunk::SizeLf(size),
                b'\n' => end_of_size_line(size),
                _ => Chunk::Ext(size),
            },
            Chunk::SizeLf(size) if b == b'\n' => end_of_size_line(size),
            Chunk::DataEnd => match b {
                b'\r' => Chunk::DataLf,
                b'\n' => Chunk::SizeStart,
                _ => return Err(BadChunk),
            },
            Chunk::DataLf if b == b'\n' => Chunk::SizeStart,
            Chunk::TrailerStart => match b {
                b'\r' => Chunk::TrailerEndLf,
                b'\n' => Chunk::Done,
                _ => Chunk::TrailerLine,
            },
            Chunk::TrailerLine => match b {
                b'\r' => Chunk::TrailerLineLf,
                b'\n' => Chunk::TrailerStart,
                _ => Chunk::TrailerLine,
            },
            Chunk::TrailerLineLf if b == b'\n' => Chunk::TrailerStart,
            Chunk::TrailerEndLf if b == b'\n' => Chunk::Done,
            Chunk::SizeLf(_)
            | Chunk::DataLf
            | Chunk::TrailerLineLf
            | Chunk::TrailerEndLf
            | Chunk::Data(_)
            | Chunk::Done
            | Chunk::Failed => return Err(BadChunk),
        })
    }
}

/// The rest of a chunk-size line after the digits: blanks (RFC 9112's BWS
/// before `;`), a `;` starting extensions, or the line end.
fn size_line_rest(size: u64, b: u8) -> Result<Chunk, BadChunk> {
    match b {
        b' ' | b'\t' => Ok(Chunk::SizeBlank(size)),
        b';' => Ok(Chunk::Ext(size)),
        b'\r' => Ok(Chunk::SizeLf(size)),
        b'\n' if size == 0 => Ok(Chunk::TrailerStart),
        b'\n' => Ok(Chunk::Data(size)),
        _ => Err(BadChunk),
    }
}

/// The value of a hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Where the current response stands between heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Reading a response head (final or interim).
    Head,
    /// In a `Content-Length` body: bytes left (never 0).
    Length(u64),
    /// In a chunked body.
    Chunked(ChunkedDecoder),
}

/// Finds the empty line that ends a head, across feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct HeadScan {
    /// A non-empty line (the status line) has been seen.
    started: bool,
    /// The current line has a byte other than its line end.
    content: bool,
    /// The previous byte was a CR.
    cr: bool,
}

impl HeadScan {
    /// Scans `bytes`: the offset just past the empty line ending the head,
    /// if it is in `bytes`. A CR not followed by LF counts as content (the
    /// parser then refuses it).
    fn find_end(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'\n' => {
                    if !self.content && self.started {
                        *self = HeadScan::default();
                        return Some(i + 1);
                    }
                    self.started |= self.content;
                    self.content = false;
                    self.cr = false;
                }
                b'\r' => {
                    self.content |= self.cr;
                    self.cr = true;
                }
                _ => {
                    self.content = true;
                    self.cr = false;
                }
            }
        }
        None
    }
}

/// How the body of a parsed response head is delimited, by its header
/// fields alone (status and request method are applied afterwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    /// `Transfer-Encoding` whose last coding is `chunked`.
    Chunked,
    /// `Content-Length`.
    Counted(u64),
    /// Neither: the body ends with the connection.
    Close,
}

/// What a response head says about framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ResponseHead {
    status: u16,
    length: Length,
    /// The server closes the connection after this response.
    close: bool,
}

/// Parses a complete response head (`buf` ends with its empty line).
fn parse_response_head(buf: &[u8]) -> Result<ResponseHead, Unframed> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n == buf.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Unframed::HeadTooLong),
        _ => return Err(Unframed::BadHead),
    }
    let (Some(minor), Some(status)) = (resp.version, resp.code) else {
        return Err(Unframed::BadHead);
    };
    if status < 100 {
        return Err(Unframed::BadHead);
    }
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    for field in resp.headers.iter() {
        let name = field.name;
        let value = trim(field.value);
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(value).ok_or(Unframed::BadHead)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(Unframed::BadHead);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // Only the last coding of the last field decides.
            chunked = value
                .rsplit(|&b| b == b',')
                .map(trim)
                .next()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let length = match (transfer_encoding, content_length) {
        // RFC 9112 §6.3 rule 3 lets Transfer-Encoding win; a client may
        // decide otherwise, so the boundary is not certain.
        (true, Some(_)) => return Err(Unframed::BadHead),
        (true, None) if chunked => Length::Chunked,
        (false, Some(n)) => Length::Counted(n),
        // Rule 4 (a last coding other than chunked) and rule 8 (no
        // length): the body ends with the connection.
        (_, None) => Length::Close,
    };
    let http10 = minor == 0;
    Ok(ResponseHead {
        status,
        length,
        close: close || (http10 && (!keep_alive || transfer_encoding)),
    })
}

/// A `Content-Length` value: digits only, at most 19 of them (a list of
/// equal values, which RFC 9112 §6.3 allows a recipient to accept, is
/// refused like nginx and [`crate::http`] do).
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

/// `s` without leading and trailing spaces and tabs.
fn trim(s: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let from = s.iter().position(|b| !blank(b)).unwrap_or(s.len());
    let to = s.iter().rposition(|b| !blank(b)).map_or(from, |i| i + 1);
    &s[from..to]
}

/// Follows the responses the kernel sends on one connection, byte by byte
/// in sequence order, and tells when every expected response is complete
/// (RFC 9112 §6.3).
///
/// The caller calls [`expect`](ResponseFramer::expect) each time it
/// releases a request to the kernel, and [`feed`](ResponseFramer::feed)
/// with the kernel's payload in order (each byte once). Interim 1xx
/// responses do not complete a request; `HEAD`, 204, 304 and 1xx have no
/// body; otherwise a chunked `Transfer-Encoding`, then `Content-Length`,
/// delimit the body, and anything else is close-delimited.
#[derive(Debug, Clone)]
pub struct ResponseFramer {
    /// The head being received, when it spans feeds; capacity `max_head`,
    /// allocated once.
    head: Vec<u8>,
    /// Longest head buffered across feeds.
    max_head: usize,
    /// Finds the end of the head being received.
    scan: HeadScan,
    /// Where the current response stands.
    body: Body,
    /// The server closes the connection after the current response.
    close_after: bool,
    /// Expected responses, oldest at `first`.
    queue: [Expect; MAX_PENDING],
    /// Index of the oldest expectation in `queue`.
    first: usize,
    /// Number of expectations in `queue`.
    pending: usize,
    /// Responses completed so far.
    completed: u64,
    /// Why boundaries are no longer followed, once they are not.
    unframed: Option<Unframed>,
}

impl ResponseFramer {
    /// A framer for a new connection, nothing expected yet. `max_head` is
    /// the most bytes of one response head (interim or final) it buffers
    /// across feeds (e.g. 8 KiB); a longer head is
    /// [`Unframed::HeadTooLong`]. Allocates those bytes, once.
    pub fn new(max_head: usize) -> ResponseFramer {
        ResponseFramer {
            head: Vec::with_capacity(max_head),
            max_head,
            scan: HeadScan::default(),
            body: Body::Head,
            close_after: false,
            queue: [Expect::Normal; MAX_PENDING],
            first: 0,
            pending: 0,
            completed: 0,
            unframed: None,
        }
    }

    /// Records that a request was released to the kernel: its response is
    /// expected after those of the requests released before it. `false`,
    /// and nothing recorded, if [`MAX_PENDING`] responses are already
    /// pending (the caller holds the request back). Still counts once
    /// unframed.
    pub fn expect(&mut self, e: Expect) -> bool {
        if self.pending == MAX_PENDING {
            return false;
        }
        self.queue[(self.first + self.pending) % MAX_PENDING] = e;
        self.pending += 1;
        true
    }

    /// Feeds the next in-order response bytes; returns how many responses
    /// completed within them. Bytes while nothing is pending make the
    /// framer [`Unframed::Unsolicited`]; once unframed, bytes are ignored
    /// (returns 0). Never panics, allocates nothing.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut done = 0;
        let mut at = 0;
        while at < bytes.len() && self.unframed.is_none() {
            if self.pending == 0 {
                self.unframed = Some(Unframed::Unsolicited);
                break;
            }
            let rest = &bytes[at..];
            match self.body {
                Body::Head => {
                    let (used, complete) = self.feed_head(rest);
                    at += used;
                    if complete {
                        self.complete();
                        done += 1;
                    }
                }
                Body::Length(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    at += take;
                    let left = left - take as u64;
                    if left == 0 {
                        self.complete();
                        done += 1;
                    } else {
                        self.body = Body::Length(left);
                    }
                }
                Body::Chunked(mut decoder) => match decoder.feed(rest) {
                    Ok(Some(n)) => {
                        at += n;
                        self.complete();
                        done += 1;
                    }
                    Ok(None) => {
                        at = bytes.len();
                        self.body = Body::Chunked(decoder);
                    }
                    Err(BadChunk) => self.unframed = Some(Unframed::BadChunk),
                },
            }
        }
        done
    }

    /// Where the response stream stands.
    pub fn state(&self) -> ResponseState {
        match self.unframed {
            Some(why) => ResponseState::Unframed(why),
            None if self.pending == 0 => ResponseState::Idle,
            None => ResponseState::InProgress,
        }
    }

    /// Expected responses not complete yet (those still pending when the
    /// framer became unframed stay counted).
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Responses completed so far on this connection.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Feeds `rest` to the head being received: how many bytes belong to
    /// it, and whether they completed a bodiless response. When the head
    /// ends, applies it ([`Self::apply`]).
    fn feed_head(&mut self, rest: &[u8]) -> (usize, bool) {
        let end = self.scan.find_end(rest);
        let used = end.unwrap_or(rest.len());
        if self.head.len() + used > self.max_head {
            self.unframed = Some(Unframed::HeadTooLong);
            return (used, false);
        }
        let Some(end) = end else {
            self.head.extend_from_slice(rest);
            return (used, false);
        };
        let parsed = if self.head.is_empty() {
            parse_response_head(&rest[..end])
        } else {
            self.head.extend_from_slice(&rest[..end]);
            parse_response_head(&self.head)
        };
        self.head.clear();
        match parsed {
            Ok(head) => (end, self.apply(head)),
            Err(why) => {
                self.unframed = Some(why);
                (end, false)
            }
        }
    }

    /// Applies a complete response head to the oldest expectation: sets
    /// the body to follow, or `unframed`; true if the response is complete
    /// already (no body).
    fn apply(&mut self, head: ResponseHead) -> bool {
        let expect = self.queue[self.first];
        match head.status {
            101 => {
                self.unframed = Some(Unframed::Upgrade);
                return false;
            }
            // Interim: the final response is still to come.
            100..=199 => return false,
            200..=299 if expect == Expect::Connect => {
                self.unframed = Some(Unframed::Upgrade);
                return false;
            }
            _ => {}
        }
        self.close_after = head.close;
        if expect == Expect::Head || head.status == 204 || head.status == 304 {
            return true;
        }
        match head.length {
            Length::Chunked => self.body = Body::Chunked(ChunkedDecoder::new()),
            Length::Counted(0) => return true,
            Length::Counted(n) => self.body = Body::Length(n),
            Length::Close => self.unframed = Some(Unframed::CloseDelimited),
        }
        false
    }

    /// The oldest expected response is complete: the next head starts.
    fn complete(&mut self) {
        self.body = Body::Head;
        self.first = (self.first + 1) % MAX_PENDING;
        self.pending -= 1;
        self.completed += 1;
        if self.close_after {
            self.unframed = Some(Unframed::ConnectionClose);
        }
        self.close_after = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OK_CL0: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    fn framer(expects: &[Expect]) -> ResponseFramer {
        let mut f = ResponseFramer::new(8192);
        for &e in expects {
            assert!(f.expect(e));
        }
        f
    }

    #[test]
    fn content_length_zero_completes_at_the_empty_line() {
        let mut f = framer(&[Expect::Normal]);
        assert_eq!(f.state(), ResponseState::InProgress);
        assert_eq!(f.feed(&OK_CL0[..OK_CL0.len() - 1]), 0);
        assert_eq!(f.state(), ResponseState::InProgress);
        assert_eq!(f.feed(&OK_CL0[OK_CL0.len() - 1..]), 1);
        assert_eq!(f.state(), ResponseState::Idle);
        assert_eq!((f.pending(), f.completed()), (0, 1));
    }

    #[test]
    fn content_length_body_is_counted_to_the_byte() {
        let mut f = framer(&[Expect::Normal]);
        assert_eq!(
            f.feed(b"HTTP/1.1 200 OK\r\ncontent-LENGTH:  11 \r\n\r\nhello"),
            0
        );
        assert_eq!(f.feed(b" worl"), 0);
        assert_eq!(f.state(), ResponseState::InProgress);
        assert_eq!(f.feed(b"d"), 1);
        assert_eq!(f.state(), ResponseState::Idle);
        assert_eq!(f.completed(), 1);
        // Equal duplicates are one length.
        let mut f = framer(&[Expect::Normal]);
        assert_eq!(
            f.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"),
            1
        );
        assert_eq!(f.state(), ResponseState::Idle);
    }

    #[test]
    fn head_response_has_no_body_whatever_its_content_length() {
        let mut f = framer(&[Expect::Head, Expect::Normal]);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
        assert_eq!(f.feed(head), 1);
        assert_eq!(
            (f.state(), f.pending(), f.completed()),
            (ResponseState::InProgress, 1, 1)
        );
        // Also chunked: no body either.
        let mut f = framer(&[Expect::Head]);
        assert_eq!(
            f.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            1
        );
        assert_eq!(f.state(), ResponseState::Idle);
        // Nor without any length.
        let mut f = framer(&[Expect::Head]);
        assert_eq!(f.feed(b"HTTP/1.1 404 Not Found\r\n\r\n"), 1);
        assert_eq!(f.state(), ResponseState::Idle);
    }

    #[test]
    fn status_204_and_304_have_no_body() {
        let mut f = framer(&[Expect::Normal, Expect::Normal, Expect::Normal]);
        let raw = b"HTTP/1.1 204 No Content\r\n\r\n\
            HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"x\"\r\n\r\n\
            HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(f.feed(raw), 3);
        assert_eq!((f.state(), f.completed()), (ResponseState::Idle, 3));
    }

    #[test]
    fn interim_100_and_103_do_not_complete_the_request() {
        let mut f = framer(&[Expect::Normal]);
        assert_eq!(f.feed(b"HTTP/1.1 100 Continue\r\n\r\n"), 0);
        assert_eq!((f.state(), f.pending()), (ResponseState::InProgress, 1));
        assert_eq!(
            f.feed(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nContent-Length: 5\r\n\r\n"),
            0
        );
        assert_eq!((f.state(), f.completed()), (ResponseState::InProgress, 0));
        assert_eq!(
            f.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
            1
        );
        assert_eq!((f.state(), f.completed()), (ResponseState::Idle, 1));
    }

    #[test]
    fn switching_protocols_and_connect_2xx_are_upgrades() {
        let mut f = framer(&[Expect::Normal, Expect::Normal]);
        assert_eq!(
            f.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello"),
            0
        );
        assert_eq!(f.state(), ResponseState::Unframed(Unframed::Upgrade));
        assert_eq!((f.pending(), f.completed()), (2, 0));

        let mut f = framer(&[Expect::Connect]);
        assert_eq!(f.feed(b"HTTP/1.1 200 Connection Established\r\n\r\n"), 0);
        assert_eq!(f.state(), ResponseState::Unframed(Unframed::Upgrade));

        // A refused CONNECT is an ordinary response.
        let mut f = framer(&[Expect::Connect]);
        assert_eq!(
            f.feed(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno"),
            1
        );
        assert_eq!((f.state(), f.completed()), (ResponseState::Idle, 1));
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
            5;name=value;q=\"a;b\"\r\nhello\r\n\
            A \t;x\r\n0123456789\r\n\
            0;last\r\nExpires: never\r\nX-Sum: 1\r\n\r\n";
        let mut f = framer(&[Expect::Normal, Expect::Normal]);
        assert_eq!(f.feed(raw), 1);
        assert_eq!((f.state(), f.completed()), (ResponseState::InProgress, 1));
        // The byte after the trailers starts the next response.
        assert_eq!(f.feed(OK_CL0), 1);
        assert_eq!((f.state(), f.completed()), (ResponseState::Idle, 2));
        // Fed byte by byte: the same single completion, at the last byte.
        let mut f = framer(&[Expect::Normal]);
        for (i, b) in raw.iter().enumerate() {
            let want = usize::from(i == raw.len() - 1);
            assert_eq!(f.feed(core::slice::from_ref(b)), want, "byte {i}");
        }
        assert_eq!(f.state(), ResponseState::Idle);
    }

    #[test]
    fn chunk_size_overflow_is_bad_chunk() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        // 16 hex digits fit in 64 bits (leading zeros too), 17 do not.
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"0000ffffffffffffffff\r\nab"), Ok(None));
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"10000000000000000\r\n"), Err(BadChunk));
        let mut f = framer(&[Expect::Normal]);
        assert_eq!(f.feed(head), 0);
        assert_eq!(f.feed(b"1ffffffffffffffff\r\n"), 0);
        assert_eq!(f.state(), ResponseState::Unframed(Unframed::BadChunk));
        assert_eq!((f.pending(), f.completed()), (1, 0));
    }

    #[test]
    fn malformed_chunks_are_bad_chunk() {
        for raw in [
            &b"\r\n"[..],
            b"x\r\n",
            b"5\r\nhelloX",
            b"5\r\nhello\rX",
            b"5\rX",
            b"5 x\r\n",
            b"0\r\nTrailer: a\rb\r\n\r\n",
            b"0\r\n\rX",
            b"-1\r\n",
        ] {
            let mut d = ChunkedDecoder::new();
            assert_eq!(d.feed(raw), Err(BadChunk), "{raw:?}");
            assert_eq!(d.feed(b"0\r\n\r\n"), Err(BadChunk), "sticky after {raw:?}");
            assert!(!d.is_done());
        }
    }

    #[test]
    fn chunked_decoder_on_a_request_body() {
        let body = b"4\r\nWiki\r\n6;ext\r\npedia \r\n0\r\n\r\nGET /next HTTP/1.1\r\n";
        let end = body.len() - b"GET /next HTTP/1.1\r\n".len();
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(body), Ok(Some(end)));
        assert!(d.is_done());
        assert_eq!(d.feed(b"more"), Ok(Some(0)));
        // Split anywhere: the end is found in the piece that holds it.
        for cut in 0..=end {
            let mut d = ChunkedDecoder::new();
            let first = d.feed(&body[..cut]);
            if cut == end {
                assert_eq!(first, Ok(Some(end)));
            } else {
                assert_eq!(first, Ok(None), "cut {cut}");
                assert_eq!(d.feed(&body[cut..]), Ok(Some(end - cut)), "cut {cut}");
            }
        }
        // Bare LF line ends, as nginx accepts them.
        let mut d = ChunkedDecoder::new();
        assert_eq!(d.feed(b"3\nabc\n0\nT: v\n\nX"), Ok(Some(14)));
    }

    #[test]
    fn pipelined_responses_in_one_feed() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc\
            HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n\
            HTTP/1.1 304 Not Modified\r\n\r\n";
        let mut f = framer(&[
            Expect::Normal,
            Expect::Normal,
            Expect::Head,
            Expect::Normal,
            Expect::Normal,
        ]);
        assert_eq!(f.feed(raw), 4);
        assert_eq!(
            (f.state(), f.pending(), f.completed()),
            (ResponseState::InProgress, 1, 4)
        );
        assert_eq!(f.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!"), 1);
        assert_eq!(
            (f.state(), f.pending(), f.completed()),
            (ResponseState::Idle, 0, 5)
        );
    }

    #[test]
    fn head_split_byte_by_byte() {
        let raw = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 2\r\n\r\nok";
        let mut f = framer(&[Expect::Normal]);
        let mut total = 0;
        for (i, b) in raw.iter().enumerate() {
            total += f.feed(core::slice::from_ref(b));
            let want = if i == raw.len() - 1 {
                ResponseState::Idle
            } else {
                ResponseState::InProgress
            };
            assert_eq!(f.state(), want, "after byte {i}");
        }
        assert_eq!((total, f.completed()), (1, 1));
    }

    #[test]
    fn connection_close_completes_then_unframes() {
        let mut f = framer(&[Expect::Normal, Expect::Normal]);
        let raw =
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(f.feed(&raw[..raw.len() - 1]), 0);
        assert_eq!(f.state(), ResponseState::InProgress);
        // The response completes (and the bytes after it are ignored).
        assert_eq!(f.feed(b"k"), 1);
        assert_eq!(
            f.state(),
            ResponseState::Unframed(Unframed::ConnectionClose)
        );
        assert_eq!((f.pending(), f.completed()), (1, 1));
        assert_eq!(f.feed(OK_CL0), 0);
        assert_eq!(f.completed(), 1);
    }

    #[test]
    fn http_1_0_needs_keep_alive() {
        let mut f = framer(&[Expect::Normal, Expect::Normal]);
        assert_eq!(f.feed(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"), 1);
        assert_eq!(
            f.state(),
            ResponseState::Unframed(Unframed::ConnectionClose)
        );

        let mut f = framer(&[Expect::Normal, Expect::Normal]);
        assert_eq!(
            f.feed(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx"),
            1
        );
        assert_eq!(f.state(), ResponseState::InProgress);
        assert_eq!(
            f.feed(b"HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n"),
            1
        );
        assert_eq!(f.state(), ResponseState::Idle);

        // Transfer-Encoding in HTTP/1.0 is faulty framing: close after it.
        let mut f = framer(&[Expect::Normal, Expect::Normal]);
        assert_eq!(
            f.feed(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            1
        );
        assert_eq!(
            f.state(),
            ResponseState::Unframed(Unframed::ConnectionClose)
        );

        // Without a length: close-delimited, known at the head.
        let mut f = framer(&[Expect::Normal]);
        assert_eq!(f.feed(b"HTTP/1.0 200 OK\r\n\r\nbody"), 0);
        assert_eq!(f.state(), ResponseState::Unframed(Unframed::CloseDelimited));
    }

    #[test]
    fn no_length_is_close_delimited() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            let mut f = framer(&[Expect::Normal]);
            assert_eq!(f.feed(raw), 0, "{raw:?}");
            assert_eq!(
                f.state(),
                ResponseState::Unframed(Unframed::CloseDelimited),
                "{raw:?}"
            );
            assert_eq!((f.pending(), f.completed()), (1, 0));
        }
    }

    #[test]
    fn bad_heads_are_refused() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 3a\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 200 OK\rX: y\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: y\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: y\r\n folded\r\n\r\n",
            b"\r\r\nHTTP/1.1 200 OK\r\n\r\n",
            b"<html>\r\n\r\n",
        ] {
            let mut f = framer(&[Expect::Normal]);
            assert_eq!(f.feed(raw), 0, "{raw:?}");
            assert_eq!(
                f.state(),
                ResponseState::Unframed(Unframed::BadHead),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn bare_lf_and_leading_empty_lines_are_tolerated() {
        let mut f = framer(&[Expect::Normal, Expect::Normal]);
        let raw = b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok\r\n\nHTTP/1.1 204 No Content\r\n\n";
        assert_eq!(f.feed(raw), 2);
        assert_eq!((f.state(), f.completed()), (ResponseState::Idle, 2));
    }

    #[test]
    fn unsolicited_bytes_unframe() {
        let mut f = ResponseFramer::new(8192);
        assert_eq!(f.feed(b""), 0);
        assert_eq!(f.state(), ResponseState::Idle);
        assert_eq!(f.feed(b"H"), 0);
        assert_eq!(f.state(), ResponseState::Unframed(Unframed::Unsolicited));

        // Bytes after the last expected response, in the same feed.
        let mut f = framer(&[Expect::Normal]);
        assert_eq!(f.feed(b"HTTP/1.1 204 No Content\r\n\r\nHTTP"), 1);
        assert_eq!(f.state(), ResponseState::Unframed(Unframed::Unsolicited));
        assert_eq!((f.pending(), f.completed()), (0, 1));
        // For good: a later request and its response change nothing.
        assert!(f.expect(Expect::Normal));
        assert_eq!(f.feed(OK_CL0), 0);
        assert_eq!(f.state(), ResponseState::Unframed(Unframed::Unsolicited));
        assert_eq!((f.pending(), f.completed()), (1, 1));
    }

    #[test]
    fn head_too_long() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        // A head of exactly max_head bytes fits, in one feed or split.
        for cut in [0, 1, 20, raw.len()] {
            let mut f = ResponseFramer::new(raw.len());
            assert!(f.expect(Expect::Normal));
            assert_eq!(f.feed(&raw[..cut]) + f.feed(&raw[cut..]), 1, "cut {cut}");
            assert_eq!(f.state(), ResponseState::Idle);
        }
        // One byte less does not.
        for cut in [0, 1, 20, raw.len()] {
            let mut f = ResponseFramer::new(raw.len() - 1);
            assert!(f.expect(Expect::Normal));
            assert_eq!(f.feed(&raw[..cut]) + f.feed(&raw[cut..]), 0, "cut {cut}");
            assert_eq!(f.state(), ResponseState::Unframed(Unframed::HeadTooLong));
        }
        // A head that never ends, fed in pieces.
        let mut f = framer(&[Expect::Normal]);
        assert_eq!(f.feed(b"HTTP/1.1 200 OK\r\n"), 0);
        for _ in 0..1000 {
            assert_eq!(f.feed(b"X-Filler: aaaaaaaa\r\n"), 0);
        }
        assert_eq!(f.state(), ResponseState::Unframed(Unframed::HeadTooLong));
        // Too many fields for the parser.
        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            raw.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\n");
        let mut f = framer(&[Expect::Normal]);
        assert_eq!(f.feed(&raw), 0);
        assert_eq!(f.state(), ResponseState::Unframed(Unframed::HeadTooLong));
    }

    #[test]
    fn expect_is_bounded() {
        let mut f = ResponseFramer::new(64);
        for _ in 0..MAX_PENDING {
            assert!(f.expect(Expect::Normal));
        }
        assert!(!f.expect(Expect::Head));
        assert_eq!(f.pending(), MAX_PENDING);
        // The refused Head was not queued: the 33rd response is Normal.
        let mut raw = Vec::new();
        for _ in 0..MAX_PENDING {
            raw.extend_from_slice(OK_CL0);
        }
        assert_eq!(f.feed(&raw), MAX_PENDING);
        assert_eq!((f.state(), f.pending()), (ResponseState::Idle, 0));
        // The ring wraps around.
        assert!(f.expect(Expect::Head));
        assert!(f.expect(Expect::Normal));
        assert_eq!(
            f.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"),
            2
        );
        assert_eq!((f.state(), f.completed()), (ResponseState::Idle, 34));
    }

    #[test]
    fn memory_cost_per_connection() {
        // The figure in the module comment.
        assert_eq!(core::mem::size_of::<ResponseFramer>(), 112);
        assert_eq!(ResponseFramer::new(8192).head.capacity(), 8192);
    }

    /// One response of the property test: what the request was, and the
    /// bytes the server sends.
    #[derive(Debug, Clone)]
    struct Wire {
        expect: Expect,
        bytes: Vec<u8>,
    }

    /// A well-formed response: framing 0 Content-Length, 1 chunked, 2 HEAD
    /// (with a length that does not apply), 3 a 204/304, 4 Content-Length 0;
    /// optionally after an interim 100/103; random header case and line
    /// ends.
    fn wire() -> impl Strategy<Value = Wire> {
        let body_byte = prop::sample::select(b"\r\n0a;H: \x00\xff".to_vec());
        (
            0u8..5,
            prop::sample::select(vec![200u16, 201, 206, 302, 404, 500, 503]),
            prop::collection::vec(body_byte, 0..80),
            prop::collection::vec(1usize..20, 0..6),
            any::<(bool, bool, bool, bool, bool)>(),
        )
            .prop_map(
                |(framing, status, body, cuts, (interim, lf, upper, ext, trailer))| {
                    let eol: &[u8] = if lf { b"\n" } else { b"\r\n" };
                    let mut out = Vec::new();
                    let line = |out: &mut Vec<u8>, s: &[u8]| {
                        out.extend_from_slice(s);
                        out.extend_from_slice(eol);
                    };
                    if interim {
                        line(&mut out, b"HTTP/1.1 100 Continue");
                        line(&mut out, b"");
                        line(&mut out, b"HTTP/1.1 103 Early Hints");
                        line(&mut out, b"Link: </a.css>; rel=preload");
                        line(&mut out, b"");
                    }
                    let (cl, te): (&[u8], &[u8]) = if upper {
                        (b"CONTENT-LENGTH", b"Transfer-Encoding")
                    } else {
                        (b"content-length", b"transfer-encoding")
                    };
                    let status = match framing {
                        3 => [204, 304][body.len() % 2],
                        _ => status,
                    };
                    line(&mut out, format!("HTTP/1.1 {status} Reason").as_bytes());
                    line(&mut out, b"Server: nginx");
                    let mut expect = Expect::Normal;
                    match framing {
                        0 | 4 => {
                            let n = if framing == 4 { 0 } else { body.len() };
                            line(&mut out, &[cl, format!(": {n}").as_bytes()].concat());
                            line(&mut out, b"");
                            out.extend_from_slice(&body[..n]);
                        }
                        1 => {
                            line(&mut out, &[te, b": chunked"].concat());
                            line(&mut out, b"");
                            let mut rest = &body[..];
                            for &c in cuts.iter().chain(core::iter::once(&usize::MAX)) {
                                let take = c.min(rest.len());
                                if take == 0 {
                                    continue;
                                }
                                let size = if ext {
                                    format!("{take:X};e=\"1;2\"")
                                } else {
                                    format!("{take:x}")
                                };
                                line(&mut out, size.as_bytes());
                                out.extend_from_slice(&rest[..take]);
                                line(&mut out, b"");
                                rest = &rest[take..];
                            }
                            line(&mut out, if ext { &b"0;end"[..] } else { b"000" });
                            if trailer {
                                line(&mut out, b"X-Checksum: abc");
                            }
                            line(&mut out, b"");
                        }
                        2 => {
                            expect = Expect::Head;
                            line(
                                &mut out,
                                format!("Content-Length: {}", body.len() + 1).as_bytes(),
                            );
                            line(&mut out, b"");
                        }
                        _ => line(&mut out, b""),
                    }
                    Wire { expect, bytes: out }
                },
            )
    }

    proptest! {
        #[test]
        fn boundaries_are_exact(
            responses in prop::collection::vec(wire(), 1..=MAX_PENDING),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        ) {
            let mut stream = Vec::new();
            let mut ends = Vec::new();
            let mut f = ResponseFramer::new(1024);
            for r in &responses {
                prop_assert!(f.expect(r.expect));
                stream.extend_from_slice(&r.bytes);
                ends.push(stream.len());
            }
            // Cut at random points, at every end and just before it.
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            for &e in &ends {
                points.extend([e - 1, e]);
            }
            points.sort_unstable();
            points.dedup();
            let mut from = 0;
            let mut total = 0;
            for &to in &points {
                let n = f.feed(&stream[from..to]);
                total += n;
                from = to;
                let want = ends.iter().filter(|&&e| e <= to).count();
                prop_assert_eq!(f.completed(), want as u64, "after {} bytes", to);
                prop_assert_eq!(total, want);
                prop_assert_eq!(f.pending(), responses.len() - want);
                let state = if want == responses.len() {
                    ResponseState::Idle
                } else {
                    ResponseState::InProgress
                };
                prop_assert_eq!(f.state(), state);
            }
            prop_assert_eq!(from, stream.len());
            prop_assert_eq!(total, responses.len());
        }

        #[test]
        fn chunked_decoder_finds_the_end_however_split(
            body in prop::collection::vec(any::<u8>(), 0..200),
            sizes in prop::collection::vec(1usize..40, 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut raw = Vec::new();
            let mut rest = &body[..];
            for &s in sizes.iter().chain(core::iter::once(&usize::MAX)) {
                let take = s.min(rest.len());
                if take == 0 {
                    continue;
                }
                raw.extend_from_slice(format!("{take:x}\r\n").as_bytes());
                raw.extend_from_slice(&rest[..take]);
                raw.extend_from_slice(b"\r\n");
                rest = &rest[take..];
            }
            raw.extend_from_slice(b"0\r\n\r\n");
            let end = raw.len();
            raw.extend_from_slice(b"tail");
            let cut = cut.index(end + 1);
            let mut d = ChunkedDecoder::new();
            if cut == end {
                prop_assert_eq!(d.feed(&raw[..cut]), Ok(Some(end)));
            } else {
                prop_assert_eq!(d.feed(&raw[..cut]), Ok(None));
                prop_assert_eq!(d.feed(&raw[cut..]), Ok(Some(end - cut)));
            }
            prop_assert!(d.is_done());
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_keep_the_counts(
            pieces in prop::collection::vec(
                prop::collection::vec(
                    prop::sample::select(b"HTTP/1.0 2041\r\n:;Content-Length: chunked\t ".to_vec()),
                    0..64,
                ),
                0..16,
            ),
            expects in prop::collection::vec(0u8..3, 0..8),
        ) {
            let mut f = ResponseFramer::new(256);
            for e in &expects {
                let e = [Expect::Normal, Expect::Head, Expect::Connect][usize::from(*e)];
                prop_assert!(f.expect(e));
            }
            let mut total = 0;
            for p in &pieces {
                total += f.feed(p);
            }
            prop_assert_eq!(f.completed(), total as u64);
            prop_assert_eq!(f.pending() + total, expects.len());
            match f.state() {
                ResponseState::Idle => prop_assert_eq!(f.pending(), 0),
                ResponseState::InProgress => prop_assert!(f.pending() > 0),
                ResponseState::Unframed(_) => {}
            }
        }
    }
}

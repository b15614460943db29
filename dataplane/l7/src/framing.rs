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
            self.state = match self.step(b) {
                Ok(next) => next,
                Err(BadChunk) => {
                    self.state = Chunk::Failed;
                    return Err(BadChunk);
                }
            };
            if self.state == Chunk::Done {
                return Ok(Some(at));
            }
        }
        match self.state {
            Chunk::Done => Ok(Some(0)),
            Chunk::Failed => Err(BadChunk),
            _ => Ok(None),
        }
    }

    /// The state after byte `b` (every state but `Data`, which
    /// [`ChunkedDecoder::feed`] skips in bulk).
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
            Chunk::Done => Chunk::Done,
            Chunk::SizeLf(_)
            | Chunk::DataLf
            | Chunk::TrailerLineLf
            | Chunk::TrailerEndLf
            | Chunk::Data(_)
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
        // Rule 4: a response whose last coding is not chunked is read
        // until the connection closes.
        (true, None) => Length::Close,
        (false, Some(n)) => Length::Counted(n),
        (false, None) => Length::Close,
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

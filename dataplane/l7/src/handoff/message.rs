//! The handoff datagram: its wire format, signing and checks.
//!
//! This module owns the bytes between two members' dataplanes during a
//! handover: a zero-copy [`Packet`] view (offsets in [`field`], framing
//! checked once in [`Packet::new_checked`]), the owned [`Envelope`] and
//! [`Message`], and [`encode`]/[`decode`]. Every datagram ends with an
//! HMAC-SHA256 tag over everything before it under the cluster key;
//! [`decode`] checks the tag before it parses the body. Replay protection
//! (sequence window, timestamp window, recipient) is [`super::link`]'s job;
//! what to do with a message is [`super::inspector`]'s and
//! [`super::receiver`]'s.
//!
//! A request longer than [`PART_BYTES`] travels as several `offer`
//! datagrams, each carrying the whole flow snapshot plus one numbered part,
//! so parts can arrive in any order and any of them opens the handoff.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! header (48 bytes)
//!  0  magic "SHHO"    4  version (1)    5  kind (1 offer, 2 accept, 3 refuse, 4 located)
//!  6  body length u16 8  sender member id u16   10  recipient member id u16
//! 12  reserved (0) u32
//! 16  sender incarnation u64   24  sequence u64 (from 1)
//! 32  timestamp, sender's wall clock, unix ms u64   40  handoff id u64
//! offer body (52 bytes + part)
//!  0  client addr  4 client port   6  VIP addr  10 VIP port
//! 12  client ISN  16 cookie ISN   20  next client seq  24  next server seq
//! 28  MSS u16     30 client window field u16
//! 32  options u8 (bit 0 SACK-permitted, bit 1 window scaling, bit 2 timestamps)
//! 33  client wscale  34 inspector wscale  35 reserved (0)
//! 36  client TSval   40 inspector TSval   44 request length u32
//! 48  part index u16 50 part count u16    52 part bytes
//! accept body (8 bytes):  0 kernel ISN u32   4 reserved (0) u32
//! refuse body (4 bytes):  0 reason u8        1 reserved (0) x3
//! located body (16 bytes): 0 client addr  4 client port  6 VIP addr  10 VIP port
//!                          12 member id u16  14 reserved (0) u16 (handoff id 0)
//! tag: HMAC-SHA256 over header and body, 32 bytes
//! ```
//!
//! Encoding is canonical: reserved bytes, and the bytes of options that
//! were not negotiated, must be zero, so `encode(decode(b)) == b` for every
//! accepted `b`.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::MemberId;
use shoal_key::ClusterKey;

/// Byte offsets of the header and bodies.
pub mod field {
    use core::ops::Range;

    /// `b"SHHO"`.
    pub const MAGIC: Range<usize> = 0..4;
    /// Format version.
    pub const VERSION: usize = 4;
    /// Message kind.
    pub const KIND: usize = 5;
    /// Length of the body (between header and tag).
    pub const BODY_LEN: Range<usize> = 6..8;
    /// Sender's member id.
    pub const SENDER: Range<usize> = 8..10;
    /// Recipient's member id.
    pub const RECIPIENT: Range<usize> = 10..12;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 12..16;
    /// Sender's incarnation (grows across restarts).
    pub const INCARNATION: Range<usize> = 16..24;
    /// Per-sender sequence number within the incarnation.
    pub const SEQUENCE: Range<usize> = 24..32;
    /// Sender's wall clock, unix milliseconds.
    pub const TIMESTAMP: Range<usize> = 32..40;
    /// Handoff id (chosen by the inspector).
    pub const HANDOFF_ID: Range<usize> = 40..48;
    /// Length of the header; the body follows.
    pub const HEADER_LEN: usize = 48;
    /// Length of the HMAC-SHA256 tag at the end.
    pub const TAG_LEN: usize = 32;

    /// Offsets inside an offer body.
    pub mod offer {
        use core::ops::Range;

        /// Client IPv4 address.
        pub const CLIENT_ADDR: Range<usize> = 0..4;
        /// Client TCP port.
        pub const CLIENT_PORT: Range<usize> = 4..6;
        /// VIP address.
        pub const VIP_ADDR: Range<usize> = 6..10;
        /// VIP (service) port.
        pub const VIP_PORT: Range<usize> = 10..12;
        /// Client's initial sequence number.
        pub const CLIENT_ISN: Range<usize> = 12..16;
        /// The ISN the inspector gave the client (its SYN cookie).
        pub const COOKIE_ISN: Range<usize> = 16..20;
        /// Next sequence number the client will send.
        pub const NEXT_CLIENT_SEQ: Range<usize> = 20..24;
        /// Next server sequence number, as the client sees it.
        pub const NEXT_SERVER_SEQ: Range<usize> = 24..28;
        /// MSS the client announced.
        pub const MSS: Range<usize> = 28..30;
        /// Window field of the client's latest segment.
        pub const CLIENT_WINDOW: Range<usize> = 30..32;
        /// Option flags.
        pub const OPTIONS: usize = 32;
        /// Client's window scale.
        pub const CLIENT_WSCALE: usize = 33;
        /// Window scale the inspector advertised.
        pub const INSPECTOR_WSCALE: usize = 34;
        /// Reserved, zero.
        pub const RESERVED: usize = 35;
        /// Client's latest `TSval`.
        pub const CLIENT_TSVAL: Range<usize> = 36..40;
        /// Highest `TSval` the inspector sent the client.
        pub const INSPECTOR_TSVAL: Range<usize> = 40..44;
        /// Length of the whole buffered request.
        pub const REQUEST_LEN: Range<usize> = 44..48;
        /// Index of this part, from 0.
        pub const PART_INDEX: Range<usize> = 48..50;
        /// Number of parts.
        pub const PART_COUNT: Range<usize> = 50..52;
        /// Length of the fixed part of the body; the part bytes follow.
        pub const FIXED_LEN: usize = 52;
    }

    /// Offsets inside an accept body.
    pub mod accept {
        use core::ops::Range;

        /// The receiver kernel's ISN.
        pub const KERNEL_ISN: Range<usize> = 0..4;
        /// Reserved, zero.
        pub const RESERVED: Range<usize> = 4..8;
        /// Length of the body.
        pub const LEN: usize = 8;
    }

    /// Offsets inside a refuse body.
    pub mod located {
        use core::ops::Range;

        /// Client address and port.
        pub const CLIENT: Range<usize> = 0..6;
        /// VIP address and port.
        pub const VIP: Range<usize> = 6..12;
        /// The member holding the connection.
        pub const MEMBER: Range<usize> = 12..14;
        /// Reserved, zero.
        pub const RESERVED: Range<usize> = 14..16;
        /// Length of the body.
        pub const LEN: usize = 16;
    }

    /// Offsets inside a refuse body.
    pub mod refuse {
        use core::ops::Range;

        /// Reason code.
        pub const REASON: usize = 0;
        /// Reserved, zero.
        pub const RESERVED: Range<usize> = 1..4;
        /// Length of the body.
        pub const LEN: usize = 4;
    }
}

/// `b"SHHO"`: the first bytes of every handoff datagram.
pub const MAGIC: [u8; 4] = *b"SHHO";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Request bytes per offer part (keeps a part datagram under 1400 bytes).
pub const PART_BYTES: usize = 1200;
/// The longest request an offer can carry (1 MiB, the config's ceiling).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// The highest TCP window scale (RFC 7323).
pub const MAX_WSCALE: u8 = 14;
/// Length of the longest datagram [`encode`] writes (a full offer part).
pub const MAX_DATAGRAM_LEN: usize =
    field::HEADER_LEN + field::offer::FIXED_LEN + PART_BYTES + field::TAG_LEN;

const OPT_SACK: u8 = 1;
const OPT_WSCALE: u8 = 2;
const OPT_TIMESTAMPS: u8 = 4;

/// Why a datagram was not accepted as a handoff message. [`label`] gives
/// the metric label.
///
/// [`label`]: HandoffError::label
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    /// Shorter than its header or than its own length field says.
    #[error("handoff datagram truncated: {len} bytes, expected {expected}")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the datagram needs (or claims).
        expected: usize,
    },
    /// Does not start with [`MAGIC`]: not a handoff datagram at all.
    #[error("not a handoff datagram (bad magic): is something else sending to the handoff port?")]
    BadMagic,
    /// A format version this build does not speak.
    #[error(
        "handoff format version {0} is not supported (this build speaks version 1): \
         run the same Shoal release on every member"
    )]
    UnsupportedVersion(u8),
    /// A message kind this build does not know.
    #[error("unknown handoff message kind {0}: run the same Shoal release on every member")]
    UnknownKind(u8),
    /// Lengths that do not add up (trailing bytes, a body of the wrong size
    /// for its kind, a part of the wrong size).
    #[error("handoff datagram lengths do not add up ({0})")]
    Length(&'static str),
    /// A correctly signed datagram with a value out of range.
    #[error("malformed handoff message ({0})")]
    Malformed(&'static str),
    /// The tag does not match: another cluster key, or tampering.
    #[error("handoff datagram tag does not verify (is the same cluster key on every member?)")]
    BadMac,
}

impl HandoffError {
    /// The metric label of this outcome.
    pub fn label(self) -> &'static str {
        match self {
            HandoffError::Truncated { .. } => "truncated",
            HandoffError::BadMagic => "bad_magic",
            HandoffError::UnsupportedVersion(_) => "bad_version",
            HandoffError::UnknownKind(_) => "bad_kind",
            HandoffError::Length(_) => "bad_length",
            HandoffError::Malformed(_) => "malformed",
            HandoffError::BadMac => "bad_mac",
        }
    }
}

/// A handoff's id, chosen by the inspector, unique per inspector
/// incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HandoffId(pub u64);

/// Message kinds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Inspector -> chosen server: one part of an offer.
    Offer = 1,
    /// Receiver -> inspector: the receiver owns the flow now.
    Accept = 2,
    /// Receiver -> inspector: the receiver will not take the flow.
    Refuse = 3,
    /// Routed mode: "that connection is held by member M", to a member
    /// that sent one of its packets without knowing (second chance, flood).
    Located = 4,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Offer),
            2 => Some(Kind::Accept),
            3 => Some(Kind::Refuse),
            4 => Some(Kind::Located),
            _ => None,
        }
    }
}

/// Who sent a datagram to whom, and its anti-replay stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// Sender's member id (1..=65535).
    pub sender: MemberId,
    /// Recipient's member id (1..=65535).
    pub recipient: MemberId,
    /// Sender's incarnation: grows every time the sender restarts (its
    /// start time in unix ms is a good choice).
    pub incarnation: u64,
    /// Sender's sequence number within the incarnation, from 1, +1 per
    /// datagram (to any recipient).
    pub sequence: u64,
    /// Sender's wall clock when sent, unix milliseconds.
    pub timestamp_ms: u64,
}

/// Window scaling as negotiated with the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowScale {
    /// The shift the client announced in its SYN (0..=14).
    pub client: u8,
    /// The shift the inspector announced in its SYN-ACK (0..=14).
    pub inspector: u8,
}

/// TCP timestamps (RFC 7323) as negotiated with the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamps {
    /// The client's latest `TSval` (the replayed SYN carries it).
    pub client_tsval: u32,
    /// The highest `TSval` the inspector has sent the client: the receiver's
    /// translated clock must never go below it (the client's PAWS check).
    pub inspector_tsval: u32,
}

/// The TCP options negotiated between the client and the inspector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// MSS the client announced (536 when it announced none); never 0.
    pub mss: u16,
    /// Window scaling, when both sides offered it.
    pub window_scale: Option<WindowScale>,
    /// Whether SACK is permitted.
    pub sack_permitted: bool,
    /// Timestamps, when negotiated.
    pub timestamps: Option<Timestamps>,
}

/// What the receiver needs to replay the handshake into its kernel (see
/// `docs/splice-replay.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSnapshot {
    /// The client's address and port.
    pub client: SocketAddrV4,
    /// The VIP address and service port the client connected to.
    pub vip: SocketAddrV4,
    /// The client's ISN (for a second handoff: next client seq - 1).
    pub client_isn: u32,
    /// The ISN the inspector gave the client (its SYN cookie).
    pub cookie_isn: u32,
    /// The next sequence number the client will send (after the buffered
    /// request bytes).
    pub next_client_seq: u32,
    /// The next server sequence number as the client sees it.
    pub next_server_seq: u32,
    /// The window field of the client's latest segment, as sent.
    pub client_window: u16,
    /// Negotiated options.
    pub options: Negotiated,
}

/// A whole offer: what the inspector hands over. On the wire it travels as
/// one or more [`OfferPart`]s (see [`Offer::parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The handoff.
    pub id: HandoffId,
    /// The connection's state.
    pub snapshot: FlowSnapshot,
    /// The buffered request bytes (at most [`MAX_REQUEST_BYTES`]).
    pub request: Vec<u8>,
}

/// Number of parts a request of `len` bytes travels in (at least one).
pub fn part_count(len: usize) -> usize {
    len.div_ceil(PART_BYTES).max(1)
}

impl Offer {
    /// The offer cut into parts of [`PART_BYTES`] (the last one shorter).
    /// The request must be at most [`MAX_REQUEST_BYTES`] long; longer ones
    /// give parts that [`decode`] refuses.
    pub fn parts(&self) -> impl Iterator<Item = OfferPart> + '_ {
        let count = part_count(self.request.len());
        (0..count).map(move |i| {
            let start = (i * PART_BYTES).min(self.request.len());
            let end = ((i + 1) * PART_BYTES).min(self.request.len());
            OfferPart {
                id: self.id,
                snapshot: self.snapshot,
                request_len: self.request.len() as u32,
                index: i as u16,
                count: count as u16,
                part: self.request[start..end].to_vec(),
            }
        })
    }
}

/// One offer datagram: the snapshot and one part of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferPart {
    /// The handoff.
    pub id: HandoffId,
    /// The connection's state (identical in every part).
    pub snapshot: FlowSnapshot,
    /// Length of the whole request.
    pub request_len: u32,
    /// This part's index, from 0.
    pub index: u16,
    /// Number of parts (`part_count(request_len)`).
    pub count: u16,
    /// This part's bytes: `request[index * PART_BYTES..][..PART_BYTES]`.
    pub part: Vec<u8>,
}

/// The receiver took the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// The handoff.
    pub id: HandoffId,
    /// The ISN the receiver's kernel chose (its SYN-ACK's sequence number).
    pub kernel_isn: u32,
}

/// Why a receiver refused a handoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The receiver has no service on that VIP and port.
    UnknownService,
    /// The receiver's handoff table is full.
    Busy,
    /// The offer was judged replayed or stale (clocks apart?).
    Replayed,
    /// The request is longer than the receiver's `max_request_bytes`.
    TooLarge,
    /// The receiver's kernel did not complete the replayed handshake.
    HandshakeFailed,
    /// The receiver is draining (takes no new connections).
    Draining,
    /// A reason code this build does not know (a newer sender).
    Other(u8),
}

impl RefuseReason {
    /// The code on the wire.
    pub fn code(self) -> u8 {
        match self {
            RefuseReason::UnknownService => 1,
            RefuseReason::Busy => 2,
            RefuseReason::Replayed => 3,
            RefuseReason::TooLarge => 4,
            RefuseReason::HandshakeFailed => 5,
            RefuseReason::Draining => 6,
            RefuseReason::Other(c) => c,
        }
    }

    /// The reason for a code on the wire.
    pub fn from_code(code: u8) -> RefuseReason {
        match code {
            1 => RefuseReason::UnknownService,
            2 => RefuseReason::Busy,
            3 => RefuseReason::Replayed,
            4 => RefuseReason::TooLarge,
            5 => RefuseReason::HandshakeFailed,
            6 => RefuseReason::Draining,
            c => RefuseReason::Other(c),
        }
    }
}

/// The receiver will not take the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refuse {
    /// The handoff.
    pub id: HandoffId,
    /// Why.
    pub reason: RefuseReason,
}

/// Routed mode: member `member` holds the connection of `client` to `vip`
/// (a member that sent one of its packets without knowing where it is, as
/// a second chance or a flood, learns it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// The client's address and port.
    pub client: SocketAddrV4,
    /// The VIP and port.
    pub vip: SocketAddrV4,
    /// The member holding the connection (1..=65535).
    pub member: MemberId,
}

/// A handoff message (the body of one datagram).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// One part of an offer.
    Offer(OfferPart),
    /// The receiver owns the flow.
    Accept(Accept),
    /// The receiver will not take the flow.
    Refuse(Refuse),
    /// Routed: where a connection is (no handoff: id 0).
    Located(Located),
}

impl Message {
    /// The handoff the message is about.
    pub fn id(&self) -> HandoffId {
        match self {
            Message::Offer(p) => p.id,
            Message::Accept(a) => a.id,
            Message::Refuse(r) => r.id,
            Message::Located(_) => HandoffId(0),
        }
    }

    /// The kind on the wire.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Offer(_) => Kind::Offer,
            Message::Accept(_) => Kind::Accept,
            Message::Refuse(_) => Kind::Refuse,
            Message::Located(_) => Kind::Located,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Message::Offer(p) => field::offer::FIXED_LEN + p.part.len(),
            Message::Accept(_) => field::accept::LEN,
            Message::Refuse(_) => field::refuse::LEN,
            Message::Located(_) => field::located::LEN,
        }
    }
}

/// A decoded datagram: the envelope and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Sender, recipient and anti-replay stamp.
    pub envelope: Envelope,
    /// The message.
    pub message: Message,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// A read-only view of a handoff datagram's bytes.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking magic, version, kind and that the
    /// length is exactly header + body length + tag; header getters and
    /// [`Packet::body`] then never panic. The tag is not checked here.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, HandoffError> {
        let b = buffer.as_ref();
        let min = field::HEADER_LEN + field::TAG_LEN;
        if b.len() < min {
            return Err(HandoffError::Truncated {
                len: b.len(),
                expected: min,
            });
        }
        if b[field::MAGIC] != MAGIC {
            return Err(HandoffError::BadMagic);
        }
        if b[field::VERSION] != VERSION {
            return Err(HandoffError::UnsupportedVersion(b[field::VERSION]));
        }
        if Kind::from_u8(b[field::KIND]).is_none() {
            return Err(HandoffError::UnknownKind(b[field::KIND]));
        }
        let expected = min + usize::from(be16(b, field::BODY_LEN.start));
        if b.len() < expected {
            return Err(HandoffError::Truncated {
                len: b.len(),
                expected,
            });
        }
        if b.len() > expected {
            return Err(HandoffError::Length("bytes after the tag"));
        }
        Ok(Packet { buffer })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The message kind.
    pub fn kind(&self) -> Kind {
        Kind::from_u8(self.bytes()[field::KIND]).unwrap_or(Kind::Offer)
    }

    /// Sender's member id.
    pub fn sender(&self) -> MemberId {
        be16(self.bytes(), field::SENDER.start)
    }

    /// Recipient's member id.
    pub fn recipient(&self) -> MemberId {
        be16(self.bytes(), field::RECIPIENT.start)
    }

    /// Sender's incarnation.
    pub fn incarnation(&self) -> u64 {
        be64(self.bytes(), field::INCARNATION.start)
    }

    /// Sequence number.
    pub fn sequence(&self) -> u64 {
        be64(self.bytes(), field::SEQUENCE.start)
    }

    /// Sender's wall clock, unix milliseconds.
    pub fn timestamp_ms(&self) -> u64 {
        be64(self.bytes(), field::TIMESTAMP.start)
    }

    /// The handoff id.
    pub fn handoff_id(&self) -> HandoffId {
        HandoffId(be64(self.bytes(), field::HANDOFF_ID.start))
    }

    /// The body (between header and tag).
    pub fn body(&self) -> &[u8] {
        let b = self.bytes();
        &b[field::HEADER_LEN..b.len() - field::TAG_LEN]
    }

    /// The bytes the tag covers.
    pub fn signed_part(&self) -> &[u8] {
        let b = self.bytes();
        &b[..b.len() - field::TAG_LEN]
    }

    /// The tag.
    pub fn tag(&self) -> &[u8] {
        let b = self.bytes();
        &b[b.len() - field::TAG_LEN..]
    }
}

impl Envelope {
    /// Reads and range-checks the envelope of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Envelope, HandoffError> {
        if p.bytes()[field::RESERVED].iter().any(|&b| b != 0) {
            return Err(HandoffError::Malformed("reserved header bytes not zero"));
        }
        let e = Envelope {
            sender: p.sender(),
            recipient: p.recipient(),
            incarnation: p.incarnation(),
            sequence: p.sequence(),
            timestamp_ms: p.timestamp_ms(),
        };
        if e.sender == 0 || e.recipient == 0 {
            return Err(HandoffError::Malformed("member id 0"));
        }
        if e.sequence == 0 {
            return Err(HandoffError::Malformed("sequence 0"));
        }
        Ok(e)
    }
}

impl Message {
    /// Parses the body of a checked packet (tag not verified here: see
    /// [`decode`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Message, HandoffError> {
        let id = p.handoff_id();
        let b = p.body();
        match p.kind() {
            Kind::Offer => parse_offer(id, b).map(Message::Offer),
            Kind::Accept => {
                use field::accept as f;
                if b.len() != f::LEN {
                    return Err(HandoffError::Length("accept body is not 8 bytes"));
                }
                if b[f::RESERVED].iter().any(|&x| x != 0) {
                    return Err(HandoffError::Malformed("reserved accept bytes not zero"));
                }
                Ok(Message::Accept(Accept {
                    id,
                    kernel_isn: be32(b, f::KERNEL_ISN.start),
                }))
            }
            Kind::Refuse => {
                use field::refuse as f;
                if b.len() != f::LEN {
                    return Err(HandoffError::Length("refuse body is not 4 bytes"));
                }
                if b[f::RESERVED].iter().any(|&x| x != 0) {
                    return Err(HandoffError::Malformed("reserved refuse bytes not zero"));
                }
                if b[f::REASON] == 0 {
                    return Err(HandoffError::Malformed("refuse reason 0"));
                }
                Ok(Message::Refuse(Refuse {
                    id,
                    reason: RefuseReason::from_code(b[f::REASON]),
                }))
            }
            Kind::Located => {
                use field::located as f;
                if b.len() != f::LEN {
                    return Err(HandoffError::Length("located body is not 16 bytes"));
                }
                if id.0 != 0 {
                    return Err(HandoffError::Malformed("located with a handoff id"));
                }
                if b[f::RESERVED].iter().any(|&x| x != 0) {
                    return Err(HandoffError::Malformed("reserved located bytes not zero"));
                }
                let member = be16(b, f::MEMBER.start);
                if member == 0 {
                    return Err(HandoffError::Malformed("located member id 0"));
                }
                let at = |r: core::ops::Range<usize>| {
                    SocketAddrV4::new(
                        Ipv4Addr::new(b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]),
                        be16(b, r.start + 4),
                    )
                };
                Ok(Message::Located(Located {
                    client: at(f::CLIENT),
                    vip: at(f::VIP),
                    member,
                }))
            }
        }
    }
}

fn parse_offer(id: HandoffId, b: &[u8]) -> Result<OfferPart, HandoffError> {
    use field::offer as f;
    if b.len() < f::FIXED_LEN {
        return Err(HandoffError::Length(
            "offer body shorter than its fixed fields",
        ));
    }
    let request_len = be32(b, f::REQUEST_LEN.start);
    let index = be16(b, f::PART_INDEX.start);
    let count = be16(b, f::PART_COUNT.start);
    let len = request_len as usize;
    if len > MAX_REQUEST_BYTES {
        return Err(HandoffError::Malformed("request longer than 1 MiB"));
    }
    if usize::from(count) != part_count(len) {
        return Err(HandoffError::Length(
            "part count does not match the request length",
        ));
    }
    if index >= count {
        return Err(HandoffError::Length("part index beyond the part count"));
    }
    let start = usize::from(index) * PART_BYTES;
    let want = (len - start).min(PART_BYTES);
    let part = &b[f::FIXED_LEN..];
    if part.len() != want {
        return Err(HandoffError::Length(
            "part size does not match its index and the request length",
        ));
    }
    let client_port = be16(b, f::CLIENT_PORT.start);
    let vip_port = be16(b, f::VIP_PORT.start);
    if client_port == 0 || vip_port == 0 {
        return Err(HandoffError::Malformed("port 0"));
    }
    let mss = be16(b, f::MSS.start);
    if mss == 0 {
        return Err(HandoffError::Malformed("MSS 0"));
    }
    let opts = b[f::OPTIONS];
    if opts & !(OPT_SACK | OPT_WSCALE | OPT_TIMESTAMPS) != 0 {
        return Err(HandoffError::Malformed("unknown option flags"));
    }
    if b[f::RESERVED] != 0 {
        return Err(HandoffError::Malformed("reserved offer byte not zero"));
    }
    let window_scale = if opts & OPT_WSCALE == 0 {
        if b[f::CLIENT_WSCALE] != 0 || b[f::INSPECTOR_WSCALE] != 0 {
            return Err(HandoffError::Malformed(
                "window scale given but not negotiated",
            ));
        }
        None
    } else {
        let ws = WindowScale {
            client: b[f::CLIENT_WSCALE],
            inspector: b[f::INSPECTOR_WSCALE],
        };
        if ws.client > MAX_WSCALE || ws.inspector > MAX_WSCALE {
            return Err(HandoffError::Malformed("window scale above 14"));
        }
        Some(ws)
    };
    let client_tsval = be32(b, f::CLIENT_TSVAL.start);
    let inspector_tsval = be32(b, f::INSPECTOR_TSVAL.start);
    let timestamps = if opts & OPT_TIMESTAMPS == 0 {
        if client_tsval != 0 || inspector_tsval != 0 {
            return Err(HandoffError::Malformed(
                "TSvals given but timestamps not negotiated",
            ));
        }
        None
    } else {
        Some(Timestamps {
            client_tsval,
            inspector_tsval,
        })
    };
    Ok(OfferPart {
        id,
        snapshot: FlowSnapshot {
            client: SocketAddrV4::new(addr(b, f::CLIENT_ADDR.start), client_port),
            vip: SocketAddrV4::new(addr(b, f::VIP_ADDR.start), vip_port),
            client_isn: be32(b, f::CLIENT_ISN.start),
            cookie_isn: be32(b, f::COOKIE_ISN.start),
            next_client_seq: be32(b, f::NEXT_CLIENT_SEQ.start),
            next_server_seq: be32(b, f::NEXT_SERVER_SEQ.start),
            client_window: be16(b, f::CLIENT_WINDOW.start),
            options: Negotiated {
                mss,
                window_scale,
                sack_permitted: opts & OPT_SACK != 0,
                timestamps,
            },
        },
        request_len,
        index,
        count,
        part: part.to_vec(),
    })
}

fn emit_offer(p: &OfferPart, b: &mut Vec<u8>) {
    let s = &p.snapshot;
    let o = &s.options;
    b.extend_from_slice(&s.client.ip().octets());
    b.extend_from_slice(&s.client.port().to_be_bytes());
    b.extend_from_slice(&s.vip.ip().octets());
    b.extend_from_slice(&s.vip.port().to_be_bytes());
    for v in [
        s.client_isn,
        s.cookie_isn,
        s.next_client_seq,
        s.next_server_seq,
    ] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&o.mss.to_be_bytes());
    b.extend_from_slice(&s.client_window.to_be_bytes());
    let mut flags = 0;
    if o.sack_permitted {
        flags |= OPT_SACK;
    }
    if o.window_scale.is_some() {
        flags |= OPT_WSCALE;
    }
    if o.timestamps.is_some() {
        flags |= OPT_TIMESTAMPS;
    }
    let ws = o.window_scale.unwrap_or(WindowScale {
        client: 0,
        inspector: 0,
    });
    let ts = o.timestamps.unwrap_or(Timestamps {
        client_tsval: 0,
        inspector_tsval: 0,
    });
    b.extend_from_slice(&[flags, ws.client, ws.inspector, 0]);
    b.extend_from_slice(&ts.client_tsval.to_be_bytes());
    b.extend_from_slice(&ts.inspector_tsval.to_be_bytes());
    b.extend_from_slice(&p.request_len.to_be_bytes());
    b.extend_from_slice(&p.index.to_be_bytes());
    b.extend_from_slice(&p.count.to_be_bytes());
    b.extend_from_slice(&p.part);
}

/// The signed datagram for `message` from `envelope.sender` to
/// `envelope.recipient`. Off the packet path (it allocates). An
/// [`OfferPart`] built by [`Offer::parts`] from a request of at most
/// [`MAX_REQUEST_BYTES`] always decodes; a hand-built inconsistent one
/// gives a datagram [`decode`] refuses.
pub fn encode(envelope: &Envelope, message: &Message, key: &ClusterKey) -> Vec<u8> {
    let body_len = message.body_len();
    let mut b = Vec::with_capacity(field::HEADER_LEN + body_len + field::TAG_LEN);
    b.extend_from_slice(&MAGIC);
    b.push(VERSION);
    b.push(message.kind() as u8);
    b.extend_from_slice(&(body_len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    b.extend_from_slice(&envelope.sender.to_be_bytes());
    b.extend_from_slice(&envelope.recipient.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    for v in [
        envelope.incarnation,
        envelope.sequence,
        envelope.timestamp_ms,
        message.id().0,
    ] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    match message {
        Message::Offer(p) => emit_offer(p, &mut b),
        Message::Accept(a) => {
            b.extend_from_slice(&a.kernel_isn.to_be_bytes());
            b.extend_from_slice(&[0; 4]);
        }
        Message::Refuse(r) => b.extend_from_slice(&[r.reason.code(), 0, 0, 0]),
        Message::Located(l) => {
            for a in [l.client, l.vip] {
                b.extend_from_slice(&a.ip().octets());
                b.extend_from_slice(&a.port().to_be_bytes());
            }
            b.extend_from_slice(&l.member.to_be_bytes());
            b.extend_from_slice(&[0; 2]);
        }
    }
    let tag = key.sign(&b);
    b.extend_from_slice(&tag);
    b
}

/// Checks the framing and the tag of `datagram`, then parses it. Never
/// panics: every defect is a [`HandoffError`].
pub fn decode(datagram: &[u8], key: &ClusterKey) -> Result<Datagram, HandoffError> {
    let p = Packet::new_checked(datagram)?;
    if !key.verify(p.signed_part(), p.tag()) {
        return Err(HandoffError::BadMac);
    }
    Ok(Datagram {
        envelope: Envelope::parse(&p)?,
        message: Message::parse(&p)?,
    })
}

//! The commands control sends to a dataplane worker and their fixed-size
//! encoding (the payload of one ring slot). This module owns the byte layout
//! and its validation; it knows nothing about files or rings.
//!
//! A command is [`COMMAND_LEN`] bytes, little-endian, zero-padded:
//!
//! | bytes | field |
//! |---|---|
//! | 0 | format version, [`FORMAT_VERSION`] |
//! | 1 | kind: 1 membership, 2 drain, 3 weight, 4 load, 5 shutdown, 6 lease, 7 reload services, 8 evict flows |
//! | 2..4 | membership: member count; drain, weight, load: member id |
//! | 4..8 | drain: draining (0 or 1) then zeros; weight: `u32`; load: `f32` bits |
//! | 8..16 | membership: epoch; lease: valid until (`CLOCK_MONOTONIC` ns) |
//! | 16..24 | membership: epoch table digest; lease: confirmed epoch |
//! | 24..32 | lease: confirmed epoch's digest |
//! | 2..4 | evict flows: client port (0 = every port) |
//! | 4..8 | evict flows: client IPv4 address (network order) |
//! | 8..16 | reload services: the service table's digest (`shoal_config::services_digest`) |
//! | 24.. | membership: one 24-byte record per member |
//!
//! A member record: 0..2 id, 2 flags (bit 0 alive, bit 1 draining), 3 zero,
//! 4..8 IPv4 address (network order), 8..14 MAC, 14..16 zero, 16..20 weight,
//! 20..24 load (`f32` bits).
//!
//! Every byte the table does not name must be zero, and decoding checks it:
//! together with the version byte this turns garbage into a
//! [`DecodeError`] rather than a plausible command. Decoding never panics.

use core::net::Ipv4Addr;
use core::ops::Range;

use thiserror::Error;

/// Bytes of an encoded command (a ring slot minus its two sequence words).
pub const COMMAND_LEN: usize = 2032;

/// The encoding's format version, byte 0 of every command.
pub const FORMAT_VERSION: u8 = 2;

/// The most members a [`Command::Membership`] may carry.
pub const MAX_MEMBERS: usize = 64;

/// Byte offsets of the command header and of a member record.
mod field {
    use core::ops::Range;

    pub const VERSION: usize = 0;
    pub const KIND: usize = 1;
    /// Member count (membership) or member id (drain, weight, load).
    pub const MEMBER: Range<usize> = 2..4;
    /// Drain's flag; weight's and load's value.
    pub const ARGUMENT: Range<usize> = 4..8;
    pub const DRAINING: usize = 4;
    pub const EPOCH: Range<usize> = 8..16;
    pub const DIGEST: Range<usize> = 16..24;
    pub const MEMBERS: usize = 24;
    /// Lease: valid until, `CLOCK_MONOTONIC` nanoseconds.
    pub const LEASE_UNTIL: Range<usize> = 8..16;
    /// Lease: the newest epoch every live member confirmed.
    pub const CONFIRMED_EPOCH: Range<usize> = 16..24;
    /// Lease: that epoch's table digest.
    pub const CONFIRMED_DIGEST: Range<usize> = 24..32;
    /// Evict flows: the client port.
    pub const CLIENT_PORT: Range<usize> = 2..4;
    /// Evict flows: the client address.
    pub const CLIENT_ADDR: Range<usize> = 4..8;
    /// Reload services: the table digest.
    pub const SERVICES_DIGEST: Range<usize> = 8..16;
    /// Pin clients: the prefix length (the target is `MEMBER`, the prefix
    /// address `CLIENT_ADDR`).
    pub const PIN_LEN: usize = 8;
    /// Pin clients: how long, seconds.
    pub const PIN_SECS: Range<usize> = 12..16;

    /// Fields of a member record, relative to its start.
    pub mod member {
        use core::ops::Range;

        pub const LEN: usize = 24;
        pub const ID: Range<usize> = 0..2;
        pub const FLAGS: usize = 2;
        pub const ADDR: Range<usize> = 4..8;
        pub const MAC: Range<usize> = 8..14;
        pub const WEIGHT: Range<usize> = 16..20;
        pub const LOAD: Range<usize> = 20..24;
        /// Reserved bytes (must be zero).
        pub const RESERVED: [Range<usize>; 2] = [3..4, 14..16];
    }
}

/// Member record flag: the member is alive.
const FLAG_ALIVE: u8 = 1 << 0;
/// Member record flag: the member is draining.
const FLAG_DRAINING: u8 = 1 << 1;

const KIND_MEMBERSHIP: u8 = 1;
const KIND_DRAIN: u8 = 2;
const KIND_WEIGHT: u8 = 3;
const KIND_LOAD: u8 = 4;
const KIND_SHUTDOWN: u8 = 5;
const KIND_LEASE: u8 = 6;
const KIND_RELOAD_SERVICES: u8 = 7;
const KIND_EVICT_FLOWS: u8 = 8;
const KIND_PIN_CLIENTS: u8 = 9;

/// One member of the cluster as control sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemberState {
    /// The member's id, stable for the cluster's lifetime.
    pub id: u16,
    /// The member's own address.
    pub addr: Ipv4Addr,
    /// The member's own MAC address.
    pub mac: [u8; 6],
    /// Relative weight for selection.
    pub weight: u32,
    /// Whether failure detection considers it alive.
    pub alive: bool,
    /// Whether it takes no new connections (existing ones finish).
    pub draining: bool,
    /// Its last reported load (finite, `>= 0`; 1.0 = nominal capacity).
    pub load: f32,
}

/// A command from control to a dataplane worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A new membership epoch: the complete member list. Applies to new
    /// connections only.
    Membership {
        /// The epoch, increasing with every membership change.
        epoch: u64,
        /// Digest of the epoch's table (alive, weight, drain of every
        /// member): equal digests mean equal inspector selection. A later
        /// [`Command::Lease`] confirms the epoch by this digest.
        digest: u64,
        /// Every member, at most [`MAX_MEMBERS`], ids unique.
        members: Vec<MemberState>,
    },
    /// Start or stop draining a member.
    Drain {
        /// The member's id.
        member: u16,
        /// `true` to drain, `false` to undrain.
        draining: bool,
    },
    /// Change a member's weight.
    Weight {
        /// The member's id.
        member: u16,
        /// The new weight.
        weight: u32,
    },
    /// A member's new load report.
    Load {
        /// The member's id.
        member: u16,
        /// The load (finite, `>= 0`).
        load: f32,
    },
    /// Stop the worker.
    Shutdown,
    /// The fence: the worker may claim new connections until `until_ns`
    /// (`CLOCK_MONOTONIC`, see [`crate::monotonic_ns`]) and no longer; and
    /// every live member has confirmed epoch (`confirmed_epoch`,
    /// `confirmed_digest`), so the worker may forget the tables it kept from
    /// before that epoch. Control sends one every interval while it holds a
    /// lease; `until_ns = 0` revokes the lease at once.
    Lease {
        /// End of the lease, `CLOCK_MONOTONIC` nanoseconds.
        until_ns: u64,
        /// The newest epoch all live members announce (0: none yet).
        confirmed_epoch: u64,
        /// Its table digest.
        confirmed_digest: u64,
    },
    /// Re-read the dataplane's config file and apply its service table at
    /// a burst boundary, if its digest is `digest` (what control checked);
    /// existing flows keep their behaviour.
    ReloadServices {
        /// `shoal_config::services_digest` of the table to apply.
        digest: u64,
    },
    /// Remove the flows of client `client` (port `port`, or every port when
    /// 0) from the flow table: an operator's cleanup of stuck connections.
    EvictFlows {
        /// The client's address.
        client: Ipv4Addr,
        /// The client's port, 0 for all.
        port: u16,
    },
    /// Place the new connections of clients in `prefix`/`len` on member
    /// `member` for `secs` seconds from now (an operator's override of the
    /// placement, applied by whichever member inspects them; the inspector
    /// itself is unchanged). `member = 0` removes the pin of that prefix.
    PinClients {
        /// The prefix's address (host bits zero).
        prefix: Ipv4Addr,
        /// The prefix length, 0..=32.
        len: u8,
        /// The member new connections go to; 0 = unpin.
        member: u16,
        /// How long the pin holds, seconds.
        secs: u32,
    },
}

/// Why a command cannot be encoded.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EncodeError {
    /// The buffer is not [`COMMAND_LEN`] bytes.
    #[error("a command is encoded into exactly {expected} bytes, the buffer has {found}")]
    BufferLength {
        /// [`COMMAND_LEN`].
        expected: usize,
        /// The buffer's length.
        found: usize,
    },
    /// A membership with more than [`MAX_MEMBERS`] members.
    #[error("a membership carries at most {MAX_MEMBERS} members, this one has {count}")]
    TooManyMembers {
        /// The number of members.
        count: usize,
    },
    /// Two members of a membership share an id.
    #[error("member id {id} appears more than once in the membership")]
    DuplicateMember {
        /// The repeated id.
        id: u16,
    },
    /// A load that is not finite or is negative.
    #[error("member {member} has load {load}: loads are finite and >= 0")]
    InvalidLoad {
        /// The member's id.
        member: u16,
        /// The offending load.
        load: f32,
    },
    /// A client prefix longer than 32 bits or with host bits set.
    #[error("{prefix}/{len} is not an IPv4 prefix (length 0..=32, host bits zero)")]
    BadPrefix {
        /// The address given.
        prefix: Ipv4Addr,
        /// The length given.
        len: u8,
    },
}

/// Why bytes are not a command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The bytes end before the command does.
    #[error("command truncated: it needs {needed} bytes, only {available} are there")]
    Truncated {
        /// Bytes the command needs.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// Byte 0 is not [`FORMAT_VERSION`].
    #[error("command format version {found} is not supported (this build speaks version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// Byte 1 names no known command.
    #[error("unknown command kind {kind}")]
    UnknownKind {
        /// The kind byte found.
        kind: u8,
    },
    /// A membership with more than [`MAX_MEMBERS`] members.
    #[error("a membership carries at most {MAX_MEMBERS} members, this one claims {count}")]
    TooManyMembers {
        /// The member count found.
        count: usize,
    },
    /// Two members of a membership share an id.
    #[error("member id {id} appears more than once in the membership")]
    DuplicateMember {
        /// The repeated id.
        id: u16,
    },
    /// A flag byte with a value that means nothing.
    #[error("byte {offset} holds {value:#04x}, which is not a valid flag value")]
    InvalidFlag {
        /// Offset of the byte in the command.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// A pin's client prefix longer than 32 bits or with host bits set.
    #[error("{prefix}/{len} is not an IPv4 prefix (length 0..=32, host bits zero)")]
    BadPrefix {
        /// The address found.
        prefix: Ipv4Addr,
        /// The length found.
        len: u8,
    },
    /// A load that is not finite or is negative.
    #[error("member {member} has load {load}: loads are finite and >= 0", load = f32::from_bits(*.bits))]
    InvalidLoad {
        /// The member's id.
        member: u16,
        /// The load's bits.
        bits: u32,
    },
    /// A byte that must be zero is not.
    #[error("byte {offset} is reserved or padding and must be zero, it holds {value:#04x}")]
    NonZero {
        /// Offset of the byte in the command.
        offset: usize,
        /// Its value.
        value: u8,
    },
}

impl Command {
    /// Encodes the command into `buf`, which must be exactly [`COMMAND_LEN`]
    /// bytes; every byte is written (the rest is zero padding). Nothing is
    /// written when the command is invalid.
    pub fn encode(&self, buf: &mut [u8]) -> Result<(), EncodeError> {
        if buf.len() != COMMAND_LEN {
            return Err(EncodeError::BufferLength {
                expected: COMMAND_LEN,
                found: buf.len(),
            });
        }
        self.validate()?;
        buf.fill(0);
        buf[field::VERSION] = FORMAT_VERSION;
        match self {
            Command::Membership {
                epoch,
                digest,
                members,
            } => {
                buf[field::KIND] = KIND_MEMBERSHIP;
                buf[field::MEMBER].copy_from_slice(&(members.len() as u16).to_le_bytes());
                buf[field::EPOCH].copy_from_slice(&epoch.to_le_bytes());
                buf[field::DIGEST].copy_from_slice(&digest.to_le_bytes());
                let records = buf[field::MEMBERS..].chunks_exact_mut(field::member::LEN);
                for (member, record) in members.iter().zip(records) {
                    encode_member(member, record);
                }
            }
            Command::Drain { member, draining } => {
                buf[field::KIND] = KIND_DRAIN;
                buf[field::MEMBER].copy_from_slice(&member.to_le_bytes());
                buf[field::DRAINING] = u8::from(*draining);
            }
            Command::Weight { member, weight } => {
                buf[field::KIND] = KIND_WEIGHT;
                buf[field::MEMBER].copy_from_slice(&member.to_le_bytes());
                buf[field::ARGUMENT].copy_from_slice(&weight.to_le_bytes());
            }
            Command::Load { member, load } => {
                buf[field::KIND] = KIND_LOAD;
                buf[field::MEMBER].copy_from_slice(&member.to_le_bytes());
                buf[field::ARGUMENT].copy_from_slice(&load.to_bits().to_le_bytes());
            }
            Command::Shutdown => buf[field::KIND] = KIND_SHUTDOWN,
            Command::Lease {
                until_ns,
                confirmed_epoch,
                confirmed_digest,
            } => {
                buf[field::KIND] = KIND_LEASE;
                buf[field::LEASE_UNTIL].copy_from_slice(&until_ns.to_le_bytes());
                buf[field::CONFIRMED_EPOCH].copy_from_slice(&confirmed_epoch.to_le_bytes());
                buf[field::CONFIRMED_DIGEST].copy_from_slice(&confirmed_digest.to_le_bytes());
            }
            Command::ReloadServices { digest } => {
                buf[field::KIND] = KIND_RELOAD_SERVICES;
                buf[field::SERVICES_DIGEST].copy_from_slice(&digest.to_le_bytes());
            }
            Command::EvictFlows { client, port } => {
                buf[field::KIND] = KIND_EVICT_FLOWS;
                buf[field::CLIENT_PORT].copy_from_slice(&port.to_le_bytes());
                buf[field::CLIENT_ADDR].copy_from_slice(&client.octets());
            }
            Command::PinClients {
                prefix,
                len,
                member,
                secs,
            } => {
                buf[field::KIND] = KIND_PIN_CLIENTS;
                buf[field::MEMBER].copy_from_slice(&member.to_le_bytes());
                buf[field::CLIENT_ADDR].copy_from_slice(&prefix.octets());
                buf[field::PIN_LEN] = *len;
                buf[field::PIN_SECS].copy_from_slice(&secs.to_le_bytes());
            }
        }
        Ok(())
    }

    /// The command's encoding as an array.
    pub fn to_bytes(&self) -> Result<[u8; COMMAND_LEN], EncodeError> {
        let mut bytes = [0; COMMAND_LEN];
        self.encode(&mut bytes)?;
        Ok(bytes)
    }

    /// Decodes a command. `buf` may be longer than the command (a whole
    /// slot payload): the bytes after it must be zero.
    ///
    /// Allocates only for a membership with members (its `Vec`, once).
    pub fn decode(buf: &[u8]) -> Result<Command, DecodeError> {
        need(buf, field::KIND + 1)?;
        if buf[field::VERSION] != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: buf[field::VERSION],
            });
        }
        let (command, end) = match buf[field::KIND] {
            KIND_MEMBERSHIP => {
                need(buf, field::MEMBERS)?;
                let count = get_u16(buf, field::MEMBER) as usize;
                if count > MAX_MEMBERS {
                    return Err(DecodeError::TooManyMembers { count });
                }
                zero(buf, field::ARGUMENT)?;
                let end = field::MEMBERS + count * field::member::LEN;
                need(buf, end)?;
                let mut members = Vec::with_capacity(count);
                let records = buf[field::MEMBERS..end].chunks_exact(field::member::LEN);
                for (index, record) in records.enumerate() {
                    let member =
                        decode_member(record, field::MEMBERS + index * field::member::LEN)?;
                    if members
                        .iter()
                        .any(|seen: &MemberState| seen.id == member.id)
                    {
                        return Err(DecodeError::DuplicateMember { id: member.id });
                    }
                    members.push(member);
                }
                let epoch = u64::from_le_bytes(array(&buf[field::EPOCH]));
                let digest = u64::from_le_bytes(array(&buf[field::DIGEST]));
                (
                    Command::Membership {
                        epoch,
                        digest,
                        members,
                    },
                    end,
                )
            }
            KIND_DRAIN => {
                need(buf, field::ARGUMENT.end)?;
                let draining = match buf[field::DRAINING] {
                    0 => false,
                    1 => true,
                    value => {
                        return Err(DecodeError::InvalidFlag {
                            offset: field::DRAINING,
                            value,
                        })
                    }
                };
                zero(buf, field::DRAINING + 1..field::ARGUMENT.end)?;
                let member = get_u16(buf, field::MEMBER);
                (Command::Drain { member, draining }, field::ARGUMENT.end)
            }
            KIND_WEIGHT => {
                need(buf, field::ARGUMENT.end)?;
                let member = get_u16(buf, field::MEMBER);
                let weight = u32::from_le_bytes(array(&buf[field::ARGUMENT]));
                (Command::Weight { member, weight }, field::ARGUMENT.end)
            }
            KIND_LOAD => {
                need(buf, field::ARGUMENT.end)?;
                let member = get_u16(buf, field::MEMBER);
                let load = get_load(buf, field::ARGUMENT, member)?;
                (Command::Load { member, load }, field::ARGUMENT.end)
            }
            KIND_SHUTDOWN => (Command::Shutdown, field::KIND + 1),
            KIND_LEASE => {
                need(buf, field::CONFIRMED_DIGEST.end)?;
                zero(buf, field::KIND + 1..field::LEASE_UNTIL.start)?;
                let get = |r: Range<usize>| u64::from_le_bytes(array(&buf[r]));
                (
                    Command::Lease {
                        until_ns: get(field::LEASE_UNTIL),
                        confirmed_epoch: get(field::CONFIRMED_EPOCH),
                        confirmed_digest: get(field::CONFIRMED_DIGEST),
                    },
                    field::CONFIRMED_DIGEST.end,
                )
            }
            KIND_RELOAD_SERVICES => {
                need(buf, field::SERVICES_DIGEST.end)?;
                zero(buf, field::KIND + 1..field::SERVICES_DIGEST.start)?;
                let digest = u64::from_le_bytes(array(&buf[field::SERVICES_DIGEST]));
                (
                    Command::ReloadServices { digest },
                    field::SERVICES_DIGEST.end,
                )
            }
            KIND_EVICT_FLOWS => {
                need(buf, field::CLIENT_ADDR.end)?;
                let port = get_u16(buf, field::CLIENT_PORT);
                let client = Ipv4Addr::from(array::<4>(&buf[field::CLIENT_ADDR]));
                (Command::EvictFlows { client, port }, field::CLIENT_ADDR.end)
            }
            KIND_PIN_CLIENTS => {
                need(buf, field::PIN_SECS.end)?;
                zero(buf, field::PIN_LEN + 1..field::PIN_SECS.start)?;
                let member = get_u16(buf, field::MEMBER);
                let prefix = Ipv4Addr::from(array::<4>(&buf[field::CLIENT_ADDR]));
                let len = buf[field::PIN_LEN];
                if !is_prefix(prefix, len) {
                    return Err(DecodeError::BadPrefix { prefix, len });
                }
                let secs = u32::from_le_bytes(array(&buf[field::PIN_SECS]));
                (
                    Command::PinClients {
                        prefix,
                        len,
                        member,
                        secs,
                    },
                    field::PIN_SECS.end,
                )
            }
            kind => return Err(DecodeError::UnknownKind { kind }),
        };
        zero(buf, end..buf.len())?;
        Ok(command)
    }

    /// Checks what the encoding cannot represent or the receiver would
    /// reject: member count, duplicate ids, loads.
    fn validate(&self) -> Result<(), EncodeError> {
        match self {
            Command::Membership { members, .. } => {
                if members.len() > MAX_MEMBERS {
                    return Err(EncodeError::TooManyMembers {
                        count: members.len(),
                    });
                }
                for (index, member) in members.iter().enumerate() {
                    if members[..index].iter().any(|seen| seen.id == member.id) {
                        return Err(EncodeError::DuplicateMember { id: member.id });
                    }
                    check_load(member.id, member.load)?;
                }
                Ok(())
            }
            Command::Load { member, load } => check_load(*member, *load),
            Command::Drain { .. }
            | Command::Weight { .. }
            | Command::Shutdown
            | Command::Lease { .. }
            | Command::ReloadServices { .. }
            | Command::EvictFlows { .. } => Ok(()),
            Command::PinClients { prefix, len, .. } => {
                if is_prefix(*prefix, *len) {
                    Ok(())
                } else {
                    Err(EncodeError::BadPrefix {
                        prefix: *prefix,
                        len: *len,
                    })
                }
            }
        }
    }
}

/// Whether `prefix`/`len` is an IPv4 prefix: length at most 32, host bits
/// zero.
pub fn is_prefix(prefix: Ipv4Addr, len: u8) -> bool {
    len <= 32 && prefix.to_bits() & !prefix_mask(len) == 0
}

/// The netmask of a prefix length (`len` above 32 is taken as 32).
pub fn prefix_mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

fn encode_member(member: &MemberState, record: &mut [u8]) {
    use field::member as m;
    record[m::ID].copy_from_slice(&member.id.to_le_bytes());
    let mut flags = 0;
    if member.alive {
        flags |= FLAG_ALIVE;
    }
    if member.draining {
        flags |= FLAG_DRAINING;
    }
    record[m::FLAGS] = flags;
    record[m::ADDR].copy_from_slice(&member.addr.octets());
    record[m::MAC].copy_from_slice(&member.mac);
    record[m::WEIGHT].copy_from_slice(&member.weight.to_le_bytes());
    record[m::LOAD].copy_from_slice(&member.load.to_bits().to_le_bytes());
}

/// Decodes one member record (exactly [`field::member::LEN`] bytes) found at
/// `offset` in the command.
fn decode_member(record: &[u8], offset: usize) -> Result<MemberState, DecodeError> {
    use field::member as m;
    for reserved in m::RESERVED {
        zero(record, reserved).map_err(|error| shift(error, offset))?;
    }
    let flags = record[m::FLAGS];
    if flags & !(FLAG_ALIVE | FLAG_DRAINING) != 0 {
        return Err(DecodeError::InvalidFlag {
            offset: offset + m::FLAGS,
            value: flags,
        });
    }
    let id = get_u16(record, m::ID);
    Ok(MemberState {
        id,
        addr: Ipv4Addr::from(array::<4>(&record[m::ADDR])),
        mac: array(&record[m::MAC]),
        weight: u32::from_le_bytes(array(&record[m::WEIGHT])),
        alive: flags & FLAG_ALIVE != 0,
        draining: flags & FLAG_DRAINING != 0,
        load: get_load(record, m::LOAD, id)?,
    })
}

fn check_load(member: u16, load: f32) -> Result<(), EncodeError> {
    if load.is_finite() && load >= 0.0 {
        Ok(())
    } else {
        Err(EncodeError::InvalidLoad { member, load })
    }
}

fn get_load(buf: &[u8], range: Range<usize>, member: u16) -> Result<f32, DecodeError> {
    let bits = u32::from_le_bytes(array(&buf[range]));
    let load = f32::from_bits(bits);
    if load.is_finite() && load >= 0.0 {
        Ok(load)
    } else {
        Err(DecodeError::InvalidLoad { member, bits })
    }
}

fn need(buf: &[u8], needed: usize) -> Result<(), DecodeError> {
    if buf.len() < needed {
        Err(DecodeError::Truncated {
            needed,
            available: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Checks that `buf[range]` (in bounds) is all zero.
fn zero(buf: &[u8], range: Range<usize>) -> Result<(), DecodeError> {
    let start = range.start;
    match buf[range].iter().position(|&byte| byte != 0) {
        None => Ok(()),
        Some(index) => Err(DecodeError::NonZero {
            offset: start + index,
            value: buf[start + index],
        }),
    }
}

/// Makes an offset inside a member record an offset inside the command.
fn shift(error: DecodeError, by: usize) -> DecodeError {
    match error {
        DecodeError::NonZero { offset, value } => DecodeError::NonZero {
            offset: offset + by,
            value,
        },
        other => other,
    }
}

fn get_u16(buf: &[u8], range: Range<usize>) -> u16 {
    u16::from_le_bytes(array(&buf[range]))
}

/// Copies a slice whose length the caller's field ranges guarantee.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u16) -> MemberState {
        MemberState {
            id,
            addr: Ipv4Addr::new(198, 18, 0, id as u8),
            mac: [0x02, 0, 0, 0, 0, id as u8],
            weight: 100 + u32::from(id),
            alive: true,
            draining: id == 2,
            load: 0.25,
        }
    }

    #[test]
    fn membership_bytes_are_exact() {
        let command = Command::Membership {
            epoch: 0x0102_0304_0506_0708,
            digest: 0x1112_1314_1516_1718,
            members: vec![member(1), member(2)],
        };
        let bytes = command.to_bytes().unwrap();
        let mut expected = vec![2, 1, 2, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1];
        expected.extend([0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]);
        expected.extend([1, 0, 0b01, 0, 198, 18, 0, 1, 2, 0, 0, 0, 0, 1, 0, 0]);
        expected.extend([101, 0, 0, 0, 0, 0, 0x80, 0x3e]);
        expected.extend([2, 0, 0b11, 0, 198, 18, 0, 2, 2, 0, 0, 0, 0, 2, 0, 0]);
        expected.extend([102, 0, 0, 0, 0, 0, 0x80, 0x3e]);
        assert_eq!(&bytes[..expected.len()], expected.as_slice());
        assert!(bytes[expected.len()..].iter().all(|&byte| byte == 0));
        assert_eq!(Command::decode(&bytes), Ok(command));
    }

    #[test]
    fn small_commands_bytes_are_exact() {
        let cases: [(Command, &[u8]); 5] = [
            (
                Command::Drain {
                    member: 0x0203,
                    draining: true,
                },
                &[2, 2, 3, 2, 1],
            ),
            (
                Command::Weight {
                    member: 7,
                    weight: 0x0a0b_0c0d,
                },
                &[2, 3, 7, 0, 0x0d, 0x0c, 0x0b, 0x0a],
            ),
            (
                Command::Load {
                    member: 7,
                    load: 1.0,
                },
                &[2, 4, 7, 0, 0, 0, 0x80, 0x3f],
            ),
            (Command::Shutdown, &[2, 5]),
            (
                Command::Lease {
                    until_ns: 0x0102,
                    confirmed_epoch: 3,
                    confirmed_digest: 0x0a0b,
                },
                &[
                    2, 6, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0x0b,
                    0x0a, 0, 0, 0, 0, 0, 0,
                ],
            ),
        ];
        for (command, prefix) in cases {
            let bytes = command.to_bytes().unwrap();
            assert_eq!(&bytes[..prefix.len()], prefix, "{command:?}");
            assert!(bytes[prefix.len()..].iter().all(|&byte| byte == 0));
            assert_eq!(Command::decode(&bytes), Ok(command.clone()));
            // Only the command's own bytes are needed.
            assert_eq!(Command::decode(&bytes[..prefix.len().max(8)]), Ok(command));
        }
    }

    #[test]
    fn reserved_bytes_of_a_member_record_are_checked() {
        let command = Command::Membership {
            epoch: 1,
            digest: 2,
            members: vec![member(1), member(3)],
        };
        let mut bytes = command.to_bytes().unwrap();
        bytes[field::MEMBERS + field::member::LEN + 15] = 9;
        assert_eq!(
            Command::decode(&bytes),
            Err(DecodeError::NonZero {
                offset: 24 + 24 + 15,
                value: 9
            })
        );
    }
}

//! The command ring: a single-producer single-consumer queue of fixed-size
//! command slots in one file, from control ([`CommandSender`], the producer)
//! to one dataplane worker ([`CommandRing`], the consumer). This module owns
//! the ring file's layout, the head/tail protocol and restart detection; the
//! command encoding is `command`'s, the file primitives are `segment`'s.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `SHOALCMR` |
//! | 8..12 | layout version, [`RING_LAYOUT_VERSION`] |
//! | 12..16 | slot size, [`SLOT_LEN`] |
//! | 16..20 | capacity (slots) |
//! | 20..24 | header size, 256 |
//! | 24..32 | instance id (new for every [`CommandRing::create`]) |
//! | 64..80 | head: commands ever sent (checked word, written by the producer) |
//! | 128..144 | tail: commands ever received (checked word, written by the consumer) |
//! | 256.. | `capacity` slots of [`SLOT_LEN`] bytes |
//!
//! Command `n` (counting from 0 over the ring's life) lives in slot
//! `n % capacity`: its sequence `n + 1` (`u64`), the [`COMMAND_LEN`](crate::COMMAND_LEN)-byte
//! command, and a 64-bit digest of both. The producer writes a slot only when
//! `head - tail < capacity` (the consumer is done with it) and publishes it by
//! writing `head = n + 1` in a *separate*, later `pwrite`; the consumer reads
//! a slot only after reading `head > n`, and frees it by writing `tail = n + 1`
//! after it has copied the slot out. So a slot is never written while it is
//! read; the sequence and digest are a check, not a lock: a slot whose
//! sequence is not `n + 1` (a previous lap) or whose digest does not match (a
//! partial copy) is re-read (bounded), then reported as corrupt, never
//! decoded.

use std::path::Path;

use thiserror::Error;

use crate::command::{Command, EncodeError};
use crate::error::{ChannelError, Result};
use crate::segment::{self, get_u32, get_u64, read_header, Segment};

/// Bytes of one ring slot: sequence, command, digest.
pub const SLOT_LEN: usize = 2048;

/// The largest capacity of a command ring.
pub const MAX_CAPACITY: usize = 1 << 16;

/// The ring file layout this build reads and writes.
pub const RING_LAYOUT_VERSION: u32 = 1;

const MAGIC: [u8; 8] = *b"SHOALCMR";
const KIND: &str = "command ring";
const HEADER_LEN: usize = 256;

/// Byte offsets in the ring header and in a slot.
mod field {
    pub const SLOT_LEN: usize = 12;
    pub const CAPACITY: usize = 16;
    pub const HEADER_LEN: usize = 20;
    pub const INSTANCE: usize = 24;
    pub const HEAD: u64 = 64;
    pub const TAIL: u64 = 128;

    /// Fields of a slot.
    pub mod slot {
        use core::ops::Range;

        use crate::command::COMMAND_LEN;

        pub const SEQUENCE: usize = 0;
        pub const COMMAND: Range<usize> = 8..8 + COMMAND_LEN;
        pub const DIGEST: usize = 8 + COMMAND_LEN;
    }
}

const _: () = assert!(field::slot::DIGEST + 8 == SLOT_LEN);

/// The digest of a slot: its sequence and command folded word by word, then
/// mixed, so that any difference in them changes it with overwhelming
/// probability.
fn digest(slot: &[u8; SLOT_LEN]) -> u64 {
    let folded = slot[..field::slot::DIGEST].chunks_exact(8).fold(
        0x5348_4f41_4c53_4c54,
        |state: u64, word| {
            (state ^ get_u64(word, 0))
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(29)
        },
    );
    segment::mix64(folded)
}

/// Why [`CommandSender::send`] did not send.
#[derive(Debug, Error)]
pub enum SendError {
    /// Every slot holds a command the worker has not received yet. Nothing
    /// was overwritten; retry after the worker drains the ring.
    #[error("the command ring is full: the dataplane worker has not received the earlier commands yet; retry later")]
    Full,
    /// The ring was recreated by a restarted worker (or removed). Reopen it
    /// with [`CommandSender::open`] and resend the full state.
    #[error("the command ring was recreated by a restarted dataplane worker (or removed): reopen it and resend the full state")]
    Stale,
    /// The command cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The ring file cannot be read or written, or is corrupt.
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

/// Offset of the slot of command `position`.
fn slot_offset(position: u64, capacity: u64) -> u64 {
    HEADER_LEN as u64 + (position % capacity) * SLOT_LEN as u64
}

/// The length of a ring file of `capacity` slots.
fn file_len(capacity: u64) -> u64 {
    HEADER_LEN as u64 + capacity * SLOT_LEN as u64
}

/// The consumer end of a command ring, owned by one dataplane worker, which
/// creates the file when it starts.
#[derive(Debug)]
pub struct CommandRing {
    segment: Segment,
    capacity: u64,
    instance: u64,
    /// The producer's head as last read: commands up to here can be received
    /// without reading it again.
    head: u64,
    /// Commands received so far.
    tail: u64,
    slot: Box<[u8; SLOT_LEN]>,
}

impl CommandRing {
    /// Creates (or replaces) the ring file at `path` with room for `capacity`
    /// commands and a new instance id, and opens its consumer end.
    ///
    /// The file is written under a temporary name in the same directory and
    /// renamed onto `path`, so a sender never sees a half-initialised ring,
    /// and a sender of the ring it replaces finds out with
    /// [`CommandSender::is_stale`]. The directory must exist.
    pub fn create(path: impl AsRef<Path>, capacity: usize) -> Result<CommandRing> {
        let path = path.as_ref();
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(ChannelError::InvalidCapacity {
                path: path.to_path_buf(),
                capacity,
                max: MAX_CAPACITY,
            });
        }
        let instance = segment::new_instance();
        let mut header = [0_u8; HEADER_LEN];
        header[..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&RING_LAYOUT_VERSION.to_le_bytes());
        header[field::SLOT_LEN..field::SLOT_LEN + 4]
            .copy_from_slice(&(SLOT_LEN as u32).to_le_bytes());
        header[field::CAPACITY..field::CAPACITY + 4]
            .copy_from_slice(&(capacity as u32).to_le_bytes());
        header[field::HEADER_LEN..field::HEADER_LEN + 4]
            .copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        header[field::INSTANCE..field::INSTANCE + 8].copy_from_slice(&instance.to_le_bytes());
        for index in [field::HEAD, field::TAIL] {
            let at = index as usize;
            header[at..at + segment::WORD_LEN].copy_from_slice(&segment::encode_word(0));
        }
        let segment = Segment::create(path, file_len(capacity as u64), |segment| {
            segment.write(&header, 0, "write the header of")
        })?;
        Ok(CommandRing {
            segment,
            capacity: capacity as u64,
            instance,
            head: 0,
            tail: 0,
            slot: Box::new([0; SLOT_LEN]),
        })
    }

    /// Receives the next command, if one is waiting. Never blocks.
    ///
    /// With nothing waiting this is one `pread` of the head index; a command
    /// costs one `pread` of its slot and one `pwrite` of the tail index.
    /// Allocates nothing, except the member list of a
    /// [`Command::Membership`] (one allocation).
    ///
    /// A command that does not decode is consumed and reported as
    /// [`ChannelError::Decode`]; the next call continues with the following
    /// one.
    pub fn try_recv(&mut self) -> Result<Option<Command>> {
        if self.tail == self.head {
            let head = self
                .segment
                .read_word(field::HEAD, "read the head index of")?;
            if head < self.tail || head - self.tail > self.capacity {
                return Err(self.segment.corrupt(format!(
                    "the head index {head} is outside {}..={} (tail {}, capacity {})",
                    self.tail,
                    self.tail + self.capacity,
                    self.tail,
                    self.capacity
                )));
            }
            self.head = head;
            if head == self.tail {
                return Ok(None);
            }
        }
        let position = self.tail;
        self.read_slot(position)?;
        self.segment
            .write_word(field::TAIL, position + 1, "write the tail index of")?;
        self.tail = position + 1;
        Command::decode(&self.slot[field::slot::COMMAND])
            .map(Some)
            .map_err(|source| ChannelError::Decode {
                path: self.segment.path().to_path_buf(),
                position,
                source,
            })
    }

    /// Copies the slot of command `position` into `self.slot` and checks its
    /// sequence and digest.
    fn read_slot(&mut self, position: u64) -> Result<()> {
        let offset = slot_offset(position, self.capacity);
        let expected = position + 1;
        let mut found = (0, false);
        for attempt in 0..segment::READ_ATTEMPTS {
            self.segment
                .read(&mut self.slot[..], offset, "read a command slot of")?;
            found = (
                get_u64(&self.slot[..], field::slot::SEQUENCE),
                get_u64(&self.slot[..], field::slot::DIGEST) == digest(&self.slot),
            );
            if found == (expected, true) {
                return Ok(());
            }
            segment::backoff(attempt);
        }
        let (sequence, digest_matches) = found;
        Err(self.segment.corrupt(format!(
            "the slot of command {position} holds sequence {sequence} (expected {expected}) \
             and a digest that {}",
            if digest_matches {
                "matches"
            } else {
                "does not match"
            }
        )))
    }

    /// This ring's instance id, new every time a ring is created.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// How many commands the ring holds.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The ring file's path.
    pub fn path(&self) -> &Path {
        self.segment.path()
    }
}

/// The producer end of a command ring, used by control. One sender per ring
/// at a time (single producer).
#[derive(Debug)]
pub struct CommandSender {
    segment: Segment,
    capacity: u64,
    instance: u64,
    /// Commands sent so far (the head index this sender last wrote).
    head: u64,
    /// The consumer's tail as last read: while `head - tail < capacity`
    /// there is room without reading it again.
    tail: u64,
    slot: Box<[u8; SLOT_LEN]>,
    stale: bool,
}

impl CommandSender {
    /// Opens the ring at `path`, created by a dataplane worker, checking its
    /// kind, layout version and size. Sending continues after the last
    /// command any earlier sender sent.
    pub fn open(path: impl AsRef<Path>) -> Result<CommandSender> {
        let segment = Segment::open(path.as_ref(), true)?;
        let (capacity, instance) = check_header(&segment)?;
        let head = segment.read_word(field::HEAD, "read the head index of")?;
        let tail = segment.read_word(field::TAIL, "read the tail index of")?;
        if tail > head || head - tail > capacity {
            return Err(segment.corrupt(format!(
                "head index {head} and tail index {tail} are inconsistent with capacity {capacity}"
            )));
        }
        Ok(CommandSender {
            segment,
            capacity,
            instance,
            head,
            tail,
            slot: Box::new([0; SLOT_LEN]),
            stale: false,
        })
    }

    /// Sends one command: [`SendError::Full`] when the worker has not made
    /// room (nothing is overwritten), [`SendError::Stale`] when the worker
    /// has recreated the ring since this sender opened it (for good: reopen).
    ///
    /// Costs one `stat` (the staleness check), one `pwrite` of the slot and
    /// one `pwrite` of the head index, plus one `pread` of the tail index
    /// when the ring looked full.
    pub fn send(&mut self, command: &Command) -> Result<(), SendError> {
        if self.is_stale()? {
            return Err(SendError::Stale);
        }
        command.encode(&mut self.slot[field::slot::COMMAND])?;
        if self.head - self.tail >= self.capacity {
            let tail = self
                .segment
                .read_word(field::TAIL, "read the tail index of")?;
            if tail < self.tail || tail > self.head {
                return Err(self
                    .segment
                    .corrupt(format!(
                        "the tail index {tail} is outside {}..={} (head {})",
                        self.tail, self.head, self.head
                    ))
                    .into());
            }
            self.tail = tail;
            if self.head - self.tail >= self.capacity {
                return Err(SendError::Full);
            }
        }
        let position = self.head;
        self.slot[field::slot::SEQUENCE..field::slot::SEQUENCE + 8]
            .copy_from_slice(&(position + 1).to_le_bytes());
        let digest = digest(&self.slot);
        self.slot[field::slot::DIGEST..].copy_from_slice(&digest.to_le_bytes());
        self.segment.write(
            &self.slot[..],
            slot_offset(position, self.capacity),
            "write a command slot of",
        )?;
        self.segment
            .write_word(field::HEAD, position + 1, "write the head index of")?;
        self.head = position + 1;
        Ok(())
    }

    /// How many sent commands the worker has not received yet (reads the
    /// tail index).
    pub fn pending(&mut self) -> Result<usize> {
        let tail = self
            .segment
            .read_word(field::TAIL, "read the tail index of")?;
        if tail < self.tail || tail > self.head {
            return Err(self.segment.corrupt(format!(
                "the tail index {tail} is outside {}..={} (head {})",
                self.tail, self.head, self.head
            )));
        }
        self.tail = tail;
        Ok((self.head - tail) as usize)
    }

    /// The instance id of the ring now at this sender's path, read again from
    /// its header (open, `pread`, close). Control compares it with the one it
    /// last saw: a different id means the worker restarted, so control
    /// reopens and resends its full state.
    pub fn instance(&self) -> Result<u64> {
        let current = Segment::open(self.segment.path(), false)?;
        let (_, instance) = check_header(&current)?;
        Ok(instance)
    }

    /// The instance id of the ring this sender opened.
    pub fn attached_instance(&self) -> u64 {
        self.instance
    }

    /// Whether the path now names another file (a restarted worker created a
    /// new ring) or nothing. Once stale, always stale: open a new sender.
    /// One `stat`.
    pub fn is_stale(&mut self) -> Result<bool> {
        if !self.stale {
            self.stale = self.segment.is_replaced()?;
        }
        Ok(self.stale)
    }

    /// How many commands the ring holds.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The ring file's path.
    pub fn path(&self) -> &Path {
        self.segment.path()
    }
}

/// Checks a ring file's header and length; returns its capacity and instance.
fn check_header(segment: &Segment) -> Result<(u64, u64)> {
    let (header, len) = read_header::<HEADER_LEN>(segment, KIND, MAGIC, RING_LAYOUT_VERSION)?;
    let bad = |reason: String| ChannelError::BadHeader {
        path: segment.path().to_path_buf(),
        kind: KIND,
        reason,
    };
    let slot_len = get_u32(&header, field::SLOT_LEN);
    if slot_len as usize != SLOT_LEN {
        return Err(bad(format!("slot size {slot_len}, expected {SLOT_LEN}")));
    }
    let header_len = get_u32(&header, field::HEADER_LEN);
    if header_len as usize != HEADER_LEN {
        return Err(bad(format!(
            "header size {header_len}, expected {HEADER_LEN}"
        )));
    }
    let capacity = get_u32(&header, field::CAPACITY) as usize;
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(bad(format!(
            "capacity {capacity} is out of range 1..={MAX_CAPACITY}"
        )));
    }
    let instance = get_u64(&header, field::INSTANCE);
    if instance == 0 {
        return Err(bad("instance id 0".to_owned()));
    }
    let expected = file_len(capacity as u64);
    if len != expected {
        return Err(ChannelError::WrongSize {
            path: segment.path().to_path_buf(),
            kind: KIND,
            expected,
            found: len,
        });
    }
    Ok((capacity as u64, instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot whose command does not decode is consumed and reported; the
    /// next command is received normally.
    #[test]
    fn undecodable_command_is_skipped_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut ring = CommandRing::create(&path, 4).unwrap();
        let mut sender = CommandSender::open(&path).unwrap();
        // Command 0: kind 99, written by hand with valid sequences.
        let mut slot = [0_u8; SLOT_LEN];
        slot[..8].copy_from_slice(&1_u64.to_le_bytes());
        slot[8] = crate::FORMAT_VERSION;
        slot[9] = 99;
        let check = digest(&slot);
        slot[field::slot::DIGEST..].copy_from_slice(&check.to_le_bytes());
        sender
            .segment
            .write(&slot, slot_offset(0, 4), "test")
            .unwrap();
        sender.segment.write_word(field::HEAD, 1, "test").unwrap();
        sender.head = 1;
        sender.send(&Command::Shutdown).unwrap();

        let error = ring.try_recv().unwrap_err();
        assert!(matches!(
            error,
            ChannelError::Decode {
                position: 0,
                source: crate::DecodeError::UnknownKind { kind: 99 },
                ..
            }
        ));
        assert_eq!(ring.try_recv().unwrap(), Some(Command::Shutdown));
        assert_eq!(ring.try_recv().unwrap(), None);
        assert_eq!(sender.pending().unwrap(), 0);
    }

    /// A published head whose slot carries the wrong sequence is corruption,
    /// reported after the bounded re-reads.
    #[test]
    fn slot_with_wrong_sequence_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut ring = CommandRing::create(&path, 2).unwrap();
        let sender = CommandSender::open(&path).unwrap();
        sender.segment.write_word(field::HEAD, 1, "test").unwrap();
        let error = ring.try_recv().unwrap_err();
        assert!(
            matches!(&error, ChannelError::Corrupt { reason, .. }
                if reason == "the slot of command 0 holds sequence 0 (expected 1) and a digest \
                    that does not match"),
            "{error}"
        );
    }

    /// A head index beyond what the capacity allows is corruption.
    #[test]
    fn head_beyond_capacity_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut ring = CommandRing::create(&path, 2).unwrap();
        let sender = CommandSender::open(&path).unwrap();
        sender.segment.write_word(field::HEAD, 3, "test").unwrap();
        let error = ring.try_recv().unwrap_err();
        assert!(error
            .to_string()
            .contains("the head index 3 is outside 0..=2 (tail 0, capacity 2)"));
    }
}

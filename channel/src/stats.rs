//! The stats segment: one file per dataplane worker holding named `u64`
//! values, written by the worker ([`StatsWriter`]) a few times a second and
//! read by control ([`StatsReader`]) without locking. This module owns the
//! file's layout and its seqlock; the file primitives are `segment`'s.
//!
//! Counters and gauges are both plain named values: the channel does not
//! tell them apart. The dataplane and control agree on each name's meaning;
//! the convention is Prometheus's (a name ending in `_total` is a counter,
//! any other name is a gauge, e.g. `flows_active`). A gauge that is not an
//! integer is stored in a fixed-point unit chosen by its name (e.g.
//! `load_permille`).
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `SHOALSTS` |
//! | 8..12 | layout version, [`STATS_LAYOUT_VERSION`] |
//! | 12..16 | number of values `n` |
//! | 16..24 | instance id (new for every [`StatsWriter::create`]) |
//! | 24..28 | bytes of the names region |
//! | 28..64 | zero |
//! | 64.. | names region: per name, its length (`u8`) then its bytes; zero-padded to a multiple of 8 |
//! | then | sequence (checked word, 16 bytes) |
//! | then | block: `written_at_unix_ns`, then the `n` values (`u64` each) |
//!
//! The names are written once, at creation. The block is guarded by the
//! sequence, a seqlock: the writer makes it odd (one `pwrite`), writes the
//! block (one `pwrite`), makes it even (one `pwrite`); the reader reads the
//! sequence, the block, the sequence again, and keeps the block only when
//! both sequences are equal and even, otherwise it retries, up to a bound
//! after which [`ChannelError::Busy`] is returned. A snapshot is therefore
//! never a mix of two writes.

use std::collections::HashSet;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{ChannelError, Result};
use crate::segment::{self, get_u32, get_u64, read_header, Segment};

/// The most values a stats segment holds.
pub const MAX_VALUES: usize = 4096;

/// The longest value name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The stats file layout this build reads and writes.
pub const STATS_LAYOUT_VERSION: u32 = 1;

const MAGIC: [u8; 8] = *b"SHOALSTS";
const KIND: &str = "stats segment";
const HEADER_LEN: usize = 64;

/// Byte offsets in the stats header.
mod field {
    pub const COUNT: usize = 12;
    pub const INSTANCE: usize = 16;
    pub const NAMES_LEN: usize = 24;
    pub const NAMES: usize = 64;
}

/// Where the parts of a stats file of a given shape are.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// Number of values.
    count: usize,
    /// Offset of the sequence word.
    sequence: u64,
    /// Offset of the block (`written_at_unix_ns`, values).
    block: u64,
    /// Bytes of the block.
    block_len: usize,
}

impl Geometry {
    fn new(count: usize, names_len: usize) -> Geometry {
        let sequence = (field::NAMES + names_len.next_multiple_of(8)) as u64;
        let block = sequence + segment::WORD_LEN as u64;
        Geometry {
            count,
            sequence,
            block,
            block_len: 8 * (count + 1),
        }
    }

    fn file_len(&self) -> u64 {
        self.block + self.block_len as u64
    }
}

/// One consistent reading of a stats segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// The instance id of the segment: it changes when the worker restarts
    /// (and its counters start again from zero).
    pub instance: u64,
    /// The value names, in the order the writer gave them.
    pub names: Vec<String>,
    /// The values, one per name, all from the same write.
    pub values: Vec<u64>,
    /// When that write happened (Unix time, nanoseconds); 0 before the first
    /// write, when every value is 0.
    pub written_at_unix_ns: u64,
}

impl StatsSnapshot {
    /// The value called `name`, if there is one.
    pub fn value(&self, name: &str) -> Option<u64> {
        let index = self.names.iter().position(|candidate| candidate == name)?;
        self.values.get(index).copied()
    }
}

/// The writing end of a stats segment: one per dataplane worker.
#[derive(Debug)]
pub struct StatsWriter {
    segment: Segment,
    geometry: Geometry,
    instance: u64,
    /// The sequence last written (odd while a write is under way or failed
    /// half-way).
    sequence: u64,
    block: Vec<u8>,
}

impl StatsWriter {
    /// Creates (or replaces) the stats file at `path` with these value names
    /// and a new instance id; every value starts at 0.
    ///
    /// Names are 1 to [`MAX_NAME_LEN`] bytes of printable ASCII without
    /// spaces (Prometheus label syntax such as `drops_total{reason="ttl"}` is
    /// fine), unique, at most [`MAX_VALUES`] of them. Like the command ring,
    /// the file is written under a temporary name and renamed onto `path`.
    pub fn create(path: impl AsRef<Path>, names: &[&str]) -> Result<StatsWriter> {
        let path = path.as_ref();
        let invalid = |reason: String| ChannelError::InvalidNames {
            path: path.to_path_buf(),
            reason,
        };
        if names.len() > MAX_VALUES {
            return Err(invalid(format!(
                "{} names, at most {MAX_VALUES} are allowed",
                names.len()
            )));
        }
        let mut seen = HashSet::with_capacity(names.len());
        for name in names {
            check_name(name.as_bytes()).map_err(|reason| invalid(format!("{name:?} {reason}")))?;
            if !seen.insert(*name) {
                return Err(invalid(format!("{name:?} appears more than once")));
            }
        }
        let names_len: usize = names.iter().map(|name| 1 + name.len()).sum();
        let geometry = Geometry::new(names.len(), names_len);
        let instance = segment::new_instance();

        let mut head = vec![0_u8; geometry.block as usize];
        head[..8].copy_from_slice(&MAGIC);
        head[8..12].copy_from_slice(&STATS_LAYOUT_VERSION.to_le_bytes());
        head[field::COUNT..field::COUNT + 4].copy_from_slice(&(names.len() as u32).to_le_bytes());
        head[field::INSTANCE..field::INSTANCE + 8].copy_from_slice(&instance.to_le_bytes());
        head[field::NAMES_LEN..field::NAMES_LEN + 4]
            .copy_from_slice(&(names_len as u32).to_le_bytes());
        let mut at = field::NAMES;
        for name in names {
            head[at] = name.len() as u8;
            head[at + 1..at + 1 + name.len()].copy_from_slice(name.as_bytes());
            at += 1 + name.len();
        }
        let sequence = geometry.sequence as usize;
        head[sequence..].copy_from_slice(&segment::encode_word(0));

        let segment = Segment::create(path, geometry.file_len(), |segment| {
            segment.write(&head, 0, "write the header of")
        })?;
        Ok(StatsWriter {
            segment,
            geometry,
            instance,
            sequence: 0,
            block: vec![0; geometry.block_len],
        })
    }

    /// Publishes `values` (one per name, in the names' order), stamped with
    /// the current wall-clock time. Three `pwrite`s; allocates nothing.
    pub fn write(&mut self, values: &[u64]) -> Result<()> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        self.write_at(values, now)
    }

    /// Publishes `values` stamped with `written_at_unix_ns`.
    pub fn write_at(&mut self, values: &[u64], written_at_unix_ns: u64) -> Result<()> {
        if values.len() != self.geometry.count {
            return Err(ChannelError::ValueCount {
                path: self.segment.path().to_path_buf(),
                expected: self.geometry.count,
                found: values.len(),
            });
        }
        self.block[..8].copy_from_slice(&written_at_unix_ns.to_le_bytes());
        for (bytes, value) in self.block[8..].chunks_exact_mut(8).zip(values) {
            bytes.copy_from_slice(&value.to_le_bytes());
        }
        // Odd: a write is under way. After a write that failed half-way the
        // sequence is already odd; move on to the next odd number.
        let begin = (self.sequence + 1) | 1;
        self.segment
            .write_word(self.geometry.sequence, begin, "write the sequence of")?;
        self.sequence = begin;
        self.segment
            .write(&self.block, self.geometry.block, "write the values of")?;
        self.segment
            .write_word(self.geometry.sequence, begin + 1, "write the sequence of")?;
        self.sequence = begin + 1;
        Ok(())
    }

    /// This segment's instance id.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The stats file's path.
    pub fn path(&self) -> &Path {
        self.segment.path()
    }
}

/// Why a name cannot be a value name, if it cannot.
fn check_name(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name.len() > MAX_NAME_LEN {
        Err("is longer than 255 bytes")
    } else if !name.iter().all(u8::is_ascii_graphic) {
        Err("has a character that is not printable ASCII (or is a space)")
    } else {
        Ok(())
    }
}

/// The reading end of a stats segment, used by control.
#[derive(Debug)]
pub struct StatsReader {
    segment: Segment,
    geometry: Geometry,
    instance: u64,
    names: Vec<String>,
    block: Vec<u8>,
}

impl StatsReader {
    /// Opens the stats file at `path`, checking its kind, layout version,
    /// names and size.
    pub fn open(path: impl AsRef<Path>) -> Result<StatsReader> {
        let segment = Segment::open(path.as_ref(), false)?;
        let (header, len) = read_header::<HEADER_LEN>(&segment, KIND, MAGIC, STATS_LAYOUT_VERSION)?;
        let bad = |reason: String| ChannelError::BadHeader {
            path: segment.path().to_path_buf(),
            kind: KIND,
            reason,
        };
        let count = get_u32(&header, field::COUNT) as usize;
        if count > MAX_VALUES {
            return Err(bad(format!(
                "{count} values, at most {MAX_VALUES} are allowed"
            )));
        }
        let instance = get_u64(&header, field::INSTANCE);
        if instance == 0 {
            return Err(bad("instance id 0".to_owned()));
        }
        let names_len = get_u32(&header, field::NAMES_LEN) as usize;
        if names_len > count * (1 + MAX_NAME_LEN) {
            return Err(bad(format!(
                "a names region of {names_len} bytes for {count} names"
            )));
        }
        let geometry = Geometry::new(count, names_len);
        if len != geometry.file_len() {
            return Err(ChannelError::WrongSize {
                path: segment.path().to_path_buf(),
                kind: KIND,
                expected: geometry.file_len(),
                found: len,
            });
        }
        let mut region = vec![0; names_len];
        segment.read(&mut region, field::NAMES as u64, "read the names of")?;
        let names = parse_names(&region, count).map_err(bad)?;
        Ok(StatsReader {
            segment,
            geometry,
            instance,
            names,
            block: vec![0; geometry.block_len],
        })
    }

    /// Reads a consistent snapshot: three `pread`s per attempt, retried while
    /// the writer is in the middle of a write, [`ChannelError::Busy`] after
    /// a bounded number of attempts.
    pub fn read(&mut self) -> Result<StatsSnapshot> {
        let offset = self.geometry.sequence;
        for attempt in 0..segment::READ_ATTEMPTS {
            let begin = self
                .segment
                .read_word_once(offset, "read the sequence of")?;
            if let Some(begin) = begin.filter(|begin| begin & 1 == 0) {
                self.segment
                    .read(&mut self.block, self.geometry.block, "read the values of")?;
                let end = self
                    .segment
                    .read_word_once(offset, "read the sequence of")?;
                if end == Some(begin) {
                    return Ok(self.snapshot());
                }
            }
            segment::backoff(attempt);
        }
        Err(ChannelError::Busy {
            path: self.segment.path().to_path_buf(),
            attempts: segment::READ_ATTEMPTS,
        })
    }

    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            instance: self.instance,
            names: self.names.clone(),
            values: self.block[8..]
                .chunks_exact(8)
                .map(|bytes| get_u64(bytes, 0))
                .collect(),
            written_at_unix_ns: get_u64(&self.block, 0),
        }
    }

    /// The segment's instance id (read at open).
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The value names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the path now names another file (the worker restarted and
    /// created a new segment) or nothing: this reader then only sees the old
    /// worker's last values; open a new one. One `stat`.
    pub fn is_stale(&self) -> Result<bool> {
        self.segment.is_replaced()
    }

    /// The stats file's path.
    pub fn path(&self) -> &Path {
        self.segment.path()
    }
}

/// Parses `count` names filling exactly the names region (before padding).
fn parse_names(region: &[u8], count: usize) -> Result<Vec<String>, String> {
    let mut names = Vec::with_capacity(count);
    let mut rest = region;
    for index in 0..count {
        let Some((&len, after)) = rest.split_first() else {
            return Err(format!("the names region ends before name {index}"));
        };
        let len = len as usize;
        if after.len() < len {
            return Err(format!("name {index} runs past the names region"));
        }
        let (name, after) = after.split_at(len);
        check_name(name).map_err(|reason| format!("name {index} {reason}"))?;
        // `check_name` admits ASCII only.
        let name = String::from_utf8_lossy(name).into_owned();
        if names.contains(&name) {
            return Err(format!("name {name:?} appears more than once"));
        }
        names.push(name);
        rest = after;
    }
    if rest.is_empty() {
        Ok(names)
    } else {
        Err(format!("{} bytes after the last name", rest.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_bytes_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats");
        let mut writer = StatsWriter::create(&path, &["a_total", "bc"]).unwrap();
        writer.write_at(&[7, 0x0102], 99).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // 64 header + 11 names padded to 16 + 16 sequence + 24 block.
        assert_eq!(bytes.len(), 64 + 16 + 16 + 24);
        assert_eq!(&bytes[..16], b"SHOALSTS\x01\x00\x00\x00\x02\x00\x00\x00");
        assert_eq!(get_u64(&bytes, 16), writer.instance());
        assert_eq!(&bytes[24..28], &[11, 0, 0, 0]);
        assert!(bytes[28..64].iter().all(|&byte| byte == 0));
        assert_eq!(&bytes[64..80], b"\x07a_total\x02bc\0\0\0\0\0");
        assert_eq!(&bytes[80..96], &segment::encode_word(2));
        assert_eq!(get_u64(&bytes, 96), 99);
        assert_eq!(get_u64(&bytes, 104), 7);
        assert_eq!(get_u64(&bytes, 112), 0x0102);
    }

    /// A block whose sequence stays odd (a writer that died half-way) makes
    /// `read` give up with `Busy` after its bounded attempts.
    #[test]
    fn odd_sequence_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats");
        let writer = StatsWriter::create(&path, &["x"]).unwrap();
        writer
            .segment
            .write_word(writer.geometry.sequence, 3, "test")
            .unwrap();
        let mut reader = StatsReader::open(&path).unwrap();
        let error = reader.read().unwrap_err();
        assert!(matches!(
            error,
            ChannelError::Busy {
                attempts: segment::READ_ATTEMPTS,
                ..
            }
        ));
        assert!(error.to_string().contains(&*path.to_string_lossy()));
    }
}

//! The file underneath a command ring or a stats segment: positioned reads
//! and writes that name the path in every error, checked words (a `u64` that
//! detects a torn read), creation by atomic rename, file identity (how a
//! restart is detected) and instance ids. Knows nothing about what the bytes
//! mean; `ring` and `stats` own their layouts.

use std::fs::{self, File, OpenOptions};
use std::hint;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{ChannelError, Result};

/// Bytes of a checked word: the value, then `mix64(value ^ CHECK_SALT)`.
pub(crate) const WORD_LEN: usize = 16;

/// Salt of a word's check, so that an all-zero word (a file that was never
/// initialised) fails its check.
const CHECK_SALT: u64 = u64::from_le_bytes(*b"SHOALCHK");

/// How many times a reader re-reads a word or a record that is changing
/// under it before it gives up. The writer's change is one `pwrite`, well
/// under a microsecond, unless it is descheduled in the middle; the first
/// attempts spin, the later ones yield the CPU.
pub(crate) const READ_ATTEMPTS: u32 = 1000;

/// The splitmix64 finaliser: a bijection of `u64` with full avalanche.
pub(crate) const fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The bytes of a checked word holding `value`.
pub(crate) fn encode_word(value: u64) -> [u8; WORD_LEN] {
    let mut word = [0; WORD_LEN];
    word[..8].copy_from_slice(&value.to_le_bytes());
    word[8..].copy_from_slice(&mix64(value ^ CHECK_SALT).to_le_bytes());
    word
}

/// The value of a checked word, or `None` when its check does not match (a
/// torn read, or bytes that were never a word).
pub(crate) fn decode_word(word: &[u8; WORD_LEN]) -> Option<u64> {
    let value = get_u64(word, 0);
    (get_u64(word, 8) == mix64(value ^ CHECK_SALT)).then_some(value)
}

/// The little-endian `u64` at `at`. Callers pass fixed offsets into buffers
/// of a fixed, larger size.
pub(crate) fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// The little-endian `u32` at `at`.
pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(bytes)
}

/// Waits a little before attempt `attempt` of a read that raced a writer.
pub(crate) fn backoff(attempt: u32) {
    if attempt < 16 {
        hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

/// A new instance id: different for every file created, by this process or
/// by any other, with overwhelming probability.
///
/// It mixes the wall-clock time in nanoseconds, the process id, the address
/// of a stack variable (randomised per process by ASLR) and a per-process
/// counter through splitmix64. A restarted worker differs in time and pid; two
/// files created by one process differ in the counter. It is not
/// unpredictable (nothing here needs a secret), only unique; 0 is never
/// returned, so a zeroed header is never mistaken for a valid one.
pub(crate) fn new_instance() -> u64 {
    static CREATED: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let pid = u64::from(std::process::id());
    let marker = 0_u8;
    let address = std::ptr::addr_of!(marker) as usize as u64;
    let count = CREATED.fetch_add(1, Ordering::Relaxed);
    let id = mix64(mix64(mix64(nanos) ^ pid.rotate_left(32) ^ count) ^ address);
    id.max(1)
}

/// Identity of a file: device and inode numbers.
type Identity = (u64, u64);

/// An open command ring or stats segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    file: File,
    path: PathBuf,
    identity: Identity,
}

impl Segment {
    /// Creates a file of `len` zero bytes under a temporary name next to
    /// `path`, lets `init` write its header, then renames it onto `path`.
    ///
    /// The rename is atomic: whoever opens `path` finds either the previous
    /// file or the new, fully initialised one, and a process still holding
    /// the previous file keeps its (now unnamed) inode, which is how
    /// [`Segment::is_replaced`] tells it that the file was recreated.
    pub(crate) fn create(
        path: &Path,
        len: u64,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<Segment> {
        let io_error = |action, source| ChannelError::Io {
            path: path.to_path_buf(),
            action,
            source,
        };
        let Some(name) = path.file_name() else {
            return Err(io_error(
                "create",
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            ));
        };
        let mut temporary_name = name.to_os_string();
        temporary_name.push(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            new_instance()
        ));
        let temporary = path.with_file_name(temporary_name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(|source| io_error("create a temporary file for", source))?;
        let result = (|| {
            file.set_len(len)
                .map_err(|source| io_error("size", source))?;
            let metadata = file
                .metadata()
                .map_err(|source| io_error("inspect", source))?;
            let segment = Segment {
                file,
                path: path.to_path_buf(),
                identity: (metadata.dev(), metadata.ino()),
            };
            init(&segment)?;
            fs::rename(&temporary, path).map_err(|source| io_error("rename into place", source))?;
            Ok(segment)
        })();
        if result.is_err() {
            // Best effort: the error being returned is the one that matters.
            let _ = fs::remove_file(&temporary);
        }
        result
    }

    /// Opens an existing file, for reading and writing when `writable`.
    pub(crate) fn open(path: &Path, writable: bool) -> Result<Segment> {
        let io_error = |action, source| ChannelError::Io {
            path: path.to_path_buf(),
            action,
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|source| io_error("open", source))?;
        let metadata = file
            .metadata()
            .map_err(|source| io_error("inspect", source))?;
        Ok(Segment {
            file,
            path: path.to_path_buf(),
            identity: (metadata.dev(), metadata.ino()),
        })
    }

    /// The path the file was created or opened as.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// An I/O error about this file.
    pub(crate) fn io_error(&self, action: &'static str, source: io::Error) -> ChannelError {
        ChannelError::Io {
            path: self.path.clone(),
            action,
            source,
        }
    }

    /// A corruption error about this file.
    pub(crate) fn corrupt(&self, reason: String) -> ChannelError {
        ChannelError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    /// The file's current length.
    pub(crate) fn len(&self) -> Result<u64> {
        let metadata = self
            .file
            .metadata()
            .map_err(|source| self.io_error("inspect", source))?;
        Ok(metadata.len())
    }

    /// Fills `buf` from `offset` (one `pread`, repeated only on a short read).
    pub(crate) fn read(&self, buf: &mut [u8], offset: u64, what: &'static str) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| self.io_error(what, source))
    }

    /// Writes `buf` at `offset` (one `pwrite`, repeated only on a short write).
    pub(crate) fn write(&self, buf: &[u8], offset: u64, what: &'static str) -> Result<()> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|source| self.io_error(what, source))
    }

    /// Reads the checked word at `offset` once: `None` when its check fails.
    pub(crate) fn read_word_once(&self, offset: u64, what: &'static str) -> Result<Option<u64>> {
        let mut word = [0; WORD_LEN];
        self.read(&mut word, offset, what)?;
        Ok(decode_word(&word))
    }

    /// Reads the checked word at `offset`, re-reading a torn word up to
    /// [`READ_ATTEMPTS`] times; a word that never checks is corruption.
    pub(crate) fn read_word(&self, offset: u64, what: &'static str) -> Result<u64> {
        for attempt in 0..READ_ATTEMPTS {
            if let Some(value) = self.read_word_once(offset, what)? {
                return Ok(value);
            }
            backoff(attempt);
        }
        Err(self.corrupt(format!(
            "the word at offset {offset} failed its check in {READ_ATTEMPTS} reads in a row \
             (while trying to {what} the file)"
        )))
    }

    /// Writes `value` as a checked word at `offset` (one `pwrite`).
    pub(crate) fn write_word(&self, offset: u64, value: u64, what: &'static str) -> Result<()> {
        self.write(&encode_word(value), offset, what)
    }

    /// Whether `path` now names another file than the one open here (it was
    /// recreated) or nothing at all (it was removed). One `stat`.
    pub(crate) fn is_replaced(&self) -> Result<bool> {
        match fs::metadata(&self.path) {
            Ok(metadata) => Ok((metadata.dev(), metadata.ino()) != self.identity),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(source) => Err(self.io_error("inspect", source)),
        }
    }
}

/// Reads the first `N` bytes of a file that must be at least `N` bytes long,
/// checking its magic and layout version: the common start of opening any
/// channel file. Returns the header and the file's length.
pub(crate) fn read_header<const N: usize>(
    segment: &Segment,
    kind: &'static str,
    magic: [u8; 8],
    version: u32,
) -> Result<([u8; N], u64)> {
    let len = segment.len()?;
    let mut header = [0; N];
    let available = usize::try_from(len).map_or(N, |len| len.min(N));
    segment.read(&mut header[..available], 0, "read the header of")?;
    let mut found = [0; 8];
    found.copy_from_slice(&header[..8]);
    if found != magic {
        return Err(ChannelError::WrongKind {
            path: segment.path().to_path_buf(),
            expected: kind,
            found,
        });
    }
    if available < N {
        return Err(ChannelError::WrongSize {
            path: segment.path().to_path_buf(),
            kind,
            expected: N as u64,
            found: len,
        });
    }
    let found_version = get_u32(&header, 8);
    if found_version != version {
        return Err(ChannelError::UnsupportedVersion {
            path: segment.path().to_path_buf(),
            kind,
            found: found_version,
            supported: version,
        });
    }
    Ok((header, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_word_round_trips_and_rejects_zeroes_and_mixes() {
        for value in [0, 1, 2, 255, 256, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(decode_word(&encode_word(value)), Some(value));
        }
        assert_eq!(decode_word(&[0; WORD_LEN]), None);
        // A torn read of 255 -> 256: the value's low byte of the new word with
        // everything else of the old one.
        let old = encode_word(255);
        let new = encode_word(256);
        for split in 1..WORD_LEN {
            let mut torn = old;
            torn[..split].copy_from_slice(&new[..split]);
            if torn != old && torn != new {
                assert_eq!(decode_word(&torn), None, "split at {split}");
            }
        }
    }

    #[test]
    fn instances_differ_and_are_never_zero() {
        let ids: Vec<u64> = (0..1000).map(|_| new_instance()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert!(ids.iter().all(|&id| id != 0));
    }
}

//! The errors of the channel's files. Every variant names the file it is
//! about, so an operator can find it; this module owns the messages and
//! nothing else.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::command::DecodeError;

/// The result type of this crate's file operations.
pub type Result<T, E = ChannelError> = std::result::Result<T, E>;

/// An error opening, reading or writing a command ring or a stats segment.
#[derive(Debug, Error)]
pub enum ChannelError {
    /// A system call on the file failed.
    #[error("cannot {action} {path}: {source}", path = .path.display())]
    Io {
        /// The file (or, for creation, the file it was going to become).
        path: PathBuf,
        /// What was being done, e.g. `"read the head index of"`.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with the magic of the expected kind of file.
    #[error(
        "{path} is not a Shoal {expected} (it starts with \"{found}\"); check the path: command \
         rings and stats segments live side by side in the same directory",
        path = .path.display(),
        found = .found.escape_ascii()
    )]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// The kind of file that was expected (`"command ring"`, `"stats segment"`).
        expected: &'static str,
        /// The first eight bytes of the file (zero-padded when it is shorter).
        found: [u8; 8],
    },
    /// The file was written by a build with another layout version.
    #[error(
        "{path}: {kind} layout version {found} is not supported by this build, which reads \
         version {supported}; run shoal-dataplane and shoal-control from the same release",
        path = .path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The kind of file.
        kind: &'static str,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The file's length does not match the geometry its header describes.
    #[error(
        "{path}: {kind} is {found} bytes but its header requires {expected}; the file is \
         truncated or was not written by Shoal",
        path = .path.display()
    )]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// The kind of file.
        kind: &'static str,
        /// The length the header requires.
        expected: u64,
        /// The file's length.
        found: u64,
    },
    /// A header field is out of range.
    #[error("{path}: invalid {kind} header: {reason}", path = .path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// The kind of file.
        kind: &'static str,
        /// Which field and why.
        reason: String,
    },
    /// The ring's indices or a slot are inconsistent: something other than
    /// the one producer and the one consumer wrote to the file.
    #[error(
        "{path}: {reason}; the file is corrupt: restart the dataplane worker to recreate it",
        path = .path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
    /// The stats writer changed the block during every one of a bounded
    /// number of read attempts.
    #[error(
        "{path}: the stats writer changed the values during each of {attempts} read attempts; \
         retry later",
        path = .path.display()
    )]
    Busy {
        /// The file.
        path: PathBuf,
        /// How many attempts were made.
        attempts: u32,
    },
    /// A command in the ring does not decode. The slot has been consumed:
    /// the next `try_recv` continues with the following command.
    #[error(
        "{path}: command {position} is invalid and was skipped: {source}; shoal-control and \
         shoal-dataplane probably come from different releases",
        path = .path.display()
    )]
    Decode {
        /// The ring file.
        path: PathBuf,
        /// The command's position in the ring (0 for the first command ever sent).
        position: u64,
        /// Why it does not decode.
        #[source]
        source: DecodeError,
    },
    /// `CommandRing::create` was given a capacity out of range.
    #[error(
        "{path}: command ring capacity {capacity} is out of range 1..={max}",
        path = .path.display()
    )]
    InvalidCapacity {
        /// The file that was to be created.
        path: PathBuf,
        /// The requested capacity.
        capacity: usize,
        /// The largest capacity allowed.
        max: usize,
    },
    /// `StatsWriter::create` was given unusable value names.
    #[error("{path}: invalid stats names: {reason}", path = .path.display())]
    InvalidNames {
        /// The file that was to be created.
        path: PathBuf,
        /// Which name and why.
        reason: String,
    },
    /// `StatsWriter::write` was given a different number of values than the
    /// segment has names.
    #[error(
        "{path}: {found} values written but the stats segment has {expected} names",
        path = .path.display()
    )]
    ValueCount {
        /// The file.
        path: PathBuf,
        /// The number of names.
        expected: usize,
        /// The number of values given.
        found: usize,
    },
}

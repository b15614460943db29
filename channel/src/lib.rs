//! The channel between `shoal-control` and the dataplane workers of one
//! server: a **command ring** per worker (control → worker: membership
//! epochs, drain, weights, loads, shutdown) and a **stats segment** per
//! worker (worker → control: named counters and gauges).
//!
//! This crate owns the two file formats and their protocols. It knows
//! nothing about packets or the configuration, and it does not decide how
//! often anything is polled: callers do.
//!
//! # Files
//!
//! Both ends meet in a directory on a tmpfs, by default
//! `/dev/shm/shoal-<member>/` ([`default_dir`]); the caller chooses it and
//! creates it. Inside it, worker `w` has [`command_ring_path`]
//! (`commands-<w>`) and [`stats_path`] (`stats-<w>`). The worker creates both
//! when it starts ([`CommandRing::create`], [`StatsWriter::create`]); control
//! opens them ([`CommandSender::open`], [`StatsReader::open`]). Each file is
//! self-describing (magic, layout version, sizes, an instance id) and is
//! checked when opened: a file of the wrong kind, version or size is an error
//! naming the path.
//!
//! # Positioned I/O, not `mmap`
//!
//! `unsafe` is denied outside `dpdk-bindings` (and the dev-only
//! `alloc-count` test allocator and `shoal-prefetch`'s prefetch hint), and
//! mapping a file that
//! another process writes cannot be made safe, so both ends use plain file
//! descriptors and positioned I/O (`pread`/`pwrite` through
//! [`std::os::unix::fs::FileExt`]). Every access is a system call, about
//! 0.2–1 µs on a current x86 server (more with speculative-execution
//! mitigations):
//!
//! | call | system calls |
//! |---|---|
//! | [`CommandRing::try_recv`], nothing waiting | 1 `pread` (16 bytes) |
//! | [`CommandRing::try_recv`], a command | 1 `pread` (2 KiB slot) + 1 `pwrite` (16 bytes), + 1 `pread` when the last-read head is used up |
//! | [`CommandSender::send`] | 1 `stat` + 2 `pwrite`s, + 1 `pread` when the ring looked full |
//! | [`StatsWriter::write`] | 3 `pwrite`s |
//! | [`StatsReader::read`] | 3 `pread`s per attempt |
//!
//! So a worker polls its ring from its loop every millisecond or so (about
//! 0.1 % of a core at 1 kHz), never per packet or per burst, and writes its
//! stats a few times a second. Nothing here allocates per call except what a
//! caller receives (a membership's member list, a stats snapshot).
//!
//! # Ordering between processes
//!
//! Both processes' descriptors refer to the same tmpfs inode, whose data is
//! the page cache: a `pwrite` copies into the very pages every later `pread`
//! copies out of, with no per-process cache in between, so visibility is the
//! CPU's cache coherence. What the protocols need is message passing: a
//! writer stores the data (a slot, the stats block) with one `pwrite` and
//! *then* publishes it with another (the head index, the even sequence); a
//! reader loads the published index with one `pread` and *then* the data
//! with another; a reader that sees the publication must see the data.
//!
//! * Between the compiler and the system calls there is nothing to reorder:
//!   a system call is opaque, so the program's order of `pwrite`s and
//!   `pread`s is the order in which they run.
//! * On x86-64 (the platform the dataplane targets) the memory model is
//!   total store order: the kernel's stores of one `pwrite` become visible
//!   before those of a later `pwrite` by the same thread, and a `pread`'s
//!   loads are not reordered before an earlier `pread`'s loads. That is
//!   exactly message passing.
//! * On weakly ordered CPUs (arm64) the kernel's own locking supplies the
//!   barriers: tmpfs reads and writes lock the page's folio before their copy
//!   and unlock it after, and an unlock (release) followed by the next call's
//!   lock (acquire) orders all the accesses of one call before those of the
//!   next, in the writer and in the reader alike.
//!
//! This is an argument from how Linux implements tmpfs, not a promise POSIX
//! makes; the formats are built so that a violation would surface as an
//! error, never as a wrong command or a torn snapshot:
//!
//! * A `pread` racing a `pwrite` of the same bytes may return a mix of old
//!   and new bytes (the kernel's copy is not atomic, even for 8 aligned
//!   bytes). Every index and sequence is therefore a *checked word*: the
//!   value and a 64-bit mix of it; a torn word fails the check and is read
//!   again (bounded).
//! * The stats block is a multi-word record written while it is read: it is
//!   guarded by a seqlock (sequence, data, sequence; see [`StatsReader::read`]).
//! * A ring slot is never written while it is read (single producer, single
//!   consumer, head and tail), but carries its sequence and a 64-bit digest
//!   of sequence and command, so a slot that is not exactly what the head
//!   published (a previous lap, a partial copy) is re-read and then
//!   reported, never decoded as a command.
//!
//! # Restarts
//!
//! [`CommandRing::create`] and [`StatsWriter::create`] write the new file
//! under a temporary name and rename it onto the path, with a new instance
//! id. Control's descriptors still refer to the old file; the path names the
//! new one. [`CommandSender::is_stale`] (and every `send`, which then fails
//! with [`SendError::Stale`]) and [`StatsReader::is_stale`] compare the
//! path's inode with theirs; [`CommandSender::instance`] reads the id of the
//! file now at the path. On a restart control reopens and resends its full
//! state: a command that was written into the old file between the check and
//! the rename is lost, and the full state supersedes it.
//!
//! Instance ids mix the time, the process id and a stack address (see
//! `segment::new_instance`); they are unique, not secret. Files are created
//! with the process's umask; both processes must be able to read and write
//! them.

#![forbid(unsafe_code)]

mod clock;
mod command;
mod error;
pub mod moves;
mod ring;
mod segment;
mod stats;

use std::path::{Path, PathBuf};

pub use clock::monotonic_ns;
pub use command::{
    is_prefix, prefix_mask, Command, DecodeError, EncodeError, MemberState, COMMAND_LEN,
    FORMAT_VERSION, MAX_MEMBERS,
};
pub use error::{ChannelError, Result};
pub use ring::{
    CommandRing, CommandSender, SendError, MAX_CAPACITY, RING_LAYOUT_VERSION, SLOT_LEN,
};
pub use stats::{
    StatsReader, StatsSnapshot, StatsWriter, MAX_NAME_LEN, MAX_VALUES, STATS_LAYOUT_VERSION,
};

/// The default channel directory of member `member`: `/dev/shm/shoal-<member>`.
pub fn default_dir(member: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm/shoal-{member}"))
}

/// The command ring of worker `worker` in channel directory `dir`.
pub fn command_ring_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("commands-{worker}"))
}

/// The stats segment of worker `worker` in channel directory `dir`.
pub fn stats_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("stats-{worker}"))
}

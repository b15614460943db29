//! The worker's write-ahead flow journal file (`flows-<worker>.journal` next
//! to the snapshot, see `pipeline/snapshot.rs` for the entries): opened
//! empty at start (after the previous run's journal was restored), appended
//! with one `write` per burst that created or changed flows, emptied after
//! every snapshot. It owns the file and its error counts, nothing else.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// Entries of the current burst (reused).
    pub(crate) buf: Vec<u8>,
    /// Writes done.
    pub writes: u64,
    /// Bytes written since the last reset.
    pub bytes: u64,
    /// Writes or resets that failed (a restart then loses the flows of the
    /// bursts since the last snapshot, as without a journal).
    pub failures: u64,
    /// A burst changed more flows than the journal batch holds: the caller
    /// should write a snapshot now.
    pub needs_snapshot: bool,
}

impl Journal {
    /// Creates (or empties) the journal at `path`.
    pub fn create(path: &Path) -> std::io::Result<Journal> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        file.set_len(0)?;
        Ok(Journal {
            path: path.to_owned(),
            file,
            buf: Vec::with_capacity(64 * 1024),
            writes: 0,
            bytes: 0,
            failures: 0,
            needs_snapshot: false,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the pending entries (one `write`), if any.
    pub(crate) fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.writes += 1;
                self.bytes += self.buf.len() as u64;
            }
            Err(_) => self.failures += 1,
        }
        self.buf.clear();
    }

    /// Empties the journal (after a snapshot that holds every flow in it).
    pub fn reset(&mut self) {
        if self.file.set_len(0).is_err() {
            self.failures += 1;
        }
        self.bytes = 0;
        self.needs_snapshot = false;
    }
}

//! The owner history of persistent connections (`persist`): a bounded log
//! of the moves this worker saw, newest last (the events and their file
//! format are `shoal_channel::moves`: the worker writes the log next to its
//! flow snapshot, `shoal-control` serves it to `shoalctl flows show`). The
//! log keeps the last [`MOVE_LOG_CAPACITY`] events of the worker: a sample
//! of recent connections, not an archive.

use std::collections::VecDeque;

pub use shoal_channel::moves::{MoveEvent, MoveKind};

/// Events a worker keeps.
pub const MOVE_LOG_CAPACITY: usize = 1024;

/// The bounded log; `generation` changes with every event (the worker
/// rewrites its file only then).
#[derive(Debug, Default)]
pub struct MoveLog {
    events: VecDeque<MoveEvent>,
    generation: u64,
}

impl MoveLog {
    /// Appends `e`, forgetting the oldest event when full.
    pub fn push(&mut self, e: MoveEvent) {
        if self.events.len() == MOVE_LOG_CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(e);
        self.generation += 1;
    }

    /// The events, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &MoveEvent> {
        self.events.iter()
    }

    /// Changes with every event.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The log in the file format (`MoveEvent::line`), oldest first.
    pub fn text(&self) -> String {
        let mut out = String::with_capacity(self.events.len() * 48);
        for e in &self.events {
            e.line(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn the_log_is_bounded_and_counts_generations() {
        let mut log = MoveLog::default();
        let event = |i: u64| MoveEvent {
            unix_ms: i,
            client: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40001),
            kind: MoveKind::Left { to: 2 },
            requests_here: 1,
        };
        for i in 0..MOVE_LOG_CAPACITY as u64 + 5 {
            log.push(event(i));
        }
        assert_eq!(log.events().count(), MOVE_LOG_CAPACITY);
        assert_eq!(log.events().next().map(|e| e.unix_ms), Some(5));
        assert_eq!(log.generation(), MOVE_LOG_CAPACITY as u64 + 5);
        assert!(log.text().starts_with("5 198.18.0.2:40001 left-to 2 1\n"));
        assert_eq!(log.text().lines().count(), MOVE_LOG_CAPACITY);
    }
}

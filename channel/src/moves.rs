//! The owner history of persistent connections, worker → control: each
//! dataplane worker writes the recent moves of the keep-alive connections it
//! served to `moves-<worker>` ([`move_log_path`]) next to its flow snapshot,
//! one [`MoveEvent`] per line ([`MoveEvent::line`]), oldest first, replaced
//! whole (temporary file and rename). `shoal-control` reads them
//! ([`read_move_logs`]) for `shoalctl flows show`.
//!
//! Each member logs its side of a move: a connection *arriving* (its kernel
//! took it: the first request's handover, or a move from another member)
//! and *leaving* (moved to the member of its next request), plus requests
//! served where the connection was instead (`fallback`, `hold-timeout`).
//! Following a connection across the cluster is reading the members its
//! events name.

use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};

/// What happened to a connection on this member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveKind {
    /// This member's kernel took the connection; `from` is the member that
    /// handed it over (the inspector for a first request, the previous
    /// owner for a move; this member itself when it inspected and served
    /// the first request, or took it back after a failed move).
    Arrived {
        /// Member it came from.
        from: u16,
    },
    /// Moved to member `to`, whose next request it is.
    Left {
        /// Member it went to.
        to: u16,
    },
    /// A move to `to` was refused or unanswered: the request is served here.
    Fallback {
        /// Member that did not take it.
        to: u16,
    },
    /// A request for `to` waited longer than the request timeout for the
    /// previous response: served here.
    HoldTimeout {
        /// Member the request belonged to.
        to: u16,
    },
}

impl MoveKind {
    /// The event's word in the file, and its member.
    pub fn word_and_member(self) -> (&'static str, u16) {
        match self {
            MoveKind::Arrived { from } => ("arrived-from", from),
            MoveKind::Left { to } => ("left-to", to),
            MoveKind::Fallback { to } => ("fallback", to),
            MoveKind::HoldTimeout { to } => ("hold-timeout", to),
        }
    }
}

/// One event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveEvent {
    /// Wall-clock time, Unix milliseconds.
    pub unix_ms: u64,
    /// The client's address and port.
    pub client: SocketAddrV4,
    /// What happened.
    pub kind: MoveKind,
    /// Requests the connection had served on this member's kernel when the
    /// event happened (0 on arrival).
    pub requests_here: u32,
}

impl MoveEvent {
    /// The event as a line of the file (with its newline):
    /// `<unix ms> <client addr>:<port> <event> <member id> <requests here>`,
    /// event one of `arrived-from`, `left-to`, `fallback`, `hold-timeout`.
    pub fn line(&self, out: &mut String) {
        let (word, member) = self.kind.word_and_member();
        let _ = writeln!(
            out,
            "{} {} {word} {member} {}",
            self.unix_ms, self.client, self.requests_here
        );
    }

    /// One line of the file back; `None` for a line that is not one.
    pub fn parse(line: &str) -> Option<MoveEvent> {
        let mut w = line.split(' ');
        let unix_ms = w.next()?.parse().ok()?;
        let client = w.next()?.parse().ok()?;
        let word = w.next()?;
        let member = w.next()?.parse().ok()?;
        let requests_here = w.next()?.parse().ok()?;
        if w.next().is_some() {
            return None;
        }
        let kind = match word {
            "arrived-from" => MoveKind::Arrived { from: member },
            "left-to" => MoveKind::Left { to: member },
            "fallback" => MoveKind::Fallback { to: member },
            "hold-timeout" => MoveKind::HoldTimeout { to: member },
            _ => return None,
        };
        Some(MoveEvent {
            unix_ms,
            client,
            kind,
            requests_here,
        })
    }
}

/// Worker `worker`'s move log in `dir`.
pub fn move_log_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("moves-{worker}"))
}

/// Every event of every worker's move log in `dir` (workers 0..`workers`;
/// missing files and lines that do not parse are skipped), oldest first.
pub fn read_move_logs(dir: &Path, workers: usize) -> Vec<MoveEvent> {
    let mut events: Vec<MoveEvent> = (0..workers)
        .filter_map(|w| std::fs::read_to_string(move_log_path(dir, w)).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(MoveEvent::parse)
                .collect::<Vec<_>>()
        })
        .collect();
    events.sort_by_key(|e| e.unix_ms);
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn event(i: u64, kind: MoveKind) -> MoveEvent {
        MoveEvent {
            unix_ms: 1_700_000_000_000 + i,
            client: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40001),
            kind,
            requests_here: i as u32,
        }
    }

    #[test]
    fn lines_round_trip_and_logs_merge_by_time() {
        let kinds = [
            MoveKind::Arrived { from: 1 },
            MoveKind::Left { to: 2 },
            MoveKind::Fallback { to: 3 },
            MoveKind::HoldTimeout { to: 2 },
        ];
        let mut text = String::new();
        for (i, k) in kinds.iter().enumerate() {
            event(i as u64, *k).line(&mut text);
        }
        assert_eq!(
            text,
            "1700000000000 198.18.0.2:40001 arrived-from 1 0\n\
             1700000000001 198.18.0.2:40001 left-to 2 1\n\
             1700000000002 198.18.0.2:40001 fallback 3 2\n\
             1700000000003 198.18.0.2:40001 hold-timeout 2 3\n"
        );
        let back: Vec<MoveEvent> = text.lines().filter_map(MoveEvent::parse).collect();
        assert_eq!(back.len(), 4);
        assert_eq!(back[1], event(1, MoveKind::Left { to: 2 }));
        assert_eq!(MoveEvent::parse("1 198.18.0.2:1 moved 2 0"), None);
        assert_eq!(MoveEvent::parse("1 198.18.0.2:1 left-to 2 0 extra"), None);
        assert_eq!(MoveEvent::parse("garbage"), None);

        let dir = std::env::temp_dir().join(format!("shoal-moves-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let (mut a, mut b) = (String::new(), String::new());
        event(5, MoveKind::Left { to: 3 }).line(&mut a);
        event(2, MoveKind::Arrived { from: 1 }).line(&mut b);
        b.push_str("not a line\n");
        std::fs::write(move_log_path(&dir, 0), a).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(move_log_path(&dir, 1), b).unwrap_or_else(|e| panic!("{e}"));
        let all = read_move_logs(&dir, 3);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            all,
            [
                event(2, MoveKind::Arrived { from: 1 }),
                event(5, MoveKind::Left { to: 3 })
            ]
        );
    }
}

//! Logging of both processes (`shoal-dataplane`, `shoal-control`): the
//! `tracing` macros with levels and fields everywhere, one subscriber set up
//! here.
//!
//! - Level filter from `SHOAL_LOG` (`RUST_LOG` syntax: `warn`,
//!   `info,shoal_control=debug`, ...), default `info`.
//! - On a terminal or a plain file: `2026-12-03T20:01:05.123Z  INFO
//!   shoal_control::daemon: epoch 3 -> 4 member="srv2"`.
//! - Under systemd (`JOURNAL_STREAM` set: stderr is the journal): no
//!   timestamp (journald stamps every line) and a `<N>` syslog priority
//!   prefix (`<3>` error, `<4>` warn, `<6>` info, `<7>` debug and trace),
//!   which journald turns into the entry's priority, so `journalctl -p
//!   warning -u shoal-dataplane` shows warnings and errors only.
//!
//! Logging is for events an operator acts on (membership changes, refused
//! reloads, lost leases), never per packet: the packet path counts, it does
//! not log.

#![forbid(unsafe_code)]

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The environment variable with the level filter.
pub const FILTER_ENV: &str = "SHOAL_LOG";

/// Installs the process's subscriber (once; later calls do nothing).
/// Writes to standard error, without colours (built without the `ansi`
/// feature: logs end up in files and journals).
pub fn init() {
    let filter = EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.event_format(Journald).try_init()
    } else {
        builder.try_init()
    };
}

/// The syslog priority journald reads from a `<N>` line prefix.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// `<N>target: message field=value ...`, one line per event.
struct Journald;

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(writer, "<{}>{}: ", priority(*meta.level()), meta.target())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journald_lines_carry_the_priority_and_the_fields() {
        let buf = Buffer::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(Journald)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "shoal_control::daemon", member = "srv2", epoch = 4, "lease lost");
            tracing::info!(target: "shoal_dataplane", "stopped");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "<4>shoal_control::daemon: lease lost member=\"srv2\" epoch=4\n<6>shoal_dataplane: stopped\n"
        );
    }

    #[test]
    fn journald_priorities() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
        assert_eq!(priority(Level::TRACE), 7);
    }
}

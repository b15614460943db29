//! `shoalctl top`: a live terminal view of the whole cluster — members and
//! their state, epoch and lease, packets, new connections, drops by reason,
//! handoffs and flows, per member and per dataplane worker.
//!
//! It starts from one admin API (`--admin`, as the other commands), learns
//! the members from its `/status` and polls every member's exporter
//! (`/metrics` on the member's address, `--metrics-port`) each interval.
//! Rates are differences of successive samples; the first screen shows
//! totals. A member that does not answer is a row saying so.
//!
//! | file | owns |
//! |---|---|
//! | `poll.rs` | the I/O: one [`poll::Sample`] of the cluster |
//! | `scrape.rs` | the exporter text read back into counters |
//! | `view.rs` | samples to the view-model: rates, sums, drop reasons, states |
//! | `draw.rs` | the view-model drawn with ratatui (screen, `--once`, tests) |
//!
//! This module owns the command line and the terminal loop (keys, pause,
//! refresh); it touches nothing in the daemon.

pub mod draw;
pub mod poll;
pub mod scrape;
pub mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::widgets::Paragraph;

use crate::daemon::DEFAULT_ADMIN;
use draw::Chrome;
use poll::{Poller, Sample};

/// `shoalctl top`'s options.
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Admin API of the member to start from (`control.admin_listen`).
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// File with the admin token (when reads need one: a non-loopback
    /// admin API).
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,
    /// Port of every member's exporter (`control.metrics_listen`), polled
    /// on the member's own address.
    #[arg(long, value_name = "PORT", default_value_t = 9464)]
    pub metrics_port: u16,
    /// Seconds between samples (0.1 to 60).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub interval: f64,
    /// Take two samples one interval apart, print one plain-text frame
    /// with the rates, exit (1 when the starting member did not answer).
    #[arg(long)]
    pub once: bool,
    /// Width of the `--once` frame in columns.
    #[arg(long, value_name = "COLUMNS", default_value_t = 180)]
    pub width: u16,
}

/// Runs `shoalctl top`.
pub fn run(args: &TopArgs) -> ExitCode {
    if !(0.1..=60.0).contains(&args.interval) {
        eprintln!(
            "shoalctl top: --interval {} is out of range (0.1 to 60 seconds)",
            args.interval
        );
        return ExitCode::FAILURE;
    }
    let Ok(token) = crate::cli_admin::token_from(args.token_file.as_deref()) else {
        return ExitCode::FAILURE;
    };
    let interval = Duration::from_secs_f64(args.interval);
    let poller = Poller::new(args.admin, token, args.metrics_port);
    if args.once {
        once(poller, interval, args.width.max(40))
    } else {
        match live(poller, interval) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("shoalctl top: terminal: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

fn once(mut poller: Poller, interval: Duration, width: u16) -> ExitCode {
    let first = poller.sample();
    std::thread::sleep(interval);
    let second = poller.sample();
    let view = view::build(Some(&first), &second);
    let chrome = Chrome {
        interval,
        paused: false,
        interactive: false,
    };
    print!("{}", draw::text(&view, &chrome, width));
    if second.seed_error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Samples every `interval` on a thread of its own until `stop`, so keys
/// are read while a slow member is being polled.
fn spawn_poller(
    mut poller: Poller,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> mpsc::Receiver<Sample> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let started = std::time::Instant::now();
            if tx.send(poller.sample()).is_err() {
                return;
            }
            while started.elapsed() < interval && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20).min(interval));
            }
        }
    });
    rx
}

/// The live screen: q (or Esc, Ctrl-C) quits, p pauses and resumes.
fn live(poller: Poller, interval: Duration) -> std::io::Result<()> {
    let admin = poller.admin;
    let stop = Arc::new(AtomicBool::new(false));
    let samples = spawn_poller(poller, interval, Arc::clone(&stop));
    let mut terminal = ratatui::try_init()?;
    let mut shown: Option<Sample> = None;
    let mut current: Option<view::View> = None;
    let mut paused = false;
    let result = loop {
        let chrome = Chrome {
            interval,
            paused,
            interactive: true,
        };
        let drawn = terminal.draw(|f| match &current {
            Some(v) => draw::draw(f, v, &chrome),
            None => f.render_widget(
                Paragraph::new(format!("shoal top: polling {admin} ...   [q] quit")),
                f.area(),
            ),
        });
        if let Err(e) = drawn {
            break Err(e);
        }
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => break Ok(()),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        break Ok(())
                    }
                    KeyCode::Char('p') => paused = !paused,
                    _ => {}
                },
                Ok(_) => {}
                Err(e) => break Err(e),
            },
            Ok(false) => {}
            Err(e) => break Err(e),
        }
        while let Ok(s) = samples.try_recv() {
            if !paused {
                current = Some(view::build(shown.as_ref(), &s));
                shown = Some(s);
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    ratatui::restore();
    result
}

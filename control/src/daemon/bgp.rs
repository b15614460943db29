//! The BGP announcer's thread (`[control.bgp]`): runs the local
//! application's HTTP health check and `birdc`, both blocking and bounded
//! by timeouts, so the main loop never waits for them. The main loop hands
//! it the member's state every interval ([`BgpHandle::update`]) and reads
//! its latest [`BgpStatus`]; at shutdown it asks for the withdraw and waits
//! for it ([`BgpHandle::shutdown`]). The decisions are `crate::bgp`'s.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use shoal_config::{BgpSettings, HealthUrl};

use crate::bgp::{parse_protocols, Announcer, BgpStatus, Bird, Change, MemberState, Protocol};

/// How long one `birdc` call may take.
const BIRDC_TIMEOUT: Duration = Duration::from_secs(2);
/// Between two `show protocols`.
const SESSION_POLL: Duration = Duration::from_millis(500);
/// The thread's step (decisions follow the membership this fast).
const STEP: Duration = Duration::from_millis(50);

/// `birdc -s SOCKET`.
struct Birdc {
    program: PathBuf,
    socket: PathBuf,
    protocol: String,
}

impl Birdc {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let mut child = Command::new(&self.program)
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.program.display()))?;
        let deadline = Instant::now() + BIRDC_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "birdc {} did not answer within {} s",
                        args.join(" "),
                        BIRDC_TIMEOUT.as_secs()
                    ));
                }
                Err(e) => return Err(format!("birdc {}: {e}", args.join(" "))),
            }
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("birdc {}: {e}", args.join(" ")))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = format!("{text}{err}")
                .lines()
                .rfind(|l| !l.trim().is_empty() && !l.contains(" ready."))
                .unwrap_or("failed")
                .trim()
                .to_owned();
            Err(format!("birdc {}: {last}", args.join(" ")))
        }
    }
}

impl Bird for Birdc {
    fn set_announced(&mut self, announce: bool) -> Result<(), String> {
        let verb = if announce { "enable" } else { "disable" };
        let out = self.run(&[verb, &self.protocol])?;
        // `shoal_vips: enabled` or `shoal_vips: already enabled`.
        if out.contains(&format!("{verb}d")) {
            Ok(())
        } else {
            Err(format!(
                "birdc {verb} {}: unexpected answer '{}'",
                self.protocol,
                out.trim().replace('\n', " / ")
            ))
        }
    }

    fn protocols(&mut self) -> Result<Vec<Protocol>, String> {
        self.run(&["show", "protocols"])
            .map(|t| parse_protocols(&t))
    }
}

/// One HTTP GET of `url`: a 2xx or 3xx status line within `timeout`.
fn health_check(url: &HealthUrl, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&url.addr.into(), timeout)
        .map_err(|e| format!("connect {}: {e}", url.addr))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    stream
        .set_write_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: shoal-control\r\nConnection: close\r\n\r\n",
        url.path,
        url.addr.ip()
    )
    .map_err(|e| format!("send to {}: {e}", url.addr))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read from {}: {e}", url.addr)),
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("");
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP status line from {} within the timeout", url.addr))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP {code} from http://{}{}", url.addr, url.path))
    }
}

/// What the main loop and the thread share.
#[derive(Default)]
struct Shared {
    member: MemberState,
    status: BgpStatus,
    /// The thread has applied the shutdown withdraw (or given up).
    done: bool,
}

/// The main loop's end of the announcer thread.
pub(super) struct BgpHandle {
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
    grace: Duration,
}

impl BgpHandle {
    /// Starts the thread (None when `[control.bgp]` is absent or disabled).
    pub(super) fn start(settings: Option<&BgpSettings>) -> Option<BgpHandle> {
        let b = settings.filter(|b| b.enabled)?;
        let url = match HealthUrl::parse(&b.health_url) {
            Ok(u) => u,
            Err(e) => {
                tracing::error!("control.bgp.health_url {e}: not announcing");
                return None;
            }
        };
        let shared = Arc::new(Mutex::new(Shared::default()));
        let birdc = Birdc {
            program: b.birdc.clone(),
            socket: b.socket.clone(),
            protocol: b.protocol.clone(),
        };
        let announcer = Announcer::new(b.into());
        let interval = Duration::from_millis(b.health_interval_ms);
        let timeout = Duration::from_millis(b.health_timeout_ms);
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("bgp".into())
            .spawn(move || run(announcer, birdc, &url, interval, timeout, &thread_shared))
            .ok();
        tracing::info!(
            "BGP: announcing through birdc -s {} (protocol {}) while live, leased, not draining \
             and {} answers",
            b.socket.display(),
            b.protocol,
            b.health_url
        );
        Some(BgpHandle {
            shared,
            thread,
            grace: Duration::from_millis(b.shutdown_grace_ms),
        })
    }

    /// The member's state now.
    pub(super) fn update(&self, member: MemberState) {
        if let Ok(mut s) = self.shared.lock() {
            s.member.live = member.live;
            s.member.draining = member.draining;
            s.member.lease_lapsed_ms = member.lease_lapsed_ms;
        }
    }

    /// The announcer's latest status.
    pub(super) fn status(&self) -> BgpStatus {
        self.shared
            .lock()
            .map_or_else(|p| p.into_inner().status.clone(), |s| s.status.clone())
    }

    /// Withdraws (bounded by two birdc timeouts) and stops the thread;
    /// returns how long control should stay in the membership after it.
    pub(super) fn shutdown(&mut self) -> Duration {
        if let Ok(mut s) = self.shared.lock() {
            s.member.shutdown = true;
        }
        let deadline = Instant::now() + 2 * BIRDC_TIMEOUT + STEP;
        while Instant::now() < deadline {
            if self.shared.lock().map_or(true, |s| s.done) {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let withdrawn = !self.status().announced;
        if let Some(t) = self.thread.take() {
            if withdrawn {
                let _ = t.join();
            }
        }
        if withdrawn {
            tracing::info!(
                "BGP: VIP withdrawn for the shutdown; leaving the membership in {} ms",
                self.grace.as_millis()
            );
            self.grace
        } else {
            tracing::error!("BGP: could not withdraw the VIP before exiting");
            Duration::ZERO
        }
    }
}

fn log_change(change: Option<Change>) {
    match change {
        Some(Change::Applied(true, reason)) => {
            tracing::info!("BGP: VIP announced ({})", reason.label());
        }
        Some(Change::Applied(false, reason)) => {
            tracing::warn!("BGP: VIP withdrawn ({})", reason.label());
        }
        Some(Change::Failed(e)) => tracing::warn!("BGP: {e} (retrying; counted)"),
        None => {}
    }
}

fn run(
    mut announcer: Announcer,
    mut birdc: Birdc,
    url: &HealthUrl,
    interval: Duration,
    timeout: Duration,
    shared: &Mutex<Shared>,
) {
    let mut next_health = Instant::now();
    let mut next_poll = Instant::now();
    loop {
        let member = shared
            .lock()
            .map_or_else(|p| p.into_inner().member, |s| s.member);
        let now = Instant::now();
        if !member.shutdown && now >= next_health {
            next_health = now + interval;
            let result = health_check(url, timeout);
            if let Err(e) = &result {
                if announcer.status().health_error.as_ref() != Some(e) {
                    tracing::warn!("BGP: health check failed: {e}");
                }
            }
            announcer.health(result);
        }
        if !member.shutdown && now >= next_poll {
            next_poll = now + SESSION_POLL;
            log_change(announcer.poll_sessions(&mut birdc));
        }
        log_change(announcer.step(member, &mut birdc));
        let status = announcer.status();
        let finished = member.shutdown && !status.announced;
        if let Ok(mut s) = shared.lock() {
            s.status = status;
            s.done = finished;
        }
        if finished {
            return;
        }
        thread::sleep(STEP);
    }
}

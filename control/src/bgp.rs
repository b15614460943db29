//! Announcing the VIPs by BGP (routed mode, `[control.bgp]`): whether this
//! member's BIRD 2 should export the VIP routes, decided from the
//! membership, the lease, the drain setting and the local application's
//! health check, and applied through a [`Bird`] (in the daemon `birdc`
//! enabling or disabling the static protocol that holds the routes).
//!
//! This module is pure: the [`Announcer`] state machine, the parser of
//! `birdc show protocols` and the status it publishes. It runs no process
//! and reads no clock (times are passed in); `daemon/bgp.rs` owns the
//! thread, `birdc` and the HTTP health check.
//!
//! Why BIRD 2 and not `GoBGP`: BIRD is one Debian package (`bird2`) with a
//! plain-text control socket, already the router of the lab and of many
//! ToR-facing hosts; announcing is "enable a configured protocol", so the
//! routes, communities and BGP policy stay in the operator's bird.conf
//! and a control restart changes nothing on the wire. `GoBGP` would need
//! its gRPC API (a protobuf and HTTP/2 stack in control) or its CLI, and
//! it keeps routes added through the API only in memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Why the VIP is announced or withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Live, leased, not draining, healthy: announced.
    Serving,
    /// No health check has answered yet (start-up).
    Starting,
    /// This member left the membership (its dataplane stopped).
    NotLive,
    /// Drained by an operator.
    Draining,
    /// The lease has been lapsed longer than `lease_lapse_ms` (or was never held).
    LeaseLapsed,
    /// `health_failures` consecutive failed health checks.
    HealthFailed,
    /// Control is stopping (SIGTERM).
    Shutdown,
}

impl Reason {
    /// The label value (`serving`, `lease_lapsed`).
    pub fn label(self) -> &'static str {
        match self {
            Reason::Serving => "serving",
            Reason::Starting => "starting",
            Reason::NotLive => "not_live",
            Reason::Draining => "draining",
            Reason::LeaseLapsed => "lease_lapsed",
            Reason::HealthFailed => "health_failed",
            Reason::Shutdown => "shutdown",
        }
    }
}

/// What the membership says about this member, once per control interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberState {
    /// In the membership (not withdrawn because its dataplane stopped).
    pub live: bool,
    /// Drained.
    pub draining: bool,
    /// Milliseconds since the dataplane's lease ended; none while it holds one.
    pub lease_lapsed_ms: Option<u64>,
    /// Control is stopping.
    pub shutdown: bool,
}

/// BIRD as the announcer sees it (a fake in tests, `birdc` in the daemon).
pub trait Bird {
    /// Enables (`true`) or disables the protocol holding the VIP routes.
    fn set_announced(&mut self, announce: bool) -> Result<(), String>;
    /// `show protocols`, parsed.
    fn protocols(&mut self) -> Result<Vec<Protocol>, String>;
}

/// One line of `birdc show protocols`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Protocol {
    /// Protocol name (`tor1`, `shoal_vips`).
    pub name: String,
    /// Its kind (`BGP`, `Static`, `Device`).
    pub kind: String,
    /// `up`, `down`, `start`, `stop`.
    pub state: String,
    /// The info column (`Established`, `Active  Socket: Connection refused`).
    pub info: String,
}

impl Protocol {
    /// A BGP session that is established.
    pub fn session_up(&self) -> bool {
        self.state == "up" && self.info.starts_with("Established")
    }
}

/// Parses `birdc show protocols`: the lines after the `Name Proto Table
/// State Since Info` header; the since column (a time, or a date and a
/// time) is skipped.
pub fn parse_protocols(text: &str) -> Vec<Protocol> {
    let mut out = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !in_table {
            in_table = fields.first() == Some(&"Name") && fields.get(1) == Some(&"Proto");
            continue;
        }
        if fields.len() < 4 {
            continue;
        }
        let mut rest = &fields[4..];
        for _ in 0..2 {
            if rest
                .first()
                .is_some_and(|f| f.starts_with(|c: char| c.is_ascii_digit()))
            {
                rest = &rest[1..];
            }
        }
        out.push(Protocol {
            name: fields[0].to_owned(),
            kind: fields[1].to_owned(),
            state: fields[3].to_owned(),
            info: rest.join(" "),
        });
    }
    out
}

/// The settings the state machine uses (from `[control.bgp]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The BIRD protocol holding the VIP routes.
    pub protocol: String,
    /// Consecutive failed health checks that withdraw.
    pub health_failures: u32,
    /// How long a lease may be lapsed before an announced VIP is withdrawn.
    pub lease_lapse_ms: u64,
}

impl From<&shoal_config::BgpSettings> for Settings {
    fn from(b: &shoal_config::BgpSettings) -> Self {
        Settings {
            protocol: b.protocol.clone(),
            health_failures: b.health_failures,
            lease_lapse_ms: b.lease_lapse_ms,
        }
    }
}

/// A change [`Announcer::step`] made (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// BIRD now announces (true) or withdraws (false), for this reason.
    Applied(bool, Reason),
    /// A birdc call failed with a new error (the same error again is not
    /// reported until a call succeeds).
    Failed(String),
}

/// The announcement state machine (see the module documentation).
#[derive(Debug, Clone)]
pub struct Announcer {
    settings: Settings,
    /// Health checks done; consecutive failures.
    health_checks: u64,
    health_failed_in_a_row: u32,
    last_health_error: Option<String>,
    /// What was last decided.
    want: (bool, Reason),
    /// What BIRD was last told successfully (none: unknown, apply).
    applied: Option<bool>,
    /// Successful changes by (announced, reason).
    transitions: BTreeMap<(bool, Reason), u64>,
    birdc_errors: u64,
    /// The last error of a change and of a `show protocols` (each logged
    /// once until its call succeeds), and the newest of the two.
    last_set_error: Option<String>,
    last_poll_error: Option<String>,
    last_error: Option<String>,
    sessions: Vec<Protocol>,
    /// The protocol's own state as BIRD last showed it.
    bird_state: Option<String>,
}

impl Announcer {
    /// A new announcer: withdrawn until the first passing health check.
    pub fn new(settings: Settings) -> Announcer {
        Announcer {
            settings,
            health_checks: 0,
            health_failed_in_a_row: 0,
            last_health_error: None,
            want: (false, Reason::Starting),
            applied: None,
            transitions: BTreeMap::new(),
            birdc_errors: 0,
            last_set_error: None,
            last_poll_error: None,
            last_error: None,
            sessions: Vec::new(),
            bird_state: None,
        }
    }

    /// Records a health check's result (`Err` says why it failed).
    pub fn health(&mut self, result: Result<(), String>) {
        self.health_checks += 1;
        match result {
            Ok(()) => {
                self.health_failed_in_a_row = 0;
                self.last_health_error = None;
            }
            Err(e) => {
                self.health_failed_in_a_row = self.health_failed_in_a_row.saturating_add(1);
                self.last_health_error = Some(e);
            }
        }
    }

    /// Whether the VIP should be announced now, and why.
    pub fn decide(&self, m: MemberState) -> (bool, Reason) {
        let announced = self.applied == Some(true);
        if m.shutdown {
            return (false, Reason::Shutdown);
        }
        if self.health_checks == 0 {
            // Nothing known yet (the member's state arrives with the first
            // control interval, the health with the first check).
            return (false, Reason::Starting);
        }
        if !m.live {
            return (false, Reason::NotLive);
        }
        if m.draining {
            return (false, Reason::Draining);
        }
        if let Some(lapsed) = m.lease_lapsed_ms {
            // A lease lapses briefly whenever a peer dies: an announced
            // member keeps announcing for lease_lapse_ms; one not announced
            // waits for a lease.
            if !announced || lapsed >= self.settings.lease_lapse_ms {
                return (false, Reason::LeaseLapsed);
            }
        }
        if self.health_failed_in_a_row >= self.settings.health_failures {
            return (false, Reason::HealthFailed);
        }
        if !announced && self.health_failed_in_a_row > 0 {
            // Announce only after a check that passed.
            return (false, Reason::HealthFailed);
        }
        (true, Reason::Serving)
    }

    /// Decides and, when BIRD is not in the wanted state (or its state is
    /// unknown, or the last call failed), tells it; returns what changed.
    pub fn step(&mut self, m: MemberState, bird: &mut dyn Bird) -> Option<Change> {
        let want = self.decide(m);
        self.want = want;
        if self.applied == Some(want.0) {
            return None;
        }
        match bird.set_announced(want.0) {
            Ok(()) => {
                self.last_set_error = None;
                self.last_error.clone_from(&self.last_poll_error);
                let changed = self.applied != Some(want.0);
                self.applied = Some(want.0);
                self.bird_state = Some(if want.0 { "up" } else { "down" }.to_owned());
                changed.then(|| {
                    *self.transitions.entry(want).or_insert(0) += 1;
                    Change::Applied(want.0, want.1)
                })
            }
            Err(e) => {
                self.birdc_errors += 1;
                self.last_error = Some(e.clone());
                if self.last_set_error.as_deref() == Some(e.as_str()) {
                    None
                } else {
                    self.last_set_error = Some(e.clone());
                    Some(Change::Failed(e))
                }
            }
        }
    }

    /// Reads BIRD's protocols: the BGP sessions, and the VIP protocol's own
    /// state (a BIRD restarted with the protocol disabled, or enabled by
    /// hand, is told again at the next step).
    pub fn poll_sessions(&mut self, bird: &mut dyn Bird) -> Option<Change> {
        match bird.protocols() {
            Ok(all) => {
                self.bird_state = all
                    .iter()
                    .find(|p| p.name == self.settings.protocol)
                    .map(|p| p.state.clone());
                let enabled = self.bird_state.as_deref().map(|s| s != "down");
                if enabled != self.applied {
                    self.applied = None;
                }
                self.sessions = all.into_iter().filter(|p| p.kind == "BGP").collect();
                self.last_poll_error = None;
                self.last_error.clone_from(&self.last_set_error);
                None
            }
            Err(e) => {
                self.birdc_errors += 1;
                self.sessions.clear();
                self.last_error = Some(e.clone());
                if self.last_poll_error.as_deref() == Some(e.as_str()) {
                    None
                } else {
                    self.last_poll_error = Some(e.clone());
                    Some(Change::Failed(e))
                }
            }
        }
    }

    /// Whether BIRD announces the VIP (as last told or seen).
    pub fn announced(&self) -> bool {
        self.applied == Some(true)
    }

    /// The snapshot `/status`, `shoalctl status` and `/metrics` show.
    pub fn status(&self) -> BgpStatus {
        BgpStatus {
            announced: self.announced(),
            wanted: self.want.0,
            reason: self.want.1.label().to_owned(),
            protocol: self.settings.protocol.clone(),
            protocol_state: self.bird_state.clone(),
            health_checks: self.health_checks,
            health_failed_in_a_row: self.health_failed_in_a_row,
            health_error: self.last_health_error.clone(),
            sessions: self
                .sessions
                .iter()
                .map(|p| SessionStatus {
                    name: p.name.clone(),
                    up: p.session_up(),
                    state: p.state.clone(),
                    info: p.info.clone(),
                })
                .collect(),
            transitions: self
                .transitions
                .iter()
                .map(|(&(to, reason), &count)| Transition {
                    to: if to { "announced" } else { "withdrawn" }.to_owned(),
                    reason: reason.label().to_owned(),
                    count,
                })
                .collect(),
            birdc_errors: self.birdc_errors,
            last_error: self.last_error.clone(),
        }
    }
}

/// The announcer's state (`/status`'s `bgp`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BgpStatus {
    /// BIRD announces the VIP routes.
    pub announced: bool,
    /// What control wants (differs from `announced` while birdc fails).
    pub wanted: bool,
    /// Why (`serving`, `draining`, `lease_lapsed`, `health_failed`, ...).
    pub reason: String,
    /// The BIRD protocol holding the VIP routes.
    pub protocol: String,
    /// Its state as BIRD last showed it (`up`, `down`; none: unknown).
    pub protocol_state: Option<String>,
    /// Health checks done.
    pub health_checks: u64,
    /// Consecutive failed health checks.
    pub health_failed_in_a_row: u32,
    /// Why the last health check failed (none when it passed).
    pub health_error: Option<String>,
    /// The BGP sessions.
    pub sessions: Vec<SessionStatus>,
    /// Changes applied, by direction and reason.
    pub transitions: Vec<Transition>,
    /// Failed birdc calls.
    pub birdc_errors: u64,
    /// The last birdc error (none after a call succeeded).
    pub last_error: Option<String>,
}

/// One BGP session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatus {
    /// BIRD's protocol name of the session.
    pub name: String,
    /// Established.
    pub up: bool,
    /// BIRD's protocol state.
    pub state: String,
    /// BIRD's info column.
    pub info: String,
}

/// Changes to one state for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// `announced` or `withdrawn`.
    pub to: String,
    /// The reason label.
    pub reason: String,
    /// How many times.
    pub count: u64,
}

impl BgpStatus {
    /// `shoalctl status`'s line: `bgp: announced (serving); sessions tor1 up, tor2 Active`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "bgp: {} ({})",
            if self.announced {
                "announced"
            } else {
                "withdrawn"
            },
            self.reason
        );
        if self.wanted != self.announced {
            s.push_str(if self.wanted {
                ", announcing"
            } else {
                ", withdrawing"
            });
        }
        if self.sessions.is_empty() {
            s.push_str("; no BGP session");
        } else {
            let list: Vec<String> = self
                .sessions
                .iter()
                .map(|p| {
                    if p.up {
                        format!("{} up", p.name)
                    } else {
                        let info = if p.info.is_empty() { &p.state } else { &p.info };
                        format!("{} {info}", p.name)
                    }
                })
                .collect();
            s.push_str("; sessions ");
            s.push_str(&list.join(", "));
        }
        if let Some(e) = &self.last_error {
            let _ = write!(s, "; birdc: {e}");
        }
        if let Some(e) = &self.health_error {
            let _ = write!(s, "; health: {e}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BIRD in memory: the protocol's state, calls that fail while `broken`.
    #[derive(Default)]
    struct FakeBird {
        enabled: bool,
        broken: Option<String>,
        calls: Vec<bool>,
        sessions: Vec<Protocol>,
    }

    impl Bird for FakeBird {
        fn set_announced(&mut self, announce: bool) -> Result<(), String> {
            self.calls.push(announce);
            if let Some(e) = &self.broken {
                return Err(e.clone());
            }
            self.enabled = announce;
            Ok(())
        }
        fn protocols(&mut self) -> Result<Vec<Protocol>, String> {
            if let Some(e) = &self.broken {
                return Err(e.clone());
            }
            let mut all = vec![Protocol {
                name: "shoal_vips".into(),
                kind: "Static".into(),
                state: if self.enabled { "up" } else { "down" }.into(),
                info: String::new(),
            }];
            all.extend(self.sessions.iter().cloned());
            Ok(all)
        }
    }

    fn announcer() -> Announcer {
        Announcer::new(Settings {
            protocol: "shoal_vips".into(),
            health_failures: 3,
            lease_lapse_ms: 3000,
        })
    }

    const SERVING: MemberState = MemberState {
        live: true,
        draining: false,
        lease_lapsed_ms: None,
        shutdown: false,
    };

    #[test]
    fn announces_only_after_a_passing_health_check_and_a_lease() {
        let (mut a, mut bird) = (announcer(), FakeBird::default());
        // Unknown state at start: withdrawn is told once.
        assert_eq!(
            a.step(SERVING, &mut bird),
            Some(Change::Applied(false, Reason::Starting))
        );
        assert_eq!(a.step(SERVING, &mut bird), None);
        a.health(Ok(()));
        let no_lease = MemberState {
            lease_lapsed_ms: Some(10),
            ..SERVING
        };
        assert_eq!(a.step(no_lease, &mut bird), None);
        assert_eq!(a.status().reason, "lease_lapsed");
        assert_eq!(
            a.step(SERVING, &mut bird),
            Some(Change::Applied(true, Reason::Serving))
        );
        assert!(bird.enabled);
        assert_eq!(bird.calls, [false, true]);
    }

    #[test]
    fn withdraws_for_each_reason_and_comes_back() {
        for (state, reason) in [
            (
                MemberState {
                    draining: true,
                    ..SERVING
                },
                Reason::Draining,
            ),
            (
                MemberState {
                    live: false,
                    ..SERVING
                },
                Reason::NotLive,
            ),
            (
                MemberState {
                    lease_lapsed_ms: Some(3000),
                    ..SERVING
                },
                Reason::LeaseLapsed,
            ),
            (
                MemberState {
                    shutdown: true,
                    ..SERVING
                },
                Reason::Shutdown,
            ),
        ] {
            let (mut a, mut bird) = (announcer(), FakeBird::default());
            a.health(Ok(()));
            a.step(SERVING, &mut bird);
            assert!(bird.enabled);
            assert_eq!(
                a.step(state, &mut bird),
                Some(Change::Applied(false, reason))
            );
            assert!(!bird.enabled, "{reason:?}");
            assert_eq!(
                a.step(SERVING, &mut bird),
                Some(Change::Applied(true, Reason::Serving))
            );
            let t = a.status().transitions;
            assert!(t
                .iter()
                .any(|t| t.to == "withdrawn" && t.reason == reason.label() && t.count == 1));
        }
    }

    #[test]
    fn a_short_lease_lapse_keeps_the_announcement() {
        let (mut a, mut bird) = (announcer(), FakeBird::default());
        a.health(Ok(()));
        a.step(SERVING, &mut bird);
        let lapsing = MemberState {
            lease_lapsed_ms: Some(2999),
            ..SERVING
        };
        assert_eq!(a.step(lapsing, &mut bird), None);
        assert!(bird.enabled);
    }

    #[test]
    fn health_withdraws_after_n_failures_and_one_success_restores() {
        let (mut a, mut bird) = (announcer(), FakeBird::default());
        a.health(Ok(()));
        a.step(SERVING, &mut bird);
        for _ in 0..2 {
            a.health(Err("connection refused".into()));
            assert_eq!(a.step(SERVING, &mut bird), None);
            assert!(bird.enabled);
        }
        a.health(Err("connection refused".into()));
        assert_eq!(
            a.step(SERVING, &mut bird),
            Some(Change::Applied(false, Reason::HealthFailed))
        );
        assert_eq!(
            a.status().health_error.as_deref(),
            Some("connection refused")
        );
        a.health(Ok(()));
        assert_eq!(
            a.step(SERVING, &mut bird),
            Some(Change::Applied(true, Reason::Serving))
        );
    }

    #[test]
    fn a_failing_birdc_is_reported_once_counted_and_retried() {
        let (mut a, mut bird) = (announcer(), FakeBird::default());
        a.health(Ok(()));
        bird.broken = Some("Unable to connect to server control socket".into());
        assert!(matches!(
            a.step(SERVING, &mut bird),
            Some(Change::Failed(_))
        ));
        assert_eq!(a.step(SERVING, &mut bird), None);
        assert_eq!(a.step(SERVING, &mut bird), None);
        let s = a.status();
        assert_eq!((s.announced, s.wanted, s.birdc_errors), (false, true, 3));
        assert!(
            s.line().contains("withdrawn (serving), announcing"),
            "{}",
            s.line()
        );
        bird.broken = None;
        assert_eq!(
            a.step(SERVING, &mut bird),
            Some(Change::Applied(true, Reason::Serving))
        );
        assert_eq!(a.status().last_error, None);
        assert_eq!(bird.calls, [true, true, true, true]);
    }

    #[test]
    fn alternating_calls_failing_alike_are_each_reported_once() {
        let (mut a, mut bird) = (announcer(), FakeBird::default());
        a.health(Ok(()));
        bird.broken = Some("Connection refused".into());
        let mut reported = 0;
        for _ in 0..5 {
            reported += usize::from(a.poll_sessions(&mut bird).is_some());
            reported += usize::from(a.step(SERVING, &mut bird).is_some());
        }
        assert_eq!(reported, 2);
        assert_eq!(a.status().birdc_errors, 10);
    }

    #[test]
    fn a_restarted_bird_is_told_again() {
        let (mut a, mut bird) = (announcer(), FakeBird::default());
        a.health(Ok(()));
        a.step(SERVING, &mut bird);
        bird.enabled = false; // BIRD restarted: the protocol is disabled in its config
        a.poll_sessions(&mut bird);
        assert!(!a.announced());
        assert_eq!(
            a.step(SERVING, &mut bird),
            Some(Change::Applied(true, Reason::Serving))
        );
        assert!(bird.enabled);
    }

    #[test]
    fn sessions_and_the_status_line() {
        let (mut a, mut bird) = (announcer(), FakeBird::default());
        bird.sessions = parse_protocols(SHOW_PROTOCOLS)
            .into_iter()
            .filter(|p| p.kind == "BGP")
            .collect();
        a.health(Ok(()));
        a.step(SERVING, &mut bird);
        a.poll_sessions(&mut bird);
        let s = a.status();
        assert_eq!(s.protocol_state.as_deref(), Some("up"));
        assert_eq!(
            s.line(),
            "bgp: announced (serving); sessions tor1 up, tor2 Active Socket: Connection refused"
        );
    }

    const SHOW_PROTOCOLS: &str = "\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     20:11:09.438  
shoal_vips Static     master4    down   2026-12-04 20:11:09  
tor1       BGP        ---        up     20:11:09.441  Established   
tor2       BGP        ---        start  20:11:09.441  Active        Socket: Connection refused
";

    #[test]
    fn parses_show_protocols() {
        let p = parse_protocols(SHOW_PROTOCOLS);
        assert_eq!(p.len(), 4);
        assert_eq!(
            p[1],
            Protocol {
                name: "shoal_vips".into(),
                kind: "Static".into(),
                state: "down".into(),
                info: String::new(),
            }
        );
        assert!(p[2].session_up());
        assert!(!p[3].session_up());
        assert_eq!(p[3].info, "Active Socket: Connection refused");
        assert!(parse_protocols("Unable to connect").is_empty());
    }
}

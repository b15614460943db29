//! Request classes, admission limits and scheduling of a splice service
//! (`[[services.dispatch.classes]]`, `[services.dispatch.scheduling]`;
//! CARISMA, seed 003 §7).
//!
//! This module owns the schema of classes and scheduling and their
//! validation. What the dataplane does with them (classify a request head,
//! admit or refuse it, queue it at the serving member) lives in
//! `shoal_l7::classes`.

use serde::{Deserialize, Serialize};

use crate::validate::Problems;

/// The name of the class of requests no written class matches. A class
/// written with this name sets that class's limits and may match nothing
/// itself (no `methods`, `host`, `path_prefix`, `path_regex`, `header` or
/// `cookie`).
pub const DEFAULT_CLASS: &str = "default";

/// Most classes a service may have, the implicit `default` included (a
/// class id is a byte on the packet path; 32 keeps per-class counters and
/// queues small).
pub const MAX_CLASSES: usize = 32;

/// `max_queue` when a class does not say.
pub const DEFAULT_MAX_QUEUE: u32 = 256;
/// `max_wait_ms` when a class does not say.
pub const DEFAULT_MAX_WAIT_MS: u32 = 5_000;
/// `retry_after_s` when a class does not say.
pub const DEFAULT_RETRY_AFTER_S: u32 = 1;
/// Highest `max_queue` of a class.
pub const MAX_QUEUE_BOUND: u32 = 65_536;
/// Longest `path_regex` (bytes).
pub const MAX_REGEX_LEN: usize = 1024;
/// Longest `busy_body` (bytes): the answer must fit a few segments.
pub const MAX_BUSY_BODY: usize = 4096;

/// What a request its class may not admit gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefuseAction {
    /// `503 Service Unavailable` with `Retry-After: retry_after_s` and
    /// `busy_body`, sent by the dataplane itself, then close.
    #[default]
    Busy,
    /// A redirect (`redirect_status`, 302 or 307) to `redirect_to`, then
    /// close: another site or cluster takes the overflow.
    Redirect,
    /// A TCP reset.
    Reset,
}

/// A request class of a splice service (`[[services.dispatch.classes]]`):
/// which requests belong to it (every condition written must hold; the
/// first class that matches wins; requests no class matches are of class
/// [`DEFAULT_CLASS`]), how the serving member schedules them and when they
/// are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestClass {
    /// Name for metric labels and logs; unique in the service.
    pub name: String,
    /// Request methods that match (exact, case-sensitive as HTTP methods
    /// are); empty = any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Host header that matches (case-insensitive, port ignored); none = any.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix that matches (a plain string prefix); none = any.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Regular expression (Rust `regex` syntax, unanchored unless written
    /// with `^`/`$`) the path must match; none = any.
    #[serde(default)]
    pub path_regex: Option<String>,
    /// A header that must be present (name, case-insensitive).
    #[serde(default)]
    pub header: Option<String>,
    /// A cookie that must be present (name).
    #[serde(default)]
    pub cookie: Option<String>,
    /// Strict-priority rank: 0 is served first (policy `priority`).
    #[serde(default)]
    pub priority: u8,
    /// Share under `weighted-fair` (relative to the other classes), 1-1000.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Smallest share of releases this class gets while it has requests
    /// waiting, whatever the policy (0 < share < 1; the classes' minimum
    /// shares add up to at most 1).
    #[serde(default)]
    pub min_share: Option<f64>,
    /// Most requests of this class active in the serving kernel at once;
    /// none = only the service's `scheduling.max_active` bounds them.
    #[serde(default)]
    pub max_active: Option<u32>,
    /// Most requests of this class waiting at a member; beyond it they are
    /// refused.
    #[serde(default = "default_max_queue")]
    pub max_queue: u32,
    /// Longest a request of this class waits at a member before it is
    /// refused (milliseconds).
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u32,
    /// Most requests per second admitted (token bucket holding one second's
    /// worth); none = no rate limit.
    #[serde(default)]
    pub max_rate: Option<f64>,
    /// Refuse while the member that would serve it has a load (share of
    /// capacity, as control publishes) at or above this; none = never.
    #[serde(default)]
    pub max_load: Option<f64>,
    /// Refuse while this class has this many requests in flight in the
    /// cluster as this member sees them (active + queued); none = never.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// What a refused request gets.
    #[serde(default)]
    pub on_refuse: RefuseAction,
    /// `Retry-After` of the busy answer (seconds).
    #[serde(default = "default_retry_after_s")]
    pub retry_after_s: u32,
    /// Body of the busy answer (`text/html` when it starts with `<`, else
    /// `text/plain`); none = "Service Unavailable".
    #[serde(default)]
    pub busy_body: Option<String>,
    /// `on_refuse = "redirect"`: the `Location`, sent as written (an
    /// absolute `http://` or `https://` URL).
    #[serde(default)]
    pub redirect_to: Option<String>,
    /// `on_refuse = "redirect"`: 302 (default) or 307 (the client repeats
    /// the method and body).
    #[serde(default = "default_redirect_status")]
    pub redirect_status: u16,
}

impl RequestClass {
    /// A class named `name` that matches every request and has every default
    /// (what [`DEFAULT_CLASS`] is when the config does not write it).
    pub fn catch_all(name: &str) -> RequestClass {
        RequestClass {
            name: name.to_string(),
            methods: Vec::new(),
            host: None,
            path_prefix: None,
            path_regex: None,
            header: None,
            cookie: None,
            priority: 0,
            weight: default_weight(),
            min_share: None,
            max_active: None,
            max_queue: default_max_queue(),
            max_wait_ms: default_max_wait_ms(),
            max_rate: None,
            max_load: None,
            max_in_flight: None,
            on_refuse: RefuseAction::default(),
            retry_after_s: default_retry_after_s(),
            busy_body: None,
            redirect_to: None,
            redirect_status: default_redirect_status(),
        }
    }

    /// Whether the class has no match condition (it matches every request).
    pub fn matches_all(&self) -> bool {
        self.methods.is_empty()
            && self.host.is_none()
            && self.path_prefix.is_none()
            && self.path_regex.is_none()
            && self.header.is_none()
            && self.cookie.is_none()
    }
}

/// How the serving member releases waiting requests into its kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulingPolicy {
    /// In arrival order, whatever the class.
    #[default]
    Fifo,
    /// The waiting class with the lowest `priority` first (arrival order
    /// among equals); a lower class is never served while a higher one waits.
    Priority,
    /// Every waiting class in turn (equal shares).
    Fair,
    /// Shares in proportion to the classes' `weight`.
    WeightedFair,
}

/// Scheduling at the serving member (`[services.dispatch.scheduling]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduling {
    /// The release policy.
    #[serde(default)]
    pub policy: SchedulingPolicy,
    /// Most requests of the service active in this member's kernel at once
    /// (a request is active from its release until its response is
    /// complete); beyond it requests wait in their class's queue.
    pub max_active: u32,
}

fn default_weight() -> u32 {
    1
}
fn default_max_queue() -> u32 {
    DEFAULT_MAX_QUEUE
}
fn default_max_wait_ms() -> u32 {
    DEFAULT_MAX_WAIT_MS
}
fn default_retry_after_s() -> u32 {
    DEFAULT_RETRY_AFTER_S
}
fn default_redirect_status() -> u16 {
    302
}

/// Whether `name` is an HTTP token (RFC 9110 §5.6.2): header and cookie
/// names, methods.
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks `[[services.dispatch.classes]]` and `[services.dispatch.scheduling]`
/// of one splice service (`key` is `services[i].dispatch`).
pub(crate) fn check_classes(
    classes: &[RequestClass],
    scheduling: Option<&Scheduling>,
    key: &str,
    p: &mut Problems,
) {
    let implicit_default = !classes.iter().any(|c| c.name == DEFAULT_CLASS);
    if classes.len() + usize::from(implicit_default) > MAX_CLASSES {
        p.add(
            format!("{key}.classes"),
            format!(
                "{} classes (with \"{DEFAULT_CLASS}\"); at most {MAX_CLASSES}",
                classes.len() + usize::from(implicit_default)
            ),
        );
    }
    p.duplicates(
        classes
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{key}.classes[{i}].name"), c.name.clone(), &c.name)),
        "class name",
    );
    let mut min_shares = 0.0;
    for (i, c) in classes.iter().enumerate() {
        let k = format!("{key}.classes[{i}]");
        check_class(c, &k, p);
        if let Some(share) = c.min_share {
            if share.is_finite() && share > 0.0 {
                min_shares += share;
            }
        }
        if c.name == DEFAULT_CLASS && !c.matches_all() {
            p.add(
                k,
                format!(
                    "the class \"{DEFAULT_CLASS}\" holds the requests no other class matches; \
                     it takes no match conditions (methods, host, path_prefix, path_regex, \
                     header, cookie): remove them or rename the class"
                ),
            );
        }
    }
    if min_shares > 1.0 {
        p.add(
            format!("{key}.classes"),
            format!("the classes' min_share add up to {min_shares}; at most 1"),
        );
    }
    if let Some(s) = scheduling {
        if s.max_active == 0 {
            p.add(
                format!("{key}.scheduling.max_active"),
                "must be at least 1 (requests active in this member's kernel at once)",
            );
        }
    }
}

fn check_class(c: &RequestClass, k: &str, p: &mut Problems) {
    if c.name.is_empty()
        || !c
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        p.add(
            format!("{k}.name"),
            format!(
                "'{}' is not a class name (letters, digits, '-' and '_': it is a metric label)",
                c.name
            ),
        );
    }
    for (j, m) in c.methods.iter().enumerate() {
        if !is_token(m) {
            p.add(
                format!("{k}.methods[{j}]"),
                format!("'{m}' is not an HTTP method"),
            );
        }
    }
    if let Some(host) = &c.host {
        if host.is_empty() || host.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            p.add(
                format!("{k}.host"),
                format!("'{host}' is not a host name; leave host out to match any host"),
            );
        }
    }
    if let Some(prefix) = &c.path_prefix {
        if !prefix.starts_with('/') {
            p.add(
                format!("{k}.path_prefix"),
                format!("must start with '/' (got '{prefix}')"),
            );
        }
    }
    if let Some(re) = &c.path_regex {
        if re.len() > MAX_REGEX_LEN {
            p.add(
                format!("{k}.path_regex"),
                format!("{} bytes; at most {MAX_REGEX_LEN}", re.len()),
            );
        } else if let Err(e) = regex::Regex::new(re) {
            p.add(
                format!("{k}.path_regex"),
                format!("is not a regular expression: {e}"),
            );
        }
    }
    for (field, name) in [("header", &c.header), ("cookie", &c.cookie)] {
        if let Some(name) = name {
            if !is_token(name) {
                p.add(
                    format!("{k}.{field}"),
                    format!("'{name}' is not a valid {field} name (a non-empty HTTP token)"),
                );
            }
        }
    }
    if !(1..=1000).contains(&c.weight) {
        p.add(
            format!("{k}.weight"),
            format!("{} is out of range 1-1000", c.weight),
        );
    }
    if let Some(share) = c.min_share {
        if !(share > 0.0 && share < 1.0) {
            p.add(
                format!("{k}.min_share"),
                format!("{share} is not a share strictly between 0 and 1"),
            );
        }
    }
    if c.max_active == Some(0) {
        p.add(
            format!("{k}.max_active"),
            "must be at least 1; to refuse every request of a class, set max_in_flight = 0",
        );
    }
    if c.max_queue == 0 || c.max_queue > MAX_QUEUE_BOUND {
        p.add(
            format!("{k}.max_queue"),
            format!("{} is out of range 1-{MAX_QUEUE_BOUND}", c.max_queue),
        );
    }
    if c.max_wait_ms == 0 || c.max_wait_ms > 600_000 {
        p.add(
            format!("{k}.max_wait_ms"),
            format!("{} is out of range 1-600000", c.max_wait_ms),
        );
    }
    if let Some(rate) = c.max_rate {
        if !(rate.is_finite() && rate > 0.0) {
            p.add(
                format!("{k}.max_rate"),
                format!("{rate} is not a positive number of requests per second"),
            );
        }
    }
    if let Some(load) = c.max_load {
        if !(load.is_finite() && load > 0.0) {
            p.add(
                format!("{k}.max_load"),
                format!("{load} is not a positive load (a share of capacity, e.g. 0.9)"),
            );
        }
    }
    if c.retry_after_s > 86_400 {
        p.add(
            format!("{k}.retry_after_s"),
            format!("{} is above a day (86400)", c.retry_after_s),
        );
    }
    if let Some(body) = &c.busy_body {
        if body.len() > MAX_BUSY_BODY {
            p.add(
                format!("{k}.busy_body"),
                format!("{} bytes; at most {MAX_BUSY_BODY}", body.len()),
            );
        }
    }
    match (c.on_refuse, &c.redirect_to) {
        (RefuseAction::Redirect, None) => p.add(
            format!("{k}.redirect_to"),
            "on_refuse = \"redirect\" needs redirect_to (an absolute http:// or https:// URL)",
        ),
        (RefuseAction::Redirect, Some(to)) => {
            let scheme = to.starts_with("http://") || to.starts_with("https://");
            if !scheme || to.bytes().any(|b| b <= b' ' || b == 0x7f) {
                p.add(
                    format!("{k}.redirect_to"),
                    format!("'{to}' is not an absolute http:// or https:// URL without spaces"),
                );
            }
        }
        (_, Some(_)) => p.add(
            format!("{k}.redirect_to"),
            "is used only with on_refuse = \"redirect\"",
        ),
        (_, None) => {}
    }
    if !matches!(c.redirect_status, 302 | 307) {
        p.add(
            format!("{k}.redirect_status"),
            format!("{} is not 302 or 307", c.redirect_status),
        );
    }
}

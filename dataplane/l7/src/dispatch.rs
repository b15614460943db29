//! L7 dispatch: which member processes a spliced request, from its parsed
//! head ([`RequestHead`]), the members' loads and the service's
//! `[services.dispatch]` policy.
//!
//! This module owns the policies and their tables: the URL ring, the rules
//! resolved to member ids and LARD's bounded target map. A [`Dispatcher`] is
//! built off the packet path ([`Dispatcher::new`], rebuilt when weights
//! change); [`Dispatcher::choose`] allocates nothing, reads no clock (time is
//! passed in) and does no I/O. It never names a member of weight 0. It does
//! not parse HTTP (that is [`crate::http`]) and does not hand anything over.
//!
//! Hashes are fixed (MD5 as DTS, no per-process seed), so every server
//! computes the same choice from the same request, membership and loads;
//! only LARD also depends on the requests this dispatcher saw before.
//!
//! # Policies
//!
//! - **url-hash** (DTS §4.4.1, Fig. 9). Each member owns
//!   `URL_VNODES x weight / 100` points on a 64-bit ring, point `v` being the
//!   first 8 bytes of MD5(member name || `v` as u32 big-endian); a request
//!   belongs to the first point at or after the first 8 bytes of MD5 of its
//!   key. The key is the request's *directory* (the path up to and including
//!   its last `/`), so a directory's objects share one member's cache;
//!   requests whose path starts with a `hot_paths` prefix use the *full
//!   path* instead, so a hot directory is spread file by file over every
//!   member. `hot_paths = ["/"]` hashes every request by full path (nginx's
//!   `hash $uri consistent`).
//!
//!   Our reading of DTS Fig. 9 (DTS §4.4.1): line C hashes the MD5 of
//!   the requested URI onto a 63-virtual-node ring, so that the same large
//!   file is always read from the same node's disk cache; line B lets every
//!   node serve the few hottest download directories
//!   (`dir0000000001`..`dir0000000009`), which sit in every node's cache
//!   anyway; line A leaves scripts and small images on the inspecting node.
//!   Here "every node" becomes "spread over every member by full path" (a
//!   pure function of the request, as the dispatcher is not told which
//!   member inspects), and the locality unit of everything else is the
//!   directory. DTS's hot set is written as the prefix
//!   `/downloads/dir000000000` (prefixes are plain string prefixes). We use
//!   [`URL_VNODES`] points per member, not 63, for a tighter balance.
//! - **least-loaded**: the member with the lowest load. With
//!   `load_threshold`, the member the full path hashes to keeps the request
//!   while its load is below the threshold (locality until overload, as
//!   DPR's `max_load`), and only then the least-loaded member takes it.
//!   Ties go to the member ranking highest for the path in rendezvous
//!   order, so idle members share the work instead of the lowest id taking
//!   it all.
//! - **lard**: classic LARD (Pai et al., ASPLOS'98: one member per
//!   target, moved when overloaded): a bounded map from target (the full
//!   path) to member. A mapped target stays with its member unless that
//!   member's load exceeds `load_threshold` (`T_high`) while some member is
//!   below half of it (`T_low`), or its load reaches twice the threshold;
//!   then it moves to the least-loaded member. An unmapped target goes to
//!   the member the path hashes to on the URL ring (classic LARD takes the
//!   least-loaded member; the ring lets inspectors that never talk agree
//!   where a target lives), unless that member meets the move condition.
//!   The map holds [`LARD_ENTRIES`] targets (8-way set-associative, least
//!   recently used evicted) and forgets targets idle for [`LARD_IDLE`].
//!   Without `load_threshold`, [`DEFAULT_LARD_THRESHOLD`].
//! - **cookie**: the named cookie's value picks the member: a value equal to
//!   a member's name pins that member (applications can set it), any other
//!   value is hashed onto the URL ring (MD5 of the value). A request without
//!   the cookie (or with an empty value) falls back to url-hash, so that a
//!   session's first request still has locality.
//! - **rules**: the first rule whose host (case-insensitive, port ignored;
//!   none = any) and path prefix both match names the member; a rule whose
//!   member has weight 0 is skipped (a later rule can be its backup). No
//!   rule: `default_member` if it has weight, else url-hash.

use core::time::Duration;
use std::sync::Arc;

use shoal_config::{Dispatch, DispatchPolicy};

use crate::http::{strip_port, RequestHead};
use shoal_select::{md5_u64, mix64};
use shoal_wire::time::Instant;

/// Points per member of weight 100 on the URL ring. DTS uses 63; with 4
/// members that leaves shares 8% off their weight, 512 about 1%. The ring
/// (16 bytes a point) is shared by clones of a [`Dispatcher`].
pub const URL_VNODES: u32 = 512;

/// Targets a LARD map holds by default (8-way sets; 24 bytes each).
pub const LARD_ENTRIES: usize = 8192;

/// Ways of a LARD set: a new target evicts the least recently used of the
/// eight targets its set holds.
const LARD_WAYS: usize = 8;

/// A LARD target not requested for this long is forgotten: the member's
/// cache has most likely dropped it too, so it is placed anew.
// `Duration::from_mins` needs Rust 1.91; the workspace's MSRV is 1.80.
#[allow(clippy::duration_suboptimal_units)]
pub const LARD_IDLE: Duration = Duration::from_secs(300);

/// LARD's `load_threshold` when the config sets none (loads are shares of
/// capacity in 0..=1, as `shoal-control` computes them).
pub const DEFAULT_LARD_THRESHOLD: f64 = 0.8;

/// Why a [`Dispatcher`] could not be built; the service cannot take spliced
/// requests until the membership or config is fixed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DispatchError {
    /// Every member has weight 0.
    #[error(
        "no member can take requests: every weight is 0 (undrain a member or raise its weight)"
    )]
    NoMembers,
    /// Two members share an id.
    #[error("member id {0} appears twice in the membership")]
    DuplicateMember(u16),
    /// A rule or `default_member` names no member.
    #[error("{key}: '{name}' is not the name of any member")]
    UnknownMember {
        /// The config key (`dispatch.rules[2].member`, `dispatch.default_member`).
        key: String,
        /// The name given.
        name: String,
    },
    /// `policy = "cookie"` without `cookie_name`.
    #[error("dispatch.cookie_name: policy = \"cookie\" needs the name of the cookie whose value picks the server")]
    MissingCookieName,
    /// A `load_threshold` that is not a finite number above 0.
    #[error("dispatch.load_threshold: must be a finite number above 0 (got {0})")]
    BadThreshold(f64),
}

/// Why [`Dispatcher::choose`] chose a member (one counter each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// url-hash: the request's directory on the URL ring.
    Directory,
    /// url-hash: under a hot prefix, the full path on the URL ring.
    HotPath,
    /// least-loaded: the least-loaded member.
    LeastLoaded,
    /// least-loaded with a threshold: the path's ring member, below it.
    BelowThreshold,
    /// lard: the target's member, kept.
    LardKept,
    /// lard: a target seen for the first time (or forgotten), placed.
    LardAssigned,
    /// lard: the target's member was overloaded; moved to the least loaded.
    LardMoved,
    /// cookie: the cookie's value is a member's name.
    CookieNamed,
    /// cookie: the cookie's value on the URL ring.
    CookieHashed,
    /// cookie: no such cookie; url-hash.
    NoCookie,
    /// rules: the rule at this index (in config order) matched.
    Rule(usize),
    /// rules: no rule matched; `default_member`.
    DefaultMember,
    /// rules: no rule matched and no usable `default_member`; url-hash.
    NoRule,
}

impl Reason {
    /// A short name for counters and logs (`rule` for every rule).
    pub fn name(self) -> &'static str {
        match self {
            Reason::Directory => "directory",
            Reason::HotPath => "hot_path",
            Reason::LeastLoaded => "least_loaded",
            Reason::BelowThreshold => "below_threshold",
            Reason::LardKept => "lard_kept",
            Reason::LardAssigned => "lard_assigned",
            Reason::LardMoved => "lard_moved",
            Reason::CookieNamed => "cookie_named",
            Reason::CookieHashed => "cookie_hashed",
            Reason::NoCookie => "no_cookie",
            Reason::Rule(_) => "rule",
            Reason::DefaultMember => "default_member",
            Reason::NoRule => "no_rule",
        }
    }
}

/// The member chosen for a request, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Choice {
    /// The member's cluster-wide id.
    pub member: u16,
    /// Why it was chosen.
    pub reason: Reason,
}

/// A member as the dispatcher sees it.
#[derive(Debug, Clone)]
struct Member {
    id: u16,
    name: String,
    weight: u32,
    /// MD5 of the name: the member's rendezvous seed.
    seed: u64,
}

/// A rule with its member resolved.
#[derive(Debug, Clone)]
struct Rule {
    host: Option<String>,
    prefix: String,
    member: u16,
}

/// One L7 dispatch policy over one membership: built off the packet path,
/// then asked per request. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Dispatcher {
    policy: DispatchPolicy,
    members: Vec<Member>,
    /// The URL ring: (point, member id), sorted; shared by clones.
    ring: Arc<[(u64, u16)]>,
    hot_paths: Vec<String>,
    cookie_name: String,
    threshold: Option<f64>,
    rules: Vec<Rule>,
    default_member: Option<u16>,
    lard: LardMap,
}

impl Dispatcher {
    /// A dispatcher for `config` over `members` as (id, name, weight), with
    /// a LARD map of [`LARD_ENTRIES`] targets. Members of weight 0 are never
    /// chosen.
    pub fn new(
        config: &Dispatch,
        members: &[(u16, &str, u32)],
    ) -> Result<Dispatcher, DispatchError> {
        Dispatcher::with_lard_capacity(config, members, LARD_ENTRIES)
    }

    /// [`Dispatcher::new`] with a LARD map of at least `entries` targets
    /// (rounded up to a power of two, at least 8). Only `policy = "lard"`
    /// allocates the map.
    pub fn with_lard_capacity(
        config: &Dispatch,
        members: &[(u16, &str, u32)],
        entries: usize,
    ) -> Result<Dispatcher, DispatchError> {
        let mut list: Vec<Member> = Vec::with_capacity(members.len());
        for &(id, name, weight) in members {
            if list.iter().any(|m| m.id == id) {
                return Err(DispatchError::DuplicateMember(id));
            }
            list.push(Member {
                id,
                name: name.to_owned(),
                weight,
                seed: md5_u64(&[name.as_bytes()]),
            });
        }
        if list.iter().all(|m| m.weight == 0) {
            return Err(DispatchError::NoMembers);
        }
        let by_name = |key: String, name: &str| {
            list.iter()
                .find(|m| m.name == name)
                .map(|m| m.id)
                .ok_or_else(|| DispatchError::UnknownMember {
                    key,
                    name: name.to_owned(),
                })
        };
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Rule {
                    host: r.host.as_deref().map(|h| strip_port(h).to_owned()),
                    prefix: r.prefix.clone(),
                    member: by_name(format!("dispatch.rules[{i}].member"), &r.member)?,
                })
            })
            .collect::<Result<Vec<_>, DispatchError>>()?;
        let default_member = config
            .default_member
            .as_deref()
            .map(|name| by_name("dispatch.default_member".to_owned(), name))
            .transpose()?;
        let cookie_name = match (config.policy, &config.cookie_name) {
            (DispatchPolicy::Cookie, None) => return Err(DispatchError::MissingCookieName),
            (_, name) => name.clone().unwrap_or_default(),
        };
        if let Some(t) = config.load_threshold {
            if !(t.is_finite() && t > 0.0) {
                return Err(DispatchError::BadThreshold(t));
            }
        }

        let mut ring = Vec::new();
        for m in list.iter().filter(|m| m.weight > 0) {
            let n = (u64::from(URL_VNODES) * u64::from(m.weight)).div_ceil(100);
            for v in 0..n {
                let v = u32::try_from(v).unwrap_or(u32::MAX);
                ring.push((md5_u64(&[m.name.as_bytes(), &v.to_be_bytes()]), m.id));
            }
        }
        ring.sort_unstable();

        let lard = if config.policy == DispatchPolicy::Lard {
            LardMap::new(entries)
        } else {
            LardMap::new(0)
        };
        Ok(Dispatcher {
            policy: config.policy,
            members: list,
            ring: ring.into(),
            hot_paths: config.hot_paths.clone(),
            cookie_name,
            threshold: config.load_threshold,
            rules,
            default_member,
            lard,
        })
    }

    /// Takes over `previous`'s LARD map (a dispatcher rebuilt for new
    /// weights keeps its targets' placement) if both are LARD dispatchers
    /// with maps of the same size. Targets of members that lost their weight
    /// are placed anew when next requested.
    pub fn inherit(&mut self, previous: Dispatcher) {
        if previous.lard.entries.len() == self.lard.entries.len() {
            self.lard = previous.lard;
        }
    }

    /// The policy.
    pub fn policy(&self) -> DispatchPolicy {
        self.policy
    }

    /// Targets the LARD map holds now (0 for other policies).
    pub fn lard_len(&self) -> usize {
        self.lard.entries.iter().filter(|e| e.live).count()
    }

    /// The member that processes the request `head`, given each member's
    /// load as (id, load) (a member not listed has load 0; NaN counts as
    /// overloaded) at time `now`. Allocates nothing.
    pub fn choose(&mut self, head: &RequestHead<'_>, loads: &[(u16, f64)], now: Instant) -> Choice {
        match self.policy {
            DispatchPolicy::UrlHash => self.url_hash(head.path),
            DispatchPolicy::LeastLoaded => self.least_loaded_policy(head.path, loads),
            DispatchPolicy::Lard => self.lard(head.path, loads, now),
            DispatchPolicy::Cookie => self.cookie(head),
            DispatchPolicy::Rules => self.rules(head),
        }
    }

    /// url-hash: the directory, or the full path under a hot prefix.
    fn url_hash(&self, path: &str) -> Choice {
        let hot = self.hot_paths.iter().any(|p| path.starts_with(p.as_str()));
        let (key, reason) = if hot {
            (path, Reason::HotPath)
        } else {
            (directory(path), Reason::Directory)
        };
        Choice {
            member: self.ring_member(md5_u64(&[key.as_bytes()])),
            reason,
        }
    }

    fn least_loaded_policy(&self, path: &str, loads: &[(u16, f64)]) -> Choice {
        let key = md5_u64(&[path.as_bytes()]);
        if let Some(t) = self.threshold {
            let hashed = self.ring_member(key);
            if load_of(loads, hashed) < t {
                return Choice {
                    member: hashed,
                    reason: Reason::BelowThreshold,
                };
            }
        }
        Choice {
            member: self.least_loaded(key, loads),
            reason: Reason::LeastLoaded,
        }
    }

    fn lard(&mut self, path: &str, loads: &[(u16, f64)], now: Instant) -> Choice {
        let key = md5_u64(&[path.as_bytes()]);
        let high = self.threshold.unwrap_or(DEFAULT_LARD_THRESHOLD);
        let min_load = self
            .available()
            .map(|m| load_of(loads, m.id))
            .fold(f64::INFINITY, f64::min);
        let overloaded = |member: u16| {
            let load = load_of(loads, member);
            (load > high && min_load < high / 2.0) || load >= 2.0 * high
        };
        let current = self.lard.get(key, now).filter(|&m| self.weight(m) > 0);
        let (member, reason) = match current {
            Some(m) if !overloaded(m) => (m, Reason::LardKept),
            Some(_) => (self.least_loaded(key, loads), Reason::LardMoved),
            None => {
                let hashed = self.ring_member(key);
                let m = if overloaded(hashed) {
                    self.least_loaded(key, loads)
                } else {
                    hashed
                };
                (m, Reason::LardAssigned)
            }
        };
        self.lard.put(key, member, now);
        Choice { member, reason }
    }

    fn cookie(&self, head: &RequestHead<'_>) -> Choice {
        let value = head.cookie(&self.cookie_name).filter(|v| !v.is_empty());
        let Some(value) = value else {
            return Choice {
                reason: Reason::NoCookie,
                ..self.url_hash(head.path)
            };
        };
        if let Some(m) = self.available().find(|m| m.name.as_bytes() == value) {
            return Choice {
                member: m.id,
                reason: Reason::CookieNamed,
            };
        }
        Choice {
            member: self.ring_member(md5_u64(&[value])),
            reason: Reason::CookieHashed,
        }
    }

    fn rules(&self, head: &RequestHead<'_>) -> Choice {
        let host_matches = |rule: &Rule| {
            rule.host.as_deref().is_none_or(|want| {
                head.host
                    .is_some_and(|host| host.eq_ignore_ascii_case(want))
            })
        };
        let matched = self.rules.iter().enumerate().find(|(_, r)| {
            self.weight(r.member) > 0 && host_matches(r) && head.path.starts_with(r.prefix.as_str())
        });
        if let Some((i, r)) = matched {
            return Choice {
                member: r.member,
                reason: Reason::Rule(i),
            };
        }
        match self.default_member.filter(|&m| self.weight(m) > 0) {
            Some(member) => Choice {
                member,
                reason: Reason::DefaultMember,
            },
            None => Choice {
                reason: Reason::NoRule,
                ..self.url_hash(head.path)
            },
        }
    }

    /// Members that take requests.
    fn available(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.weight > 0)
    }

    /// The weight of member `id` (0 if unknown).
    fn weight(&self, id: u16) -> u32 {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map_or(0, |m| m.weight)
    }

    /// The owner of `h` on the URL ring: the first point at or after it.
    fn ring_member(&self, h: u64) -> u16 {
        let i = self.ring.partition_point(|&(p, _)| p < h);
        // `new` refuses a membership without points, so the ring is not empty.
        self.ring
            .get(i)
            .or_else(|| self.ring.first())
            .map_or(0, |&(_, id)| id)
    }

    /// The available member with the lowest load; ties go to the highest
    /// rendezvous score for `key`, then the lowest id.
    fn least_loaded(&self, key: u64, loads: &[(u16, f64)]) -> u16 {
        self.available()
            .map(|m| (load_of(loads, m.id), mix64(key ^ m.seed), m.id))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)))
            .map_or(0, |(_, _, id)| id)
    }
}

/// The load of member `id`: 0 if not listed, infinite if NaN, never below 0.
fn load_of(loads: &[(u16, f64)], id: u16) -> f64 {
    match loads.iter().find(|&&(m, _)| m == id) {
        None => 0.0,
        Some(&(_, l)) if l.is_nan() => f64::INFINITY,
        Some(&(_, l)) => l.max(0.0),
    }
}

/// The directory of a path: up to and including its last `/` (`/a/b/` for
/// `/a/b/c.jpg`, `/` for `/x`); a path without `/` (`*`) is its own.
fn directory(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[..=i])
}

/// One slot of the LARD map.
#[derive(Debug, Clone, Copy, Default)]
struct LardEntry {
    live: bool,
    key: u64,
    member: u16,
    used: Instant,
}

/// LARD's target -> member map: fixed size, set-associative, least
/// recently used evicted within a set, idle entries forgotten.
#[derive(Debug, Clone)]
struct LardMap {
    entries: Box<[LardEntry]>,
}

impl LardMap {
    /// A map of at least `entries` slots (power of two, at least one set);
    /// 0 makes an empty map for policies without LARD.
    fn new(entries: usize) -> LardMap {
        let n = if entries == 0 {
            0
        } else {
            entries.max(LARD_WAYS).next_power_of_two()
        };
        LardMap {
            entries: vec![LardEntry::default(); n].into_boxed_slice(),
        }
    }

    /// The slots of `key`'s set.
    fn set(&mut self, key: u64) -> &mut [LardEntry] {
        let sets = self.entries.len() / LARD_WAYS;
        if sets == 0 {
            return &mut [];
        }
        // Mixed again so that the set does not depend on the stored bits alone.
        let s = (mix64(key) as usize) & (sets - 1);
        &mut self.entries[s * LARD_WAYS..(s + 1) * LARD_WAYS]
    }

    /// The member `key` maps to, unless idle for [`LARD_IDLE`].
    fn get(&mut self, key: u64, now: Instant) -> Option<u16> {
        self.set(key)
            .iter()
            .find(|e| e.live && e.key == key)
            .filter(|e| now.saturating_since(e.used) <= LARD_IDLE)
            .map(|e| e.member)
    }

    /// Maps `key` to `member` as of `now`, evicting the least recently used
    /// entry of the set if it is full.
    fn put(&mut self, key: u64, member: u16, now: Instant) {
        let set = self.set(key);
        let slot = set
            .iter()
            .position(|e| e.live && e.key == key)
            .or_else(|| set.iter().position(|e| !e.live))
            .or_else(|| {
                set.iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(i, _)| i)
            });
        if let Some(i) = slot {
            set[i] = LardEntry {
                live: true,
                key,
                member,
                used: now,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;
    use shoal_config::DispatchRule;

    const MEMBERS: [(u16, &str, u32); 4] = [
        (1, "srv1", 100),
        (2, "srv2", 100),
        (3, "srv3", 100),
        (4, "srv4", 100),
    ];

    fn config(policy: DispatchPolicy) -> Dispatch {
        Dispatch {
            policy,
            ..Dispatch::default()
        }
    }

    fn dispatcher(config: &Dispatch) -> Dispatcher {
        Dispatcher::new(config, &MEMBERS).expect("valid dispatcher")
    }

    /// The raw request for `path` with optional host and cookie header.
    fn raw(path: &str, host: &str, cookie: Option<&str>) -> String {
        let cookie = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}\r\n")
    }

    /// Chooses for a GET of `path` (host `h.test`, no cookie).
    fn pick(d: &mut Dispatcher, path: &str, loads: &[(u16, f64)], now: Instant) -> Choice {
        let r = raw(path, "h.test", None);
        let head = parse_head(r.as_bytes()).expect("valid").expect("complete");
        d.choose(&head, loads, now)
    }

    /// Chooses for a request with a cookie header.
    fn pick_cookie(d: &mut Dispatcher, path: &str, cookie: &str) -> Choice {
        let r = raw(path, "h.test", Some(cookie));
        let head = parse_head(r.as_bytes()).expect("valid").expect("complete");
        d.choose(&head, &[], Instant::ZERO)
    }

    /// Chooses for a request to `host`.
    fn pick_host(d: &mut Dispatcher, host: &str, path: &str) -> Choice {
        let r = raw(path, host, None);
        let head = parse_head(r.as_bytes()).expect("valid").expect("complete");
        d.choose(&head, &[], Instant::ZERO)
    }

    /// Every point of the URL ring over `members`, computed from scratch
    /// (MD5 of name || vnode), unsorted.
    fn reference_points(members: &[(u16, &str, u32)]) -> Vec<(u64, u16)> {
        let mut points = Vec::new();
        for &(id, name, weight) in members {
            for v in 0..(URL_VNODES * weight).div_ceil(100) {
                points.push((reference_md5(&[name.as_bytes(), &v.to_be_bytes()]), id));
            }
        }
        points
    }

    /// First 8 bytes of MD5 over `parts`, big-endian, with the md5 crate.
    fn reference_md5(parts: &[&[u8]]) -> u64 {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        for p in parts {
            h.update(p);
        }
        let d: [u8; 16] = h.finalize().into();
        u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// The ring owner of `key` by linear scan: the lowest point at or after
    /// MD5(key), else the lowest point.
    fn scan_owner(points: &[(u64, u16)], key: &str) -> u16 {
        let h = reference_md5(&[key.as_bytes()]);
        let after = points.iter().filter(|p| p.0 >= h).min();
        after.or_else(|| points.iter().min()).expect("points").1
    }

    /// [`scan_owner`] over a ring built from scratch.
    fn reference_owner(members: &[(u16, &str, u32)], key: &str) -> u16 {
        scan_owner(&reference_points(members), key)
    }

    fn load_map(loads: &[(u16, f64)]) -> Vec<(u16, f64)> {
        loads.to_vec()
    }

    // --- url-hash -------------------------------------------------------------

    #[test]
    fn url_hash_places_directories_on_the_md5_ring() {
        let mut d = dispatcher(&config(DispatchPolicy::UrlHash));
        let golden = [
            ("/", 3),
            ("/index.html", 3),
            ("/img/a.png", 2),
            ("/img/b.png", 2),
            ("/api/v1/users", 1),
            ("/downloads/dir0000000001/f1.bin", 2),
            ("/downloads/dir0000000002/f1.bin", 1),
            ("*", 4),
        ];
        for (path, member) in golden {
            let c = pick(&mut d, path, &[], Instant::ZERO);
            assert_eq!(
                c,
                Choice {
                    member,
                    reason: Reason::Directory
                },
                "{path}"
            );
            assert_eq!(reference_owner(&MEMBERS, directory(path)), member, "{path}");
        }
        // Query strings and the host do not matter.
        assert_eq!(pick(&mut d, "/img/c.png?x=1", &[], Instant::ZERO).member, 2);
        assert_eq!(pick_host(&mut d, "other.test", "/img/z.png").member, 2);
        assert_eq!(directory("/a/b/c.jpg"), "/a/b/");
        assert_eq!(directory("/x"), "/");
    }

    #[test]
    fn url_hash_balances_many_directories() {
        let mut d = dispatcher(&config(DispatchPolicy::UrlHash));
        let mut share = [0u32; 5];
        for i in 0..100_000u32 {
            share[usize::from(pick(&mut d, &format!("/d{i}/f"), &[], Instant::ZERO).member)] += 1;
        }
        assert_eq!(share[0], 0);
        for (id, &n) in share.iter().enumerate().skip(1) {
            assert!(
                (24_250..=25_750).contains(&n),
                "member {id}: {n} of 100000 ({share:?})"
            );
        }
    }

    #[test]
    fn url_hash_follows_weights() {
        let members = [(1, "srv1", 100), (2, "srv2", 300), (3, "srv3", 0)];
        let mut d = Dispatcher::new(&config(DispatchPolicy::UrlHash), &members).expect("valid");
        let mut share = [0u32; 4];
        for i in 0..40_000u32 {
            share[usize::from(pick(&mut d, &format!("/w{i}/"), &[], Instant::ZERO).member)] += 1;
        }
        assert_eq!(share[3], 0, "weight 0 is never chosen");
        assert!((9_400..=10_600).contains(&share[1]), "{share:?}");
        assert!((29_400..=30_600).contains(&share[2]), "{share:?}");
    }

    #[test]
    fn hot_prefixes_spread_a_directory_file_by_file() {
        let mut cfg = config(DispatchPolicy::UrlHash);
        // DTS Fig. 9, line B: dir0000000001 .. dir0000000009 are hot.
        cfg.hot_paths = vec!["/downloads/dir000000000".to_owned()];
        let mut d = dispatcher(&cfg);
        let points = reference_points(&MEMBERS);
        let mut share = [0u32; 5];
        for i in 0..4000 {
            let path = format!("/downloads/dir0000000001/file{i}.bin");
            let c = pick(&mut d, &path, &[], Instant::ZERO);
            assert_eq!(c.reason, Reason::HotPath);
            if i < 200 {
                assert_eq!(c.member, scan_owner(&points, &path));
            }
            share[usize::from(c.member)] += 1;
        }
        for &n in &share[1..] {
            assert!((900..=1100).contains(&n), "{share:?}");
        }
        // dir0000000010 is not hot: one member takes the whole directory.
        let first = pick(&mut d, "/downloads/dir0000000010/a", &[], Instant::ZERO);
        assert_eq!(first.reason, Reason::Directory);
        for i in 0..100 {
            let path = format!("/downloads/dir0000000010/file{i}.bin");
            assert_eq!(pick(&mut d, &path, &[], Instant::ZERO), first);
        }
    }

    // --- least-loaded -------------------------------------------------------------

    #[test]
    fn least_loaded_takes_the_lowest_load() {
        let mut d = dispatcher(&config(DispatchPolicy::LeastLoaded));
        let loads = [(1, 0.5), (2, 0.2), (3, 0.9), (4, 0.3)];
        let c = pick(&mut d, "/x", &loads, Instant::ZERO);
        assert_eq!(
            c,
            Choice {
                member: 2,
                reason: Reason::LeastLoaded
            }
        );
        // A member without a figure counts as idle; NaN as overloaded.
        let loads = [(1, 0.5), (2, f64::NAN), (3, 0.9)];
        assert_eq!(pick(&mut d, "/x", &loads, Instant::ZERO).member, 4);
        let loads = [(1, 0.5), (2, f64::NAN), (3, 0.9), (4, 0.6)];
        assert_eq!(pick(&mut d, "/x", &loads, Instant::ZERO).member, 1);
    }

    #[test]
    fn least_loaded_ties_are_spread_by_path() {
        let mut d = dispatcher(&config(DispatchPolicy::LeastLoaded));
        let loads = [(1, 0.1), (2, 0.1), (3, 0.1), (4, 0.1)];
        let mut share = [0u32; 5];
        for i in 0..4000 {
            let path = format!("/t/{i}");
            let c = pick(&mut d, &path, &loads, Instant::ZERO);
            assert_eq!(
                pick(&mut d, &path, &loads, Instant::ZERO),
                c,
                "same path, same member"
            );
            share[usize::from(c.member)] += 1;
        }
        for &n in &share[1..] {
            assert!((850..=1150).contains(&n), "{share:?}");
        }
    }

    #[test]
    fn least_loaded_with_threshold_keeps_the_hashed_member_until_over() {
        let mut cfg = config(DispatchPolicy::LeastLoaded);
        cfg.load_threshold = Some(0.7);
        let mut d = dispatcher(&cfg);
        let hashed = d.ring_member(md5_u64(&[b"/img/a.png"]));
        let mut loads = load_map(&[(1, 0.3), (2, 0.3), (3, 0.3), (4, 0.3)]);
        loads[usize::from(hashed - 1)].1 = 0.69;
        let c = pick(&mut d, "/img/a.png", &loads, Instant::ZERO);
        assert_eq!(
            c,
            Choice {
                member: hashed,
                reason: Reason::BelowThreshold
            }
        );
        loads[usize::from(hashed - 1)].1 = 0.7;
        let other = if hashed == 1 { 2 } else { 1 };
        loads[usize::from(other - 1)].1 = 0.1;
        let c = pick(&mut d, "/img/a.png", &loads, Instant::ZERO);
        assert_eq!(
            c,
            Choice {
                member: other,
                reason: Reason::LeastLoaded
            }
        );
    }

    // --- LARD -------------------------------------------------------------------

    #[test]
    fn lard_places_by_ring_then_sticks() {
        let mut cfg = config(DispatchPolicy::Lard);
        cfg.load_threshold = Some(0.8);
        let mut d = dispatcher(&cfg);
        let path = "/big/file.iso";
        let home = reference_owner(&MEMBERS, path);
        let t = Instant::from_secs(1);
        let c = pick(&mut d, path, &[], t);
        assert_eq!(
            c,
            Choice {
                member: home,
                reason: Reason::LardAssigned
            }
        );
        assert_eq!(d.lard_len(), 1);
        // Loaded above T_high, but nobody is below T_low = 0.4: it stays.
        let mut loads = load_map(&[(1, 0.5), (2, 0.5), (3, 0.5), (4, 0.5)]);
        loads[usize::from(home - 1)].1 = 0.9;
        let c = pick(&mut d, path, &loads, t);
        assert_eq!(
            c,
            Choice {
                member: home,
                reason: Reason::LardKept
            }
        );
        // Now one member is below T_low: the target moves to it.
        let idle = if home == 4 { 1 } else { home + 1 };
        loads[usize::from(idle - 1)].1 = 0.3;
        let c = pick(&mut d, path, &loads, t);
        assert_eq!(
            c,
            Choice {
                member: idle,
                reason: Reason::LardMoved
            }
        );
        // And stays there once loads settle.
        let calm = [(1, 0.1), (2, 0.1), (3, 0.1), (4, 0.1)];
        for _ in 0..3 {
            let c = pick(&mut d, path, &calm, t);
            assert_eq!(
                c,
                Choice {
                    member: idle,
                    reason: Reason::LardKept
                }
            );
        }
        assert_eq!(d.lard_len(), 1);
    }

    #[test]
    fn lard_moves_at_twice_the_threshold_and_places_around_overload() {
        let mut cfg = config(DispatchPolicy::Lard);
        cfg.load_threshold = Some(0.5);
        let mut d = dispatcher(&cfg);
        let path = "/v/1.mp4";
        let home = reference_owner(&MEMBERS, path);
        assert_eq!(pick(&mut d, path, &[], Instant::ZERO).member, home);
        // Nobody below 0.25, but the home member is at 2 x 0.5.
        let mut loads = load_map(&[(1, 0.4), (2, 0.45), (3, 0.35), (4, 0.3)]);
        loads[usize::from(home - 1)].1 = 1.0;
        let least = loads
            .iter()
            .filter(|&&(id, _)| id != home)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|&(id, _)| id)
            .expect("members");
        let c = pick(&mut d, path, &loads, Instant::ZERO);
        assert_eq!(
            c,
            Choice {
                member: least,
                reason: Reason::LardMoved
            }
        );
        // A new target whose ring member is overloaded goes to the least loaded.
        let points = reference_points(&MEMBERS);
        let fresh = (0..10_000)
            .map(|i| format!("/v/new{i}"))
            .find(|p| scan_owner(&points, p) == home)
            .expect("some path hashes home");
        let c = pick(&mut d, &fresh, &loads, Instant::ZERO);
        assert_eq!(
            c,
            Choice {
                member: least,
                reason: Reason::LardAssigned
            }
        );
    }

    #[test]
    fn lard_memory_is_bounded_and_evicts_least_recently_used() {
        let cfg = config(DispatchPolicy::Lard);
        let mut d = Dispatcher::with_lard_capacity(&cfg, &MEMBERS, 16).expect("valid");
        for i in 0..1000 {
            pick(&mut d, &format!("/many/{i}"), &[], Instant::from_millis(i));
        }
        assert_eq!(d.lard_len(), 16);

        // One set of 8: the ninth target evicts the least recently used.
        let mut d = Dispatcher::with_lard_capacity(&cfg, &MEMBERS, 1).expect("valid");
        let at = Instant::from_secs;
        for i in 0..8u64 {
            assert_eq!(
                pick(&mut d, &format!("/t{i}"), &[], at(i)).reason,
                Reason::LardAssigned
            );
        }
        assert_eq!(pick(&mut d, "/t0", &[], at(8)).reason, Reason::LardKept);
        assert_eq!(pick(&mut d, "/t8", &[], at(9)).reason, Reason::LardAssigned);
        assert_eq!(d.lard_len(), 8);
        assert_eq!(pick(&mut d, "/t0", &[], at(10)).reason, Reason::LardKept);
        assert_eq!(pick(&mut d, "/t2", &[], at(11)).reason, Reason::LardKept);
        assert_eq!(
            pick(&mut d, "/t1", &[], at(12)).reason,
            Reason::LardAssigned,
            "evicted"
        );
    }

    #[test]
    fn lard_forgets_idle_targets() {
        let mut d = dispatcher(&config(DispatchPolicy::Lard));
        let t0 = Instant::from_secs(10);
        pick(&mut d, "/a", &[], t0);
        assert_eq!(
            pick(&mut d, "/a", &[], t0 + LARD_IDLE).reason,
            Reason::LardKept
        );
        let later = t0 + LARD_IDLE + LARD_IDLE + Duration::from_nanos(1);
        assert_eq!(pick(&mut d, "/a", &[], later).reason, Reason::LardAssigned);
    }

    #[test]
    fn lard_state_survives_a_rebuild_and_skips_drained_members() {
        let cfg = config(DispatchPolicy::Lard);
        let mut d = dispatcher(&cfg);
        let calm = [(1, 0.1), (2, 0.1), (3, 0.1), (4, 0.1)];
        let path = "/keep/me";
        let home = reference_owner(&MEMBERS, path);
        let busy: Vec<(u16, f64)> = calm
            .iter()
            .map(|&(id, l)| (id, if id == home { 2.0 } else { l }))
            .collect();
        let moved = pick(&mut d, path, &[], Instant::ZERO);
        assert_eq!(moved.member, home);
        let moved = pick(&mut d, path, &busy, Instant::ZERO);
        assert_eq!(moved.reason, Reason::LardMoved);

        // Same members, rebuilt: the moved placement is kept.
        let mut rebuilt = dispatcher(&cfg);
        rebuilt.inherit(d.clone());
        assert_eq!(
            pick(&mut rebuilt, path, &calm, Instant::ZERO),
            Choice {
                member: moved.member,
                reason: Reason::LardKept
            }
        );
        // The member holding the target is drained: placed anew elsewhere.
        let members: Vec<(u16, &str, u32)> = MEMBERS
            .iter()
            .map(|&(id, n, w)| (id, n, if id == moved.member { 0 } else { w }))
            .collect();
        let mut drained = Dispatcher::new(&cfg, &members).expect("valid");
        drained.inherit(rebuilt);
        let c = pick(&mut drained, path, &calm, Instant::ZERO);
        assert_eq!(c.reason, Reason::LardAssigned);
        assert_ne!(c.member, moved.member);
    }

    // --- cookie -------------------------------------------------------------------

    #[test]
    fn cookie_value_sticks_to_one_member() {
        let mut cfg = config(DispatchPolicy::Cookie);
        cfg.cookie_name = Some("sid".to_owned());
        let mut d = dispatcher(&cfg);
        for path in ["/", "/a/b", "/cart?id=7"] {
            assert_eq!(
                pick_cookie(&mut d, path, "theme=dark; sid=alice"),
                Choice {
                    member: 4,
                    reason: Reason::CookieHashed
                }
            );
            assert_eq!(pick_cookie(&mut d, path, "sid=dave").member, 3);
        }
        assert_eq!(reference_owner(&MEMBERS, "alice"), 4);
        assert_eq!(
            pick_cookie(&mut d, "/", "sid=srv2"),
            Choice {
                member: 2,
                reason: Reason::CookieNamed
            }
        );
        // No such cookie (names are case-sensitive), or an empty one: url-hash.
        for cookie in ["SID=alice", "sid=", "other=1"] {
            assert_eq!(
                pick_cookie(&mut d, "/img/a.png", cookie),
                Choice {
                    member: 2,
                    reason: Reason::NoCookie
                }
            );
        }
        assert_eq!(
            pick(&mut d, "/api/v1/x", &[], Instant::ZERO).reason,
            Reason::NoCookie
        );

        // A pinned member that is drained: the value is hashed instead.
        let members = [
            (1, "srv1", 100),
            (2, "srv2", 0),
            (3, "srv3", 100),
            (4, "srv4", 100),
        ];
        let mut d = Dispatcher::new(&cfg, &members).expect("valid");
        let c = pick_cookie(&mut d, "/", "sid=srv2");
        assert_eq!(c.reason, Reason::CookieHashed);
        assert_eq!(c.member, reference_owner(&members, "srv2"));
    }

    // --- rules ------------------------------------------------------------------

    fn rules_config() -> Dispatch {
        let rule = |host: Option<&str>, prefix: &str, member: &str| DispatchRule {
            host: host.map(str::to_owned),
            prefix: prefix.to_owned(),
            member: member.to_owned(),
        };
        Dispatch {
            policy: DispatchPolicy::Rules,
            rules: vec![
                rule(Some("api.test:443"), "/", "srv4"),
                rule(None, "/static/", "srv2"),
                rule(None, "/static/", "srv3"),
            ],
            default_member: Some("srv1".to_owned()),
            ..Dispatch::default()
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let mut d = dispatcher(&rules_config());
        assert_eq!(
            pick_host(&mut d, "API.Test:8443", "/static/x.css"),
            Choice {
                member: 4,
                reason: Reason::Rule(0)
            }
        );
        assert_eq!(
            pick_host(&mut d, "www.test", "/static/x.css"),
            Choice {
                member: 2,
                reason: Reason::Rule(1)
            }
        );
        assert_eq!(
            pick_host(&mut d, "www.test", "/staticx"),
            Choice {
                member: 1,
                reason: Reason::DefaultMember
            }
        );
        assert_eq!(Reason::Rule(1).name(), "rule");
    }

    #[test]
    fn rules_skip_drained_members_then_fall_back() {
        let cfg = rules_config();
        let members = [
            (1, "srv1", 0),
            (2, "srv2", 0),
            (3, "srv3", 100),
            (4, "srv4", 100),
        ];
        let mut d = Dispatcher::new(&cfg, &members).expect("valid");
        assert_eq!(
            pick_host(&mut d, "www.test", "/static/x.css"),
            Choice {
                member: 3,
                reason: Reason::Rule(2)
            }
        );
        let c = pick_host(&mut d, "www.test", "/img/a.png");
        assert_eq!(c.reason, Reason::NoRule);
        assert_eq!(c.member, reference_owner(&members, "/img/"));
    }

    // --- every policy -------------------------------------------------------------

    #[test]
    fn weight_zero_is_never_chosen() {
        let members = [(1, "a", 100), (2, "b", 0), (3, "c", 100)];
        let loads = [(1, 0.9), (2, 0.0), (3, 0.95)];
        let mut policies: Vec<Dispatch> = [
            DispatchPolicy::UrlHash,
            DispatchPolicy::LeastLoaded,
            DispatchPolicy::Lard,
        ]
        .into_iter()
        .map(config)
        .collect();
        let mut cookie = config(DispatchPolicy::Cookie);
        cookie.cookie_name = Some("s".to_owned());
        policies.push(cookie);
        let mut rules = config(DispatchPolicy::Rules);
        rules.rules = vec![DispatchRule {
            host: None,
            prefix: "/".to_owned(),
            member: "b".to_owned(),
        }];
        rules.default_member = Some("b".to_owned());
        policies.push(rules);
        for cfg in &policies {
            let mut d = Dispatcher::new(cfg, &members).expect("valid");
            for i in 0..500 {
                let r = raw(
                    &format!("/p{i}/x"),
                    "h",
                    Some(&format!("s={}", ["b", "x"][i % 2])),
                );
                let head = parse_head(r.as_bytes()).expect("valid").expect("complete");
                let c = d.choose(&head, &loads, Instant::from_millis(i as u64));
                assert_ne!(c.member, 2, "{:?}: {c:?}", cfg.policy);
            }
        }
    }

    #[test]
    fn bad_inputs_are_refused_with_the_key() {
        let cfg = config(DispatchPolicy::UrlHash);
        assert_eq!(
            Dispatcher::new(&cfg, &[]).err(),
            Some(DispatchError::NoMembers)
        );
        assert_eq!(
            Dispatcher::new(&cfg, &[(1, "a", 0), (2, "b", 0)]).err(),
            Some(DispatchError::NoMembers)
        );
        assert_eq!(
            Dispatcher::new(&cfg, &[(1, "a", 100), (1, "b", 100)]).err(),
            Some(DispatchError::DuplicateMember(1))
        );
        let mut rules = rules_config();
        rules.rules[1].member = "nobody".to_owned();
        let err = Dispatcher::new(&rules, &MEMBERS).expect_err("unknown member");
        assert_eq!(
            err.to_string(),
            "dispatch.rules[1].member: 'nobody' is not the name of any member"
        );
        let mut rules = rules_config();
        rules.default_member = Some("ghost".to_owned());
        let err = Dispatcher::new(&rules, &MEMBERS).expect_err("unknown default");
        assert_eq!(
            err.to_string(),
            "dispatch.default_member: 'ghost' is not the name of any member"
        );
        assert_eq!(
            Dispatcher::new(&config(DispatchPolicy::Cookie), &MEMBERS).err(),
            Some(DispatchError::MissingCookieName)
        );
        let mut lard = config(DispatchPolicy::Lard);
        lard.load_threshold = Some(-1.0);
        assert_eq!(
            Dispatcher::new(&lard, &MEMBERS).err(),
            Some(DispatchError::BadThreshold(-1.0))
        );
        lard.load_threshold = Some(f64::NAN);
        assert!(matches!(
            Dispatcher::new(&lard, &MEMBERS),
            Err(DispatchError::BadThreshold(_))
        ));
    }
}

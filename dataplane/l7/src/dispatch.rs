//! L7 dispatch: which member processes a spliced request, from its parsed
//! head ([`RequestHead`]), the members' loads and the service's
//! `[services.dispatch]` policy.
//!
//! This module owns the policies and their tables: the URL ring, the rules
//! resolved to member ids and the bounded target maps of lard (target to
//! member) and dtcp (target to server set). A [`Dispatcher`] is
//! built off the packet path ([`Dispatcher::new`], rebuilt when weights
//! change); [`Dispatcher::choose`] allocates nothing, reads no clock (time is
//! passed in) and does no I/O. It never names a member of weight 0. It does
//! not parse HTTP (that is [`crate::http`]) and does not hand anything over.
//!
//! Hashes are fixed (MD5 as DTS, no per-process seed), so every server
//! computes the same choice from the same request, membership and loads;
//! only lard and dtcp also depend on the requests this dispatcher saw before.
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
//!   By default "every node" becomes "spread over every member by full
//!   path" and the locality unit of everything else is the directory; the
//!   DTS reading is available too: `hash_key = "uri"` (line C, every path
//!   by full URI), `hot_path_mode = "local"` (line B, hot paths served by
//!   the inspecting member) and `local_paths` (line A, any policy). Lines A
//!   and B need to know which member inspects, which the dispatcher is not
//!   told: the dataplane applies them before asking it
//!   (`choose_member`, reasons [`Reason::LocalPath`] and
//!   [`Reason::HotPathLocal`]). DTS's hot set is written as the prefix
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
//! - **dtcp**: DTCP §4.3's Algorithm 1 (node selection): a bounded map
//!   from target (the full path, as lard) to its *server set*, the members
//!   that hold it (a bitmap over the membership, so at most
//!   [`DTCP_MAX_MEMBERS`] members). On a request, members of the set that
//!   left or have weight 0 are dropped from it (lines 1-8: the paper drops
//!   members whose cache lost the file; a dispatcher cannot see caches, so
//!   it drops only what it can know), and M is the holder with the least
//!   load. N is the member with the least load overall (line 9); if
//!   load(M) - load(N) > `replicate_above` and N is not in the set, N joins
//!   it and takes the request (lines 10-12, replication); else M does. A
//!   target without a set (new, forgotten, or every holder gone) is placed
//!   on N and the set becomes {N} (the paper leaves this case open; its
//!   line 10 with no M amounts to the same). Ties go by rendezvous order of
//!   the path, then lowest id, as least-loaded.
//!
//!   The paper compares two loads: *processing* load (messages queued at
//!   the CPU and input adaptors) for M and *disk* load (messages queued at
//!   the disk) for N. The dispatcher is given one figure per member, the
//!   load control publishes (`max(busy, connections / capacity)`, a share
//!   of capacity; control exchanges busy and connections separately, but
//!   only the composite reaches the dataplane, and nothing in it measures
//!   disk queues), so both M and N are chosen by that figure. The paper's
//!   threshold of 100 requests becomes `replicate_above`, a difference of
//!   load figures ([`DEFAULT_DTCP_REPLICATE_ABOVE`] when not set).
//!
//!   Sets only grow by replication; they shrink when a member leaves (its
//!   bit is dropped from every set when the dispatcher is rebuilt, see
//!   [`Dispatcher::inherit`]), lazily when a drained member is met in a
//!   set, and as a whole when the target is evicted or idle for
//!   [`LARD_IDLE`]: the map has lard's capacity ([`LARD_ENTRIES`]) and
//!   expiry rules.
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

use shoal_config::{Dispatch, DispatchPolicy, UrlHashKey};

use crate::http::{strip_port, RequestHead};
use shoal_select::{md5_u64, mix64};
use shoal_wire::time::Instant;

/// Points per member of weight 100 on the URL ring. DTS uses 63; with 4
/// members that leaves shares 8% off their weight, 512 about 1%. The ring
/// (16 bytes a point) is shared by clones of a [`Dispatcher`].
pub const URL_VNODES: u32 = 512;

/// Targets a lard or dtcp map holds by default (8-way sets; 24 bytes a
/// target for lard, 32 for dtcp's server sets: 192 or 256 KiB).
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

/// dtcp's `replicate_above` when the config sets none: the gap between
/// lard's default `T_high` and `T_low` (0.8 and 0.4), the smallest
/// imbalance at which lard with its defaults moves a target.
pub const DEFAULT_DTCP_REPLICATE_ABOVE: f64 = 0.4;

/// Most members a dtcp dispatcher takes: a server set is one bit per
/// member. As many as a membership carries (`shoal_channel::MAX_MEMBERS`).
pub const DTCP_MAX_MEMBERS: usize = 64;

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
    /// A `replicate_above` that is not strictly between 0 and 1.
    #[error(
        "dispatch.replicate_above: must be a load difference strictly between 0 and 1 (got {0})"
    )]
    BadReplicateAbove(f64),
    /// `policy = "dtcp"` over more members than a server set holds.
    #[error("policy = \"dtcp\" takes at most {DTCP_MAX_MEMBERS} members (got {0})")]
    TooManyMembers(usize),
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
    /// dtcp: the least-loaded member of the target's server set.
    DtcpHolder,
    /// dtcp: a target without a server set, placed on the least-loaded
    /// member (its set is now that member).
    DtcpPlaced,
    /// dtcp: the set's least-loaded member was `replicate_above` busier than
    /// the least-loaded member, which joined the set.
    DtcpReplicated,
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
    /// sticky: the request's signed cookie names this member (any policy).
    StickyCookie,
    /// sticky: the session id in the request's URL on the URL ring.
    SessionId,
    /// An operator pinned the client's prefix to this member (any policy;
    /// `shoalctl flows pin`).
    Pinned,
    /// url-hash with `hash_key = "uri"`: the full path on the URL ring
    /// (DTS Fig. 9, line C).
    Uri,
    /// `local_paths`: served by the inspecting member (DTS Fig. 9, line A).
    LocalPath,
    /// url-hash, `hot_path_mode = "local"`: a hot path served by the
    /// inspecting member (DTS Fig. 9, line B).
    HotPathLocal,
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
            Reason::DtcpHolder => "dtcp_holder",
            Reason::DtcpPlaced => "dtcp_placed",
            Reason::DtcpReplicated => "dtcp_replicated",
            Reason::CookieNamed => "cookie_named",
            Reason::CookieHashed => "cookie_hashed",
            Reason::NoCookie => "no_cookie",
            Reason::Rule(_) => "rule",
            Reason::DefaultMember => "default_member",
            Reason::NoRule => "no_rule",
            Reason::StickyCookie => "sticky_cookie",
            Reason::Pinned => "pinned",
            Reason::SessionId => "session_id",
            Reason::Uri => "uri",
            Reason::LocalPath => "local_path",
            Reason::HotPathLocal => "hot_path_local",
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
    /// url-hash's key for paths that are not hot.
    hash_key: UrlHashKey,
    cookie_name: String,
    threshold: Option<f64>,
    /// dtcp's replication gap.
    replicate_above: f64,
    /// Bit `i` set for `members[i]` if it has weight (dtcp's server sets
    /// are bitmaps over `members`).
    available_set: u64,
    rules: Vec<Rule>,
    default_member: Option<u16>,
    /// lard: target -> member.
    lard: TargetMap<u16>,
    /// dtcp: target -> server set (bit `i` = `members[i]`).
    sets: TargetMap<u64>,
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

    /// [`Dispatcher::new`] with a lard or dtcp map of at least `entries`
    /// targets (rounded up to a power of two, at least 8). Only
    /// `policy = "lard"` and `policy = "dtcp"` allocate a map.
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
        let replicate_above = config
            .replicate_above
            .unwrap_or(DEFAULT_DTCP_REPLICATE_ABOVE);
        if !(replicate_above > 0.0 && replicate_above < 1.0) {
            return Err(DispatchError::BadReplicateAbove(replicate_above));
        }
        if config.policy == DispatchPolicy::Dtcp && list.len() > DTCP_MAX_MEMBERS {
            return Err(DispatchError::TooManyMembers(list.len()));
        }
        let available_set = list
            .iter()
            .enumerate()
            .filter(|(_, m)| m.weight > 0)
            .fold(0, |set, (i, _)| set | bit(i));

        let mut ring = Vec::new();
        for m in list.iter().filter(|m| m.weight > 0) {
            let n = (u64::from(URL_VNODES) * u64::from(m.weight)).div_ceil(100);
            for v in 0..n {
                let v = u32::try_from(v).unwrap_or(u32::MAX);
                ring.push((md5_u64(&[m.name.as_bytes(), &v.to_be_bytes()]), m.id));
            }
        }
        ring.sort_unstable();

        let map_entries = |policy| {
            if config.policy == policy {
                entries
            } else {
                0
            }
        };
        Ok(Dispatcher {
            policy: config.policy,
            members: list,
            ring: ring.into(),
            hot_paths: config.hot_paths.clone(),
            hash_key: config.hash_key,
            cookie_name,
            threshold: config.load_threshold,
            replicate_above,
            available_set,
            rules,
            default_member,
            lard: TargetMap::new(map_entries(DispatchPolicy::Lard)),
            sets: TargetMap::new(map_entries(DispatchPolicy::Dtcp)),
        })
    }

    /// Takes over `previous`'s lard map or dtcp server sets (a dispatcher
    /// rebuilt for new weights or members keeps its targets' placement) if
    /// both have the policy, with maps of the same size. lard: targets of
    /// members that lost their weight are placed anew when next requested.
    /// dtcp: the sets are carried over member by member (by id, as the
    /// members' order may differ); members that left are dropped from every
    /// set now, a set left empty is forgotten, and drained members are
    /// dropped when their target is next requested. Off the packet path:
    /// one pass over the map when the membership changed.
    pub fn inherit(&mut self, previous: Dispatcher) {
        if previous.lard.entries.len() == self.lard.entries.len() {
            self.lard = previous.lard;
        }
        if previous.sets.entries.len() == self.sets.entries.len() {
            let same_members = previous.members.len() == self.members.len()
                && previous
                    .members
                    .iter()
                    .zip(&self.members)
                    .all(|(a, b)| a.id == b.id);
            self.sets = previous.sets;
            if !same_members {
                // Old bit i -> its member's bit here (0: the member left).
                let mut moved = [0u64; DTCP_MAX_MEMBERS];
                for (slot, old) in moved.iter_mut().zip(&previous.members) {
                    *slot = self
                        .members
                        .iter()
                        .position(|m| m.id == old.id)
                        .map_or(0, bit);
                }
                for e in self.sets.entries.iter_mut().filter(|e| e.live) {
                    let set = (0..DTCP_MAX_MEMBERS)
                        .filter(|&i| e.value & bit(i) != 0)
                        .fold(0, |set, i| set | moved[i]);
                    e.value = set;
                    e.live = set != 0;
                }
            }
        }
    }

    /// The policy.
    pub fn policy(&self) -> DispatchPolicy {
        self.policy
    }

    /// Targets the LARD map holds now (0 for other policies).
    pub fn lard_len(&self) -> usize {
        self.lard.len()
    }

    /// Targets dtcp holds a server set for now (0 for other policies).
    pub fn dtcp_len(&self) -> usize {
        self.sets.len()
    }

    /// The member that processes the request `head`, given each member's
    /// load as (id, load) (a member not listed has load 0; NaN counts as
    /// overloaded) at time `now`. Allocates nothing.
    pub fn choose(&mut self, head: &RequestHead<'_>, loads: &[(u16, f64)], now: Instant) -> Choice {
        match self.policy {
            DispatchPolicy::UrlHash => self.url_hash(head.path),
            DispatchPolicy::LeastLoaded => self.least_loaded_policy(head.path, loads),
            DispatchPolicy::Lard => self.lard(head.path, loads, now),
            DispatchPolicy::Dtcp => self.dtcp(head.path, loads, now),
            DispatchPolicy::Cookie => self.cookie(head),
            DispatchPolicy::Rules => self.rules(head),
        }
    }

    /// url-hash: the directory, or the full path under a hot prefix.
    fn url_hash(&self, path: &str) -> Choice {
        let hot = self.is_hot(path);
        let (key, reason) = if hot {
            (path, Reason::HotPath)
        } else if self.hash_key == UrlHashKey::Uri {
            (path, Reason::Uri)
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

    /// DTCP §4.3, Algorithm 1, over one load figure (see the module doc).
    fn dtcp(&mut self, path: &str, loads: &[(u16, f64)], now: Instant) -> Choice {
        let key = md5_u64(&[path.as_bytes()]);
        // Line 9: N, the least-loaded member overall.
        let Some((n, n_id)) = self.least_loaded_of(key, loads, self.available_set) else {
            // `new` refuses a membership without weight; not reached.
            return Choice {
                member: 0,
                reason: Reason::DtcpPlaced,
            };
        };
        // Lines 1-8: the set without members that left or were drained;
        // M, its least-loaded member.
        let set = self.sets.get(key, now).unwrap_or(0) & self.available_set;
        let Some((_, m_id)) = self.least_loaded_of(key, loads, set) else {
            self.sets.put(key, bit(n), now);
            return Choice {
                member: n_id,
                reason: Reason::DtcpPlaced,
            };
        };
        // Lines 10-15 (NaN loads are infinite: an infinite M replicates).
        let gap = load_of(loads, m_id) - load_of(loads, n_id);
        let (set, member, reason) = if gap > self.replicate_above && set & bit(n) == 0 {
            (set | bit(n), n_id, Reason::DtcpReplicated)
        } else {
            (set, m_id, Reason::DtcpHolder)
        };
        self.sets.put(key, set, now);
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

    /// The member a session id belongs to: its place on the URL ring (the
    /// members taking new requests, by weight).
    pub fn session_member(&self, id: &str) -> Choice {
        Choice {
            member: self.ring_member(md5_u64(&[id.as_bytes()])),
            reason: Reason::SessionId,
        }
    }

    /// Whether `path` is under one of the hot paths.
    pub fn is_hot(&self, path: &str) -> bool {
        self.hot_paths.iter().any(|p| path.starts_with(p.as_str()))
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

    /// dtcp: the member of `set` (bit `i` = `members[i]`) that takes
    /// requests with the lowest load, as (index, id); ties as
    /// [`Dispatcher::least_loaded`]. None if `set` has no such member.
    fn least_loaded_of(&self, key: u64, loads: &[(u16, f64)], set: u64) -> Option<(usize, u16)> {
        self.members
            .iter()
            .enumerate()
            .filter(|&(i, m)| m.weight > 0 && set & bit(i) != 0)
            .map(|(i, m)| (load_of(loads, m.id), mix64(key ^ m.seed), m.id, i))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)))
            .map(|(_, _, id, i)| (i, id))
    }
}

/// The bit of `members[i]` in a dtcp server set (none past
/// [`DTCP_MAX_MEMBERS`]).
fn bit(i: usize) -> u64 {
    u32::try_from(i)
        .ok()
        .and_then(|i| 1u64.checked_shl(i))
        .unwrap_or(0)
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

/// One slot of a target map: lard's member (`u16`) or dtcp's server set
/// (`u64`) of one target.
#[derive(Debug, Clone, Copy, Default)]
struct TargetEntry<V> {
    live: bool,
    key: u64,
    value: V,
    used: Instant,
}

// What a target costs (see [`LARD_ENTRIES`]).
const _: () = assert!(core::mem::size_of::<TargetEntry<u16>>() == 24);
const _: () = assert!(core::mem::size_of::<TargetEntry<u64>>() == 32);

/// The target -> value map of lard and dtcp: fixed size, set-associative,
/// least recently used evicted within a set, idle entries forgotten.
#[derive(Debug, Clone)]
struct TargetMap<V> {
    entries: Box<[TargetEntry<V>]>,
}

impl<V: Copy + Default> TargetMap<V> {
    /// A map of at least `entries` slots (power of two, at least one set);
    /// 0 makes an empty map for policies without one.
    fn new(entries: usize) -> TargetMap<V> {
        let n = if entries == 0 {
            0
        } else {
            entries.max(LARD_WAYS).next_power_of_two()
        };
        TargetMap {
            entries: vec![TargetEntry::default(); n].into_boxed_slice(),
        }
    }

    /// Live entries (idle ones included until they are evicted).
    fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.live).count()
    }

    /// The slots of `key`'s set.
    fn set(&mut self, key: u64) -> &mut [TargetEntry<V>] {
        let sets = self.entries.len() / LARD_WAYS;
        if sets == 0 {
            return &mut [];
        }
        // Mixed again so that the set does not depend on the stored bits alone.
        let s = (mix64(key) as usize) & (sets - 1);
        &mut self.entries[s * LARD_WAYS..(s + 1) * LARD_WAYS]
    }

    /// The value `key` maps to, unless idle for [`LARD_IDLE`].
    fn get(&mut self, key: u64, now: Instant) -> Option<V> {
        self.set(key)
            .iter()
            .find(|e| e.live && e.key == key)
            .filter(|e| now.saturating_since(e.used) <= LARD_IDLE)
            .map(|e| e.value)
    }

    /// Maps `key` to `value` as of `now`, evicting the least recently used
    /// entry of the set if it is full.
    fn put(&mut self, key: u64, value: V, now: Instant) {
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
            set[i] = TargetEntry {
                live: true,
                key,
                value,
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

    /// The raw request for `path` with optional host and cookie header
    /// (GET; OPTIONS for `*`, the one method that target is valid with).
    fn raw(path: &str, host: &str, cookie: Option<&str>) -> String {
        let cookie = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        let method = if path == "*" { "OPTIONS" } else { "GET" };
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}\r\n")
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
    fn uri_hashing_places_every_path_on_its_own_ring_point() {
        // DTS Fig. 9, line C: the MD5 of the URI, not of its directory.
        let mut cfg = config(DispatchPolicy::UrlHash);
        cfg.hash_key = UrlHashKey::Uri;
        let mut d = dispatcher(&cfg);
        let points = reference_points(&MEMBERS);
        let mut share = [0u32; 5];
        for i in 0..4000 {
            let path = format!("/downloads/dir0000000042/file{i}.bin");
            let c = pick(&mut d, &path, &[], Instant::ZERO);
            assert_eq!(c.reason, Reason::Uri);
            assert_eq!(c.member, scan_owner(&points, &path), "{path}");
            share[usize::from(c.member)] += 1;
        }
        for &n in &share[1..] {
            assert!(
                (900..=1100).contains(&n),
                "one directory, file by file: {share:?}"
            );
        }
        // Hot paths keep their own reason.
        cfg.hot_paths = vec!["/hot/".to_owned()];
        let mut d = dispatcher(&cfg);
        assert_eq!(
            pick(&mut d, "/hot/a", &[], Instant::ZERO).reason,
            Reason::HotPath
        );
        assert!(d.is_hot("/hot/b") && !d.is_hot("/cold/b"));
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

    // --- dtcp -------------------------------------------------------------------

    /// The ids of the members in `path`'s server set as of `now`, in
    /// membership order (empty: no set).
    fn holders(d: &mut Dispatcher, path: &str, now: Instant) -> Vec<u16> {
        let set = d.sets.get(md5_u64(&[path.as_bytes()]), now).unwrap_or(0);
        d.members
            .iter()
            .enumerate()
            .filter(|&(i, _)| set & bit(i) != 0)
            .map(|(_, m)| m.id)
            .collect()
    }

    fn dtcp_config(replicate_above: f64) -> Dispatch {
        Dispatch {
            replicate_above: Some(replicate_above),
            ..config(DispatchPolicy::Dtcp)
        }
    }

    /// `path`'s set made {1, 3} by the algorithm itself: placed on 1 (the
    /// least loaded), then replicated to 3 when 1 is busy.
    fn dtcp_with_set_1_3(cfg: &Dispatch, path: &str) -> Dispatcher {
        let mut d = dispatcher(cfg);
        let placed = pick(&mut d, path, &[(1, 0.0), (2, 0.5), (3, 0.5), (4, 0.5)], T);
        assert_eq!(
            placed,
            Choice {
                member: 1,
                reason: Reason::DtcpPlaced
            }
        );
        let busy = [(1, 0.875), (2, 0.5), (3, 0.125), (4, 0.5)];
        assert_eq!(
            pick(&mut d, path, &busy, T),
            Choice {
                member: 3,
                reason: Reason::DtcpReplicated
            }
        );
        assert_eq!(holders(&mut d, path, T), [1, 3]);
        d
    }

    const T: Instant = Instant::ZERO;

    #[test]
    fn dtcp_places_a_new_target_on_the_least_loaded_member() {
        let mut d = dispatcher(&config(DispatchPolicy::Dtcp));
        assert_eq!(d.dtcp_len(), 0);
        let loads = [(1, 0.5), (2, 0.2), (3, 0.9), (4, 0.3)];
        assert_eq!(
            pick(&mut d, "/f/a.iso", &loads, T),
            Choice {
                member: 2,
                reason: Reason::DtcpPlaced
            }
        );
        assert_eq!(holders(&mut d, "/f/a.iso", T), [2]);
        assert_eq!(d.dtcp_len(), 1);
        // Its set is {2}: member 2 keeps it while the gap stays small.
        let loads = [(1, 0.5), (2, 0.3), (3, 0.9), (4, 0.2)];
        assert_eq!(
            pick(&mut d, "/f/a.iso", &loads, T),
            Choice {
                member: 2,
                reason: Reason::DtcpHolder
            }
        );
        // Another target has its own set: placed on today's least loaded.
        assert_eq!(
            pick(&mut d, "/f/b.iso", &loads, T),
            Choice {
                member: 4,
                reason: Reason::DtcpPlaced
            }
        );
        assert_eq!(holders(&mut d, "/f/a.iso", T), [2]);
        assert_eq!(holders(&mut d, "/f/b.iso", T), [4]);
        assert_eq!(d.lard_len(), 0);
    }

    #[test]
    fn dtcp_takes_the_least_loaded_holder_and_ignores_members_without_the_target() {
        let path = "/v/movie.mp4";
        let mut d = dtcp_with_set_1_3(&config(DispatchPolicy::Dtcp), path);
        // Member 2 is the least loaded overall but does not hold the
        // target; the gap 0.3 - 0.0 is below 0.4: the holder 1 (0.3 < 0.35).
        let loads = [(1, 0.3), (2, 0.0), (3, 0.35), (4, 0.2)];
        assert_eq!(
            pick(&mut d, path, &loads, T),
            Choice {
                member: 1,
                reason: Reason::DtcpHolder
            }
        );
        // Loads turn: the set's other holder, 3, is now the less loaded.
        let loads = [(1, 0.6), (2, 0.0), (3, 0.35), (4, 0.2)];
        assert_eq!(
            pick(&mut d, path, &loads, T),
            Choice {
                member: 3,
                reason: Reason::DtcpHolder
            }
        );
        assert_eq!(holders(&mut d, path, T), [1, 3]);
    }

    #[test]
    fn dtcp_replicates_only_when_the_gap_exceeds_replicate_above() {
        let path = "/d/x.bin";
        let mut d = dispatcher(&dtcp_config(0.25));
        let place_on_2 = [(1, 0.5), (2, 0.0), (3, 0.5), (4, 0.5)];
        assert_eq!(pick(&mut d, path, &place_on_2, T).member, 2);
        // Gap exactly 0.25 (0.75 - 0.5): not above, the holder keeps it.
        let at_gap = [(1, 0.5), (2, 0.75), (3, 0.625), (4, 0.875)];
        assert_eq!(
            pick(&mut d, path, &at_gap, T),
            Choice {
                member: 2,
                reason: Reason::DtcpHolder
            }
        );
        assert_eq!(holders(&mut d, path, T), [2]);
        // Gap 0.375: member 1, the least loaded, joins the set and serves.
        let above = [(1, 0.375), (2, 0.75), (3, 0.625), (4, 0.875)];
        assert_eq!(
            pick(&mut d, path, &above, T),
            Choice {
                member: 1,
                reason: Reason::DtcpReplicated
            }
        );
        assert_eq!(holders(&mut d, path, T), [1, 2]);
        // The same loads again: 1 now holds it, so no further replication.
        assert_eq!(
            pick(&mut d, path, &above, T),
            Choice {
                member: 1,
                reason: Reason::DtcpHolder
            }
        );
        // A third member joins when both holders are busy: the set grows.
        let both_busy = [(1, 0.75), (2, 0.75), (3, 0.625), (4, 0.25)];
        assert_eq!(
            pick(&mut d, path, &both_busy, T),
            Choice {
                member: 4,
                reason: Reason::DtcpReplicated
            }
        );
        assert_eq!(holders(&mut d, path, T), [1, 2, 4]);

        // Without replicate_above, DEFAULT_DTCP_REPLICATE_ABOVE = 0.4.
        let mut d = dispatcher(&config(DispatchPolicy::Dtcp));
        assert_eq!(pick(&mut d, path, &place_on_2, T).member, 2);
        let below = [(1, 0.5), (2, 0.375), (3, 0.5), (4, 0.0)];
        assert_eq!(
            pick(&mut d, path, &below, T),
            Choice {
                member: 2,
                reason: Reason::DtcpHolder
            }
        );
        let above = [(1, 0.5), (2, 0.5), (3, 0.5), (4, 0.0)];
        assert_eq!(
            pick(&mut d, path, &above, T),
            Choice {
                member: 4,
                reason: Reason::DtcpReplicated
            }
        );
        // A holder whose load is NaN counts as infinitely loaded.
        let nan = [(1, 0.5), (2, 0.5), (3, 0.5), (4, f64::NAN)];
        assert_eq!(
            pick(&mut d, path, &nan, T),
            Choice {
                member: 2,
                reason: Reason::DtcpHolder
            }
        );
    }

    #[test]
    fn dtcp_drops_drained_and_removed_members_from_sets() {
        let path = "/v/movie.mp4";
        let cfg = config(DispatchPolicy::Dtcp);
        let d = dtcp_with_set_1_3(&cfg, path);
        // Member 3 is drained (weight 0): even as the least-loaded holder
        // it is dropped from the set and 1 serves.
        let drained_3 = [
            (1, "srv1", 100),
            (2, "srv2", 100),
            (3, "srv3", 0),
            (4, "srv4", 100),
        ];
        let mut drained = Dispatcher::new(&cfg, &drained_3).expect("valid");
        drained.inherit(d);
        assert_eq!(holders(&mut drained, path, T), [1, 3], "lazily");
        let loads = [(1, 0.3), (2, 0.2), (3, 0.0), (4, 0.2)];
        assert_eq!(
            pick(&mut drained, path, &loads, T),
            Choice {
                member: 1,
                reason: Reason::DtcpHolder
            }
        );
        assert_eq!(holders(&mut drained, path, T), [1]);

        // Member 1 leaves the cluster: its set is now empty and forgotten,
        // and the target is placed anew on the least-loaded member.
        let without_1 = [(2, "srv2", 100), (3, "srv3", 100), (4, "srv4", 100)];
        let mut left = Dispatcher::new(&cfg, &without_1).expect("valid");
        left.inherit(drained);
        assert_eq!(left.dtcp_len(), 0);
        assert_eq!(holders(&mut left, path, T), Vec::<u16>::new());
        let loads = [(1, 0.0), (2, 0.5), (3, 0.25), (4, 0.5)];
        assert_eq!(
            pick(&mut left, path, &loads, T),
            Choice {
                member: 3,
                reason: Reason::DtcpPlaced
            }
        );
        assert_eq!(holders(&mut left, path, T), [3]);
    }

    #[test]
    fn dtcp_sets_survive_a_rebuild_in_any_member_order() {
        let path = "/v/movie.mp4";
        let cfg = config(DispatchPolicy::Dtcp);
        let d = dtcp_with_set_1_3(&cfg, path);
        let mut same = dispatcher(&cfg);
        same.inherit(d);
        assert_eq!(holders(&mut same, path, T), [1, 3]);
        // Listed in reverse, with a new member 5: the set is {1, 3} by id.
        let reversed = [
            (5, "srv5", 100),
            (4, "srv4", 100),
            (3, "srv3", 100),
            (2, "srv2", 100),
            (1, "srv1", 100),
        ];
        let mut rebuilt = Dispatcher::new(&cfg, &reversed).expect("valid");
        rebuilt.inherit(same);
        assert_eq!(holders(&mut rebuilt, path, T), [3, 1]);
        let loads = [(1, 0.25), (2, 0.0), (3, 0.375), (4, 0.0), (5, 0.0)];
        assert_eq!(
            pick(&mut rebuilt, path, &loads, T),
            Choice {
                member: 1,
                reason: Reason::DtcpHolder
            }
        );
        // Not kept across a change of policy (lard has no sets).
        let mut lard = Dispatcher::new(&config(DispatchPolicy::Lard), &reversed).expect("valid");
        lard.inherit(rebuilt);
        assert_eq!((lard.dtcp_len(), lard.lard_len()), (0, 0));
    }

    #[test]
    fn dtcp_sets_expire_and_stay_bounded() {
        let cfg = config(DispatchPolicy::Dtcp);
        let mut d = Dispatcher::with_lard_capacity(&cfg, &MEMBERS, 16).expect("valid");
        for i in 0..1000 {
            pick(&mut d, &format!("/many/{i}"), &[], Instant::from_millis(i));
        }
        assert_eq!(d.dtcp_len(), 16);

        let path = "/v/movie.mp4";
        let mut d = dtcp_with_set_1_3(&cfg, path);
        let calm = [(1, 0.25), (2, 0.0), (3, 0.125), (4, 0.0)];
        assert_eq!(
            pick(&mut d, path, &calm, T + LARD_IDLE),
            Choice {
                member: 3,
                reason: Reason::DtcpHolder
            }
        );
        let later = T + LARD_IDLE + LARD_IDLE + Duration::from_nanos(1);
        assert_eq!(holders(&mut d, path, later), Vec::<u16>::new());
        let c = pick(&mut d, path, &calm, later);
        assert_eq!(c.reason, Reason::DtcpPlaced);
        assert_eq!(holders(&mut d, path, later), [c.member]);
    }

    proptest::proptest! {
        /// For any weights, loads, requests and rebuilds, dtcp chooses a
        /// member of the membership with weight, which is in the target's
        /// set afterwards, and every member of that set has weight.
        #[test]
        fn dtcp_chooses_a_live_holder(
            weights in proptest::collection::vec(0u32..3, 1..7),
            steps in proptest::collection::vec(
                (
                    0usize..6,
                    proptest::collection::vec(
                        proptest::option::of(proptest::prop_oneof![
                            9 => 0.0f64..1.0,
                            1 => proptest::strategy::Just(f64::NAN),
                        ]),
                        7,
                    ),
                    proptest::option::of(proptest::collection::vec(0u32..3, 1..7)),
                ),
                1..60,
            ),
            gap in 0.01f64..0.99,
        ) {
            let names = ["m1", "m2", "m3", "m4", "m5", "m6"];
            let membership = |weights: &[u32]| -> Vec<(u16, &str, u32)> {
                let mut m: Vec<(u16, &str, u32)> = weights
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| (i as u16 + 1, names[i], w * 50))
                    .collect();
                if m.iter().all(|&(_, _, w)| w == 0) {
                    m[0].2 = 100;
                }
                // Vary the order too, so that inherit remaps bits.
                if weights.len() > 3 {
                    m.reverse();
                }
                m
            };
            let cfg = dtcp_config(gap);
            let mut members = membership(&weights);
            let mut d = Dispatcher::with_lard_capacity(&cfg, &members, 64).expect("valid");
            for (i, (path, loads, rebuild)) in steps.into_iter().enumerate() {
                if let Some(weights) = rebuild {
                    members = membership(&weights);
                    let mut next = Dispatcher::with_lard_capacity(&cfg, &members, 64).expect("valid");
                    next.inherit(d);
                    d = next;
                }
                let loads: Vec<(u16, f64)> = loads
                    .iter()
                    .enumerate()
                    .filter_map(|(id, l)| l.map(|l| (id as u16, l)))
                    .collect();
                let path = format!("/p/{path}");
                let now = Instant::from_secs(i as u64);
                let c = pick(&mut d, &path, &loads, now);
                let weight = |id: u16| {
                    members.iter().find(|m| m.0 == id).map_or(0, |m| m.2)
                };
                proptest::prop_assert!(weight(c.member) > 0, "{c:?} {members:?}");
                let set = holders(&mut d, &path, now);
                proptest::prop_assert!(set.contains(&c.member), "{c:?} {set:?}");
                proptest::prop_assert!(set.iter().all(|&m| weight(m) > 0), "{set:?}");
                proptest::prop_assert!(matches!(
                    c.reason,
                    Reason::DtcpHolder | Reason::DtcpPlaced | Reason::DtcpReplicated
                ));
            }
        }
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
            DispatchPolicy::Dtcp,
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
        for gap in [0.0, 1.0, 100.0] {
            assert_eq!(
                Dispatcher::new(&dtcp_config(gap), &MEMBERS).err(),
                Some(DispatchError::BadReplicateAbove(gap))
            );
        }
        let err = Dispatcher::new(&dtcp_config(f64::NAN), &MEMBERS).expect_err("NaN gap");
        assert_eq!(
            err.to_string(),
            "dispatch.replicate_above: must be a load difference strictly between 0 and 1 (got NaN)"
        );
        let names: Vec<String> = (0..=DTCP_MAX_MEMBERS).map(|i| format!("m{i}")).collect();
        let many: Vec<(u16, &str, u32)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u16 + 1, n.as_str(), 100))
            .collect();
        assert_eq!(
            Dispatcher::new(&config(DispatchPolicy::Dtcp), &many).err(),
            Some(DispatchError::TooManyMembers(65))
        );
        assert!(Dispatcher::new(&config(DispatchPolicy::Dtcp), &many[..64]).is_ok());
        assert!(Dispatcher::new(&config(DispatchPolicy::Lard), &many).is_ok());
        assert_eq!(Reason::DtcpHolder.name(), "dtcp_holder");
        assert_eq!(Reason::DtcpPlaced.name(), "dtcp_placed");
        assert_eq!(Reason::DtcpReplicated.name(), "dtcp_replicated");
    }
}

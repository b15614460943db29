//! Session stickiness at dispatch and at the serving member (issue 15,
//! `[services.dispatch.sticky]`; the cookie itself is `shoal_l7::sticky`).
//!
//! - At dispatch (any member, any policy): a request whose sticky cookie
//!   the cluster signed goes to the member it names while that member is
//!   alive, drained or not (a drain moves new sessions only); a session id
//!   in the URL goes to its place on the URL ring. A forged cookie or one
//!   naming a member that is gone is counted and the policy decides.
//! - At the serving member: the first request of a tracked connection that
//!   had no valid cookie naming this member gets the `Set-Cookie` line
//!   into its response (`persist.rs` inserts it and keeps both sequence
//!   spaces straight until the client has acknowledged it).
//!
//! This module owns those two decisions; it touches no packet.

use shoal_l7::dispatch::{Choice, Dispatcher, Reason};
use shoal_l7::handoff::ClusterKey;
use shoal_l7::http::RequestHead;
use shoal_l7::sticky::{self, Cookie};

use super::Tables;
use crate::counters::{Counter, Counters};

/// What the sticky cookie of `head` says at member tables `tables`, for
/// service `service` (None without a sticky cookie).
fn cookie<'a>(
    tables: &Tables,
    key: Option<&ClusterKey>,
    service: usize,
    head: &RequestHead<'a>,
) -> Option<Cookie<'a>> {
    let svc = tables.services.get(service)?;
    let st = svc.dispatch.as_ref()?.sticky.as_ref()?;
    let is_member = |name: &str| tables.members.iter().any(|m| m.name == name);
    Some(match key {
        Some(key) => sticky::read(key, &svc.name, &st.cookie, head, !st.insert, is_member),
        // No cluster key (a single member without handoff): plain names only.
        None => match head
            .cookie(&st.cookie)
            .and_then(|v| core::str::from_utf8(v).ok())
        {
            Some(v) if !st.insert && is_member(v) => Cookie::Plain(v),
            Some(v) if !v.is_empty() => Cookie::Forged,
            _ => Cookie::Absent,
        },
    })
}

/// The member a request of service `service` sticks to, if any (counted
/// by the caller as a dispatch reason); a forged or stale cookie is counted
/// here and gives None.
pub(super) fn sticky_choice(
    tables: &Tables,
    dispatcher: &Dispatcher,
    key: Option<&ClusterKey>,
    service: usize,
    head: &RequestHead<'_>,
    counters: &mut Counters,
) -> Option<Choice> {
    let st = tables
        .services
        .get(service)?
        .dispatch
        .as_ref()?
        .sticky
        .as_ref()?;
    match cookie(tables, key, service, head)? {
        Cookie::Signed(name) | Cookie::Plain(name) => {
            let alive = tables.members.iter().find(|m| m.name == name && m.alive);
            match alive {
                Some(m) => {
                    return Some(Choice {
                        member: m.id,
                        reason: Reason::StickyCookie,
                    })
                }
                None => counters.inc(Counter::StickyStale),
            }
        }
        Cookie::Forged => counters.inc(Counter::StickyForged),
        Cookie::Absent => {}
    }
    let id = sticky::session_id(
        head.target,
        st.url_param.as_deref(),
        st.query_key.as_deref(),
    )?;
    Some(dispatcher.session_member(id))
}

/// The `Set-Cookie` line the response to `head` (served here, of service
/// `service`) gets: with `insert`, unless its cookie already names this
/// member.
pub(super) fn cookie_to_issue(
    tables: &Tables,
    key: Option<&ClusterKey>,
    service: usize,
    head: &RequestHead<'_>,
) -> Option<Vec<u8>> {
    let svc = tables.services.get(service)?;
    let st = svc
        .dispatch
        .as_ref()?
        .sticky
        .as_ref()
        .filter(|s| s.insert)?;
    let key = key?;
    let own = tables.members.iter().find(|m| m.id == tables.own_id)?;
    if matches!(cookie(tables, Some(key), service, head), Some(Cookie::Signed(m)) if m == own.name)
    {
        return None;
    }
    let value = sticky::token(key, &svc.name, &own.name);
    Some(sticky::set_cookie_line(&st.cookie, &value, st.max_age_s))
}

//! Session stickiness of a splice service (`[services.dispatch.sticky]`;
//! issue 15): later requests and connections of a session go to the member
//! that served its first one.
//!
//! This module owns the schema and its validation. The signed cookie, its
//! check at dispatch and its insertion into the first response live in
//! `shoal_l7::sticky` and the dataplane's persistent-connection path.

use serde::{Deserialize, Serialize};

use crate::classes::is_token;
use crate::validate::Problems;

/// The cookie name the dataplane issues and honours by default.
pub const DEFAULT_STICKY_COOKIE: &str = "shoal_member";

/// Longest `max_age_s` (one year).
pub const MAX_STICKY_AGE_S: u32 = 366 * 24 * 3600;

/// `[services.dispatch.sticky]`.
///
/// A request that carries the cookie `cookie` with a value the cluster
/// signed (`<member>.<tag>`, HMAC of the cluster key) goes to that member
/// while it is alive, drained or not (a drain moves new sessions only). A
/// request whose session id is in its URL (`url_param`, `query_key`) goes
/// to the member the id hashes to among the members taking new sessions.
/// Anything else — no cookie, a forged one, one naming a member that is
/// gone — is dispatched by the service's policy (counted:
/// `dispatch_sticky_forged`, `dispatch_sticky_stale`), and with `insert`
/// the member that serves it adds `Set-Cookie` to its first response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sticky {
    /// The cookie's name (an HTTP token).
    #[serde(default = "default_cookie")]
    pub cookie: String,
    /// The serving member's dataplane adds `Set-Cookie: <cookie>=<member>.<tag>`
    /// to the first response of a connection whose request had no valid
    /// cookie. `false`: the dataplane only honours cookies (the
    /// application may set the cookie to a member's plain name itself,
    /// which is honoured too).
    #[serde(default = "default_true")]
    pub insert: bool,
    /// `Max-Age` of the issued cookie, seconds (1 to one year).
    #[serde(default = "default_max_age_s")]
    pub max_age_s: u32,
    /// A session id carried as a path parameter (`/cart;jsessionid=ID`).
    #[serde(default)]
    pub url_param: Option<String>,
    /// A session id carried as a query key (`/cart?sid=ID`).
    #[serde(default)]
    pub query_key: Option<String>,
}

impl Default for Sticky {
    fn default() -> Self {
        Sticky {
            cookie: default_cookie(),
            insert: true,
            max_age_s: default_max_age_s(),
            url_param: None,
            query_key: None,
        }
    }
}

fn default_cookie() -> String {
    DEFAULT_STICKY_COOKIE.to_owned()
}

fn default_true() -> bool {
    true
}

fn default_max_age_s() -> u32 {
    3600
}

/// Checks `[services.dispatch.sticky]` (`key` is `services[i].dispatch`).
pub(crate) fn check_sticky(s: &Sticky, key: &str, p: &mut Problems) {
    if !is_token(&s.cookie) {
        p.add(
            format!("{key}.sticky.cookie"),
            format!(
                "'{}' is not a valid cookie name (a non-empty HTTP token)",
                s.cookie
            ),
        );
    }
    if s.max_age_s == 0 || s.max_age_s > MAX_STICKY_AGE_S {
        p.add(
            format!("{key}.sticky.max_age_s"),
            format!(
                "must be 1 to {MAX_STICKY_AGE_S} seconds (got {})",
                s.max_age_s
            ),
        );
    }
    for (what, name) in [("url_param", &s.url_param), ("query_key", &s.query_key)] {
        if let Some(n) = name {
            if !is_token(n) {
                p.add(
                    format!("{key}.sticky.{what}"),
                    format!("'{n}' is not a valid parameter name (a non-empty HTTP token)"),
                );
            }
        }
    }
}

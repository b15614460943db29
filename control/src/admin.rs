//! The admin API: routes, authorisation, the `/ring` view and what a
//! config reload may change.
//!
//! This module owns the decisions — which request does what, who may do it,
//! what a reload applies — as plain functions over a [`Request`] and the
//! published [`Status`], so they are tested without sockets. Serving HTTP
//! (`tiny_http`) and carrying actions to the main loop live in `daemon.rs`.
//!
//! | request | answer |
//! |---|---|
//! | `GET /status` | the whole [`Status`] |
//! | `GET /members` | every member with liveness, weight, drain, load |
//! | `GET /ring` | the epoch table and each member's share of a sample of client keys, per service |
//! | `POST /drain/<member>`, `/undrain/<member>` | drain / undrain (name or id), cluster-wide |
//! | `POST /weight/<member>/<w>` | set a weight, cluster-wide |
//! | `POST /reload` | re-read and validate the config file; apply all or nothing |
//!
//! Mutating calls need `Authorization: Bearer <token>` when
//! `control.admin_token_file` is set (and the daemon refuses to listen on a
//! non-loopback address without one); reads need it too when the API
//! listens on a non-loopback address.

use serde_json::{json, Value};
use shoal_config::{Algorithm, Config};
use shoal_select::{self as select, Member, Params};

use crate::membership::Timing;
use crate::status::Status;
use shoal_key::AdminToken;

/// Client keys sampled per service by `/ring`.
pub const RING_SAMPLE_KEYS: u32 = 20_000;

/// What the admin API needs from an HTTP request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, without query.
    pub path: &'a str,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

impl Response {
    fn ok(body: Value) -> Response {
        Response { status: 200, body }
    }

    /// An error answer `{"error": message}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response {
            status,
            body: json!({ "error": message }),
        }
    }
}

/// A change the main loop carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set a member's weight and/or drain flag.
    Set {
        /// Member id.
        member: u16,
        /// New weight.
        weight: Option<u32>,
        /// New drain flag.
        draining: Option<bool>,
    },
    /// Re-read the config file.
    Reload,
    /// Remove a client's flows on every worker (port 0: every port).
    EvictFlows {
        /// The client's address.
        client: std::net::Ipv4Addr,
        /// Its port, 0 for all.
        port: u16,
    },
    /// Place the new connections of a client prefix on a member for a
    /// while, on every worker (member 0: remove the prefix's pin).
    PinClients {
        /// The prefix (host bits zero).
        prefix: std::net::Ipv4Addr,
        /// Its length.
        len: u8,
        /// The member, 0 to unpin.
        member: u16,
        /// How long, seconds.
        secs: u32,
    },
}

/// The longest pin `shoalctl flows pin` accepts: a day. Pins are an
/// operator's temporary override; a lasting placement belongs in the config
/// (dispatch rules, weights).
pub const MAX_PIN_SECS: u32 = 86_400;

/// Who may call what.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The bearer token, when a token file is configured.
    pub token: Option<AdminToken>,
    /// Reads need the token too (non-loopback listener).
    pub guard_reads: bool,
}

fn authorised(policy: &Policy, authorization: Option<&str>) -> bool {
    match &policy.token {
        None => true,
        Some(token) => authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| token.matches(t.trim())),
    }
}

/// Routes one request. `act` performs an [`Action`] in the main loop and
/// returns its JSON result or (HTTP status, error lines).
pub fn handle(
    req: &Request<'_>,
    policy: &Policy,
    status: &Status,
    config: &Config,
    act: &mut dyn FnMut(Action) -> Result<Value, (u16, Vec<String>)>,
) -> Response {
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let mutating = match (req.method, parts.as_slice()) {
        ("GET", ["status" | "members" | "ring"] | ["flows", _]) => false,
        (
            "POST",
            ["drain" | "undrain", _]
            | ["weight", _, _]
            | ["reload"]
            | ["flows", "evict", _]
            | ["flows", "pin", _, _, _, _]
            | ["flows", "unpin", _, _],
        ) => true,
        (
            _,
            ["status" | "members" | "ring" | "reload"]
            | ["drain" | "undrain" | "flows", _]
            | ["weight", _, _]
            | ["flows", "evict", _]
            | ["flows", "pin", _, _, _, _]
            | ["flows", "unpin", _, _],
        ) => return Response::error(405, "method not allowed (reads are GET, changes are POST)"),
        _ => {
            return Response::error(
                404,
                "unknown path; try GET /status, /members, /ring, /flows/<client>[:<port>] or \
                 POST /drain/<member>, \
                 /undrain/<member>, /weight/<member>/<weight>, /reload, \
                 /flows/evict/<client>[:<port>], /flows/pin/<prefix>/<len>/<member>/<seconds>, \
                 /flows/unpin/<prefix>/<len>",
            )
        }
    };
    if (mutating || policy.guard_reads) && !authorised(policy, req.authorization) {
        return Response::error(
            401,
            "missing or wrong bearer token (send `Authorization: Bearer <token>` with the \
             contents of control.admin_token_file)",
        );
    }
    let run = |act: &mut dyn FnMut(Action) -> Result<Value, (u16, Vec<String>)>, a: Action| {
        match act(a) {
            Ok(v) => Response::ok(v),
            Err((code, errors)) => Response {
                status: code,
                body: json!({ "error": errors.first().cloned().unwrap_or_default(), "errors": errors }),
            },
        }
    };
    match parts.as_slice() {
        ["status"] => Response::ok(serde_json::to_value(status).unwrap_or(Value::Null)),
        ["members"] => Response::ok(json!({ "members": status.members })),
        ["ring"] => Response::ok(ring_view(status, config, RING_SAMPLE_KEYS)),
        ["drain" | "undrain", m] => match resolve(config, m) {
            Some(member) => run(
                act,
                Action::Set {
                    member,
                    weight: None,
                    draining: Some(parts[0] == "drain"),
                },
            ),
            None => Response::error(404, &format!("no member named or numbered '{m}'")),
        },
        ["weight", m, w] => match (resolve(config, m), w.parse::<u32>()) {
            (None, _) => Response::error(404, &format!("no member named or numbered '{m}'")),
            (_, Err(_)) => Response::error(
                400,
                &format!("weight '{w}' is not an integer 0..=4294967295 (0 = drained)"),
            ),
            (Some(member), Ok(weight)) => run(
                act,
                Action::Set {
                    member,
                    weight: Some(weight),
                    draining: None,
                },
            ),
        },
        ["flows", "evict", c] => match parse_client(c) {
            Some((client, port)) => run(act, Action::EvictFlows { client, port }),
            None => Response::error(
                400,
                &format!(
                    "'{c}' is not a client address (198.18.0.2) or address:port (198.18.0.2:40000)"
                ),
            ),
        },
        ["flows", "pin", addr, len, m, secs] => match (
            parse_prefix(addr, len),
            resolve(config, m),
            secs.parse::<u32>(),
        ) {
            (Err(e), _, _) => Response::error(400, &e),
            (_, None, _) => Response::error(404, &format!("no member named or numbered '{m}'")),
            (_, _, Err(_) | Ok(0)) => Response::error(
                400,
                &format!("'{secs}' is not a number of seconds 1..={MAX_PIN_SECS}"),
            ),
            (_, _, Ok(s)) if s > MAX_PIN_SECS => Response::error(
                400,
                &format!(
                    "{s} s is longer than a pin may last ({MAX_PIN_SECS} s): put a lasting \
                     placement in the config"
                ),
            ),
            (Ok((prefix, len)), Some(member), Ok(secs)) => run(
                act,
                Action::PinClients {
                    prefix,
                    len,
                    member,
                    secs,
                },
            ),
        },
        ["flows", "unpin", addr, len] => match parse_prefix(addr, len) {
            Err(e) => Response::error(400, &e),
            Ok((prefix, len)) => run(
                act,
                Action::PinClients {
                    prefix,
                    len,
                    member: 0,
                    secs: 0,
                },
            ),
        },
        ["flows", c] => match parse_client(c) {
            Some((client, port)) => Response::ok(flow_history(config, client, port)),
            None => Response::error(
                400,
                &format!(
                    "'{c}' is not a client address (198.18.0.2) or address:port (198.18.0.2:40000)"
                ),
            ),
        },
        _ => run(act, Action::Reload),
    }
}

/// The `/flows/<client>` answer: this member's side of the owner history
/// of the client's keep-alive connections (one port, or every port), from
/// the dataplane workers' move logs (`shoal_channel::moves`), oldest first.
/// Members are named; the events name the members to ask next.
pub fn flow_history(config: &Config, client: std::net::Ipv4Addr, port: u16) -> Value {
    let name = |id: u16| member_name(config, id);
    let events: Vec<Value> =
        shoal_channel::moves::read_move_logs(&config.control.shm_path, MAX_DATAPLANE_WORKERS)
            .into_iter()
            .filter(|e| *e.client.ip() == client && (port == 0 || e.client.port() == port))
            .map(|e| {
                let (event, member) = e.kind.word_and_member();
                json!({
                    "unix_ms": e.unix_ms,
                    "client": e.client.to_string(),
                    "event": event,
                    "member": name(member),
                    "requests_here": e.requests_here,
                })
            })
            .collect();
    json!({
        "member": config.cluster.local_member,
        "client": client.to_string(),
        "port": port,
        "events": events,
    })
}

/// Member `id`'s name, or the id as text when the config has no such member.
fn member_name(config: &Config, id: u16) -> String {
    config
        .cluster
        .members
        .iter()
        .find(|m| m.id == id)
        .map_or_else(|| id.to_string(), |m| m.name.clone())
}

/// Worker move logs looked for (a dataplane has at most this many workers).
const MAX_DATAPLANE_WORKERS: usize = 64;

/// `ADDR` or `ADDR:PORT` (port 0 = every port).
/// A client prefix from its address and length, or why not.
fn parse_prefix(addr: &str, len: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let bad = || format!("'{addr}/{len}' is not an IPv4 prefix (198.19.4.0/24, host bits zero)");
    let prefix: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if shoal_channel::is_prefix(prefix, len) {
        Ok((prefix, len))
    } else {
        Err(bad())
    }
}

fn parse_client(s: &str) -> Option<(std::net::Ipv4Addr, u16)> {
    match s.split_once(':') {
        Some((a, p)) => Some((a.parse().ok()?, p.parse().ok()?)),
        None => Some((s.parse().ok()?, 0)),
    }
}

/// A member id from its name or its id.
pub fn resolve(config: &Config, name_or_id: &str) -> Option<u16> {
    let members = &config.cluster.members;
    members
        .iter()
        .find(|m| m.name == name_or_id)
        .or_else(|| {
            name_or_id
                .parse::<u16>()
                .ok()
                .and_then(|id| members.iter().find(|m| m.id == id))
        })
        .map(|m| m.id)
}

/// The `/ring` answer: the epoch table and, per service (or for the default
/// selection when none is configured), each member's share of `keys`
/// sampled client keys under the epoch's weights (drained, dead or a
/// back end = 0).
pub fn ring_view(status: &Status, config: &Config, keys: u32) -> Value {
    let members: Vec<Member> = config
        .cluster
        .members
        .iter()
        .map(|m| {
            let row = status.table.iter().find(|e| e.id == m.id);
            // Back ends (member roles) inspect nothing: no share of keys.
            let weight = match row {
                Some(e) if e.alive && !e.draining && m.role.inspects() => e.weight,
                _ => 0,
            };
            Member {
                id: m.id,
                addr: m.address,
                weight,
            }
        })
        .collect();
    let name_of = |id: u16| member_name(config, id);
    let mut selections: Vec<(String, Algorithm, Params)> = config
        .services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.selection.algorithm,
                Params::from(&s.selection),
            )
        })
        .collect();
    if selections.is_empty() {
        let d = shoal_config::Selection::default();
        selections.push(("(default)".to_owned(), d.algorithm, Params::from(&d)));
    }
    let services: Vec<Value> = selections
        .iter()
        .map(|(name, algorithm, params)| {
            let table = select::build(*algorithm, &members, params);
            let mut counts = vec![0u32; members.len()];
            let mut none = 0u32;
            for i in 0..keys {
                match table.select(crate::ring_stats::sample_key(0, i)) {
                    Some(id) => {
                        if let Some(ix) = members.iter().position(|m| m.id == id) {
                            counts[ix] += 1;
                        }
                    }
                    None => none += 1,
                }
            }
            let shares: serde_json::Map<String, Value> = members
                .iter()
                .zip(&counts)
                .map(|(m, &c)| (name_of(m.id), json!(f64::from(c) / f64::from(keys.max(1)))))
                .collect();
            json!({
                "service": name,
                "algorithm": format!("{algorithm:?}").to_ascii_lowercase(),
                "keys": keys,
                "unassigned": none,
                "shares": shares,
            })
        })
        .collect();
    let table: Vec<Value> = status
        .table
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "name": name_of(e.id),
                "alive": e.alive,
                "weight": e.weight,
                "draining": e.draining,
            })
        })
        .collect();
    json!({
        "epoch": status.epoch,
        "digest": status.epoch_digest,
        "converged": status.converged,
        "table": table,
        "services": services,
    })
}

/// What a reload applies (everything else must be unchanged).
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadPlan {
    /// New timers.
    pub timing: Timing,
    /// New smoothing factor.
    pub load_smoothing: f64,
    /// The new `[control.load]`, when it changed (weights apply at once,
    /// the CPU readers start afresh).
    pub load: Option<shoal_config::LoadSettings>,
    /// Members whose configured weight changed: (id, new weight).
    pub weights: Vec<(u16, u32)>,
    /// The new service table's digest, when the services changed (the
    /// dataplane re-reads its file and applies it: `shoal_config::reload`).
    pub services: Option<u64>,
}

/// Compares a running config with a freshly loaded (valid) one. Changes to
/// weights, `interval_ms`, `failure_timeout_ms`, `load_smoothing`,
/// `[control.load]` and the
/// service table (as far as `shoal_config::services_reloadable` allows:
/// not how an existing service picks its inspector) are applied at once; a
/// change to anything else is an error naming the key, and then nothing is
/// applied.
pub fn plan_reload(old: &Config, new: &Config) -> Result<ReloadPlan, Vec<String>> {
    let mut errors = Vec::new();
    let mut fixed = |key: &str, same: bool, how: &str| {
        if !same {
            errors.push(format!("{key}: changed, but {how}; nothing was applied"));
        }
    };
    let restart_control = "it is only read at start (restart shoal-control)";
    let restart_both = "it is only read at start (restart shoal-dataplane and shoal-control)";
    fixed(
        "cluster.name",
        old.cluster.name == new.cluster.name,
        restart_control,
    );
    fixed(
        "cluster.vips",
        old.cluster.vips == new.cluster.vips,
        restart_both,
    );
    fixed(
        "cluster.mac",
        old.cluster.mac == new.cluster.mac,
        restart_both,
    );
    fixed(
        "cluster.local_member",
        old.cluster.local_member == new.cluster.local_member,
        restart_both,
    );
    fixed(
        "cluster.key_file",
        old.cluster.key_file == new.cluster.key_file,
        restart_control,
    );
    let strip = |c: &Config| {
        c.cluster
            .members
            .iter()
            .map(|m| (m.id, m.name.clone(), m.address, m.mac))
            .collect::<Vec<_>>()
    };
    fixed(
        "cluster.members",
        strip(old) == strip(new),
        "only weights can change at run time (restart shoal-dataplane and shoal-control to \
         add, remove or renumber members)",
    );
    fixed(
        "dataplane",
        old.dataplane == new.dataplane,
        "restart shoal-dataplane",
    );
    let (oc, nc) = (&old.control, &new.control);
    fixed(
        "control.networks",
        oc.networks == nc.networks,
        restart_control,
    );
    fixed(
        "control.metrics_listen",
        oc.metrics_listen == nc.metrics_listen,
        restart_control,
    );
    fixed(
        "control.admin_listen",
        oc.admin_listen == nc.admin_listen,
        restart_control,
    );
    fixed(
        "control.admin_token_file",
        oc.admin_token_file == nc.admin_token_file,
        restart_control,
    );
    fixed("control.shm_path", oc.shm_path == nc.shm_path, restart_both);
    fixed("control.bgp", oc.bgp == nc.bgp, restart_control);
    if let Err(errs) = shoal_config::services_reloadable(&old.services, &new.services) {
        errors.extend(errs);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let weights = new
        .cluster
        .members
        .iter()
        .filter_map(|n| {
            let o = old.cluster.members.iter().find(|o| o.id == n.id)?;
            (o.weight != n.weight).then_some((n.id, n.weight))
        })
        .collect();
    Ok(ReloadPlan {
        timing: Timing {
            interval_ms: nc.interval_ms,
            failure_timeout_ms: nc.failure_timeout_ms,
        },
        load_smoothing: nc.load_smoothing,
        load: (oc.load != nc.load).then(|| nc.load.clone()),
        weights,
        services: (old.services != new.services)
            .then(|| shoal_config::services_digest(&new.services)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::TableEntry;

    const CONFIG: &str = r#"
[cluster]
vips = ["198.18.0.100"]
mac = "02:00:c6:12:00:64"
local_member = "srv1"
[[cluster.members]]
id = 1
name = "srv1"
address = "198.18.0.11"
mac = "02:00:c6:12:00:0b"
[[cluster.members]]
id = 2
name = "srv2"
address = "198.18.0.12"
mac = "02:00:c6:12:00:0c"
[[services]]
name = "web"
vip = "198.18.0.100"
port = 80
[dataplane]
backend = "memory"
[control]
[[control.networks]]
name = "lab"
bind = "127.0.0.1:7946"
peers = ["127.0.0.1:7947"]
"#;

    fn config() -> Config {
        shoal_config::load_str(CONFIG, std::path::Path::new("/etc/shoal/t.toml")).unwrap()
    }

    fn status() -> Status {
        Status {
            epoch: 4,
            table: vec![
                TableEntry {
                    id: 1,
                    alive: true,
                    weight: 100,
                    draining: false,
                },
                TableEntry {
                    id: 2,
                    alive: true,
                    weight: 100,
                    draining: true,
                },
            ],
            ..Status::default()
        }
    }

    fn token_policy(guard_reads: bool) -> Policy {
        Policy {
            token: AdminToken::new("0123456789abcdef"),
            guard_reads,
        }
    }

    fn call(
        policy: &Policy,
        method: &str,
        path: &str,
        auth: Option<&str>,
    ) -> (Response, Vec<Action>) {
        let mut done = Vec::new();
        let r = handle(
            &Request {
                method,
                path,
                authorization: auth,
            },
            policy,
            &status(),
            &config(),
            &mut |a| {
                done.push(a);
                Ok(json!({"ok": true}))
            },
        );
        (r, done)
    }

    #[test]
    fn mutating_calls_need_the_token() {
        let p = token_policy(false);
        let (r, done) = call(&p, "POST", "/drain/srv2", None);
        assert_eq!(r.status, 401);
        assert!(done.is_empty());
        let (r, done) = call(&p, "POST", "/drain/srv2", Some("Bearer wrong-token-xxxxxx"));
        assert_eq!(r.status, 401);
        assert!(done.is_empty());
        let (r, done) = call(&p, "POST", "/drain/srv2", Some("Bearer 0123456789abcdef"));
        assert_eq!(r.status, 200);
        assert_eq!(
            done,
            vec![Action::Set {
                member: 2,
                weight: None,
                draining: Some(true)
            }]
        );
        let (r, done) = call(&p, "POST", "/weight/1/50", Some("Bearer 0123456789abcdef"));
        assert_eq!(r.status, 200);
        assert_eq!(
            done,
            vec![Action::Set {
                member: 1,
                weight: Some(50),
                draining: None
            }]
        );
        // Reads are open on loopback, guarded otherwise.
        assert_eq!(call(&p, "GET", "/members", None).0.status, 200);
        assert_eq!(
            call(&token_policy(true), "GET", "/members", None).0.status,
            401
        );
        // No token configured: changes allowed (loopback-only listener).
        let open = Policy {
            token: None,
            guard_reads: false,
        };
        assert_eq!(call(&open, "POST", "/undrain/srv2", None).1.len(), 1);
    }

    #[test]
    fn bad_requests_are_named() {
        let p = token_policy(false);
        let auth = Some("Bearer 0123456789abcdef");
        assert_eq!(call(&p, "GET", "/nope", None).0.status, 404);
        assert_eq!(call(&p, "GET", "/drain/srv2", None).0.status, 405);
        assert_eq!(call(&p, "POST", "/status", None).0.status, 405);
        let (r, done) = call(&p, "POST", "/drain/srv9", auth);
        assert_eq!(r.status, 404);
        assert_eq!(
            r.body,
            json!({"error": "no member named or numbered 'srv9'"})
        );
        assert!(done.is_empty());
        let (r, _) = call(&p, "POST", "/weight/srv1/-1", auth);
        assert_eq!(r.status, 400);
        assert_eq!(call(&p, "POST", "/reload", auth).1, vec![Action::Reload]);
    }

    #[test]
    fn ring_shares_skip_drained_members() {
        let v = ring_view(&status(), &config(), 1000);
        assert_eq!(v["epoch"], 4);
        assert_eq!(v["services"][0]["service"], "web");
        assert_eq!(v["services"][0]["algorithm"], "rendezvous");
        assert_eq!(v["services"][0]["shares"]["srv1"], 1.0);
        assert_eq!(v["services"][0]["shares"]["srv2"], 0.0);
        assert_eq!(
            v["table"][1],
            json!({"id": 2, "name": "srv2", "alive": true, "weight": 100, "draining": true})
        );
        // Both active: each about half.
        let mut s = status();
        s.table[1].draining = false;
        let v = ring_view(&s, &config(), 10_000);
        let a = v["services"][0]["shares"]["srv1"].as_f64().unwrap();
        assert!((a - 0.5).abs() < 0.03, "share {a}");
    }

    #[test]
    fn reload_applies_weights_and_timers_only() {
        let old = config();
        let mut new = config();
        new.cluster.members[1].weight = 40;
        new.control.interval_ms = 100;
        let plan = plan_reload(&old, &new).unwrap();
        assert_eq!(plan.weights, vec![(2, 40)]);
        assert_eq!(plan.timing.interval_ms, 100);
        assert_eq!(plan.load, None);
        // [control.load] applies at run time.
        let mut weighed = new.clone();
        weighed.control.load.weights.host_cpu = 0.0;
        weighed.control.load.app_pid_files = vec!["/run/nginx.pid".into()];
        assert_eq!(
            plan_reload(&old, &weighed).unwrap().load,
            Some(weighed.control.load.clone())
        );
        let mut bad = new.clone();
        bad.control.networks.clear();
        bad.cluster.members[1].address = std::net::Ipv4Addr::new(198, 18, 0, 99);
        assert_eq!(
            plan_reload(&old, &bad).unwrap_err(),
            vec![
                "cluster.members: changed, but only weights can change at run time (restart \
                 shoal-dataplane and shoal-control to add, remove or renumber members); nothing \
                 was applied"
                    .to_owned(),
                "control.networks: changed, but it is only read at start (restart \
                 shoal-control); nothing was applied"
                    .to_owned(),
            ]
        );
        assert_eq!(plan.services, None);
    }

    #[test]
    fn reload_applies_service_modes_but_not_inspector_changes() {
        let old = config();
        let mut new = config();
        new.services[0].mode = shoal_config::Mode::DprMac;
        let plan = plan_reload(&old, &new).unwrap();
        assert_eq!(
            plan.services,
            Some(shoal_config::services_digest(&new.services))
        );
        new.services[0].selection.vnodes += 1;
        let errs = plan_reload(&old, &new).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("services[0].selection"), "{errs:?}");
    }

    #[test]
    fn pin_and_unpin_take_a_prefix_a_member_and_a_duration() {
        let p = token_policy(false);
        let auth = Some("Bearer 0123456789abcdef");
        let (r, done) = call(&p, "POST", "/flows/pin/198.19.4.0/24/srv2/600", auth);
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            done,
            vec![Action::PinClients {
                prefix: std::net::Ipv4Addr::new(198, 19, 4, 0),
                len: 24,
                member: 2,
                secs: 600,
            }]
        );
        let (r, done) = call(&p, "POST", "/flows/unpin/198.19.4.0/24", auth);
        assert_eq!(r.status, 200);
        assert!(matches!(done[..], [Action::PinClients { member: 0, .. }]));
        // Each mistake named, nothing done.
        for (path, status, says) in [
            (
                "/flows/pin/198.19.4.1/24/srv2/600",
                400,
                "not an IPv4 prefix",
            ),
            (
                "/flows/pin/198.19.4.0/33/srv2/600",
                400,
                "not an IPv4 prefix",
            ),
            ("/flows/pin/198.19.4.0/24/srv9/600", 404, "no member named"),
            ("/flows/pin/198.19.4.0/24/srv2/0", 400, "seconds 1..=86400"),
            (
                "/flows/pin/198.19.4.0/24/srv2/86401",
                400,
                "longer than a pin may last",
            ),
            ("/flows/unpin/nowhere/24", 400, "not an IPv4 prefix"),
        ] {
            let (r, done) = call(&p, "POST", path, auth);
            assert_eq!(r.status, status, "{path}: {:?}", r.body);
            assert!(
                r.body["error"].as_str().unwrap_or("").contains(says),
                "{path}: {:?}",
                r.body
            );
            assert!(done.is_empty(), "{path}");
        }
        let (r, _) = call(&p, "POST", "/flows/pin/198.19.4.0/24/srv2/600", None);
        assert_eq!(r.status, 401);
        let (r, _) = call(&p, "GET", "/flows/pin/198.19.4.0/24/srv2/600", auth);
        assert_eq!(r.status, 405);
    }

    #[test]
    fn evict_takes_a_client_and_an_optional_port() {
        assert_eq!(
            parse_client("198.18.0.2:4000"),
            Some((std::net::Ipv4Addr::new(198, 18, 0, 2), 4000))
        );
        assert_eq!(
            parse_client("198.18.0.2"),
            Some((std::net::Ipv4Addr::new(198, 18, 0, 2), 0))
        );
        assert_eq!(parse_client("srv1"), None);
        assert_eq!(parse_client("198.18.0.2:http"), None);
    }
}

#[cfg(test)]
mod flow_history_tests {
    use super::*;
    use shoal_channel::moves::{move_log_path, MoveEvent, MoveKind};
    use std::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn flows_show_this_members_moves_of_one_client() {
        let dir = std::env::temp_dir().join(format!("shoal-admin-moves-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/examples/lab-srv1.toml");
        let mut config = shoal_config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        config.control.shm_path.clone_from(&dir);
        let client = |port| SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), port);
        let (mut w0, mut w1) = (String::new(), String::new());
        let event = |unix_ms, port, kind, requests_here| MoveEvent {
            unix_ms,
            client: client(port),
            kind,
            requests_here,
        };
        event(10, 40001, MoveKind::Arrived { from: 3 }, 0).line(&mut w0);
        event(30, 40002, MoveKind::Left { to: 2 }, 1).line(&mut w0);
        event(20, 40001, MoveKind::Left { to: 2 }, 4).line(&mut w1);
        std::fs::write(move_log_path(&dir, 0), w0).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(move_log_path(&dir, 1), w1).unwrap_or_else(|e| panic!("{e}"));
        let one = flow_history(&config, Ipv4Addr::new(198, 18, 0, 2), 40001);
        let every = flow_history(&config, Ipv4Addr::new(198, 18, 0, 2), 0);
        let other = flow_history(&config, Ipv4Addr::new(198, 18, 0, 9), 0);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            one,
            json!({
                "member": "srv1",
                "client": "198.18.0.2",
                "port": 40001,
                "events": [
                    {"unix_ms": 10, "client": "198.18.0.2:40001", "event": "arrived-from",
                     "member": "srv3", "requests_here": 0},
                    {"unix_ms": 20, "client": "198.18.0.2:40001", "event": "left-to",
                     "member": "srv2", "requests_here": 4},
                ],
            })
        );
        assert_eq!(every["events"].as_array().map(Vec::len), Some(3));
        assert_eq!(other["events"], json!([]));
    }
}

//! Taking one [`Sample`] of the cluster: the member list from one admin API
//! (`GET /status`), then every member's exporter (`GET /metrics` on its own
//! address), in parallel, each with a short timeout.
//!
//! This module owns the I/O of `shoalctl top` and the reading of the
//! `/status` JSON; it computes nothing (rates and rows are `view.rs`'s).
//! Why the exporters and not the admin APIs: the admin API listens on
//! loopback (its default, and the lab's), so only the exporter of another
//! member can be reached, and it carries every counter `top` shows.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::scrape::{self, Scrape};
use crate::cli_admin::{self, CallError};
use shoal_key::AdminToken;

/// Connect and read timeouts of one poll: short, so one dead member delays
/// a refresh by at most this much.
pub const TIMEOUTS: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(2));

/// One member as the seed's `/status` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberInfo {
    /// Id.
    pub id: u16,
    /// Name.
    pub name: String,
    /// Own address (where its exporter is polled).
    pub address: Ipv4Addr,
    /// The seed itself.
    pub local: bool,
    /// Alive in the seed's view.
    pub alive: bool,
    /// Drained.
    pub draining: bool,
    /// Weight in force.
    pub weight: u32,
    /// Load as a share of capacity.
    pub load: f64,
}

/// What the seed member says about the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Seed {
    /// Cluster name.
    pub cluster: String,
    /// The seed member's name.
    pub member: String,
    /// Every configured member.
    pub members: Vec<MemberInfo>,
}

/// One poll of the whole cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When it was taken (since the first sample).
    pub at: Duration,
    /// The members (from the seed, or the last answer it gave).
    pub seed: Option<Seed>,
    /// Why the seed did not answer this time.
    pub seed_error: Option<String>,
    /// Each member's exporter, by member id.
    pub scrapes: BTreeMap<u16, Result<Scrape, String>>,
}

/// Reads `GET /status`'s answer; `None` when it has no member list.
pub fn parse_seed(v: &Value) -> Option<Seed> {
    let members = v["members"]
        .as_array()?
        .iter()
        .map(|m| {
            Some(MemberInfo {
                id: u16::try_from(m["id"].as_u64()?).ok()?,
                name: m["name"].as_str()?.to_owned(),
                address: m["address"].as_str()?.parse().ok()?,
                local: m["local"] == true,
                alive: m["alive"] == true,
                draining: m["draining"] == true,
                weight: u32::try_from(m["weight"].as_u64()?).ok()?,
                load: m["load"]["load"].as_f64().unwrap_or(0.0),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Seed {
        cluster: v["cluster"].as_str().unwrap_or_default().to_owned(),
        member: v["member"].as_str().unwrap_or_default().to_owned(),
        members,
    })
}

/// A short reason for a failed call, for a table cell.
fn reason(e: &CallError) -> String {
    match e {
        CallError::Io { source, .. } => source.kind().to_string(),
        CallError::BadAnswer(_) => "not an HTTP answer".to_owned(),
        CallError::Token(e) => e.to_string(),
    }
}

/// Where `top` looks and how.
#[derive(Debug)]
pub struct Poller {
    /// The seed's admin API.
    pub admin: SocketAddr,
    /// Its token, when reads need one.
    pub token: Option<AdminToken>,
    /// The exporters' port (`control.metrics_listen`).
    pub metrics_port: u16,
    start: Instant,
    last_seed: Option<Seed>,
}

impl Poller {
    /// A poller whose samples count time from now.
    pub fn new(admin: SocketAddr, token: Option<AdminToken>, metrics_port: u16) -> Poller {
        Poller {
            admin,
            token,
            metrics_port,
            start: Instant::now(),
            last_seed: None,
        }
    }

    fn seed(&self) -> Result<Seed, String> {
        match cli_admin::request(self.admin, "GET", "/status", self.token.as_ref(), TIMEOUTS) {
            Ok((200, body)) => serde_json::from_slice(&body)
                .ok()
                .as_ref()
                .and_then(parse_seed)
                .ok_or_else(|| "its /status has no member list".to_owned()),
            Ok((code, _)) => Err(format!("HTTP {code} (see --token-file)")),
            Err(e) => Err(reason(&e)),
        }
    }

    /// One member's exporter: on its own address; the seed's also on
    /// loopback (a `metrics_listen` left at its default).
    fn scrape(&self, m: &MemberInfo) -> Result<Scrape, String> {
        let mut addrs = vec![SocketAddr::new(IpAddr::V4(m.address), self.metrics_port)];
        if m.local {
            addrs.push(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                self.metrics_port,
            ));
        }
        let mut error = String::new();
        for addr in addrs {
            match cli_admin::request(addr, "GET", "/metrics", None, TIMEOUTS) {
                Ok((200, body)) => return Ok(scrape::parse(&String::from_utf8_lossy(&body))),
                Ok((code, _)) => error = format!("HTTP {code} from {addr}"),
                Err(e) => error = reason(&e),
            }
        }
        Err(error)
    }

    /// Polls the seed, then every member it lists, in parallel.
    pub fn sample(&mut self) -> Sample {
        let seed_error = match self.seed() {
            Ok(seed) => {
                self.last_seed = Some(seed);
                None
            }
            Err(e) => Some(format!("{}: {e}", self.admin)),
        };
        let members = self
            .last_seed
            .as_ref()
            .map(|s| s.members.clone())
            .unwrap_or_default();
        let scrapes = std::thread::scope(|scope| {
            let handles: Vec<_> = members
                .iter()
                .map(|m| (m.id, scope.spawn(|| self.scrape(m))))
                .collect();
            handles
                .into_iter()
                .map(|(id, h)| {
                    let r = h
                        .join()
                        .unwrap_or_else(|_| Err("poll thread panicked".to_owned()));
                    (id, r)
                })
                .collect()
        });
        Sample {
            at: self.start.elapsed(),
            seed: self.last_seed.clone(),
            seed_error,
            scrapes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_member_list_of_status() {
        let v = json!({
            "cluster": "lab",
            "member": "srv1",
            "epoch": 3,
            "members": [
                {"id": 1, "name": "srv1", "address": "198.18.0.11", "local": true,
                 "alive": true, "weight": 100, "draining": false,
                 "load": {"load": 0.25, "busy": 0.25, "connections": 3.0}},
                {"id": 2, "name": "srv2", "address": "198.18.0.12", "local": false,
                 "alive": false, "weight": 50, "draining": true,
                 "load": {"load": 0.0}}
            ]
        });
        assert_eq!(
            parse_seed(&v),
            Some(Seed {
                cluster: "lab".into(),
                member: "srv1".into(),
                members: vec![
                    MemberInfo {
                        id: 1,
                        name: "srv1".into(),
                        address: Ipv4Addr::new(198, 18, 0, 11),
                        local: true,
                        alive: true,
                        draining: false,
                        weight: 100,
                        load: 0.25,
                    },
                    MemberInfo {
                        id: 2,
                        name: "srv2".into(),
                        address: Ipv4Addr::new(198, 18, 0, 12),
                        local: false,
                        alive: false,
                        draining: true,
                        weight: 50,
                        load: 0.0,
                    },
                ],
            })
        );
        assert_eq!(parse_seed(&json!({"error": "x"})), None);
        assert_eq!(
            parse_seed(&json!({"members": [{"id": 1, "name": "a", "address": "nope"}]})),
            None
        );
    }

    /// A member whose exporter does not answer is an error in its slot,
    /// not a failed sample.
    #[test]
    fn an_unreachable_member_is_an_error_in_its_slot() {
        // A port nobody listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut p = Poller::new(SocketAddr::from(([127, 0, 0, 1], port)), None, port);
        p.last_seed = Some(Seed {
            cluster: "lab".into(),
            member: "srv1".into(),
            members: vec![MemberInfo {
                id: 2,
                name: "srv2".into(),
                address: Ipv4Addr::LOCALHOST,
                local: false,
                alive: true,
                draining: false,
                weight: 100,
                load: 0.0,
            }],
        });
        let s = p.sample();
        assert_eq!(
            s.seed_error,
            Some(format!("127.0.0.1:{port}: connection refused"))
        );
        assert_eq!(s.seed.map(|s| s.members.len()), Some(1));
        assert_eq!(
            s.scrapes.get(&2),
            Some(&Err("connection refused".to_owned()))
        );
    }

    /// A member serving `/status` and `/metrics` as the daemon does (both
    /// on one listener here), and a second member nobody answers for.
    #[test]
    fn polls_the_seed_and_every_exporter() {
        use crate::metrics;
        use crate::status::{MemberStatus, Status, WorkerStatus};
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let member = |id: u16, address: Ipv4Addr| MemberStatus {
            id,
            name: format!("srv{id}"),
            address,
            local: id == 1,
            alive: true,
            weight: 100,
            draining: false,
            load: crate::message::LoadFigures::default(),
            incarnation: 1,
            last_heard_ms_ago: None,
            epoch: 3,
        };
        let status = Status {
            cluster: "lab".into(),
            member: "srv1".into(),
            epoch: 3,
            // 127.0.0.2: loopback, but nobody listens there.
            members: vec![
                member(1, Ipv4Addr::LOCALHOST),
                member(2, Ipv4Addr::new(127, 0, 0, 2)),
            ],
            workers: vec![WorkerStatus {
                worker: 0,
                ring_open: true,
                ring_instance: None,
                pushed_epoch: None,
                stats_open: true,
                stats_age_seconds: None,
                names: vec!["syn_accepted".into(), "wire_rx_packets".into()],
                values: vec![5, 9],
                ..WorkerStatus::default()
            }],
            ..Status::default()
        };
        let status_json = serde_json::to_string(&status).unwrap();
        let metrics_text = metrics::render(&status);
        let serving = std::thread::spawn(move || {
            // Two samples: /status and /metrics each, twice.
            for _ in 0..4 {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_secs(10)) else {
                    return;
                };
                let body = if req.url() == "/status" {
                    status_json.clone()
                } else {
                    metrics_text.clone()
                };
                let _ = req.respond(tiny_http::Response::from_string(body));
            }
        });
        let mut p = Poller::new(SocketAddr::from(([127, 0, 0, 1], port)), None, port);
        let first = p.sample();
        let second = p.sample();
        serving.join().unwrap();
        assert_eq!(first.seed_error, None);
        assert_eq!(
            second.seed.as_ref().map(|s| s
                .members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()),
            Some(vec!["srv1", "srv2"])
        );
        let srv1 = second.scrapes[&1].as_ref().unwrap();
        assert_eq!(
            (
                srv1.epoch,
                srv1.workers[&0].syn_accepted,
                srv1.workers[&0].wire_rx
            ),
            (3, 5, 9)
        );
        assert_eq!(second.scrapes[&2], Err("connection refused".to_owned()));
        assert!(second.at > first.at);
    }
}

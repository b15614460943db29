//! `shoalctl` commands that talk to a running `shoal-control` through its
//! admin API: `status`, `members`, `ring`, `drain NODE`, `undrain NODE`,
//! `weight NODE W`, `reload`, each with `[--admin ADDR] [--token-file F]
//! [--json]`.
//!
//! This module owns the command-line shape of those commands, a minimal
//! blocking HTTP/1.1 client (one request per connection, no dependency; `top`
//! uses it too, for the exporters) and
//! the human-readable rendering of the answers. The routes themselves are
//! `admin.rs`'s.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::daemon::DEFAULT_ADMIN;
use shoal_key::AdminToken;

/// Where the admin API is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Admin API address (`control.admin_listen`).
    #[arg(long, value_name = "ADDR", default_value_t = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// File with the admin token (`control.admin_token_file`); needed for
    /// changes when the daemon has one.
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON answer as is.
    #[arg(long)]
    pub json: bool,
}

/// The admin commands (flattened into `shoalctl`'s subcommands).
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Epoch, convergence, load, dataplane link of the running member.
    Status(#[command(flatten)] Connection),
    /// Every member: alive, weight, drain, load, last heard.
    Members(#[command(flatten)] Connection),
    /// The epoch's member table and each member's share of sampled keys.
    Ring(#[command(flatten)] Connection),
    /// Stop sending new connections to NODE (cluster-wide; in routed mode
    /// NODE's control withdraws its BGP announcement first).
    Drain {
        /// Member name or id.
        node: String,
        /// Then wait until NODE holds no open connection (its dataplane's
        /// SYN and established flows; closing ones are left to finish),
        /// printing the count as it falls: ask NODE's own control
        /// (`--admin`). Exit status 3 when `--timeout` passes first.
        #[arg(long)]
        wait: bool,
        /// Longest wait with `--wait`, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        timeout: u64,
        /// Connection options.
        #[command(flatten)]
        conn: Connection,
    },
    /// Let NODE take new connections again.
    Undrain {
        /// Member name or id.
        node: String,
        /// Connection options.
        #[command(flatten)]
        conn: Connection,
    },
    /// Set NODE's weight (relative share; 0 takes no new connections).
    Weight {
        /// Member name or id.
        node: String,
        /// The weight.
        weight: u32,
        /// Connection options.
        #[command(flatten)]
        conn: Connection,
    },
    /// Re-read and validate the config file; apply all of it or nothing.
    Reload(#[command(flatten)] Connection),
    /// Flows in the dataplane: `shoalctl flows evict CLIENT[:PORT]`,
    /// `shoalctl flows show CLIENT[:PORT]`, `shoalctl flows pin PREFIX
    /// MEMBER --for SECS`, `shoalctl flows unpin PREFIX`.
    #[command(subcommand)]
    Flows(FlowsCommand),
}

/// `shoalctl flows ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum FlowsCommand {
    /// Remove a client's flows (one port, or every port) on every worker of
    /// this member: for connections stuck on a server that no longer
    /// serves them. The client's next packets of an evicted connection
    /// meet no flow (dropped, counted); new connections are placed afresh.
    Evict {
        /// ADDR or ADDR:PORT.
        client: String,
        /// Connection options.
        #[command(flatten)]
        conn: Connection,
    },
    /// The owner history of a client's keep-alive connections as this
    /// member saw them (the dataplane logs the last 1024 moves per worker):
    /// arrivals (from which member), departures (to which member), requests
    /// served here instead. Ask the members it names for the rest.
    Show {
        /// ADDR or ADDR:PORT.
        client: String,
        /// Connection options.
        #[command(flatten)]
        conn: Connection,
    },
    /// Place the new connections of clients in PREFIX on MEMBER for a
    /// while, on every worker of this member: whichever member inspects a
    /// connection places it, so run it on every member. The inspector is
    /// unchanged (exactly one member still acts on each connection);
    /// connections placed keep their member when the pin ends. Not applied
    /// to stateless DPR services (counted `pin_ignored_stateless`).
    Pin {
        /// ADDR/LEN (198.19.4.0/24) or ADDR (one host).
        prefix: String,
        /// Member name or id.
        member: String,
        /// How long, seconds (at most a day).
        #[arg(long = "for", value_name = "SECS", default_value_t = 600)]
        secs: u32,
        /// Connection options.
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove the pin of PREFIX (as given to `pin`) on this member.
    Unpin {
        /// ADDR/LEN or ADDR.
        prefix: String,
        /// Connection options.
        #[command(flatten)]
        conn: Connection,
    },
}

/// `ADDR/LEN` or `ADDR` (a /32) as the admin API's `ADDR/LEN` path part.
fn prefix_path(prefix: &str) -> String {
    if prefix.contains('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/32")
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection or I/O failure.
    #[error(
        "cannot reach the admin API at {addr}: {source} (is shoal-control running? see --admin)"
    )]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The answer is not HTTP with a JSON body.
    #[error("the admin API at {0} sent an answer that is not HTTP/JSON")]
    BadAnswer(SocketAddr),
    /// The token file is unusable.
    #[error(transparent)]
    Token(#[from] shoal_key::KeyError),
}

/// Sends one request and returns (HTTP status, JSON body).
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&AdminToken>,
) -> Result<(u16, Value), CallError> {
    let (status, body) = request(
        addr,
        method,
        path,
        token,
        (Duration::from_secs(5), Duration::from_secs(15)),
    )?;
    let value = serde_json::from_slice(&body).map_err(|_| CallError::BadAnswer(addr))?;
    Ok((status, value))
}

/// Sends one request and returns (HTTP status, body bytes); `timeouts` are
/// (connect, each read).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&AdminToken>,
    timeouts: (Duration, Duration),
) -> Result<(u16, Vec<u8>), CallError> {
    let io = |source| CallError::Io { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, timeouts.0).map_err(io)?;
    s.set_read_timeout(Some(timeouts.1)).map_err(io)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(t) = token {
        req.push_str("Authorization: Bearer ");
        req.push_str(t.as_str());
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    split_response(&raw).ok_or(CallError::BadAnswer(addr))
}

/// Splits a complete HTTP/1.1 response into (status, JSON body).
/// The admin token from `--token-file`, if given; an unreadable or bad
/// file is reported on stderr (`Err`: exit with failure).
pub(crate) fn token_from(path: Option<&std::path::Path>) -> Result<Option<AdminToken>, ()> {
    match path.map(AdminToken::load).transpose() {
        Ok(token) => Ok(token),
        Err(e) => {
            eprintln!("shoalctl: {e}");
            Err(())
        }
    }
}

#[cfg(test)]
fn parse_response(raw: &[u8]) -> Option<(u16, Value)> {
    let (status, body) = split_response(raw)?;
    Some((status, serde_json::from_slice(&body).ok()?))
}

/// Splits a complete HTTP/1.1 response into (status, body). Handles
/// `Content-Length` and chunked bodies.
fn split_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Some((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Runs an admin command; prints the answer; exit status 0 on HTTP 2xx.
pub fn run(cmd: &AdminCommand) -> ExitCode {
    let (conn, method, path) = match cmd {
        AdminCommand::Status(c) => (c, "GET", "/status".to_owned()),
        AdminCommand::Members(c) => (c, "GET", "/members".to_owned()),
        AdminCommand::Ring(c) => (c, "GET", "/ring".to_owned()),
        AdminCommand::Drain { node, conn, .. } => (conn, "POST", format!("/drain/{node}")),
        AdminCommand::Undrain { node, conn } => (conn, "POST", format!("/undrain/{node}")),
        AdminCommand::Weight { node, weight, conn } => {
            (conn, "POST", format!("/weight/{node}/{weight}"))
        }
        AdminCommand::Reload(c) => (c, "POST", "/reload".to_owned()),
        AdminCommand::Flows(FlowsCommand::Evict { client, conn }) => {
            (conn, "POST", format!("/flows/evict/{client}"))
        }
        AdminCommand::Flows(FlowsCommand::Show { client, conn }) => {
            (conn, "GET", format!("/flows/{client}"))
        }
        AdminCommand::Flows(FlowsCommand::Pin {
            prefix,
            member,
            secs,
            conn,
        }) => (
            conn,
            "POST",
            format!("/flows/pin/{}/{member}/{secs}", prefix_path(prefix)),
        ),
        AdminCommand::Flows(FlowsCommand::Unpin { prefix, conn }) => (
            conn,
            "POST",
            format!("/flows/unpin/{}", prefix_path(prefix)),
        ),
    };
    let Ok(token) = token_from(conn.token_file.as_deref()) else {
        return ExitCode::FAILURE;
    };
    match call(conn.admin, method, &path, token.as_ref()) {
        Ok((status, body)) => {
            if conn.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&body).unwrap_or_default()
                );
            } else if (200..300).contains(&status) {
                print!("{}", render(cmd, &body));
            } else {
                eprintln!("shoalctl: {method} {path}: HTTP {status}");
                match body["errors"].as_array() {
                    Some(errors) if !errors.is_empty() => {
                        for e in errors {
                            eprintln!("  {}", e.as_str().unwrap_or_default());
                        }
                    }
                    _ => eprintln!("  {}", body["error"].as_str().unwrap_or_default()),
                }
            }
            if !(200..300).contains(&status) {
                return ExitCode::FAILURE;
            }
            match cmd {
                AdminCommand::Drain {
                    node,
                    wait: true,
                    timeout,
                    conn,
                } => wait_for_drain(conn, token.as_ref(), node, Duration::from_secs(*timeout)),
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            eprintln!("shoalctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the `/status` answer `status` is member `node`'s (name or id).
fn status_is_of(status: &Value, node: &str) -> bool {
    status["member"].as_str() == Some(node)
        || node
            .parse::<u64>()
            .is_ok_and(|id| status["id"].as_u64() == Some(id))
}

/// Open connections (SYN and established flows) over the workers of the
/// `/status` answer `status`; `None` when no worker reports figures.
fn open_connections(status: &Value) -> Option<u64> {
    let figures: Vec<u64> = status["workers"]
        .as_array()?
        .iter()
        .filter_map(|w| w["flows_open"].as_u64())
        .collect();
    (!figures.is_empty()).then(|| figures.iter().sum())
}

/// `drain --wait`: polls NODE's own `/status` every second until its
/// dataplane holds no open connection (exit 0) or `timeout` passes (exit
/// 3), printing the count whenever it changes.
fn wait_for_drain(
    conn: &Connection,
    token: Option<&AdminToken>,
    node: &str,
    timeout: Duration,
) -> ExitCode {
    let start = std::time::Instant::now();
    let mut last = None;
    loop {
        let status = match call(conn.admin, "GET", "/status", token) {
            Ok((200, body)) => body,
            Ok((code, _)) => {
                eprintln!("shoalctl: drain --wait: GET /status: HTTP {code}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("shoalctl: drain --wait: {e}");
                return ExitCode::FAILURE;
            }
        };
        if !status_is_of(&status, node) {
            eprintln!(
                "shoalctl: drain --wait watches the drained member's own flows, but {} answers \
                 for {}: {node} is draining; run the wait against {node}'s control (--admin)",
                conn.admin,
                status["member"].as_str().unwrap_or("?")
            );
            return ExitCode::FAILURE;
        }
        let Some(open) = open_connections(&status) else {
            eprintln!(
                "shoalctl: drain --wait: {node}'s dataplane reports no figures (is it running?)"
            );
            return ExitCode::FAILURE;
        };
        let waited = start.elapsed();
        if open == 0 {
            println!(
                "{node}: drained, no connection open ({:.0} s)",
                waited.as_secs_f64()
            );
            return ExitCode::SUCCESS;
        }
        if last != Some(open) {
            println!(
                "{node}: {open} connection(s) open ({:.0} s)",
                waited.as_secs_f64()
            );
            last = Some(open);
        }
        if waited >= timeout {
            eprintln!(
                "shoalctl: {node} still holds {open} open connection(s) after {} s",
                timeout.as_secs()
            );
            return ExitCode::from(3);
        }
        std::thread::sleep(Duration::from_secs(1).min(timeout.saturating_sub(waited)));
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// `status`'s load line: the composite, then each figure with its weight
/// (`×w`, left out at 1); a figure that is absent says why in a word.
fn load_line(b: &Value) -> String {
    let d = &b["load_detail"];
    let w = |name: &str| {
        let v = d["weights"][name].as_f64().unwrap_or(1.0);
        if (v - 1.0).abs() < 1e-9 {
            String::new()
        } else {
            format!(" ×{v}")
        }
    };
    let host = match d["host_cpu"].as_f64() {
        Some(v) => format!("{v:.3}"),
        None => "unknown".to_owned(),
    };
    let app = match (d["app"].as_f64(), d["app_cpus"].as_f64()) {
        (Some(v), Some(cpus)) => match (d["app_last_cpu"].as_f64(), d["app_last_wait"].as_f64()) {
            (Some(on_cpu), Some(waiting)) => {
                format!("{v:.3} of {cpus} CPU(s), last {on_cpu:.3} on CPU + {waiting:.3} waiting")
            }
            _ => format!("{v:.3} of {cpus} CPU(s)"),
        },
        (_, None) => "not configured".to_owned(),
        (None, Some(_)) => "unavailable".to_owned(),
    };
    format!(
        "load {:.3} = max(busy {:.3}{}, connections {:.0} = {:.3}{}, host CPU {host}{}, app {app}{})",
        f(&b["load"]["load"]),
        f(&b["load"]["busy"]),
        w("busy"),
        f(&b["load"]["connections"]),
        f(&d["connections_share"]),
        w("connections"),
        w("host_cpu"),
        w("app"),
    )
}

/// Human-readable text of an answer.
pub fn render(cmd: &AdminCommand, b: &Value) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    match cmd {
        AdminCommand::Status(_) => {
            let _ = writeln!(
                s,
                "member {} (id {}) of cluster '{}', incarnation {}",
                b["member"].as_str().unwrap_or("?"),
                b["id"],
                b["cluster"].as_str().unwrap_or("?"),
                b["incarnation"]
            );
            let _ = writeln!(
                s,
                "epoch {} (digest {}), {} change(s), {}",
                b["epoch"],
                b["epoch_digest"].as_str().unwrap_or(""),
                b["epoch_changes"],
                if b["settled"] != true {
                    "settling after start"
                } else if b["converged"] == true {
                    "converged with every live peer"
                } else {
                    "NOT converged yet"
                }
            );
            let lease = &b["lease"];
            let _ = writeln!(
                s,
                "lease {}; epoch {}confirmed by every dataplane (newest confirmed {}), dataplane runs digest {}",
                if lease["held"] == true {
                    format!("held ({} ms left)", lease["remaining_ms"])
                } else {
                    format!(
                        "NOT held ({}; {} ms left of the last one): new connections go to the others",
                        lease["refused"]["reason"].as_str().unwrap_or("?"),
                        lease["remaining_ms"]
                    )
                },
                if b["epoch_confirmed"] == true { "" } else { "NOT " },
                b["confirmed_epoch"],
                b["applied_digest"].as_str().unwrap_or("?")
            );
            let _ = writeln!(s, "{}", load_line(b));
            if let Ok(bgp) = serde_json::from_value::<crate::bgp::BgpStatus>(b["bgp"].clone()) {
                let _ = writeln!(s, "{}", bgp.line());
            }
            for p in b["pins"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    s,
                    "pin: new connections of {} go to member {} ({} s left)",
                    p["prefix"].as_str().unwrap_or("?"),
                    p["member"],
                    p["seconds_left"]
                );
            }
            for w in b["workers"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    s,
                    "worker {}: command ring {}, pushed epoch {}, runs epoch {}, stats {}",
                    w["worker"],
                    if w["ring_open"] == true {
                        "open"
                    } else {
                        "NOT open"
                    },
                    w["pushed_epoch"],
                    w["applied_epoch"],
                    if w["stats_open"] == true {
                        "readable"
                    } else {
                        "NOT readable"
                    }
                );
                if let Some(st) = w["steered"].as_array() {
                    let _ = writeln!(
                        s,
                        "  {} flows, {} frames processed, busy {:.1} %, steered out {} in {} (dropped {})",
                        w["flows_live"],
                        w["rx_packets"],
                        100.0 * w["busy_fraction"].as_f64().unwrap_or(0.0),
                        st[0],
                        st[1],
                        st[2]
                    );
                }
            }
            let received: Vec<String> = b["messages_received"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(s, "messages received: {}", received.join(", "));
        }
        AdminCommand::Members(_) => {
            let _ = writeln!(
                s,
                "{:<4} {:<12} {:<16} {:<6} {:>6} {:<9} {:>7} {:>8} {:>11}",
                "ID",
                "NAME",
                "ADDRESS",
                "ALIVE",
                "WEIGHT",
                "DRAINING",
                "LOAD",
                "CONNS",
                "HEARD(ms)"
            );
            for m in b["members"].as_array().into_iter().flatten() {
                let heard = if m["local"] == true {
                    "local".to_owned()
                } else {
                    m["last_heard_ms_ago"]
                        .as_u64()
                        .map_or_else(|| "never".to_owned(), |v| v.to_string())
                };
                let _ = writeln!(
                    s,
                    "{:<4} {:<12} {:<16} {:<6} {:>6} {:<9} {:>7.3} {:>8.0} {:>11}",
                    m["id"].to_string(),
                    m["name"].as_str().unwrap_or(""),
                    m["address"].as_str().unwrap_or(""),
                    if m["alive"] == true { "yes" } else { "no" },
                    m["weight"].to_string(),
                    if m["draining"] == true { "yes" } else { "no" },
                    f(&m["load"]["load"]),
                    f(&m["load"]["connections"]),
                    heard
                );
            }
        }
        AdminCommand::Ring(_) => {
            let _ = writeln!(
                s,
                "epoch {} (digest {}){}",
                b["epoch"],
                b["digest"].as_str().unwrap_or(""),
                if b["converged"] == true {
                    ""
                } else {
                    ", not converged"
                }
            );
            for e in b["table"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    s,
                    "  {:<12} id {:<5} {:<5} weight {:<6}{}",
                    e["name"].as_str().unwrap_or(""),
                    e["id"].to_string(),
                    if e["alive"] == true { "alive" } else { "dead" },
                    e["weight"].to_string(),
                    if e["draining"] == true {
                        " draining"
                    } else {
                        ""
                    }
                );
            }
            for svc in b["services"].as_array().into_iter().flatten() {
                let shares: Vec<String> = svc["shares"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k} {:.1}%", f(v) * 100.0))
                    .collect();
                let _ = writeln!(
                    s,
                    "service {} ({}, {} keys): {}",
                    svc["service"].as_str().unwrap_or(""),
                    svc["algorithm"].as_str().unwrap_or(""),
                    svc["keys"],
                    shares.join(", ")
                );
            }
        }
        AdminCommand::Drain { .. } | AdminCommand::Undrain { .. } | AdminCommand::Weight { .. } => {
            let _ = writeln!(
                s,
                "member {}: weight {}, {}; epoch {}",
                b["member"],
                b["weight"],
                if b["draining"] == true {
                    "draining"
                } else {
                    "not draining"
                },
                b["epoch"]
            );
        }
        AdminCommand::Reload(_) => {
            let _ = writeln!(
                s,
                "reloaded {}: {} weight change(s), interval {} ms, failure timeout {} ms",
                b["reloaded"].as_str().unwrap_or(""),
                b["weights_changed"].as_array().map_or(0, Vec::len),
                b["interval_ms"],
                b["failure_timeout_ms"]
            );
            if let Some(svc) = b["services_changed"].as_object() {
                let _ = writeln!(
                    s,
                    "service table {} ({} service(s)) sent to {} dataplane worker(s); each applies it at a burst boundary",
                    svc["digest"].as_str().unwrap_or(""),
                    svc["services"],
                    svc["workers_told"]
                );
            }
        }
        AdminCommand::Flows(FlowsCommand::Show { .. }) => {
            let events = b["events"].as_array().map_or(&[][..], Vec::as_slice);
            let _ = writeln!(
                s,
                "{}: {} event(s) for {}",
                b["member"].as_str().unwrap_or(""),
                events.len(),
                b["client"].as_str().unwrap_or("")
            );
            for e in events {
                let _ = writeln!(
                    s,
                    "{} {} {} {} (requests here: {})",
                    e["unix_ms"],
                    e["client"].as_str().unwrap_or(""),
                    e["event"].as_str().unwrap_or(""),
                    e["member"].as_str().unwrap_or(""),
                    e["requests_here"]
                );
            }
        }
        AdminCommand::Flows(FlowsCommand::Pin { .. } | FlowsCommand::Unpin { .. }) => {
            let _ = match b["member"].as_u64() {
                Some(0) | None => writeln!(
                    s,
                    "unpinned {} on {} worker(s)",
                    b["prefix"].as_str().unwrap_or(""),
                    b["workers_told"]
                ),
                Some(m) => writeln!(
                    s,
                    "new connections of {} go to member {m} for {} s ({} worker(s) told)",
                    b["prefix"].as_str().unwrap_or(""),
                    b["seconds"],
                    b["workers_told"]
                ),
            };
        }
        AdminCommand::Flows(FlowsCommand::Evict { .. }) => {
            let _ = writeln!(
                s,
                "evicting the flows of {}{} on {} worker(s)",
                b["client"].as_str().unwrap_or(""),
                match b["port"].as_u64() {
                    Some(0) | None => String::new(),
                    Some(p) => format!(":{p}"),
                },
                b["workers_told"]
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"a\": 1}\n";
        assert_eq!(
            parse_response(plain),
            Some((200, serde_json::json!({"a": 1})))
        );
        let chunked =
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n4\r\n: 2}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked),
            Some((401, serde_json::json!({"a": 2})))
        );
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn status_load_line_names_every_figure_and_weight() {
        let body = serde_json::json!({
            "load": {"load": 0.75, "busy": 0.125, "connections": 12.0},
            "load_detail": {
                "host_cpu": 0.5, "app": 0.75, "connections_share": 0.001, "app_cpus": 1.0,
                "app_last_cpu": 0.5, "app_last_wait": 0.25,
                "weights": {"busy": 1.0, "connections": 1.0, "host_cpu": 0.0, "app": 1.0},
            },
        });
        assert_eq!(
            load_line(&body),
            "load 0.750 = max(busy 0.125, connections 12 = 0.001, host CPU 0.500 ×0, \
             app 0.750 of 1 CPU(s), last 0.500 on CPU + 0.250 waiting)"
        );
        let body = serde_json::json!({
            "load": {"load": 0.0, "busy": 0.0, "connections": 0.0},
            "load_detail": {"host_cpu": null, "app": null, "app_cpus": 2.0,
                            "connections_share": 0.0,
                            "weights": {"busy": 0.5, "connections": 1.0, "host_cpu": 1.0, "app": 1.0}},
        });
        assert_eq!(
            load_line(&body),
            "load 0.000 = max(busy 0.000 ×0.5, connections 0 = 0.000, host CPU unknown, \
             app unavailable)"
        );
    }

    #[test]
    fn drain_wait_reads_the_open_connections_of_the_drained_member_only() {
        let status = serde_json::json!({
            "member": "srv2", "id": 2,
            "workers": [
                {"worker": 0, "flows_live": 9, "flows_open": 3},
                {"worker": 1, "flows_live": 4, "flows_open": 2},
                {"worker": 2, "flows_live": null, "flows_open": null}
            ]
        });
        assert!(status_is_of(&status, "srv2"));
        assert!(status_is_of(&status, "2"));
        assert!(!status_is_of(&status, "srv1"));
        assert!(!status_is_of(&status, "1"));
        assert_eq!(open_connections(&status), Some(5));
        let none = serde_json::json!({"member": "srv2", "workers": [{"flows_open": null}]});
        assert_eq!(open_connections(&none), None);
        assert_eq!(open_connections(&serde_json::json!({})), None);
        let drained = serde_json::json!({"workers": [{"flows_open": 0}]});
        assert_eq!(open_connections(&drained), Some(0));
    }

    #[test]
    fn renders_a_drain_answer() {
        let cmd = AdminCommand::Drain {
            node: "srv2".into(),
            wait: false,
            timeout: 300,
            conn: Connection {
                admin: DEFAULT_ADMIN,
                token_file: None,
                json: false,
            },
        };
        let body = serde_json::json!({"member": 2, "weight": 100, "draining": true, "epoch": 5});
        assert_eq!(
            render(&cmd, &body),
            "member 2: weight 100, draining; epoch 5\n"
        );
    }
}

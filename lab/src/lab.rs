//! The lab's life: `up` (binaries, documents, namespaces, hub, client,
//! servers, dataplanes, TAPs, nginx, control), `down`, and the per-server
//! commands (`kill`, `start`, drain/weight through control or the
//! membership file).
//!
//! This module owns the order of events and the run directory's state
//! (`lab.json`); the names come from [`crate::topology`], the configs from
//! [`crate::render`], processes from [`crate::process`], the steps of one
//! server from `server.rs`, tools and binaries from `prereq.rs`.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{flock, FlockOperation};
use rustix::process::Signal;
use serde::{Deserialize, Serialize};
use shoal_config::Config;

use crate::bird;
use crate::netns::{self, ip_in, sysctl};
use crate::options::{kebab, LabBackend, LabTopology, UpOptions};
use crate::prereq::{bin_dir, ensure_binaries, ensure_tools};
use crate::process::{self, recorded};
use crate::render;
use crate::server::{
    configure_tap, hub_port, recheck_tap, route_to_clients, server_sysctls, start_nginx, tap_drift,
    wait_tap,
};
use crate::status::Status;
use crate::topology::{
    paths, Node, Server, CLIENT_ADDR, CLIENT_MAC, CLIENT_NS, DPDK_RUN_DIR, HUB_NS, LOCK_FILE,
    ROUTED_CLIENT_ADDR, ROUTER_ADDR, ROUTER_CLIENT_SIDE, ROUTER_NS, RUN_DIR, TAP, VIP,
};
use crate::www;
use crate::{log, LabError};

/// Busy-polling dataplanes sleep this long after an idle stretch: the lab runs
/// several servers, nginx and the client on a few cores (0 = pure busy-poll).
const DEFAULT_IDLE_SLEEP_US: &str = "200";

/// What of a server `kill` and `start` act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Part {
    /// Dataplane, control and nginx (and, for `kill`, anything else in the namespace).
    #[default]
    All,
    /// Only `shoal-control`.
    Control,
    /// Only `shoal-dataplane`.
    Dataplane,
}

/// The parameters of the running lab (`/run/shoal-lab/lab.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabState {
    /// What `up` compares to decide "already up" or "other parameters".
    pub signature: String,
    /// The options it was brought up with.
    pub options: UpOptions,
    /// Where the Shoal binaries are.
    pub bin_dir: PathBuf,
    /// When `up` started (UTC, RFC 3339).
    pub started: String,
}

impl LabState {
    /// The running lab's state.
    pub fn read() -> Result<LabState, LabError> {
        let path = paths::state();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LabError::NotUp),
            Err(e) => return Err(LabError::io(&path, e)),
        };
        serde_json::from_str(&text)
            .map_err(|e| LabError::State(format!("{}: {e}; run 'lab down'", path.display())))
    }
}

/// The exclusive lock of `up`/`down`/`kill`/`start` (released when dropped).
struct LabLock(#[allow(dead_code)] File);

impl LabLock {
    fn acquire() -> Result<LabLock, LabError> {
        let path = Path::new(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| LabError::io(path, e))?;
        let deadline = Instant::now() + Duration::from_mins(2);
        while flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            if Instant::now() >= deadline {
                return Err(LabError::State(format!(
                    "another 'lab up/down' holds {LOCK_FILE} for 120 s"
                )));
            }
            sleep(Duration::from_millis(100));
        }
        Ok(LabLock(file))
    }
}

fn need_root() -> Result<(), LabError> {
    if rustix::process::getuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// A lab that is up.
#[derive(Debug, Clone)]
pub struct Lab {
    state: LabState,
}

impl Lab {
    /// The lab that is up.
    pub fn open() -> Result<Lab, LabError> {
        need_root()?;
        Ok(Lab {
            state: LabState::read()?,
        })
    }

    /// Its parameters.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// Brings a lab up (see `deploy/lab/README.md`, "up"). Idempotent: with
    /// the same options on a healthy lab it does nothing; it refuses a lab
    /// with other options, a broken one, or lab namespaces without a run
    /// directory. On failure it removes what it made (as [`Lab::down`]) unless
    /// `SHOAL_LAB_KEEP_ON_FAILURE=1`.
    pub fn up(opts: &UpOptions) -> Result<Lab, LabError> {
        opts.check().map_err(LabError::Usage)?;
        need_root()?;
        // Every config first: a base or option that does not validate fails
        // before anything is made.
        let base = match &opts.config {
            Some(path) => render::load_base(path)?,
            None => render::lab_base(),
        };
        let cpus = cpus();
        let configs = Server::all(opts.nodes)
            .map(|s| render::render(&render::server_config(&base, opts, s, cpus), s))
            .collect::<Result<Vec<_>, _>>()?;
        let signature = signature(opts)?;

        let _lock = LabLock::acquire()?;
        match LabState::read() {
            Ok(state) => {
                if state.signature != signature {
                    return Err(LabError::State(format!(
                        "a lab with other parameters is up ({}); run 'lab down' first",
                        state.signature
                    )));
                }
                let problems = health_problems(&state);
                if !problems.is_empty() {
                    return Err(LabError::State(format!(
                        "the lab is up with these parameters but broken: {}; run 'lab down' then 'lab up'",
                        problems.join("; ")
                    )));
                }
                log(&format!("lab already up ({signature}); nothing to do"));
                return Ok(Lab { state });
            }
            Err(LabError::NotUp) => {}
            Err(e) => return Err(e),
        }
        let existing = netns::lab_namespaces();
        if !existing.is_empty() {
            return Err(LabError::State(format!(
                "lab namespaces exist without {RUN_DIR} ({}); run 'lab down' first",
                existing.join(" ")
            )));
        }
        ensure_tools()?;
        let bin_dir = bin_dir();
        if opts.backend != LabBackend::None {
            ensure_binaries(&bin_dir, opts.backend)?;
        }
        let lab = Lab {
            state: LabState {
                signature,
                options: opts.clone(),
                bin_dir,
                started: utc_now(),
            },
        };
        let t0 = Instant::now();
        match lab.build(&configs) {
            Ok(()) => {
                log(&format!(
                    "up: {} server(s), backend {}, mode {}, VIP {VIP} ({} s); try: lab client curl -s http://{VIP}/whoami",
                    opts.nodes,
                    opts.backend,
                    kebab(&opts.mode),
                    t0.elapsed().as_secs()
                ));
                Ok(lab)
            }
            Err(e) => {
                if std::env::var("SHOAL_LAB_KEEP_ON_FAILURE").as_deref() == Ok("1") {
                    log("up failed; leaving the partial lab for debugging (SHOAL_LAB_KEEP_ON_FAILURE=1); run 'lab down' after");
                } else {
                    log("up failed; removing the partial lab");
                    if let Err(down) = teardown() {
                        log(&format!("warning: {down}"));
                    }
                }
                Err(e)
            }
        }
    }

    /// Everything `up` makes, in order; `configs[k-1]` is srvK's text.
    fn build(&self, configs: &[String]) -> Result<(), LabError> {
        let opts = &self.state.options;
        let run = Path::new(RUN_DIR);
        std::fs::create_dir_all(run).map_err(|e| LabError::io(run, e))?;
        let tmp_state = run.join("lab.json.tmp");
        let state_json = serde_json::to_string_pretty(&self.state).expect("plain data");
        std::fs::write(&tmp_state, state_json).map_err(|e| LabError::io(&tmp_state, e))?;
        www::make_files()?;
        // The cluster key (control messages are HMAC-signed with it) and the
        // admin token (mutating admin calls need it), fresh for every lab.
        www::write_mode(
            &paths::cluster_key(),
            format!("{}\n", random_hex(32)?).as_bytes(),
            0o600,
        )?;
        www::write_mode(
            &paths::admin_token(),
            format!("{}\n", random_hex(16)?).as_bytes(),
            0o600,
        )?;

        // Hub: a bridge that floods everything (no learning on any port).
        netns::create(HUB_NS)?;
        ip_in(
            HUB_NS,
            &[
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "stp_state",
                "0",
                "mcast_snooping",
                "0",
                "ageing_time",
                "0",
            ],
        )?;
        ip_in(HUB_NS, &["link", "set", "br0", "up"])?;
        // A hub forwards bytes, it does not judge them: where br_netfilter is
        // loaded on the host, bridged IPv4 would go through iptables' header
        // validation, which silently drops malformed frames before any server
        // (and its drop counters) sees them.
        for table in ["iptables", "ip6tables", "arptables"] {
            let _ = sysctl(HUB_NS, &[&format!("net.bridge.bridge-nf-call-{table}=0")]);
        }

        // Client: on the hub, or behind the router.
        netns::create(CLIENT_NS)?;
        let routed = opts.topology == LabTopology::Routed;
        if routed {
            build_router(opts.nodes)?;
        } else {
            hub_port("p-client", CLIENT_NS)?;
        }
        ip_in(
            CLIENT_NS,
            &["link", "set", "eth0", "address", &CLIENT_MAC.to_string()],
        )?;
        ip_in(
            CLIENT_NS,
            &[
                "addr",
                "add",
                &format!("{}/24", client_addr(opts)),
                "dev",
                "eth0",
            ],
        )?;
        // Without it the kernel's CHECKSUM_PARTIAL segments leave through
        // af_packet with bad checksums (shared/notes/platform.md §5).
        netns::exec_in(
            CLIENT_NS,
            &[
                "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off",
            ],
        )?;
        ip_in(CLIENT_NS, &["link", "set", "eth0", "up"])?;
        if routed {
            ip_in(
                CLIENT_NS,
                &[
                    "route",
                    "add",
                    "default",
                    "via",
                    &ROUTER_CLIENT_SIDE.to_string(),
                ],
            )?;
        }

        // Servers: namespaces and wire ports first, then processes.
        let servers: Vec<Server> = Server::all(opts.nodes).collect();
        for (&s, config) in servers.iter().zip(configs) {
            let ns = s.namespace();
            let dir = s.dir();
            std::fs::create_dir_all(&dir).map_err(|e| LabError::io(&dir, e))?;
            netns::create(&ns)?;
            server_sysctls(&ns)?;
            hub_port(&format!("p-{s}"), &ns)?;
            if opts.backend == LabBackend::None {
                ip_in(
                    &ns,
                    &["link", "set", "eth0", "address", &s.mac().to_string()],
                )?;
            } else {
                // The dataplane owns eth0, but the kernel still sees its frames:
                // with the server's own MAC on it, frames for the own MAC would
                // reach the kernel twice (via eth0 and via the TAP). A MAC of its
                // own makes them "other host" frames the kernel ignores.
                ip_in(
                    &ns,
                    &["link", "set", "eth0", "address", &s.wire_mac().to_string()],
                )?;
            }
            ip_in(&ns, &["link", "set", "eth0", "promisc", "on"])?;
            if opts.backend == LabBackend::None {
                ip_in(
                    &ns,
                    &["addr", "add", &format!("{}/24", s.addr()), "dev", "eth0"],
                )?;
            } else {
                let path = dir.join("dataplane.toml");
                std::fs::write(&path, config).map_err(|e| LabError::io(&path, e))?;
            }
            ip_in(&ns, &["link", "set", "eth0", "up"])?;
        }
        if opts.backend != LabBackend::None {
            for &s in &servers {
                self.start_dataplane(s)?;
            }
            for &s in &servers {
                wait_tap(s)?;
                configure_tap(s)?;
            }
        }
        for &s in &servers {
            start_nginx(s)?;
        }
        if opts.backend != LabBackend::None {
            // Twice, 0.5 s apart: a dataplane may still be starting its ports
            // and reset the TAP (DPDK net_tap re-applies its MAC when the port
            // starts).
            for pass in 0..2 {
                if pass > 0 {
                    sleep(Duration::from_millis(500));
                }
                for &s in &servers {
                    recheck_tap(s)?;
                }
            }
            if routed {
                for &s in &servers {
                    route_to_clients(s)?;
                    bird::start(&s.namespace(), &s.dir(), &bird::server_conf(s))?;
                }
            }
            for &s in &servers {
                self.start_control(s)?;
            }
            // New connections wait for control's lease (settling takes one
            // failure timeout): ready once every member holds one.
            self.await_confirmed(Duration::from_secs(10));
            if routed {
                Lab::await_next_hops(&servers, Duration::from_secs(20));
            }
        }
        std::fs::rename(&tmp_state, paths::state()).map_err(|e| LabError::io(&tmp_state, e))
    }

    /// Stops every process the lab started and removes its namespaces, the
    /// run directory and the DPDK runtime directories. Works without a run
    /// directory too (finds the namespaces by name). Nothing to do is not an
    /// error.
    pub fn down() -> Result<(), LabError> {
        need_root()?;
        let _lock = LabLock::acquire()?;
        if !Path::new(RUN_DIR).exists() && netns::lab_namespaces().is_empty() {
            log("no lab is up; nothing to do");
            remove_dpdk_prefixes(None);
            return Ok(());
        }
        teardown()?;
        log(&format!(
            "down: namespaces, processes and {RUN_DIR} removed"
        ));
        Ok(())
    }

    /// The lab's status (also when none is up).
    pub fn status() -> Result<Status, LabError> {
        need_root()?;
        Ok(Status::read())
    }

    /// A command that runs `args` in `node`'s namespace (`ip netns exec`).
    pub fn command(node: Node, args: &[&str]) -> Result<Command, LabError> {
        need_root()?;
        let ns = node.namespace();
        if !netns::exists(&ns) {
            return Err(LabError::State(format!(
                "namespace {ns} does not exist (is the lab up? 'lab status')"
            )));
        }
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]).args(args);
        Ok(cmd)
    }

    /// The dataplane config of `server` for `opts` (no lab needed).
    pub fn render_config(opts: &UpOptions, server: Server) -> Result<String, LabError> {
        opts.check().map_err(LabError::Usage)?;
        if server.index() > opts.nodes {
            return Err(LabError::Usage(format!(
                "{server} is not in a lab of {} server(s) (use --nodes)",
                opts.nodes
            )));
        }
        let base = match &opts.config {
            Some(path) => render::load_base(path)?,
            None => render::lab_base(),
        };
        Ok(render::render(
            &render::server_config(&base, opts, server, cpus()),
            server,
        )?)
    }

    /// The path of `server`'s config in the running lab.
    pub fn config_path(&self, server: Server) -> Result<PathBuf, LabError> {
        self.check_server(server)?;
        if self.state.options.backend == LabBackend::None {
            return Err(LabError::State(
                "the running lab has --backend none (no dataplane config); pass options to render one"
                    .to_owned(),
            ));
        }
        Ok(server.dir().join("dataplane.toml"))
    }

    /// `server`'s config in the running lab, loaded as the dataplane loads it.
    pub fn server_config(&self, server: Server) -> Result<Config, LabError> {
        let path = self.config_path(server)?;
        shoal_config::load_file(&path).map_err(|e| LabError::State(e.to_string()))
    }

    fn check_server(&self, server: Server) -> Result<(), LabError> {
        if server.index() <= self.state.options.nodes {
            Ok(())
        } else {
            Err(LabError::Usage(format!(
                "no server '{server}' in this lab of {}",
                self.state.options.nodes
            )))
        }
    }

    fn check_shoal(&self, server: Server) -> Result<(), LabError> {
        self.check_server(server)?;
        if self.state.options.backend == LabBackend::None {
            return Err(LabError::State(
                "the lab has no Shoal processes (--backend none)".to_owned(),
            ));
        }
        Ok(())
    }

    /// SIGKILLs `server`'s processes, as a crash or power loss would:
    /// control, dataplane and nginx (and anything else in its namespace), or
    /// only one part.
    pub fn kill(&self, server: Server, part: Part) -> Result<(), LabError> {
        self.check_server(server)?;
        let _lock = LabLock::acquire()?;
        let ns = server.namespace();
        let names: &[&str] = match part {
            Part::All => &["control", "dataplane", "nginx"],
            Part::Control => &["control"],
            Part::Dataplane => &["dataplane"],
        };
        for name in names {
            if let Some(pid) = recorded(&server.dir().join(format!("{name}.pid")), &ns) {
                process::signal(pid, Signal::KILL);
                log(&format!("{server}: killed {name} (pid {pid})"));
            }
        }
        if part == Part::All {
            // nginx workers die with their master only on a clean stop.
            for pid in process::pids_in(&ns) {
                process::signal(pid, Signal::KILL);
            }
        }
        if part != Part::Control {
            remove_dpdk_prefixes(Some(server));
        }
        Ok(())
    }

    /// Starts what [`Lab::kill`] stopped; the server rejoins the cluster.
    pub fn start(&self, server: Server, part: Part) -> Result<(), LabError> {
        self.check_shoal(server)?;
        let _lock = LabLock::acquire()?;
        let ns = server.namespace();
        if part != Part::Control {
            if recorded(&server.dir().join("dataplane.pid"), &ns).is_some() {
                return Err(LabError::State(format!(
                    "{server} is running; kill it first"
                )));
            }
            self.start_dataplane(server)?;
            wait_tap(server)?;
            configure_tap(server)?;
            if part == Part::All {
                start_nginx(server)?;
            }
            sleep(Duration::from_millis(500));
            if !tap_drift(server).is_empty() {
                configure_tap(server)?;
            }
            if self.routed() {
                // The TAP is new: so is the route through it.
                route_to_clients(server)?;
                if part == Part::All {
                    bird::start(&ns, &server.dir(), &bird::server_conf(server))?;
                }
            }
        }
        if part != Part::Dataplane {
            self.start_control(server)?;
        }
        log(&format!(
            "{server}: started{}",
            match part {
                Part::All => "",
                Part::Control => " (--control)",
                Part::Dataplane => " (--dataplane)",
            }
        ));
        Ok(())
    }

    /// The lab runs `--topology routed`.
    pub fn routed(&self) -> bool {
        self.state.options.topology == LabTopology::Routed
    }

    /// Waits (bounded by `within`) until the router's VIP route has every
    /// one of `servers` as a next hop; a warning, not an error, when not.
    fn await_next_hops(servers: &[Server], within: Duration) {
        let want: Vec<std::net::Ipv4Addr> = servers.iter().map(|s| s.addr()).collect();
        let t0 = Instant::now();
        loop {
            let hops = bird::vip_next_hops();
            if hops == want {
                log(&format!(
                    "router: {VIP} over {} next hop(s) after {} ms",
                    hops.len(),
                    t0.elapsed().as_millis()
                ));
                return;
            }
            if t0.elapsed() >= within {
                log(&format!(
                    "warning: the router's {VIP} next hops are {hops:?} after {} s, not every server",
                    within.as_secs()
                ));
                return;
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// `server` takes no new connections (existing ones stay).
    pub fn drain(&self, server: Server) -> Result<(), LabError> {
        self.set_setting(
            server,
            "draining",
            &serde_json::Value::Bool(true),
            &["drain"],
        )
    }

    /// `server` takes new connections again.
    pub fn undrain(&self, server: Server) -> Result<(), LabError> {
        self.set_setting(
            server,
            "draining",
            &serde_json::Value::Bool(false),
            &["undrain"],
        )
    }

    /// `server`'s weight.
    pub fn weight(&self, server: Server, weight: u32) -> Result<(), LabError> {
        let w = weight.to_string();
        self.set_setting(server, "weight", &weight.into(), &["weight", &w])
    }

    /// `server`'s load figure (DPR `max_load`), through the membership file.
    pub fn load(&self, server: Server, load: f64) -> Result<(), LabError> {
        if !(load.is_finite() && load >= 0.0) {
            return Err(LabError::Usage(format!(
                "load must be a number >= 0 (got {load})"
            )));
        }
        self.set_member(server, "load", &load.into())
    }

    /// A drain, undrain or weight change. With a shoal-control running it
    /// goes through control (shoalctl on the first member whose control
    /// runs), which spreads it to every member as a new epoch: only a change
    /// every member agrees on moves new connections (a membership file
    /// override can only narrow what one member claims). Without any
    /// control: the file.
    fn set_setting(
        &self,
        server: Server,
        key: &str,
        value: &serde_json::Value,
        verb: &[&str],
    ) -> Result<(), LabError> {
        self.check_shoal(server)?;
        for s in Server::all(self.state.options.nodes) {
            if recorded(&s.dir().join("control.pid"), &s.namespace()).is_none() {
                continue;
            }
            let shoalctl = self.state.bin_dir.join("shoalctl");
            let token = paths::admin_token();
            let mut args = vec![shoalctl.to_str().unwrap_or_default(), verb[0]];
            let name = server.name();
            args.push(&name);
            args.extend_from_slice(&verb[1..]);
            args.extend_from_slice(&["--token-file", token.to_str().unwrap_or_default()]);
            netns::exec_in(&s.namespace(), &args)?;
            self.await_confirmed(Duration::from_secs(5));
            log(&format!(
                "{server}: {key} = {value} (through {s}'s shoal-control: a new epoch, run by every dataplane)"
            ));
            return Ok(());
        }
        self.set_member(server, key, value)
    }

    /// Records an override in the cluster-wide membership file (weights,
    /// drain, load) and makes every dataplane re-read it (SIGHUP).
    fn set_member(
        &self,
        server: Server,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), LabError> {
        self.check_shoal(server)?;
        let path = paths::membership();
        let mut data: serde_json::Value = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| LabError::State(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                serde_json::json!({"members": {}})
            }
            Err(e) => return Err(LabError::io(&path, e)),
        };
        let members = data
            .as_object_mut()
            .and_then(|o| {
                o.entry("members")
                    .or_insert_with(|| serde_json::json!({}))
                    .as_object_mut()
            })
            .ok_or_else(|| LabError::State(format!("{}: not a membership file", path.display())))?;
        let member = members
            .entry(server.name())
            .or_insert_with(|| serde_json::json!({}));
        if let Some(m) = member.as_object_mut() {
            m.insert(key.to_owned(), value.clone());
        }
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&data).expect("plain data");
        std::fs::write(&tmp, text).map_err(|e| LabError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LabError::io(&path, e))?;
        for s in Server::all(self.state.options.nodes) {
            match recorded(&s.dir().join("dataplane.pid"), &s.namespace()) {
                Some(pid) => process::signal(pid, Signal::HUP),
                None => log(&format!("{s}: dataplane not running")),
            }
        }
        log(&format!(
            "{server}: {key} = {value} (every dataplane re-reads {})",
            path.display()
        ));
        Ok(())
    }

    fn start_dataplane(&self, s: Server) -> Result<u32, LabError> {
        let dir = s.dir();
        let idle = std::env::var("SHOAL_LAB_IDLE_SLEEP_US")
            .unwrap_or_else(|_| DEFAULT_IDLE_SLEEP_US.to_owned());
        let mut args: Vec<String> = vec![
            "run".into(),
            "--config".into(),
            path_str(&dir.join("dataplane.toml")),
            "--stats-file".into(),
            path_str(&dir.join("stats.json")),
            "--stats-interval".into(),
            "0.5".into(),
            "--idle-sleep-us".into(),
            idle,
            "--membership-file".into(),
            path_str(&paths::membership()),
        ];
        if let Some(inject) = self.state.options.inject {
            args.extend([
                "--inject-drop-permille".into(),
                inject.drop_permille.to_string(),
                "--inject-reorder-permille".into(),
                inject.reorder_permille.to_string(),
            ]);
        }
        process::spawn(
            &s.namespace(),
            &self.state.bin_dir.join("shoal-dataplane"),
            &args,
            &dir.join("dataplane.pid"),
            &dir.join("dataplane.log"),
        )
    }

    fn start_control(&self, s: Server) -> Result<u32, LabError> {
        let dir = s.dir();
        process::spawn(
            &s.namespace(),
            &self.state.bin_dir.join("shoal-control"),
            &["--config".into(), path_str(&dir.join("dataplane.toml"))],
            &dir.join("control.pid"),
            &dir.join("control.log"),
        )
    }

    /// Waits (bounded by `within`) until every running control holds its
    /// lease and reports the same epoch table, confirmed (every live
    /// member's dataplane runs it): a lab command returns once the change is
    /// in force everywhere, and `up` once every member takes new connections.
    /// Runs out with a warning, not an error.
    pub fn await_confirmed(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let shoalctl = self.state.bin_dir.join("shoalctl");
        let mut views = Vec::new();
        loop {
            views.clear();
            for s in Server::all(self.state.options.nodes) {
                if recorded(&s.dir().join("control.pid"), &s.namespace()).is_none() {
                    continue;
                }
                let view =
                    netns::exec_in(&s.namespace(), &[&path_str(&shoalctl), "status", "--json"])
                        .ok()
                        .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).ok())
                        .map_or_else(
                            || "unreadable".to_owned(),
                            |v| {
                                let ok = v["epoch_confirmed"] == true && v["lease"]["held"] == true;
                                match v["epoch_digest"].as_str() {
                                    Some(d) if ok => d.to_owned(),
                                    _ => "unconfirmed".to_owned(),
                                }
                            },
                        );
                views.push(view);
            }
            let agreed = !views.is_empty()
                && views
                    .iter()
                    .all(|v| v != "unconfirmed" && v != "unreadable")
                && views.iter().all(|v| *v == views[0]);
            if agreed {
                return;
            }
            if Instant::now() >= deadline {
                log(&format!(
                    "warning: the members did not hold leases on one confirmed epoch within {} s: {}",
                    within.as_secs(),
                    views.join(" ")
                ));
                return;
            }
            sleep(Duration::from_millis(100));
        }
    }
}

/// The client's address: on the hub, or behind the router.
pub fn client_addr(opts: &UpOptions) -> std::net::Ipv4Addr {
    match opts.topology {
        LabTopology::Segment => CLIENT_ADDR,
        LabTopology::Routed => ROUTED_CLIENT_ADDR,
    }
}

/// `--topology routed`: the router namespace on the hub (`eth0`) and on
/// the client's link (`eth1`, the client's `eth0` its peer), forwarding
/// with an L4 multipath hash, and its BIRD (bird.rs).
fn build_router(nodes: u8) -> Result<(), LabError> {
    netns::create(ROUTER_NS)?;
    hub_port("p-router", ROUTER_NS)?;
    ip_in(
        ROUTER_NS,
        &[
            "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", CLIENT_NS,
        ],
    )?;
    for (dev, addr) in [("eth0", ROUTER_ADDR), ("eth1", ROUTER_CLIENT_SIDE)] {
        ip_in(
            ROUTER_NS,
            &["addr", "add", &format!("{addr}/24"), "dev", dev],
        )?;
        // Forwarded segments leave through af_packet on the servers: no
        // partial checksums, no GSO/GRO super-frames (platform.md §5).
        netns::exec_in(
            ROUTER_NS,
            &[
                "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
            ],
        )?;
        ip_in(ROUTER_NS, &["link", "set", dev, "up"])?;
    }
    sysctl(
        ROUTER_NS,
        &[
            "net.ipv4.ip_forward=1",
            // Hash L4 ports too: one client's connections spread over the servers.
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0",
        ],
    )?;
    bird::start(ROUTER_NS, &paths::router_dir(), &bird::router_conf(nodes)).map(drop)
}

/// One line per thing of the running lab that is not right.
fn health_problems(state: &LabState) -> Vec<String> {
    let mut problems = Vec::new();
    for ns in [HUB_NS, CLIENT_NS] {
        if !netns::exists(ns) {
            problems.push(format!("namespace {ns} missing"));
        }
    }
    let routed = state.options.topology == LabTopology::Routed;
    if routed {
        if !netns::exists(ROUTER_NS) {
            problems.push(format!("namespace {ROUTER_NS} missing"));
        } else if recorded(&paths::router_dir().join("bird.pid"), ROUTER_NS).is_none() {
            problems.push("router: bird not running".to_owned());
        }
    }
    for s in Server::all(state.options.nodes) {
        let ns = s.namespace();
        if !netns::exists(&ns) {
            problems.push(format!("namespace {ns} missing"));
            continue;
        }
        let dir = s.dir();
        if recorded(&dir.join("nginx.pid"), &ns).is_none() {
            problems.push(format!("{s}: nginx not running"));
        }
        if state.options.backend != LabBackend::None {
            if recorded(&dir.join("dataplane.pid"), &ns).is_none() {
                problems.push(format!(
                    "{s}: dataplane not running (log: {})",
                    dir.join("dataplane.log").display()
                ));
            }
            if netns::link(&ns, TAP).is_none() {
                problems.push(format!("{s}: {TAP} missing"));
            }
            if recorded(&dir.join("control.pid"), &ns).is_none() {
                problems.push(format!(
                    "{s}: shoal-control not running (log: {})",
                    dir.join("control.log").display()
                ));
            }
            if routed && recorded(&dir.join("bird.pid"), &ns).is_none() {
                problems.push(format!("{s}: bird not running"));
            }
        }
    }
    problems
}

/// What `down` does, without the lock and the root check.
fn teardown() -> Result<(), LabError> {
    // 1. Processes the lab recorded, if they still are what was recorded.
    let mut pids = Vec::new();
    if let Ok(entries) = std::fs::read_dir(RUN_DIR) {
        for entry in entries.flatten() {
            let Some(server) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Server>().ok())
            else {
                continue;
            };
            for name in ["control", "dataplane", "nginx", "bird"] {
                pids.extend(recorded(
                    &server.dir().join(format!("{name}.pid")),
                    &server.namespace(),
                ));
            }
        }
    }
    pids.extend(recorded(&paths::router_dir().join("bird.pid"), ROUTER_NS));
    process::stop(&pids);
    // 2. Anything still running inside our namespaces (nginx workers, a
    //    tcpdump started with 'lab exec', ...): by PID, by namespace identity.
    let namespaces = netns::lab_namespaces();
    let others: Vec<u32> = namespaces
        .iter()
        .flat_map(|ns| process::pids_in(ns))
        .collect();
    if !others.is_empty() {
        let list: Vec<String> = others.iter().map(ToString::to_string).collect();
        log(&format!(
            "stopping {} other process(es) inside the lab namespaces: {}",
            others.len(),
            list.join(" ")
        ));
        process::stop(&others);
    }
    // 3. Namespaces (deleting the hub removes every veth pair), servers first.
    for ns in namespaces
        .iter()
        .filter(|n| *n != HUB_NS)
        .chain(namespaces.iter().filter(|n| *n == HUB_NS))
    {
        if let Err(e) = netns::ip(&["netns", "del", ns]) {
            log(&format!("warning: could not delete namespace {ns}: {e}"));
        }
    }
    // 4. Files: run directory and the DPDK runtime prefixes of the lab.
    if let Err(e) = std::fs::remove_dir_all(RUN_DIR) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(LabError::io(Path::new(RUN_DIR), e));
        }
    }
    remove_dpdk_prefixes(None);
    let left = netns::lab_namespaces();
    if left.is_empty() {
        Ok(())
    } else {
        Err(LabError::State(format!(
            "namespaces left after down: {}",
            left.join(" ")
        )))
    }
}

/// Removes `/var/run/dpdk/shoal-lab-srvK` (of one server, or all of them).
fn remove_dpdk_prefixes(server: Option<Server>) {
    let Ok(entries) = std::fs::read_dir(DPDK_RUN_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let wanted = match server {
            Some(s) => name == s.dpdk_prefix(),
            None => name.starts_with("shoal-lab-"),
        };
        if wanted {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// CPUs available (the worker core of server K is K mod this).
fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The options that make two labs the same, and the base file's digest.
fn signature(opts: &UpOptions) -> Result<String, LabError> {
    let config = match &opts.config {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| LabError::io(path, e))?;
            www::sha256_hex(&bytes)[..16].to_owned()
        }
        None => "builtin".to_owned(),
    };
    let inject = opts.inject.map_or_else(
        || "none".to_owned(),
        |i| format!("{},{}", i.drop_permille, i.reorder_permille),
    );
    let per_request = if opts.first_request_only {
        " per-request=off"
    } else {
        ""
    };
    let roles = if opts.front_ends > 0 {
        format!(" front-ends={}", opts.front_ends)
    } else {
        String::new()
    };
    let topology = if opts.topology == LabTopology::Routed {
        " topology=routed"
    } else {
        ""
    };
    Ok(format!(
        "nodes={} backend={} mode={} state={} handoff={} config={config} inject={inject}{per_request}{roles}{topology}",
        opts.nodes,
        opts.backend,
        kebab(&opts.mode),
        kebab(&opts.state),
        kebab(&opts.handoff)
    ))
}

fn random_hex(bytes: usize) -> Result<String, LabError> {
    let path = Path::new("/dev/urandom");
    let mut buf = vec![0; bytes];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| LabError::io(path, e))?;
    Ok(www::hex(&buf))
}

/// Now, UTC, `2025-01-31T12:00:00Z`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (H. Hinnant), for days since 1970-01-01.
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_names_every_option() {
        let sig = signature(&UpOptions::default()).unwrap();
        assert_eq!(
            sig,
            "nodes=3 backend=dpdk mode=local state=stateful handoff=frequent config=builtin inject=none"
        );
    }

    #[test]
    fn utc_is_rfc3339() {
        let now = utc_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
        assert_eq!(&now[10..11], "T");
    }
}

//! A discrete-event simulation of seed 004 (DTCP) §4: cluster throughput of
//! per-request re-handoff (DTCP, Shoal's re-handoff), first-request-only
//! dispatch and LARD's back-end forwarding on one SPECweb99-shaped
//! workload, per cluster size, as a markdown table.
//!
//! `cargo run --release -p shoal-perf --bin dtcp-sim -- [--servers 1,2,4,8,15]
//! [--requests N] [--seed S] [--quick] [--clients-per-server C]
//! [--directories D] [--alpha A] [--mean-requests M] [--threshold T]
//! [--move-cost-us U] [--warmup F] [--related P]
//! [--sticky] [--forward-when-cached]`
//!
//! Every figure is simulated time: the same arguments give the same table on
//! any machine. The model (`shoal_perf::dtcp_sim`) and the figures measured
//! with it: `perf/README.md`, "DTCP simulation (seed 004)".
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Instant;

use shoal_perf::dtcp_sim::{simulate, SimConfig, SimResult, Strategy};

const USAGE: &str = "usage: dtcp-sim [--servers 1,2,4,8,15] [--requests N] [--seed S] [--quick] \
[--clients-per-server C] [--directories D] [--alpha A] [--mean-requests M] [--threshold T] \
[--move-cost-us U] [--warmup F] [--related P] [--sticky] \
[--forward-when-cached]";

/// Requests per run by default, and in `--quick`.
const REQUESTS: u64 = 2_000_000;
const QUICK_REQUESTS: u64 = 150_000;
/// Directories of the quick file set: smaller, so short runs warm up.
const QUICK_DIRECTORIES: u32 = 200;

struct Args {
    servers: Vec<u32>,
    base: SimConfig,
}

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
    v.parse()
        .map_err(|_| format!("{flag}: cannot read {v:?}\n{USAGE}"))
}

fn parse_args() -> Result<Args, String> {
    let mut servers = vec![1, 2, 4, 8, 15];
    let mut base = SimConfig::default();
    let (mut requests, mut directories, mut quick) = (None, None, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--servers" => {
                let list: String = value(&flag, it.next())?;
                servers = list
                    .split(',')
                    .map(|s| value(&flag, Some(s.trim().to_owned())))
                    .collect::<Result<_, _>>()?;
            }
            "--requests" => requests = Some(value(&flag, it.next())?),
            "--seed" => base.seed = value(&flag, it.next())?,
            "--quick" => quick = true,
            "--sticky" => base.sticky = true,
            "--forward-when-cached" => base.forward_when_cached = true,
            "--clients-per-server" => base.clients_per_server = value(&flag, it.next())?,
            "--directories" => directories = Some(value(&flag, it.next())?),
            "--alpha" => base.workload.alpha = value(&flag, it.next())?,
            "--mean-requests" => base.workload.mean_requests = value(&flag, it.next())?,
            "--threshold" => base.threshold = value(&flag, it.next())?,
            "--warmup" => base.warmup = value(&flag, it.next())?,
            "--related" => base.workload.related = value(&flag, it.next())?,
            "--move-cost-us" => {
                let us: u64 = value(&flag, it.next())?;
                base.costs.move_ns = us * 1_000;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    base.requests = requests.unwrap_or(if quick { QUICK_REQUESTS } else { REQUESTS });
    base.workload.directories = directories.unwrap_or(if quick {
        QUICK_DIRECTORIES
    } else {
        base.workload.directories
    });
    for &s in &servers {
        SimConfig {
            servers: s,
            ..base.clone()
        }
        .validate()?;
    }
    Ok(Args { servers, base })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let b = &args.base;
    let c = &b.costs;
    println!(
        "# dtcp-sim: seed {}, {} requests per run ({:.0} % warm-up), {} clients per server, \
         {} directories ({} files), Zipf alpha {}, {} requests per connection (geometric mean), \
         {:.0} % related, threshold {}, move cost {} us{}{}",
        b.seed,
        b.requests,
        b.warmup * 100.0,
        b.clients_per_server,
        b.workload.directories,
        b.workload.directories * 36,
        b.workload.alpha,
        b.workload.mean_requests,
        b.workload.related * 100.0,
        b.threshold,
        c.move_ns / 1_000,
        if b.sticky { ", sticky re-handoff" } else { "" },
        if b.forward_when_cached {
            ", forwarding even when cached"
        } else {
            ""
        },
    );
    println!(
        "# costs: connection {} us, transmit {} us per 512 B, disk {} ms + {} ns/B, \
         cache {} MiB per node, files over {} KB not cached",
        c.connection_ns / 1_000,
        c.transmit_ns_per_512 / 1_000,
        c.seek_ns / 1_000_000,
        c.disk_ns_per_byte,
        c.cache_bytes >> 20,
        c.max_cached_bytes / 1024,
    );
    println!();
    println!(
        "| servers | strategy | req/s | hit % | moved/fwd % | back-end KB/req | CPU % | disk % |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let started = Instant::now();
    let mut summary = Vec::new();
    for &servers in &args.servers {
        let cfg = SimConfig {
            servers,
            ..args.base.clone()
        };
        let r: Vec<SimResult> = Strategy::ALL.iter().map(|&s| simulate(&cfg, s)).collect();
        for (s, x) in Strategy::ALL.iter().zip(&r) {
            println!(
                "| {servers} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
                s.name(),
                x.throughput,
                x.hit_ratio * 100.0,
                x.moved_ratio * 100.0,
                x.backend_bytes_per_request / 1024.0,
                x.cpu_utilisation * 100.0,
                x.disk_utilisation * 100.0,
            );
        }
        summary.push((servers, r));
    }
    println!();
    println!(
        "| servers | re-handoff req/s | first-request req/s | back-end fwd req/s | \
         re-handoff / back-end fwd | re-handoff / first-request |"
    );
    println!("|---|---|---|---|---|---|");
    for (servers, r) in &summary {
        println!(
            "| {servers} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
            r[0].throughput,
            r[1].throughput,
            r[2].throughput,
            r[0].throughput / r[2].throughput,
            r[0].throughput / r[1].throughput,
        );
    }
    if let Some((servers, r)) = summary.iter().find(|(s, _)| *s == 15) {
        println!();
        println!(
            "{servers} servers: re-handoff {:+.0} % over back-end forwarding, {:+.0} % over \
             first-request dispatch (seed 004: +25 % on web traces, up to +100 % with SpecWEB99, \
             over back-end forwarding)",
            (r[0].throughput / r[2].throughput - 1.0) * 100.0,
            (r[0].throughput / r[1].throughput - 1.0) * 100.0,
        );
    }
    eprintln!(
        "# {} runs in {:.1} s of wall time",
        summary.len() * 3,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

//! CPU time from `/proc`: the host's busy share over the CPUs the dataplane
//! does not own, and the application's share of the CPUs it can use.
//!
//! This module owns reading and parsing `/proc/stat`, `/proc/PID/stat`,
//! `/proc/PID/task/*/{children,schedstat}` and the application's pid files,
//! and the deltas between two reads. Parsing is pure (text in, numbers out); the
//! readers take the `/proc` directory as a path so tests hand them a fake
//! one. It does not smooth or weigh the figures (`load.rs` does) and never
//! logs: the daemon logs when a figure's [`AppGap`] changes.
//!
//! Why not the whole host's CPU: poll-mode workers spin at 100 % on their
//! cores whatever the traffic, so those CPUs (`dataplane.cores`) are left
//! out; the work done for the connections (the kernel's TCP, the
//! application) runs on the others.
//!
//! Why the application's share counts the time its threads waited for a
//! CPU (the run-queue delay of `schedstat`) besides the CPU time they got
//! (utime + stime): on a host whose CPUs are contended (other processes, a
//! busy hypervisor, the lab's namespaces on one machine) a saturated
//! application gets only part of a CPU and its CPU time alone would never
//! say it is saturated; CPU time plus waiting is the CPU it asked for. On a
//! host where the application has its CPUs to itself the waiting is near 0
//! and the share is its CPU time.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Processes followed per pid file at most (a bound on a runaway tree).
const MAX_PROCESSES: usize = 4096;

/// One CPU's counters from a `cpuN` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// The CPU number (`N` of `cpuN`).
    pub cpu: u32,
    /// Every field summed (user, nice, system, idle, iowait, irq, softirq,
    /// steal; guest time is already inside user and nice and not added again).
    pub total: u64,
    /// idle + iowait: time the CPU had nothing to run.
    pub idle: u64,
}

/// The per-CPU lines of `/proc/stat` text (the `cpu` total line and other
/// lines are skipped; a malformed `cpuN` line is skipped too).
pub fn parse_proc_stat(text: &str) -> Vec<CpuTimes> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let cpu = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
            let v: Vec<u64> = fields.map(str::parse).collect::<Result<_, _>>().ok()?;
            if v.len() < 4 {
                return None;
            }
            // user nice system idle iowait irq softirq steal [guest guest_nice]
            let total = v.iter().take(8).sum();
            let idle = v[3] + v.get(4).copied().unwrap_or(0);
            Some(CpuTimes { cpu, total, idle })
        })
        .collect()
}

/// Why the host CPU figure is absent this interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostGap {
    /// Every CPU is one of `dataplane.cores`: nothing left to measure.
    EveryCpuIsTheDataplanes,
    /// The first read (a share needs two).
    FirstRead,
    /// `/proc/stat` could not be read.
    Unreadable(String),
}

/// The host's busy share over the CPUs not in `excluded`, from successive
/// `/proc/stat` reads: (total − idle − iowait) / total of the deltas, summed
/// over the CPUs present in both reads (an offlined CPU drops out).
#[derive(Debug, Clone)]
pub struct HostCpu {
    excluded: HashSet<u32>,
    last: HashMap<u32, (u64, u64)>,
}

impl HostCpu {
    /// A reader that leaves out the CPUs in `excluded` (the dataplane's).
    pub fn new(excluded: &[u32]) -> HostCpu {
        HostCpu {
            excluded: excluded.iter().copied().collect(),
            last: HashMap::new(),
        }
    }

    /// Folds one read of `/proc/stat` in: the busy share since the last one.
    pub fn update(&mut self, text: &str) -> Result<f64, HostGap> {
        let cpus: Vec<CpuTimes> = parse_proc_stat(text)
            .into_iter()
            .filter(|c| !self.excluded.contains(&c.cpu))
            .collect();
        if cpus.is_empty() {
            self.last.clear();
            return Err(HostGap::EveryCpuIsTheDataplanes);
        }
        let (mut d_total, mut d_idle) = (0u64, 0u64);
        let mut any = false;
        for c in &cpus {
            if let Some(&(t0, i0)) = self.last.get(&c.cpu) {
                if c.total >= t0 && c.idle >= i0 {
                    any = true;
                    d_total += c.total - t0;
                    d_idle += c.idle - i0;
                }
            }
        }
        self.last = cpus.iter().map(|c| (c.cpu, (c.total, c.idle))).collect();
        if !any {
            return Err(HostGap::FirstRead);
        }
        if d_total == 0 {
            return Ok(0.0);
        }
        Ok(d_total.saturating_sub(d_idle) as f64 / d_total as f64)
    }

    /// Reads `<proc>/stat` and folds it in.
    pub fn read(&mut self, proc: &Path) -> Result<f64, HostGap> {
        let path = proc.join("stat");
        match std::fs::read_to_string(&path) {
            Ok(text) => self.update(&text),
            Err(e) => {
                self.last.clear();
                Err(HostGap::Unreadable(format!("{}: {e}", path.display())))
            }
        }
    }
}

/// The CPUs `/proc/stat` lists (the online ones).
pub fn online_cpus(proc_stat: &str) -> Vec<u32> {
    parse_proc_stat(proc_stat).iter().map(|c| c.cpu).collect()
}

/// What `/proc/PID/stat` says about a process's CPU time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcTimes {
    /// Its pid.
    pub pid: u32,
    /// utime + stime, clock ticks.
    pub ticks: u64,
    /// Start time after boot, clock ticks: with the pid, the process's
    /// identity (a pid reused by a new process has another start time).
    pub start: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so the fields are counted
/// from the last `)`.
pub fn parse_pid_stat(text: &str) -> Option<ProcTimes> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    // rest[0] is field 3 (state): field n is rest[n - 3].
    let field = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    Some(ProcTimes {
        pid,
        ticks: field(14)?.checked_add(field(15)?)?,
        start: field(22)?,
    })
}

/// The run-queue delay, nanoseconds, of a `/proc/PID/task/TID/schedstat`
/// line (`on-CPU ns`, `waiting ns`, `timeslices`).
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The pids in a `/proc/PID/task/TID/children` file.
pub fn parse_children(text: &str) -> Vec<u32> {
    text.split_ascii_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The pid in a pid file's text: its first line, a number above 0.
pub fn parse_pid_file(text: &str) -> Option<u32> {
    text.lines()
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|&p: &u32| p > 0)
}

/// Why the application figure is absent this interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppGap {
    /// A pid file is missing, unreadable or holds no pid.
    PidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The process a pid file names is not running.
    ProcessGone {
        /// The file.
        path: PathBuf,
        /// The pid it names.
        pid: u32,
    },
    /// The first read since the processes were found (a share needs two).
    FirstRead,
}

impl AppGap {
    /// The metric label (`pid_file`, `process_gone`); none for the first
    /// read, which is not a fault.
    pub fn label(&self) -> Option<&'static str> {
        match self {
            AppGap::PidFile { .. } => Some("pid_file"),
            AppGap::ProcessGone { .. } => Some("process_gone"),
            AppGap::FirstRead => None,
        }
    }
}

impl std::fmt::Display for AppGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppGap::PidFile { path, reason } => {
                write!(f, "pid file {}: {reason}", path.display())
            }
            AppGap::ProcessGone { path, pid } => write!(
                f,
                "pid file {} names process {pid}, which is not running",
                path.display()
            ),
            AppGap::FirstRead => f.write_str("first read"),
        }
    }
}

/// One interval of the application, each part a share of (wall time ×
/// `cpus`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AppShare {
    /// CPU time its processes got (utime + stime).
    pub cpu: f64,
    /// Time its threads were runnable but waited for a CPU.
    pub wait: f64,
}

impl AppShare {
    /// The figure the load counts: CPU asked for, got or not.
    pub fn share(&self) -> f64 {
        self.cpu + self.wait
    }
}

/// A process's counters at one read: utime + stime in ticks, and its live
/// threads' run-queue delay in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcRead {
    ticks: u64,
    wait_ns: u64,
}

/// The application's CPU share ([`AppShare`]) between two reads. Its
/// processes are the one in each pid file and all their descendants
/// (`/proc/PID/task/*/children`); a process is counted from its second read
/// on (one that appeared and ended between two reads is not counted).
#[derive(Debug, Clone)]
pub struct AppCpu {
    pid_files: Vec<PathBuf>,
    cpus: f64,
    ticks_per_second: f64,
    /// (pid, start) → counters at the last read.
    last: HashMap<(u32, u64), ProcRead>,
    last_at_ns: Option<u64>,
}

impl AppCpu {
    /// A reader of the processes in `pid_files`, `cpus` CPUs available to
    /// them, `/proc` times in ticks of `ticks_per_second` (`CLK_TCK`).
    pub fn new(pid_files: Vec<PathBuf>, cpus: u32, ticks_per_second: u64) -> AppCpu {
        AppCpu {
            pid_files,
            cpus: f64::from(cpus.max(1)),
            ticks_per_second: ticks_per_second.max(1) as f64,
            last: HashMap::new(),
            last_at_ns: None,
        }
    }

    /// The CPUs the share is taken of.
    pub fn cpus(&self) -> f64 {
        self.cpus
    }

    /// Reads the processes under `proc` at monotonic time `now_ns`: their
    /// share since the last read (`Ok(None)` without pid files).
    pub fn read(&mut self, proc: &Path, now_ns: u64) -> Result<Option<AppShare>, AppGap> {
        if self.pid_files.is_empty() {
            return Ok(None);
        }
        let mut seen = HashSet::new();
        let mut now: HashMap<(u32, u64), ProcRead> = HashMap::new();
        for file in &self.pid_files {
            let text = std::fs::read_to_string(file).map_err(|e| AppGap::PidFile {
                path: file.clone(),
                reason: e.to_string(),
            });
            let pid = text.and_then(|t| {
                parse_pid_file(&t).ok_or_else(|| AppGap::PidFile {
                    path: file.clone(),
                    reason: "holds no process id".to_owned(),
                })
            });
            let pid = match pid {
                Ok(pid) => pid,
                Err(gap) => return Err(self.forget(gap)),
            };
            if !read_tree(proc, pid, &mut seen, &mut now) {
                return Err(self.forget(AppGap::ProcessGone {
                    path: file.clone(),
                    pid,
                }));
            }
        }
        let (mut ticks, mut wait_ns) = (0u64, 0u64);
        let mut any = false;
        for (id, r) in &now {
            if let Some(r0) = self.last.get(id) {
                any = true;
                ticks += r.ticks.saturating_sub(r0.ticks);
                // A thread that ended takes its delay along: 0, not negative.
                wait_ns += r.wait_ns.saturating_sub(r0.wait_ns);
            }
        }
        let elapsed_ns = self.last_at_ns.map(|t0| now_ns.saturating_sub(t0));
        self.last = now;
        self.last_at_ns = Some(now_ns);
        match elapsed_ns {
            Some(ns) if any && ns > 0 => {
                let capacity = ns as f64 / 1e9 * self.cpus;
                Ok(Some(AppShare {
                    cpu: ticks as f64 / self.ticks_per_second / capacity,
                    wait: wait_ns as f64 / 1e9 / capacity,
                }))
            }
            _ => Err(AppGap::FirstRead),
        }
    }

    fn forget(&mut self, gap: AppGap) -> AppGap {
        self.last.clear();
        self.last_at_ns = None;
        gap
    }
}

/// Adds `root` and its descendants (not already in `seen`) to `out` with
/// their ticks; false when `root` itself cannot be read (not running).
fn read_tree(
    proc: &Path,
    root: u32,
    seen: &mut HashSet<u32>,
    out: &mut HashMap<(u32, u64), ProcRead>,
) -> bool {
    let mut queue = vec![root];
    let mut first = true;
    let mut count = 0;
    while let Some(pid) = queue.pop() {
        if !seen.insert(pid) {
            first = false;
            continue;
        }
        let dir = proc.join(pid.to_string());
        let stat = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|t| parse_pid_stat(&t));
        let Some(times) = stat else {
            if first {
                return false;
            }
            continue;
        };
        first = false;
        let mut wait_ns = 0u64;
        if let Ok(tasks) = std::fs::read_dir(dir.join("task")) {
            for task in tasks.flatten() {
                if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
                    queue.extend(parse_children(&text));
                }
                if let Some(w) = std::fs::read_to_string(task.path().join("schedstat"))
                    .ok()
                    .and_then(|t| parse_schedstat(&t))
                {
                    wait_ns = wait_ns.saturating_add(w);
                }
            }
        }
        out.insert(
            (times.pid, times.start),
            ProcRead {
                ticks: times.ticks,
                wait_ns,
            },
        );
        count += 1;
        if count >= MAX_PROCESSES {
            break;
        }
    }
    true
}

/// `CLK_TCK` (`getconf CLK_TCK`; 100, what Linux uses on every common
/// architecture, when that fails) and whether it came from `getconf`.
pub fn clock_ticks_per_second() -> (u64, bool) {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .map_or((100, false), |t| (t, true))
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the figures are exact by construction
mod tests {
    use super::*;

    const STAT: &str = "\
cpu  400 0 200 1000 100 0 0 0 0 0
cpu0 100 0 50 250 25 0 0 0 0 0
cpu1 100 0 50 250 25 0 0 0 0 0
cpu2 100 0 50 250 25 0 0 0 0 0
cpu3 100 0 50 250 25 0 0 0 0 0
intr 12345 0 0
ctxt 999
";

    #[test]
    fn proc_stat_per_cpu_lines() {
        let cpus = parse_proc_stat(STAT);
        assert_eq!(cpus.len(), 4);
        assert_eq!(
            cpus[2],
            CpuTimes {
                cpu: 2,
                total: 425,
                idle: 275
            }
        );
        assert_eq!(online_cpus(STAT), [0, 1, 2, 3]);
        // Guest time (fields 9 and 10) is inside user already.
        let guest = parse_proc_stat("cpu7 10 0 0 10 0 0 0 0 5 5\n");
        assert_eq!(guest[0].total, 20);
        // Old kernels with four fields; garbage skipped.
        assert_eq!(
            parse_proc_stat("cpu0 1 2 3 4\ncpux 1 2 3 4\ncpu1 a b\n").len(),
            1
        );
    }

    #[test]
    fn host_busy_share_leaves_the_dataplane_cores_out() {
        // Cores 1 and 3 are the dataplane's: they spin (all user time).
        let mut h = HostCpu::new(&[1, 3]);
        assert_eq!(h.update(STAT), Err(HostGap::FirstRead));
        let next = "\
cpu  0 0 0 0 0 0 0 0 0 0
cpu0 160 0 70 300 45 0 5 0 0 0
cpu1 300 0 50 250 25 0 0 0 0 0
cpu2 130 0 50 330 35 0 0 0 0 0
cpu3 300 0 50 250 25 0 0 0 0 0
";
        // cpu0: +60 user +20 system +50 idle +20 iowait +5 softirq = 155, idle 70.
        // cpu2: +30 user +80 idle +10 iowait = 120, idle 90.
        // busy (155 + 120 - 70 - 90) / (155 + 120) = 115 / 275.
        let share = h.update(next).unwrap();
        assert!((share - 115.0 / 275.0).abs() < 1e-12, "{share}");
        // No change: 0, not a division by zero.
        assert_eq!(h.update(next), Ok(0.0));
        // Every CPU the dataplane's.
        let mut all = HostCpu::new(&[0, 1, 2, 3]);
        assert_eq!(all.update(STAT), Err(HostGap::EveryCpuIsTheDataplanes));
        // A CPU offlined between reads drops out; the others still count.
        let mut h = HostCpu::new(&[]);
        h.update(STAT).unwrap_err();
        let fewer = "cpu0 200 0 50 250 25 0 0 0 0 0\n";
        assert_eq!(h.update(fewer), Ok(1.0));
    }

    #[test]
    fn pid_stat_with_spaces_and_parentheses_in_the_name() {
        // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt
        // cminflt majflt cmajflt utime stime cutime cstime priority nice
        // num_threads itrealvalue starttime ...
        let text = "4242 (nginx: worker (x) ) S 4241 4241 4241 0 -1 4194624 100 0 0 0 \
                    1234 567 8 9 20 0 1 0 998877 123456 789 18446744073709551615\n";
        assert_eq!(
            parse_pid_stat(text),
            Some(ProcTimes {
                pid: 4242,
                ticks: 1801,
                start: 998_877
            })
        );
        assert_eq!(parse_pid_stat("4242 (cut) S 1 2"), None);
        assert_eq!(parse_pid_stat(""), None);
        assert_eq!(
            parse_schedstat("211346084 20509311 839\n"),
            Some(20_509_311)
        );
        assert_eq!(parse_schedstat("1\n"), None);
        assert_eq!(parse_children("12 13 \n"), [12, 13]);
        assert_eq!(parse_children(""), Vec::<u32>::new());
        assert_eq!(parse_pid_file("4241\n"), Some(4241));
        assert_eq!(parse_pid_file(" 17 \nrest"), Some(17));
        assert_eq!(parse_pid_file(""), None);
        assert_eq!(parse_pid_file("0\n"), None);
        assert_eq!(parse_pid_file("nginx\n"), None);
    }

    /// A fake `/proc` with `procs` = (pid, children, utime, stime, start);
    /// each thread waited `wait_ms` for a CPU so far.
    fn fake_proc(dir: &Path, procs: &[(u32, &[u32], u64, u64, u64)], wait_ms: u64) {
        let _ = std::fs::remove_dir_all(dir);
        for &(pid, children, utime, stime, start) in procs {
            let task = dir.join(format!("{pid}/task/{pid}"));
            std::fs::create_dir_all(&task).unwrap();
            let stat = format!(
                "{pid} (nginx: a b) S 1 1 1 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0 1 0 {start} 0 0\n"
            );
            std::fs::write(dir.join(format!("{pid}/stat")), stat).unwrap();
            let kids: Vec<String> = children.iter().map(ToString::to_string).collect();
            std::fs::write(task.join("children"), kids.join(" ")).unwrap();
            let sched = format!("{} {} 10\n", utime * 10_000_000, wait_ms * 1_000_000);
            std::fs::write(task.join("schedstat"), sched).unwrap();
        }
    }

    #[test]
    fn app_share_of_a_process_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path().join("proc");
        let pid_file = tmp.path().join("nginx.pid");
        std::fs::write(&pid_file, "100\n").unwrap();
        // Master 100, worker 101 (child), 102 (grandchild); 200 unrelated.
        fake_proc(
            &proc,
            &[
                (100, &[101], 10, 5, 1),
                (101, &[102], 100, 50, 2),
                (102, &[], 0, 0, 3),
                (200, &[], 0, 0, 4),
            ],
            0,
        );
        let mut app = AppCpu::new(vec![pid_file.clone()], 2, 100);
        assert_eq!(app.read(&proc, 1_000_000_000), Err(AppGap::FirstRead));
        fake_proc(
            &proc,
            &[
                (100, &[101], 12, 8, 1),
                (101, &[102], 150, 90, 2),
                (102, &[], 10, 0, 3),
                (200, &[], 500, 500, 4),
            ],
            100,
        );
        // +5 +90 +10 = 105 ticks = 1.05 s of CPU in 1 s over 2 CPUs; each
        // of the three threads waited 100 ms more (0.3 s over 2 CPUs).
        let a = app.read(&proc, 2_000_000_000).unwrap().unwrap();
        assert!((a.cpu - 0.525).abs() < 1e-12, "{a:?}");
        assert!((a.wait - 0.15).abs() < 1e-12, "{a:?}");
        assert!((a.share() - 0.675).abs() < 1e-12, "{a:?}");
        // The worker restarted (same pid, new start time): counted from its
        // next read, not from its old ticks.
        fake_proc(
            &proc,
            &[
                (100, &[101], 12, 8, 1),
                (101, &[], 1, 0, 9),
                (102, &[], 10, 0, 3),
            ],
            100,
        );
        assert_eq!(
            app.read(&proc, 3_000_000_000),
            Ok(Some(AppShare {
                cpu: 0.0,
                wait: 0.0
            }))
        );

        // The pid file vanishes: absent, named, and the next read starts over.
        std::fs::remove_file(&pid_file).unwrap();
        let gap = app.read(&proc, 4_000_000_000).unwrap_err();
        assert_eq!(gap.label(), Some("pid_file"));
        assert!(gap
            .to_string()
            .starts_with(&format!("pid file {}: ", pid_file.display())));
        std::fs::write(&pid_file, "garbage\n").unwrap();
        assert_eq!(
            app.read(&proc, 5_000_000_000),
            Err(AppGap::PidFile {
                path: pid_file.clone(),
                reason: "holds no process id".to_owned()
            })
        );
        // It names a process that is gone.
        std::fs::write(&pid_file, "999\n").unwrap();
        let gap = app.read(&proc, 6_000_000_000).unwrap_err();
        assert_eq!(
            gap,
            AppGap::ProcessGone {
                path: pid_file.clone(),
                pid: 999
            }
        );
        assert_eq!(gap.label(), Some("process_gone"));
        std::fs::write(&pid_file, "100\n").unwrap();
        assert_eq!(app.read(&proc, 7_000_000_000), Err(AppGap::FirstRead));
        assert_eq!(AppGap::FirstRead.label(), None);

        // No pid files: no figure, never an error.
        let mut none = AppCpu::new(Vec::new(), 1, 100);
        assert_eq!(none.read(&proc, 1), Ok(None));
    }

    #[test]
    fn clock_ticks_are_positive() {
        assert!(clock_ticks_per_second().0 > 0);
    }
}

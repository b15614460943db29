//! The CPU figures of each interval as the main loop takes them: the
//! readers of `cpu.rs` set up from `[control.load]` and `dataplane.cores`,
//! a log line each time a figure goes missing or comes back (never one per
//! interval), and the count of intervals without the application figure.
//! A missing figure never stops control: the load is then made of the
//! others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use shoal_config::Config;

use crate::cpu::{self, AppCpu, AppGap, HostCpu, HostGap};
use crate::load::CpuFigures;
use crate::status::LoadDetail;

/// Where the kernel's process and CPU figures are.
const PROC: &str = "/proc";

pub(super) struct CpuLoad {
    proc: PathBuf,
    host: HostCpu,
    app: AppCpu,
    pid_files: Vec<PathBuf>,
    host_note: Option<String>,
    app_note: Option<String>,
    app_last: Option<cpu::AppShare>,
    unavailable: BTreeMap<String, u64>,
}

impl CpuLoad {
    /// Readers for `cfg`'s `[control.load]`; `app_cpus` checked against the
    /// host's online CPUs here (a config may be copied between hosts).
    pub(super) fn new(cfg: &Config) -> CpuLoad {
        CpuLoad::with_proc(cfg, Path::new(PROC))
    }

    fn with_proc(cfg: &Config, proc: &Path) -> CpuLoad {
        let load = &cfg.control.load;
        let dataplane = &cfg.dataplane.cores;
        let online = std::fs::read_to_string(proc.join("stat"))
            .map(|t| cpu::online_cpus(&t))
            .unwrap_or_default();
        let free = online.iter().filter(|c| !dataplane.contains(c)).count();
        let online_n = u32::try_from(online.len()).unwrap_or(u32::MAX).max(1);
        let app_cpus = match load.app_cpus {
            Some(n) if n > online_n => {
                tracing::warn!(
                    "control.load.app_cpus = {n} but this host has {online_n} online CPU(s): \
                     using {online_n}"
                );
                online_n
            }
            Some(n) => n,
            None if free == 0 => online_n,
            None => u32::try_from(free).unwrap_or(u32::MAX),
        };
        if load.app_pid_files.is_empty() {
            return CpuLoad::build(cfg, proc, AppCpu::new(Vec::new(), app_cpus, 100));
        }
        let (ticks, from_getconf) = cpu::clock_ticks_per_second();
        if !from_getconf {
            tracing::warn!("`getconf CLK_TCK` failed: taking 100 clock ticks a second");
        }
        tracing::info!(
            "load: the application's CPU share of {app_cpus} CPU(s) from {} (weight {}), \
             host CPU outside dataplane.cores {:?} (weight {})",
            load.app_pid_files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            load.weights.app,
            dataplane,
            load.weights.host_cpu
        );
        CpuLoad::build(
            cfg,
            proc,
            AppCpu::new(load.app_pid_files.clone(), app_cpus, ticks),
        )
    }

    fn build(cfg: &Config, proc: &Path, app: AppCpu) -> CpuLoad {
        CpuLoad {
            proc: proc.to_owned(),
            host: HostCpu::new(&cfg.dataplane.cores),
            app,
            pid_files: cfg.control.load.app_pid_files.clone(),
            host_note: None,
            app_note: None,
            app_last: None,
            unavailable: BTreeMap::new(),
        }
    }

    /// This interval's figures at monotonic time `now_ns`.
    pub(super) fn sample(&mut self, now_ns: u64) -> CpuFigures {
        let host_cpu = match self.host.read(&self.proc) {
            Ok(v) => {
                self.note_host(None);
                Some(v)
            }
            Err(HostGap::FirstRead) => None,
            Err(HostGap::EveryCpuIsTheDataplanes) => {
                self.note_host(Some(
                    "every online CPU is one of dataplane.cores: host CPU counted as 0".to_owned(),
                ));
                Some(0.0)
            }
            Err(HostGap::Unreadable(why)) => {
                self.note_host(Some(format!("no host CPU figure: {why}")));
                None
            }
        };
        let app = match self.app.read(&self.proc, now_ns) {
            Ok(v) => {
                if let Some(a) = v {
                    self.note_app(None);
                    self.app_last = Some(a);
                }
                v.map(|a| a.share())
            }
            Err(gap) => {
                self.app_last = None;
                if let Some(label) = gap.label() {
                    *self.unavailable.entry(label.to_owned()).or_insert(0) += 1;
                    self.note_app(Some(&gap));
                }
                None
            }
        };
        CpuFigures { host_cpu, app }
    }

    fn note_host(&mut self, note: Option<String>) {
        if note == self.host_note {
            return;
        }
        if let Some(n) = &note {
            tracing::info!("load: {n}");
        } else {
            tracing::info!("load: host CPU figure measured again");
        }
        self.host_note = note;
    }

    fn note_app(&mut self, gap: Option<&AppGap>) {
        let note = gap.map(ToString::to_string);
        if note == self.app_note {
            return;
        }
        if let Some(n) = &note {
            tracing::warn!(
                "load: no application CPU figure ({n}); the load is made of the other figures \
                 until it is back"
            );
        } else {
            tracing::info!("load: the application CPU figure is back");
        }
        self.app_note = note;
    }

    /// The `/status` part this owns (the figures themselves are the
    /// tracker's).
    pub(super) fn detail(&self, figures: crate::load::LocalLoad) -> LoadDetail {
        LoadDetail {
            figures,
            app_cpus: (!self.pid_files.is_empty()).then(|| self.app.cpus()),
            app_pid_files: self
                .pid_files
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            host_cpu_note: self.host_note.clone(),
            app_note: self.app_note.clone(),
            app_last_cpu: self.app_last.map(|a| a.cpu),
            app_last_wait: self.app_last.map(|a| a.wait),
            app_unavailable: self.unavailable.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the figures are exact by construction
mod tests {
    use std::fmt::Write as _;

    use super::*;

    fn config(pid_file: &Path, cores: Vec<u32>, app_cpus: Option<u32>) -> Config {
        let mut cfg: Config = shoal_config::load_str(
            r#"
[cluster]
vips = ["198.18.0.100"]
mac = "02:00:c6:12:00:64"
local_member = "srv1"
[[cluster.members]]
id = 1
name = "srv1"
address = "198.18.0.11"
mac = "02:00:c6:12:00:0b"
[dataplane]
backend = "memory"
"#,
            Path::new("/etc/shoal/t.toml"),
        )
        .unwrap();
        cfg.dataplane.cores = cores;
        cfg.control.load.app_pid_files = vec![pid_file.to_owned()];
        cfg.control.load.app_cpus = app_cpus;
        cfg
    }

    fn write_stat(proc: &Path, ticks: u64) {
        let mut text = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
        for c in 0..4 {
            let _ = writeln!(text, "cpu{c} {ticks} 0 0 {ticks} 0 0 0 0 0 0");
        }
        std::fs::write(proc.join("stat"), text).unwrap();
    }

    fn write_proc(proc: &Path, pid: u32, ticks: u64) {
        let task = proc.join(format!("{pid}/task/{pid}"));
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(task.join("children"), "").unwrap();
        std::fs::write(
            proc.join(format!("{pid}/stat")),
            format!("{pid} (nginx) S 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 5 0 0\n"),
        )
        .unwrap();
        // Waiting grows 8 ms per tick of CPU time.
        std::fs::write(
            task.join("schedstat"),
            format!("0 {} 1\n", ticks * 8_000_000),
        )
        .unwrap();
    }

    #[test]
    fn app_cpus_default_and_runtime_clamp_and_gaps_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path().join("proc");
        std::fs::create_dir_all(&proc).unwrap();
        write_stat(&proc, 100);
        let pid_file = tmp.path().join("nginx.pid");
        // Four CPUs, the dataplane on 1: the app gets the other three.
        let c = CpuLoad::with_proc(&config(&pid_file, vec![1], None), &proc);
        assert_eq!(c.app.cpus(), 3.0);
        // More than the host has: clamped at start.
        let c = CpuLoad::with_proc(&config(&pid_file, vec![1], Some(16)), &proc);
        assert_eq!(c.app.cpus(), 4.0);
        // Every CPU the dataplane's: host CPU 0, the app's share of all four.
        let mut c = CpuLoad::with_proc(&config(&pid_file, vec![0, 1, 2, 3], None), &proc);
        assert_eq!(c.app.cpus(), 4.0);
        let f = c.sample(1_000_000_000);
        assert_eq!(f.host_cpu, Some(0.0));
        // No pid file yet: absent, counted, noted; control goes on.
        assert_eq!(f.app, None);
        let f = c.sample(2_000_000_000);
        assert_eq!(f.app, None);
        let d = c.detail(crate::load::LocalLoad::default());
        assert_eq!(d.app_unavailable.get("pid_file"), Some(&2));
        assert!(
            d.app_note.as_deref().unwrap().contains("nginx.pid"),
            "{d:?}"
        );
        assert!(d
            .host_cpu_note
            .as_deref()
            .unwrap()
            .contains("dataplane.cores"));
        // The process appears: first read, then a share of one CPU's worth
        // (100 ticks in 1 s) over four CPUs.
        std::fs::write(&pid_file, "77\n").unwrap();
        write_proc(&proc, 77, 0);
        assert_eq!(c.sample(3_000_000_000).app, None);
        write_proc(&proc, 77, 100);
        // 100 ticks in 1 s over four CPUs, and 0.8 s waiting for a CPU.
        assert_eq!(c.sample(4_000_000_000).app, Some(0.45));
        let d = c.detail(crate::load::LocalLoad::default());
        assert_eq!(d.app_note, None);
        assert_eq!(d.app_last_cpu, Some(0.25));
        assert_eq!(d.app_last_wait, Some(0.2));
        assert_eq!(d.app_cpus, Some(4.0));
        assert_eq!(d.app_unavailable.get("pid_file"), Some(&2));
        // Host CPU measured on the free CPUs: 50 % busy between the reads.
        let mut c = CpuLoad::with_proc(&config(&pid_file, vec![1], None), &proc);
        assert_eq!(c.sample(1).host_cpu, None);
        write_stat(&proc, 200);
        assert_eq!(c.sample(2).host_cpu, Some(0.5));
    }
}

//! Processes the lab starts and stops: detached spawns with PID files,
//! liveness, namespace identity (a recorded PID is only ours while it is
//! alive *and* in the namespace it was started in: guards against PID
//! reuse), and bounded TERM-then-KILL.
//!
//! Never by name pattern: every process is found by a recorded PID or by
//! its network namespace.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::LabError;

/// How long `stop` waits after TERM before it sends KILL.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

/// The process exists and is neither a zombie nor dead (PID 1 may reap late).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which may hold spaces and ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// The PID in `path`, if it holds one.
pub fn read_pid(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&p| p > 0)
}

/// (device, inode) of a network namespace file.
fn ns_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The (device, inode) of named namespace `ns` (`/run/netns/<ns>`).
pub fn netns_id(ns: &str) -> Option<(u64, u64)> {
    ns_id(&Path::new("/run/netns").join(ns))
}

/// `pid` is alive and lives in network namespace `ns`.
pub fn ours(pid: u32, ns: &str) -> bool {
    alive(pid)
        && netns_id(ns)
            .is_some_and(|id| ns_id(Path::new(&format!("/proc/{pid}/ns/net"))) == Some(id))
}

/// The recorded PID in `pidfile`, if it is alive in `ns`.
pub fn recorded(pidfile: &Path, ns: &str) -> Option<u32> {
    read_pid(pidfile).filter(|&pid| ours(pid, ns))
}

/// Every live process in network namespace `ns` (what `ip netns pids` lists).
pub fn pids_in(ns: &str) -> Vec<u32> {
    let Some(id) = netns_id(ns) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid: &u32| ns_id(Path::new(&format!("/proc/{pid}/ns/net"))) == Some(id))
        .filter(|&pid| alive(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// Sends `signal` to `pid`; a process already gone is not an error.
pub fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

fn wait_gone(pids: &[u32], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if pids.iter().all(|&p| !alive(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(100));
    }
}

/// TERM to every PID, up to [`STOP_WAIT`] for them to end, then KILL and 2 s more.
pub fn stop(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    for &pid in pids {
        signal(pid, Signal::TERM);
    }
    if wait_gone(pids, STOP_WAIT) {
        return;
    }
    for &pid in pids.iter().filter(|&&p| alive(p)) {
        crate::log(&format!(
            "pid {pid} ignored TERM for {}s: KILL",
            STOP_WAIT.as_secs()
        ));
        signal(pid, Signal::KILL);
    }
    if !wait_gone(pids, Duration::from_secs(2)) {
        let left: Vec<String> = pids
            .iter()
            .filter(|&&p| alive(p))
            .map(ToString::to_string)
            .collect();
        crate::log(&format!(
            "warning: still alive after KILL: {}",
            left.join(" ")
        ));
    }
}

/// Starts `program args` inside namespace `ns` (`ip netns exec`, which
/// execs the program under the same PID), detached: its own process group,
/// stdin closed, stdout and stderr appended to `log`. Writes the PID to
/// `pidfile` (through a temporary file and a rename) and returns it. A
/// thread reaps the process when it ends, so a stopped process never lingers
/// as a zombie of a long-lived caller (a test).
pub fn spawn(
    ns: &str,
    program: &Path,
    args: &[String],
    pidfile: &Path,
    log: &Path,
) -> Result<u32, LabError> {
    let _ = std::fs::remove_file(pidfile);
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io(log, e))?;
    let err = out.try_clone().map_err(|e| LabError::io(log, e))?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| LabError::Spawn {
            what: format!("ip netns exec {ns} {}", program.display()),
            source: e,
        })?;
    let pid = child.id();
    let tmp = pidfile.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{pid}\n")).map_err(|e| LabError::io(&tmp, e))?;
    std::fs::rename(&tmp, pidfile).map_err(|e| LabError::io(pidfile, e))?;
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_pid_files_parse() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
        let dir = std::env::temp_dir().join(format!("shoal-lab-pid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("x.pid");
        std::fs::write(&f, "1234\n").unwrap();
        assert_eq!(read_pid(&f), Some(1234));
        std::fs::write(&f, "").unwrap();
        assert_eq!(read_pid(&f), None);
        assert_eq!(read_pid(&dir.join("missing.pid")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

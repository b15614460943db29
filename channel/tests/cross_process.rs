//! A stats writer in another process hammers the segment while this one
//! reads it: every snapshot is one whole write, never a mix of two.
//!
//! The second process is this test binary again, running this same test
//! with `SHOAL_CHANNEL_STATS_CHILD` naming the file: it creates the segment,
//! says so on stdout, waits for a line on stdin, writes `WRITES` times and exits.
//! Write `k` sets every value and the timestamp to `k`, so a consistent
//! snapshot has all of them equal.

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use shoal_channel::{ChannelError, StatsReader, StatsWriter};

const CHILD_ENV: &str = "SHOAL_CHANNEL_STATS_CHILD";
/// What the child prints once the segment exists.
const READY: &str = "STATS-WRITER-READY";
/// Enough values that the block spans two pages (4.8 KiB).
const VALUES: usize = 600;
const WRITES: u64 = 20_000;
/// Writes per burst: back to back, then a short pause, so that reads land
/// both in the middle of bursts (and must retry) and between them.
const BURST: u64 = 100;

#[test]
fn snapshots_are_consistent_across_processes() {
    if let Some(path) = env::var_os(CHILD_ENV) {
        write_child(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats-0");
    let mut child = Command::new(env::current_exe().unwrap())
        .args([
            "--exact",
            "snapshots_are_consistent_across_processes",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the child exited before READY")
            .unwrap();
        // libtest may print the line after its own "test ... " prefix.
        if line.ends_with(READY) {
            break;
        }
    }
    let mut reader = StatsReader::open(&path).unwrap();
    assert_eq!(reader.names().len(), VALUES);
    writeln!(child.stdin.take().unwrap(), "go").unwrap();

    let (mut consistent, mut busy, mut last) = (0_u64, 0_u64, 0_u64);
    let status = loop {
        match reader.read() {
            Ok(snapshot) => {
                let k = snapshot.written_at_unix_ns;
                assert!(
                    snapshot.values.iter().all(|&value| value == k),
                    "torn snapshot: timestamp {k}, values {:?}",
                    distinct(&snapshot.values)
                );
                assert!(k >= last && k <= WRITES, "snapshot {k} after {last}");
                last = k;
                consistent += 1;
            }
            Err(ChannelError::Busy { .. }) => busy += 1,
            Err(error) => panic!("{error}"),
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
    };
    assert!(status.success(), "the writer process failed: {status}");
    for line in lines {
        println!("child: {}", line.unwrap());
    }
    let snapshot = reader.read().unwrap();
    assert_eq!(snapshot.written_at_unix_ns, WRITES);
    assert_eq!(snapshot.values, vec![WRITES; VALUES]);
    println!(
        "{consistent} consistent snapshots (last {last}), {busy} reads gave up as busy, \
         during {WRITES} writes"
    );
}

fn write_child(path: &Path) {
    let names: Vec<String> = (0..VALUES).map(|i| format!("value_{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut writer = StatsWriter::create(path, &names).expect("create the stats segment");
    println!("{READY}");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("read stdin");
    let mut values = vec![0; VALUES];
    for burst in 0..WRITES / BURST {
        for k in burst * BURST + 1..=(burst + 1) * BURST {
            values.fill(k);
            writer
                .write_at(&values, k)
                .expect("write the stats segment");
        }
        thread::sleep(Duration::from_micros(200));
    }
}

fn distinct(values: &[u64]) -> Vec<u64> {
    let mut distinct = values.to_vec();
    distinct.dedup();
    distinct
}

//! Target `channel`: what a worker reads from control and control from a
//! worker through shared files (`shoal-channel`): a command's bytes, the
//! command ring file and the stats segment file, each corrupted by
//! arbitrary writes (a buggy or hostile writer on the same host).
//!
//! Invariants: a command decodes only from its own canonical bytes
//! (re-encoding gives the input back, so two readers can never disagree on
//! what a slot says); a ring or segment with garbage written over it gives
//! errors that name the file, never a panic, a hang or a value that was
//! not written; an untouched segment reads back exactly what was written.

use arbitrary::{Arbitrary, Unstructured};

use shoal_channel::{Command, CommandRing, CommandSender, StatsReader, StatsWriter, COMMAND_LEN};

/// One write over a file: at `offset` (modulo the file's length), `bytes`.
#[derive(Debug, Arbitrary)]
struct Patch<'a> {
    offset: u32,
    bytes: &'a [u8],
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// A command slot's bytes as a worker decodes them.
    command: &'a [u8],
    /// Commands control sends before the ring is corrupted (epochs).
    sent: Vec<u64>,
    ring_patches: Vec<Patch<'a>>,
    /// Counter names (sanitised) and values written to the segment.
    names: Vec<u8>,
    values: Vec<u64>,
    stats_patches: Vec<Patch<'a>>,
}

/// The target.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return;
    };
    command(input.command);
    // On tmpfs where there is one, as the processes use it; removed after.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("shoal-fuzz-channel-")
        .tempdir_in(base)
        .expect("a temporary directory");
    ring(dir.path(), &input.sent, &input.ring_patches);
    stats(
        dir.path(),
        &input.names,
        &input.values,
        &input.stats_patches,
    );
}

fn command(bytes: &[u8]) {
    let mut slot = [0u8; COMMAND_LEN];
    let n = bytes.len().min(COMMAND_LEN);
    slot[..n].copy_from_slice(&bytes[..n]);
    // Short and long buffers are refused, never read past.
    let _ = Command::decode(bytes);
    if let Ok(c) = Command::decode(&slot) {
        let again = c.to_bytes().expect("a decoded command encodes");
        assert!(
            again[..] == slot[..],
            "{c:?} does not re-encode to its slot"
        );
    }
}

/// Writes `patches` over the file at `path`.
fn corrupt(path: &std::path::Path, patches: &[Patch<'_>]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for writing");
    let len = file.metadata().expect("metadata").len();
    for p in patches.iter().take(16) {
        if len == 0 {
            break;
        }
        let at = u64::from(p.offset) % len;
        let room = (len - at) as usize;
        let bytes = &p.bytes[..p.bytes.len().min(room)];
        file.write_all_at(bytes, at).expect("write");
    }
}

fn ring(dir: &std::path::Path, sent: &[u64], patches: &[Patch<'_>]) {
    let path = dir.join("ring");
    let capacity = 4;
    let mut ring = CommandRing::create(&path, capacity).expect("create the ring");
    let mut sender = CommandSender::open(&path).expect("open the ring");
    let mut queued = Vec::new();
    for &epoch in sent.iter().take(capacity) {
        let c = Command::EvictFlows {
            client: std::net::Ipv4Addr::from(epoch as u32),
            port: (epoch >> 32) as u16,
        };
        if sender.send(&c).is_ok() {
            queued.push(c);
        }
    }
    if patches.is_empty() {
        // Untouched: exactly what was sent, in order.
        for c in &queued {
            assert_eq!(ring.try_recv().expect("read"), Some(c.clone()));
        }
        assert_eq!(ring.try_recv().expect("read"), None);
        return;
    }
    corrupt(&path, patches);
    // Bounded: each call consumes at most one slot or reports an error.
    for _ in 0..(2 * capacity + 2) {
        match ring.try_recv() {
            Ok(None) => break,
            Ok(Some(c)) => {
                let _ = c.to_bytes();
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("ring"), "an error names the file: {text}");
            }
        }
    }
    let _ = sender.pending();
    let _ = sender.is_stale();
}

fn stats(dir: &std::path::Path, names: &[u8], values: &[u64], patches: &[Patch<'_>]) {
    let path = dir.join("stats");
    // Names the writer accepts: distinct, printable.
    let names: Vec<String> = names
        .iter()
        .take(64)
        .enumerate()
        .map(|(i, b)| format!("n{i}_{}", char::from(b'a' + b % 26)))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut w = StatsWriter::create(&path, &refs).expect("create the segment");
    let mut written = vec![0u64; names.len()];
    for (i, v) in values.iter().take(names.len()).enumerate() {
        written[i] = *v;
    }
    w.write_at(&written, 42).expect("write values");
    if patches.is_empty() {
        let mut r = StatsReader::open(&path).expect("open the segment");
        let s = r.read().expect("read the segment");
        assert_eq!(r.names(), &names[..]);
        for (name, v) in names.iter().zip(&written) {
            assert_eq!(s.value(name), Some(*v));
        }
        assert_eq!(s.written_at_unix_ns, 42);
        return;
    }
    corrupt(&path, patches);
    match StatsReader::open(&path) {
        Ok(mut r) => {
            assert!(r.names().len() <= shoal_channel::MAX_VALUES);
            if let Ok(s) = r.read() {
                assert_eq!(s.values.len(), r.names().len());
            }
            let _ = r.is_stale();
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("stats"), "an error names the file: {text}");
        }
    }
}

//! The stats segment in one process: exact values, names, restart
//! detection and files that are not stats segments.

use std::fs;
use std::path::Path;

use shoal_channel::{
    stats_path, ChannelError, CommandRing, StatsReader, StatsSnapshot, StatsWriter, MAX_VALUES,
};

fn assert_names(error: &ChannelError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&*path.to_string_lossy()),
        "{message:?} does not name {}",
        path.display()
    );
}

#[test]
fn values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = stats_path(dir.path(), 3);
    assert!(path.ends_with("stats-3"));
    let names = [
        "rx_packets_total",
        "drop_malformed_total{layer=\"ipv4\"}",
        "flows_active",
    ];
    let mut writer = StatsWriter::create(&path, &names).unwrap();
    let mut reader = StatsReader::open(&path).unwrap();
    assert_eq!(reader.instance(), writer.instance());
    assert_eq!(reader.names(), names);

    // Before the first write: zeros at time 0.
    assert_eq!(
        reader.read().unwrap(),
        StatsSnapshot {
            instance: writer.instance(),
            names: names.map(String::from).to_vec(),
            values: vec![0, 0, 0],
            written_at_unix_ns: 0,
        }
    );

    writer
        .write_at(&[10, u64::MAX, 7], 1_700_000_000_000_000_000)
        .unwrap();
    let snapshot = reader.read().unwrap();
    assert_eq!(snapshot.values, [10, u64::MAX, 7]);
    assert_eq!(snapshot.written_at_unix_ns, 1_700_000_000_000_000_000);
    assert_eq!(snapshot.value("flows_active"), Some(7));
    assert_eq!(snapshot.value("nope"), None);

    writer.write(&[11, 0, 6]).unwrap();
    let snapshot = reader.read().unwrap();
    assert_eq!(snapshot.values, [11, 0, 6]);
    assert!(snapshot.written_at_unix_ns > 1_700_000_000_000_000_000);

    let error = writer.write(&[1, 2]).unwrap_err();
    assert!(matches!(
        error,
        ChannelError::ValueCount {
            expected: 3,
            found: 2,
            ..
        }
    ));
    assert_names(&error, &path);
    // A refused write changes nothing.
    assert_eq!(reader.read().unwrap().values, [11, 0, 6]);
}

#[test]
fn no_names_is_a_valid_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats");
    let mut writer = StatsWriter::create(&path, &[]).unwrap();
    writer.write_at(&[], 5).unwrap();
    let snapshot = StatsReader::open(&path).unwrap().read().unwrap();
    assert!(snapshot.names.is_empty() && snapshot.values.is_empty());
    assert_eq!(snapshot.written_at_unix_ns, 5);
}

#[test]
fn invalid_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats");
    let long = "x".repeat(256);
    let cases: [(&[&str], &str); 5] = [
        (&[""], "\"\" is empty"),
        (
            &["a b"],
            "\"a b\" has a character that is not printable ASCII (or is a space)",
        ),
        (
            &["é"],
            "\"é\" has a character that is not printable ASCII (or is a space)",
        ),
        (&["a", "b", "a"], "\"a\" appears more than once"),
        (&[&long], "is longer than 255 bytes"),
    ];
    for (names, reason) in cases {
        let error = StatsWriter::create(&path, names).unwrap_err();
        assert!(
            matches!(&error, ChannelError::InvalidNames { reason: r, .. } if r.ends_with(reason)),
            "{error}"
        );
        assert_names(&error, &path);
    }
    let many: Vec<String> = (0..=MAX_VALUES).map(|i| format!("v{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let error = StatsWriter::create(&path, &many).unwrap_err();
    assert!(error
        .to_string()
        .ends_with("4097 names, at most 4096 are allowed"));
    assert!(StatsWriter::create(&path, &many[..MAX_VALUES]).is_ok());
    assert!(StatsWriter::create(&path, &["x".repeat(255).as_str()]).is_ok());
}

#[test]
fn restart_makes_the_reader_stale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stats");
    let mut old = StatsWriter::create(&path, &["a_total"]).unwrap();
    old.write_at(&[5], 1).unwrap();
    let mut reader = StatsReader::open(&path).unwrap();
    assert!(!reader.is_stale().unwrap());

    let mut new = StatsWriter::create(&path, &["a_total", "b_total"]).unwrap();
    new.write_at(&[1, 2], 2).unwrap();
    assert_ne!(new.instance(), old.instance());
    assert!(reader.is_stale().unwrap());
    // The stale reader still sees the old worker's last values.
    assert_eq!(reader.read().unwrap().values, [5]);
    let mut reader = StatsReader::open(&path).unwrap();
    let snapshot = reader.read().unwrap();
    assert_eq!(snapshot.instance, new.instance());
    assert_eq!(snapshot.names, ["a_total", "b_total"]);
    assert_eq!(snapshot.values, [1, 2]);
}

#[test]
fn files_that_are_not_stats_segments_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    drop(StatsWriter::create(&good, &["a_total", "bc"]).unwrap());
    let original = fs::read(&good).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    };

    let garbage: Vec<u8> = (0..original.len()).map(|i| (i * 13 + 1) as u8).collect();
    for path in [write("garbage", &garbage), write("empty", b"")] {
        let error = StatsReader::open(&path).unwrap_err();
        assert!(
            matches!(
                error,
                ChannelError::WrongKind {
                    expected: "stats segment",
                    ..
                }
            ),
            "{error}"
        );
        assert_names(&error, &path);
    }

    let ring = dir.path().join("ring");
    drop(CommandRing::create(&ring, 1).unwrap());
    let error = StatsReader::open(&ring).unwrap_err();
    assert!(error
        .to_string()
        .contains("is not a Shoal stats segment (it starts with \"SHOALCMR\")"));

    let mut bytes = original.clone();
    bytes[8..12].copy_from_slice(&7_u32.to_le_bytes());
    let path = write("version", &bytes);
    let error = StatsReader::open(&path).unwrap_err();
    assert!(matches!(
        error,
        ChannelError::UnsupportedVersion { found: 7, .. }
    ));

    for len in [40, original.len() - 8, original.len() + 8] {
        let mut bytes = original.clone();
        bytes.resize(len, 0);
        let path = write("sized", &bytes);
        let error = StatsReader::open(&path).unwrap_err();
        assert!(matches!(error, ChannelError::WrongSize { found, .. } if found == len as u64));
        assert_names(&error, &path);
    }

    // Names region damaged: a length running past it, a bad character, an
    // empty name, a region length that does not match the names (the same
    // padded size, so the file size still matches).
    for (offset, value, reason) in [
        (64, 11_u8, "name 0 runs past the names region"),
        (
            66,
            b' ',
            "name 0 has a character that is not printable ASCII (or is a space)",
        ),
        (72, 7, "name 1 runs past the names region"),
        (72, 0, "name 1 is empty"),
        (24, 9, "name 1 runs past the names region"),
        (24, 12, "1 bytes after the last name"),
    ] {
        let mut bytes = original.clone();
        bytes[offset] = value;
        let path = write("names", &bytes);
        let error = StatsReader::open(&path).unwrap_err();
        assert!(
            matches!(&error, ChannelError::BadHeader { reason: r, .. } if r == reason),
            "{offset}: {error}"
        );
        assert_names(&error, &path);
    }

    // The same name twice.
    let path = dir.path().join("duplicate");
    drop(StatsWriter::create(&path, &["ab", "cd"]).unwrap());
    let mut bytes = fs::read(&path).unwrap();
    bytes[68..70].copy_from_slice(b"ab");
    fs::write(&path, bytes).unwrap();
    let error = StatsReader::open(&path).unwrap_err();
    assert!(
        matches!(&error, ChannelError::BadHeader { reason, .. }
            if reason == "name \"ab\" appears more than once"),
        "{error}"
    );
}

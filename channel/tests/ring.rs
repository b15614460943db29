//! The command ring in one process: order, fullness, wraparound, restart
//! detection and files that are not rings.

use core::net::Ipv4Addr;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use shoal_channel::{
    command_ring_path, ChannelError, Command, CommandRing, CommandSender, EncodeError, MemberState,
    SendError, StatsWriter, MAX_CAPACITY, MAX_MEMBERS,
};

fn membership(epoch: u64) -> Command {
    Command::Membership {
        epoch,
        digest: epoch ^ 0x55,
        members: vec![MemberState {
            id: (epoch % 50) as u16,
            addr: Ipv4Addr::new(198, 18, 0, 1),
            mac: [2, 0, 0, 0, 0, 1],
            weight: epoch as u32,
            alive: epoch % 2 == 1,
            draining: epoch % 3 == 1,
            load: 0.5,
        }],
    }
}

fn assert_names(error: &ChannelError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&*path.to_string_lossy()),
        "{message:?} does not name {}",
        path.display()
    );
}

#[test]
fn commands_arrive_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = command_ring_path(dir.path(), 0);
    let mut ring = CommandRing::create(&path, 8).unwrap();
    let mut sender = CommandSender::open(&path).unwrap();
    let commands = [
        membership(1),
        Command::Drain {
            member: 3,
            draining: true,
        },
        Command::Weight {
            member: 3,
            weight: 250,
        },
        Command::Load {
            member: 4,
            load: 0.75,
        },
        Command::Shutdown,
    ];
    assert_eq!(ring.try_recv().unwrap(), None);
    for command in &commands {
        sender.send(command).unwrap();
    }
    assert_eq!(sender.pending().unwrap(), 5);
    for command in &commands {
        assert_eq!(ring.try_recv().unwrap().as_ref(), Some(command));
    }
    assert_eq!(ring.try_recv().unwrap(), None);
    assert_eq!(sender.pending().unwrap(), 0);
    assert_eq!(ring.capacity(), 8);
    assert_eq!(sender.capacity(), 8);
    assert_eq!(ring.path(), path);
    // Creation leaves no temporary file behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["commands-0"]);
}

#[test]
fn capacity_is_exact_and_full_never_overwrites() {
    for capacity in [1, 2, 7, 64] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring");
        let mut ring = CommandRing::create(&path, capacity).unwrap();
        let mut sender = CommandSender::open(&path).unwrap();
        for epoch in 0..capacity as u64 {
            sender.send(&membership(epoch)).unwrap();
        }
        assert!(matches!(
            sender.send(&membership(999)),
            Err(SendError::Full)
        ));
        assert_eq!(sender.pending().unwrap(), capacity);
        assert_eq!(ring.try_recv().unwrap(), Some(membership(0)));
        sender.send(&membership(capacity as u64)).unwrap();
        assert!(matches!(
            sender.send(&membership(999)),
            Err(SendError::Full)
        ));
        for epoch in 1..=capacity as u64 {
            assert_eq!(ring.try_recv().unwrap(), Some(membership(epoch)));
        }
        assert_eq!(ring.try_recv().unwrap(), None);
    }
}

#[test]
fn wraps_around_over_many_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let mut ring = CommandRing::create(&path, 3).unwrap();
    let mut sender = CommandSender::open(&path).unwrap();
    let (mut sent, mut received) = (0_u64, 0_u64);
    for round in 0..5000_u64 {
        // Batches of 1, 2, 3, 2, 1, ... so the slots in use keep shifting.
        let batch = [1, 2, 3, 2][round as usize % 4];
        for _ in 0..batch {
            sender.send(&membership(sent)).unwrap();
            sent += 1;
        }
        let drain = if round % 2 == 1 { batch + 5 } else { batch };
        for _ in 0..drain {
            match ring.try_recv().unwrap() {
                Some(command) => {
                    assert_eq!(command, membership(received));
                    received += 1;
                }
                None => break,
            }
        }
    }
    assert_eq!(sent, 10_000);
    assert_eq!(received, sent);
}

#[test]
fn a_new_sender_continues_after_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let mut ring = CommandRing::create(&path, 4).unwrap();
    let mut first = CommandSender::open(&path).unwrap();
    first.send(&membership(1)).unwrap();
    first.send(&membership(2)).unwrap();
    assert_eq!(ring.try_recv().unwrap(), Some(membership(1)));
    drop(first);
    // Control restarted: one command still pending.
    let mut second = CommandSender::open(&path).unwrap();
    assert_eq!(second.pending().unwrap(), 1);
    for epoch in 3..=5 {
        second.send(&membership(epoch)).unwrap();
    }
    assert!(matches!(second.send(&membership(6)), Err(SendError::Full)));
    for epoch in 2..=5 {
        assert_eq!(ring.try_recv().unwrap(), Some(membership(epoch)));
    }
    assert_eq!(ring.try_recv().unwrap(), None);
}

#[test]
fn restart_makes_the_sender_stale_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let mut old_ring = CommandRing::create(&path, 4).unwrap();
    let mut sender = CommandSender::open(&path).unwrap();
    assert_eq!(sender.attached_instance(), old_ring.instance());
    assert_eq!(sender.instance().unwrap(), old_ring.instance());
    assert!(!sender.is_stale().unwrap());
    sender.send(&membership(1)).unwrap();

    // The worker restarts and creates its ring again.
    let mut new_ring = CommandRing::create(&path, 4).unwrap();
    assert_ne!(new_ring.instance(), old_ring.instance());
    assert_eq!(sender.instance().unwrap(), new_ring.instance());
    assert_eq!(sender.attached_instance(), old_ring.instance());
    assert!(sender.is_stale().unwrap());
    for _ in 0..3 {
        assert!(matches!(sender.send(&membership(2)), Err(SendError::Stale)));
    }
    // Nothing reached either ring after the restart; the old ring still has
    // the command sent before it.
    assert_eq!(old_ring.try_recv().unwrap(), Some(membership(1)));
    assert_eq!(old_ring.try_recv().unwrap(), None);
    assert_eq!(new_ring.try_recv().unwrap(), None);

    let mut sender = CommandSender::open(&path).unwrap();
    assert!(!sender.is_stale().unwrap());
    assert_eq!(sender.attached_instance(), new_ring.instance());
    sender.send(&membership(3)).unwrap();
    assert_eq!(new_ring.try_recv().unwrap(), Some(membership(3)));

    // A removed ring is stale as well.
    fs::remove_file(&path).unwrap();
    assert!(sender.is_stale().unwrap());
    assert!(matches!(sender.send(&membership(4)), Err(SendError::Stale)));
    let error = sender.instance().unwrap_err();
    assert!(matches!(&error, ChannelError::Io { source, .. }
        if source.kind() == std::io::ErrorKind::NotFound));
    assert_names(&error, &path);
}

#[test]
fn a_command_that_cannot_be_encoded_is_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let mut ring = CommandRing::create(&path, 4).unwrap();
    let mut sender = CommandSender::open(&path).unwrap();
    let mut members = Vec::new();
    for id in 0..=MAX_MEMBERS as u16 {
        if let Command::Membership { members: one, .. } = membership(u64::from(id)) {
            members.push(MemberState { id, ..one[0] });
        }
    }
    let result = sender.send(&Command::Membership {
        epoch: 1,
        digest: 0,
        members,
    });
    assert!(matches!(
        result,
        Err(SendError::Encode(EncodeError::TooManyMembers { count: 65 }))
    ));
    assert_eq!(sender.pending().unwrap(), 0);
    assert_eq!(ring.try_recv().unwrap(), None);
}

#[test]
fn capacity_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    for capacity in [0, MAX_CAPACITY + 1] {
        let error = CommandRing::create(&path, capacity).unwrap_err();
        assert!(
            matches!(error, ChannelError::InvalidCapacity { capacity: c, .. } if c == capacity)
        );
        assert_names(&error, &path);
    }
    assert!(!path.exists());
}

#[test]
fn missing_directory_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent").join("ring");
    let error = CommandRing::create(&path, 4).unwrap_err();
    assert!(matches!(&error, ChannelError::Io { source, .. }
        if source.kind() == std::io::ErrorKind::NotFound));
    assert_names(&error, &path);
}

#[test]
fn files_that_are_not_rings_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    drop(CommandRing::create(&good, 4).unwrap());
    let original = fs::read(&good).unwrap();

    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    };

    // Not a ring at all.
    let garbage: Vec<u8> = (0..original.len()).map(|i| (i * 7 + 3) as u8).collect();
    for path in [
        write("garbage", &garbage),
        write("empty", b""),
        write("short", b"SHO"),
    ] {
        let error = CommandSender::open(&path).unwrap_err();
        assert!(
            matches!(
                error,
                ChannelError::WrongKind {
                    expected: "command ring",
                    ..
                }
            ),
            "{error}"
        );
        assert_names(&error, &path);
    }

    // A stats segment is not a ring.
    let stats = dir.path().join("stats-0");
    drop(StatsWriter::create(&stats, &["a_total"]).unwrap());
    let error = CommandSender::open(&stats).unwrap_err();
    assert!(error
        .to_string()
        .contains("is not a Shoal command ring (it starts with \"SHOALSTS\")"));

    // Another layout version.
    let mut bytes = original.clone();
    bytes[8] = 2;
    let path = write("version", &bytes);
    let error = CommandSender::open(&path).unwrap_err();
    assert!(matches!(
        error,
        ChannelError::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        }
    ));
    assert_names(&error, &path);

    // Truncated or extended.
    for len in [100, original.len() - 1, original.len() + 1] {
        let mut bytes = original.clone();
        bytes.resize(len, 0);
        let path = write("sized", &bytes);
        let error = CommandSender::open(&path).unwrap_err();
        let expected = if len < 256 {
            256
        } else {
            original.len() as u64
        };
        assert!(
            matches!(error, ChannelError::WrongSize { expected: e, found, .. }
                if e == expected && found == len as u64),
            "{error}"
        );
        assert_names(&error, &path);
    }

    // Header fields out of range.
    for (offset, value, reason) in [
        (16, 0_u32, "capacity 0 is out of range 1..=65536"),
        (12, 4096, "slot size 4096, expected 2048"),
        (20, 128, "header size 128, expected 256"),
    ] {
        let mut bytes = original.clone();
        bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        let path = write("header", &bytes);
        let error = CommandSender::open(&path).unwrap_err();
        assert!(
            matches!(&error, ChannelError::BadHeader { reason: r, .. } if r == reason),
            "{error}"
        );
        assert_names(&error, &path);
    }

    // Indices that fail their check.
    let path = write("indices", &original);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all_at(&[0xff; 16], 64)
        .unwrap();
    let error = CommandSender::open(&path).unwrap_err();
    assert!(matches!(error, ChannelError::Corrupt { .. }), "{error}");
    assert_names(&error, &path);

    // A missing file.
    let path = dir.path().join("missing");
    let error = CommandSender::open(&path).unwrap_err();
    assert!(matches!(&error, ChannelError::Io { action: "open", .. }));
    assert_names(&error, &path);
}

//! Producer and consumer on two threads, each with its own file handle:
//! 100k commands through a small ring arrive in order, none lost.

use core::net::Ipv4Addr;
use std::thread;

use shoal_channel::{Command, CommandRing, CommandSender, MemberState, SendError};

const COMMANDS: u64 = 100_000;

fn membership(epoch: u64) -> Command {
    Command::Membership {
        epoch,
        digest: epoch ^ 0x55,
        members: vec![MemberState {
            id: (epoch % 64) as u16,
            addr: Ipv4Addr::from(epoch as u32),
            mac: [2, 0, 0, 0, 0, (epoch % 256) as u8],
            weight: (epoch >> 8) as u32,
            alive: true,
            draining: epoch % 5 == 1,
            load: (epoch % 1000) as f32 / 100.0,
        }],
    }
}

#[test]
fn hundred_thousand_commands_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    let mut ring = CommandRing::create(&path, 64).unwrap();
    let producer_path = path.clone();
    let producer = thread::spawn(move || {
        let mut sender = CommandSender::open(&producer_path).unwrap();
        let mut full = 0_u64;
        for epoch in 0..COMMANDS {
            let command = membership(epoch);
            loop {
                match sender.send(&command) {
                    Ok(()) => break,
                    Err(SendError::Full) => {
                        full += 1;
                        thread::yield_now();
                    }
                    Err(error) => panic!("send {epoch}: {error}"),
                }
            }
        }
        full
    });
    let mut expected = 0;
    while expected < COMMANDS {
        match ring.try_recv().unwrap() {
            Some(command) => {
                assert_eq!(command, membership(expected));
                expected += 1;
            }
            None => thread::yield_now(),
        }
    }
    let full = producer.join().unwrap();
    assert_eq!(ring.try_recv().unwrap(), None);
    println!(
        "{COMMANDS} commands received in order; the producer found the ring full {full} times"
    );
}

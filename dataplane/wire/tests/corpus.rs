//! The checked-in corpus of malformed frames (`corpus/*.bin`, described in
//! `corpus/README.md`): each file must be rejected with exactly the error the
//! README names, at the layer that is malformed.

mod common;

use std::fs;
use std::path::PathBuf;

use shoal_wire::Error;

use common::{walk, Walked};

/// Every corpus file and the error walking it must produce.
const EXPECTED: &[(&str, Error)] = &[
    ("runt.bin", Error::Truncated),
    ("vlan_tag_truncated.bin", Error::Truncated),
    ("qinq_tag_truncated.bin", Error::Truncated),
    ("ipv4_truncated.bin", Error::Truncated),
    ("garbage.bin", Error::BadVersion),
    ("ipv4_ihl_3.bin", Error::BadHeaderLength),
    ("ipv4_ihl_beyond_total.bin", Error::BadHeaderLength),
    ("ipv4_total_len_beyond_frame.bin", Error::BadTotalLength),
    ("ipv4_option_len_0.bin", Error::BadOption),
    ("ipv4_bad_checksum.bin", Error::BadChecksum),
    ("tcp_data_offset_4.bin", Error::BadDataOffset),
    ("tcp_data_offset_beyond_segment.bin", Error::BadDataOffset),
    ("tcp_option_len_0.bin", Error::BadOption),
    ("tcp_option_overrun.bin", Error::BadOption),
    ("tcp_mss_len_3.bin", Error::BadOption),
    ("tcp_bad_checksum.bin", Error::BadChecksum),
    ("udp_len_7.bin", Error::BadLength),
    ("udp_len_beyond_datagram.bin", Error::BadLength),
    ("arp_hlen_8.bin", Error::Unsupported),
    ("arp_truncated.bin", Error::Truncated),
    ("icmp_truncated.bin", Error::Truncated),
    ("icmp_redirect.bin", Error::Unsupported),
    ("ipip_inner_bad_version.bin", Error::BadVersion),
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn read(name: &str) -> Vec<u8> {
    fs::read(corpus_dir().join(name)).unwrap_or_else(|e| panic!("reading corpus/{name}: {e}"))
}

#[test]
fn every_malformed_frame_yields_its_error() {
    for (name, expected) in EXPECTED {
        assert_eq!(walk(&read(name)).err(), Some(*expected), "corpus/{name}");
    }
}

#[test]
fn the_valid_control_frame_parses() {
    let walked = walk(&read("valid_linux_syn.bin")).expect("valid_linux_syn.bin parses");
    let Walked::Tcp(repr, payload_len) = walked else {
        panic!("not TCP: {walked:?}")
    };
    assert_eq!(
        (repr.src_port, repr.dst_port, repr.mss, payload_len),
        (40000, 80, Some(1460), 0)
    );
}

#[test]
fn every_file_is_listed_here_and_in_the_readme() {
    let readme = fs::read_to_string(corpus_dir().join("README.md")).expect("corpus/README.md");
    let mut on_disk: Vec<String> = fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .map(|path| {
            path.file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    listed.push("valid_linux_syn.bin".to_owned());
    listed.sort();
    assert_eq!(on_disk, listed);
    for (name, expected) in EXPECTED {
        let row = readme
            .lines()
            .find(|line| line.contains(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("README.md does not list {name}"));
        assert!(
            row.contains(&format!("`{}`", expected.as_str())),
            "README row for {name}"
        );
    }
}

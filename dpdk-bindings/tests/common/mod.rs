//! Shared helpers for the EAL integration tests: each test binary runs one
//! EAL (DPDK allows one per process) with a unique `--file-prefix`, and a
//! guard removes its runtime directory afterwards, also when the test fails.

#![allow(dead_code)] // Each test binary uses a different subset.
use std::path::PathBuf;

use dpdk_bindings::EalArgs;

/// Removes `/var/run/dpdk/<prefix>` on drop. Create it before `Eal::init` so
/// that it is dropped after the `Eal`.
pub struct PrefixGuard {
    /// The `--file-prefix` value.
    pub prefix: String,
}

impl PrefixGuard {
    /// A guard for `shoal-test-<pid>-<name>`.
    pub fn new(name: &str) -> Self {
        Self {
            prefix: format!("shoal-test-{}-{name}", std::process::id()),
        }
    }

    /// The EAL arguments every test uses: lcore 0, no hugepages, 128 MB,
    /// no PCI, this guard's prefix, plus `vdevs`.
    pub fn eal_args(&self, vdevs: &[&str]) -> Vec<String> {
        let mut args = EalArgs::new()
            .lcores(&[0])
            .no_huge(128)
            .no_pci()
            .file_prefix(self.prefix.clone());
        for vdev in vdevs {
            args = args.vdev(*vdev);
        }
        args.build()
    }

    fn dir(&self) -> PathBuf {
        PathBuf::from("/var/run/dpdk").join(&self.prefix)
    }
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        // Best effort: the directory may not exist if EAL init failed early.
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

/// A test frame of `len` bytes: broadcast destination, a fixed source MAC,
/// Ethernet type 0x88b5 (local experimental), then bytes derived from `seq`.
pub fn frame(seq: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0xc6, 0x12, 0, seq]);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend((0..len.saturating_sub(14)).map(|i| seq.wrapping_mul(31).wrapping_add(i as u8)));
    f
}

//! Replays every checked-in seed (`fuzz/seeds/<target>/`) and every
//! regression input (`fuzz/regressions/<target>/`, the findings of
//! `fuzz/run.sh`, each fixed) through its target on stable Rust: a finding
//! once fixed stays fixed. Also runs each target over a bounded set of
//! deterministic pseudo-random inputs, so a target that panics on common
//! input fails here before anyone fuzzes.
#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::path::Path;

fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn every_target_has_seeds() {
    for (name, _) in shoal_fuzz::TARGETS {
        assert!(
            !inputs("seeds", name).is_empty(),
            "fuzz/seeds/{name}/ is empty: check in a seed corpus"
        );
    }
}

#[test]
fn seeds_and_regressions_pass_their_targets() {
    let mut ran = 0;
    for (name, run) in shoal_fuzz::TARGETS {
        for kind in ["seeds", "regressions"] {
            for (path, bytes) in inputs(kind, name) {
                let result = std::panic::catch_unwind(|| run(&bytes));
                assert!(result.is_ok(), "{name}: {path} fails its target");
                ran += 1;
            }
        }
    }
    assert!(ran >= shoal_fuzz::TARGETS.len());
}

#[test]
fn pseudo_random_inputs_pass_every_target() {
    // splitmix64: deterministic, no dependency.
    let mut state = 0x5EED_u64;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for (name, run) in shoal_fuzz::TARGETS {
        for i in 0..64 {
            let len = (next() % 512) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let result = std::panic::catch_unwind(|| run(&bytes));
            assert!(
                result.is_ok(),
                "{name}: pseudo-random input {i} ({bytes:02x?})"
            );
        }
    }
}

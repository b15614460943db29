//! libFuzzer entry point of the `snapshot` target (`shoal_fuzz::TARGETS`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::snapshot::run(data));

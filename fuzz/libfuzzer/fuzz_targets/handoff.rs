//! libFuzzer entry point of the `handoff` target (`shoal_fuzz::TARGETS`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::handoff::run(data));

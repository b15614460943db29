//! libFuzzer entry point of the `membership` target (`shoal_fuzz::TARGETS`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::membership::run(data));

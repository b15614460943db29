//! libFuzzer entry point of the `response_framing` target (`shoal_fuzz::TARGETS`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::http::framing(data));

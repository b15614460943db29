//! libFuzzer entry point of the `http_request` target (`shoal_fuzz::TARGETS`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_fuzz::http::request(data));

//! Raw FFI: bindgen's output over `csrc/wrapper.h` (the allowlist is in
//! `build.rs`) and the C shim's `shim_*` functions. Private to the crate; only
//! the safe wrapper modules call into it.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks
)]

include!(concat!(env!("OUT_DIR"), "/dpdk.rs"));

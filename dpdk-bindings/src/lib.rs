//! tmp
#![allow(unsafe_code)]
pub mod sys {
    #![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code, missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/dpdk.rs"));
}

//! End-to-end tests of Shoal. This crate holds no product code: its tests
//! (`replay.rs`, and later the lab tests) drive whole binaries and pipelines
//! with generated traffic and assert exact frames, counters and responses.
//! `run.sh` next to it is the project's test command.

#![forbid(unsafe_code)]

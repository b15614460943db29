//! Shoal's configuration: the TOML schema of one server in a cluster.
//!
//! This crate owns the schema (the structs below, `deny_unknown_fields`
//! everywhere), the defaults, loading from a file and the single
//! [`Config::validate`] pass. It does no I/O beyond reading the file it is
//! given and knows nothing about packets; both `shoal-dataplane` and
//! `shoal-control` depend on it.

mod load;
mod locate;
mod mac;
mod schema;
mod validate;

pub use load::{load_file, load_str, ConfigError, Location};
pub use mac::{MacAddr, ParseMacError};
pub use schema::*;
pub use validate::Problem;

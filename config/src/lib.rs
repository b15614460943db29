//! Shoal's configuration: the TOML schema of one server in a cluster.
//!
//! This crate owns the schema (the structs below, `deny_unknown_fields`
//! everywhere), the defaults, loading from a file and the single
//! [`Config::validate`] pass. It does no I/O beyond reading the file it is
//! given and knows nothing about packets; both `shoal-dataplane` and
//! `shoal-control` depend on it.

#![forbid(unsafe_code)]

mod classes;
mod health_url;
mod load;
mod locate;
mod mac;
mod reload;
mod schema;
mod sticky;
mod validate;

pub use classes::*;
pub use health_url::HealthUrl;
pub use load::{load_file, load_str, ConfigError, Location};
pub use mac::{MacAddr, ParseMacError};
pub use reload::{services_digest, services_reloadable};
pub use schema::*;
pub use sticky::*;
pub use validate::Problem;

/// The name a config value has in the TOML file (`"dpr-mac"`, `"maglev"`,
/// `"tcp"`): serde's own rename, so messages, reports and labels can never
/// disagree with what the file says. For unit variants of the schema's
/// enums; anything else gives its TOML rendering.
pub fn name_of<T: serde::Serialize>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(toml::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(e) => format!("<{e}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_file_names() {
        assert_eq!(name_of(&Mode::DprMac), "dpr-mac");
        assert_eq!(name_of(&Algorithm::Maglev), "maglev");
        assert_eq!(name_of(&Backend::Portable), "portable");
        assert_eq!(name_of(&Protocol::Tcp), "tcp");
    }
}

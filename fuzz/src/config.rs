//! Target `config`: loading a config file (`shoal_config::load_str`) and
//! what both processes build from a loaded one (the dataplane's tables,
//! control's summary).
//!
//! Invariants: any text gives a config or an error that names the file,
//! never a panic; a config that loads builds its tables without panicking,
//! and survives a round trip (serialised back to TOML, it loads again to
//! the same config — which also rules out NaN slipping through validation).

use std::path::Path;
use std::sync::Arc;

use shoal_config::load_str;
use shoal_dataplane::pipeline::{Pipeline, Tables};

/// Where the fuzzed text claims to come from.
const ORIGIN: &str = "/etc/shoal/fuzz.toml";

/// The target.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let origin = Path::new(ORIGIN);
    let cfg = match load_str(&text, origin) {
        Ok(cfg) => cfg,
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(ORIGIN),
                "the error names the file: {message}"
            );
            return;
        }
    };
    let again = toml::to_string(&cfg).expect("a loaded config serialises");
    let reloaded = load_str(&again, origin)
        .unwrap_or_else(|e| panic!("a loaded config, serialised, does not load: {e}\n{again}"));
    assert_eq!(reloaded, cfg, "the round trip changes the config");
    let _ = shoal_control::describe(&cfg);
    if let Ok(tables) = Tables::from_config(&cfg, 1) {
        let capacity = 64;
        let timeouts =
            shoal_dataplane::flow::Timeouts::from_config(&cfg.dataplane.flow_table.timeouts);
        let _ = Pipeline::new(Arc::new(tables), capacity, timeouts);
    }
}

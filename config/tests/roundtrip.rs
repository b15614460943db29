//! The schema's `Serialize` and `Deserialize` agree: a loaded config written
//! back to TOML loads as the same value (what `shoal-lab` relies on when it
//! builds configs in code and writes them for the dataplane and control).

use std::path::Path;

use shoal_config::{load_file, load_str, Config, Dispatch, HandoffMode, Mode, State};

/// Serializes `cfg` and loads the text as if it were read from `origin`.
fn round_trip(cfg: &Config, origin: &Path) -> Config {
    let text =
        toml::to_string(cfg).unwrap_or_else(|e| panic!("{}: serialize: {e}", origin.display()));
    load_str(&text, origin).unwrap_or_else(|e| panic!("{e}\n--- text:\n{text}"))
}

#[test]
fn every_example_loads_back_as_itself() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/examples exists") {
        let path = entry.expect("readable directory").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        // Loading makes every relative path absolute, so the text written
        // back names the same files from anywhere.
        let cfg = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            round_trip(&cfg, Path::new("/elsewhere/x.toml")),
            cfg,
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert_eq!(seen, 7, "examples found in {}", dir.display());
}

#[test]
fn every_mode_and_optional_key_round_trips() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/splice.toml");
    let base = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let modes = [
        (Mode::Local, State::Stateful),
        (Mode::DprMac, State::Stateless),
        (Mode::DprMac, State::Stateful),
        (Mode::DprIpip, State::Stateless),
        (Mode::DprIpip, State::Stateful),
        (Mode::Splice, State::Stateful),
    ];
    for (mode, state) in modes {
        for handoff in [HandoffMode::Frequent, HandoffMode::Rare] {
            let mut cfg = base.clone();
            for s in &mut cfg.services {
                s.mode = mode;
                s.state = state;
                s.selection.max_load = (state == State::Stateful).then_some(0.75);
                s.dispatch = (mode == Mode::Splice).then(|| Dispatch {
                    handoff,
                    ..s.dispatch.clone().unwrap_or_default()
                });
            }
            cfg.control.admin_token_file = None;
            cfg.cluster.key_file = None;
            cfg.validate()
                .unwrap_or_else(|p| panic!("{mode:?} {state:?} {handoff:?}: {p:?}"));
            assert_eq!(
                round_trip(&cfg, &path),
                cfg,
                "{mode:?} {state:?} {handoff:?}"
            );
        }
    }
}

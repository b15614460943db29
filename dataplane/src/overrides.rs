//! Member overrides on top of the config (not the membership protocol,
//! which is `shoal-control`'s): per-member weight,
//! drain, liveness and load, from a JSON file an operator (or the lab)
//! writes and the dataplane re-reads on SIGHUP. `shoal-control` pushes the same state
//! over the command channel; this file is how a cluster without it (and the
//! tests) drain a member or report load.
//!
//! ```json
//! {"members": {"srv2": {"draining": true}, "srv1": {"load": 0.9, "weight": 50}}}
//! ```
//! Members not named keep their configured weight, alive, undrained, load 0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use shoal_config::Config;

use crate::pipeline::MemberEntry;

/// Why an overrides file was refused (the previous state stays in force).
#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid membership JSON.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error (with line and column).
        source: serde_json::Error,
    },
    /// A member name that the config does not have.
    #[error("{path}: members.{name}: no such member in the config")]
    UnknownMember {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A load that is not a finite non-negative number.
    #[error("{path}: members.{name}.load: must be a finite number >= 0 (got {load})")]
    BadLoad {
        /// The file.
        path: PathBuf,
        /// The member.
        name: String,
        /// The value.
        load: f64,
    },
}

/// The file's content.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OverridesFile {
    /// Overrides by member name.
    #[serde(default)]
    pub members: BTreeMap<String, MemberOverride>,
}

/// What can be overridden for one member.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemberOverride {
    /// Weight instead of the configured one.
    pub weight: Option<u32>,
    /// Draining: no new connections, existing ones finish.
    pub draining: Option<bool>,
    /// False: the member is dead for selection.
    pub alive: Option<bool>,
    /// Load figure (DPR `max_load`).
    pub load: Option<f64>,
}

/// Reads an overrides file.
pub fn read(path: &Path) -> Result<OverridesFile, OverridesError> {
    let text = std::fs::read_to_string(path).map_err(|source| OverridesError::Io {
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| OverridesError::Parse {
        path: path.into(),
        source,
    })
}

/// The members of `cfg` with `file`'s overrides applied.
pub fn apply(
    cfg: &Config,
    file: &OverridesFile,
    path: &Path,
) -> Result<Vec<MemberEntry>, OverridesError> {
    let mut members: Vec<MemberEntry> = cfg
        .cluster
        .members
        .iter()
        .map(MemberEntry::from_config)
        .collect();
    overlay(cfg, &mut members, file, path)?;
    Ok(members)
}

/// Applies `file`'s overrides on top of `members` (from the config or from
/// control): what an operator forces wins over what was computed.
pub fn overlay(
    cfg: &Config,
    members: &mut [MemberEntry],
    file: &OverridesFile,
    path: &Path,
) -> Result<(), OverridesError> {
    for (name, o) in &file.members {
        let Some(id) = cfg
            .cluster
            .members
            .iter()
            .find(|m| &m.name == name)
            .map(|m| m.id)
        else {
            return Err(OverridesError::UnknownMember {
                path: path.into(),
                name: name.clone(),
            });
        };
        if let Some(load) = o.load {
            if !load.is_finite() || load < 0.0 {
                return Err(OverridesError::BadLoad {
                    path: path.into(),
                    name: name.clone(),
                    load,
                });
            }
        }
        if let Some(m) = members.iter_mut().find(|m| m.id == id) {
            if let Some(w) = o.weight {
                m.weight = w;
            }
            if let Some(d) = o.draining {
                m.draining = d;
            }
            if let Some(a) = o.alive {
                m.alive = a;
            }
            if let Some(l) = o.load {
                m.load = l;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
        shoal_config::load_file(&path).unwrap()
    }

    #[test]
    fn overrides_apply_by_name_and_defaults_stay() {
        let f: OverridesFile = serde_json::from_str(
            r#"{"members": {"srv2": {"draining": true}, "srv1": {"load": 0.9, "weight": 50}}}"#,
        )
        .unwrap();
        let m = apply(&cfg(), &f, Path::new("m.json")).unwrap();
        assert_eq!((m[0].weight, m[0].load, m[0].draining), (50, 0.9, false));
        assert_eq!(
            (m[1].weight, m[1].draining, m[1].effective_weight()),
            (100, true, 0)
        );
        assert_eq!((m[2].weight, m[2].load, m[2].alive), (100, 0.0, true));
    }

    #[test]
    fn bad_files_name_the_problem() {
        let f: OverridesFile = serde_json::from_str(r#"{"members": {"srv9": {}}}"#).unwrap();
        let e = apply(&cfg(), &f, Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "m.json: members.srv9: no such member in the config");
        let f: OverridesFile =
            serde_json::from_str(r#"{"members": {"srv1": {"load": -1}}}"#).unwrap();
        let e = apply(&cfg(), &f, Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("members.srv1.load"), "{e}");
        assert!(
            serde_json::from_str::<OverridesFile>(r#"{"members": {"srv1": {"drain": true}}}"#)
                .is_err()
        );
    }
}

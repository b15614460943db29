//! Loading a config from a file or a string.
//!
//! This module owns the path from text to a validated [`Config`]: TOML parsing
//! into the schema, resolving relative paths against the file's directory,
//! filling the defaults the schema cannot express, running
//! [`Config::validate`], and [`ConfigError`], which names the file, the key,
//! the line and column, and what is wrong. It reads only the file it is given.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::locate::{location_at, KeyIndex};
use crate::validate::Problem;
use crate::{Config, Dispatch, Mode};

/// A position in a config file, 1-based (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a config could not be loaded.
///
/// Each problem displays as one line, `file:line:column: key: reason`
/// (without `line:column:` when the key is not written in the file).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the config file: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The text is not TOML, or does not fit the schema (unknown key, wrong
    /// type, missing required key). Parsing stops at the first such problem.
    #[error("{}", render(.file, std::slice::from_ref(.problem)))]
    Parse {
        /// The file (as given to [`load_file`] or [`load_str`]).
        file: PathBuf,
        /// The problem.
        problem: Problem,
    },
    /// The config parsed but breaks rules of [`Config::validate`]; every
    /// broken rule is listed, one per line.
    #[error("{}", render(.file, .problems))]
    Invalid {
        /// The file (as given to [`load_file`] or [`load_str`]).
        file: PathBuf,
        /// Every problem found, in schema order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The config file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Io { path: file, .. }
            | ConfigError::Parse { file, .. }
            | ConfigError::Invalid { file, .. } => file,
        }
    }

    /// The problems found in the text (none for [`ConfigError::Io`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Parse { problem, .. } => std::slice::from_ref(problem),
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render(file: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, problem) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&file.display().to_string());
        if let Some(location) = problem.location {
            out.push(':');
            out.push_str(&location.to_string());
        }
        out.push_str(": ");
        out.push_str(&problem.to_string());
    }
    out
}

/// Reads, parses and validates the config file at `path`.
///
/// Relative `cluster.key_file`, `control.admin_token_file` and
/// `control.shm_path` become relative to the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    load_str(&text, path)
}

/// Parses and validates config `text` read from `origin`.
///
/// `origin` names the file in errors, and relative paths in the config
/// become relative to its directory. A splice service without a
/// `[services.dispatch]` table gets [`Dispatch::default()`], so after loading
/// `mode == Splice` if and only if `dispatch.is_some()`.
pub fn load_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: origin.to_owned(),
        problem: parse_problem(text, &e),
    })?;
    if let Err(mut problems) = config.validate() {
        if let Some(index) = KeyIndex::new(text) {
            for problem in &mut problems {
                problem.location = index
                    .span_of(&problem.key)
                    .and_then(|span| location_at(text, span.start));
            }
        }
        return Err(ConfigError::Invalid {
            file: origin.to_owned(),
            problems,
        });
    }
    let dir = origin.parent().unwrap_or_else(|| Path::new(""));
    resolve(&mut config.cluster.key_file, dir);
    resolve(&mut config.control.admin_token_file, dir);
    if config.control.shm_path.is_relative() {
        config.control.shm_path = dir.join(&config.control.shm_path);
    }
    for service in &mut config.services {
        if service.mode == Mode::Splice && service.dispatch.is_none() {
            service.dispatch = Some(Dispatch::default());
        }
    }
    Ok(config)
}

fn resolve(path: &mut Option<PathBuf>, dir: &Path) {
    if let Some(p) = path {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    }
}

/// Turns a TOML or serde error into a [`Problem`] naming the key it is about.
fn parse_problem(text: &str, error: &toml::de::Error) -> Problem {
    let message = error.message().trim().replace('\n', "; ");
    let span = error.span();
    let (path, location) = match &span {
        // serde reports a key missing from the root table with an empty span.
        Some(span) if span.is_empty() && message.starts_with("missing field") => {
            (String::new(), None)
        }
        Some(span) => (
            KeyIndex::new(text)
                .and_then(|index| index.path_at(span).map(str::to_owned))
                .unwrap_or_default(),
            location_at(text, span.start),
        ),
        None => (String::new(), None),
    };
    let (key, reason) = if let Some(rest) = message.strip_prefix("missing field ") {
        let name = rest.trim_matches('`');
        let key = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        let reason = if key == "cluster" {
            "the [cluster] section is missing (every config needs [cluster] with vips, mac, \
             local_member and [[cluster.members]])"
                .to_owned()
        } else {
            format!("required key `{name}` is missing")
        };
        (key, reason)
    } else if let Some(rest) = message.strip_prefix("unknown field ") {
        (path, format!("unknown key {rest}"))
    } else if path.is_empty() {
        (path, format!("invalid TOML: {message}"))
    } else {
        (path, message)
    };
    Problem {
        key,
        location,
        reason,
    }
}

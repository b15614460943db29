//! The lab: a Shoal cluster built from network namespaces on one machine.
//!
//! One hub namespace holds a bridge that floods every frame to every port
//! (a broadcast segment); a client namespace and N server namespaces hang
//! off it. Each server runs `shoal-dataplane` on its veth (wire port) with a
//! TAP toward its own kernel, `shoal-control`, and nginx bound to the VIP
//! and to the server's own address. `deploy/lab/README.md` describes it.
//!
//! [`Lab::up`], [`Lab::down`], [`Lab::status`] and the per-server commands
//! are what the `shoal-lab` binary (and `deploy/lab/lab`, which runs it) and
//! the end-to-end tests (`tests/lab.rs`) call. Every server's config is a
//! typed [`shoal_config::Config`] ([`render`]), validated before it is
//! written.
//!
//! Rules kept here: traffic only inside namespaces the lab creates,
//! addresses in 198.18.0.0/15, every wait bounded, and `down` stops exactly
//! what `up` started (by recorded PID and namespace identity, never by name
//! pattern).

pub mod bird;
mod lab;
pub mod netns;
pub mod options;
mod prereq;
pub mod process;
pub mod render;
mod server;
mod status;
pub mod topology;
pub mod www;

use std::io;
use std::path::{Path, PathBuf};

pub use lab::{Lab, LabState, Part};
pub use options::{Inject, LabBackend, UpOptions};
pub use status::{NodeStatus, Proc, Status};
pub use topology::{Node, Server};

/// Why a lab command failed; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Namespaces need root.
    #[error("needs root (network namespaces); run it with sudo")]
    NotRoot,
    /// A bad option or argument.
    #[error("{0}")]
    Usage(String),
    /// No lab is up (no state in the run directory).
    #[error("no lab is up ('lab up' first)")]
    NotUp,
    /// The lab is in a state the command cannot work from.
    #[error("{0}")]
    State(String),
    /// A file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A program could not be started.
    #[error("could not run {what}: {source}")]
    Spawn {
        /// The command.
        what: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A command failed.
    #[error("{command} failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        output: String,
    },
    /// A server's config could not be built.
    #[error(transparent)]
    Render(#[from] render::RenderError),
    /// A process of a server did not come up.
    #[error("{server}: {what}{}", tail_block(.log_tail))]
    Start {
        /// The server.
        server: Server,
        /// What did not happen.
        what: String,
        /// The last lines of its log.
        log_tail: String,
    },
}

fn tail_block(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last lines of its log:\n{tail}")
    }
}

impl LabError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: io::Error) -> LabError {
        LabError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Progress and warnings, on stderr (stdout is for what commands print).
pub fn log(msg: &str) {
    eprintln!("lab: {msg}");
}

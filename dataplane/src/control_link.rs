//! The dataplane's end of the control channel (`shoal-channel`): it creates
//! worker 0's command ring and stats segment in `control.shm_path`, applies
//! the commands `shoal-control` sends (membership epochs with weights, drain,
//! liveness and load) by swapping in new [`Tables`] between bursts, and
//! publishes the worker's counters for control's exporter and load reports.
//!
//! Polled from the worker loop about once a millisecond (one `pread`), stats
//! written a few times a second (one `pwrite`): never per packet. When
//! control is not running the ring stays empty and the dataplane keeps its
//! last tables; a restarted control resends its full state.

use std::path::Path;

use shoal_channel::{
    command_ring_path, stats_path, ChannelError, Command, CommandRing, StatsWriter,
};

use crate::counters::{Counter, Layer};
use crate::flow::FlowState;
use crate::pipeline::{MemberEntry, Pipeline, Tables};
use crate::wire::{self, EthernetAddress};

/// Commands in the ring before control gets `Full`.
const RING_CAPACITY: usize = 64;

/// What applying the pending commands produced.
#[derive(Debug)]
pub enum Applied {
    /// Nothing new.
    Nothing,
    /// A new membership (epoch and members) to build tables from.
    Members(u64, Vec<MemberEntry>),
    /// Control asked the dataplane to stop.
    Shutdown,
}

/// Worker 0's channel to control.
#[derive(Debug)]
pub struct ControlLink {
    ring: CommandRing,
    stats: StatsWriter,
    values: Vec<u64>,
    members: Vec<MemberEntry>,
    epoch: u64,
    /// Polls that received frames.
    pub polls_busy: u64,
    /// Polls that received nothing.
    pub polls_idle: u64,
    /// Commands that could not be decoded or applied.
    pub bad_commands: u64,
}

/// The names of the values in the stats segment, in order: every counter,
/// the flow table by state, poll counts, channel errors, then every
/// malformed cell as `malformed_<layer>_<reason>`.
pub fn stat_names() -> Vec<String> {
    let mut names: Vec<String> = Counter::ALL.iter().map(|c| c.name().to_owned()).collect();
    for s in [
        "flows_live",
        "flows_syn",
        "flows_established",
        "flows_closing",
        "flows_tombstone",
    ] {
        names.push(s.to_owned());
    }
    for s in ["polls_busy", "polls_idle", "channel_bad_commands"] {
        names.push(s.to_owned());
    }
    for layer in Layer::ALL {
        for err in wire::Error::ALL {
            names.push(format!("malformed_{}_{}", layer.name(), err.as_str()));
        }
    }
    names
}

impl ControlLink {
    /// Creates the ring and the stats segment of worker 0 under `dir`
    /// (created if missing), starting from `tables`' membership.
    pub fn open(dir: &Path, tables: &Tables) -> Result<ControlLink, ChannelError> {
        std::fs::create_dir_all(dir).map_err(|source| ChannelError::Io {
            path: dir.to_path_buf(),
            action: "create the channel directory",
            source,
        })?;
        let names = stat_names();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let stats = StatsWriter::create(stats_path(dir, 0), &refs)?;
        let ring = CommandRing::create(command_ring_path(dir, 0), RING_CAPACITY)?;
        Ok(ControlLink {
            ring,
            stats,
            values: vec![0; names.len()],
            members: tables.members.clone(),
            epoch: tables.epoch,
            polls_busy: 0,
            polls_idle: 0,
            bad_commands: 0,
        })
    }

    /// Applies every pending command; returns the resulting membership if
    /// it changed.
    pub fn apply_commands(&mut self) -> Applied {
        let mut changed = false;
        loop {
            match self.ring.try_recv() {
                Ok(None) => break,
                Ok(Some(Command::Shutdown)) => return Applied::Shutdown,
                Ok(Some(cmd)) => changed |= self.apply(cmd),
                Err(e) => {
                    self.bad_commands += 1;
                    if self.bad_commands == 1 {
                        eprintln!("shoal-dataplane: bad command from control (counted): {e}");
                    }
                    break;
                }
            }
        }
        if !changed {
            return Applied::Nothing;
        }
        Applied::Members(self.epoch, self.members.clone())
    }

    fn apply(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Membership { epoch, members } => {
                self.epoch = epoch;
                for m in &mut self.members {
                    // Configured members control does not list are not alive.
                    m.alive = false;
                }
                for s in members {
                    match self.members.iter_mut().find(|m| m.id == s.id) {
                        Some(m) => {
                            m.addr = s.addr;
                            m.mac = EthernetAddress(s.mac);
                            m.weight = s.weight;
                            m.alive = s.alive;
                            m.draining = s.draining;
                            m.load = f64::from(s.load);
                        }
                        None => self.bad_commands += 1,
                    }
                }
                true
            }
            Command::Drain { member, draining } => self.update(member, |m| m.draining = draining),
            Command::Weight { member, weight } => self.update(member, |m| m.weight = weight),
            Command::Load { member, load } => self.update(member, |m| m.load = f64::from(load)),
            Command::Shutdown => false,
        }
    }

    fn update(&mut self, id: u16, f: impl FnOnce(&mut MemberEntry)) -> bool {
        if let Some(m) = self.members.iter_mut().find(|m| m.id == id) {
            f(m);
            true
        } else {
            self.bad_commands += 1;
            false
        }
    }

    /// Publishes the pipeline's counters (one positioned write).
    pub fn write_stats(&mut self, pipeline: &Pipeline) {
        let c = pipeline.counters();
        let flows = pipeline.flows();
        let by_state = flows.count_by_state();
        let mut i = 0;
        for &counter in Counter::ALL {
            self.values[i] = c.get(counter);
            i += 1;
        }
        let gauges = [
            flows.len() as u64,
            by_state[FlowState::Syn as usize] as u64,
            by_state[FlowState::Established as usize] as u64,
            by_state[FlowState::Closing as usize] as u64,
            by_state[FlowState::Tombstone as usize] as u64,
            self.polls_busy,
            self.polls_idle,
            self.bad_commands,
        ];
        for g in gauges {
            self.values[i] = g;
            i += 1;
        }
        for layer in Layer::ALL {
            for err in wire::Error::ALL {
                self.values[i] = c.get_malformed(layer, err);
                i += 1;
            }
        }
        if let Err(e) = self.stats.write(&self.values) {
            self.bad_commands += 1;
            if self.bad_commands == 1 {
                eprintln!("shoal-dataplane: cannot write stats segment: {e}");
            }
        }
    }
}

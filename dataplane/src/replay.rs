//! `shoal-dataplane replay`: run a capture through the real pipeline.
//!
//! Frames of the input capture are received on the wire port (and, with a
//! kernel-side capture, frames of that one on the kernel port, merged by
//! timestamp), one poll per frame at the frame's timestamp, through the
//! in-memory backend. What the worker transmits goes to the output captures
//! with the timestamp of the frame that caused it. The summary holds every
//! counter. Operators use it to try a config on recorded traffic; tests use
//! it with generated captures.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;
use serde::Serialize;
use shoal_config::Config;

use crate::counters::Snapshot;
use crate::flow::{FlowState, Timeouts};
use crate::io::memory::MemoryIo;
use crate::io::{Frame, PortId};
use crate::pipeline::{Pipeline, Tables, TablesError, KERNEL, WIRE};
use crate::worker::Worker;
use shoal_wire::time::Instant;

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A capture could not be opened or created.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A capture could not be read or written as pcap.
    #[error("{path}: not a readable/writable pcap file: {source}")]
    Pcap {
        /// The file.
        path: PathBuf,
        /// The error.
        source: pcap_file::PcapError,
    },
    /// The input capture is not Ethernet.
    #[error("{path}: link type {link:?} is not Ethernet (capture on the NIC, not on 'any')")]
    LinkType {
        /// The file.
        path: PathBuf,
        /// The capture's link type.
        link: DataLink,
    },
    /// The config cannot run in this build.
    #[error(transparent)]
    Tables(#[from] TablesError),
}

/// Where a replay reads and writes.
#[derive(Debug, Clone)]
pub struct ReplayFiles {
    /// Capture received on the wire port.
    pub wire_in: PathBuf,
    /// Capture of frames the local kernel sent (received on the kernel port).
    pub kernel_in: Option<PathBuf>,
    /// Frames transmitted on the wire port.
    pub wire_out: PathBuf,
    /// Frames delivered to the local kernel.
    pub kernel_out: Option<PathBuf>,
}

/// Frame counts of a replay per port.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PortFrames {
    /// Wire port.
    pub wire: u64,
    /// Kernel port.
    pub kernel: u64,
}

/// Flow-table figures at the end of a replay.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FlowSummary {
    /// Live flows.
    pub live: usize,
    /// Table capacity.
    pub capacity: usize,
    /// Live flows per state.
    pub syn: usize,
    /// Established flows.
    pub established: usize,
    /// Closing flows.
    pub closing: usize,
    /// Tombstones.
    pub tombstone: usize,
    /// Flows created during the replay.
    pub inserted: u64,
    /// Flows that timed out.
    pub expired: u64,
    /// Live flows evicted because the table was full.
    pub evicted: u64,
    /// New flows refused because the table was full and nothing was evictable.
    pub rejected: u64,
}

/// The JSON summary `replay` prints.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Frames read from the input captures.
    pub frames_in: PortFrames,
    /// Frames written to the output captures (transmitted).
    pub frames_out: PortFrames,
    /// Flow table at the end.
    pub flows: FlowSummary,
    /// Every counter, and malformed frames by layer and reason.
    #[serde(flatten)]
    pub counters: Snapshot,
}

struct Input {
    path: PathBuf,
    reader: PcapReader<BufReader<File>>,
    next: Option<(Duration, Vec<u8>)>,
}

impl Input {
    fn open(path: &Path) -> Result<(Input, PcapHeader), ReplayError> {
        let file = File::open(path).map_err(|source| ReplayError::Io {
            path: path.into(),
            source,
        })?;
        let reader = PcapReader::new(BufReader::new(file)).map_err(|source| ReplayError::Pcap {
            path: path.into(),
            source,
        })?;
        let header = reader.header();
        if header.datalink != DataLink::ETHERNET {
            return Err(ReplayError::LinkType {
                path: path.into(),
                link: header.datalink,
            });
        }
        let mut input = Input {
            path: path.into(),
            reader,
            next: None,
        };
        input.advance()?;
        Ok((input, header))
    }

    fn advance(&mut self) -> Result<(), ReplayError> {
        self.next = match self.reader.next_packet() {
            None => None,
            Some(Ok(p)) => Some((p.timestamp, p.data.into_owned())),
            Some(Err(source)) => {
                return Err(ReplayError::Pcap {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        Ok(())
    }
}

struct Output {
    path: PathBuf,
    writer: PcapWriter<BufWriter<File>>,
}

impl Output {
    fn create(path: &Path, like: PcapHeader) -> Result<Output, ReplayError> {
        let file = File::create(path).map_err(|source| ReplayError::Io {
            path: path.into(),
            source,
        })?;
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            snaplen: 65_535,
            ..like
        };
        let writer = PcapWriter::with_header(BufWriter::new(file), header).map_err(|source| {
            ReplayError::Pcap {
                path: path.into(),
                source,
            }
        })?;
        Ok(Output {
            path: path.into(),
            writer,
        })
    }

    fn write(&mut self, ts: Duration, data: &[u8]) -> Result<(), ReplayError> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.writer
            .write_packet(&PcapPacket::new(ts, len, data))
            .map(|_| ())
            .map_err(|source| ReplayError::Pcap {
                path: self.path.clone(),
                source,
            })
    }
}

/// Runs the captures in `files` through a pipeline built from `cfg` (the
/// config's backend setting is ignored: replay always uses memory ports).
pub fn replay(cfg: &Config, files: &ReplayFiles) -> Result<Summary, ReplayError> {
    let tables = Arc::new(Tables::from_config(cfg, 1)?);
    let capacity = cfg.dataplane.flow_table.capacity as usize;
    let pipeline = Pipeline::new(
        tables,
        capacity,
        Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    let mut worker = Worker::new(
        MemoryIo::new(2),
        pipeline,
        usize::from(cfg.dataplane.burst_size),
    );

    let (mut wire_in, header) = Input::open(&files.wire_in)?;
    let mut kernel_in = match &files.kernel_in {
        Some(p) => Some(Input::open(p)?.0),
        None => None,
    };
    let mut wire_out = Output::create(&files.wire_out, header)?;
    let mut kernel_out = match &files.kernel_out {
        Some(p) => Some(Output::create(p, header)?),
        None => None,
    };
    let mut summary_in = PortFrames::default();
    let mut summary_out = PortFrames::default();

    loop {
        // Earliest frame first; the wire wins ties.
        let port: PortId = match (
            &wire_in.next,
            kernel_in.as_ref().and_then(|k| k.next.as_ref()),
        ) {
            (None, None) => break,
            (Some(_), None) => WIRE,
            (None, Some(_)) => KERNEL,
            (Some((tw, _)), Some((tk, _))) => {
                if tk < tw {
                    KERNEL
                } else {
                    WIRE
                }
            }
        };
        let input = if port == WIRE {
            &mut wire_in
        } else {
            kernel_in.as_mut().expect("kernel input present")
        };
        let Some((ts, data)) = input.next.take() else {
            break;
        };
        input.advance()?;
        if port == WIRE {
            summary_in.wire += 1;
        } else {
            summary_in.kernel += 1;
        }
        worker.io_mut().inject(port, &data);
        let now = Instant::from_nanos(u64::try_from(ts.as_nanos()).unwrap_or(u64::MAX));
        worker.poll(now);
        for frame in worker.io_mut().take_tx(WIRE) {
            wire_out.write(ts, frame.bytes())?;
            summary_out.wire += 1;
        }
        for frame in worker.io_mut().take_tx(KERNEL) {
            if let Some(out) = kernel_out.as_mut() {
                out.write(ts, frame.bytes())?;
            }
            summary_out.kernel += 1;
        }
    }

    let p = worker.pipeline();
    let by_state = p.flows().count_by_state();
    let stats = p.flows().stats();
    Ok(Summary {
        frames_in: summary_in,
        frames_out: summary_out,
        flows: FlowSummary {
            live: p.flows().len(),
            capacity: p.flows().capacity(),
            syn: by_state[FlowState::Syn as usize],
            established: by_state[FlowState::Established as usize],
            closing: by_state[FlowState::Closing as usize],
            tombstone: by_state[FlowState::Tombstone as usize],
            inserted: stats.inserts,
            expired: stats.expired_total(),
            evicted: stats.evicted_total(),
            rejected: stats.rejected_full,
        },
        counters: p.counters().snapshot(),
    })
}

//! Ethernet ports (`rte_ethdev`): configuration with optional symmetric RSS,
//! start/stop, link state, counters, and the RX/TX bursts.
//!
//! A port is owned by one [`EthPort`]; each worker claims its queue index as
//! a [`PortQueue`] (RX queue *i* and TX queue *i*) and bursts on it without
//! locks. This module does not parse or build packets.

use std::ffi::{c_char, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::DpdkError;
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;
use crate::sys;

/// The symmetric RSS key (0x6d5a repeated): both directions of a TCP/UDP flow
/// hash to the same queue, so one worker sees the whole flow.
const SYMMETRIC_RSS_KEY_PAIR: [u8; 2] = [0x6d, 0x5a];

/// Hash functions requested when RSS is enabled (masked with what the PMD
/// supports): IPv4/IPv6 addresses, TCP and UDP ports.
const RSS_HASH_FUNCTIONS: u64 =
    sys::RTE_ETH_RSS_IP as u64 | sys::RTE_ETH_RSS_TCP as u64 | sys::RTE_ETH_RSS_UDP as u64;

/// Entries per `rte_eth_rss_reta_entry64` group.
const GROUP: usize = 64;

/// Ports owned by a live `EthPort` in this process (bit = port id).
static PORTS_IN_USE: AtomicU64 = AtomicU64::new(0);

/// How to set up a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of RX queues (one per worker).
    pub rx_queues: u16,
    /// Number of TX queues (one per worker).
    pub tx_queues: u16,
    /// RX descriptors per queue (rounded to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (rounded to the device's limits).
    pub tx_desc: u16,
    /// Ask for RSS with the symmetric key. Enabled only when the PMD
    /// advertises RSS hash functions; see [`EthPort::rss_enabled`].
    pub rss: bool,
}

impl Default for PortConfig {
    /// One RX and one TX queue, 1024 descriptors each, no RSS.
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: false,
        }
    }
}

/// Link state of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s; 0 when unknown or down.
    pub speed_mbps: u32,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because RX queues were full.
    pub imissed: u64,
    /// Erroneous packets received.
    pub ierrors: u64,
    /// Packets that failed to send.
    pub oerrors: u64,
    /// RX buffer allocation failures (pool exhausted).
    pub rx_nombuf: u64,
}

/// A configured Ethernet port, stopped and closed on drop.
///
/// `'p` borrows the pool its RX queues allocate from. Single-threaded code
/// can burst directly ([`EthPort::rx_burst`], [`EthPort::tx_burst`]);
/// workers on several threads each claim a [`PortQueue`].
#[derive(Debug)]
pub struct EthPort<'p> {
    port_id: u16,
    rx_queues: u16,
    tx_queues: u16,
    rss_enabled: bool,
    started: bool,
    claimed: Box<[AtomicBool]>,
    _pool: &'p Mempool,
    /// Invariant in `'p`: TX accepts buffers that outlive `'p`, so `'p` must
    /// not be shortened by coercion.
    _invariant: PhantomData<fn(&'p ()) -> &'p ()>,
}

impl<'p> EthPort<'p> {
    /// Configures port `port_id` with `config`; RX queues take buffers from
    /// `pool`. The port is not started (see [`EthPort::start`]).
    pub fn configure(
        port_id: u16,
        config: PortConfig,
        pool: &'p Mempool,
    ) -> Result<EthPort<'p>, DpdkError> {
        // pool holds an Eal handle: the EAL is alive for 'p.
        // SAFETY: the EAL is initialised; the call only checks the port table.
        if unsafe { sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(DpdkError::from_code(
                format!("rte_eth_dev_is_valid_port(port {port_id})"),
                libc_errno::ENODEV,
            ));
        }
        let bit = 1u64 << port_id; // port ids are < RTE_MAX_ETHPORTS (32)
        if PORTS_IN_USE.fetch_or(bit, Ordering::AcqRel) & bit != 0 {
            return Err(DpdkError::PortInUse { port: port_id });
        }
        let claim = PortClaim { bit };
        let info = dev_info(port_id)?;
        let invalid = |reason: String| DpdkError::InvalidArgument {
            call: format!("EthPort::configure(port {port_id})"),
            reason,
        };
        if config.rx_queues == 0 || config.rx_queues > info.max_rx_queues {
            return Err(invalid(format!(
                "rx_queues = {} but the device supports 1..={}",
                config.rx_queues, info.max_rx_queues
            )));
        }
        if config.tx_queues == 0 || config.tx_queues > info.max_tx_queues {
            return Err(invalid(format!(
                "tx_queues = {} but the device supports 1..={}",
                config.tx_queues, info.max_tx_queues
            )));
        }

        // SAFETY: rte_eth_conf is a plain C struct for which all-zero is the
        // documented default configuration.
        let mut conf: sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        let rss_hf = if config.rss {
            RSS_HASH_FUNCTIONS & info.flow_type_rss_offloads
        } else {
            0
        };
        let mut rss_key: Vec<u8> = SYMMETRIC_RSS_KEY_PAIR
            .iter()
            .copied()
            .cycle()
            .take(usize::from(info.hash_key_size))
            .collect();
        if rss_hf != 0 {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if !rss_key.is_empty() {
                conf.rx_adv_conf.rss_conf.rss_key = rss_key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size;
            }
        }
        // SAFETY: conf is a valid configuration; rss_key (if referenced)
        // outlives the call and has hash_key_size bytes as ethdev requires;
        // DPDK copies everything it keeps.
        let rc = unsafe {
            sys::rte_eth_dev_configure(port_id, config.rx_queues, config.tx_queues, &conf)
        };
        check(rc, || format!("rte_eth_dev_configure(port {port_id})"))?;

        let (mut rx_desc, mut tx_desc) = (config.rx_desc, config.tx_desc);
        // SAFETY: the port is configured; both pointers are to live u16s.
        let rc =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_desc, &mut tx_desc) };
        check(rc, || {
            format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {port_id})")
        })?;
        // SAFETY: the port id is valid.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let socket = u32::try_from(socket).unwrap_or(sys::SOCKET_ID_ANY as u32);
        for queue in 0..config.rx_queues {
            // SAFETY: the port is configured with rx_queues queues; NULL
            // rx_conf selects the PMD defaults; the pool outlives the port
            // ('p), so buffers the queue allocates stay valid.
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port_id,
                    queue,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(rc, || {
                format!("rte_eth_rx_queue_setup(port {port_id}, queue {queue}, {rx_desc} desc)")
            })?;
        }
        for queue in 0..config.tx_queues {
            // SAFETY: the port is configured with tx_queues queues; NULL
            // tx_conf selects the PMD defaults.
            let rc = unsafe {
                sys::rte_eth_tx_queue_setup(port_id, queue, tx_desc, socket, std::ptr::null())
            };
            check(rc, || {
                format!("rte_eth_tx_queue_setup(port {port_id}, queue {queue}, {tx_desc} desc)")
            })?;
        }
        std::mem::forget(claim); // The EthPort now owns the claim bit.
        let queues = config.rx_queues.max(config.tx_queues);
        Ok(EthPort {
            port_id,
            rx_queues: config.rx_queues,
            tx_queues: config.tx_queues,
            rss_enabled: rss_hf != 0,
            started: false,
            claimed: (0..queues).map(|_| AtomicBool::new(false)).collect(),
            _pool: pool,
            _invariant: PhantomData,
        })
    }

    /// The port id of the vdev or device called `name` (e.g. `net_ring0`).
    pub fn by_name(name: &str) -> Result<u16, DpdkError> {
        let call = || format!("rte_eth_dev_get_port_by_name(\"{name}\")");
        let _eal = crate::eal::Eal::current("EthPort::by_name")?;
        let c_name = CString::new(name).map_err(|_| DpdkError::InvalidArgument {
            call: call(),
            reason: "the device name contains a NUL byte".to_owned(),
        })?;
        let mut port_id = 0u16;
        // SAFETY: the EAL is alive (_eal); c_name is a valid C string and
        // port_id a live u16 the call writes on success.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut port_id) };
        check(rc, call)?;
        Ok(port_id)
    }

    /// Number of usable ports; 0 when the EAL is not initialised.
    pub fn count_avail() -> u16 {
        match crate::eal::Eal::current("EthPort::count_avail") {
            // SAFETY: the EAL is alive (the handle); the call reads the port table.
            Ok(_eal) => unsafe { sys::rte_eth_dev_count_avail() },
            Err(_) => 0,
        }
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// Number of RX queues.
    pub fn rx_queues(&self) -> u16 {
        self.rx_queues
    }

    /// Number of TX queues.
    pub fn tx_queues(&self) -> u16 {
        self.tx_queues
    }

    /// `true` when RSS was requested and the PMD supports it. When `false`
    /// and several queues are used, flows must be spread in software.
    pub fn rss_enabled(&self) -> bool {
        self.rss_enabled
    }

    /// Starts the port (idempotent).
    pub fn start(&mut self) -> Result<(), DpdkError> {
        if self.started {
            return Ok(());
        }
        // SAFETY: the port is configured with all queues set up.
        let rc = unsafe { sys::rte_eth_dev_start(self.port_id) };
        check(rc, || format!("rte_eth_dev_start(port {})", self.port_id))?;
        self.started = true;
        Ok(())
    }

    /// Stops the port (idempotent). No queue is claimed (`&mut self`), so no
    /// burst runs concurrently.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        if !self.started {
            return Ok(());
        }
        // SAFETY: the port is started and no burst is running (&mut self).
        let rc = unsafe { sys::rte_eth_dev_stop(self.port_id) };
        check(rc, || format!("rte_eth_dev_stop(port {})", self.port_id))?;
        self.started = false;
        Ok(())
    }

    /// Link state without waiting for auto-negotiation.
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        // SAFETY: rte_eth_link is a plain C struct; all-zero is valid.
        let mut link: sys::rte_eth_link = unsafe { std::mem::zeroed() };
        // SAFETY: the port is valid; link is a live struct the call fills.
        let rc = unsafe { sys::rte_eth_link_get_nowait(self.port_id, &mut link) };
        check(rc, || {
            format!("rte_eth_link_get_nowait(port {})", self.port_id)
        })?;
        let up = u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP;
        let speed_mbps = if up && link.link_speed != sys::RTE_ETH_SPEED_NUM_UNKNOWN {
            link.link_speed
        } else {
            0
        };
        Ok(LinkStatus { up, speed_mbps })
    }

    /// The port's basic counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        // SAFETY: rte_eth_stats is a plain C struct; all-zero is valid.
        let mut s: sys::rte_eth_stats = unsafe { std::mem::zeroed() };
        // SAFETY: the port is valid; s is a live struct the call fills.
        let rc = unsafe { sys::rte_eth_stats_get(self.port_id, &mut s) };
        check(rc, || format!("rte_eth_stats_get(port {})", self.port_id))?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets the basic counters to zero.
    pub fn reset_stats(&mut self) -> Result<(), DpdkError> {
        // SAFETY: the port is valid.
        let rc = unsafe { sys::rte_eth_stats_reset(self.port_id) };
        check(rc, || format!("rte_eth_stats_reset(port {})", self.port_id))
    }

    /// The PMD's extended counters as `(name, value)`, in the PMD's order.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        let port = self.port_id;
        let names_call = || format!("rte_eth_xstats_get_names(port {port})");
        // SAFETY: the port is valid; a NULL array with size 0 asks for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(port, std::ptr::null_mut(), 0) };
        let n = usize::try_from(n).map_err(|_| DpdkError::from_code(names_call(), n))?;
        let mut names = vec![sys::rte_eth_xstat_name { name: [0; 64] }; n];
        // SAFETY: names has n entries, as passed.
        let got = unsafe { sys::rte_eth_xstats_get_names(port, names.as_mut_ptr(), n as u32) };
        let got = usize::try_from(got).map_err(|_| DpdkError::from_code(names_call(), got))?;
        names.truncate(got);
        let mut values = vec![sys::rte_eth_xstat { id: 0, value: 0 }; names.len()];
        // SAFETY: values has names.len() entries, as passed.
        let got =
            unsafe { sys::rte_eth_xstats_get(port, values.as_mut_ptr(), values.len() as u32) };
        let got = usize::try_from(got)
            .map_err(|_| DpdkError::from_code(format!("rte_eth_xstats_get(port {port})"), got))?;
        values.truncate(got);
        Ok(values
            .iter()
            .filter_map(|v| {
                let name = names.get(usize::try_from(v.id).ok()?)?;
                Some((c_name(&name.name), v.value))
            })
            .collect())
    }

    /// The port's MAC address.
    pub fn mac_addr(&self) -> Result<[u8; 6], DpdkError> {
        let mut mac = sys::rte_ether_addr { addr_bytes: [0; 6] };
        // SAFETY: the port is valid; mac is a live struct the call fills.
        let rc = unsafe { sys::rte_eth_macaddr_get(self.port_id, &mut mac) };
        check(rc, || format!("rte_eth_macaddr_get(port {})", self.port_id))?;
        Ok(mac.addr_bytes)
    }

    /// Turns promiscuous mode on or off.
    pub fn promiscuous(&mut self, on: bool) -> Result<(), DpdkError> {
        // SAFETY: the port is valid.
        let rc = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.port_id)
            } else {
                sys::rte_eth_promiscuous_disable(self.port_id)
            }
        };
        check(rc, || {
            let what = if on { "enable" } else { "disable" };
            format!("rte_eth_promiscuous_{what}(port {})", self.port_id)
        })
    }

    /// Programs the port's RSS redirection table: entry `i` sends to queue
    /// `queue(i)` (for every entry of the device's table, whose size is
    /// returned). An error when the device has no programmable table (every
    /// vdev): the caller steers in software then.
    pub fn set_reta(&mut self, queue: impl Fn(usize) -> u16) -> Result<usize, DpdkError> {
        let info = dev_info(self.port_id)?;
        let size = usize::from(info.reta_size);
        if size == 0 || size % GROUP != 0 {
            return Err(DpdkError::from_code(
                format!(
                    "rte_eth_dev_rss_reta_update(port {}): redirection table of {size} entries",
                    self.port_id
                ),
                95, // EOPNOTSUPP
            ));
        }
        let mut groups: Vec<sys::rte_eth_rss_reta_entry64> = (0..size / GROUP)
            .map(|g| {
                let mut e = sys::rte_eth_rss_reta_entry64 {
                    mask: u64::MAX,
                    reta: [0; GROUP],
                };
                for (j, slot) in e.reta.iter_mut().enumerate() {
                    *slot = queue(g * GROUP + j);
                }
                e
            })
            .collect();
        // SAFETY: the port is valid and owned by self; `groups` holds
        // size / 64 initialised entries, the count the call reads for
        // `size` entries; it only reads them.
        let rc = unsafe {
            sys::rte_eth_dev_rss_reta_update(self.port_id, groups.as_mut_ptr(), info.reta_size)
        };
        check(rc, || {
            format!(
                "rte_eth_dev_rss_reta_update(port {}, {size} entries)",
                self.port_id
            )
        })?;
        Ok(size)
    }

    /// Claims queue index `queue` (RX queue and TX queue `queue`, where they
    /// exist) for one worker; released when the [`PortQueue`] is dropped.
    pub fn queue(&self, queue: u16) -> Result<PortQueue<'_, 'p>, DpdkError> {
        let flag =
            self.claimed
                .get(usize::from(queue))
                .ok_or_else(|| DpdkError::InvalidArgument {
                    call: format!("EthPort::queue(port {}, queue {queue})", self.port_id),
                    reason: format!(
                        "the port has {} RX and {} TX queues",
                        self.rx_queues, self.tx_queues
                    ),
                })?;
        if flag.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::QueueInUse {
                port: self.port_id,
                queue,
            });
        }
        Ok(PortQueue {
            port: self,
            queue,
            _not_sync: PhantomData,
        })
    }

    /// Receives up to the spare capacity of `out` (at most 65535) packets
    /// from RX queue `queue`, appending them; returns how many arrived.
    /// Returns 0 for a queue index the port does not have.
    pub fn rx_burst(&mut self, queue: u16, out: &mut Vec<Mbuf<'p>>) -> usize {
        if queue >= self.rx_queues {
            return 0;
        }
        // Exclusive access to every queue: &mut self means no PortQueue exists.
        rx_burst(self.port_id, queue, out)
    }

    /// Sends `pkts` on TX queue `queue`: the sent buffers (a prefix) are
    /// removed from `pkts` and now belong to the PMD; unsent ones stay, in
    /// order, for the caller to retry or drop. Returns how many were sent.
    /// Returns 0 for a queue index the port does not have.
    pub fn tx_burst<'m: 'p>(&mut self, queue: u16, pkts: &mut Vec<Mbuf<'m>>) -> usize {
        if queue >= self.tx_queues {
            return 0;
        }
        tx_burst(self.port_id, queue, pkts)
    }
}

impl Drop for EthPort<'_> {
    fn drop(&mut self) {
        // SAFETY: the port is valid and owned by self; no PortQueue exists
        // (they borrow self). Stop (if started) and close release its queues
        // and hand their buffers back to the pool, which outlives self ('p).
        unsafe {
            if self.started {
                sys::rte_eth_dev_stop(self.port_id);
            }
            sys::rte_eth_dev_close(self.port_id);
        }
        PORTS_IN_USE.fetch_and(!(1u64 << self.port_id), Ordering::AcqRel);
    }
}

/// One worker's exclusive handle on queue index *i* of a port: RX queue *i*
/// and TX queue *i*. `Send` (move it to the worker's thread), not `Sync`.
#[derive(Debug)]
pub struct PortQueue<'a, 'p> {
    port: &'a EthPort<'p>,
    queue: u16,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl<'p> PortQueue<'_, 'p> {
    /// The queue index.
    pub fn index(&self) -> u16 {
        self.queue
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port.port_id
    }

    /// As [`EthPort::rx_burst`] on this queue (0 if the port has no RX queue
    /// with this index).
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf<'p>>) -> usize {
        if self.queue >= self.port.rx_queues {
            return 0;
        }
        rx_burst(self.port.port_id, self.queue, out)
    }

    /// As [`EthPort::tx_burst`] on this queue (0 if the port has no TX queue
    /// with this index).
    pub fn tx_burst<'m: 'p>(&mut self, pkts: &mut Vec<Mbuf<'m>>) -> usize {
        if self.queue >= self.port.tx_queues {
            return 0;
        }
        tx_burst(self.port.port_id, self.queue, pkts)
    }
}

impl Drop for PortQueue<'_, '_> {
    fn drop(&mut self) {
        if let Some(flag) = self.port.claimed.get(usize::from(self.queue)) {
            flag.store(false, Ordering::Release);
        }
    }
}

/// Releases a port's claim bit if configuration fails half-way.
struct PortClaim {
    bit: u64,
}

impl Drop for PortClaim {
    fn drop(&mut self) {
        PORTS_IN_USE.fetch_and(!self.bit, Ordering::AcqRel);
    }
}

/// Errno values used when the wrapper itself detects an error.
mod libc_errno {
    /// No such device.
    pub const ENODEV: i32 = 19;
}

/// `Ok` for `rc >= 0`, else the error for `call`.
fn check(rc: i32, call: impl FnOnce() -> String) -> Result<(), DpdkError> {
    if rc < 0 {
        Err(DpdkError::from_code(call(), rc))
    } else {
        Ok(())
    }
}

/// `rte_eth_dev_info_get`.
fn dev_info(port_id: u16) -> Result<sys::rte_eth_dev_info, DpdkError> {
    // SAFETY: rte_eth_dev_info is a plain C struct (integers and pointers);
    // all-zero is valid and the call overwrites it.
    let mut info: sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
    // SAFETY: the port id is valid; info is a live struct the call fills.
    let rc = unsafe { sys::rte_eth_dev_info_get(port_id, &mut info) };
    check(rc, || format!("rte_eth_dev_info_get(port {port_id})"))?;
    Ok(info)
}

/// A NUL-terminated C char array as a `String`.
fn c_name(raw: &[c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// RX burst into the spare capacity of `out`. The caller guarantees that
/// `queue` exists and that nobody else bursts on it concurrently.
fn rx_burst(port_id: u16, queue: u16, out: &mut Vec<Mbuf<'_>>) -> usize {
    let len = out.len();
    let room = (out.capacity() - len).min(usize::from(u16::MAX)) as u16;
    if room == 0 {
        return 0;
    }
    // SAFETY: the queue exists and is used by this thread only (caller);
    // Mbuf is repr(transparent) over NonNull<rte_mbuf>, so the spare
    // capacity is an array of `room` rte_mbuf pointers. The PMD writes n <=
    // room valid, exclusively owned mbufs (from the port's pool, which lives
    // for 'p) into the first n slots, and only those are added to the length.
    unsafe {
        let slots = out.as_mut_ptr().add(len).cast::<*mut sys::rte_mbuf>();
        let n = usize::from(sys::shim_rte_eth_rx_burst(port_id, queue, slots, room));
        out.set_len(len + n);
        n
    }
}

/// TX burst of `pkts`; sent buffers are removed from the front. The caller
/// guarantees that `queue` exists and that nobody else bursts on it.
fn tx_burst(port_id: u16, queue: u16, pkts: &mut Vec<Mbuf<'_>>) -> usize {
    let n = pkts.len().min(usize::from(u16::MAX)) as u16;
    if n == 0 {
        return 0;
    }
    // SAFETY: the queue exists and is used by this thread only (caller);
    // Mbuf is repr(transparent) over NonNull<rte_mbuf>, so pkts is an array
    // of n valid mbuf pointers. The PMD takes ownership of the first `sent`
    // of them and leaves the rest untouched.
    let sent = usize::from(unsafe {
        sys::shim_rte_eth_tx_burst(port_id, queue, pkts.as_mut_ptr().cast(), n)
    });
    // The PMD owns the sent buffers now: remove them without freeing.
    pkts.drain(..sent).for_each(std::mem::forget);
    sent
}

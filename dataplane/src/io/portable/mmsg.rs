//! The wire port's batched socket calls: one `recvmmsg` per receive burst
//! and one `sendmmsg` per transmit burst on the AF_PACKET socket, through
//! nix's safe wrappers (no `unsafe` here). Owns the receive slots and the
//! socket's options; knows nothing about ports, counters or what frames mean.
//!
//! Memory: [`RxSlots`] holds [`BATCH`] slots of [`SLOT`] bytes (4 MiB of
//! address space per wire port, allocated once; the kernel only writes, and
//! so only makes resident, as many bytes of a slot as the frame it puts
//! there). The `mmsghdr` array nix needs is allocated once per thread
//! ([`BATCH`] × 64 bytes): nix's `MultiHeaders` holds raw pointers, so it is
//! not `Send`, and keeping it per thread keeps `PortableIo` movable to its
//! worker's thread without `unsafe`.

use std::cell::RefCell;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, IntoRawFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessage, MsgFlags,
    MultiHeaders, SockFlag, SockProtocol, SockType,
};

use crate::io::Frame;

/// Most frames one syscall moves; a larger burst takes several calls.
pub const BATCH: usize = 64;

/// Bytes of one receive slot: the largest frame AF_PACKET hands over (GRO
/// merges segments into frames of up to 64 KiB before packet sockets see
/// them). A longer frame is cut by the kernel, reported as truncated and
/// dropped.
pub const SLOT: usize = 65_536;

/// No destination address: every frame leaves through the interface the
/// socket is bound to.
const NO_ADDR: [Option<()>; BATCH] = [None; BATCH];

thread_local! {
    /// This thread's `mmsghdr` array, shared by every socket the thread
    /// drives (each call fills it anew).
    static HEADERS: RefCell<Option<MultiHeaders<()>>> = const { RefCell::new(None) };
}

/// Opens a raw AF_PACKET socket for every ethertype (`ETH_P_ALL`), not yet
/// bound, and returns its descriptor for pnet to bind (see
/// [`PortableIo::open_with`](super::PortableIo::open_with)), which owns it
/// from then on. `rx_buffer`: the receive buffer in bytes, forced past
/// `net.core.rmem_max` when the process may (`CAP_NET_ADMIN`).
pub fn open_socket(rx_buffer: Option<usize>) -> Result<RawFd, Errno> {
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::EthAll,
    )?;
    if let Some(bytes) = rx_buffer {
        if setsockopt(&fd.as_fd(), sockopt::RcvBufForce, &bytes).is_err() {
            setsockopt(&fd.as_fd(), sockopt::RcvBuf, &bytes)?;
        }
    }
    Ok(fd.into_raw_fd())
}

/// The receive slots of one socket and the lengths of what the last
/// [`RxSlots::recv`] put in them.
pub struct RxSlots {
    buf: Vec<u8>,
    /// Length of the frame in each slot; `None`: truncated (longer than [`SLOT`]).
    lens: [Option<usize>; BATCH],
}

impl RxSlots {
    /// [`BATCH`] empty slots.
    pub fn new() -> Self {
        RxSlots {
            buf: vec![0; BATCH * SLOT],
            lens: [None; BATCH],
        }
    }

    /// One `recvmmsg` (non-blocking) of at most `max` (capped at [`BATCH`])
    /// frames from `fd` into the slots. Returns how many slots it filled
    /// (read them with [`RxSlots::frame`]); `Err(EAGAIN)` when nothing was
    /// pending.
    pub fn recv(&mut self, fd: RawFd, max: usize) -> Result<usize, Errno> {
        let n = max.min(BATCH);
        let lens = &mut self.lens;
        let buf = &mut self.buf;
        HEADERS.with_borrow_mut(|headers| {
            let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
            let mut slots = buf.chunks_exact_mut(SLOT);
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
            let received = recvmmsg(
                fd,
                headers,
                iovs[..n].iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            let mut filled = 0;
            for (len, msg) in lens.iter_mut().zip(received) {
                *len = (!msg.flags.contains(MsgFlags::MSG_TRUNC)).then_some(msg.bytes);
                filled += 1;
            }
            Ok(filled)
        })
    }

    /// The frame in slot `i` after the last [`RxSlots::recv`]; `None` if it
    /// was truncated.
    pub fn frame(&self, i: usize) -> Option<&[u8]> {
        let len = self.lens[i]?;
        self.buf.get(i * SLOT..i * SLOT + len)
    }
}

/// One `sendmmsg` (non-blocking) of the first frames of `frames` (at most
/// [`BATCH`]) on `fd`, through the interface it is bound to. Returns how
/// many the kernel took, in order; an error only when it took none (the
/// first frame's error: `EAGAIN` with the send buffer full, `ENOBUFS` when
/// the device queue dropped it).
pub fn send<F: Frame>(fd: RawFd, frames: &[F]) -> Result<usize, Errno> {
    let n = frames.len().min(BATCH);
    if n == 0 {
        return Ok(0);
    }
    HEADERS.with_borrow_mut(|headers| {
        let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
        let iovs: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|i| [IoSlice::new(frames.get(i).map_or(&[], Frame::bytes))]);
        let sent = sendmmsg(
            fd,
            headers,
            iovs[..n].iter(),
            &NO_ADDR[..n],
            [] as [ControlMessage<'_>; 0],
            MsgFlags::MSG_DONTWAIT,
        )?;
        Ok(sent.count())
    })
}

//! `shoal-synflood`: a SYN flood of spoofed sources for the lab
//! (`perf/synflood/run.sh`, issue 17).
//!
//! ```text
//! shoal-synflood --iface eth0 --dst-mac 02:00:c6:12:00:64 --dst 198.18.0.100 --port 80 \
//!                --count 2000000 --seconds 10 [--src-mac MAC] [--seed N]
//! ```
//!
//! Sends TCP SYNs as Linux clients do (MSS 1460, SACK-permitted,
//! timestamps, window scale 7) from random source addresses in
//! 198.18.0.0/15 outside the lab's own 198.18.0.0/24, random ports and
//! ISNs, at the highest rate the socket takes: batches of 64 frames per
//! `sendmmsg` on an `AF_PACKET` socket bound to `--iface` (needs
//! `CAP_NET_RAW`; run it in the lab's client namespace). It stops by itself
//! after `--count` frames or `--seconds`, whichever comes first, and
//! prints one JSON line: frames sent, seconds, frames per second, send
//! calls that failed. Exits non-zero on a bad argument or a socket error
//! it cannot go on after.
//!
//! Frames are built once with `shoal_dataplane::traffic` and rewritten in
//! place (source address and port, ISN, `TSval`, both checksums) through
//! the `shoal_wire` views: no allocation per frame.

use std::io::IoSlice;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, IntoRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    sendmmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessage, MsgFlags, MultiHeaders,
    SockFlag, SockProtocol, SockType,
};
use shoal_dataplane::traffic::{tcp_frame, tcp_header, Endpoint};
use shoal_select::mix64;
use shoal_wire::{EthernetAddress, EthernetFrame, Ipv4Packet, TcpFlags, TcpPacket};

/// Frames per `sendmmsg`.
const BATCH: usize = 64;
/// The lab's own addresses (client, servers, VIP): never used as a source.
const LAB_NET: u32 = 0xc612_0000; // 198.18.0.0/24
/// The flood's sources: 198.18.0.0/15.
const FLOOD_NET: u32 = 0xc612_0000;
const FLOOD_MASK: u32 = 0x0001_ffff;

/// The command line.
struct Args {
    iface: String,
    dst_mac: EthernetAddress,
    src_mac: Option<EthernetAddress>,
    dst: Ipv4Addr,
    port: u16,
    count: u64,
    seconds: f64,
    seed: u64,
}

fn usage() -> String {
    "usage: shoal-synflood --iface IF --dst-mac MAC --dst IPV4 --port N --count N --seconds S \
     [--src-mac MAC] [--seed N]"
        .to_owned()
}

fn parse_mac(s: &str) -> Result<EthernetAddress, String> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| format!("not a MAC address: '{s}'"))?;
    let bytes: [u8; 6] = bytes
        .try_into()
        .map_err(|_| format!("not a MAC address: '{s}'"))?;
    Ok(EthernetAddress(bytes))
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut iface, mut dst_mac, mut src_mac, mut dst, mut port) = (None, None, None, None, None);
    let (mut count, mut seconds, mut seed) = (None, None, 1u64);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        let bad = |what: &str, v: &str| format!("{what}: cannot read '{v}'");
        match flag.as_str() {
            "--iface" => iface = Some(value()?),
            "--dst-mac" => dst_mac = Some(parse_mac(&value()?)?),
            "--src-mac" => src_mac = Some(parse_mac(&value()?)?),
            "--dst" => {
                let v = value()?;
                dst = Some(v.parse::<Ipv4Addr>().map_err(|_| bad("--dst", &v))?);
            }
            "--port" => {
                let v = value()?;
                port = Some(v.parse::<u16>().map_err(|_| bad("--port", &v))?);
            }
            "--count" => {
                let v = value()?;
                count = Some(v.parse::<u64>().map_err(|_| bad("--count", &v))?);
            }
            "--seconds" => {
                let v = value()?;
                seconds = Some(v.parse::<f64>().map_err(|_| bad("--seconds", &v))?);
            }
            "--seed" => {
                let v = value()?;
                seed = v.parse::<u64>().map_err(|_| bad("--seed", &v))?;
            }
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument '{other}'\n{}", usage())),
        }
    }
    let missing = |name: &str| format!("{name} is required\n{}", usage());
    let seconds = seconds.ok_or_else(|| missing("--seconds"))?;
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!(
            "--seconds must be above 0 and at most 3600 (got {seconds})"
        ));
    }
    Ok(Args {
        iface: iface.ok_or_else(|| missing("--iface"))?,
        dst_mac: dst_mac.ok_or_else(|| missing("--dst-mac"))?,
        src_mac,
        dst: dst.ok_or_else(|| missing("--dst"))?,
        port: port.ok_or_else(|| missing("--port"))?,
        count: count.ok_or_else(|| missing("--count"))?,
        seconds,
        seed,
    })
}

/// The interface's own MAC, from sysfs.
fn iface_mac(iface: &str) -> Result<EthernetAddress, String> {
    let path = format!("/sys/class/net/{iface}/address");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_mac(text.trim())
}

/// An `AF_PACKET` socket bound to `iface` (pnet binds it), with a minimal
/// receive buffer (it only sends). Returns the descriptor and the channel
/// that owns it (dropping the channel closes it).
fn open(iface: &str) -> Result<(RawFd, Box<dyn pnet_datalink::DataLinkSender>), String> {
    let interface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == iface)
        .ok_or_else(|| format!("interface '{iface}' not found (ip link show)"))?;
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map_err(|e| format!("AF_PACKET socket (needs CAP_NET_RAW): {e}"))?;
    // Frames arriving on the interface are not read: drop them early.
    setsockopt(&fd.as_fd(), sockopt::RcvBuf, &1).map_err(|e| format!("SO_RCVBUF: {e}"))?;
    let raw = fd.into_raw_fd();
    let config = pnet_datalink::Config {
        socket_fd: Some(raw),
        ..pnet_datalink::Config::default()
    };
    match pnet_datalink::channel(&interface, config) {
        Ok(pnet_datalink::Channel::Ethernet(tx, _rx)) => Ok((raw, tx)),
        Ok(_) => Err("not an Ethernet channel".to_owned()),
        Err(e) => Err(format!("bind AF_PACKET to '{iface}': {e}")),
    }
}

/// Rewrites `frame` (a SYN built from the template, to `dst`:`port`) as
/// SYN number `n`: the same header layout, another source, port, ISN and
/// `TSval`.
fn spoof(frame: &mut [u8], n: u64, dst: Ipv4Addr, port: u16) {
    let r = mix64(n);
    let mut addr = FLOOD_NET | (r as u32 & FLOOD_MASK);
    if addr & 0xffff_ff00 == LAB_NET {
        addr |= 0x100;
    }
    let src = Ipv4Addr::from(addr);
    let mut eth = EthernetFrame::new_unchecked(frame);
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.set_src_addr(src);
    ip.set_ident(r as u16);
    ip.fill_checksum();
    let src_port = 1024 + ((r >> 32) as u16 % 64_512);
    let mut syn = tcp_header(src_port, port, (r >> 16) as u32, None, TcpFlags::SYN);
    syn.timestamps = Some(((r >> 40) as u32, 0));
    syn.emit(
        &mut TcpPacket::new_unchecked(ip.payload_mut()),
        src,
        dst,
        &[],
    );
}

fn run(args: &Args) -> Result<(), String> {
    let src_mac = match args.src_mac {
        Some(mac) => mac,
        None => iface_mac(&args.iface)?,
    };
    let (fd, _channel) = open(&args.iface)?;
    let from = Endpoint {
        mac: src_mac,
        ip: Ipv4Addr::new(198, 18, 1, 1),
        port: 1024,
    };
    let to = Endpoint {
        mac: args.dst_mac,
        ip: args.dst,
        port: args.port,
    };
    let template = tcp_frame(
        &from,
        &to,
        &tcp_header(1024, args.port, 0, None, TcpFlags::SYN),
        &[],
        0,
    );
    let mut frames = vec![template; BATCH];
    let mut headers = MultiHeaders::<()>::preallocate(BATCH, None);
    let no_addr = [None::<()>; BATCH];
    let limit = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let (mut sent, mut failed_calls, mut n) = (0u64, 0u64, args.seed << 40);
    while sent < args.count && start.elapsed() < limit {
        let want = (args.count - sent).min(BATCH as u64) as usize;
        for frame in &mut frames[..want] {
            spoof(frame, n, args.dst, args.port);
            n = n.wrapping_add(1);
        }
        let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| [IoSlice::new(&frames[i])]);
        match sendmmsg(
            fd,
            &mut headers,
            iovs.iter(),
            &no_addr[..want],
            [] as [ControlMessage<'_>; 0],
            MsgFlags::empty(),
        ) {
            Ok(results) => sent += results.count() as u64,
            // The device queue is full: the frames are lost, go on.
            Err(Errno::ENOBUFS | Errno::EAGAIN | Errno::EINTR) => failed_calls += 1,
            Err(e) => return Err(format!("sendmmsg on '{}': {e}", args.iface)),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"sent\":{sent},\"seconds\":{seconds:.3},\"rate\":{:.0},\"failed_calls\":{failed_calls}}}",
        sent as f64 / seconds.max(1e-9)
    );
    if sent == 0 {
        return Err("no frame was sent".to_owned());
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal-synflood: {e}");
            ExitCode::FAILURE
        }
    }
}

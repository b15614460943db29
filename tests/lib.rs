//! End-to-end tests of Shoal. This crate holds no product code: its tests
//! (`replay.rs`, `dpr.rs`, `splice.rs`, `synproxy.rs`, and on the lab
//! `lab.rs` and `top.rs`) drive whole binaries and pipelines with generated
//! traffic and assert exact frames, counters and responses. `run.sh` next
//! to it is the project's test command. The library holds what several of
//! those tests share.

#![forbid(unsafe_code)]

use std::process::Output;

/// The standard output of a command that must have succeeded; panics with
/// both its outputs otherwise (a panic is a failed test).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tables of epoch `epoch` from `cfg`, with `alive[j]` saying whether
/// its member j is in the membership (the routed tests' memberships).
pub fn tables_alive(
    cfg: &shoal_config::Config,
    alive: &[bool],
    epoch: u64,
) -> std::sync::Arc<shoal_dataplane::pipeline::Tables> {
    use shoal_dataplane::pipeline::{MemberEntry, Tables};
    let members = cfg
        .cluster
        .members
        .iter()
        .zip(alive)
        .map(|(m, &alive)| MemberEntry {
            alive,
            ..MemberEntry::from_config(m)
        })
        .collect();
    std::sync::Arc::new(Tables::build(cfg, epoch, members).unwrap_or_else(|e| panic!("{e}")))
}

/// Asserts that every frame each of `pipelines` processed bumped exactly
/// one outcome counter.
pub fn assert_one_outcome_per_frame(pipelines: &[shoal_dataplane::pipeline::Pipeline]) {
    use shoal_dataplane::counters::Counter;
    for p in pipelines {
        let c = p.counters();
        assert_eq!(
            c.outcomes(),
            c.get(Counter::WireRx) + c.get(Counter::KernelRx),
            "one outcome per frame"
        );
    }
}

/// The replay example's config (`deploy/examples/replay.toml`: three
/// members, one service) as member `member`'s, its service a splice service
/// with `dispatch`.
pub fn splice_config(member: &str, dispatch: shoal_config::Dispatch) -> shoal_config::Config {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/replay.toml");
    let mut cfg = shoal_config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    member.clone_into(&mut cfg.cluster.local_member);
    cfg.services[0].mode = shoal_config::Mode::Splice;
    cfg.services[0].dispatch = Some(dispatch);
    cfg
}

/// The local member's pipeline over `cfg` (a flow table of 1024 flows), with
/// a cookie secret of its own and the tests' shared cluster key, so that it
/// can hand connections to the other members' pipelines.
pub fn member_pipeline(cfg: &shoal_config::Config) -> shoal_dataplane::pipeline::Pipeline {
    use shoal_dataplane::pipeline::{Pipeline, Tables};
    let tables = Tables::from_config(cfg, 1).unwrap_or_else(|e| panic!("{e}"));
    let mut p = Pipeline::new(
        std::sync::Arc::new(tables),
        1024,
        shoal_dataplane::flow::Timeouts::from_config(&cfg.dataplane.flow_table.timeouts),
    );
    p.set_cookie_secret([cfg.cluster.local_member.as_bytes()[3]; 32]);
    let key = shoal_l7::handoff::ClusterKey::from_bytes(&[9; 32]).unwrap_or_else(|e| panic!("{e}"));
    p.enable_handoff(key, 1, 1_000_000);
    p
}

/// A client's cookie handshake with a splice inspector `p` and its
/// request in the segment that completes it: the SYN (ISN 1000, timestamps,
/// `mss` if given), the cookie read from the SYN-ACK, then `request` from
/// sequence 1001 acknowledging the cookie and echoing its timestamp. The
/// verdict on the request segment, the cookie ISN, and what `p` sent.
pub fn cookie_request(
    p: &mut shoal_dataplane::pipeline::Pipeline,
    client: &shoal_dataplane::traffic::Endpoint,
    service: &shoal_dataplane::traffic::Endpoint,
    mss: Option<u16>,
    request: &[u8],
    now: shoal_wire::time::Instant,
) -> (
    shoal_dataplane::pipeline::Verdict,
    u32,
    Vec<(shoal_dataplane::io::PortId, Vec<u8>)>,
) {
    use shoal_dataplane::io::memory::HeapFrame;
    use shoal_dataplane::pipeline::WIRE;
    use shoal_dataplane::traffic::{tcp_frame, tcp_header};
    use shoal_wire::TcpFlags;
    let mut syn = tcp_header(client.port, service.port, 1000, None, TcpFlags::SYN);
    syn.mss = mss;
    syn.timestamps = Some((1, 0));
    let frame = tcp_frame(client, service, &syn, &[], 1);
    p.process(WIRE, &mut HeapFrame::from_bytes(&frame), now);
    let (_, synack) = p
        .take_emitted()
        .next()
        .unwrap_or_else(|| panic!("no SYN-ACK"));
    let eth = shoal_wire::EthernetFrame::new_checked(&synack[..]).unwrap_or_else(|e| panic!("{e}"));
    let ip = shoal_wire::Ipv4Packet::new_checked(eth.payload()).unwrap_or_else(|e| panic!("{e}"));
    let tcp = shoal_wire::TcpPacket::new_checked(ip.payload()).unwrap_or_else(|e| panic!("{e}"));
    let cookie = tcp.seq_number();
    let tsval = tcp.timestamps().map_or(0, |t| t.0);
    let mut req = tcp_header(
        client.port,
        service.port,
        1001,
        Some(cookie.wrapping_add(1)),
        TcpFlags::PSH,
    );
    req.timestamps = Some((2, tsval));
    let frame = tcp_frame(client, service, &req, request, 2);
    let v = p.process(WIRE, &mut HeapFrame::from_bytes(&frame), now);
    (v, cookie, p.take_emitted().collect())
}

/// A TCP segment as the tests read it from a frame.
#[derive(Debug, Clone)]
pub struct TcpSeg {
    /// Ethernet destination.
    pub dst_mac: shoal_wire::EthernetAddress,
    /// IPv4 destination.
    pub dst: std::net::Ipv4Addr,
    /// TCP ports.
    pub src_port: u16,
    /// TCP destination port.
    pub dst_port: u16,
    /// Sequence and acknowledgement numbers.
    pub seq: u32,
    /// The acknowledgement number (whatever the ACK flag).
    pub ack: u32,
    /// The flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
    pub flags: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// The TCP segment in `frame`, its IPv4 and TCP checksums checked; panics
/// (a failed test) on anything else.
pub fn parse_tcp(frame: &[u8]) -> TcpSeg {
    use shoal_wire::{EthernetFrame, Ipv4Packet, TcpPacket};
    let eth = EthernetFrame::new_checked(frame).unwrap_or_else(|e| panic!("{e}"));
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap_or_else(|e| panic!("{e}"));
    assert!(ip.verify_checksum(), "IPv4 checksum");
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        tcp.verify_checksum(ip.src_addr(), ip.dst_addr()),
        "TCP checksum"
    );
    TcpSeg {
        dst_mac: eth.dst_addr(),
        dst: ip.dst_addr(),
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        seq: tcp.seq_number(),
        ack: tcp.ack_number(),
        flags: tcp.flags_byte(),
        payload: tcp.payload().to_vec(),
    }
}

/// Clients from address `host` (`client_endpoint(host, port)`, ports from
/// 40000 up) whose connections member `member` inspects under `p`'s tables.
pub fn clients_inspected_by(
    p: &shoal_dataplane::pipeline::Pipeline,
    member: u16,
    host: u32,
) -> impl Iterator<Item = shoal_dataplane::traffic::Endpoint> + '_ {
    (40_000..50_000)
        .map(move |port| shoal_dataplane::traffic::client_endpoint(host, port))
        .filter(move |c| {
            p.tables().services[0]
                .selector
                .select(shoal_select::ClientKey {
                    addr: c.ip,
                    port: c.port,
                })
                == Some(member)
        })
}

/// A splice dispatch that sends every request to `member` (one rule for
/// `/`): a request served elsewhere went there by something decided before
/// the policy (a class, a sticky cookie, a local path).
pub fn all_to(member: &str) -> shoal_config::Dispatch {
    shoal_config::Dispatch {
        policy: shoal_config::DispatchPolicy::Rules,
        rules: vec![shoal_config::DispatchRule {
            host: None,
            prefix: "/".into(),
            member: member.into(),
        }],
        ..shoal_config::Dispatch::default()
    }
}

"""Shoal: a SYN flood from spoofed sources to the VIP.

TRex stateless (STL) profile. One continuous stream of TCP SYNs (MSS option
1460, as real stacks send; 58 bytes + 2 of Ethernet padding = 60, 64 on the
wire) to VIP:PORT from a random source address in 198.18.128.0/17 and a
random source port and initial sequence number per packet: every SYN is a
new connection attempt that never completes. This is the load Shoal's SYN
proxy (`synproxy_*` counters) and the selection of new connections
(`shoal_dataplane_selections_total`) are for.

The IPv4 header checksum is fixed in software for every packet and the TCP
checksum by the NIC (STLVmFixChecksumHw): Shoal drops a segment whose TCP
checksum is wrong (shoal_dataplane_malformed_total{layer="tcp"}).

Tunables (TRex 3.x: `start -f stl_synflood.py -t --pps 100000`; `-t --help`
lists them). `direction` is accepted and ignored. Defaults are the lab's
(deploy/examples/lab-srv1.toml): VIP 198.18.0.100, cluster MAC
02:00:c6:12:00:64; `--mac ""` sends to the TRex port's configured
destination instead. See perf/trex/README.md.
"""
import argparse

from trex.stl.api import (
    STLStream, STLPktBuilder, STLTXCont, STLScVmRaw, STLVmFlowVar,
    STLVmWrFlowVar, STLVmFixIpv4, STLVmFixChecksumHw, STLStreamDstMAC_PKT,
    STLStreamDstMAC_CFG_FILE, Ether, IP, TCP, Padding,
)
from trex.stl.trex_stl_packet_builder_scapy import CTRexVmInsFixHwCs

DEFAULTS = {
    "vip": "198.18.0.100",
    "port": 80,
    "mac": "02:00:c6:12:00:64",
    "src_first": "198.18.128.1",
    "src_last": "198.18.255.254",
    "sport_first": 1024,
    "sport_last": 65535,
    "pps": 100000.0,
}


def parse_tunables(tunables, kwargs, description):
    """argparse over TRex 3.x's tunables list; old clients pass kwargs."""
    parser = argparse.ArgumentParser(
        prog="stl_synflood.py", description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--vip", default=DEFAULTS["vip"], help="destination address (a VIP of the cluster)")
    parser.add_argument("--port", type=int, default=DEFAULTS["port"], help="destination TCP port")
    parser.add_argument("--mac", default=DEFAULTS["mac"],
                        help="Ethernet destination: the cluster MAC; empty = the TRex port's configured destination")
    parser.add_argument("--src_first", default=DEFAULTS["src_first"], help="lowest spoofed source address")
    parser.add_argument("--src_last", default=DEFAULTS["src_last"], help="highest spoofed source address")
    parser.add_argument("--sport_first", type=int, default=DEFAULTS["sport_first"], help="lowest source port")
    parser.add_argument("--sport_last", type=int, default=DEFAULTS["sport_last"], help="highest source port")
    parser.add_argument("--pps", type=float, default=DEFAULTS["pps"],
                        help="SYNs per second (start's -m multiplies or replaces it)")
    if tunables is None:  # TRex 2.x: tunables come as keyword arguments
        tunables = []
        for key, value in kwargs.items():
            if key in DEFAULTS:
                tunables += ["--" + key, str(value)]
    return parser.parse_args(list(tunables))


class ShoalSynFlood(object):
    def get_streams(self, tunables=None, direction=0, port_id=0, **kwargs):
        args = parse_tunables(tunables, kwargs, __doc__.splitlines()[0])
        ether = Ether(dst=args.mac) if args.mac else Ether()
        headers = (ether
                   / IP(src=args.src_first, dst=args.vip, ttl=64, id=0)
                   / TCP(sport=args.sport_first, dport=args.port, flags="S",
                         seq=0x10000000, window=64240, options=[("MSS", 1460)]))
        # 60 bytes without the FCS: pad the Ethernet frame, not the segment
        # (remove_fcs=False below: the builder would take the padding for an FCS).
        pad = max(0, 60 - len(headers))
        pkt = headers / Padding(load=b"\x00" * pad) if pad else headers
        vm = STLScVmRaw([
            STLVmFlowVar(name="src", min_value=args.src_first, max_value=args.src_last,
                         size=4, op="random"),
            STLVmFlowVar(name="sport", min_value=args.sport_first, max_value=args.sport_last,
                         size=2, op="random"),
            STLVmFlowVar(name="isn", min_value=0, max_value=0xFFFFFFFF, size=4, op="random"),
            STLVmWrFlowVar(fv_name="src", pkt_offset="IP.src"),
            STLVmWrFlowVar(fv_name="sport", pkt_offset="TCP.sport"),
            STLVmWrFlowVar(fv_name="isn", pkt_offset="TCP.seq"),
            STLVmFixIpv4(offset="IP"),
            STLVmFixChecksumHw(l3_offset="IP", l4_offset="TCP",
                               l4_type=CTRexVmInsFixHwCs.L4_TYPE_TCP),
        ])
        dst_mode = STLStreamDstMAC_PKT if args.mac else STLStreamDstMAC_CFG_FILE
        return [STLStream(name="synflood",
                          packet=STLPktBuilder(pkt=pkt, vm=vm, remove_fcs=False),
                          mode=STLTXCont(pps=args.pps),
                          mac_dst_override_mode=dst_mode)]


def register():
    return ShoalSynFlood()

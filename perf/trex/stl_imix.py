"""Shoal: IMIX of established-flow TCP segments to the VIP.

TRex stateless (STL) profile. TRex's standard IMIX (stl/imix.py): three
continuous streams of 60, 590 and 1514-byte frames (64, 594 and 1518 on the
wire with the FCS) at packet rates in the ratio 7:4:1 (TRex's 28:16:4 pps),
an average of 358 bytes a frame (362 on the wire). Every frame is a TCP segment of one
of CLIENTS x SPORTS flows to VIP:PORT: the 60-byte frames are pure ACKs
(Ethernet-padded), the larger ones carry data (flags PA) of 536 and 1460
bytes. As in stl_established_64.py, each stream walks every (client
address, source port) pair (STLVmTupleGen), the IPv4 checksum is fixed in
software and the TCP checksum by the NIC (STLVmFixChecksumHw).

Tunables (TRex 3.x: `start -f stl_imix.py -t --pps 300000`; `-t --help`
lists them): --pps is the total of the three streams. `direction` is
accepted and ignored. Defaults are the lab's (deploy/examples/lab-srv1.toml):
VIP 198.18.0.100, cluster MAC 02:00:c6:12:00:64; `--mac ""` sends to the
TRex port's configured destination instead. See perf/trex/README.md.
"""
import argparse

from trex.stl.api import (
    STLStream, STLPktBuilder, STLTXCont, STLScVmRaw, STLVmTupleGen,
    STLVmWrFlowVar, STLVmFixIpv4, STLVmFixChecksumHw, STLStreamDstMAC_PKT,
    STLStreamDstMAC_CFG_FILE, Ether, IP, TCP, Padding,
)
from trex.stl.trex_stl_packet_builder_scapy import CTRexVmInsFixHwCs

DEFAULTS = {
    "vip": "198.18.0.100",
    "port": 80,
    "mac": "02:00:c6:12:00:64",
    "client_first": "198.18.1.1",
    "client_last": "198.18.1.254",
    "sport_first": 1025,
    "sport_last": 1088,
    "pps": 120000.0,
}

# (frame size without the FCS, share of the packets): TRex's imix.py.
IMIX = [(60, 7), (590, 4), (1514, 1)]


def parse_tunables(tunables, kwargs, description):
    """argparse over TRex 3.x's tunables list; old clients pass kwargs."""
    parser = argparse.ArgumentParser(
        prog="stl_imix.py", description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--vip", default=DEFAULTS["vip"], help="destination address (a VIP of the cluster)")
    parser.add_argument("--port", type=int, default=DEFAULTS["port"], help="destination TCP port")
    parser.add_argument("--mac", default=DEFAULTS["mac"],
                        help="Ethernet destination: the cluster MAC; empty = the TRex port's configured destination")
    parser.add_argument("--client_first", default=DEFAULTS["client_first"], help="first client address")
    parser.add_argument("--client_last", default=DEFAULTS["client_last"], help="last client address")
    parser.add_argument("--sport_first", type=int, default=DEFAULTS["sport_first"], help="first client port")
    parser.add_argument("--sport_last", type=int, default=DEFAULTS["sport_last"], help="last client port")
    parser.add_argument("--pps", type=float, default=DEFAULTS["pps"],
                        help="packets per second of the three streams together, split 7:4:1")
    if tunables is None:  # TRex 2.x: tunables come as keyword arguments
        tunables = []
        for key, value in kwargs.items():
            if key in DEFAULTS:
                tunables += ["--" + key, str(value)]
    return parser.parse_args(list(tunables))


class ShoalImix(object):
    def stream(self, args, size, pps):
        ether = Ether(dst=args.mac) if args.mac else Ether()
        headers = (ether
                   / IP(src=args.client_first, dst=args.vip, ttl=64, id=0)
                   / TCP(sport=args.sport_first, dport=args.port, seq=0x10000001,
                         ack=0x20000001, window=502))
        data = size - len(headers)
        if data <= 6:
            # A pure ACK, Ethernet-padded to 60 bytes (remove_fcs=False
            # below: the builder would take the padding for an FCS).
            headers[TCP].flags = "A"
            pkt = headers / Padding(load=b"\x00" * data) if data > 0 else headers
        else:
            headers[TCP].flags = "PA"
            pkt = headers / (b"x" * data)
        vm = STLScVmRaw([
            STLVmTupleGen(name="flow", ip_min=args.client_first, ip_max=args.client_last,
                          port_min=args.sport_first, port_max=args.sport_last, limit_flows=0),
            STLVmWrFlowVar(fv_name="flow.ip", pkt_offset="IP.src"),
            STLVmWrFlowVar(fv_name="flow.port", pkt_offset="TCP.sport"),
            STLVmFixIpv4(offset="IP"),
            STLVmFixChecksumHw(l3_offset="IP", l4_offset="TCP",
                               l4_type=CTRexVmInsFixHwCs.L4_TYPE_TCP),
        ])
        dst_mode = STLStreamDstMAC_PKT if args.mac else STLStreamDstMAC_CFG_FILE
        return STLStream(name="imix_%d" % size,
                         packet=STLPktBuilder(pkt=pkt, vm=vm, remove_fcs=False),
                         mode=STLTXCont(pps=pps),
                         mac_dst_override_mode=dst_mode)

    def get_streams(self, tunables=None, direction=0, port_id=0, **kwargs):
        args = parse_tunables(tunables, kwargs, __doc__.splitlines()[0])
        total = sum(weight for _, weight in IMIX)
        return [self.stream(args, size, args.pps * weight / total) for size, weight in IMIX]


def register():
    return ShoalImix()

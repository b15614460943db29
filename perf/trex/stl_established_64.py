"""Shoal: 64-byte TCP ACKs of many established-looking flows to the VIP.

TRex stateless (STL) profile. One continuous stream of pure ACKs (flags A,
no payload; 54 bytes of headers + 6 bytes of Ethernet padding = 60 bytes,
64 on the wire with the FCS) from CLIENTS x SPORTS flows to VIP:PORT. The
field engine walks every (client address, source port) pair in turn
(STLVmTupleGen: the address moves first, the port when the addresses wrap),
so consecutive packets belong to different flows, as on a busy link.

The IPv4 header checksum is fixed in software for every packet and the TCP
checksum by the NIC (STLVmFixChecksumHw): Shoal drops a segment whose TCP
checksum is wrong (shoal_dataplane_malformed_total{layer="tcp"}).

Tunables (TRex 3.x: `start -f stl_established_64.py -t --pps 1000000 --mac
02:00:c6:12:00:64`; the older `-t pps=1000000,mac=...` form works too; run
with `-t --help` to list them). `direction` is accepted and ignored: the
profile always sends client-to-VIP traffic.

Defaults are the lab's (deploy/examples/lab-srv1.toml): VIP 198.18.0.100,
cluster MAC 02:00:c6:12:00:64. `--mac ""` sends to the MAC in the TRex
port's configuration (dest_mac, or the MAC resolved for default_gw) instead.

See perf/trex/README.md for what Shoal does with these packets (they match
no flow unless the service keeps none) and which counters to read.
"""
import argparse

from trex.stl.api import (
    STLProfile, STLStream, STLPktBuilder, STLTXCont, STLScVmRaw, STLVmTupleGen,
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
    "pps": 1000000.0,
}


def parse_tunables(tunables, kwargs, description):
    """argparse over TRex 3.x's tunables list; old clients pass kwargs."""
    parser = argparse.ArgumentParser(
        prog="stl_established_64.py", description=description,
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
                        help="packets per second (start's -m multiplies or replaces it)")
    if tunables is None:  # TRex 2.x: tunables come as keyword arguments
        tunables = []
        for key, value in kwargs.items():
            if key in DEFAULTS:
                tunables += ["--" + key, str(value)]
    return parser.parse_args(list(tunables))


class ShoalEstablished64(object):
    def get_streams(self, tunables=None, direction=0, port_id=0, **kwargs):
        args = parse_tunables(tunables, kwargs, __doc__.splitlines()[0])
        ether = Ether(dst=args.mac) if args.mac else Ether()
        headers = (ether
                   / IP(src=args.client_first, dst=args.vip, ttl=64, id=0)
                   / TCP(sport=args.sport_first, dport=args.port, flags="A",
                         seq=0x10000001, ack=0x20000001, window=502))
        # 60 bytes without the FCS: pad the Ethernet frame, not the segment
        # (remove_fcs=False below: the builder would take the padding for an FCS).
        pad = max(0, 60 - len(headers))
        pkt = headers / Padding(load=b"\x00" * pad) if pad else headers
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
        return [STLStream(name="established_ack_64",
                          packet=STLPktBuilder(pkt=pkt, vm=vm, remove_fcs=False),
                          mode=STLTXCont(pps=args.pps),
                          mac_dst_override_mode=dst_mode)]


def register():
    return ShoalEstablished64()

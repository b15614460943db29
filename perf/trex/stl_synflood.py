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
from trex.stl.api import STLVmFlowVar, STLVmWrFlowVar

import shoal_trex  # perf/trex/shoal_trex.py, beside this file

Tunable = shoal_trex.Tunable
TUNABLES = shoal_trex.STL_TARGET + [
    Tunable("src_first", "198.18.128.1", None, "lowest spoofed source address"),
    Tunable("src_last", "198.18.255.254", None, "highest spoofed source address"),
    Tunable("sport_first", 1024, int, "lowest source port"),
    Tunable("sport_last", 65535, int, "highest source port"),
    Tunable("pps", 100000.0, float, "SYNs per second (start's -m multiplies or replaces it)"),
]


class ShoalSynFlood(object):
    def get_streams(self, tunables=None, direction=0, port_id=0, **kwargs):
        args = shoal_trex.parse_tunables(__file__, __doc__, TUNABLES, tunables, kwargs)
        headers = shoal_trex.tcp_headers(args, args.src_first, args.sport_first, flags="S",
                                         seq=0x10000000, window=64240, options=[("MSS", 1460)])
        pkt = shoal_trex.pad_frame(headers, 60)
        vm = [
            STLVmFlowVar(name="src", min_value=args.src_first, max_value=args.src_last,
                         size=4, op="random"),
            STLVmFlowVar(name="sport", min_value=args.sport_first, max_value=args.sport_last,
                         size=2, op="random"),
            STLVmFlowVar(name="isn", min_value=0, max_value=0xFFFFFFFF, size=4, op="random"),
            STLVmWrFlowVar(fv_name="src", pkt_offset="IP.src"),
            STLVmWrFlowVar(fv_name="sport", pkt_offset="TCP.sport"),
            STLVmWrFlowVar(fv_name="isn", pkt_offset="TCP.seq"),
        ]
        return [shoal_trex.stl_stream("synflood", pkt, vm, args.pps, args.mac)]


def register():
    return ShoalSynFlood()

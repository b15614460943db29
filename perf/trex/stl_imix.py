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
from trex.stl.api import TCP

import shoal_trex  # perf/trex/shoal_trex.py, beside this file

TUNABLES = shoal_trex.STL_TARGET + shoal_trex.STL_CLIENTS + [
    shoal_trex.Tunable("pps", 120000.0, float,
                       "packets per second of the three streams together, split 7:4:1"),
]

# (frame size without the FCS, share of the packets): TRex's imix.py.
IMIX = [(60, 7), (590, 4), (1514, 1)]


class ShoalImix(object):
    def stream(self, args, size, pps):
        headers = shoal_trex.tcp_headers(args, args.client_first, args.sport_first,
                                         **shoal_trex.ESTABLISHED)
        data = size - len(headers)
        if data <= 6:
            headers[TCP].flags = "A"   # a pure ACK, Ethernet-padded to size
            pkt = shoal_trex.pad_frame(headers, size)
        else:
            headers[TCP].flags = "PA"
            pkt = headers / (b"x" * data)
        return shoal_trex.stl_stream("imix_%d" % size, pkt, shoal_trex.tuple_vm(args), pps, args.mac)

    def get_streams(self, tunables=None, direction=0, port_id=0, **kwargs):
        args = shoal_trex.parse_tunables(__file__, __doc__, TUNABLES, tunables, kwargs)
        total = sum(weight for _, weight in IMIX)
        return [self.stream(args, size, args.pps * weight / total) for size, weight in IMIX]


def register():
    return ShoalImix()

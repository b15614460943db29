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
import shoal_trex  # perf/trex/shoal_trex.py, beside this file

TUNABLES = shoal_trex.STL_TARGET + shoal_trex.STL_CLIENTS + [
    shoal_trex.Tunable("pps", 1000000.0, float, "packets per second (start's -m multiplies or replaces it)"),
]


class ShoalEstablished64(object):
    def get_streams(self, tunables=None, direction=0, port_id=0, **kwargs):
        args = shoal_trex.parse_tunables(__file__, __doc__, TUNABLES, tunables, kwargs)
        headers = shoal_trex.tcp_headers(args, args.client_first, args.sport_first, flags="A",
                                         **shoal_trex.ESTABLISHED)
        pkt = shoal_trex.pad_frame(headers, 60)
        return [shoal_trex.stl_stream("established_ack_64", pkt, shoal_trex.tuple_vm(args),
                                      args.pps, args.mac)]


def register():
    return ShoalEstablished64()

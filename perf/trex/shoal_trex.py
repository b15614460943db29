"""What Shoal's TRex profiles (perf/trex/stl_*.py, astf_*.py) share.

Not a profile: a module the profiles import. It holds the lab's addresses
(the defaults of the tunables), the tunables' parsing, the STL frame and
field-engine building blocks, the HTTP requests and the lab nginx's
responses, and the ASTF IP generator and template. Each profile keeps what
makes it different: its docstring (the first line is its `-t --help`
description), its defaults, its frames or programs.

How the profiles find it: TRex's loaders (STLProfile.load_py,
ASTFProfile.load_py, which trex-console's `start -f`, the Python API and
stl-sim / astf-sim all use) put the profile's directory first on sys.path
while they import the profile, so `import shoal_trex` finds this file
beside it. Copy it with the profiles. A console process imports it once:
restart the console after editing this file (a profile itself is reloaded
at every `start`).
"""
import argparse
import collections
import os

from trex.stl.api import (
    STLStream, STLPktBuilder, STLTXCont, STLScVmRaw, STLVmTupleGen,
    STLVmWrFlowVar, STLVmFixIpv4, STLVmFixChecksumHw, STLStreamDstMAC_PKT,
    STLStreamDstMAC_CFG_FILE, Ether, IP, TCP, Padding,
)
from trex.stl.trex_stl_packet_builder_scapy import CTRexVmInsFixHwCs
from trex.astf.api import (
    ASTFProfile, ASTFProgram, ASTFIPGenDist, ASTFIPGenGlobal, ASTFIPGen,
    ASTFTCPClientTemplate, ASTFTCPServerTemplate, ASTFAssociationRule,
    ASTFTemplate,
)

# The lab's (deploy/examples/lab-srv1.toml): the VIP, the cluster MAC, the
# clients. The profiles' tunables override them.
VIP = "198.18.0.100"
PORT = 80
CLUSTER_MAC = "02:00:c6:12:00:64"
CLIENT_FIRST = "198.18.1.1"
CLIENT_LAST = "198.18.1.254"

# --- tunables -----------------------------------------------------------------

# One `--name` option: its default, type (None: a string) and help.
Tunable = collections.namedtuple("Tunable", "name default type help")

# STL: where the frames go (Ethernet and IPv4 destinations, TCP port).
STL_TARGET = [
    Tunable("vip", VIP, None, "destination address (a VIP of the cluster)"),
    Tunable("port", PORT, int, "destination TCP port"),
    Tunable("mac", CLUSTER_MAC, None,
            "Ethernet destination: the cluster MAC; empty = the TRex port's configured destination"),
]
# STL: the client tuples an established-flow profile walks (tuple_vm).
STL_CLIENTS = [
    Tunable("client_first", CLIENT_FIRST, None, "first client address"),
    Tunable("client_last", CLIENT_LAST, None, "last client address"),
    Tunable("sport_first", 1025, int, "first client port"),
    Tunable("sport_last", 1088, int, "last client port"),
]
# ASTF: the server and the clients of the IP generator (astf_profile).
ASTF_TARGET = [
    Tunable("vip", VIP, None, "server address (a VIP of the cluster)"),
    Tunable("port", PORT, int, "server TCP port"),
    Tunable("client_first", CLIENT_FIRST, None, "first client address"),
    Tunable("client_last", CLIENT_LAST, None, "last client address"),
]


def cps(default):
    """ASTF: the --cps tunable with the profile's default."""
    return Tunable("cps", default, float, "new connections per second (start's -m multiplies it)")


def parse_tunables(profile_file, profile_doc, spec, tunables, kwargs, check=None):
    """argparse over TRex 3.x's tunables list; old clients pass kwargs.

    profile_file and profile_doc are the profile's __file__ and __doc__
    (the name and description of `-t --help`); spec lists its Tunables in
    --help order; check(args) may return an error message."""
    parser = argparse.ArgumentParser(
        prog=os.path.basename(profile_file), description=profile_doc.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for t in spec:
        parser.add_argument("--" + t.name, type=t.type, default=t.default, help=t.help)
    if tunables is None:  # TRex 2.x: tunables come as keyword arguments
        names = set(t.name for t in spec)
        tunables = []
        for key, value in kwargs.items():
            if key in names:
                tunables += ["--" + key, str(value)]
    args = parser.parse_args(list(tunables))
    error = check(args) if check else None
    if error:
        parser.error(error)
    return args


# --- STL ----------------------------------------------------------------------

# The TCP fields of the established-looking segments (stl_established_64, stl_imix).
ESTABLISHED = dict(seq=0x10000001, ack=0x20000001, window=502)


def tcp_headers(args, src, sport, **tcp):
    """Ethernet (to --mac, or left to the port's config) / IPv4 src -> --vip /
    TCP sport -> --port with the given TCP fields."""
    ether = Ether(dst=args.mac) if args.mac else Ether()
    return (ether
            / IP(src=src, dst=args.vip, ttl=64, id=0)
            / TCP(sport=sport, dport=args.port, **tcp))


def pad_frame(headers, size):
    """The frame padded to `size` bytes without the FCS: pad the Ethernet
    frame, not the segment (stl_stream's remove_fcs=False: the builder would
    take the padding for an FCS)."""
    pad = max(0, size - len(headers))
    return headers / Padding(load=b"\x00" * pad) if pad else headers


def tuple_vm(args):
    """Field engine: every (client address, source port) pair of --client_*
    x --sport_* in turn (STLVmTupleGen: the address moves first, the port
    when the addresses wrap), written to IPv4 source and TCP source port."""
    return [
        STLVmTupleGen(name="flow", ip_min=args.client_first, ip_max=args.client_last,
                      port_min=args.sport_first, port_max=args.sport_last, limit_flows=0),
        STLVmWrFlowVar(fv_name="flow.ip", pkt_offset="IP.src"),
        STLVmWrFlowVar(fv_name="flow.port", pkt_offset="TCP.sport"),
    ]


def stl_stream(name, pkt, vm, pps, mac):
    """A continuous stream of pkt at pps, the field engine vm followed by the
    checksum fixes: IPv4 in software, TCP by the NIC (STLVmFixChecksumHw).
    An empty mac leaves the destination to the TRex port's configuration."""
    vm = STLScVmRaw(list(vm) + [
        STLVmFixIpv4(offset="IP"),
        STLVmFixChecksumHw(l3_offset="IP", l4_offset="TCP",
                           l4_type=CTRexVmInsFixHwCs.L4_TYPE_TCP),
    ])
    return STLStream(name=name,
                     packet=STLPktBuilder(pkt=pkt, vm=vm, remove_fcs=False),
                     mode=STLTXCont(pps=pps),
                     mac_dst_override_mode=STLStreamDstMAC_PKT if mac else STLStreamDstMAC_CFG_FILE)


# --- HTTP (ASTF) ----------------------------------------------------------------

# The start of every lab nginx response (server_tokens off; fixed date: a template).
NGINX_HEAD = ("HTTP/1.1 200 OK\r\n"
              "Server: nginx\r\n"
              "Date: Thu, 04 Dec 2026 12:00:00 GMT\r\n")


def request(path, vip, connection):
    """GET path with Host: vip and `Connection: connection`."""
    return ("GET %s HTTP/1.1\r\n"
            "Host: %s\r\n"
            "User-Agent: trex-shoal/1\r\n"
            "Accept: */*\r\n"
            "Connection: %s\r\n"
            "\r\n" % (path, vip, connection)).encode("ascii")


def file_response_head(body_bytes):
    """The lab nginx's headers for a static file of body_bytes (Connection: close)."""
    return (NGINX_HEAD + (
        "Content-Type: application/octet-stream\r\n"
        "Content-Length: %d\r\n"
        "Last-Modified: Thu, 04 Dec 2026 12:00:00 GMT\r\n"
        "Connection: close\r\n"
        "ETag: \"69317a40-%x\"\r\n"
        "X-Served-By: trex\r\n"
        "Accept-Ranges: bytes\r\n"
        "\r\n" % (body_bytes, body_bytes))).encode("ascii")


def astf_profile(args, client, server):
    """One template: the client program from --client_first..--client_last
    (in sequence) to --vip:--port at --cps, the server program on --port."""
    ip_gen = ASTFIPGen(
        glob=ASTFIPGenGlobal(ip_offset="1.0.0.0"),
        dist_client=ASTFIPGenDist(ip_range=[args.client_first, args.client_last], distribution="seq"),
        dist_server=ASTFIPGenDist(ip_range=[args.vip, args.vip], distribution="seq"))
    template = ASTFTemplate(
        client_template=ASTFTCPClientTemplate(program=client, ip_gen=ip_gen, port=args.port, cps=args.cps),
        server_template=ASTFTCPServerTemplate(program=server, assoc=ASTFAssociationRule(port=args.port)))
    return ASTFProfile(default_ip_gen=ip_gen, templates=template)


class HttpGetClose(object):
    """An ASTF profile of one `GET path` per connection (Connection: close):
    astf_http_1k.py, astf_http_1m.py. register() of the profile returns one,
    made with its __file__, __doc__, path, body size and default --cps.

    Each connection: the client (--client_first..--client_last, TRex's own
    source ports) connects to --vip:--port, sends one GET of the path with
    `Connection: close`, waits for at least the body's bytes (plus whatever
    headers the server sends) and for the server to close, then closes.

    Against a Shoal cluster only the client side is used (port 0 of TRex's
    pair; the server port may be `dummy`, perf/trex/README.md): the cluster
    answers, with whatever headers its web servers send, and the client
    program needs no exact response size. The server side is a program too,
    so the profile also runs TRex-to-TRex (two ports back to back, a baseline
    without Shoal): it answers like the lab's nginx (deploy/lab,
    server_tokens off, X-Served-By) with the body's bytes, then closes."""

    def __init__(self, profile_file, profile_doc, path, body_bytes, default_cps):
        self.profile_file = profile_file
        self.profile_doc = profile_doc
        self.path = path
        self.body_bytes = body_bytes
        self.tunables = ASTF_TARGET + [cps(default_cps)]

    def get_profile(self, tunables=None, **kwargs):
        args = parse_tunables(self.profile_file, self.profile_doc, self.tunables, tunables, kwargs)
        req = request(self.path, args.vip, "close")
        head = file_response_head(self.body_bytes)

        client = ASTFProgram()
        client.send(req)
        client.recv(self.body_bytes)   # at least the body: any header size works
        client.wait_for_peer_close()   # the server closes after the response

        server = ASTFProgram()
        server.recv(len(req))
        server.send(head, size=len(head) + self.body_bytes, fill=b"shoal-lab-files!")
        # the program's end closes the connection, as nginx does here
        return astf_profile(args, client, server)

"""Shoal: HTTP/1.1 GET /files/1k, one request per connection (Connection: close).

TRex advanced stateful (ASTF) profile. Each connection: the client
(198.18.1.1-198.18.1.254, TRex's own source ports) connects to VIP:80,
sends one GET of /files/1k with `Connection: close`, waits for at least the
1024 bytes of the body (plus whatever headers the server sends) and for the
server to close, then closes. New connections at --cps per second
(start's -m multiplies it).

Against a Shoal cluster only the client side is used (port 0 of TRex's
pair; the server port may be `dummy`, perf/trex/README.md): the cluster
answers, with whatever headers its web servers send, and the client program
needs no exact response size. The server side below is a program too, so the profile also
runs TRex-to-TRex (two ports back to back, a baseline without Shoal): it
answers like the lab's nginx (deploy/lab, server_tokens off, X-Served-By)
with 1024 bytes of body.

Tunables (TRex 3.x: `start -f astf_http_1k.py -m 10 -t --cps 1000`; `-t
--help` lists them): --vip, --port, --client_first, --client_last, --cps.
Defaults are the lab's VIP 198.18.0.100. See perf/trex/README.md.
"""
import argparse

from trex.astf.api import (
    ASTFProfile, ASTFProgram, ASTFIPGenDist, ASTFIPGenGlobal, ASTFIPGen,
    ASTFTCPClientTemplate, ASTFTCPServerTemplate, ASTFAssociationRule,
    ASTFTemplate,
)

PATH = "/files/1k"
BODY_BYTES = 1024
DEFAULTS = {
    "vip": "198.18.0.100",
    "port": 80,
    "client_first": "198.18.1.1",
    "client_last": "198.18.1.254",
    "cps": 1000.0,
}


def parse_tunables(tunables, kwargs, description):
    """argparse over TRex 3.x's tunables list; old clients pass kwargs."""
    parser = argparse.ArgumentParser(
        prog="astf_http_1k.py", description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--vip", default=DEFAULTS["vip"], help="server address (a VIP of the cluster)")
    parser.add_argument("--port", type=int, default=DEFAULTS["port"], help="server TCP port")
    parser.add_argument("--client_first", default=DEFAULTS["client_first"], help="first client address")
    parser.add_argument("--client_last", default=DEFAULTS["client_last"], help="last client address")
    parser.add_argument("--cps", type=float, default=DEFAULTS["cps"],
                        help="new connections per second (start's -m multiplies it)")
    if tunables is None:  # TRex 2.x: tunables come as keyword arguments
        tunables = []
        for key, value in kwargs.items():
            if key in DEFAULTS:
                tunables += ["--" + key, str(value)]
    return parser.parse_args(list(tunables))


def request(vip):
    return ("GET %s HTTP/1.1\r\n"
            "Host: %s\r\n"
            "User-Agent: trex-shoal/1\r\n"
            "Accept: */*\r\n"
            "Connection: close\r\n"
            "\r\n" % (PATH, vip)).encode("ascii")


def response_head():
    """The lab nginx's headers for a static file (fixed date: a template)."""
    return ("HTTP/1.1 200 OK\r\n"
            "Server: nginx\r\n"
            "Date: Thu, 04 Dec 2026 12:00:00 GMT\r\n"
            "Content-Type: application/octet-stream\r\n"
            "Content-Length: %d\r\n"
            "Last-Modified: Thu, 04 Dec 2026 12:00:00 GMT\r\n"
            "Connection: close\r\n"
            "ETag: \"69317a40-%x\"\r\n"
            "X-Served-By: trex\r\n"
            "Accept-Ranges: bytes\r\n"
            "\r\n" % (BODY_BYTES, BODY_BYTES)).encode("ascii")


class ShoalHttp1k(object):
    def get_profile(self, tunables=None, **kwargs):
        args = parse_tunables(tunables, kwargs, __doc__.splitlines()[0])
        req = request(args.vip)
        head = response_head()

        client = ASTFProgram()
        client.send(req)
        client.recv(BODY_BYTES)        # at least the body: any header size works
        client.wait_for_peer_close()   # the server closes after the response

        server = ASTFProgram()
        server.recv(len(req))
        server.send(head, size=len(head) + BODY_BYTES, fill=b"shoal-lab-files!")
        # the program's end closes the connection, as nginx does here

        ip_gen = ASTFIPGen(
            glob=ASTFIPGenGlobal(ip_offset="1.0.0.0"),
            dist_client=ASTFIPGenDist(ip_range=[args.client_first, args.client_last], distribution="seq"),
            dist_server=ASTFIPGenDist(ip_range=[args.vip, args.vip], distribution="seq"))
        template = ASTFTemplate(
            client_template=ASTFTCPClientTemplate(program=client, ip_gen=ip_gen, port=args.port, cps=args.cps),
            server_template=ASTFTCPServerTemplate(program=server, assoc=ASTFAssociationRule(port=args.port)))
        return ASTFProfile(default_ip_gen=ip_gen, templates=template)


def register():
    return ShoalHttp1k()

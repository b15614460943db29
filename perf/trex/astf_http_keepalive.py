"""Shoal: several HTTP/1.1 GETs of /whoami on one keep-alive connection.

TRex advanced stateful (ASTF) profile. Each connection: the client
(198.18.1.1-198.18.1.254) connects to VIP:80 and sends --requests GETs of
/whoami with `Connection: keep-alive`, one after the other: each request
waits for --resp_bytes more bytes of response before the next is sent. The
client then closes. New connections at --cps per second (start's -m
multiplies it), so requests per second = cps x requests.

The client program counts response bytes (ASTF has no HTTP parser), so
--resp_bytes must be the exact size, headers and body, of one response of
the cluster's web server: measure it with
`curl -s -o /dev/null -w '%{size_header}+%{size_download}\n' http://VIP/whoami`
from a client (`curl` sends keep-alive). The default, 164, is the lab's
nginx (deploy/lab: 159 bytes of headers, `srvK\n`), measured on nginx
1.22 with the lab's settings. Too small a value sends the next request
before a response is complete (pipelining); too large a value makes every
connection wait for the server's keep-alive timeout.

Against a Shoal cluster only the client side is used (port 0 of TRex's
pair; the server port may be `dummy`, perf/trex/README.md). The server
side below is a program too, so the profile also runs TRex-to-TRex: it
answers each request with the lab nginx's response (--resp_bytes long, the
body padded) and waits for the client to close.

Tunables (TRex 3.x: `start -f astf_http_keepalive.py -t --requests 10
--cps 100`; `-t --help` lists them): --vip, --port, --client_first,
--client_last, --cps, --requests, --resp_bytes. See perf/trex/README.md.
"""
import argparse

from trex.astf.api import (
    ASTFProfile, ASTFProgram, ASTFIPGenDist, ASTFIPGenGlobal, ASTFIPGen,
    ASTFTCPClientTemplate, ASTFTCPServerTemplate, ASTFAssociationRule,
    ASTFTemplate,
)

PATH = "/whoami"
DEFAULTS = {
    "vip": "198.18.0.100",
    "port": 80,
    "client_first": "198.18.1.1",
    "client_last": "198.18.1.254",
    "cps": 100.0,
    "requests": 10,
    "resp_bytes": 164,
}


def parse_tunables(tunables, kwargs, description):
    """argparse over TRex 3.x's tunables list; old clients pass kwargs."""
    parser = argparse.ArgumentParser(
        prog="astf_http_keepalive.py", description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--vip", default=DEFAULTS["vip"], help="server address (a VIP of the cluster)")
    parser.add_argument("--port", type=int, default=DEFAULTS["port"], help="server TCP port")
    parser.add_argument("--client_first", default=DEFAULTS["client_first"], help="first client address")
    parser.add_argument("--client_last", default=DEFAULTS["client_last"], help="last client address")
    parser.add_argument("--cps", type=float, default=DEFAULTS["cps"],
                        help="new connections per second (start's -m multiplies it)")
    parser.add_argument("--requests", type=int, default=DEFAULTS["requests"],
                        help="GETs per connection")
    parser.add_argument("--resp_bytes", type=int, default=DEFAULTS["resp_bytes"],
                        help="exact bytes of one response, headers and body")
    if tunables is None:  # TRex 2.x: tunables come as keyword arguments
        tunables = []
        for key, value in kwargs.items():
            if key in DEFAULTS:
                tunables += ["--" + key, str(value)]
    args = parser.parse_args(list(tunables))
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    return args


def request(vip):
    return ("GET %s HTTP/1.1\r\n"
            "Host: %s\r\n"
            "User-Agent: trex-shoal/1\r\n"
            "Accept: */*\r\n"
            "Connection: keep-alive\r\n"
            "\r\n" % (PATH, vip)).encode("ascii")


def response(size):
    """The lab nginx's /whoami answer (fixed date: a template), `size` long:
    the body `srv1\n` grown with dots, Content-Length following it."""
    head = ("HTTP/1.1 200 OK\r\n"
            "Server: nginx\r\n"
            "Date: Thu, 04 Dec 2026 12:00:00 GMT\r\n"
            "Content-Type: text/plain\r\n"
            "Content-Length:%s%d\r\n"
            "Connection: keep-alive\r\n"
            "X-Served-By: trex\r\n"
            "\r\n")
    for space in (" ", "  "):  # optional whitespace before the value
        for length in range(5, max(6, size)):
            text = (head % (space, length)).encode("ascii") + b"srv1" + b"." * (length - 5) + b"\n"
            if len(text) == size:
                return text
    smallest = len((head % (" ", 5)).encode("ascii")) + 5
    raise ValueError("cannot build a %d-byte response (the smallest is %d)" % (size, smallest))


class ShoalHttpKeepalive(object):
    def get_profile(self, tunables=None, **kwargs):
        args = parse_tunables(tunables, kwargs, __doc__.splitlines()[0])
        req = request(args.vip)
        resp = response(args.resp_bytes)

        client = ASTFProgram()
        server = ASTFProgram()
        for _ in range(args.requests):
            client.send(req)
            client.recv(len(resp))     # a watermark: counts add up over the connection
            server.recv(len(req))
            server.send(resp)
        # the client closes after its last response; the server waits for it
        server.wait_for_peer_close()

        ip_gen = ASTFIPGen(
            glob=ASTFIPGenGlobal(ip_offset="1.0.0.0"),
            dist_client=ASTFIPGenDist(ip_range=[args.client_first, args.client_last], distribution="seq"),
            dist_server=ASTFIPGenDist(ip_range=[args.vip, args.vip], distribution="seq"))
        template = ASTFTemplate(
            client_template=ASTFTCPClientTemplate(program=client, ip_gen=ip_gen, port=args.port, cps=args.cps),
            server_template=ASTFTCPServerTemplate(program=server, assoc=ASTFAssociationRule(port=args.port)))
        return ASTFProfile(default_ip_gen=ip_gen, templates=template)


def register():
    return ShoalHttpKeepalive()

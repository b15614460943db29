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
from trex.astf.api import ASTFProgram

import shoal_trex  # perf/trex/shoal_trex.py, beside this file

PATH = "/whoami"
TUNABLES = shoal_trex.ASTF_TARGET + [
    shoal_trex.cps(100.0),
    shoal_trex.Tunable("requests", 10, int, "GETs per connection"),
    shoal_trex.Tunable("resp_bytes", 164, int, "exact bytes of one response, headers and body"),
]


def check(args):
    if args.requests < 1:
        return "--requests must be at least 1"
    return None


def response(size):
    """The lab nginx's /whoami answer (fixed date: a template), `size` long:
    the body `srv1\n` grown with dots, Content-Length following it."""
    head = (shoal_trex.NGINX_HEAD
            + "Content-Type: text/plain\r\n"
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
        args = shoal_trex.parse_tunables(__file__, __doc__, TUNABLES, tunables, kwargs, check)
        req = shoal_trex.request(PATH, args.vip, "keep-alive")
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
        return shoal_trex.astf_profile(args, client, server)


def register():
    return ShoalHttpKeepalive()

"""Shoal: HTTP/1.1 GET /files/1k, one request per connection (Connection: close).

TRex advanced stateful (ASTF) profile: shoal_trex.HttpGetClose (in
shoal_trex.py beside this file, which describes the client and server
programs) with /files/1k, a body of 1024 bytes and 1000 new connections per
second by default (--cps; start's -m multiplies it).

Tunables (TRex 3.x: `start -f astf_http_1k.py -m 10 -t --cps 1000`; `-t
--help` lists them): --vip, --port, --client_first, --client_last, --cps.
Defaults are the lab's VIP 198.18.0.100. See perf/trex/README.md.
"""
import shoal_trex  # perf/trex/shoal_trex.py, beside this file


def register():
    return shoal_trex.HttpGetClose(__file__, __doc__, path="/files/1k", body_bytes=1024,
                                   default_cps=1000.0)

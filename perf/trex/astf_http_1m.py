"""Shoal: HTTP/1.1 GET /files/1m, one request per connection (Connection: close).

TRex advanced stateful (ASTF) profile: astf_http_1k.py with /files/1m, a
body of 1 048 576 bytes (1 MiB) and 10 new connections per second by
default (--cps; start's -m multiplies it): 84 Mbit/s of bodies. Both are
shoal_trex.HttpGetClose (in shoal_trex.py beside this file, which describes
the client and server programs).

Tunables (TRex 3.x: `start -f astf_http_1m.py -m 10 -t --cps 10`; `-t
--help` lists them): the same as astf_http_1k.py's. See perf/trex/README.md.
"""
import shoal_trex  # perf/trex/shoal_trex.py, beside this file


def register():
    return shoal_trex.HttpGetClose(__file__, __doc__, path="/files/1m", body_bytes=1048576,
                                   default_cps=10.0)

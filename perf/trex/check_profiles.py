"""Compile every Shoal TRex profile offline and check what it would send.

Run by perf/trex/check.sh inside a venv that has the TRex client library
(lbr-trex-client). For each profile: load it with the library's own loader
(STLProfile.load_py / ASTFProfile.load_py, as trex-console does), compile it
to the JSON the TRex server receives, and check that JSON: the packet bytes
(decoded from base64), the field engine, the rates, the ASTF programs and
address ranges. Prints one line per profile; exits 1, naming the profile
and the problem, on any failure. No TRex server is needed or contacted.
"""
import base64
import ipaddress
import json
import os
import struct
import sys
import traceback
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # TRex 3.04 imports `imp`
sys.dont_write_bytecode = True  # no __pycache__ beside the profiles

import lbr_trex_client  # noqa: E402,F401  (sets up TRex's paths)
from trex.stl.api import STLProfile  # noqa: E402
from trex.astf.api import ASTFProfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# Python put this script's directory (perf/trex) first on sys.path; a
# trex-console's sys.path does not hold it. Drop it, so that the profiles
# find shoal_trex.py as in a real run: through the profile's directory,
# which STLProfile.load_py / ASTFProfile.load_py put on sys.path while they
# import the profile.
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != os.path.realpath(HERE)]
VIP = "198.18.0.100"
VIP_BYTES = bytes([0xC6, 0x12, 0x00, 0x64])
CLUSTER_MAC = bytes.fromhex("0200c6120064")
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class Failed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failed(what)


def ip_int(text):
    return int(ipaddress.IPv4Address(text))


def csum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


# --- STL ----------------------------------------------------------------------

def stl_load(name, **kwargs):
    path = os.path.join(HERE, name)
    profile = STLProfile.load_py(path, **kwargs)
    expect(profile is not None, "load_py returned nothing")
    streams = profile.to_json()
    json.dumps(streams)  # what the console sends must serialize
    return streams


def decode_frame(stream, vip=VIP_BYTES, port=80, mac=CLUSTER_MAC):
    """Checks the template frame of an STL stream; returns (frame, tcp flags)."""
    frame = base64.b64decode(stream["packet"]["binary"])
    name = stream.get("name")
    expect(len(frame) >= 54, "%s: frame of %d bytes, too short for Ethernet/IPv4/TCP" % (name, len(frame)))
    if mac is not None:
        expect(frame[0:6] == mac, "%s: Ethernet destination %s, not the cluster MAC %s"
               % (name, frame[0:6].hex(":"), mac.hex(":")))
        expect((stream["flags"] >> 1) & 3 == 1,
               "%s: destination MAC not taken from the packet (flags %d)" % (name, stream["flags"]))
    expect(frame[12:14] == b"\x08\x00", "%s: ethertype %s, not IPv4" % (name, frame[12:14].hex()))
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    expect(ip[0] >> 4 == 4 and ihl == 20, "%s: not a plain IPv4 header" % name)
    expect(ip[9] == 6, "%s: IP protocol %d, not TCP" % (name, ip[9]))
    expect(ip[16:20] == vip, "%s: IPv4 destination %s, not %s (%s)"
           % (name, ip[16:20].hex(), vip.hex(), ipaddress.IPv4Address(vip)))
    expect(csum(ip[:20]) == 0xFFFF, "%s: IPv4 header checksum wrong" % name)
    total = struct.unpack("!H", ip[2:4])[0]
    expect(14 + total <= len(frame), "%s: IPv4 length %d beyond the frame" % (name, total))
    tcp = ip[20:total]
    dport = struct.unpack("!H", tcp[2:4])[0]
    expect(dport == port, "%s: TCP destination port %d, not %d" % (name, dport, port))
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
    expect(csum(pseudo + tcp) == 0xFFFF, "%s: TCP checksum of the template wrong" % name)
    return frame, tcp[13], total


def vm_of(stream):
    return stream["vm"]["instructions"]


def check_vm_rewrites(stream, offsets):
    """The field engine writes the given offsets and fixes both checksums."""
    name = stream.get("name")
    vm = vm_of(stream)
    written = sorted(i["pkt_offset"] for i in vm if i["type"] == "write_flow_var")
    expect(written == sorted(offsets), "%s: field engine writes offsets %s, expected %s"
           % (name, written, sorted(offsets)))
    expect(any(i["type"] == "fix_checksum_ipv4" and i["pkt_offset"] == 14 for i in vm),
           "%s: no IPv4 checksum fix (fix_checksum_ipv4 at 14)" % name)
    hw = [i for i in vm if i["type"] == "fix_checksum_hw"]
    expect(hw and hw[0]["l2_len"] == 14 and hw[0]["l3_len"] == 20,
           "%s: no TCP checksum fix (fix_checksum_hw)" % name)


def check_tuple(stream, first="198.18.1.1", last="198.18.1.254", ports=(1025, 1088)):
    name = stream.get("name")
    tuples = [i for i in vm_of(stream) if i["type"] == "tuple_flow_var"]
    expect(len(tuples) == 1, "%s: expected one tuple generator, found %d" % (name, len(tuples)))
    t = tuples[0]
    expect((t["ip_min"], t["ip_max"]) == (ip_int(first), ip_int(last)),
           "%s: client range %s-%s, expected %s-%s" % (name, ipaddress.IPv4Address(t["ip_min"]),
                                                      ipaddress.IPv4Address(t["ip_max"]), first, last))
    expect((t["port_min"], t["port_max"]) == ports,
           "%s: client ports %d-%d, expected %d-%d" % (name, t["port_min"], t["port_max"], *ports))
    expect(t["limit_flows"] == 0, "%s: flow limit %d (0 = every pair)" % (name, t["limit_flows"]))
    check_vm_rewrites(stream, [26, 34])


def pps(stream):
    mode = stream["mode"]
    expect(mode["type"] == "continuous", "%s: mode %s, not continuous" % (stream.get("name"), mode["type"]))
    expect(mode["rate"]["type"] == "pps", "%s: rate in %s, not pps" % (stream.get("name"), mode["rate"]["type"]))
    return mode["rate"]["value"]


def check_established():
    streams = stl_load("stl_established_64.py")
    expect(len(streams) == 1, "expected 1 stream, got %d" % len(streams))
    s = streams[0]
    frame, flags, iplen = decode_frame(s)
    expect(len(frame) == 60, "frame of %d bytes, expected 60 (64 with the FCS)" % len(frame))
    expect(iplen == 40, "IPv4 length %d: the padding must not be TCP payload (pure ACK, 40)" % iplen)
    expect(flags == TCP_ACK, "TCP flags %#x, expected ACK only" % flags)
    check_tuple(s)
    expect(pps(s) == 1000000, "default rate %s pps, expected 1000000" % pps(s))
    # Tunables, TRex 3.x list form and the old keyword form.
    s = stl_load("stl_established_64.py",
                 tunables=["--vip", "198.18.0.101", "--port", "8080", "--pps", "5", "--mac", "",
                           "--client_first", "198.18.2.1", "--client_last", "198.18.2.10"])[0]
    decode_frame(s, vip=bytes([198, 18, 0, 101]), port=8080, mac=None)
    expect((s["flags"] >> 1) & 3 == 0, "--mac '' must leave the destination to the port's config")
    expect(pps(s) == 5, "--pps 5 gave %s" % pps(s))
    check_tuple(s, "198.18.2.1", "198.18.2.10")
    s = stl_load("stl_established_64.py", vip="198.18.0.102", pps=7)[0]
    decode_frame(s, vip=bytes([198, 18, 0, 102]))
    expect(pps(s) == 7, "pps=7 (keyword form) gave %s" % pps(s))
    return "1 stream, 60-byte ACK to %s:80, 254 x 64 client tuples, tunables honoured" % VIP


def check_synflood():
    streams = stl_load("stl_synflood.py")
    expect(len(streams) == 1, "expected 1 stream, got %d" % len(streams))
    s = streams[0]
    frame, flags, iplen = decode_frame(s)
    expect(len(frame) == 60, "frame of %d bytes, expected 60" % len(frame))
    expect(flags == TCP_SYN, "TCP flags %#x, expected SYN only" % flags)
    expect(frame[54:58] == bytes([2, 4, 0x05, 0xB4]), "no MSS 1460 option")
    variables = {i["name"]: i for i in vm_of(s) if i["type"] == "flow_var"}
    expect(set(variables) == {"src", "sport", "isn"}, "flow variables %s" % sorted(variables))
    for v in variables.values():
        expect(v["op"] == "random", "variable %s is %s, not random" % (v["name"], v["op"]))
    net = ipaddress.IPv4Network("198.18.128.0/17")
    lo, hi = variables["src"]["min_value"], variables["src"]["max_value"]
    expect(ipaddress.IPv4Address(lo) in net and ipaddress.IPv4Address(hi) in net and hi - lo > 30000,
           "sources %s-%s do not span 198.18.128.0/17"
           % (ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi)))
    check_vm_rewrites(s, [26, 34, 38])
    return "1 stream, 60-byte SYN (MSS) to %s:80, random source in 198.18.128.0/17, port, ISN" % VIP


def check_imix():
    streams = stl_load("stl_imix.py")
    expect(len(streams) == 3, "expected 3 streams, got %d" % len(streams))
    sizes = []
    rates = []
    for s in streams:
        frame, flags, iplen = decode_frame(s)
        sizes.append(len(frame))
        rates.append(pps(s))
        if len(frame) == 60:
            expect(flags == TCP_ACK and iplen == 40, "%s: the 60-byte frame must be a pure ACK" % s["name"])
        else:
            expect(flags == TCP_PSH | TCP_ACK, "%s: flags %#x, expected PSH+ACK" % (s["name"], flags))
            expect(iplen == len(frame) - 14, "%s: IPv4 length %d for a %d-byte frame"
                   % (s["name"], iplen, len(frame)))
        check_tuple(s)
    expect(sizes == [60, 590, 1514], "frame sizes %s, expected [60, 590, 1514]" % sizes)
    expect(abs(sum(rates) - 120000) < 1e-6, "total rate %s, expected 120000 pps" % sum(rates))
    expect(all(abs(r / rates[2] - w) < 1e-9 for r, w in zip(rates, (7, 4, 1))),
           "rates %s not in the ratio 7:4:1" % rates)
    half = stl_load("stl_imix.py", tunables=["--pps", "1200"])
    expect([pps(s) for s in half] == [700, 400, 100], "--pps 1200 split %s" % [pps(s) for s in half])
    return "3 streams, 60/590/1514-byte frames at 7:4:1 of --pps to %s:80" % VIP


# --- ASTF ---------------------------------------------------------------------

def astf_load(name, **kwargs):
    path = os.path.join(HERE, name)
    profile = ASTFProfile.load_py(path, **kwargs)
    expect(profile is not None, "load_py returned nothing")
    data = json.loads(profile.to_json_str(pretty=False))
    return data


def buffer(data, index):
    """An ASTF buffer's bytes (a base64 string, or base + fill up to size)."""
    b = data["buf_list"][index]
    if isinstance(b, str):
        return base64.b64decode(b)
    base = base64.b64decode(b["base"])
    fill = base64.b64decode(b.get("fill", "")) or b"\x00"
    rest = b["size"] - len(base)
    return base + (fill * (rest // len(fill) + 1))[:rest]


def one_template(data, cps, client="198.18.1.1-198.18.1.254", port=80):
    expect(len(data["templates"]) == 1, "expected 1 template, got %d" % len(data["templates"]))
    t = data["templates"][0]
    c, s = t["client_template"], t["server_template"]
    expect(c["port"] == port, "client template connects to port %s, not %d" % (c["port"], port))
    expect(c["cps"] == cps, "client template cps %s, expected %s" % (c["cps"], cps))
    expect([a.get("port") for a in s["assoc"]] == [port], "server template accepts %s, not port %d"
           % (s["assoc"], port))
    dists = data["ip_gen_dist_list"]
    dc = dists[c["ip_gen"]["dist_client"]["index"]]
    ds = dists[c["ip_gen"]["dist_server"]["index"]]
    first, last = client.split("-")
    expect((dc["ip_start"], dc["ip_end"], dc["dir"]) == (first, last, "c"),
           "client range %s-%s, expected %s" % (dc["ip_start"], dc["ip_end"], client))
    expect((ds["ip_start"], ds["ip_end"], ds["dir"]) == (VIP, VIP, "s"),
           "server range %s-%s, expected the VIP %s only" % (ds["ip_start"], ds["ip_end"], VIP))
    programs = data["program_list"]
    return programs[c["program_index"]]["commands"], programs[s["program_index"]]["commands"]


def http_head(resp):
    head, sep, body = resp.partition(b"\r\n\r\n")
    expect(sep, "server response has no end of headers")
    lines = head.split(b"\r\n")
    expect(lines[0] == b"HTTP/1.1 200 OK", "server status line %r" % lines[0])
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        fields[k.strip().lower()] = v.strip()
    expect(int(fields.get(b"content-length", b"-1")) == len(body),
           "Content-Length %s but %d bytes of body" % (fields.get(b"content-length"), len(body)))
    return fields, body


def check_close_mode(name, path, body_bytes, cps):
    data = astf_load(name)
    client, server = one_template(data, cps)
    expect([c["name"] for c in client] == ["tx", "rx", "nc"],
           "client program %s, expected send, recv, wait for close" % [c["name"] for c in client])
    req = buffer(data, client[0]["buf_index"])
    expect(req.startswith(b"GET " + path.encode() + b" HTTP/1.1\r\n"), "request line %r" % req[:40])
    expect(b"\r\nHost: " + VIP.encode() + b"\r\n" in req, "no Host: %s header" % VIP)
    expect(b"\r\nConnection: close\r\n" in req, "no Connection: close header")
    expect(req.endswith(b"\r\n\r\n"), "request not terminated by an empty line")
    expect(client[1]["min_bytes"] == body_bytes, "client waits for %d bytes, expected the body's %d"
           % (client[1]["min_bytes"], body_bytes))
    expect([c["name"] for c in server] == ["rx", "tx"], "server program %s" % [c["name"] for c in server])
    expect(server[0]["min_bytes"] == len(req), "server reads %d bytes, the request has %d"
           % (server[0]["min_bytes"], len(req)))
    fields, body = http_head(buffer(data, server[1]["buf_index"]))
    expect(len(body) == body_bytes, "response body %d bytes, expected %d" % (len(body), body_bytes))
    expect(fields.get(b"connection") == b"close", "response without Connection: close")
    other = astf_load(name, tunables=["--vip", "198.18.0.101", "--cps", "3"])
    d = other["ip_gen_dist_list"][other["templates"][0]["client_template"]["ip_gen"]["dist_server"]["index"]]
    expect(d["ip_start"] == "198.18.0.101" and other["templates"][0]["client_template"]["cps"] == 3,
           "--vip / --cps tunables not honoured")
    return "GET %s, Connection: close, %s:80 from 198.18.1.1-254, server answers %d body bytes" % (
        path, VIP, body_bytes)


def check_keepalive():
    data = astf_load("astf_http_keepalive.py")
    client, server = one_template(data, 100.0)
    names = [c["name"] for c in client]
    expect(names == ["tx", "rx"] * 10, "client program %s, expected 10 x (send, recv)" % names)
    req = buffer(data, client[0]["buf_index"])
    expect(req.startswith(b"GET /whoami HTTP/1.1\r\n"), "request line %r" % req[:40])
    expect(b"\r\nHost: " + VIP.encode() + b"\r\n" in req, "no Host: %s header" % VIP)
    expect(b"\r\nConnection: keep-alive\r\n" in req, "no Connection: keep-alive header")
    expect(len({c["buf_index"] for c in client if c["name"] == "tx"}) == 1, "requests differ")
    marks = [c["min_bytes"] for c in client if c["name"] == "rx"]
    expect(marks == [164 * k for k in range(1, 11)], "client watermarks %s, expected 164 x k" % marks)
    snames = [c["name"] for c in server]
    expect(snames == ["rx", "tx"] * 10 + ["nc"], "server program %s" % snames)
    resp = buffer(data, server[1]["buf_index"])
    expect(len(resp) == 164, "response of %d bytes, expected 164 (the lab nginx's)" % len(resp))
    fields, body = http_head(resp)
    expect(fields.get(b"connection") == b"keep-alive", "response without Connection: keep-alive")
    other = astf_load("astf_http_keepalive.py", tunables=["--requests", "3", "--resp_bytes", "300"])
    oc, os_ = one_template(other, 100.0)
    expect([c["min_bytes"] for c in oc if c["name"] == "rx"] == [300, 600, 900],
           "--requests 3 --resp_bytes 300 gave %s" % oc)
    expect(len(buffer(other, os_[1]["buf_index"])) == 300, "--resp_bytes 300 not honoured by the server side")
    return "10 x GET /whoami keep-alive on one connection to %s:80, 164-byte responses" % VIP


CHECKS = [
    ("stl_established_64.py", check_established),
    ("stl_synflood.py", check_synflood),
    ("stl_imix.py", check_imix),
    ("astf_http_1k.py", lambda: check_close_mode("astf_http_1k.py", "/files/1k", 1024, 1000.0)),
    ("astf_http_1m.py", lambda: check_close_mode("astf_http_1m.py", "/files/1m", 1048576, 10.0)),
    ("astf_http_keepalive.py", check_keepalive),
]


def main():
    failed = 0
    profiles = sorted(f for f in os.listdir(HERE) if f.startswith(("stl_", "astf_")) and f.endswith(".py"))
    unchecked = set(profiles) - {name for name, _ in CHECKS}
    for name in sorted(unchecked):
        print("FAIL %s: a profile without a check in check_profiles.py" % name)
        failed += 1
    for name, check in CHECKS:
        try:
            what = check()
        except Failed as e:
            print("FAIL %s: %s" % (name, e))
            failed += 1
        except BaseException as e:  # a profile that does not compile (TRexError, SystemExit, ...)
            print("FAIL %s: does not compile: %s: %s" % (name, type(e).__name__, str(e).strip()))
            traceback.print_exc(limit=3)
            failed += 1
        else:
            print("ok   %s: %s" % (name, what))
    total = len(CHECKS) + len(unchecked)
    print("trex-profiles: %d passed, %d failed" % (total - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""A stand-in for `shoal-dataplane run`, used only by selftest.sh to test the lab.

It does what the lab expects from the real dataplane at startup and nothing
more: read the rendered config (so it must be valid TOML), create the TAP of
the kernel port, hold it open (carrier up, LOWER_UP) and copy every frame
between the wire port (AF_PACKET) and the TAP, unchanged. It makes no
decisions: no ARP answers, no selection, no VIP handling. With it, the lab's
dataplane path (start, wait for shoal0, configure shoal0, nginx, down) can be
tested while the real `run` command does not exist.

Usage (as the lab calls the real binary): fake-dataplane.py run --config FILE
"""
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import tomllib

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main() -> int:
    if len(sys.argv) != 4 or sys.argv[1] != "run" or sys.argv[2] != "--config":
        print("usage: fake-dataplane.py run --config FILE", file=sys.stderr)
        return 2
    with open(sys.argv[3], "rb") as f:
        config = tomllib.load(f)
    ports = {p["role"]: p["device"] for p in config["dataplane"]["ports"]}
    wire, kernel = ports["wire"], ports["kernel"]
    if config["dataplane"]["backend"] != "portable":
        print("fake-dataplane: only backend = \"portable\" (plain interface names)", file=sys.stderr)
        return 2

    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH", kernel.encode(), IFF_TAP | IFF_NO_PI))
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    raw.bind((wire, 0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"fake-dataplane: {config['cluster']['local_member']}: {wire} <-> {kernel}", flush=True)

    while True:
        ready, _, _ = select.select([tap, raw], [], [])
        if raw in ready:
            frame, addr = raw.recvfrom(65535)
            if addr[2] != PACKET_OUTGOING:
                os.write(tap, frame)
        if tap in ready:
            raw.send(os.read(tap, 65535))


if __name__ == "__main__":
    sys.exit(main())

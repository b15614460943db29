#!/usr/bin/env python3
"""Regenerates the malformed-packet corpus (see README.md). Deterministic:
running it again rewrites identical files. Usage: python3 generate.py"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DST_MAC = bytes([0x02, 0, 0, 0, 0, 0x02])
SRC_MAC = bytes([0x02, 0, 0, 0, 0, 0x01])
CLIENT = bytes([198, 18, 0, 100])
VIP = bytes([198, 18, 10, 1])


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(ethertype, payload):
    return DST_MAC + SRC_MAC + struct.pack("!H", ethertype) + payload


def ipv4(proto, payload, ihl=5, total=None, options=b"", version=4, good_csum=True,
         src=CLIENT, dst=VIP):
    hlen = ihl * 4
    total = hlen + len(payload) if total is None else total
    header = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, 0x1234, 0x4000,
                         64, proto, 0, src, dst) + options
    c = csum(header[:max(hlen, 20)]) if good_csum else 0xBAD0
    header = header[:10] + struct.pack("!H", c) + header[12:]
    return header + payload


def tcp(options=b"", offset=None, payload=b"", flags=0x02, good_csum=True):
    offset = 5 + len(options) // 4 if offset is None else offset
    seg = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 0, offset << 4, flags, 64240, 0, 0)
    seg += options + payload
    pseudo = CLIENT + VIP + struct.pack("!BBH", 0, 6, len(seg))
    c = csum(pseudo + seg) if good_csum else 0xBAD0
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(length, payload):
    dgram = struct.pack("!HHHH", 5353, 53, length, 0) + payload
    return dgram


def icmp(kind, code, rest):
    msg = bytes([kind, code, 0, 0]) + rest
    return msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]


def arp(hlen, plen, size):
    fixed = struct.pack("!HHBBH", 1, 0x0800, hlen, plen, 1)
    return (fixed + bytes(range(1, 1 + 2 * (hlen + plen))))[:size]


def garbage(n, seed=0x5EED):
    out = bytearray()
    x = seed
    for _ in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append((x >> 16) & 0xFF)
    return bytes(out)


LINUX_SYN_OPTIONS = bytes([2, 4, 5, 0xB4, 4, 2, 8, 10, 0x9F, 0x3C, 0x6D, 0x21, 0, 0, 0, 0,
                           1, 3, 3, 7])

FILES = {
    "valid_linux_syn.bin": eth(0x0800, ipv4(6, tcp(LINUX_SYN_OPTIONS))),
    "runt.bin": eth(0x0800, b"")[:10],
    "vlan_tag_truncated.bin": DST_MAC + SRC_MAC + bytes([0x81, 0x00, 0x00, 0x64]),
    "qinq_tag_truncated.bin": DST_MAC + SRC_MAC
    + bytes([0x88, 0xA8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xC8]),
    "ipv4_truncated.bin": eth(0x0800, ipv4(6, tcp())[:12]),
    "garbage.bin": eth(0x0800, bytes([0x9A]) + garbage(45)),
    "ipv4_ihl_3.bin": eth(0x0800, ipv4(6, tcp(), ihl=3, total=40)[:20] + tcp()),
    "ipv4_ihl_beyond_total.bin": eth(0x0800, ipv4(6, bytes(40), ihl=15, total=40,
                                                  options=bytes([1] * 40))),
    "ipv4_total_len_beyond_frame.bin": eth(0x0800, ipv4(6, tcp(), total=1500)),
    "ipv4_option_len_0.bin": eth(0x0800, ipv4(6, tcp(), ihl=6, options=bytes([0x94, 0, 0, 0]))),
    "ipv4_bad_checksum.bin": eth(0x0800, ipv4(6, tcp(), good_csum=False)),
    "tcp_data_offset_4.bin": eth(0x0800, ipv4(6, tcp(offset=4))),
    "tcp_data_offset_beyond_segment.bin": eth(0x0800, ipv4(6, tcp(offset=15))),
    "tcp_option_len_0.bin": eth(0x0800, ipv4(6, tcp(options=bytes([2, 0, 5, 0xB4])))),
    "tcp_option_overrun.bin": eth(0x0800, ipv4(6, tcp(options=bytes([1, 1, 8, 10])))),
    "tcp_mss_len_3.bin": eth(0x0800, ipv4(6, tcp(options=bytes([2, 3, 5, 1])))),
    "tcp_bad_checksum.bin": eth(0x0800, ipv4(6, tcp(good_csum=False))),
    "udp_len_7.bin": eth(0x0800, ipv4(17, udp(7, b"\x00" * 4))),
    "udp_len_beyond_datagram.bin": eth(0x0800, ipv4(17, udp(20, b"\x00" * 4))),
    "arp_hlen_8.bin": eth(0x0806, arp(8, 4, 32)),
    "arp_truncated.bin": eth(0x0806, arp(6, 4, 20)),
    "icmp_truncated.bin": eth(0x0800, ipv4(1, bytes([8, 0, 0xF7, 0xFF]))),
    "icmp_redirect.bin": eth(0x0800, ipv4(1, icmp(5, 1, bytes([198, 18, 0, 1])))),
    "ipip_inner_bad_version.bin": eth(0x0800, ipv4(4, bytes([0x65]) + ipv4(6, tcp())[1:],
                                                   src=bytes([198, 18, 1, 1]),
                                                   dst=bytes([198, 18, 1, 2]))),
}

if __name__ == "__main__":
    for name, data in FILES.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print("%-40s %4d bytes" % (name, len(data)))

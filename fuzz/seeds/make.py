#!/usr/bin/env python3
"""Writes the generated seed corpora of fuzz/seeds/ (run from anywhere;
deterministic). The pipeline seeds are scenarios written op by op (the
encoding of fuzz/src/pipeline.rs, `Op::decode`): whole connections in
every mode, so coverage-guided runs start deep in the splice, handoff
and DPR paths instead of at the parsers. The structured targets get
deterministic pseudo-random bytes (their inputs are read through
`arbitrary`, which accepts any bytes)."""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# Operation codes of fuzz/src/pipeline.rs (`Op::decode`, code % 20).
SYN, DATA, ACK, FIN, RST, ODD = 0, 1, 2, 3, 4, 5
K_SYNACK, K_DATA, K_ACK, K_FIN, K_RST, K_STRAY = 6, 7, 8, 9, 10, 11
RAW, MUTATE, REPLAY, ICMP, DELIVER, WAIT, EPOCH, CONFIRM = 12, 13, 14, 15, 16, 17, 18, 19


def every_kernel(code, *args):
    out = []
    for m in range(3):
        out += [code, m, *args]
    return out


def connection(c, request, response, isn):
    """One client's connection through to its close."""
    ops = [SYN, c, DELIVER]
    ops += [K_SYNACK, 0, *struct.pack("<I", isn), K_SYNACK, 1, *struct.pack("<I", isn + 1),
            K_SYNACK, 2, *struct.pack("<I", isn + 2), DELIVER]
    ops += [ACK, c, DELIVER, DATA, c, request, 255, DELIVER]
    for m in range(3):
        ops += [K_SYNACK, m, *struct.pack("<I", isn + 16 * m)]
    ops += [DELIVER, *every_kernel(K_ACK), DELIVER]
    ops += [*every_kernel(K_DATA, response), DELIVER, ACK, c, DELIVER]
    # A second request on the same connection (persistent).
    ops += [DATA, c, (request + 1) % 6, 255, DELIVER, WAIT, 50, 0, DELIVER]
    for m in range(3):
        ops += [K_SYNACK, m, *struct.pack("<I", isn + 64 * m)]
    ops += [DELIVER, *every_kernel(K_DATA, response), DELIVER, ACK, c, DELIVER]
    ops += [FIN, c, DELIVER, *every_kernel(K_FIN), DELIVER, ACK, c, DELIVER]
    return ops


def scenario(mode, capacity, ops):
    return bytes([mode, capacity] + ops)


def main():
    d = os.path.join(HERE, "pipeline")
    os.makedirs(d, exist_ok=True)
    names = ["local", "dpr_mac", "dpr_mac_stateful", "dpr_ipip", "dpr_ipip_stateful",
             "splice", "splice_rare", "splice_first_request"]
    for mode, name in enumerate(names):
        ops = connection(0, 0, 0, 0x10000000)
        with open(os.path.join(d, f"{name}_one_connection"), "wb") as f:
            f.write(scenario(mode, 60, ops))
        # Several clients interleaved, an epoch change and its
        # confirmation in the middle, replays, an ICMP error, time passing.
        ops = []
        for c in range(3):
            ops += [SYN, c, DELIVER]
        ops += [EPOCH, 1, 0, 1, 0, 0, 0, 10, 200, 30, SYN, 3, DELIVER, CONFIRM, SYN, 4, DELIVER]
        for c in range(5):
            ops += connection(c, c, c % 5, 0x20000000 + c)[3:]
        ops += [REPLAY, 3, REPLAY, 9, ICMP, 1, 1, 0xdc, 0x05, MUTATE, 40, 0, 0x12]
        ops += [WAIT, 0x10, 0x27, WAIT, 0xff, 0xff, DELIVER]
        with open(os.path.join(d, f"{name}_interleaved_epoch"), "wb") as f:
            f.write(scenario(mode, 12, ops))
    # The cookie policy (mode bit 7), with the request naming a member.
    with open(os.path.join(d, "splice_cookie"), "wb") as f:
        f.write(scenario(0x85, 60, connection(1, 1, 0, 0x30000000)))
    # Forged and stray traffic: odd segments, kernel strays, raw garbage.
    ops = [SYN, 0, DELIVER, ODD, 0, 0x04, *struct.pack("<i", 1000), *struct.pack("<i", 0), 0,
           ODD, 0, 0x12, *struct.pack("<i", -5), *struct.pack("<i", 7), 10,
           K_STRAY, 0, 1, 0x10, K_STRAY, 1, 2, 0x04, RAW, 0, 1, 8, *b"\xff" * 8, RST, 0, 0, 0, 0, 0]
    for mode in (0, 2, 5):
        with open(os.path.join(d, f"forged_mode{mode}"), "wb") as f:
            f.write(scenario(mode, 20, ops))

    rng = random.Random(0x5EED)
    for target, sizes in {
        "handoff": (64, 200, 600),
        "membership": (64, 300, 900),
        "channel": (100, 600, 2100),
        "snapshot": (64, 500, 1500),
        "response_framing": (50, 300),
    }.items():
        d = os.path.join(HERE, target)
        os.makedirs(d, exist_ok=True)
        for n in sizes:
            with open(os.path.join(d, f"random_{n}"), "wb") as f:
                f.write(bytes(rng.randrange(256) for _ in range(n)))


if __name__ == "__main__":
    main()

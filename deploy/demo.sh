#!/usr/bin/env bash
# The README's demo, on a fresh Debian 12 as root:
# 1. build Shoal (with DPDK), generate client traffic toward the VIP of a
#    3-member cluster, replay it through the real pipeline as each member and
#    show that every connection is taken by exactly one member;
# 2. bring up the lab (3 servers in network namespaces on one broadcast hub,
#    shoal-dataplane on DPDK, nginx behind it), send real HTTP requests from
#    the client namespace, print which server answered what, tear it down.
# Installs what it needs; leaves nothing behind but the build in ./target.
set -euo pipefail
cd "$(dirname "$0")/.."

. deploy/prereqs.sh
ensure_packages build-essential pkg-config python3 curl ca-certificates clang libclang-dev libdpdk-dev dpdk \
    iproute2 ethtool nginx-light wrk openssl procps util-linux
ensure_rust

echo "== building shoal-dataplane (release)"
cargo build --release --locked -q -p shoal-dataplane --features dpdk
cargo build --release --locked -q -p shoal-control
BIN=target/release
CONFIG=deploy/examples/replay.toml
WORK=$(mktemp -d /tmp/shoal-demo.XXXXXX)
trap 'deploy/lab/lab down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

$BIN/shoalctl check-config "$CONFIG"
CONNS=300
$BIN/shoal-dataplane gen-trace --config "$CONFIG" --out "$WORK/clients.pcap" --connections $CONNS --clients 30
for m in srv1 srv2 srv3; do
    $BIN/shoal-dataplane replay --config "$CONFIG" --member $m --in "$WORK/clients.pcap" \
        --out "$WORK/$m-wire.pcap" --kernel-out "$WORK/$m-kernel.pcap" > "$WORK/$m.json"
done

python3 - "$WORK" "$CONNS" <<'PY'
import json, sys
work, conns = sys.argv[1], int(sys.argv[2])
print()
print("Every server sees every client frame; the ring hash picks one inspector per connection.")
print(f"{'member':8} {'SYNs taken':>10} {'left to others':>15} {'frames to kernel':>17} {'ARP replies':>12} {'dropped silently':>17}")
total = 0
for m in ("srv1", "srv2", "srv3"):
    c = json.load(open(f"{work}/{m}.json"))["counters"]
    total += c["syn_accepted"]
    print(f"{m:8} {c['syn_accepted']:>10} {c['syn_other_inspector']:>15} {c['kernel_tx_packets']:>17}"
          f" {c['arp_vip_replied']:>12} {c['vip_no_flow']:>17}")
print()
if total != conns:
    sys.exit(f"FAILED: {total} connections accepted in total, expected exactly {conns}")
print(f"OK: all {conns} connections were accepted by exactly one member.")
PY

echo
echo "== the lab: 3 servers, one VIP, shoal-dataplane on DPDK (net_af_packet + net_tap)"
export SHOAL_BIN_DIR="$PWD/$BIN"
deploy/lab/lab up --nodes 3 --backend dpdk
deploy/lab/lab status
echo
echo "== 30 requests from the client (one connection each) to http://198.18.0.100"
deploy/lab/lab client bash -c '
  for i in $(seq 1 30); do
    curl -s -m 10 -H "Connection: close" -o /dev/null -w "%header{x-served-by}\n" http://198.18.0.100/whoami
  done | sort | uniq -c | sed "s/^/   /"
  sum=$(curl -s -m 30 http://198.18.0.100/files/8m | sha256sum | cut -d" " -f1)
  echo "   /files/8m through the VIP: sha256 $sum"'
echo "   (status above lists the expected sha256)"
deploy/lab/lab down

#!/usr/bin/env bash
# SYN flood against the lab (issue 17): spoofed SYNs from the client
# namespace while legitimate clients connect, for the `local` service with
# syn_proxy = "off", "on" and "auto" (MODES), each on a fresh lab.
# Settings (environment): FLOOD_SECONDS (40), FLOOD_COUNT (50 000 000),
# CONNS (400), PARALLEL (8), WORKERS (dataplane workers per server, 2),
# FLOW_CAPACITY (flows per worker; default the lab's 65 536), MODES.
#
#   flock /tmp/shoal-lab.lock bash perf/synflood/run.sh
#
# Needs root, the release binaries (SHOAL_BIN_DIR, default
# ${CARGO_TARGET_DIR:-target}/release):
#   cargo build --release -p shoal-dataplane --features dpdk -p shoal-control -p shoal-lab
#   cargo build --release -p shoal-perf --bin shoal-synflood
#
# Per mode:
#   1. `lab up --mode local` with a base config rendered by the lab itself
#      (`lab dataplane-config`) plus `syn_proxy`. Each server's kernel gets a
#      route for 198.18.0.0/15 through a gateway that does not exist
#      (198.18.0.1, permanent neighbour 02:00:c6:12:00:01), as an
#      internet-facing server has a default route: without it the kernel
#      would drop spoofed SYNs at the route lookup instead of keeping
#      SYN-RECV state and answering them.
#   2. shoal-synflood in shoal-client: spoofed SYNs (random sources in
#      198.18.0.0/15 outside the lab's 198.18.0.0/24, random ports) at the
#      highest rate it sustains, at most FLOOD_COUNT frames and
#      FLOOD_SECONDS seconds.
#   3. From 2 s into the flood: CONNS legitimate connections, PARALLEL at a
#      time, each `curl` of /files/1k (connect timeout 3 s, at most 6 s).
#   4. Samples before the flood, during it (twice) and after it (one SYN
#      timeout later): flows in every worker's flow table (from each
#      member's /metrics), RSS of every shoal-dataplane, SYN-RECV sockets
#      in every server kernel; and the counters that say where the SYNs
#      went.
# The machine's CPU, its core count and what else ran on it are printed
# with the figures. Any error of the harness (lab, generator, metrics) stops
# the script with a message and a non-zero status; so does syn_proxy = "on"
# missing the target of 99 % legitimate connections (after the report).
set -euo pipefail
cd "$(dirname "$0")/../.."
FLOOD_SECONDS=${FLOOD_SECONDS:-40}
FLOOD_COUNT=${FLOOD_COUNT:-50000000}
CONNS=${CONNS:-400}
PARALLEL=${PARALLEL:-8}
WORKERS=${WORKERS:-2}
MODES=${MODES:-off on auto}
# Flows per worker (default: the lab's own, 65 536).
FLOW_CAPACITY=${FLOW_CAPACITY:-}
LAB=deploy/lab/lab
RUN=/run/shoal-lab
export SHOAL_BIN_DIR=${SHOAL_BIN_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/release}

die() { echo "perf/synflood: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
for tool in curl python3 ip ss lscpu flock; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
for bin in shoal-dataplane shoal-control shoal-synflood; do
    [ -x "$SHOAL_BIN_DIR/$bin" ] || die "$SHOAL_BIN_DIR/$bin missing (see the build commands at the top of $0)"
done
# Nobody holds the lab's lock: this run is not under it either.
if flock -n /tmp/shoal-lab.lock true; then
    die "run me under the lab's lock: flock /tmp/shoal-lab.lock bash $0"
fi

OUT=$(mktemp -d /tmp/shoal-synflood-XXXXXX)
FLOOD_PID=
cleanup() {
    [ -n "$FLOOD_PID" ] && kill "$FLOOD_PID" 2>/dev/null || true
    $LAB down >/dev/null 2>&1 || true
    rm -rf "$OUT"
}
trap cleanup EXIT

# One server's /metrics text (from inside its namespace: not through the
# flooded data path). Fails loudly when unreachable.
metrics() {
    local k=$1
    ip netns exec "shoal-srv$k" curl -sf --max-time 3 "http://198.18.0.1$k:9464/metrics" \
        || die "srv$k: /metrics unreachable"
}

# sample LABEL MODE: appends one JSON line with flows, RSS, SYN-RECV and
# counters of every server.
sample() {
    local label=$1 mode=$2 k
    for k in 1 2 3; do
        metrics "$k" > "$OUT/metrics-$k"
        awk '/^VmRSS/ {print $2}' "/proc/$(cat "$RUN/srv$k/dataplane.pid")/status" > "$OUT/rss-$k" \
            || die "srv$k: shoal-dataplane is not running"
        ip netns exec "shoal-srv$k" ss -Htn state syn-recv | wc -l > "$OUT/synrecv-$k"
    done
    python3 - "$OUT" "$label" "$mode" >> "$OUT/samples" <<'PY'
import json, re, sys, time
out, label, mode = sys.argv[1:4]
def metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        m = re.match(r'^(\w+)(?:\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return int(total)
row = {"label": label, "mode": mode, "time": time.time(), "servers": []}
for k in (1, 2, 3):
    text = open(f"{out}/metrics-{k}").read()
    if "shoal_dataplane_flows_live" not in text:
        sys.exit(f"perf/synflood: srv{k}: no shoal_dataplane_flows_live in /metrics")
    row["servers"].append({
        "flows": metric(text, "shoal_dataplane_flows_live"),
        "flows_syn": metric(text, "shoal_dataplane_flows", state="syn"),
        "rss_kb": int(open(f"{out}/rss-{k}").read()),
        "syn_recv": int(open(f"{out}/synrecv-{k}").read()),
        "wire_rx": metric(text, "shoal_dataplane_packets_total", port="wire", direction="rx"),
        "kernel_tx": metric(text, "shoal_dataplane_packets_total", port="kernel", direction="tx"),
        "syn_accepted": metric(text, "shoal_dataplane_selections_total", outcome="syn_accepted"),
        # Every SYN the dataplane decided on (claimed or not).
        "syns": sum(metric(text, "shoal_dataplane_selections_total", outcome=o)
                    for o in ("syn_accepted", "syn_other_inspector", "claims_refused_lease",
                              "claims_refused_pending"))
                + metric(text, "shoal_dataplane_synproxy_total", event="cookie_sent")
                + metric(text, "shoal_dataplane_drops_total", reason="flow_table_full"),
        "cookies": metric(text, "shoal_dataplane_synproxy_total", event="cookie_sent"),
        "proxied": metric(text, "shoal_dataplane_synproxy_total", event="accepted"),
        "no_flow": metric(text, "shoal_dataplane_events_total", event="vip_no_flow"),
        "table_full": metric(text, "shoal_dataplane_drops_total", reason="flow_table_full"),
        "tx_full": metric(text, "shoal_dataplane_drops_total", reason="tx_queue_full")
                   + metric(text, "shoal_dataplane_drops_total", reason="steer_ring_full"),
    })
print(json.dumps(row))
PY
}

# The processes that used more than 5 % of a CPU over the next second
# (the lab's own and anything else on the machine).
neighbours() {
    python3 - <<'PY'
import os, time
def snap():
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                comm, rest = open(f"/proc/{p}/stat").read().rsplit(")", 1)
                f = rest.split()
                out[p] = (comm.split("(", 1)[1], int(f[11]) + int(f[12]))
            except (OSError, IndexError, ValueError):
                pass
    return out
a = snap(); time.sleep(1); b = snap()
tick = os.sysconf("SC_CLK_TCK")
use = sorted(((b[p][1] - a[p][1]) * 100 / tick, b[p][0]) for p in b if p in a)
print("; ".join(f"{name} {pct:.0f} %" for pct, name in reversed(use) if pct > 5))
PY
}

run_mode() {
    local mode=$1 base=$OUT/base-$mode.toml k
    $LAB down >/dev/null 2>&1 || true
    $LAB dataplane-config srv1 --nodes 3 --backend dpdk --workers "$WORKERS" --mode local > "$OUT/rendered.toml" \
        || die "lab dataplane-config failed"
    python3 - "$OUT/rendered.toml" "$mode" "$FLOW_CAPACITY" > "$base" <<'PY'
import re, sys
text, mode, capacity = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
if text.count("[[services]]\n") != 1:
    sys.exit("perf/synflood: expected one [[services]] in the lab's config")
text = text.replace("[[services]]\n", f'[[services]]\nsyn_proxy = "{mode}"\n')
if capacity:
    text, n = re.subn(r"(?m)^capacity = \d+$", f"capacity = {int(capacity)}", text)
    if n != 1:
        sys.exit("perf/synflood: expected one flow_table capacity in the lab's config")
print(text, end="")
PY
    $LAB up --nodes 3 --backend dpdk --workers "$WORKERS" --mode local --config "$base" > "$OUT/up.log" 2>&1 \
        || { cat "$OUT/up.log" >&2; die "lab up failed ($mode)"; }
    for k in 1 2 3; do
        ip netns exec "shoal-srv$k" ip neigh replace 198.18.0.1 lladdr 02:00:c6:12:00:01 dev shoal0 nud permanent
        ip netns exec "shoal-srv$k" ip route replace 198.18.0.0/15 via 198.18.0.1 dev shoal0
    done
    grep -q "syn_proxy = \"$mode\"" "$RUN/srv1/dataplane.toml" \
        || die "srv1's config does not say syn_proxy = \"$mode\""
    $LAB client curl -sf -o /dev/null --max-time 5 http://198.18.0.100/files/1k \
        || die "$mode: the lab does not serve http://198.18.0.100/files/1k"
    sleep 1
    sample before "$mode"

    ip netns exec shoal-client "$SHOAL_BIN_DIR/shoal-synflood" --iface eth0 \
        --dst-mac 02:00:c6:12:00:64 --dst 198.18.0.100 --port 80 \
        --count "$FLOOD_COUNT" --seconds "$FLOOD_SECONDS" \
        > "$OUT/flood-$mode.json" 2> "$OUT/flood-$mode.err" &
    FLOOD_PID=$!
    sleep 2
    kill -0 "$FLOOD_PID" 2>/dev/null || { cat "$OUT/flood-$mode.err" >&2; die "$mode: shoal-synflood stopped early"; }
    sample during "$mode"
    neighbours > "$OUT/neighbours-$mode"
    # Legitimate clients: CONNS connections, PARALLEL at a time; a failed
    # one prints code 000 (counted, not an error of the harness).
    local legit_start=$SECONDS
    ip netns exec shoal-client bash -c "seq $CONNS | xargs -P $PARALLEL -I{} \
        curl -s -o /dev/null --connect-timeout 3 --max-time 6 \
        -w '%{http_code} %{time_connect}\n' http://198.18.0.100/files/1k; true" \
        > "$OUT/legit-$mode"
    echo $((SECONDS - legit_start)) > "$OUT/legit-seconds-$mode"
    local legit_done_during=yes
    kill -0 "$FLOOD_PID" 2>/dev/null || legit_done_during=no
    [ "$legit_done_during" = yes ] && sample during "$mode"
    wait "$FLOOD_PID" || { cat "$OUT/flood-$mode.err" >&2; die "$mode: shoal-synflood failed"; }
    FLOOD_PID=
    # One SYN timeout (5 s) and a margin: the flood's half-open flows expire.
    sleep 7
    sample after "$mode"
    python3 - "$OUT" "$mode" "$legit_done_during" >> "$OUT/rows" <<'PY'
import json, sys
out, mode, during = sys.argv[1:4]
flood = json.loads(open(f"{out}/flood-{mode}.json").read())
lines = [l.split() for l in open(f"{out}/legit-{mode}").read().splitlines() if l.strip()]
ok = [float(t) for code, t in lines if code == "200"]
ok.sort()
p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))] * 1000 if ok else float("nan")
samples = [json.loads(l) for l in open(f"{out}/samples") if json.loads(l)["mode"] == mode]
print(json.dumps({
    "mode": mode, "flood": flood, "attempted": len(lines), "succeeded": len(ok),
    "p99_connect_ms": p99, "median_connect_ms": ok[len(ok) // 2] * 1000 if ok else float("nan"),
    "slow": sum(1 for t in ok if t >= 0.9),
    "legit_during_flood": during == "yes", "samples": samples,
    "neighbours": open(f"{out}/neighbours-{mode}").read().strip(),
    "legit_seconds": int(open(f"{out}/legit-seconds-{mode}").read()),
}))
PY
}

for mode in $MODES; do
    echo "perf/synflood: syn_proxy = \"$mode\" ..." >&2
    run_mode "$mode"
done
$LAB down >/dev/null 2>&1 || true

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, shared by the lab (3 servers x $WORKERS dataplane workers polling, 3 shoal-control, 3 nginx), the flood generator, curl and whatever else ran (below)"
echo "lab: 3 servers, dpdk backend, --workers $WORKERS, mode local, flow table $(sed -n 's/^capacity = //p' "$OUT"/base-*.toml | head -1) flows per worker, SYN timeout 5 s"
echo "flood: shoal-synflood, at most $FLOOD_COUNT SYNs and ${FLOOD_SECONDS} s; legitimate: $CONNS curl connections, $PARALLEL at a time, from 2 s into the flood"
python3 - "$OUT/rows" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print()
print("| syn_proxy | flood sent: SYNs in s (SYN/s) | SYNs srv1's dataplane decided on (/s of flood) | legitimate ok / attempted (in s) | p99 connect (ms) | median connect (ms) | connects ≥ 0.9 s (a SYN retransmitted) |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    s = r["samples"]
    syns = s[-1]["servers"][0]["syns"] - s[0]["servers"][0]["syns"]
    pct = 100 * r["succeeded"] / max(r["attempted"], 1)
    print(f'| {r["mode"]} | {r["flood"]["sent"]} in {r["flood"]["seconds"]:.1f} ({r["flood"]["rate"]:.0f}) '
          f'| {syns} ({syns / r["flood"]["seconds"]:.0f}) '
          f'| {r["succeeded"]} / {r["attempted"]} ({pct:.1f} %) in {r["legit_seconds"]} '
          f'| {r["p99_connect_ms"]:.1f} | {r["median_connect_ms"]:.1f} | {r["slow"]} |')
print()
print("| syn_proxy | sample | flows (srv1+2+3) | of which SYN | shoal-dataplane RSS MiB (srv1/2/3) | kernel SYN-RECV (srv1+2+3) | frames to kernels | SYNs with a flow | cookies sent | cookie ACKs accepted | drop_flow_table_full | vip_no_flow | tx/steer drops |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    first = r["samples"][0]["servers"]
    for s in r["samples"]:
        sv = s["servers"]
        tot = lambda k: sum(x[k] for x in sv)
        delta = lambda k: tot(k) - sum(x[k] for x in first)
        rss = "/".join(f'{x["rss_kb"] / 1024:.0f}' for x in sv)
        print(f'| {r["mode"]} | {s["label"]} | {tot("flows")} | {tot("flows_syn")} | {rss} | {tot("syn_recv")} '
              f'| {delta("kernel_tx")} | {delta("syn_accepted")} | {delta("cookies")} | {delta("proxied")} '
              f'| {delta("table_full")} | {delta("no_flow")} | {delta("tx_full")} |')
print()
for r in rows:
    if not r["legit_during_flood"]:
        print(f'note: syn_proxy = {r["mode"]}: the flood ended before the legitimate clients did')
    print(f'CPU users (> 5 % over 1 s, 2 s into the flood) with syn_proxy = {r["mode"]}: {r["neighbours"] or "none"}')
bad = [r for r in rows if r["mode"] == "on" and r["succeeded"] < 0.99 * r["attempted"]]
if bad:
    print(f'perf/synflood: syn_proxy = "on": {bad[0]["succeeded"]} of {bad[0]["attempted"]} '
          'legitimate connections succeeded, below the 99 % target', file=sys.stderr)
    sys.exit(3)
PY

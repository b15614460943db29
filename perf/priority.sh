#!/usr/bin/env bash
# Issue 15's speed goal, measured: with strict priority the interactive p99
# stays within 2x its unloaded value while a bulk class saturates the lab
# (CARISMA §7), and without classes it does not.
#
#   bash perf/priority.sh [RUNS]     (default 5 runs; about 1 minute each)
#
# Each run is the lab test interactive_p99_stays_low_under_bulk_with_strict_priority
# (tests/lab.rs: 3 servers, splice, one worker each; 48 clients downloading
# /slow/1m; one client fetching /whoami in a row under that load, and 500
# times alone before and after: the unloaded figure of the same run). The
# test asserts what is deterministic (no interactive request waits in the
# scheduler, busy answers, intact bulk bodies); this script prints every
# run's p99 figures and ratios, their median, and the verdict against the
# 2x goal. Exit status: 1 when a run fails or the median ratio with
# classes is above 2; the figures are printed either way.
#
# The lab shares this machine's cores with everything in it (3 dataplanes,
# 3 nginx, control, the clients): SHARED_WITH says what else ran.
set -euo pipefail
cd "$(dirname "$0")/.."
die() {
    echo "perf/priority.sh: error: $*" >&2
    exit 1
}
RUNS=${1:-5}
case "$RUNS" in '' | *[!0-9]*) die "RUNS must be a number, not '$RUNS'" ;; esac
[ "$(id -u)" = 0 ] || die "run as root (the lab needs network namespaces)"
. deploy/prereqs.sh
ensure_packages nginx-light curl python3 iproute2 util-linux || die "installing packages failed"
ensure_rust
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cargo build --release --locked -p shoal-dataplane -p shoal-control -p shoal-lab \
    --features shoal-dataplane/dpdk || die "release build failed"
export SHOAL_BIN_DIR=${SHOAL_BIN_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/release}
TEST=interactive_p99_stays_low_under_bulk_with_strict_priority
LOG=$(mktemp -d /tmp/shoal-priority.XXXXXX)
trap 'rm -rf "$LOG"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores;" \
    "shared with: the lab (3 dataplanes, nginx, control, clients)${SHARED_WITH:+, $SHARED_WITH}"
failed=0
for i in $(seq "$RUNS"); do
    if ! cargo test --release --locked -p shoal-e2e --test lab -- --ignored --exact "$TEST" \
        --test-threads=1 --nocapture >"$LOG/$i" 2>&1; then
        echo "run $i: the lab test FAILED:"
        grep -E "panicked|assert" -A3 "$LOG/$i" | head -20
        failed=1
    fi
    line=$(grep -o 'interactive p99:.*' "$LOG/$i" || true)
    [ -n "$line" ] || die "run $i printed no figures (log: $(tail -5 "$LOG/$i"))"
    echo "run $i: $line"
done
verdict=0
python3 - "$LOG" "$RUNS" <<'EOF' || verdict=1
import re, statistics, sys
log, runs = sys.argv[1], int(sys.argv[2])
with_r, without_r = [], []
for i in range(1, runs + 1):
    m = re.findall(r"\(x([0-9.]+);", open(f"{log}/{i}").read())
    if len(m) != 2:
        sys.exit(f"perf/priority.sh: error: run {i}: no ratios in its output")
    with_r.append(float(m[0]))
    without_r.append(float(m[1]))
mw, mo = statistics.median(with_r), statistics.median(without_r)
print(f"interactive p99 under bulk / unloaded, {runs} runs:")
print(f"  with strict priority: median x{mw:.2f} (min x{min(with_r):.2f}, max x{max(with_r):.2f}); goal <= x2: {'met' if mw <= 2 else 'NOT met'}")
print(f"  without classes:      median x{mo:.2f} (min x{min(without_r):.2f}, max x{max(without_r):.2f}); goal > x2: {'met' if mo > 2 else 'NOT met'}")
sys.exit(0 if mw <= 2 and mo > 2 else 1)
EOF
exit $((failed | verdict))

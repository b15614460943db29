#!/usr/bin/env bash
# The whole test suite, as the README's second command and CI (.ci/run) run it.
# Installs its own prerequisites idempotently (Debian 12, as root), then:
# cargo fmt --check, cargo clippy -D warnings, every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- prerequisites -----------------------------------------------------------
. deploy/prereqs.sh
ensure_packages build-essential pkg-config curl ca-certificates clang libclang-dev libdpdk-dev dpdk \
    iproute2 ethtool nginx-light wrk openssl python3 python3-venv procps tcpdump util-linux prometheus tmux bird2
ensure_rust
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Tests that need an external tool (promtool) fail instead of skipping.
export SHOAL_REQUIRE_TOOLS=1

# --- checks ------------------------------------------------------------------
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== perf report tool (perf/report.py)"
python3 -m unittest perf/test_report.py

echo "== fuzzing: every target briefly (fuzz/README.md; long runs: bash fuzz/run.sh)"
bash fuzz/run.sh --dev --seconds 10 --jobs 2

echo "== TRex profiles compile offline (perf/trex)"
bash perf/trex/check.sh

echo "== portable backend on a veth pair and a TAP (root, its own netns)"
cargo test --locked -p shoal-dataplane --test portable_netns -- --ignored

# --- end to end on the lab (root, network namespaces, DPDK vdevs) -----------
echo "== lab end-to-end tests (3 servers; DPDK and portable backends)"
cargo build --release --locked -p shoal-dataplane -p shoal-control --features shoal-dataplane/dpdk
cargo test --locked -p shoal-lab --test selftest -- --ignored
SHOAL_BIN_DIR="$PWD/target/release" \
    cargo test --locked -p shoal-e2e --test lab -- --ignored --test-threads=1
echo "== shoalctl top in a terminal (tmux) on the lab"
SHOAL_BIN_DIR="$PWD/target/release" \
    cargo test --locked -p shoal-e2e --test top -- --ignored --test-threads=1
echo "== benchmark suite, short (perf/smoke.sh: perf/run with 1-second runs)"
bash perf/smoke.sh
echo "== all tests passed"

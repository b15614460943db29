#!/usr/bin/env bash
# The whole test suite, as the README's second command and CI (.ci/run) run it.
# Installs its own prerequisites idempotently (Debian 12, as root), then:
# cargo fmt --check, cargo clippy -D warnings, every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- prerequisites -----------------------------------------------------------
PKGS=(build-essential pkg-config clang libclang-dev libdpdk-dev dpdk
      iproute2 ethtool nginx-light curl wrk openssl python3 procps tcpdump util-linux)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "== installing the Rust toolchain (rustup)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    . "$HOME/.cargo/env"
fi
for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" || true
done

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# --- checks ------------------------------------------------------------------
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked

# --- end to end on the lab (root, network namespaces, DPDK vdevs) -----------
echo "== lab end-to-end tests (3 servers; DPDK and portable backends)"
cargo build --release --locked -p shoal-dataplane --features dpdk
SHOAL_BIN_DIR="$PWD/target/release" \
    cargo test --locked -p shoal-e2e --test lab -- --ignored --test-threads=1
echo "== all tests passed"

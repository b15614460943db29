#!/usr/bin/env bash
# CI check of the TRex profiles (perf/trex): compiles every profile offline
# with the TRex client library and checks the JSON a TRex server would get
# (check_profiles.py). No TRex server, no NIC, no traffic.
#
# The library (lbr-trex-client, pinned by version and hash in
# requirements.txt) goes into a venv in a cache dir, created once and reused
# while the pin and the Python version stay the same:
#   ${SHOAL_TREX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/shoal/trex-venv}
# Debian 12 needs python3-venv (tests/run.sh installs it). Fails, naming the
# problem, when the venv or the library cannot be installed or a profile
# does not compile or check: it never skips.
set -euo pipefail
cd "$(dirname "$0")"
VENV=${SHOAL_TREX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/shoal/trex-venv}
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

die() {
    echo "perf/trex/check.sh: FAIL: $*" >&2
    exit 1
}

command -v python3 >/dev/null || die "python3 not found (Debian: apt-get install python3 python3-venv)"
# What the venv was built from: the interpreter and the pinned requirements.
want="$(python3 -c 'import sys; print(sys.version)' | head -1) $(sha256sum requirements.txt | cut -d' ' -f1)"
stamp="$VENV/.shoal-trex-installed"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    if [ -e "$VENV" ]; then
        [ -f "$VENV/pyvenv.cfg" ] || die "$VENV exists and is not a venv: remove it or set SHOAL_TREX_VENV"
        rm -rf "$VENV"
    fi
    echo "perf/trex/check.sh: creating $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" \
        || die "python3 -m venv $VENV failed (Debian 12: apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet --require-hashes --only-binary=:all: -r requirements.txt \
        || die "pip install of the TRex client library failed (requirements.txt: lbr-trex-client from PyPI)"
    "$VENV/bin/python" -c 'import lbr_trex_client; from trex.stl.api import STLProfile; from trex.astf.api import ASTFProfile' \
        || die "the TRex client library installed but does not import (Python $(python3 -V 2>&1); it needs <= 3.11)"
    echo "$want" >"$stamp"
fi
"$VENV/bin/python" check_profiles.py || die "a TRex profile does not compile or check (above)"

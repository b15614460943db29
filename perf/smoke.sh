#!/usr/bin/env bash
# The benchmark suite in short (CI): `perf/run` with 1-second runs of every
# L7 path (splice frequent and rare, nginx, HAProxy; new connections,
# keep-alive, 1 and 8 MiB downloads) and seed 001 Table 1, then checks the
# results file has every run and table and the report rendered. Downloads
# on 2 connections for 3 s: each completes several 8 MiB downloads even on
# a slow CI machine (16 connections for 2 s completed none through HAProxy
# there). About two minutes; what it proves is that the runner, the proxies' set-up and the
# report still work, not any figure (perf/README.md has those).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d /tmp/shoal-perf-smoke.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
bash perf/run --out "$OUT" --suites l7,table1 --duration 1 --concurrency 16 --large-conns 2 \
    --keepalive-concurrency 16 --large-duration 3 --no-profile
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
doc = json.load(open(os.path.join(out, "results.json")))
runs = {(r["suite"], r["path"]) for r in doc["runs"]}
want = {(s, p) for s in ("l7-new", "l7-keepalive", "l7-large")
        for p in ("shoal-splice-frequent", "nginx", "haproxy")}
want |= {("l7-new", "shoal-splice-rare")}
want |= {("table1", p) for p in ("baseline-1-host", "tcp-router-haproxy",
                                 "shoal-dpr-mac-stateless", "shoal-dpr-mac-stateful")}
missing = want - runs
assert not missing, f"runs missing from results.json: {sorted(missing)}"
assert all(r["rate"] > 0 for r in doc["runs"]), "a run with no rate"
assert any(t["id"] == "table1" for t in doc["tables"]), "no Table 1"
md = open(os.path.join(out, "results.md")).read()
for needle in ("## l7-new", "shoal-splice-frequent", "Seed 001", "rate-l7-large.svg"):
    assert needle in md, f"results.md lacks {needle!r}"
assert os.path.exists(os.path.join(out, "rate-l7-large.svg")), "no plot"
print(f"perf smoke: {len(doc['runs'])} runs, {len(doc['tables'])} table(s), report rendered")
PY

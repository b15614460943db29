#!/usr/bin/env bash
# Coverage-guided fuzzing of every target (fuzz/README.md).
#
#   bash fuzz/run.sh [--seconds N] [--jobs J] [--dev] [TARGET...]
#
# Runs each TARGET (default: all) for N seconds (default 600) with
# cargo-fuzz/libFuzzer, J targets at a time (default 1), starting from the
# checked-in seeds (fuzz/seeds/TARGET) plus the work corpus of earlier runs
# (fuzz/libfuzzer/corpus/TARGET, not checked in). Prints a table of the
# coverage each reached. A target that fails leaves its input in
# fuzz/libfuzzer/artifacts/TARGET/ and this script exits 1: reproduce on
# stable with `cargo run -p shoal-fuzz --bin shoal-fuzz-replay TARGET FILE`,
# fix, and check the input in as fuzz/regressions/TARGET/NAME.
#
# --dev builds without optimisations (faster to build, slower to run: what
# .ci/run uses for its short run). Installs cargo-fuzz (crates.io) if missing. No sanitizer (-s none): every
# fuzzed crate forbids `unsafe`, so AddressSanitizer would find nothing the
# Rust checks do not; debug assertions and overflow checks are on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
jobs=1
profile=()
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --dev) profile=(--dev); shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
all=(wire http_request response_framing handoff membership channel snapshot config pipeline)
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
for t in "${targets[@]}"; do
    [ -f "fuzz/libfuzzer/fuzz_targets/$t.rs" ] || { echo "fuzz/run.sh: no target $t (targets: ${all[*]})" >&2; exit 2; }
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version '^0.12'
fi
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
fuzz=(cargo fuzz)
dir=fuzz/libfuzzer
echo "== building the fuzz targets (release, debug assertions, no sanitizer)"
"${fuzz[@]}" build --fuzz-dir "$dir" -s none "${profile[@]}"

mkdir -p "$dir/logs"
run_one() {
    local t="$1"
    mkdir -p "$dir/corpus/$t" "$dir/artifacts/$t"
    # -timeout: one input taking over 10 s is a hang (a finding).
    # -rss_limit_mb: a leak or an unbounded structure is a finding.
    "${fuzz[@]}" run --fuzz-dir "$dir" -s none "${profile[@]}" "$t" "$dir/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/$t/" \
        >"$dir/logs/$t.log" 2>&1
}

failed=()
pids=()
names=()
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${seconds}s"
    run_one "$t" &
    pids+=($!)
    names+=("$t")
    if [ ${#pids[@]} -ge "$jobs" ]; then
        wait "${pids[0]}" || failed+=("${names[0]}")
        pids=("${pids[@]:1}")
        names=("${names[@]:1}")
    fi
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
done

printf '\n%-18s %10s %10s %8s %12s %10s\n' target runs cov ft corpus exec/s
for t in "${targets[@]}"; do
    log="$dir/logs/$t.log"
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9a-zA-Z]+).*/\1/p' <<<"$last")
    eps=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
    printf '%-18s %10s %10s %8s %12s %10s\n' "$t" "$runs" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$eps"
done
if [ ${#failed[@]} -gt 0 ]; then
    for t in "${failed[@]}"; do
        echo "== FAILED: $t (log $dir/logs/$t.log, input in $dir/artifacts/$t/)" >&2
        grep -E "panicked|ERROR|SUMMARY" "$dir/logs/$t.log" | head -5 >&2 || true
    done
    exit 1
fi
echo "== all fuzz targets passed"

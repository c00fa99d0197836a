#!/usr/bin/env bash
# Runs the fuzz targets under fuzz/ one after the other, each for SECONDS, at the lowest CPU
# priority, and prints each target's executions and findings.
#
#   scripts/fuzz.sh SECONDS [TARGET...]    (default: every target of `cargo fuzz list`)
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 3600   (each target stops after that many executions,
#                                             or after SECONDS, whichever comes first)
#
# Needs the nightly toolchain and cargo-fuzz (see fuzz/README.md). Each target starts from its
# seeds (fuzz/corpus/<target>/) and regression inputs (fuzz/regressions/<target>/) and adds what
# it finds to fuzz/work/<target>/ (not committed); a crash, timeout or out-of-memory input lands
# in fuzz/artifacts/<target>/. Exits non-zero when any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# -a: debug assertions and overflow checks, so that an arithmetic overflow is a crash too.
nice -n 19 cargo +nightly fuzz build -a

# How many findings a target has in fuzz/artifacts/.
artifacts() {
    if [ -d "fuzz/artifacts/$1" ]; then ls "fuzz/artifacts/$1" | wc -l; else echo 0; fi
}

failed=0
printf '%-22s %14s %10s  %s\n' target executions "execs/s" findings
for target in "${targets[@]}"; do
    work=fuzz/work/$target
    log=fuzz/work/$target.log
    mkdir -p "$work" "fuzz/regressions/$target"
    before=$(artifacts "$target")
    status=0
    nice -n 19 cargo +nightly fuzz run -a "$target" "$work" "fuzz/corpus/$target" \
        "fuzz/regressions/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -print_final_stats=1 ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} >"$log" 2>&1 || status=$?
    execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -n 1)
    rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log" | tail -n 1)
    after=$(artifacts "$target")
    if [ "$status" -eq 0 ] && [ "$after" -eq "$before" ]; then
        findings=none
    else
        failed=1
        findings="exit $status, new in fuzz/artifacts/$target: $((after - before)) (log: $log)"
    fi
    printf '%-22s %14s %10s  %s\n' "$target" "${execs:-?}" "${rate:-?}" "$findings"
done
exit "$failed"

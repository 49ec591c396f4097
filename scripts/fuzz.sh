#!/usr/bin/env bash
# scripts/fuzz.sh - builds the libFuzzer targets with clang (build-fuzz/) and runs each for
# SECONDS (default 120) on its seed corpus (tests/fuzz/corpus/<target>/, copied to a work
# corpus so the seeds stay as committed). Prints executions and findings per target.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
secs=${1:-120}
shift || true
CC=clang cmake -S . -B build-fuzz -DSY_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do
        n=$(basename "$f" .c)
        targets+=("$n")
    done
fi
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" >/dev/null
mkdir -p build-fuzz/work
for t in "${targets[@]}"; do
    work="build-fuzz/work/$t"
    mkdir -p "$work"
    cp -n tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
    echo "== $t: ${secs}s"
    (cd build-fuzz/work && "../fuzz/$t" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$t-" "$t" 2>&1 | grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|Done' || true)
done

#!/usr/bin/env bash
# bench/routing/run.sh - routing decision cost: dp_features_extract + dp_resolve against a
# generated 1,000-route policy, timed one decision at a time.
#
# Builds sy-bench-routing (Release, in its own build directory) and runs it pinned to one
# CPU with taskset when available. Prints a Markdown table (one row per scenario) on stdout
# and per-scenario details (automaton size, scans and regexec per decision) on stderr.
#
# usage: bench/routing/run.sh [options] [-- sy-bench-routing options]
#   --cpu N          CPU to pin to (default: the last one)
#   --build-dir DIR  default <repo>/build-bench-routing
#   --no-build       use the binary already in the build directory
# sy-bench-routing options: --routes N (1000) --late I (990) --decisions N (200000)
#   --warmup N (20000) --prompt-bytes B (4096) --only SUBSTRING
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$REPO/build-bench-routing"
DO_BUILD=1
CPU=""

die() { echo "run.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
    --cpu) CPU=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --) shift; break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done

if [ "$DO_BUILD" = 1 ]; then
    echo "run.sh: building in $BUILD" >&2
    log=$(mktemp "${TMPDIR:-/tmp}/sy-bench-routing.XXXXXX")
    trap 'rm -f "$log"' EXIT
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$log" 2>&1 ||
        { cat "$log" >&2; die "cmake configure failed"; }
    cmake --build "$BUILD" --target sy-bench-routing -j "$(nproc)" >>"$log" 2>&1 ||
        { tail -40 "$log" >&2; die "build failed"; }
fi
BIN="$BUILD/bin/sy-bench-routing"
[ -x "$BIN" ] || die "no $BIN (drop --no-build)"

PIN=()
if command -v taskset >/dev/null; then
    [ -n "$CPU" ] || CPU=$(($(nproc) - 1))
    PIN=(taskset -c "$CPU")
    echo "run.sh: pinned to CPU $CPU" >&2
else
    echo "run.sh: taskset not found, not pinned" >&2
fi
echo "run.sh: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec "${PIN[@]}" "$BIN" "$@"

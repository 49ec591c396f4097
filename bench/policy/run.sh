#!/usr/bin/env bash
# bench/policy/run.sh - policy propagation benchmark: POST /v1/policies to the last ACK on
# N proxy streams, for each store.
#
# Builds switchyard-control and sy-bench-fanout (Release, in its own build directory), then
# for each store starts a fresh control plane on ephemeral loopback ports (etcd too, for
# the etcd store), runs sy-bench-fanout against it and stops it. Prints a Markdown table
# and the tool's JSON lines. Every process started here is stopped, and the temporary
# directory removed, on exit, error or Ctrl-C.
#
# usage: bench/policy/run.sh [options]
#   --stores LIST       any of file (data dir under $TMPDIR), file-shm (under /dev/shm:
#                       no disk behind fsync) and etcd (default "file etcd")
#   --streams LIST      stream counts (default 50)
#   --procs P           worker processes = TCP connections (default: one per stream)
#   --rounds R          measured pushes per run (default 200)
#   --max-seconds S     time limit per run (default 120)
#   --quiet-wait S      before each run, wait up to S seconds for a second in which the
#                       CPUs are < 15% busy (default 10; 0 = never wait); a run that starts
#                       on a busy machine is labelled "(busy)" in the table
#   --build-dir DIR     default <repo>/build-bench-policy
#   --no-build          use the binaries already in the build directory
#   --keep              keep the temporary directory (logs, stores)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STORES="file etcd"
STREAMS="50"
PROCS=""
ROUNDS=200
MAX_SECONDS=120
QUIET_WAIT=10
BUILD="$REPO/build-bench-policy"
DO_BUILD=1
KEEP=0
ETCD_BIN=${SY_ETCD:-etcd}

die() { echo "run.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
    --stores) STORES=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --procs) PROCS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --max-seconds) MAX_SECONDS=$2; shift 2 ;;
    --quiet-wait) QUIET_WAIT=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sy-bench-policy.XXXXXX")
SHM=""
PIDS=()

# Stops what we started (by pid, newest first), then removes the scratch directories.
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill "${PIDS[i]}" 2>/dev/null || true
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    PIDS=()
    if [ "$KEEP" = 1 ]; then
        echo "run.sh: kept $TMP ${SHM:+and $SHM}" >&2
    else
        rm -rf "$TMP" ${SHM:+"$SHM"}
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_last() {
    local pid=${PIDS[${#PIDS[@]} - 1]}
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset 'PIDS[${#PIDS[@]}-1]'
}

# A port nothing listens on now (the caller retries if it is taken before use).
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# Waits up to 10 s for "<what> listening on HOST:PORT" in log <1>; prints HOST:PORT.
listen_addr() {
    local i line
    for ((i = 0; i < 100; i++)); do
        line=$(grep -o "$2 listening on [0-9.:]*" "$1" 2>/dev/null | head -1) || true
        [ -n "$line" ] && { echo "${line##* }"; return; }
        kill -0 "${PIDS[${#PIDS[@]} - 1]}" 2>/dev/null || break
        sleep 0.1
    done
    cat "$1" >&2
    die "the control plane did not report its $2 address"
}

# Starts etcd on ephemeral ports with data in $TMP/etcd; sets ETCD_URL.
start_etcd() {
    local attempt c p
    command -v "$ETCD_BIN" >/dev/null || die "etcd not found (Debian: apt-get install etcd-server)"
    for attempt in 1 2 3; do
        c=$(free_port)
        p=$(free_port)
        [ "$p" = "$c" ] && continue
        rm -rf "$TMP/etcd"
        "$ETCD_BIN" --name b --data-dir "$TMP/etcd" \
            --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
            --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
            --initial-cluster "b=http://127.0.0.1:$p" --log-level warn >"$TMP/etcd-$attempt.log" 2>&1 &
        PIDS+=($!)
        for _ in $(seq 100); do
            if curl -fsS "http://127.0.0.1:$c/health" 2>/dev/null | grep -q '"health":"true"'; then
                ETCD_URL="http://127.0.0.1:$c"
                return
            fi
            kill -0 "$!" 2>/dev/null || break
            sleep 0.1
        done
        stop_last
    done
    cat "$TMP"/etcd-*.log >&2
    die "etcd did not become healthy"
}

# Prints the machine's total and idle (+iowait) CPU ticks.
cpu_ticks() {
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6 }' /proc/stat
}

# Waits (at most QUIET_WAIT s) for a second in which the CPUs are < 15% busy, so that a run
# does not start in the middle of someone else's benchmark, build or test burst.
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) t0 i0 t1 i1
    while [ "$SECONDS" -lt "$deadline" ]; do
        read -r t0 i0 <<<"$(cpu_ticks)"
        sleep 1
        read -r t1 i1 <<<"$(cpu_ticks)"
        [ $(((t1 - t0) - (i1 - i0))) -lt $(((t1 - t0) * 15 / 100)) ] && return 0
    done
    echo "run.sh: the CPUs stayed busy for ${QUIET_WAIT}s (load $(cut -d' ' -f1-3 /proc/loadavg)); running anyway" >&2
    return 1
}

if [ "$DO_BUILD" = 1 ]; then
    echo "run.sh: building in $BUILD" >&2
    cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$TMP/cmake.log" 2>&1 ||
        { cat "$TMP/cmake.log" >&2; die "cmake configure failed"; }
    cmake --build "$BUILD" --target switchyard-control sy-bench-fanout -j "$(nproc)" \
        >>"$TMP/cmake.log" 2>&1 || { tail -40 "$TMP/cmake.log" >&2; die "build failed"; }
fi
CONTROL="$BUILD/bin/switchyard-control"
FANOUT="$BUILD/bin/sy-bench-fanout"
if [ ! -x "$CONTROL" ] || [ ! -x "$FANOUT" ]; then
    die "no binaries in $BUILD/bin (drop --no-build)"
fi
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || die "--quiet-wait: expected an integer"

echo "run.sh: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" >&2
echo
echo "| store | streams | TCP conns | rounds | last ACK p50 (ms) | p90 | p99 | max | first ACK p50 | fan-out (last − first) p50 | fan-out p99 | POST answered p50 |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
JSON=()
FAILED=0
run=0
for store in $STORES; do
    for n in $STREAMS; do
        run=$((run + 1))
        log="$TMP/control-$run.log"
        # A fresh control plane and history per run: a new directory, or a new etcd prefix.
        case "$store" in
        file)
            spec="file:$TMP/store-$run"
            label="file ($(df -T "$TMP" | awk 'NR==2 {print $2}'))" ;;
        file-shm)
            [ -n "$SHM" ] || SHM=$(mktemp -d /dev/shm/sy-bench-policy.XXXXXX)
            spec="file:$SHM/store-$run"
            label="file (tmpfs)" ;;
        etcd)
            [ -n "${ETCD_URL:-}" ] || start_etcd
            spec="etcd:$ETCD_URL"
            label="etcd" ;;
        *) die "unknown store $store (file, file-shm, etcd)" ;;
        esac
        "$CONTROL" --grpc-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --store "$spec" \
            --etcd-prefix "/bench-$run" --id "bench-cp-$run" 2>"$log" &
        PIDS+=($!)
        grpc=$(listen_addr "$log" grpc)
        admin=$(listen_addr "$log" admin)
        if [ "$QUIET_WAIT" -gt 0 ] && ! wait_quiet; then label="$label (busy)"; fi
        # In the background, so that a signal runs the EXIT trap at once (wait returns).
        "$FANOUT" --grpc "$grpc" --admin "http://$admin/v1/policies" --streams "$n" \
            ${PROCS:+--procs "$PROCS"} --rounds "$ROUNDS" --max-seconds "$MAX_SECONDS" \
            --label "$label" >"$TMP/fanout-$run.out" 2>"$TMP/fanout-$run.log" &
        PIDS+=($!)
        if ! wait "$!"; then
            FAILED=1
            echo "run.sh: $label, $n streams: sy-bench-fanout failed:" >&2
            cat "$TMP/fanout-$run.log" >&2
        fi
        unset 'PIDS[${#PIDS[@]}-1]'
        if [ -s "$TMP/fanout-$run.out" ]; then
            sed -n 1p "$TMP/fanout-$run.out"
            JSON+=("$(sed -n 2p "$TMP/fanout-$run.out")")
        fi
        stop_last
    done
done
echo
printf '%s\n' "${JSON[@]}"
exit "$FAILED"

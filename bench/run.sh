#!/usr/bin/env bash
# bench/run.sh - data-plane overhead benchmark: direct vs nginx vs switchyard.
#
# Starts a static upstream (nginx `return 200`), nginx as a plain keep-alive reverse proxy
# and switchyard-proxy, all on 127.0.0.1, then drives each with wrk (bench/chat.lua, a
# ~1.4 KB chat request) for JSON and SSE answers at 1 and 32 connections. wrk runs on
# CPU 0; the upstream and the proxies on CPU 1. Raw output goes to bench/results/<stamp>/,
# a Markdown table to stdout (and summary.md). Every process started here is stopped on
# exit, error or Ctrl-C.
#
# usage: bench/run.sh [options]
#   --proxy PATH        switchyard-proxy binary (default: $SWITCHYARD_PROXY, else
#                       build-bench/bin or build/bin under the repository, else /work/build-bench/bin)
#   -d, --duration S    measured seconds per run (default 10)
#   -w, --warmup S      warm-up seconds before each run, not measured (default 2)
#   -c, --conns LIST    connection counts (default "1 32")
#   -s, --scenarios L   answer kinds (default "json sse")
#   -p, --peers LIST    peers (default "direct nginx switchyard switchyard-log";
#                       switchyard-log is switchyard with its JSON access log on a file)
#   --perf [S]          afterwards, profile switchyard with perf for S seconds (default 5)
#                       at the largest connection count, JSON and SSE (perf.*.txt)
#   -r, --repeat N      run the whole matrix N times (interleaved) and report medians
#   --quiet-wait S      before each run, wait up to S seconds for both CPUs to be idle
#                       (default 10; 0 = never wait); a shared machine skews the numbers
#   --routes N          put N rule routes (keywords, regexes) in front of the models, so
#                       every request pays for a full route evaluation (default 0)
#   --port-base N       first port to try (default 28180)
#   --out DIR           results directory (default bench/results/<stamp>)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

DURATION=10
WARMUP=2
CONNS="1 32"
SCENARIOS="json sse"
PEERS="direct nginx switchyard switchyard-log"
PERF_SECS=0
PORT_BASE=28180
QUIET_WAIT=10
REPEAT=1
OUT=""
PROXY_BIN=${SWITCHYARD_PROXY:-}
WRK_CPU=0
SUT_CPU=1

die() { echo "run.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
    --proxy) PROXY_BIN=$2; shift 2 ;;
    -d | --duration) DURATION=$2; shift 2 ;;
    -w | --warmup) WARMUP=$2; shift 2 ;;
    -c | --conns) CONNS=$2; shift 2 ;;
    -s | --scenarios) SCENARIOS=$2; shift 2 ;;
    -p | --peers) PEERS=$2; shift 2 ;;
    --perf)
        PERF_SECS=5
        if [ $# -gt 1 ] && [[ $2 =~ ^[0-9]+$ ]]; then PERF_SECS=$2; shift; fi
        shift ;;
    --port-base) PORT_BASE=$2; shift 2 ;;
    --quiet-wait) QUIET_WAIT=$2; shift 2 ;;
    --routes) ROUTES=$2; shift 2 ;;
    -r | --repeat) REPEAT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "--duration: expected a positive integer"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "--warmup: expected an integer"
[[ $QUIET_WAIT =~ ^[0-9]+$ ]] || die "--quiet-wait: expected an integer"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "--repeat: expected a positive integer"

if [ -z "$PROXY_BIN" ]; then
    for cand in "$REPO/build-bench/bin/switchyard-proxy" "$REPO/build/bin/switchyard-proxy" \
        /work/build-bench/bin/switchyard-proxy; do
        if [ -x "$cand" ]; then PROXY_BIN=$cand; break; fi
    done
fi
[ -n "$PROXY_BIN" ] && [ -x "$PROXY_BIN" ] ||
    die "switchyard-proxy not found; build it (cmake -DCMAKE_BUILD_TYPE=Release) and pass --proxy PATH"
for tool in wrk nginx taskset curl; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install -y wrk nginx-light util-linux curl)"
done
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || die "needs at least 2 CPUs (wrk on one, the system under test on another)"
NGINX=$(command -v nginx)
CLK_TCK=$(getconf CLK_TCK)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$BENCH_DIR/results/$STAMP}
mkdir -p "$OUT"
ln -sfn "$OUT" "$BENCH_DIR/results/latest" 2>/dev/null || true
TMP=$(mktemp -d /tmp/switchyard-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers run as nobody

# ---- process bookkeeping -------------------------------------------------------------
PIDS=()
WRK_PIDS=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${WRK_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
NEXT_PORT=$PORT_BASE
pick_port() { # VAR: the next free port (no subshell, so NEXT_PORT advances)
    while ! port_free "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    printf -v "$1" '%s' "$NEXT_PORT"
    NEXT_PORT=$((NEXT_PORT + 1))
}

# wait_http PID URL: polls until the URL answers (any HTTP status) while PID lives, at most 10 s.
wait_http() {
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || return 1
        if curl -s -o /dev/null --max-time 1 "$2"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---- static answers ------------------------------------------------------------------
JSON_BODY='{"id":"chatcmpl-bench0001","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"Yes, the Ridgeline 2 footprint is in stock at 34.90 EUR. With standard EU shipping (4.90 EUR, 2-4 business days) the total is 39.80 EUR. I have noted your pole replacement for order NW-4471-2298; it ships separately and at no cost.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":312,"completion_tokens":58,"total_tokens":370,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}'
sse_chunk() { # content
    printf 'data: {"id":"chatcmpl-bench0002","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":"%s"},"logprobs":null,"finish_reason":null}],"usage":null}\\n\\n' "$1"
}
SSE_BODY='data: {"id":"chatcmpl-bench0002","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
for piece in "Yes, the" " Ridgeline 2" " footprint is" " in stock at" " 34.90 EUR." " With shipping" " the total is" " 39.80 EUR."; do
    SSE_BODY+=$(sse_chunk "$piece")
done
SSE_BODY+='data: {"id":"chatcmpl-bench0002","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n'
SSE_BODY+='data: {"id":"chatcmpl-bench0002","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":312,"completion_tokens":24,"total_tokens":336,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}\n\n'
SSE_BODY+='data: [DONE]\n\n'

# fill TEMPLATE OUTPUT KEY=VALUE...: replaces @KEY@ (values must not contain '|' or '&').
fill() {
    local in=$1 out=$2 kv k v script=""
    shift 2
    for kv in "$@"; do
        k=${kv%%=*}
        v=${kv#*=}
        v=${v//\\/\\\\}
        script+="s|@$k@|$v|g;"
    done
    sed "$script" "$in" >"$out"
}

start_nginx() { # NAME TEMPLATE PORT [KEY=VALUE...] -> sets NGINX_PID
    local name=$1 tmpl=$2 port=$3 prefix="$TMP/$1"
    shift 3
    mkdir -p "$prefix/logs"
    fill "$tmpl" "$prefix/nginx.conf" PREFIX="$prefix" PORT="$port" "$@"
    taskset -c "$SUT_CPU" "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" \
        >"$OUT/$name.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_http "$NGINX_PID" "http://127.0.0.1:$port/" || { cat "$OUT/$name.log" "$prefix/error.log" >&2; die "$name did not start"; }
}

pick_port UP_PORT
pick_port NGX_PORT
pick_port SY_PORT
pick_port SYL_PORT

start_nginx upstream "$BENCH_DIR/nginx-upstream.conf.in" "$UP_PORT" \
    JSON_BODY="$JSON_BODY" SSE_BODY="$SSE_BODY"
UP_PID=$NGINX_PID
start_nginx nginx-proxy "$BENCH_DIR/nginx-proxy.conf.in" "$NGX_PORT" UPSTREAM_PORT="$UP_PORT"
NGX_PID=$NGINX_PID

fill "$BENCH_DIR/policy.yaml.in" "$TMP/policy.yaml" UPSTREAM_PORT="$UP_PORT"
if [ "${ROUTES:-0}" -gt 0 ]; then
    # A realistic rule set in front of the benchmark's models: every route has keyword or
    # regex rules over the prompt that never match, so each request pays for the whole
    # evaluation (one text scan, the literal prefilter) before falling to its model name.
    echo "routes:" >>"$TMP/policy.yaml"
    for i in $(seq 1 "$ROUTES"); do
        if [ $((i % 2)) = 0 ]; then
            echo "  - {name: r$i, match: {keywords: {any: [zq${i}word, \"no such phrase $i\"], in: any}}, targets: [{model: bench-json}]}"
        else
            echo "  - {name: r$i, match: {min_prompt_tokens: 10, regex: {pattern: \"^never-$i (a|b)+\", in: last_user}}, targets: [{model: bench-json}]}"
        fi
    done >>"$TMP/policy.yaml"
fi
cp "$TMP/policy.yaml" "$OUT/policy.yaml"
start_switchyard() { # NAME PORT ACCESS_LOG -> sets SY_PID
    taskset -c "$SUT_CPU" "$PROXY_BIN" --listen "127.0.0.1:$2" --policy "$TMP/policy.yaml" \
        --workers 1 --access-log "$3" --log-level warn >"$OUT/$1.log" 2>&1 &
    SY_PID=$!
    PIDS+=("$SY_PID")
    wait_http "$SY_PID" "http://127.0.0.1:$2/healthz" || { cat "$OUT/$1.log" >&2; die "$1 did not start"; }
}
SY_PID="" SYL_PID=""
case " $PEERS " in *" switchyard "*) start_switchyard switchyard "$SY_PORT" off; SY_PID_MAIN=$SY_PID ;; esac
case " $PEERS " in *" switchyard-log "*) start_switchyard switchyard-log "$SYL_PORT" "$TMP/access.log"; SYL_PID=$SY_PID ;; esac
SY_PID=${SY_PID_MAIN:-}

# peer_url PEER SCENARIO
peer_url() {
    case "$1" in
    direct) echo "http://127.0.0.1:$UP_PORT/$2/v1/chat/completions" ;;
    nginx) echo "http://127.0.0.1:$NGX_PORT/$2/v1/chat/completions" ;;
    switchyard) echo "http://127.0.0.1:$SY_PORT/v1/chat/completions" ;;
    switchyard-log) echo "http://127.0.0.1:$SYL_PORT/v1/chat/completions" ;;
    *) die "unknown peer '$1'" ;;
    esac
}
# peer_pids PEER: the processes whose CPU time is the proxy's cost (none for direct).
peer_pids() {
    case "$1" in
    direct) ;;
    nginx) echo "$NGX_PID $(pgrep -P "$NGX_PID" | tr '\n' ' ')" ;;
    switchyard) echo "$SY_PID" ;;
    switchyard-log) echo "$SYL_PID" ;;
    esac
}
up_pids() { echo "$UP_PID $(pgrep -P "$UP_PID" | tr '\n' ' ')"; }
# ticks PID...: utime+stime of all threads (fields 14 and 15 of /proc/PID/stat).
ticks() {
    local pid sum=0 rest
    for pid in "$@"; do
        rest=$(sed 's/.*) //' "/proc/$pid/stat")
        set -- $rest
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}
# cpu_ticks CPU: "busy total" ticks of one CPU from /proc/stat; busy leaves out idle,
# iowait, irq and softirq (loopback packet processing lands there, ours included).
cpu_ticks() {
    awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6 - $7 - $8, t}' /proc/stat
}
# wait_quiet: waits (at most QUIET_WAIT s) for a second in which both CPUs are < 15% busy,
# so that a run does not start in the middle of someone else's build or test burst.
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) b0 a0 c0 d0 b1 a1 c1 d1
    while [ "$SECONDS" -lt "$deadline" ]; do
        read -r b0 a0 <<<"$(cpu_ticks "$WRK_CPU")"
        read -r c0 d0 <<<"$(cpu_ticks "$SUT_CPU")"
        sleep 1
        read -r b1 a1 <<<"$(cpu_ticks "$WRK_CPU")"
        read -r c1 d1 <<<"$(cpu_ticks "$SUT_CPU")"
        if [ $(((b1 - b0) * 100)) -lt $(((a1 - a0) * 15 + 1)) ] &&
            [ $(((c1 - c0) * 100)) -lt $(((d1 - d0) * 15 + 1)) ]; then
            return 0
        fi
    done
    echo -n "(busy machine) " >&2
}
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN {exit !(l > 0.5)}'; then
    echo "run.sh: WARNING: load average $load1 before the start: other work on this machine will" \
        "skew the numbers (see the 'other load' column)" >&2
fi

# ---- sanity: every peer answers both kinds correctly ----------------------------------
BODY_JSON="$TMP/req-json.json"
BODY_SSE="$TMP/req-sse.json"
printf '{"model":"bench-json","messages":[{"role":"user","content":"hi"}]}' >"$BODY_JSON"
printf '{"model":"bench-sse","stream":true,"messages":[{"role":"user","content":"hi"}]}' >"$BODY_SSE"
for peer in $PEERS; do
    for sc in $SCENARIOS; do
        body=$BODY_JSON want='"chat.completion"'
        [ "$sc" = sse ] && body=$BODY_SSE want='data: [DONE]'
        code=$(curl -s -o "$OUT/sanity.$peer.$sc.txt" -w '%{http_code}' --max-time 5 \
            -H 'Content-Type: application/json' -H 'Authorization: Bearer sk-bench' \
            --data-binary "@$body" "$(peer_url "$peer" "$sc")") || true
        [ "$code" = 200 ] && grep -qF "$want" "$OUT/sanity.$peer.$sc.txt" ||
            { cat "$OUT/sanity.$peer.$sc.txt" >&2; die "sanity check failed: $peer $sc -> HTTP $code"; }
    done
done

# ---- machine -------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $NCPU"
    echo "cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -sr)"
    echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //')"
    echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')"
    echo "switchyard: $PROXY_BIN ($(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown))"
    echo "command: bench/run.sh --duration $DURATION --warmup $WARMUP --conns '$CONNS' --scenarios '$SCENARIOS' --peers '$PEERS' --quiet-wait $QUIET_WAIT --repeat $REPEAT"
} >"$OUT/machine.txt"

# ---- runs ----------------------------------------------------------------------------
RESULTS="$OUT/results.tsv"
printf 'rep\tscenario\tconns\tpeer\trequests\trps\tp50_us\tp99_us\tcpu_us_per_req\tupstream_cpu_us_per_req\terrors\tforeign_pct\n' >"$RESULTS"
FAILED=0

# run_wrk CONNS SECONDS URL MODE OUTFILE
# (in the background with `wait`, so that a signal is handled at once, not after the run)
run_wrk() {
    timeout --kill-after=5 $(($2 + 30)) taskset -c "$WRK_CPU" \
        wrk -t1 -c"$1" -d"$2"s --timeout 10s --latency -s "$BENCH_DIR/chat.lua" "$3" -- "$4" >"$5" 2>&1 &
    WRK_PIDS+=("$!")
    wait "$!"
}
field() { sed -n 's/^BENCH_RESULT //p' "$1" | tr ',{}' '\n\n\n' | awk -F: -v k="\"$2\"" '$1 == k {print $2}'; }

total=0
for sc in $SCENARIOS; do for c in $CONNS; do for peer in $PEERS; do total=$((total + REPEAT)); done; done; done
echo "run.sh: $total runs of ${WARMUP}s + ${DURATION}s; raw results in $OUT" >&2
n=0
for rep in $(seq 1 "$REPEAT"); do
for sc in $SCENARIOS; do
    for c in $CONNS; do
        for peer in $PEERS; do
            n=$((n + 1))
            url=$(peer_url "$peer" "$sc")
            raw="$OUT/wrk.$sc.c$c.$peer.r$rep.txt"
            printf 'run.sh: [%d/%d] %-4s c=%-3s %-15s ' "$n" "$total" "$sc" "$c" "$peer" >&2
            [ "$QUIET_WAIT" -gt 0 ] && wait_quiet
            if [ "$WARMUP" -gt 0 ]; then run_wrk "$c" "$WARMUP" "$url" "$sc" "$raw.warmup" || true; fi
            pids=$(peer_pids "$peer")
            # shellcheck disable=SC2086
            t0=$([ -n "$pids" ] && ticks $pids || echo 0)
            # shellcheck disable=SC2046
            u0=$(ticks $(up_pids))
            read -r b0 a0 <<<"$(cpu_ticks "$SUT_CPU")"
            run_wrk "$c" "$DURATION" "$url" "$sc" "$raw" || { cat "$raw" >&2; die "wrk failed: $sc c=$c $peer"; }
            # shellcheck disable=SC2086
            t1=$([ -n "$pids" ] && ticks $pids || echo 0)
            # shellcheck disable=SC2046
            u1=$(ticks $(up_pids))
            read -r b1 a1 <<<"$(cpu_ticks "$SUT_CPU")"
            reqs=$(field "$raw" requests)
            [ -n "$reqs" ] && [ "$reqs" -gt 0 ] || { cat "$raw" >&2; die "no requests completed: $sc c=$c $peer"; }
            errs=0
            for k in err_connect err_read err_write err_status err_timeout; do
                errs=$((errs + $(field "$raw" $k)))
            done
            cpu="-"
            [ -n "$pids" ] && cpu=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v r="$reqs" 'BEGIN {printf "%.1f", d * 1e6 / hz / r}')
            upcpu=$(awk -v d=$((u1 - u0)) -v hz="$CLK_TCK" -v r="$reqs" 'BEGIN {printf "%.1f", d * 1e6 / hz / r}')
            # Share of the system-under-test core used by anything but the upstream and the
            # proxy under test during the run: other load on the machine skews everything.
            ours=$(( (u1 - u0) + (t1 - t0) ))
            foreign=$(awk -v b=$((b1 - b0)) -v a=$((a1 - a0)) -v o="$ours" \
                'BEGIN {f = a > 0 ? 100 * (b - o) / a : 0; if (f < 0) f = 0; printf "%.0f", f}')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$sc" "$c" "$peer" "$reqs" \
                "$(field "$raw" rps)" "$(field "$raw" p50_us)" "$(field "$raw" p99_us)" \
                "$cpu" "$upcpu" "$errs" "$foreign" >>"$RESULTS"
            printf '%8.0f rps  p50 %5s us  p99 %6s us  cpu/req %s us  errors %s  foreign %s%%\n' \
                "$(field "$raw" rps)" "$(field "$raw" p50_us)" "$(field "$raw" p99_us)" "$cpu" \
                "$errs" "$foreign" >&2
            if [ "$errs" -ne 0 ]; then
                echo "run.sh: ERROR: $errs failed requests (non-2xx/socket errors) in $sc c=$c $peer; see $raw" >&2
                FAILED=1
            fi
        done
    done
done
done

echo "loadavg at end of runs: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

# ---- peak RSS ------------------------------------------------------------------------
{
    printf 'peer\tpid\tvmhwm_kib\n'
    printf 'upstream\t%s\t%s\n' "$UP_PID" "$(hwm_kib "$UP_PID")"
    for p in $(pgrep -P "$UP_PID"); do printf 'upstream-worker\t%s\t%s\n' "$p" "$(hwm_kib "$p")"; done
    case " $PEERS " in *" nginx "*)
        printf 'nginx-master\t%s\t%s\n' "$NGX_PID" "$(hwm_kib "$NGX_PID")"
        for p in $(pgrep -P "$NGX_PID"); do printf 'nginx\t%s\t%s\n' "$p" "$(hwm_kib "$p")"; done ;;
    esac
    [ -n "$SY_PID" ] && printf 'switchyard\t%s\t%s\n' "$SY_PID" "$(hwm_kib "$SY_PID")"
    [ -n "$SYL_PID" ] && printf 'switchyard-log\t%s\t%s\n' "$SYL_PID" "$(hwm_kib "$SYL_PID")"
} >"$OUT/rss.tsv"

# ---- optional perf profile of switchyard ---------------------------------------------
if [ "$PERF_SECS" -gt 0 ] && [ -n "$SY_PID" ]; then
    if ! command -v perf >/dev/null; then
        echo "run.sh: perf not installed (apt-get install -y linux-perf); skipping the profile" >&2
    else
        cmax=$(for c in $CONNS; do echo "$c"; done | sort -n | tail -1)
        for sc in $SCENARIOS; do
            echo "run.sh: perf: switchyard $sc c=$cmax for ${PERF_SECS}s" >&2
            timeout --kill-after=5 $((PERF_SECS + 34)) taskset -c "$WRK_CPU" wrk -t1 -c"$cmax" \
                -d$((PERF_SECS + 4))s --latency -s "$BENCH_DIR/chat.lua" "$(peer_url switchyard "$sc")" \
                -- "$sc" >"$OUT/wrk.perf.$sc.txt" 2>&1 &
            wpid=$!
            WRK_PIDS+=("$wpid")
            sleep 2
            # DWARF unwinding: the Release build, libc and libcurl have no frame pointers.
            if perf record -F 999 --call-graph dwarf,16384 -o "$OUT/perf.$sc.data" -p "$SY_PID" \
                -- sleep "$PERF_SECS" >"$OUT/perf.$sc.record.log" 2>&1; then
                rep() { perf report -i "$OUT/perf.$sc.data" --stdio "$@" 2>/dev/null | grep -v '^$'; }
                # flat: where the CPU goes (self time per symbol / per library)
                rep --no-children --sort symbol -g none | head -60 >"$OUT/perf.$sc.symbols.txt" || true
                rep --no-children --sort dso -g none | head -30 >"$OUT/perf.$sc.dso.txt" || true
                # inclusive: share of all samples under each switchyard function
                rep --children --sort dso,symbol -g none --percent-limit 1 |
                    grep -E '^#|switchyard-proxy' | head -60 >"$OUT/perf.$sc.inclusive.txt" || true
                # who calls malloc/free and friends (caller chains, for attributing library time)
                rep --no-children --sort symbol -g caller,2,callee,function --percent-limit 1.5 \
                    >"$OUT/perf.$sc.callers.txt" || true
                # owned: each sample charged to the innermost switchyard function on its stack
                if command -v python3 >/dev/null; then
                    perf script -i "$OUT/perf.$sc.data" -F comm,tid,ip,sym,dso 2>/dev/null |
                        python3 "$BENCH_DIR/perf-attrib.py" >"$OUT/perf.$sc.attrib.txt" || true
                fi
            else
                echo "run.sh: perf record failed (see perf.$sc.record.log)" >&2
            fi
            wait "$wpid" || true
        done
    fi
fi

# ---- summary (medians over repetitions) -----------------------------------------------
awk -F'\t' '
function median(str,   a, n, i, j, t) {
    n = split(str, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    if (a[1] == "-") return "-"
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
NR == 1 { print substr($0, index($0, "\t") + 1); next }
{
    key = $2 "\t" $3 "\t" $4
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    for (i = 5; i <= NF; i++) v[key, i] = v[key, i] " " $i
    if (!((key) in errmax) || $11 + 0 > errmax[key] + 0) errmax[key] = $11 + 0
    nf = NF
}
END {
    for (k = 1; k <= n; k++) {
        key = order[k]; line = key
        for (i = 5; i <= nf; i++) line = line "\t" ((i == 11) ? errmax[key] : median(v[key, i]))
        print line
    }
}' "$RESULTS" >"$OUT/medians.tsv"
awk -F'\t' -v rssfile="$OUT/rss.tsv" '
function mib(k) { return sprintf("%.1f", k / 1024) }
BEGIN {
    while ((getline line < rssfile) > 0) {
        split(line, f, "\t")
        if (f[1] == "nginx" || f[1] == "switchyard" || f[1] == "switchyard-log") rss[f[1]] = f[3]
    }
}
NR == 1 { next }
{
    key = $1 SUBSEP $2
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    p50[key, $3] = $6; p99[key, $3] = $7; rps[key, $3] = $5; cpu[key, $3] = $8
    peers[$3] = 1; if (!($3 in po)) { po[$3] = ++np; pname[np] = $3 }
    errs[key, $3] = $10; fgn[key, $3] = $11
}
END {
    print "| scenario | conns | peer | RPS | p50 µs | p99 µs | added p50 µs | proxy CPU µs/req | peak RSS MiB | errors | other load on SUT core |"
    print "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
        key = order[i]; split(key, kc, SUBSEP)
        for (j = 1; j <= np; j++) {
            p = pname[j]
            if (!((key, p) in p50)) continue
            add50 = "-"
            if (p != "direct" && ((key, "direct") in p50)) add50 = p50[key, p] - p50[key, "direct"]
            r = (p in rss) ? mib(rss[p]) : "-"
            printf "| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s%% |\n", kc[1], kc[2], p, rps[key, p], p50[key, p], p99[key, p], add50, cpu[key, p], r, errs[key, p], fgn[key, p]
        }
    }
    print ""
    print "Targets (switchyard vs nginx):"
    print ""
    print "| check | switchyard | nginx | ratio | target | verdict |"
    print "|---|---:|---:|---:|---:|---|"
    for (i = 1; i <= n; i++) {
        key = order[i]; split(key, kc, SUBSEP)
        if (!((key, "switchyard") in p50) || !((key, "nginx") in p50) || !((key, "direct") in p50)) continue
        if (kc[2] == 1) {
            a = p50[key, "switchyard"] - p50[key, "direct"]; b = p50[key, "nginx"] - p50[key, "direct"]
            ratio = (b > 0) ? a / b : 0
            printf "| added p50, %s, 1 conn | %d µs | %d µs | %.2f× | ≤ 1.25× | %s |\n", kc[1], a, b, ratio, (b > 0 && ratio <= 1.25) ? "met" : "MISSED"
        } else {
            a = cpu[key, "switchyard"]; b = cpu[key, "nginx"]
            ratio = (b > 0) ? a / b : 0
            printf "| CPU/req, %s, %s conns | %.1f µs | %.1f µs | %.2f× | ≤ 1.5× | %s |\n", kc[1], kc[2], a, b, ratio, (b > 0 && ratio <= 1.5) ? "met" : "MISSED"
        }
    }
    if ("switchyard" in rss)
        printf "| peak RSS (VmHWM) | %s MiB | %s MiB | | ≤ 32 MiB | %s |\n", mib(rss["switchyard"]), ("nginx" in rss) ? mib(rss["nginx"]) : "-", (rss["switchyard"] <= 32768) ? "met" : "MISSED"
}' "$OUT/medians.tsv" >"$OUT/summary.md"
[ "$REPEAT" -gt 1 ] && sed -i "1i Medians of $REPEAT interleaved runs (errors: the worst run).\\n" "$OUT/summary.md"

echo
cat "$OUT/machine.txt"
echo
cat "$OUT/summary.md"
echo
echo "raw results: $OUT"
if [ "$FAILED" != 0 ]; then
    die "some runs had failed requests: the numbers above are not valid"
fi

#!/usr/bin/env bash
# scripts/run.sh - builds if needed and runs a local Switchyard: the control plane (file
# store in .run/) with its admin API on 127.0.0.1:9090, and the proxy on 127.0.0.1:8080 in
# managed mode, in front of the mock provider (or the real OpenAI API when OPENAI_API_KEY is
# set). The policy file is the control plane's first version; push new ones with
# switchyardctl. Ctrl-C stops everything it started. Child logs go to .run/ in the repo.
#
# Environment:
#   OPENAI_API_KEY   set: use examples/policy-openai.yaml (real OpenAI), no mock
#   SY_POLICY=FILE   use this policy file instead
#   SY_STANDALONE=1  no control plane: the proxy reads the policy file itself (SIGHUP reloads)
#   SY_PORT=8080     proxy port;  SY_MOCK_PORT=18080 mock port (the demo policy names 18080;
#                    another port is written into a copy of it in .run/)
#   SY_ADMIN_PORT=9090, SY_GRPC_PORT=9901  control plane ports
#   SY_TRAFFIC=0    no generated demo traffic (default: a few requests a second with the mock)
#   SY_TOP=1        open the dashboard (switchyard-top) in this terminal once the stack is up;
#                   quitting it (q) stops everything
#   SY_BUILD_DIR=build
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${SY_BUILD_DIR:-build}
port=${SY_PORT:-8080}
mock_port=${SY_MOCK_PORT:-18080}
admin_port=${SY_ADMIN_PORT:-9090}
grpc_port=${SY_GRPC_PORT:-9901}
standalone=${SY_STANDALONE:-0}
rundir="$root/.run"
mkdir -p "$rundir"

say() { printf 'run: %s\n' "$*" >&2; }
die() { printf 'run: error: %s\n' "$*" >&2; exit 1; }

# --- build ---------------------------------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
    say "configuring $build/ (RelWithDebInfo)"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$rundir/build.log" 2>&1 ||
        { tail -n 30 "$rundir/build.log"; die "cmake configure failed (run scripts/deps.sh?)"; }
fi
say "building (log: .run/build.log)"
cmake --build "$build" -j"$(nproc)" \
    --target switchyard-proxy switchyard-mockllm switchyard-control switchyardctl switchyard-top \
    >>"$rundir/build.log" 2>&1 || { tail -n 30 "$rundir/build.log"; die "build failed"; }
case $build in /*) bin="$build/bin" ;; *) bin="$root/$build/bin" ;; esac

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- children, and stopping them -----------------------------------------------------------
pids=()
stopping=0
stop_all() {
    [ $stopping = 1 ] && return
    stopping=1
    trap - INT TERM
    if [ ${#pids[@]} -gt 0 ]; then
        say "stopping (pids ${pids[*]})"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        # Give them a few seconds to drain, then insist.
        for _ in $(seq 50); do
            alive=0
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
            [ $alive = 0 ] && break
            sleep 0.1
        done
        kill -KILL "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# --- policy and mock -----------------------------------------------------------------------
if [ -n "${SY_POLICY:-}" ]; then
    policy=$SY_POLICY
    mode="policy $policy"
    store_name=custom
elif [ -n "${OPENAI_API_KEY:-}" ]; then
    policy="$root/examples/policy-openai.yaml"
    mode="OpenAI (https://api.openai.com/v1, key from OPENAI_API_KEY)"
    store_name=openai
else
    store_name=mock
    policy="$root/examples/policy.yaml"
    if [ "$mock_port" != 18080 ]; then
        sed "s|127.0.0.1:18080|127.0.0.1:$mock_port|" "$policy" >"$rundir/policy.yaml"
        policy="$rundir/policy.yaml"
    fi
    mode="mock provider (switchyard-mockllm on 127.0.0.1:$mock_port)"
    port_busy "$mock_port" && die "port $mock_port is in use (set SY_MOCK_PORT)"
    "$bin/switchyard-mockllm" --listen "127.0.0.1:$mock_port" --name mock \
        >"$rundir/mockllm.log" 2>&1 &
    pids+=($!)
fi
[ -f "$policy" ] || die "policy file $policy not found"

port_busy "$port" && die "port $port is in use (set SY_PORT)"
admin="http://127.0.0.1:$admin_port"
if [ "$standalone" = 1 ]; then
    "$bin/switchyard-proxy" --listen "127.0.0.1:$port" --policy "$policy" \
        --access-log "$rundir/access.log" >"$rundir/proxy.log" 2>&1 &
    pids+=($!)
else
    # One store per upstream mode, so a demo run never serves another mode's policy. The
    # policy file becomes version 1 the first time; later runs keep the pushed history.
    port_busy "$admin_port" && die "port $admin_port is in use (set SY_ADMIN_PORT)"
    port_busy "$grpc_port" && die "port $grpc_port is in use (set SY_GRPC_PORT)"
    "$bin/switchyard-control" --grpc-listen "127.0.0.1:$grpc_port" \
        --admin-listen "127.0.0.1:$admin_port" --store "file:$rundir/data-$store_name" \
        --bootstrap-policy "$policy" --id local >"$rundir/control.log" 2>&1 &
    pids+=($!)
    "$bin/switchyard-proxy" --listen "127.0.0.1:$port" --control-plane "127.0.0.1:$grpc_port" \
        --node-id local-proxy --state-dir "$rundir/proxy-state-$store_name" \
        --access-log "$rundir/access.log" >"$rundir/proxy.log" 2>&1 &
    pids+=($!)
fi

# --- wait for /readyz ----------------------------------------------------------------------
url="http://127.0.0.1:$port"
ready=0
for _ in $(seq 150); do
    if curl -fsS -m 1 "$url/readyz" >/dev/null 2>&1; then
        ready=1
        break
    fi
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null || {
            tail -n 20 "$rundir"/*.log >&2
            die "a process exited during startup (logs in .run/)"
        }
    done
    sleep 0.1
done
[ $ready = 1 ] || { tail -n 20 "$rundir/proxy.log" >&2; die "proxy not ready after 15 s (.run/proxy.log)"; }

# A little traffic so the dashboard is alive (mock only: never spend real money by default).
traffic=0
if [ "${SY_TRAFFIC:-1}" != 0 ] && [ -z "${OPENAI_API_KEY:-}${SY_POLICY:-}" ]; then
    "$root/scripts/demo-traffic.sh" "http://127.0.0.1:$port" >"$rundir/traffic.log" 2>&1 &
    pids+=($!)
    traffic=1
fi

model=auto
cat <<EOF

Switchyard is up on $url — upstream: $mode
Logs: .run/proxy.log, .run/access.log$( [ -z "${OPENAI_API_KEY:-}${SY_POLICY:-}" ] && echo ", .run/mockllm.log")

Chat completion:
  curl -s $url/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"$model","messages":[{"role":"user","content":"hello"}]}'

Streaming:
  curl -sN $url/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"$model","stream":true,"messages":[{"role":"user","content":"hello"}]}'

See which provider and model served it:  add -D- to either command (x-switchyard-* headers).
Models and routes:  curl -s $url/v1/models

OpenAI SDK:  base URL $url/v1  (any API key; the proxy sends the provider's own)
  e.g.  new OpenAI({ baseURL: "$url/v1", apiKey: "unused" })
        OpenAI(base_url="$url/v1", api_key="unused")

EOF
if [ "$standalone" = 1 ]; then
    echo "Reload the policy after editing it:  kill -HUP ${pids[-1]}"
else
    cat <<EOF
Control plane admin API: $admin  (logs: .run/control.log)
  $bin/switchyardctl --server $admin policy push $policy --note "my change"
  $bin/switchyardctl --server $admin policy list
  $bin/switchyardctl --server $admin fleet

Live dashboard (traffic, spend, fleet, policies, experiments):
  $bin/switchyard-top --server $admin
$( [ $traffic = 1 ] && echo "  (scripts/demo-traffic.sh sends a few requests a second; SY_TRAFFIC=0 turns it off)")
EOF
fi
echo "Ctrl-C stops everything."


# Runs until Ctrl-C or until a child dies; with SY_TOP=1, until the dashboard quits.
set +e
if [ "${SY_TOP:-0}" = 1 ] && [ "$standalone" != 1 ] && [ -t 0 ] && [ -t 1 ]; then
    "$bin/switchyard-top" --server "$admin"
    stop_all
    exit 0
fi
wait -n "${pids[@]}"
rc=$?
if [ $stopping = 0 ]; then
    say "a process exited (status $rc); see .run/*.log"
    stop_all
    exit 1
fi

#!/usr/bin/env bash
# scripts/demo-traffic.sh URL [RPS] - a little steady traffic for the demo stack, so the
# dashboard (switchyard-top) has something to show: chat requests through the proxy at URL
# (about RPS a second, default 4) from twenty users, to the A/B-tested route "auto", the learned
# route "smart" and two models directly, a few of them streamed, and thumbs up
# or down for some answers through the proxy's POST /v1/feedback. Runs until killed; every
# failure is ignored (the stack may be restarting). scripts/run.sh starts it.
set -u
url=${1:?usage: demo-traffic.sh URL [RPS]}
rps=${2:-4}
models=(auto auto smart smart gpt-4o-mini gpt-4o)
words=(hello summarise translate explain "write a haiku about" compare)
delay=$(awk -v r="$rps" 'BEGIN { printf "%.3f", (r > 0 ? 1 / r : 1) }')
n=0
while :; do
    n=$((n + 1))
    model=${models[RANDOM % ${#models[@]}]}
    user="user-$((RANDOM % 20))"
    text="${words[RANDOM % ${#words[@]}]} request $n"
    stream=false
    [ $((RANDOM % 5)) = 0 ] && stream=true
    body=$(printf '{"model":"%s","user":"%s","stream":%s,"messages":[{"role":"user","content":"%s"}]}' \
        "$model" "$user" "$stream" "$text")
    id=$(curl -s -m 10 -o /dev/null -D - "$url/v1/chat/completions" \
        -H 'content-type: application/json' -d "$body" 2>/dev/null |
        tr -d '\r' | awk -F': ' 'tolower($1) == "x-switchyard-request-id" { print $2 }')
    if [ -n "$id" ] && [ $((RANDOM % 3)) = 0 ]; then
        thumbs=up
        [ $((RANDOM % 4)) = 0 ] && thumbs=down
        curl -s -m 5 -o /dev/null "$url/v1/feedback" -H 'content-type: application/json' \
            -d "{\"request_id\":\"$id\",\"thumbs\":\"$thumbs\"}" 2>/dev/null
    fi
    sleep "$delay"
done

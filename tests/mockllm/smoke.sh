#!/usr/bin/env bash
# tests/mockllm/smoke.sh - drives a real switchyard-mockllm with curl and checks every
# endpoint, config knob and stat, then stops it with SIGTERM mid-stream and expects exit 0
# (under ASan that also means no leaks). Usage: smoke.sh [path/to/switchyard-mockllm]
set -euo pipefail
bin=${1:-$(dirname "$0")/../../build/bin/switchyard-mockllm}
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "smoke: $tool not found" >&2; exit 1; }
done
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fails=0
check() { # check NAME ACTUAL EXPECTED
    if [ "$2" == "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1: got [$2], want [$3]"
        fails=$((fails + 1))
    fi
}

"$bin" --listen 127.0.0.1:0 --name smoke 2>"$work/err" &
pid=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$work/err" && break
    sleep 0.05
done
port=$(grep -oE 'listening on [^ ]+:[0-9]+' "$work/err" | grep -oE '[0-9]+$')
url=http://127.0.0.1:$port
post() { curl -sS -H 'content-type: application/json' "$@"; }
cfg() { post -o /dev/null -w '%{http_code}' "$url/_mock/config" -d "$1"; }
msg() { printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"%s"}]%s}' "$1" "${2:-}"; }
tools=',"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]'

# Bad flags.
set +e
"$bin" --listen 127.0.0.1:0 --bogus 2>"$work/usage"
check "bad flag exits 2" "$?" 2
set -e
check "bad flag is named" "$(grep -c -- --bogus "$work/usage")" 1

# Plain, streamed, include_usage, tools, tools streamed.
r=$(post "$url/v1/chat/completions" -d "$(msg 'hello there world')")
check "plain content" "$(jq -r '.choices[0].message.content' <<<"$r")" "echo: hello there world"
check "plain object" "$(jq -r '.object + " " + .model + " " + .choices[0].finish_reason' <<<"$r")" \
    "chat.completion gpt-4o-mini stop"
check "plain usage" "$(jq -c '.usage' <<<"$r")" \
    '{"prompt_tokens":8,"completion_tokens":6,"total_tokens":14}'
r=$(post -N "$url/v1/chat/completions" -d "$(msg 'hello there world' ',"stream":true,"stream_options":{"include_usage":true}')")
check "stream ends with [DONE]" "$(tail -n 1 <<<"$r")" "data: [DONE]"
ev=$(grep '^data: {' <<<"$r" | cut -c7-)
check "stream text" "$(jq -j '.choices[0].delta.content // empty' <<<"$ev")" "echo: hello there world"
check "stream content chunks >= 3" "$(jq -r '.choices[0].delta.content // empty' <<<"$ev" | grep -c .)" 4
check "stream first has role" "$(head -n 1 <<<"$ev" | jq -r '.choices[0].delta.role')" assistant
check "stream usage chunk" "$(tail -n 1 <<<"$ev" | jq -c '[.choices, .usage.total_tokens]')" '[[],14]'
r=$(post "$url/v1/chat/completions" -d "$(msg 'say \"hi\"' "$tools")")
check "tool call" "$(jq -c '.choices[0] | [.finish_reason, .message.content, .message.tool_calls[0].function.name, .message.tool_calls[0].function.arguments]' <<<"$r")" \
    '["tool_calls",null,"get_weather","{\"echo\":\"say \\\"hi\\\"\"}"]'
r=$(post -N "$url/v1/chat/completions" -d "$(msg 'say \"hi\"' "$tools,\"stream\":true")")
ev=$(grep '^data: {' <<<"$r" | cut -c7-)
check "streamed tool args" "$(jq -j '.choices[0].delta.tool_calls[0].function.arguments // empty' <<<"$ev")" \
    '{"echo":"say \"hi\""}'
check "streamed tool fragments >= 3" \
    "$(jq -r '.choices[0].delta.tool_calls[0].function.arguments // empty' <<<"$ev" | grep -c .)" 3
check "streamed tool finish" "$(jq -r '.choices[0].finish_reason // empty' <<<"$ev")" tool_calls

# Embeddings, models, errors.
r=$(post "$url/v1/embeddings" -d '{"model":"text-embedding-3-small","input":["a","b"]}')
check "embeddings" "$(jq -c '[(.data | length), (.data[0].embedding | length), .usage.prompt_tokens]' <<<"$r")" '[2,8,2]'
r2=$(post "$url/v1/embeddings" -d '{"model":"text-embedding-3-small","input":["a","b"]}')
check "embeddings are deterministic" "$r2" "$r"
check "models" "$(curl -sS "$url/v1/models" | jq -r '.object + " " + .data[0].object')" "list model"
check "bad JSON error type" "$(post "$url/v1/chat/completions" -d '{' | jq -r '.error.type')" \
    "invalid_request_error"
check "bad JSON status" "$(post -o /dev/null -w '%{http_code}' "$url/v1/chat/completions" -d '{')" 400
check "missing messages 400" "$(post -o /dev/null -w '%{http_code}' "$url/v1/chat/completions" -d '{"model":"m"}')" 400
check "unknown path 404" "$(curl -sS -o /dev/null -w '%{http_code}' "$url/v1/nope")" 404
check "wrong method 405" "$(curl -sS -o /dev/null -w '%{http_code}' "$url/v1/chat/completions")" 405

# Config: injected errors, latency, failures.
check "config 503" "$(cfg '{"status":503,"retry_after_s":7}')" 200
h=$(post -D - -o "$work/body" "$url/v1/chat/completions" -d "$(msg x)")
check "503 status" "$(head -n 1 <<<"$h" | tr -d '\r')" "HTTP/1.1 503 Service Unavailable"
check "503 retry-after" "$(grep -i '^retry-after' <<<"$h" | tr -d '\r')" "Retry-After: 7"
check "503 body" "$(jq -r .error.message "$work/body")" "mock error 503"
check "config bad type" "$(cfg '{"latency_ms":"x"}')" 400
check "config unknown field" "$(post "$url/_mock/config" -d '{"nope":1}' | jq -r .error)" "nope: unknown field"
check "reset" "$(post -o /dev/null -w '%{http_code}' -X POST "$url/_mock/reset")" 200
cfg '{"latency_ms":300}' >/dev/null
t=$(post -o /dev/null -w '%{time_total}' "$url/v1/chat/completions" -d "$(msg x)")
check "latency_ms delays" "$(awk -v t="$t" 'BEGIN { print (t >= 0.3) }')" 1
cfg '{"latency_ms":0,"fail_after_chunks":2}' >/dev/null
set +e
r=$(post -N "$url/v1/chat/completions" -d "$(msg 'one two three' ',"stream":true')" 2>/dev/null)
rc=$?
set -e
check "fail_after_chunks cuts the stream" "$rc $(grep -c '^data:' <<<"$r")" "18 2"
check "fail_after_chunks non-stream" "$(post -o /dev/null -w '%{http_code}' "$url/v1/chat/completions" -d "$(msg x)" 2>/dev/null || true)" 000
cfg '{"fail_after_chunks":-1,"drop_connection":true}' >/dev/null
check "drop_connection" "$(post -o /dev/null -w '%{http_code}' "$url/v1/chat/completions" -d "$(msg x)" 2>/dev/null || true)" 000

# A client that gives up mid-stream is counted as a cancel.
post -X POST "$url/_mock/reset" >/dev/null
cfg '{"chunk_delay_ms":200}' >/dev/null
post -N --max-time 0.5 "$url/v1/chat/completions" -d "$(msg 'a b c d e f g' ',"stream":true')" >/dev/null 2>&1 || true
sleep 0.2
s=$(curl -sS "$url/_mock/stats")
check "stats after abort" "$(jq -c '[.requests_total, .streams_started, .streams_completed, .streams_cancelled, .in_flight]' <<<"$s")" \
    '[1,1,0,1,0]'
check "stats by_model" "$(jq -c '.by_model' <<<"$s")" '{"gpt-4o-mini":1}'

# SIGTERM with streams and delayed answers in flight: exit 0, everything freed.
cfg '{"chunk_delay_ms":1000}' >/dev/null
for _ in 1 2 3; do
    post -N "$url/v1/chat/completions" -d "$(msg 'a b c' ',"stream":true')" >/dev/null 2>&1 &
done
cfg '{"latency_ms":5000}' >/dev/null
post "$url/v1/chat/completions" -d "$(msg x)" >/dev/null 2>&1 &
sleep 0.5
check "in flight before SIGTERM" "$(curl -sS "$url/_mock/stats" | jq .in_flight)" 4
kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
pid=
check "SIGTERM exits 0" "$rc" 0
wait 2>/dev/null || true
if [ "$fails" -ne 0 ]; then
    echo "--- mock stderr"
    cat "$work/err"
    echo "smoke: $fails checks failed"
    exit 1
fi
echo "smoke: all checks passed"

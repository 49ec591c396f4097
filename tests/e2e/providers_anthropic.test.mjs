// tests/e2e/providers_anthropic.test.mjs - the official openai SDK through the proxy to the
// mock's Anthropic Messages API (provider kind "anthropic"): text, streams, tool calls (whole
// and streamed), tool results, usage, error classes and the capabilities the adapter
// refuses. A small capture server stands in for api.anthropic.com in one test to check the
// wire itself: URL, x-api-key, anthropic-version and the translated body.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startStack, basePolicy, openai, userMsg, postJson, errorObject, waitFor } from './lib/harness.mjs';

let st;
let client;
let capture; // { server, port, requests: [{ url, headers, body }] }

// Answers every request like the Messages API would, and remembers what it got.
function startCapture() {
    return new Promise((resolve) => {
        const requests = [];
        const server = http.createServer((req, res) => {
            let body = '';
            req.on('data', (d) => (body += d));
            req.on('end', () => {
                requests.push({ url: req.url, method: req.method, headers: req.headers, body: JSON.parse(body) });
                res.writeHead(200, { 'content-type': 'application/json' });
                res.end(JSON.stringify({
                    id: 'msg_capture', type: 'message', role: 'assistant', model: 'claude-captured',
                    content: [{ type: 'text', text: 'captured' }],
                    stop_reason: 'end_turn', stop_sequence: null,
                    usage: { input_tokens: 10, cache_creation_input_tokens: 5,
                             cache_read_input_tokens: 100, output_tokens: 2 },
                }));
            });
        });
        server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, requests }));
    });
}

before(async () => {
    capture = await startCapture();
    st = await startStack({
        env: { SY_TEST_ANTHROPIC_KEY: 'sk-ant-e2e-key' },
        policy: (mockUrl, stack) => {
            const p = basePolicy(mockUrl);
            // The Anthropic API root, as its docs give it: the adapter appends /v1/messages.
            p.providers.push(
                { name: 'anth', kind: 'anthropic', base_url: stack.mockUrl,
                  api_key_env: 'SY_TEST_ANTHROPIC_KEY', timeout_ms: 10000, connect_timeout_ms: 2000 },
                { name: 'anth-capture', kind: 'anthropic', base_url: `http://127.0.0.1:${capture.port}`,
                  api_key_env: 'SY_TEST_ANTHROPIC_KEY', api_version: '2024-10-22',
                  timeout_ms: 10000, connect_timeout_ms: 2000 },
            );
            p.models.push(
                { name: 'claude', provider: 'anth', upstream_model: 'claude-up',
                  pricing: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.3 } },
                { name: 'claude-capture', provider: 'anth-capture', upstream_model: 'claude-sonnet-4-20250514',
                  pricing: { input_per_mtok: 3, output_per_mtok: 15 } },
            );
            // The error-class tests fail on purpose, one after another: keep the circuit
            // breaker closed so each later test still reaches the provider.
            p.resilience = { breaker: { failures: 1000, error_rate: 1, min_requests: 1000000 } };
            return p;
        },
    });
    client = st.client();
});
afterEach(async () => {
    if (st) await st.mockReset();
});
after(async () => {
    if (st) await st.stop();
    if (capture) capture.server.close();
});

const T = { timeout: 20000 };

// The mock's token rule (tests/mockllm/mock_plan.h): a message costs its text's tokens + 3.
const tokens = (s) => Math.floor((Buffer.byteLength(s) + 3) / 4);
const msgTokens = (s) => tokens(s) + 3;

async function rejects(promise) {
    try {
        await promise;
    } catch (e) {
        return e;
    }
    assert.fail('request succeeded but an error was expected');
}

const tools = [
    {
        type: 'function',
        function: {
            name: 'get_weather',
            description: 'Get the current weather in a given location',
            parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
        },
    },
    { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } },
];

test('text: echo, finish_reason stop, usage, route headers', T, async () => {
    const text = 'hello anthropic';
    const { data, response } = await client.chat.completions
        .create({ model: 'claude', messages: userMsg(text) })
        .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.model, 'claude-up');
    assert.match(data.id, /^msg_mock_\d+$/);
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(data.choices[0].message.content, `echo: ${text}`);
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.deepEqual(data.usage, {
        prompt_tokens: msgTokens(text),
        completion_tokens: tokens(`echo: ${text}`),
        total_tokens: msgTokens(text) + tokens(`echo: ${text}`),
        prompt_tokens_details: { cached_tokens: 0 },
    });
    assert.equal(response.headers.get('x-switchyard-provider'), 'anth');
    assert.equal(response.headers.get('x-switchyard-model'), 'claude');
    const stats = await st.mockStats();
    assert.equal(stats.by_path['/v1/messages'], 1);
    assert.equal(stats.by_model['claude-up'], 1);
});

test('system messages are lifted and turns merged: the mock accepts and echoes', T, async () => {
    const messages = [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'first answer' },
        { role: 'system', content: 'Still terse.' },
        { role: 'user', content: 'second' },
        { role: 'user', content: 'question' },
    ];
    const r = await client.chat.completions.create({ model: 'claude', messages });
    // The mock echoes the last user message's text: the merged turn's blocks joined.
    assert.equal(r.choices[0].message.content, 'echo: secondquestion');
    const system = 'You are terse.\n\nStill terse.';
    assert.equal(r.usage.prompt_tokens,
                 msgTokens(system) + msgTokens('first question') + msgTokens('first answer') +
                 msgTokens('secondquestion'));
});

test('streaming: role first, text reassembles over >= 3 chunks, usage when asked', T, async () => {
    const text = 'the quick brown fox jumps over the lazy dog';
    const { data: stream, response } = await client.chat.completions
        .create({ model: 'claude', messages: userMsg(text), stream: true, stream_options: { include_usage: true } })
        .withResponse();
    assert.match(response.headers.get('content-type') || '', /text\/event-stream/);
    let out = '';
    let pieces = 0;
    let finish = null;
    let usage = null;
    let first = true;
    for await (const chunk of stream) {
        assert.equal(chunk.object, 'chat.completion.chunk');
        if (first) {
            assert.equal(chunk.choices[0].delta.role, 'assistant');
            first = false;
        }
        if (chunk.usage) {
            assert.deepEqual(chunk.choices, []);
            usage = chunk.usage;
            continue;
        }
        const c = chunk.choices[0];
        if (c.delta?.content) {
            out += c.delta.content;
            pieces++;
        }
        if (c.finish_reason) finish = c.finish_reason;
    }
    assert.equal(out, `echo: ${text}`);
    assert.ok(pieces >= 3, `${pieces} content chunks`);
    assert.equal(finish, 'stop');
    assert.deepEqual(usage, {
        prompt_tokens: msgTokens(text),
        completion_tokens: tokens(`echo: ${text}`),
        total_tokens: msgTokens(text) + tokens(`echo: ${text}`),
        prompt_tokens_details: { cached_tokens: 0 },
    });
});

test('streaming without include_usage: no usage chunk reaches the client', T, async () => {
    const stream = await client.chat.completions.create({ model: 'claude', messages: userMsg('a b c d'), stream: true });
    let out = '';
    for await (const chunk of stream) {
        assert.ok(!chunk.usage, 'no usage chunk');
        out += chunk.choices[0]?.delta?.content ?? '';
    }
    assert.equal(out, 'echo: a b c d');
    // The usage chunk was dropped for the client but still accounted.
    const entry = await waitFor(() => st.accessLogEntries().find(
        (e) => e.model === 'claude' && e.stream && e.prompt_tokens === msgTokens('a b c d')),
    { what: 'the access log line with the stream\'s usage' });
    assert.equal(entry.completion_tokens, tokens('echo: a b c d'));
});

test('tool call (whole): tool_use -> tool_calls with exact JSON arguments', T, async () => {
    const text = 'weather in "Paris"?';
    const r = await client.chat.completions.create({ model: 'claude', messages: userMsg(text), tools });
    const m = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.content, null);
    assert.equal(m.tool_calls.length, 1);
    assert.equal(m.tool_calls[0].type, 'function');
    assert.match(m.tool_calls[0].id, /^toolu_mock_\d+$/);
    assert.equal(m.tool_calls[0].function.name, 'get_weather');
    assert.equal(m.tool_calls[0].function.arguments, JSON.stringify({ echo: text }));
    assert.equal(r.usage.completion_tokens, tokens(JSON.stringify({ echo: text })));
});

test('tool_choice naming a function forces that tool', T, async () => {
    const r = await client.chat.completions.create({
        model: 'claude', messages: userMsg('what time'), tools,
        tool_choice: { type: 'function', function: { name: 'get_time' } },
    });
    assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_time');
    const none = await client.chat.completions.create({
        model: 'claude', messages: userMsg('no tools please'), tools, tool_choice: 'none',
    });
    assert.equal(none.choices[0].message.content, 'echo: no tools please');
    assert.equal(none.choices[0].finish_reason, 'stop');
});

test('tool call (streamed): index 0, id and name first, arguments reassemble exactly', T, async () => {
    const text = 'stream the weather in Tromsø please';
    const stream = await client.chat.completions.create({
        model: 'claude', messages: userMsg(text), tools, stream: true,
    });
    let args = '';
    let argPieces = 0;
    let id = null;
    let name = null;
    let finish = null;
    let firstToolDelta = true;
    for await (const chunk of stream) {
        const c = chunk.choices[0];
        if (!c) continue;
        for (const tc of c.delta?.tool_calls ?? []) {
            assert.equal(tc.index, 0);
            if (firstToolDelta) {
                assert.ok(tc.id, 'id on the first delta');
                assert.equal(tc.type, 'function');
                assert.equal(tc.function.name, 'get_weather');
                assert.equal(tc.function.arguments, '');
                id = tc.id;
                name = tc.function.name;
                firstToolDelta = false;
            } else {
                assert.equal(tc.id, undefined, 'id only on the first delta');
                assert.equal(tc.function.name, undefined, 'name only on the first delta');
                args += tc.function.arguments;
                argPieces++;
            }
        }
        if (c.finish_reason) finish = c.finish_reason;
    }
    assert.match(id, /^toolu_mock_\d+$/);
    assert.equal(name, 'get_weather');
    assert.equal(args, JSON.stringify({ echo: text }));
    assert.ok(argPieces >= 3, `${argPieces} argument chunks`);
    assert.equal(finish, 'tool_calls');
});

test('tool results go back as tool_result blocks; the mock accepts the round trip', T, async () => {
    const q = 'weather in Oslo';
    const first = await client.chat.completions.create({ model: 'claude', messages: userMsg(q), tools });
    const call = first.choices[0].message.tool_calls[0];
    const r = await client.chat.completions.create({
        model: 'claude',
        tools,
        messages: [
            { role: 'user', content: q },
            { role: 'assistant', content: null, tool_calls: [call] },
            { role: 'tool', tool_call_id: call.id, content: '-3 degrees, snow' },
        ],
        tool_choice: 'none',
    });
    // A user turn of tool results is not a new question: the mock echoes the original one.
    assert.equal(r.choices[0].message.content, `echo: ${q}`);
});

test('images: data URL and https URL reach the provider as image blocks', T, async () => {
    const r = await client.chat.completions.create({
        model: 'claude',
        messages: [{
            role: 'user',
            content: [
                { type: 'text', text: 'describe' },
                { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
                { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
            ],
        }],
    });
    assert.equal(r.choices[0].message.content, 'echo: describe');
});

test('the wire: /v1/messages, x-api-key, anthropic-version, translated body', T, async () => {
    capture.requests.length = 0;
    const r = await client.chat.completions.create({
        model: 'claude-capture',
        messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'hi' }],
        stop: 'END',
        temperature: 0.2,
        provider_options: { anthropic: { top_k: 40, thinking: { type: 'enabled', budget_tokens: 1024 } } },
    });
    assert.equal(capture.requests.length, 1);
    const q = capture.requests[0];
    assert.equal(q.method, 'POST');
    assert.equal(q.url, '/v1/messages');
    assert.equal(q.headers['x-api-key'], 'sk-ant-e2e-key');
    assert.equal(q.headers['anthropic-version'], '2024-10-22');
    assert.equal(q.headers.authorization, undefined, 'no bearer token');
    assert.deepEqual(q.body, {
        model: 'claude-sonnet-4-20250514',
        max_tokens: 4096,
        system: 'sys',
        messages: [{ role: 'user', content: 'hi' }],
        stop_sequences: ['END'],
        temperature: 0.2,
        top_k: 40,
        thinking: { type: 'enabled', budget_tokens: 1024 },
    });
    // Cache tokens: prompt = input + cache read + cache creation; cached = cache read.
    assert.equal(r.choices[0].message.content, 'captured');
    assert.deepEqual(r.usage, {
        prompt_tokens: 115, completion_tokens: 2, total_tokens: 117,
        prompt_tokens_details: { cached_tokens: 100 },
    });
});

test('provider 429 -> RateLimitError with retry-after', T, async () => {
    await st.mockConfig({ status: 429, retry_after_s: 2 });
    const e = await rejects(client.chat.completions.create({ model: 'claude', messages: userMsg('x') }));
    assert.ok(e instanceof openai.RateLimitError, `RateLimitError, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 429);
    assert.equal(e.error?.code, 'rate_limit_exceeded');
    assert.equal(e.headers?.get?.('retry-after') ?? e.headers?.['retry-after'], '2');
    assert.match(e.error?.message, /rate_limit|mock error 429/);
});

for (const status of [529, 503]) {
    test(`provider ${status} -> 502 InternalServerError upstream_error`, T, async () => {
        await st.mockConfig({ status });
        const e = await rejects(client.chat.completions.create({ model: 'claude', messages: userMsg('x') }));
        assert.ok(e instanceof openai.InternalServerError, `InternalServerError, got ${e.constructor.name}`);
        assert.equal(e.status, 502);
        assert.equal(e.error?.code, 'upstream_error');
        assert.ok(e.error?.message.includes(`mock error ${status}`), e.error?.message);
        // A stream that fails before its first byte is a plain error answer too.
        const es = await rejects((async () => {
            const s = await client.chat.completions.create({ model: 'claude', messages: userMsg('x'), stream: true });
            for await (const _ of s) { /* drain */ }
        })());
        assert.equal(es.status, 502);
    });
}

test('provider 401 -> 502 provider_auth_failed (the operator key, not the client)', T, async () => {
    await st.mockConfig({ status: 401 });
    const e = await rejects(client.chat.completions.create({ model: 'claude', messages: userMsg('x') }));
    assert.ok(e instanceof openai.InternalServerError, `got ${e.constructor.name}`);
    assert.equal(e.status, 502);
    assert.equal(e.error?.code, 'provider_auth_failed');
});

test('a stream cut midway ends with an error event, never a silent cut', T, async () => {
    await st.mockConfig({ fail_after_chunks: 4 });
    const r = await postJson(`${st.baseURL}/chat/completions`,
                             { model: 'claude', messages: userMsg('one two three four five six'), stream: true });
    if (r.status !== 200) {
        assert.ok(r.status >= 500, `status ${r.status}`);
        errorObject(assert, r.body);
        return;
    }
    const data = r.body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
    assert.ok(!data.includes('[DONE]'), 'no [DONE] after a cut');
    errorObject(assert, data.at(-1), 'last event');
});

test('embeddings and legacy completions -> 400 naming the model and the capability', T, async () => {
    const e = await rejects(client.embeddings.create({ model: 'claude', input: 'x' }));
    assert.ok(e instanceof openai.BadRequestError, `BadRequestError, got ${e.constructor.name}`);
    assert.equal(e.status, 400);
    assert.equal(e.error?.code, 'unsupported_capability');
    assert.match(e.error?.message, /claude/);
    assert.match(e.error?.message, /embeddings/);
    const c = await rejects(client.completions.create({ model: 'claude', prompt: 'x' }));
    assert.equal(c.status, 400);
    assert.match(c.error?.message, /legacy completions/);
    const stats = await st.mockStats();
    assert.equal(stats.requests_total, 0, 'nothing reached the provider');
});

test('n > 1 and JSON mode are refused with a clear 400', T, async () => {
    const n = await rejects(client.chat.completions.create({ model: 'claude', messages: userMsg('x'), n: 2 }));
    assert.ok(n instanceof openai.BadRequestError, `got ${n.constructor.name}`);
    assert.match(n.error?.message, /model claude: n: .*one choice/);
    const j = await rejects(client.chat.completions.create({
        model: 'claude', messages: userMsg('x'), response_format: { type: 'json_object' },
    }));
    assert.equal(j.status, 400);
    assert.match(j.error?.message, /JSON mode is not supported/);
});

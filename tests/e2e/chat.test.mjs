// tests/e2e/chat.test.mjs - chat completions through the proxy with the official openai SDK:
// plain, streamed, usage chunk, tool calls, response headers, request ids, /v1/models,
// access log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startStack, basePolicy, userMsg, waitFor, fetchT } from './lib/harness.mjs';

let st;
let client;
// A second upstream that records what the proxy sends it.
let recorder;
const recorded = [];
before(async () => {
    recorder = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => {
            recorded.push({ method: req.method, url: req.url, headers: req.headers, body });
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({
                id: 'rec-1', object: 'chat.completion', created: 1, model: 'rec-upstream',
                choices: [{ index: 0, message: { role: 'assistant', content: 'recorded' }, finish_reason: 'stop' }],
                usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
            }));
        });
    });
    await new Promise((r) => recorder.listen(0, '127.0.0.1', r));
    st = await startStack({
        policy: (mockUrl) => {
            const p = basePolicy(mockUrl);
            p.providers.push({ name: 'recorder', kind: 'openai',
                               base_url: `http://127.0.0.1:${recorder.address().port}/v1`,
                               api_key_env: 'SY_TEST_REC_KEY', timeout_ms: 5000 });
            p.models.push({ name: 'rec-model', provider: 'recorder', upstream_model: 'rec-upstream',
                            pricing: { input_per_mtok: 1, output_per_mtok: 1 } });
            return p;
        },
        env: { SY_TEST_REC_KEY: 'sk-provider-secret' },
    });
    client = st.client();
});
after(async () => {
    if (st) await st.stop();
    if (recorder) {
        recorder.closeAllConnections?.();
        await new Promise((r) => recorder.close(r));
    }
});

const T = { timeout: 20000 };

function assertHeaders(h, { route = 'direct', model } = {}) {
    assert.ok(h.get('x-request-id'), 'x-request-id');
    assert.equal(h.get('x-switchyard-provider'), 'mock');
    if (model) assert.equal(h.get('x-switchyard-model'), model);
    else assert.ok(h.get('x-switchyard-model'), 'x-switchyard-model');
    assert.equal(h.get('x-switchyard-route'), route);
    assert.ok(h.get('x-switchyard-policy-version'), 'x-switchyard-policy-version');
}

test('plain completion echoes, has usage and switchyard headers', T, async () => {
    const { data, response } = await client.chat.completions
        .create({ model: 'mock-a', messages: userMsg('hello there') })
        .withResponse();
    assert.equal(response.status, 200);
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(data.choices[0].message.content, 'echo: hello there');
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.ok(data.usage, 'usage present');
    assert.ok(data.usage.prompt_tokens > 0, 'prompt_tokens > 0');
    assert.ok(data.usage.completion_tokens > 0, 'completion_tokens > 0');
    assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
    assertHeaders(response.headers, { model: 'mock-a' });
});

test('the provider gets its own key, the upstream model name and the request', T, async () => {
    recorded.length = 0;
    const r = await client.chat.completions.create({ model: 'rec-model', messages: userMsg('secret?'), temperature: 0.5 });
    assert.equal(r.choices[0].message.content, 'recorded');
    assert.equal(recorded.length, 1);
    const up = recorded[0];
    assert.equal(up.method, 'POST');
    assert.equal(up.url, '/v1/chat/completions');
    assert.equal(up.headers.authorization, 'Bearer sk-provider-secret', 'key from api_key_env');
    assert.ok(!JSON.stringify(up.headers).includes('sk-client-key'), 'client key not forwarded');
    const body = JSON.parse(up.body);
    assert.equal(body.model, 'rec-upstream');
    assert.equal(body.temperature, 0.5, 'other parameters pass through');
    assert.deepEqual(body.messages, userMsg('secret?'));
});

test('route match answers with route name and a target model', T, async () => {
    const { data, response } = await client.chat.completions
        .create({ model: 'auto', messages: userMsg('routed') })
        .withResponse();
    assert.equal(data.choices[0].message.content, 'echo: routed');
    assertHeaders(response.headers, { route: 'weighted' });
    assert.ok(['mock-a', 'mock-b'].includes(response.headers.get('x-switchyard-model')));
});

test('x-request-id from the client is echoed; otherwise one is generated', T, async () => {
    const { response } = await client.chat.completions
        .create({ model: 'mock-a', messages: userMsg('id') }, { headers: { 'x-request-id': 'e2e-req-42' } })
        .withResponse();
    assert.equal(response.headers.get('x-request-id'), 'e2e-req-42');
    const a = await client.chat.completions.create({ model: 'mock-a', messages: userMsg('x') }).withResponse();
    const b = await client.chat.completions.create({ model: 'mock-a', messages: userMsg('y') }).withResponse();
    const ia = a.response.headers.get('x-request-id');
    const ib = b.response.headers.get('x-request-id');
    assert.ok(ia && ib, 'generated ids');
    assert.notEqual(ia, ib, 'generated ids are unique');
});

test('streaming reassembles to the echo text in several chunks', T, async () => {
    const text = 'the quick brown fox jumps over the lazy dog';
    const { data: stream, response } = await client.chat.completions
        .create({ model: 'mock-b', messages: userMsg(text), stream: true })
        .withResponse();
    assert.match(response.headers.get('content-type') || '', /text\/event-stream/);
    assertHeaders(response.headers, { model: 'mock-b' });
    let out = '';
    let contentChunks = 0;
    let finish = null;
    for await (const chunk of stream) {
        assert.equal(chunk.object, 'chat.completion.chunk');
        const c = chunk.choices[0];
        if (!c) continue;
        if (c.delta?.content) {
            out += c.delta.content;
            contentChunks++;
        }
        if (c.finish_reason) finish = c.finish_reason;
    }
    assert.equal(out, `echo: ${text}`);
    assert.ok(contentChunks > 1, `more than one content chunk (got ${contentChunks})`);
    assert.equal(finish, 'stop');
});

test('streaming with include_usage ends with a usage chunk', T, async () => {
    const stream = await client.chat.completions.create({
        model: 'mock-a',
        messages: userMsg('count my tokens'),
        stream: true,
        stream_options: { include_usage: true },
    });
    let out = '';
    let last = null;
    for await (const chunk of stream) {
        out += chunk.choices[0]?.delta?.content || '';
        last = chunk;
    }
    assert.equal(out, 'echo: count my tokens');
    assert.ok(last, 'got chunks');
    assert.deepEqual(last.choices, [], 'usage chunk has empty choices');
    assert.ok(last.usage, 'final chunk carries usage');
    assert.ok(last.usage.prompt_tokens > 0);
    assert.ok(last.usage.completion_tokens > 0);
});

const tools = [
    {
        type: 'function',
        function: {
            name: 'echo',
            description: 'Echo the text back',
            parameters: {
                type: 'object',
                properties: { echo: { type: 'string' } },
                required: ['echo'],
            },
        },
    },
];

test('tool call (non-stream)', T, async () => {
    const text = 'call the tool';
    const r = await client.chat.completions.create({ model: 'mock-a', messages: userMsg(text), tools });
    const msg = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.ok(Array.isArray(msg.tool_calls) && msg.tool_calls.length === 1, 'one tool call');
    const tc = msg.tool_calls[0];
    assert.equal(tc.type, 'function');
    assert.ok(tc.id, 'tool call id');
    assert.equal(tc.function.name, 'echo');
    assert.equal(tc.function.arguments, JSON.stringify({ echo: text }));
    assert.deepEqual(JSON.parse(tc.function.arguments), { echo: text });
});

test('tool call (streamed) reassembles arguments', T, async () => {
    const text = 'stream "quoted" tool args';
    const stream = await client.chat.completions.create({
        model: 'mock-b',
        messages: userMsg(text),
        tools,
        stream: true,
    });
    let args = '';
    let first = null;
    let fragments = 0;
    let finish = null;
    for await (const chunk of stream) {
        const c = chunk.choices[0];
        if (!c) continue;
        for (const tc of c.delta?.tool_calls || []) {
            assert.equal(tc.index, 0);
            if (!first) first = tc;
            if (tc.function?.arguments) {
                args += tc.function.arguments;
                fragments++;
            }
        }
        if (c.finish_reason) finish = c.finish_reason;
    }
    assert.ok(first, 'saw a tool call delta');
    assert.ok(first.id, 'id on the first delta');
    assert.equal(first.function?.name, 'echo', 'name on the first delta');
    assert.equal(args, JSON.stringify({ echo: text }));
    assert.deepEqual(JSON.parse(args), { echo: text });
    assert.ok(fragments >= 1);
    assert.equal(finish, 'tool_calls');
});

test('/v1/models lists policy models and route names', T, async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    for (const want of ['mock-a', 'mock-b', 'auto']) {
        assert.ok(ids.includes(want), `${want} in ${JSON.stringify(ids)}`);
    }
    const r = await fetchT(`${st.baseURL}/models`);
    assert.equal(r.status, 200);
    const j = await r.json();
    assert.equal(j.object, 'list');
    for (const m of j.data) assert.equal(m.object, 'model');
});

test('health endpoints', T, async () => {
    assert.equal((await fetchT(`${st.url}/healthz`)).status, 200);
    assert.equal((await fetchT(`${st.url}/readyz`)).status, 200);
});

test('access log: one JSON object per request with the documented fields', T, async () => {
    const id = `e2e-log-${Date.now()}`;
    await client.chat.completions.create(
        { model: 'mock-a', messages: userMsg('log me') },
        { headers: { 'x-request-id': id } },
    );
    const sid = `${id}-s`;
    const s = await client.chat.completions.create(
        { model: 'auto', messages: userMsg('log my stream'), stream: true, stream_options: { include_usage: true } },
        { headers: { 'x-request-id': sid } },
    );
    for await (const _ of s) {
        /* drain */
    }
    const find = (rid) => st.accessLogEntries().find((e) => e.request_id === rid);
    const e = await waitFor(() => find(id), { timeoutMs: 5000, what: `access log line for ${id}` });
    const es = await waitFor(() => find(sid), { timeoutMs: 5000, what: `access log line for ${sid}` });
    for (const k of ['request_id', 'route', 'provider', 'model', 'status', 'latency_us', 'ttft_us',
                     'prompt_tokens', 'completion_tokens']) {
        assert.ok(k in e, `field ${k} in ${JSON.stringify(e)}`);
        assert.ok(k in es, `field ${k} in ${JSON.stringify(es)}`);
    }
    // Bytes sent to the client: "bytes", or "bytes_out" (with "bytes_in") as the proxy logs them.
    const bytesOut = (x) => x.bytes ?? x.bytes_out;
    assert.equal(typeof bytesOut(e), 'number', `bytes or bytes_out in ${JSON.stringify(e)}`);
    assert.equal(typeof bytesOut(es), 'number', `bytes or bytes_out in ${JSON.stringify(es)}`);
    assert.equal(e.route, 'direct');
    assert.equal(e.provider, 'mock');
    assert.equal(e.model, 'mock-a');
    assert.equal(e.status, 200);
    assert.ok(e.latency_us > 0);
    assert.ok(e.prompt_tokens > 0 && e.completion_tokens > 0, 'tokens accounted');
    assert.ok(bytesOut(e) > 0);
    assert.ok(bytesOut(es) > 0);
    assert.equal(es.route, 'weighted');
    assert.equal(es.status, 200);
    assert.ok(es.ttft_us > 0 && es.ttft_us <= es.latency_us, 'stream ttft within latency');
    assert.ok(es.completion_tokens > 0, 'stream tokens accounted');
    // Every line in the file parses (accessLogEntries throws otherwise).
    assert.ok(st.accessLogEntries().length >= 2);
});

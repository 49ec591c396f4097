// tests/e2e/ingress_anthropic.test.mjs - POST /v1/messages with the official @anthropic-ai/sdk,
// routed to an OpenAI provider (the mock): plain and streamed text, tool use (whole and
// streamed input_json_delta), the OpenAI request the provider receives, and errors as the
// SDK's classes (404, 400, 429, a stream cut after the first byte, an error event).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { startStack, basePolicy, postJson, SDK_DIR, SLOW } from './lib/harness.mjs';

const sdk = createRequire(path.join(SDK_DIR, 'package.json'))('@anthropic-ai/sdk');
const Anthropic = sdk.Anthropic;

let st;
let client;
// A second OpenAI upstream that records what the proxy sends it and answers from a script.
let recorder;
const recorded = [];

function recorderAnswer(req, res, body) {
    const j = JSON.parse(body);
    const last = JSON.stringify(j.messages?.at(-1) ?? {});
    if (j.stream && last.includes('fail in the stream')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: {"id":"rec-2","object":"chat.completion.chunk","choices":[{"index":0,' +
                  '"delta":{"role":"assistant","content":"partial"},"finish_reason":null}]}\n\n');
        res.end('data: {"error":{"message":"upstream overloaded","type":"rate_limit_error",' +
                '"code":"rate_limit_exceeded"}}\n\n');
        return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
        id: 'rec-1', object: 'chat.completion', created: 1, model: 'rec-upstream',
        choices: [{ index: 0, message: { role: 'assistant', content: 'recorded' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 100, completion_tokens: 7, total_tokens: 107,
                 prompt_tokens_details: { cached_tokens: 60 } },
    }));
}

before(async () => {
    recorder = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => {
            recorded.push({ url: req.url, headers: req.headers, body });
            recorderAnswer(req, res, body);
        });
    });
    await new Promise((r) => recorder.listen(0, '127.0.0.1', r));
    st = await startStack({
        policy: (mockUrl) => {
            const p = basePolicy(mockUrl);
            p.providers.push({ name: 'recorder', kind: 'openai',
                               base_url: `http://127.0.0.1:${recorder.address().port}/v1`,
                               timeout_ms: 5000 });
            p.models.push({ name: 'rec-model', provider: 'recorder', upstream_model: 'rec-upstream',
                            pricing: { input_per_mtok: 1, output_per_mtok: 1 } });
            return p;
        },
    });
    // The SDK appends /v1/messages to the base URL.
    client = new Anthropic({ apiKey: 'sk-ant-client-key', baseURL: st.url, maxRetries: 0,
                             timeout: 20000 * SLOW });
});
afterEach(async () => {
    if (st) await st.mockReset();
});
after(async () => {
    if (st) await st.stop();
    if (recorder) {
        recorder.closeAllConnections?.();
        await new Promise((r) => recorder.close(r));
    }
});

const T = { timeout: 20000 };
const user = (text) => [{ role: 'user', content: text }];
const weather = {
    name: 'get_weather',
    description: 'Weather for a city',
    input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};

async function rejects(promise) {
    try {
        await promise;
    } catch (e) {
        return e;
    }
    assert.fail('request succeeded but an error was expected');
}

test('messages.create: text, usage, ids, headers', T, async () => {
    const { data: msg, response } = await client.messages
        .create({ model: 'mock-a', max_tokens: 100, messages: user('hello there world') })
        .withResponse();
    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, 'mock-a', 'the model the client asked for');
    assert.match(msg.id, /^msg_/);
    assert.equal(msg.content.length, 1);
    assert.equal(msg.content[0].type, 'text');
    assert.equal(msg.content[0].text, 'echo: hello there world');
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.stop_sequence, null);
    // The mock's token rule: 17 bytes -> 5 + 3 prompt tokens; 23 bytes -> 6 completion tokens.
    assert.equal(msg.usage.input_tokens, 8);
    assert.equal(msg.usage.output_tokens, 6);
    assert.ok(response.headers.get('x-request-id'), 'x-request-id');
    assert.equal(response.headers.get('x-switchyard-provider'), 'mock');
    assert.equal(response.headers.get('x-switchyard-model'), 'mock-a');
});

test('messages.stream: text deltas reassemble, final message has stop_reason and usage', T,
     async () => {
    const stream = client.messages.stream({ model: 'mock-a', max_tokens: 100,
                                            messages: user('hello there world') });
    let text = '';
    stream.on('text', (delta) => (text += delta));
    const final = await stream.finalMessage();
    assert.equal(text, 'echo: hello there world');
    assert.equal(final.content.length, 1);
    assert.equal(final.content[0].text, 'echo: hello there world');
    assert.equal(final.stop_reason, 'end_turn');
    assert.match(final.id, /^msg_/);
    assert.equal(final.model, 'mock-a');
    assert.equal(final.usage.output_tokens, 6);
    assert.equal(final.usage.input_tokens, 8, 'message_delta carries the real input tokens');
});

test('create({stream:true}): the Anthropic event sequence', T, async () => {
    const stream = await client.messages.create({ model: 'mock-b', max_tokens: 50, stream: true,
                                                  messages: user('one two three four') });
    const types = [];
    let text = '';
    for await (const ev of stream) {
        types.push(ev.type);
        if (ev.type === 'content_block_delta') {
            assert.equal(ev.index, 0);
            assert.equal(ev.delta.type, 'text_delta');
            text += ev.delta.text;
        }
        if (ev.type === 'message_delta') {
            assert.equal(ev.delta.stop_reason, 'end_turn');
            assert.ok(ev.usage.output_tokens > 0);
        }
    }
    assert.equal(text, 'echo: one two three four');
    assert.equal(types[0], 'message_start');
    assert.equal(types[1], 'content_block_start');
    assert.ok(types.filter((t) => t === 'content_block_delta').length >= 3);
    assert.deepEqual(types.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
});

test('tool use: a tool_use block with the parsed input', T, async () => {
    const msg = await client.messages.create({
        model: 'mock-a', max_tokens: 100, tools: [weather],
        messages: user('Paris'),
    });
    assert.equal(msg.stop_reason, 'tool_use');
    const tu = msg.content.find((b) => b.type === 'tool_use');
    assert.ok(tu, `a tool_use block in ${JSON.stringify(msg.content)}`);
    assert.equal(tu.name, 'get_weather');
    assert.ok(tu.id, 'tool_use id');
    assert.deepEqual(tu.input, { echo: 'Paris' });
});

test('tool use, streamed: input_json_delta reassembles to the input', T, async () => {
    const stream = client.messages.stream({
        model: 'mock-a', max_tokens: 100, tools: [weather],
        tool_choice: { type: 'tool', name: 'get_weather' },
        messages: user('say "hi" to Paris'),
    });
    let partial = '';
    stream.on('inputJson', (delta) => (partial += delta));
    const final = await stream.finalMessage();
    assert.equal(final.stop_reason, 'tool_use');
    assert.equal(final.content.length, 1);
    assert.equal(final.content[0].type, 'tool_use');
    assert.equal(final.content[0].name, 'get_weather');
    assert.deepEqual(final.content[0].input, { echo: 'say "hi" to Paris' });
    assert.deepEqual(JSON.parse(partial), { echo: 'say "hi" to Paris' });
});

test('the provider gets an OpenAI request: system, tool calls, tool results, images', T,
     async () => {
    recorded.length = 0;
    const msg = await client.messages.create({
        model: 'rec-model',
        max_tokens: 64,
        system: [{ type: 'text', text: 'You are terse.' }],
        temperature: 0.5,
        top_k: 5,
        stop_sequences: ['END'],
        metadata: { user_id: 'user-42' },
        tools: [weather],
        tool_choice: { type: 'any' },
        messages: [
            { role: 'user', content: 'Weather in Paris?' },
            { role: 'assistant', content: [
                { type: 'text', text: 'Let me check.' },
                { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } },
            ] },
            { role: 'user', content: [
                { type: 'tool_result', tool_use_id: 'toolu_01', content: '18C, sunny' },
                { type: 'text', text: 'And this picture?' },
                { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
            ] },
        ],
    });
    assert.equal(msg.content[0].text, 'recorded');
    // Cached prompt tokens are Anthropic's cache reads; input_tokens counts the rest.
    assert.equal(msg.usage.input_tokens, 40);
    assert.equal(msg.usage.cache_read_input_tokens, 60);
    assert.equal(msg.usage.output_tokens, 7);
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0].url, '/v1/chat/completions');
    const o = JSON.parse(recorded[0].body);
    assert.equal(o.model, 'rec-upstream');
    assert.equal(o.max_tokens, 64);
    assert.equal(o.temperature, 0.5);
    assert.deepEqual(o.stop, ['END']);
    assert.equal(o.user, 'user-42');
    assert.equal(o.tool_choice, 'required');
    assert.equal(o.provider_options, undefined, 'Switchyard fields never reach the provider');
    assert.equal(o.top_k, undefined);
    assert.deepEqual(o.tools, [{ type: 'function', function: {
        name: 'get_weather', description: 'Weather for a city', parameters: weather.input_schema } }]);
    assert.deepEqual(o.messages, [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: 'Let me check.', tool_calls: [
            { id: 'toolu_01', type: 'function',
              function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'toolu_01', content: '18C, sunny' },
        { role: 'user', content: [
            { type: 'text', text: 'And this picture?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
    ]);
});

test('a streamed request asks the provider for usage', T, async () => {
    recorded.length = 0;
    const r = await postJson(`${st.url}/v1/messages`, {
        model: 'rec-model', max_tokens: 10, stream: true, messages: user('fail in the stream'),
    });
    assert.equal(recorded.length, 1);
    const o = JSON.parse(recorded[0].body);
    assert.equal(o.stream, true);
    assert.deepEqual(o.stream_options, { include_usage: true });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/event-stream/);
});

test('unknown model -> NotFoundError with an Anthropic error body', T, async () => {
    const e = await rejects(client.messages.create({ model: 'no-such-model', max_tokens: 10,
                                                     messages: user('x') }));
    assert.ok(e instanceof sdk.NotFoundError, `NotFoundError, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 404);
    assert.equal(e.error?.type, 'error');
    assert.equal(e.error?.error?.type, 'not_found_error');
    assert.match(e.error?.error?.message, /no-such-model/);
});

test('missing max_tokens -> BadRequestError naming the field', T, async () => {
    const e = await rejects(client.messages.create({ model: 'mock-a', messages: user('x') }));
    assert.ok(e instanceof sdk.BadRequestError, `BadRequestError, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 400);
    assert.equal(e.error?.error?.type, 'invalid_request_error');
    assert.match(e.error?.error?.message, /max_tokens/);
    const r = await postJson(`${st.url}/v1/messages`, {
        model: 'mock-a', max_tokens: 10,
        messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'audio' }] }],
    });
    assert.equal(r.status, 400);
    assert.equal(r.json.type, 'error');
    assert.match(r.json.error.message, /^messages\[0\]\.content\[1\]\.type: /);
    const bad = await postJson(`${st.url}/v1/messages`, '{"model":');
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.type, 'invalid_request_error');
});

test('upstream 429 -> RateLimitError', T, async () => {
    await st.mockConfig({ status: 429, retry_after_s: 3 });
    const e = await rejects(client.messages.create({ model: 'mock-a', max_tokens: 10,
                                                     messages: user('x') }));
    assert.ok(e instanceof sdk.RateLimitError, `RateLimitError, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 429);
    assert.equal(e.error?.error?.type, 'rate_limit_error');
    assert.equal(e.headers.get('retry-after'), '3');
    // Before the first byte a streamed request gets the same answer.
    const e2 = await rejects(client.messages.create({ model: 'mock-a', max_tokens: 10,
                                                      stream: true, messages: user('x') }));
    assert.ok(e2 instanceof sdk.RateLimitError, `got ${e2.constructor.name}`);
});

test('a stream cut after the first byte ends with an error event the SDK raises', T, async () => {
    await st.mockConfig({ fail_after_chunks: 2 });
    const stream = client.messages.stream({ model: 'mock-a', max_tokens: 10,
                                            messages: user('a b c d e f g h') });
    const e = await rejects(stream.finalMessage());
    assert.ok(e instanceof sdk.APIError, `APIError, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.error?.error?.type, 'api_error');
});

test('an OpenAI error object in the stream becomes an Anthropic error event', T, async () => {
    const stream = await client.messages.create({ model: 'rec-model', max_tokens: 10, stream: true,
                                                  messages: user('fail in the stream') });
    let text = '';
    const e = await rejects((async () => {
        for await (const ev of stream) {
            if (ev.type === 'content_block_delta') text += ev.delta.text;
        }
    })());
    assert.equal(text, 'partial');
    assert.ok(e instanceof sdk.APIError, `APIError, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.error?.error?.type, 'rate_limit_error');
    assert.match(e.error?.error?.message, /upstream overloaded/);
});

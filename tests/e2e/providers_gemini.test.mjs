// tests/e2e/providers_gemini.test.mjs - the official openai SDK through the proxy to the
// mock's Gemini API (provider kind "gemini"): text, streams, tool calls (whole and streamed),
// tool results, usage, embeddings via batchEmbedContents, error classes, and the
// capabilities the adapter refuses.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, basePolicy, openai, userMsg } from './lib/harness.mjs';

let st;
let client;

before(async () => {
    st = await startStack({
        policy: (mockUrl, stack) => {
            const p = basePolicy(mockUrl);
            // The Gemini API root: the adapter appends /v1beta/models/{model}:{method}.
            p.providers.push({
                name: 'gem',
                kind: 'gemini',
                base_url: stack.mockUrl,
                api_key_env: 'SY_TEST_MOCK_KEY',
                timeout_ms: 10000,
                connect_timeout_ms: 2000,
            });
            p.models.push(
                { name: 'gem-chat', provider: 'gem', upstream_model: 'gemini-2.0-flash',
                  pricing: { input_per_mtok: 0.1, output_per_mtok: 0.4 } },
                { name: 'gem-embed', provider: 'gem', upstream_model: 'text-embedding-004',
                  pricing: { input_per_mtok: 0.01, output_per_mtok: 0 } },
            );
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
});

const T = { timeout: 20000 };

// The mock's token rule (tests/mockllm/mock_plan.h).
const tokens = (s) => Math.floor((Buffer.byteLength(s) + 3) / 4);

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
            name: 'echo',
            description: 'Echo the text back',
            parameters: {
                type: 'object',
                properties: { echo: { type: 'string' } },
                required: ['echo'],
                additionalProperties: false,
            },
        },
    },
    { type: 'function', function: { name: 'noop', parameters: { type: 'object', properties: {} } } },
];

test('text: echo, finish stop, usage by the mock rule, Gemini path on the mock', T, async () => {
    const text = 'hello gemini';
    const { data: r, response } = await client.chat.completions
        .create({ model: 'gem-chat', messages: userMsg(text), temperature: 0.3, max_tokens: 50 })
        .withResponse();
    assert.equal(response.headers.get('x-switchyard-provider'), 'gem');
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, `echo: ${text}`);
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.usage.prompt_tokens, tokens(text) + 3);
    assert.equal(r.usage.completion_tokens, tokens(`echo: ${text}`));
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    const stats = await st.mockStats();
    assert.equal(stats.by_path['/v1beta/models/gemini-2.0-flash:generateContent'], 1);
    assert.equal(stats.by_model['gemini-2.0-flash'], 1);
});

test('system instruction and turns: the last user text is echoed', T, async () => {
    const r = await client.chat.completions.create({
        model: 'gem-chat',
        messages: [
            { role: 'system', content: 'be terse' },
            { role: 'user', content: 'first' },
            { role: 'assistant', content: 'echo: first' },
            { role: 'user', content: [{ type: 'text', text: 'second ' }, { type: 'text', text: 'turn' }] },
        ],
    });
    assert.equal(r.choices[0].message.content, 'echo: second turn');
    // system (8 bytes), user, model, user: each message costs tokens(bytes) + 3
    const want = [ 'be terse', 'first', 'echo: first', 'second turn' ]
        .reduce((n, s) => n + tokens(s) + 3, 0);
    assert.equal(r.usage.prompt_tokens, want);
});

test('streaming: role first, several content chunks, finish stop, no usage chunk unasked', T, async () => {
    const text = 'the quick brown fox jumps over the lazy dog';
    const { data: stream, response } = await client.chat.completions
        .create({ model: 'gem-chat', messages: userMsg(text), stream: true })
        .withResponse();
    assert.match(response.headers.get('content-type') || '', /text\/event-stream/);
    let out = '';
    let chunks = 0;
    let finish = null;
    let role = null;
    let usageChunks = 0;
    for await (const chunk of stream) {
        assert.equal(chunk.object, 'chat.completion.chunk');
        if (chunk.usage) usageChunks++;
        const c = chunk.choices[0];
        if (!c) continue;
        if (role === null) role = c.delta?.role ?? '';
        if (c.delta?.content) {
            out += c.delta.content;
            chunks++;
        }
        if (c.finish_reason) finish = c.finish_reason;
    }
    assert.equal(role, 'assistant', 'the first chunk carries the role');
    assert.equal(out, `echo: ${text}`);
    assert.ok(chunks > 1, `several content chunks (got ${chunks})`);
    assert.equal(finish, 'stop');
    assert.equal(usageChunks, 0);
    const stats = await st.mockStats();
    assert.equal(stats.by_path['/v1beta/models/gemini-2.0-flash:streamGenerateContent'], 1);
});

test('streaming with include_usage ends with the usage chunk', T, async () => {
    const text = 'count my tokens';
    const stream = await client.chat.completions.create({
        model: 'gem-chat',
        messages: userMsg(text),
        stream: true,
        stream_options: { include_usage: true },
    });
    let last = null;
    for await (const chunk of stream) last = chunk;
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.prompt_tokens, tokens(text) + 3);
    assert.equal(last.usage.completion_tokens, tokens(`echo: ${text}`));
});

test('tool call (non-stream): id, name, exact JSON arguments', T, async () => {
    const text = 'call the "tool" \u00e9';
    const r = await client.chat.completions.create({ model: 'gem-chat', messages: userMsg(text), tools });
    const msg = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.tool_calls.length, 1);
    const tc = msg.tool_calls[0];
    assert.equal(tc.type, 'function');
    assert.match(tc.id, /^call_/);
    assert.equal(tc.function.name, 'echo');
    assert.equal(tc.function.arguments, JSON.stringify({ echo: text }));
});

test('tool call (streamed): one whole call, id and name, exact arguments', T, async () => {
    const text = 'stream "quoted" tool args';
    const stream = await client.chat.completions.create({
        model: 'gem-chat',
        messages: userMsg(text),
        tools,
        tool_choice: { type: 'function', function: { name: 'echo' } },
        stream: true,
    });
    let args = '';
    let first = null;
    let finish = null;
    for await (const chunk of stream) {
        const c = chunk.choices[0];
        if (!c) continue;
        for (const tc of c.delta?.tool_calls || []) {
            assert.equal(tc.index, 0);
            if (!first) first = tc;
            args += tc.function?.arguments || '';
        }
        if (c.finish_reason) finish = c.finish_reason;
    }
    assert.ok(first, 'saw a tool call delta');
    assert.match(first.id, /^call_/);
    assert.equal(first.function?.name, 'echo');
    assert.equal(args, JSON.stringify({ echo: text }));
    assert.equal(finish, 'tool_calls');
});

test('tool results go back as functionResponse; tool_choice none answers in text', T, async () => {
    const first = await client.chat.completions.create({ model: 'gem-chat', messages: userMsg('weather?'), tools });
    const call = first.choices[0].message.tool_calls[0];
    const r = await client.chat.completions.create({
        model: 'gem-chat',
        tools,
        tool_choice: 'none',
        messages: [
            { role: 'user', content: 'weather?' },
            first.choices[0].message,
            { role: 'tool', tool_call_id: call.id, content: '{"temp": 21}' },
            { role: 'user', content: 'thanks' },
        ],
    });
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].message.content, 'echo: thanks');
});

test('embeddings via batchEmbedContents: base64 (SDK default) and float, dimensions, usage', T, async () => {
    const input = ['alpha', 'a longer sentence'];
    const g = await client.embeddings.create({ model: 'gem-embed', input });
    assert.equal(g.object, 'list');
    assert.equal(g.data.length, 2);
    g.data.forEach((d, i) => {
        assert.equal(d.index, i);
        assert.equal(d.object, 'embedding');
        assert.equal(d.embedding.length, 8);
    });
    assert.equal(g.usage.prompt_tokens, tokens(input[0]) + tokens(input[1]));
    // The mock's vectors are a function of the text: the OpenAI dialect gives the same ones.
    const o = await client.embeddings.create({ model: 'mock-a', input, encoding_format: 'float' });
    for (let i = 0; i < 2; i++) {
        for (let k = 0; k < 8; k++) {
            assert.ok(Math.abs(g.data[i].embedding[k] - o.data[i].embedding[k]) < 1e-6);
        }
    }
    const f = await client.embeddings.create({
        model: 'gem-embed', input: 'one', dimensions: 4, encoding_format: 'float',
    });
    assert.equal(f.data[0].embedding.length, 4);
    const stats = await st.mockStats();
    assert.equal(stats.by_path['/v1beta/models/text-embedding-004:batchEmbedContents'], 2);
});

test('429 from Gemini -> RateLimitError', T, async () => {
    await st.mockConfig({ status: 429 });
    const e = await rejects(client.chat.completions.create({ model: 'gem-chat', messages: userMsg('x') }));
    assert.ok(e instanceof openai.RateLimitError, `RateLimitError, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 429);
    assert.equal(e.code, 'rate_limit_exceeded');
});

test('503 UNAVAILABLE -> 502 upstream_error', T, async () => {
    await st.mockConfig({ status: 503 });
    const e = await rejects(client.chat.completions.create({ model: 'gem-chat', messages: userMsg('x') }));
    assert.ok(e instanceof openai.InternalServerError, `got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 502);
    assert.equal(e.code, 'upstream_error');
});

test('403 PERMISSION_DENIED -> 502 provider_auth_failed (also when streaming)', T, async () => {
    await st.mockConfig({ status: 403 });
    let e = await rejects(client.chat.completions.create({ model: 'gem-chat', messages: userMsg('x') }));
    assert.equal(e.status, 502);
    assert.equal(e.code, 'provider_auth_failed');
    e = await rejects(client.chat.completions.create({ model: 'gem-chat', messages: userMsg('x'), stream: true }));
    assert.equal(e.status, 502);
    assert.equal(e.code, 'provider_auth_failed');
});

test('legacy completions to a gemini model -> 400 naming the capability', T, async () => {
    const e = await rejects(client.completions.create({ model: 'gem-chat', prompt: 'x' }));
    assert.ok(e instanceof openai.BadRequestError, `got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 400);
    assert.equal(e.code, 'unsupported_capability');
    assert.match(e.message, /legacy completions/);
    assert.match(e.message, /gemini/);
});

test('what Gemini cannot do is refused with a 400 naming the field', T, async () => {
    let e = await rejects(client.chat.completions.create({ model: 'gem-chat', messages: userMsg('x'), n: 2 }));
    assert.equal(e.status, 400);
    assert.match(e.message, /gem-chat: n: only n=1/);
    e = await rejects(client.chat.completions.create({
        model: 'gem-chat',
        messages: [{ role: 'user', content: 'x' }, { role: 'tool', tool_call_id: 'nope', content: 'r' }],
    }));
    assert.equal(e.status, 400);
    assert.match(e.message, /messages\[1\]\.tool_call_id/);
    const stats = await st.mockStats();
    assert.equal(stats.requests_total, 0, 'refused requests never reach the provider');
});

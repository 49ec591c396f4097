// tests/e2e/errors.test.mjs - failures are answers: the SDK's error classes for 400, 404,
// 502 (provider unreachable), 504 (provider timeout) and an upstream error kept as is.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, basePolicy, closedPort, openai, userMsg, postJson, errorObject,
         fetchT } from './lib/harness.mjs';

let st;
let client;
let deadPort;

before(async () => {
    deadPort = await closedPort();
    st = await startStack({
        policy: (mockUrl) => {
            const p = basePolicy(mockUrl);
            p.providers.push(
                { name: 'dead', kind: 'openai', base_url: `http://127.0.0.1:${deadPort}/v1`,
                  timeout_ms: 5000, connect_timeout_ms: 1000 },
                { name: 'impatient', kind: 'openai', base_url: mockUrl,
                  timeout_ms: 400, connect_timeout_ms: 1000 },
            );
            p.models.push(
                { name: 'dead-model', provider: 'dead', upstream_model: 'x',
                  pricing: { input_per_mtok: 1, output_per_mtok: 1 } },
                { name: 'slow-model', provider: 'impatient', upstream_model: 'slow',
                  pricing: { input_per_mtok: 1, output_per_mtok: 1 } },
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

async function rejects(promise) {
    try {
        await promise;
    } catch (e) {
        return e;
    }
    assert.fail('request succeeded but an error was expected');
}

test('missing messages -> BadRequestError 400 invalid_request_error', T, async () => {
    const e = await rejects(client.chat.completions.create({ model: 'mock-a' }));
    assert.ok(e instanceof openai.BadRequestError, `BadRequestError, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 400);
    assert.equal(e.error?.type, 'invalid_request_error');
    assert.ok(e.headers?.get?.('x-request-id') ?? e.headers?.['x-request-id'], 'x-request-id on errors');
});

test('empty messages -> 400', T, async () => {
    const e = await rejects(client.chat.completions.create({ model: 'mock-a', messages: [] }));
    assert.ok(e instanceof openai.BadRequestError, `got ${e.constructor.name}`);
    assert.equal(e.error?.type, 'invalid_request_error');
});

test('unknown model -> NotFoundError 404 model_not_found', T, async () => {
    const e = await rejects(client.chat.completions.create({ model: 'no-such-model', messages: userMsg('x') }));
    assert.ok(e instanceof openai.NotFoundError, `NotFoundError, got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    assert.match(e.message, /no-such-model/, 'message names the model');
});

test('provider unreachable -> 502 InternalServerError with an error object', T, async () => {
    const t0 = Date.now();
    const e = await rejects(client.chat.completions.create({ model: 'dead-model', messages: userMsg('x') }));
    assert.ok(e instanceof openai.APIError, `APIError, got ${e.constructor.name}: ${e.message}`);
    assert.ok(e instanceof openai.InternalServerError, `InternalServerError, got ${e.constructor.name}`);
    assert.equal(e.status, 502);
    assert.ok(e.error && typeof e.error.message === 'string' && e.error.message, 'error.message');
    assert.ok(Date.now() - t0 < 5000, 'refused connection fails fast');
    // And the raw body is a proper OpenAI error object.
    const r = await postJson(`${st.baseURL}/chat/completions`, { model: 'dead-model', messages: userMsg('x') });
    assert.equal(r.status, 502);
    errorObject(assert, r.body);
    assert.equal(r.headers.get('x-switchyard-provider'), 'dead');
});

test('provider timeout -> 504', T, async () => {
    await st.mockConfig({ latency_ms: 3000 });
    const t0 = Date.now();
    const e = await rejects(client.chat.completions.create({ model: 'slow-model', messages: userMsg('x') }));
    const took = Date.now() - t0;
    assert.ok(e instanceof openai.InternalServerError, `got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 504);
    assert.ok(took < 2900, `timed out by the provider's timeout_ms, not the mock (${took} ms)`);
    const r = await postJson(`${st.baseURL}/chat/completions`, { model: 'slow-model', messages: userMsg('x') });
    assert.equal(r.status, 504);
    errorObject(assert, r.body);
});

test('stream: provider timeout before its headers -> 504', T, async () => {
    await st.mockConfig({ latency_ms: 3000 });
    const r = await postJson(`${st.baseURL}/chat/completions`,
                             { model: 'slow-model', messages: userMsg('x'), stream: true });
    assert.equal(r.status, 504);
    errorObject(assert, r.body);
});

test('stream: provider timeout after its headers -> 504 or an error event, never a silent cut', T,
     async () => {
    await st.mockConfig({ ttft_ms: 3000 });
    const t0 = Date.now();
    const r = await postJson(`${st.baseURL}/chat/completions`,
                             { model: 'slow-model', messages: userMsg('x'), stream: true });
    assert.ok(Date.now() - t0 < 2900, 'ended by the provider timeout');
    if (r.status === 504) {
        errorObject(assert, r.body);
    } else {
        assert.equal(r.status, 200);
        const events = r.body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
        const err = events.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d)).find((e) => e.error);
        assert.ok(err, `stream carries an error event: ${r.body}`);
        errorObject(assert, err, 'error event');
    }
});

test('upstream 5xx -> 502 upstream_error naming the provider and keeping its message', T, async () => {
    await st.mockConfig({ status: 503 });
    // What the provider itself says:
    const direct = await postJson(`${st.mockUrl}/v1/chat/completions`,
                                  { model: 'a-upstream', messages: userMsg('x') });
    assert.equal(direct.status, 503);
    const upstreamMsg = direct.json?.error?.message;
    assert.ok(upstreamMsg, `mock 503 has an error message: ${direct.body}`);

    // docs/providers.md: a provider's 5xx is the gateway's 502 upstream_error, retryable;
    // the provider's own words stay in the message.
    const e = await rejects(client.chat.completions.create({ model: 'mock-a', messages: userMsg('x') }));
    assert.ok(e instanceof openai.InternalServerError, `got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 502);
    assert.equal(e.error?.code, 'upstream_error');
    assert.equal(e.error?.type, 'upstream_error');
    assert.ok(e.error?.message.includes(upstreamMsg), e.error?.message);
    assert.ok(e.error?.message.includes('HTTP 503'), e.error?.message);
});

test('upstream 429 -> RateLimitError', T, async () => {
    await st.mockConfig({ status: 429, retry_after_s: 1 });
    const e = await rejects(client.chat.completions.create({ model: 'mock-a', messages: userMsg('x') }));
    assert.ok(e instanceof openai.RateLimitError, `got ${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 429);
    assert.equal(e.error?.code, 'rate_limit_exceeded');
    assert.equal(e.headers?.get?.('retry-after') ?? e.headers?.['retry-after'], '1');
});

test('upstream closes without answering -> 502', T, async () => {
    await st.mockConfig({ drop_connection: true });
    const r = await postJson(`${st.baseURL}/chat/completions`, { model: 'mock-a', messages: userMsg('x') });
    assert.equal(r.status, 502, r.body);
    errorObject(assert, r.body);
});

test('upstream cuts a stream midway -> an error event, never a silent cut', T, async () => {
    await st.mockConfig({ fail_after_chunks: 3 });
    const text = 'one two three four five six seven eight';
    const r = await postJson(`${st.baseURL}/chat/completions`,
                             { model: 'mock-a', messages: userMsg(text), stream: true });
    if (r.status !== 200) {
        // Cut before anything reached the client: a plain error answer is fine too.
        assert.ok(r.status >= 500, `status ${r.status}`);
        errorObject(assert, r.body);
        return;
    }
    const data = r.body.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
    const events = data.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
    const err = events.find((e) => e.error);
    assert.ok(err, `an error event ends the cut stream: ${r.body}`);
    errorObject(assert, err, 'error event');
    // The SDK surfaces it as an error rather than a short answer.
    const stream = await client.chat.completions.create({ model: 'mock-a', messages: userMsg(text), stream: true });
    await assert.rejects(async () => {
        for await (const _ of stream) {
            /* drain */
        }
    }, (e) => e instanceof openai.APIError || e instanceof openai.OpenAIError);
});

test('proxy stays healthy after the errors', T, async () => {
    assert.equal((await fetchT(`${st.url}/healthz`)).status, 200);
    const r = await client.chat.completions.create({ model: 'mock-a', messages: userMsg('still here') });
    assert.equal(r.choices[0].message.content, 'echo: still here');
});

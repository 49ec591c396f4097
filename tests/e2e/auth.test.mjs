// tests/e2e/auth.test.mjs - gateway keys and tenants: policy `tenants:` with SHA-256 key
// digests; the openai and Anthropic SDKs with a valid, a wrong and no key; the tenant, its
// labels, the tags and the end user in the access log; probes that never need a key; the
// gateway key never reaching the provider; key rotation by SIGHUP; and `auth: {mode: open}`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import {
    startStack, basePolicy, userMsg, waitFor, fetchT, postJson, errorObject, openai, SDK_DIR, SLOW,
} from './lib/harness.mjs';

const Anthropic = createRequire(path.join(SDK_DIR, 'package.json'))('@anthropic-ai/sdk').Anthropic;

const sha256 = (key) => crypto.createHash('sha256').update(key).digest('hex');
const ACME_KEY = 'sk-gw-acme-0123456789abcdefWXYZ';
const ACME_KEY2 = 'sk-gw-acme-rotated-0123456789';
const BETA_KEY = 'sk-gw-beta-0123456789abcdefQRST';
const WRONG_KEY = 'sk-gw-wrong-0123456789abcdefLMNO';

function tenants() {
    return [
        { name: 'acme', api_keys_sha256: [sha256(ACME_KEY), sha256(ACME_KEY2).toUpperCase()],
          labels: { team: 'search', feature: 'autocomplete' } },
        { name: 'beta', api_keys_sha256: [sha256(BETA_KEY)] },
    ];
}

// A second upstream that records the headers the proxy sends it.
let recorder;
const recorded = [];
let st;
let mockV1;

function policy(mockUrl, extra = {}) {
    const p = basePolicy(mockUrl);
    p.providers.push({ name: 'recorder', kind: 'openai',
                       base_url: `http://127.0.0.1:${recorder.address().port}/v1`,
                       api_key_env: 'SY_TEST_REC_KEY', timeout_ms: 5000 });
    p.models.push({ name: 'rec-model', provider: 'recorder', upstream_model: 'rec-upstream' });
    p.tenants = tenants();
    return { ...p, ...extra };
}

before(async () => {
    recorder = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
            recorded.push({ url: req.url, headers: req.headers });
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({
                id: 'rec-1', object: 'chat.completion', created: 1, model: 'rec-upstream',
                choices: [{ index: 0, message: { role: 'assistant', content: 'recorded' },
                            finish_reason: 'stop' }],
                usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
            }));
        });
    });
    await new Promise((r) => recorder.listen(0, '127.0.0.1', r));
    st = await startStack({
        policy: (mockUrl) => {
            mockV1 = mockUrl;
            return policy(mockUrl);
        },
        env: { SY_TEST_REC_KEY: 'sk-provider-secret' },
    });
});
after(async () => {
    if (st) await st.stop();
    if (recorder) {
        recorder.closeAllConnections?.();
        await new Promise((r) => recorder.close(r));
    }
});

const T = { timeout: 20000 };

function client(apiKey, s = st) {
    return new openai.OpenAI({ apiKey, baseURL: s.baseURL, maxRetries: 0, timeout: 20000 * SLOW });
}

async function logEntry(requestId, s = st) {
    return waitFor(() => s.accessLogEntries().find((e) => e.request_id === requestId),
                   { what: `access log line for ${requestId}` });
}

test('a valid key is served and its tenant and labels are in the access log', T, async () => {
    const { data, response } = await client(ACME_KEY).chat.completions
        .create({ model: 'mock-a', messages: userMsg('hello'), user: 'end-user-7' },
                { headers: { 'x-request-id': 'auth-ok-1', 'x-switchyard-tags': 'search, beta-ui,bad tag' } })
        .withResponse();
    assert.equal(response.status, 200);
    assert.equal(data.choices[0].message.content, 'echo: hello');
    const e = await logEntry('auth-ok-1');
    assert.equal(e.status, 200);
    assert.equal(e.tenant, 'acme');
    assert.deepEqual(e.tenant_labels, { team: 'search', feature: 'autocomplete' });
    assert.deepEqual(e.tags, ['search', 'beta-ui']);
    assert.equal(e.user, 'end-user-7');
    const line = JSON.stringify(e);
    assert.ok(!line.includes(ACME_KEY) && !line.includes(sha256(ACME_KEY)), 'no key in the log');
});

test('streaming works with a key too', T, async () => {
    const stream = await client(BETA_KEY).chat.completions.create(
        { model: 'mock-b', messages: userMsg('one two three'), stream: true },
        { headers: { 'x-request-id': 'auth-stream-1' } });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'echo: one two three');
    assert.equal((await logEntry('auth-stream-1')).tenant, 'beta');
});

test('two tenants, a rotated second key: each key maps to its tenant', T, async () => {
    const cases = [[ACME_KEY, 'acme'], [ACME_KEY2, 'acme'], [BETA_KEY, 'beta']];
    for (const [i, [key, tenant]] of cases.entries()) {
        const id = `auth-two-${i}`;
        await client(key).chat.completions.create({ model: 'auto', messages: userMsg('x') },
                                                   { headers: { 'x-request-id': id } });
        const e = await logEntry(id);
        assert.equal(e.tenant, tenant, `key #${i}`);
        if (tenant === 'beta') assert.deepEqual(e.tenant_labels, {});
    }
});

test('a wrong key: AuthenticationError 401 invalid_api_key, the key not echoed', T, async () => {
    await assert.rejects(
        client(WRONG_KEY).chat.completions.create(
            { model: 'mock-a', messages: userMsg('x') }, { headers: { 'x-request-id': 'auth-bad-1' } }),
        (e) => {
            assert.ok(e instanceof openai.AuthenticationError, `got ${e.constructor.name}`);
            assert.equal(e.status, 401);
            assert.equal(e.code, 'invalid_api_key');
            assert.equal(e.type, 'invalid_request_error');
            assert.ok(!e.message.includes(WRONG_KEY), e.message);
            assert.ok(!e.message.includes('sk-gw'), e.message);
            assert.ok(e.message.includes('****LMNO'), e.message); // at most the last 4
            return true;
        });
    const e = await logEntry('auth-bad-1');
    assert.equal(e.status, 401);
    assert.equal(e.error, 'invalid_api_key');
    assert.equal(e.tenant, null);
});

test('no key: 401 missing_api_key (no header, an empty one, another scheme)', T, async () => {
    const url = `${st.baseURL}/chat/completions`;
    const body = { model: 'mock-a', messages: userMsg('x') };
    for (const headers of [{}, { authorization: '' }, { authorization: 'Bearer ' },
                           { authorization: 'Basic dXNlcjpwYXNz' },
                           { 'x-api-key': ACME_KEY } /* only /v1/messages takes it */]) {
        const r = await postJson(url, body, headers);
        assert.equal(r.status, 401, JSON.stringify(headers));
        const err = errorObject(assert, r.body);
        assert.equal(err.code, 'missing_api_key');
        assert.equal(err.type, 'invalid_request_error');
        assert.ok(err.message.startsWith("You didn't provide an API key."), err.message);
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
        assert.ok(r.headers.get('x-request-id'), 'x-request-id on a 401');
    }
    // Every /v1/ endpoint, not only chat.
    for (const [method, p] of [['GET', '/v1/models'], ['POST', '/v1/embeddings'],
                               ['POST', '/v1/completions']]) {
        const r = await fetchT(`${st.url}${p}`, {
            method, headers: { 'content-type': 'application/json' },
            body: method === 'POST' ? JSON.stringify({ model: 'mock-a', input: 'x', prompt: 'x' }) : undefined,
        });
        assert.equal(r.status, 401, p);
        assert.equal(errorObject(assert, await r.text()).code, 'missing_api_key');
    }
    const models = await client(ACME_KEY).models.list();
    assert.ok(models.data.some((m) => m.id === 'mock-a'), '/v1/models with a key');
});

test('/healthz and /readyz never need a key; unknown URLs stay 404', T, async () => {
    for (const p of ['/healthz', '/readyz']) {
        const r = await fetchT(`${st.url}${p}`);
        assert.equal(r.status, 200, p);
        await r.text();
    }
    const r = await fetchT(`${st.url}/v1/nope`);
    assert.equal(r.status, 404);
    await r.text();
});

test('the gateway key never reaches the provider', T, async () => {
    recorded.length = 0;
    const r = await client(ACME_KEY).chat.completions.create({ model: 'rec-model', messages: userMsg('x') });
    assert.equal(r.choices[0].message.content, 'recorded');
    assert.equal(recorded.length, 1);
    assert.equal(recorded[0].headers.authorization, 'Bearer sk-provider-secret');
    assert.ok(!JSON.stringify(recorded[0].headers).includes('sk-gw-'), 'no gateway key upstream');
});

test('the Anthropic SDK authenticates with x-api-key on /v1/messages', T, async () => {
    const ant = (apiKey) => new Anthropic({ apiKey, baseURL: st.url, maxRetries: 0, timeout: 20000 * SLOW });
    const msg = await ant(BETA_KEY).messages.create(
        { model: 'mock-a', max_tokens: 50, messages: userMsg('hi there'), metadata: { user_id: 'ant-user-1' } },
        { headers: { 'x-request-id': 'auth-ant-1' } });
    assert.equal(msg.type, 'message');
    const e = await logEntry('auth-ant-1');
    assert.equal(e.tenant, 'beta');
    assert.equal(e.user, 'ant-user-1');
    await assert.rejects(
        ant(WRONG_KEY).messages.create({ model: 'mock-a', max_tokens: 50, messages: userMsg('x') }),
        (err) => {
            assert.ok(err instanceof Anthropic.AuthenticationError, `got ${err.constructor.name}`);
            assert.equal(err.status, 401);
            assert.equal(err.error?.error?.type, 'authentication_error');
            assert.ok(!JSON.stringify(err.error).includes(WRONG_KEY));
            return true;
        });
    const r = await postJson(`${st.url}/v1/messages`,
                             { model: 'mock-a', max_tokens: 5, messages: userMsg('x') },
                             { 'anthropic-version': '2023-06-01' });
    assert.equal(r.status, 401);
    assert.equal(r.json.type, 'error');
    assert.equal(r.json.error.type, 'authentication_error');
    assert.ok(r.json.error.message.includes('x-api-key'), r.json.error.message);
});

test('SIGHUP with a key removed: that key is refused, the others still work', T, async () => {
    const p = policy(mockV1);
    p.tenants[1].api_keys_sha256 = [sha256('sk-gw-beta-new')];
    st.writePolicy(p);
    st.proxy.signal('SIGHUP');
    await waitFor(async () => {
        try {
            await client(BETA_KEY).chat.completions.create({ model: 'mock-a', messages: userMsg('x') });
            return false;
        } catch (e) {
            if (e instanceof openai.AuthenticationError) return true;
            throw e;
        }
    }, { what: 'the old beta key to be refused after SIGHUP' });
    const r = await client('sk-gw-beta-new').chat.completions
        .create({ model: 'mock-a', messages: userMsg('x') }, { headers: { 'x-request-id': 'auth-new-1' } });
    assert.equal(r.choices[0].message.content, 'echo: x');
    assert.equal((await logEntry('auth-new-1')).tenant, 'beta');
    await client(ACME_KEY).chat.completions.create({ model: 'mock-a', messages: userMsg('x') });
});

test('auth: {mode: open}: no key needed; a known key still names its tenant', { timeout: 40000 }, async () => {
    const open = await startStack({
        policy: (mockUrl) => ({ ...basePolicy(mockUrl), tenants: tenants(), auth: { mode: 'open' } }),
    });
    try {
        const r = await postJson(`${open.baseURL}/chat/completions`,
                                 { model: 'mock-a', messages: userMsg('open') },
                                 { 'x-request-id': 'open-1' });
        assert.equal(r.status, 200, r.body);
        await client('sk-not-a-gateway-key', open).chat.completions.create(
            { model: 'mock-a', messages: userMsg('x') }, { headers: { 'x-request-id': 'open-2' } });
        await client(ACME_KEY, open).chat.completions.create(
            { model: 'mock-a', messages: userMsg('x') }, { headers: { 'x-request-id': 'open-3' } });
        assert.equal((await logEntry('open-1', open)).tenant, null);
        assert.equal((await logEntry('open-2', open)).tenant, null);
        assert.equal((await logEntry('open-3', open)).tenant, 'acme');
    } finally {
        await open.stop();
    }
});

test('no tenants at all: open, as before', { timeout: 40000 }, async () => {
    const plain = await startStack();
    try {
        const r = await postJson(`${plain.baseURL}/chat/completions`,
                                 { model: 'mock-a', messages: userMsg('x') });
        assert.equal(r.status, 200, r.body);
    } finally {
        await plain.stop();
    }
});

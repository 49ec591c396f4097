// tests/e2e/reload.test.mjs - SIGHUP re-reads the policy file; a broken file changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, basePolicy, userMsg, waitFor, sleep, openai } from './lib/harness.mjs';

let st;
let client;
let mockV1;
before(async () => {
    st = await startStack({
        policy: (mockUrl) => {
            mockV1 = mockUrl;
            return basePolicy(mockUrl);
        },
    });
    client = st.client();
});
after(async () => {
    if (st) await st.stop();
});

async function newModel() {
    return client.chat.completions
        .create({ model: 'mock-new', messages: userMsg('reloaded') })
        .withResponse();
}

test('SIGHUP applies a changed policy; a broken one keeps the previous', { timeout: 30000 }, async () => {
    // Before: mock-new is unknown.
    const before = await client.chat.completions
        .create({ model: 'mock-a', messages: userMsg('v1') })
        .withResponse();
    const v1 = before.response.headers.get('x-switchyard-policy-version');
    assert.ok(v1, 'policy version header');
    await assert.rejects(newModel(), (e) => e instanceof openai.NotFoundError);

    // Add a model and reload.
    const p2 = basePolicy(mockV1);
    p2.models.push({ name: 'mock-new', provider: 'mock', upstream_model: 'new-upstream',
                     pricing: { input_per_mtok: 1, output_per_mtok: 1 } });
    st.writePolicy(p2);
    st.proxy.signal('SIGHUP');
    const ok = await waitFor(async () => {
        try {
            return await newModel();
        } catch (e) {
            if (e instanceof openai.NotFoundError) return null;
            throw e;
        }
    }, { timeoutMs: 5000, what: 'mock-new to be served after SIGHUP' });
    assert.equal(ok.data.choices[0].message.content, 'echo: reloaded');
    const v2 = ok.response.headers.get('x-switchyard-policy-version');
    assert.ok(v2 && v2 !== v1, `policy version changed (${v1} -> ${v2})`);
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes('mock-new'), '/v1/models shows the new model');

    // A broken file: the proxy logs an error and keeps serving v2.
    const errBefore = st.proxy.stderr.length;
    st.writePolicy('providers: [ {name: broken\nmodels: - this is not yaml: [');
    st.proxy.signal('SIGHUP');
    await waitFor(() => st.proxy.stderr.length > errBefore, {
        timeoutMs: 5000,
        what: 'the proxy to log the rejected policy',
    });
    await sleep(200);
    assert.ok(!st.proxy.exit, 'proxy still running');
    const still = await newModel();
    assert.equal(still.data.choices[0].message.content, 'echo: reloaded');
    assert.equal(still.response.headers.get('x-switchyard-policy-version'), v2, 'version unchanged');

    // A well-formed policy that fails validation is refused the same way.
    const bad = basePolicy(mockV1);
    bad.routes[0].targets[0].model = 'gpt5-does-not-exist';
    const errBefore2 = st.proxy.stderr.length;
    st.writePolicy(bad);
    st.proxy.signal('SIGHUP');
    await waitFor(() => st.proxy.stderr.length > errBefore2, { timeoutMs: 5000, what: 'log line' });
    await sleep(200);
    assert.match(st.proxy.stderr.slice(errBefore2), /gpt5-does-not-exist/, 'error names the bad model');
    const still2 = await newModel();
    assert.equal(still2.response.headers.get('x-switchyard-policy-version'), v2);
});

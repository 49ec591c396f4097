// tests/e2e/controlplane.test.mjs - a control plane (file store) and two managed proxies:
// pushes reach the fleet, a stream in flight finishes on the version it started with, a bad
// policy changes nothing, a node that cannot apply a version NACKs it and keeps serving the
// old one, and list/get/diff/activate (rollback) through the admin API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { newCluster, basePolicy, nodeOf, SLOW } from './lib/cluster.mjs';

let c;
let cp;
let mock;
let pa; // has SY_TEST_ONLY_A in its environment
let pb; // does not
const T = { timeout: 40000 * SLOW };

// basePolicy plus a provider whose key only node A has.
function policyNeedsA(mockBase) {
    const p = basePolicy(mockBase);
    p.providers.push({ name: 'only-a', kind: 'openai', base_url: mockBase,
                       api_key_env: 'SY_TEST_ONLY_A', timeout_ms: 5000 });
    p.models.push({ name: 'only-a-model', provider: 'only-a', upstream_model: 'oa-upstream',
                    pricing: { input_per_mtok: 1, output_per_mtok: 1 } });
    return p;
}

before(async () => {
    c = newCluster();
    try {
        mock = await c.mock();
        cp = await c.control({ id: 'cp-e2e' });
        pa = await c.proxy(cp, { nodeId: 'node-a', zone: 'z1',
                                 env: { SY_TEST_MOCK_KEY: 'sk-test-mock-key', SY_TEST_ONLY_A: 'sk-a' } });
        pb = await c.proxy(cp, { nodeId: 'node-b', zone: 'z2',
                                 env: { SY_TEST_MOCK_KEY: 'sk-test-mock-key' } });
    } catch (e) {
        const d = c.describe();
        await c.stop({ check: false });
        e.message += `\n${d}`;
        throw e;
    }
});
after(async () => {
    if (c) await c.stop();
});

test('before any policy: proxies are not ready and answer 503 no_policy', T, () => c.guard(async () => {
    assert.equal((await cp.policies()).active, 0);
    for (const px of [pa, pb]) {
        assert.equal(await px.readyz(), 503, `${px.nodeId} /readyz before a policy`);
        await assert.rejects(px.chat('too early'), (e) => {
            assert.equal(e.status, 503, `${px.nodeId}: ${e.message}`);
            assert.equal(e.code, 'no_policy');
            return true;
        });
    }
    const fleet = await cp.waitFleet((f) => nodeOf(f, 'node-a')?.connected && nodeOf(f, 'node-b')?.connected,
                                     'both proxies connected');
    assert.equal(nodeOf(fleet, 'node-a').acked_version, null, 'nothing acked yet');
    assert.equal(nodeOf(fleet, 'node-a').zone, 'z1');
    assert.equal(nodeOf(fleet, 'node-b').zone, 'z2');
    assert.equal(nodeOf(fleet, 'node-a').address, `127.0.0.1:${pa.port}`);
}));

test('push v1: both proxies serve version 1 and the fleet shows both acked', T, () => c.guard(async () => {
    const r = await cp.pushRaw(basePolicy(mock.baseURL), { note: 'first' });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.version, 1);
    assert.equal(r.json.active, true);
    assert.match(r.json.hash, /^[0-9a-f]{16}$/);
    for (const px of [pa, pb]) {
        await px.waitVersion(1);
        assert.equal(await px.readyz(), 200, `${px.nodeId} ready`);
        const ans = await px.chat(`hello ${px.nodeId}`);
        assert.equal(ans.text, `echo: hello ${px.nodeId}`);
        assert.equal(ans.version, '1');
    }
    const fleet = await cp.waitFleet((f) => nodeOf(f, 'node-a')?.acked_version === 1 &&
                                            nodeOf(f, 'node-b')?.acked_version === 1, 'both acked 1');
    assert.equal(fleet.active_version, 1);
    assert.equal(fleet.control_plane, 'cp-e2e');
    for (const id of ['node-a', 'node-b']) {
        const n = nodeOf(fleet, id);
        assert.equal(n.connected, true);
        assert.equal(n.last_nack, null);
        assert.match(n.build_version, /^switchyard-proxy\//);
    }
}));

test('push v2 while a stream is in flight: it finishes on v1, new requests get v2', T, () => c.guard(async () => {
    const words = 'one two three four five six seven eight nine ten eleven twelve';
    await mock.config({ chunk_delay_ms: 150 });
    try {
        const { data: stream, response } = await pa.client().chat.completions
            .create({ model: 'mock-a', messages: [{ role: 'user', content: words }], stream: true })
            .withResponse();
        assert.equal(response.headers.get('x-switchyard-policy-version'), '1');
        let out = '';
        let chunks = 0;
        let pushed = null; // resolves once the push is done and proxy A serves v2
        let sawV2At = 0;
        for await (const chunk of stream) {
            out += chunk.choices[0]?.delta?.content || '';
            chunks++;
            if (!pushed && out.length > 0) {
                const p2 = basePolicy(mock.baseURL);
                p2.routes[0].targets[0].weight = 5; // a real change
                pushed = (async () => {
                    const r = await cp.push(p2, { note: 'second' });
                    assert.equal(r.version, 2);
                    await pa.waitVersion(2);
                    sawV2At = Date.now();
                })();
                pushed.catch(() => {}); // judged below
            }
        }
        const endedAt = Date.now();
        assert.ok(pushed, 'pushed during the stream');
        await pushed;
        assert.equal(out, `echo: ${words}`, 'the stream in flight completed with the whole text');
        assert.ok(chunks >= 8, `at least 8 chunks (got ${chunks})`);
        assert.ok(sawV2At > 0 && sawV2At < endedAt,
                  `proxy A served v2 to new requests while the v1 stream was still running ` +
                  `(v2 seen ${sawV2At - endedAt} ms relative to stream end)`);
    } finally {
        await mock.config({ chunk_delay_ms: 0 });
    }
    for (const px of [pa, pb]) {
        await px.waitVersion(2);
        const ans = await px.chat('after v2');
        assert.equal(ans.version, '2');
        assert.equal(ans.text, 'echo: after v2');
    }
    await cp.waitFleet((f) => f.active_version === 2 && nodeOf(f, 'node-a')?.acked_version === 2 &&
                              nodeOf(f, 'node-b')?.acked_version === 2, 'both acked 2');
}));

test('a bad policy is refused with field paths and changes nothing', T, () => c.guard(async () => {
    const before = await cp.policies();
    const bad = basePolicy(mock.baseURL);
    bad.routes[0].targets[0].model = 'gpt5-nope';
    bad.providers[0].kind = 'openia';
    const r = await cp.pushRaw(bad, { note: 'bad' });
    assert.equal(r.status, 400, r.body);
    assert.equal(r.json.error.type, 'invalid_policy');
    assert.equal(r.json.error.code, 'invalid_policy');
    assert.ok(Array.isArray(r.json.error.errors), `error.errors: ${r.body}`);
    const byPath = Object.fromEntries(r.json.error.errors.map((e) => [e.path, e.message]));
    assert.ok('routes[0].targets[0].model' in byPath, `path routes[0].targets[0].model in ${r.body}`);
    assert.match(byPath['routes[0].targets[0].model'], /gpt5-nope/);
    assert.ok('providers[0].kind' in byPath, `path providers[0].kind in ${r.body}`);
    assert.match(byPath['providers[0].kind'], /openia/);

    // YAML that does not parse, and a document that is not a policy.
    const y = await cp.pushRaw('providers: [ {name: broken\nmodels: - nope: [');
    assert.equal(y.status, 400, y.body);
    assert.ok(y.json?.error?.message, `an error message: ${y.body}`);
    const empty = await cp.pushRaw({});
    assert.equal(empty.status, 400, empty.body);

    assert.deepEqual(await cp.policies(), before, 'GET /v1/policies unchanged');
    const fleet = await cp.fleet();
    assert.equal(fleet.active_version, 2);
    assert.equal(nodeOf(fleet, 'node-a').acked_version, 2);
    assert.equal(nodeOf(fleet, 'node-b').acked_version, 2);
    for (const px of [pa, pb]) assert.equal((await px.chat('still v2')).version, '2');
}));

test('a node that cannot apply a version NACKs it and keeps the old one', T, () => c.guard(async () => {
    const r = await cp.push(policyNeedsA(mock.baseURL), { note: 'needs SY_TEST_ONLY_A' });
    assert.equal(r.version, 3);
    assert.equal(r.active, true);

    // Node A has the key: it serves v3, including the new model.
    await pa.waitVersion(3);
    const a = await pa.chat('on a', 'only-a-model');
    assert.equal(a.text, 'echo: on a');
    assert.equal(a.version, '3');

    // Node B refuses v3 and says why; the fleet shows it.
    const fleet = await cp.waitFleet((f) => nodeOf(f, 'node-b')?.last_nack &&
                                            nodeOf(f, 'node-a')?.acked_version === 3, 'B nacked 3, A acked 3');
    assert.equal(fleet.active_version, 3);
    const b = nodeOf(fleet, 'node-b');
    assert.equal(b.acked_version, 2, 'B still acks 2');
    assert.equal(String(b.last_nack.version), '3');
    assert.match(b.last_nack.error, /SY_TEST_ONLY_A/, 'the NACK names the variable');
    assert.equal(b.connected, true);
    assert.equal(nodeOf(fleet, 'node-a').last_nack, null);

    // B keeps serving v2: its answers say so, and it does not know the new model.
    const ans = await pb.chat('still old');
    assert.equal(ans.version, '2');
    assert.equal(ans.text, 'echo: still old');
    assert.equal(await pb.readyz(), 200);
    await assert.rejects(pb.chat('x', 'only-a-model'), (e) => e.status === 404);
    assert.ok(!pb.proc.exit && !pa.proc.exit, 'both proxies still running');
}));

test('list, get, diff, staged push, activate and rollback', T, () => c.guard(async () => {
    const list = await cp.policies();
    assert.equal(list.active, 3);
    assert.deepEqual(list.versions.map((v) => v.version), [3, 2, 1], 'newest first');
    assert.deepEqual(list.versions.map((v) => v.active), [true, false, false]);
    assert.equal(list.versions[2].note, 'first');
    assert.equal(list.versions[1].note, 'second');
    for (const v of list.versions) {
        assert.match(v.hash, /^[0-9a-f]{16}$/);
        assert.equal(v.rollback_of, null);
        assert.equal(typeof v.created_unix_ms, 'number');
    }
    const hash2 = list.versions[1].hash;

    const g = await cp.api('/v1/policies/2');
    assert.equal(g.status, 200, g.body);
    assert.equal(g.json.version, 2);
    assert.equal(g.json.hash, hash2);
    assert.equal(g.json.note, 'second');
    assert.equal(typeof g.json.source, 'string');
    assert.ok(g.json.source.includes('a-upstream'), 'source is the document as pushed');
    assert.ok(g.json.compiled, 'compiled present');
    const act = await cp.api('/v1/policies/active');
    assert.equal(act.status, 200);
    assert.equal(act.json.version, 3);
    assert.equal(act.json.active, true);
    assert.equal((await cp.api('/v1/policies/99')).status, 404);
    assert.equal((await cp.api('/v1/policies/99/activate', { method: 'POST' })).status, 404);

    const d = await cp.api('/v1/policies/2/diff/3');
    assert.equal(d.status, 200, d.body);
    assert.equal(d.json.from, 2);
    assert.equal(d.json.to, 3);
    assert.match(d.json.diff, /^--- /m);
    assert.match(d.json.diff, /^\+\+\+ /m);
    assert.match(d.json.diff, /^\+.*only-a/m, 'the added provider is a + line');
    const d12 = await cp.api('/v1/policies/1/diff/2');
    assert.match(d12.json.diff, /^-.*"weight": 3/m);
    assert.match(d12.json.diff, /^\+.*"weight": 5/m);
    const same = await cp.api('/v1/policies/2/diff/2');
    assert.equal(same.status, 200);
    assert.equal(same.json.diff, '', 'no diff between equal versions');

    // Rollback to 2: a new version 4 pointing back to 2, with 2's hash; everyone moves to it.
    const rb = await cp.api('/v1/policies/2/activate', { method: 'POST' });
    assert.equal(rb.status, 200, rb.body);
    assert.deepEqual({ version: rb.json.version, active: rb.json.active, rollback_of: rb.json.rollback_of },
                     { version: 4, active: true, rollback_of: 2 });
    const l4 = await cp.policies();
    assert.equal(l4.active, 4);
    assert.deepEqual(l4.versions.map((v) => v.version), [4, 3, 2, 1], 'history only grows');
    assert.equal(l4.versions[0].rollback_of, 2);
    assert.equal(l4.versions[0].hash, hash2, 'a rollback compiles to the same policy');
    for (const px of [pa, pb]) {
        await px.waitVersion(4);
        assert.equal((await px.chat('rolled back')).version, '4');
    }
    let fleet = await cp.waitFleet((f) => nodeOf(f, 'node-a')?.acked_version === 4 &&
                                          nodeOf(f, 'node-b')?.acked_version === 4, 'both acked 4');
    assert.equal(fleet.active_version, 4);
    assert.equal((await cp.api('/v1/policies/4/diff/2')).json.diff, '');

    // A staged push (the same policy as JSON text with other formatting): stored, not active.
    const text = JSON.stringify(basePolicy(mock.baseURL)); // v1's policy, compact
    const st = await cp.pushRaw(text, { activate: false, note: 'staged' });
    assert.equal(st.status, 201, st.body);
    assert.deepEqual({ version: st.json.version, active: st.json.active }, { version: 5, active: false });
    assert.equal(st.json.hash, list.versions[2].hash, 'same policy, same hash whatever the formatting');
    assert.equal((await cp.policies()).active, 4);
    assert.equal((await pa.chat('staged')).version, '4', 'a staged version is not pushed');
    const a5 = await cp.api('/v1/policies/5/activate', { method: 'POST' });
    assert.equal(a5.status, 200, a5.body);
    assert.equal(a5.json.version, 5, 'a newer staged version is activated as itself');
    assert.equal(a5.json.rollback_of ?? null, null);
    for (const px of [pa, pb]) await px.waitVersion(5);
    fleet = await cp.waitFleet((f) => nodeOf(f, 'node-a')?.acked_version === 5 &&
                                      nodeOf(f, 'node-b')?.acked_version === 5, 'both acked 5');
    assert.equal(fleet.active_version, 5);
}));

test('admin API errors are error objects with the documented statuses', T, () => c.guard(async () => {
    const isErr = (r, status, what) => {
        assert.equal(r.status, status, `${what}: ${r.status} ${r.body}`);
        assert.equal(typeof r.json?.error?.message, 'string', `${what}: error object: ${r.body}`);
        assert.ok(r.json.error.message.length > 0);
        assert.equal(typeof r.json.error.type, 'string');
        assert.ok('code' in r.json.error && 'param' in r.json.error, `${what}: code and param`);
    };
    isErr(await cp.api('/v1/nope'), 404, 'unknown path');
    isErr(await cp.api('/v1/policies/77'), 404, 'unknown version');
    isErr(await cp.api('/v1/policies/1/diff/77'), 404, 'diff with an unknown version');
    isErr(await cp.api('/v1/policies', { method: 'DELETE' }), 405, 'DELETE /v1/policies');
    isErr(await cp.api('/v1/fleet', { method: 'POST', body: {} }), 405, 'POST /v1/fleet');
    isErr(await cp.api('/v1/policies/1/activate'), 405, 'GET .../activate');
    const big = `# ${'x'.repeat(17 * 1024 * 1024)}\n`;
    isErr(await cp.pushRaw(big), 413, 'a 17 MiB body');
    const before = await cp.policies();

    // A note with spaces and UTF-8 survives the query string.
    const note = 'déjà vu & 100% "quoted"';
    const r = await cp.push(basePolicy(mock.baseURL), { note, activate: false });
    const g = await cp.api(`/v1/policies/${r.version}`);
    assert.equal(g.json.note, note);
    assert.equal((await cp.policies()).active, before.active, 'staged only');
}));

test('a diff shows the removed line before the added one (unified diff convention)', T, () => c.guard(async () => {
    // docs/switchyardctl.md shows `-  "weight": 80` then `+  "weight": 100`, as diff(1) and
    // git do: within a change, deletions come first.
    const d = await cp.api('/v1/policies/1/diff/2');
    assert.equal(d.status, 200, d.body);
    const lines = d.json.diff.split('\n');
    const del = lines.findIndex((l) => /^-\s+"weight": 3/.test(l));
    const add = lines.findIndex((l) => /^\+\s+"weight": 5/.test(l));
    assert.ok(del >= 0 && add >= 0, d.json.diff);
    assert.ok(del < add, `"-" line before "+" line:\n${d.json.diff}`);
}));

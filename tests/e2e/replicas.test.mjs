// tests/e2e/replicas.test.mjs - fleet-wide views over several control-plane replicas: two
// replicas on one etcd, each with its own proxy; /v1/stats, /v1/health and /v1/fleet on
// either replica count both proxies' traffic exactly (scope=replica: its own only); a
// replica killed with SIGKILL is named as unreachable without holding the answer up, and
// drops out when its lease runs out; a replica stopped with SIGTERM drops out at once; a
// stale registration pointing at another replica is refused, not merged twice; a
// peer that accepts and never answers costs at most the 1.5 s cap, and a replica stopped
// while it waits for one exits cleanly.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { newCluster, basePolicy, waitFor, fetchT, SLOW } from './lib/cluster.mjs';

const T = { timeout: 90000 * SLOW };
const FAST = ['--telemetry-interval-ms', '200'];

const clusters = [];
after(async () => {
    for (const c of clusters) await c.stop();
});

// Sends <n> chat requests through <px> (a stream every third); returns what the clients saw.
async function traffic(px, n, seen) {
    for (let i = 0; i < n; i++) {
        const model = i % 2 ? 'mock-b' : 'mock-a';
        const body = { model, messages: [{ role: 'user', content: `hello ${i}` }] };
        if (i % 3 === 0) {
            body.stream = true;
            body.stream_options = { include_usage: true };
        }
        const r = await fetchT(`${px.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
        }, 15000 * SLOW);
        const text = await r.text();
        assert.equal(r.status, 200, text);
        let usage;
        if (body.stream) {
            for (const line of text.split('\n')) {
                if (line.startsWith('data: {') && JSON.parse(line.slice(6)).usage)
                    usage = JSON.parse(line.slice(6)).usage;
            }
        } else {
            usage = JSON.parse(text).usage;
        }
        seen.requests++;
        seen.prompt += usage.prompt_tokens;
        seen.byModel[model] = (seen.byModel[model] ?? 0) + 1;
    }
    return seen;
}

const tally = () => ({ requests: 0, prompt: 0, byModel: {} });

async function stats(cp, query = '') {
    const r = await cp.api(`/v1/stats${query}`);
    assert.equal(r.status, 200, r.body);
    return r.json;
}

async function waitRequests(cp, query, want) {
    let last;
    return waitFor(async () => {
        last = await stats(cp, query);
        return last.totals.requests === want ? last : null;
    }, { timeoutMs: 15000 * SLOW, intervalMs: 150, what: `${cp.id} ${query || '/v1/stats'} to count ${want}` })
        .catch((e) => {
            throw new Error(`${e.message}\nlast: ${JSON.stringify(last)?.slice(0, 1500)}`);
        });
}

test('two replicas on etcd: stats, health and fleet cover both replicas\' proxies', T, async () => {
    const c = newCluster();
    clusters.push(c);
    await c.guard(async () => {
        const etcd = await c.etcd();
        const mock = await c.mock();
        const prefix = '/sy-replicas';
        const cp1 = await c.control({ id: 'cp-1', store: `etcd:${etcd.url}`, prefix });
        const cp2 = await c.control({ id: 'cp-2', store: `etcd:${etcd.url}`, prefix });
        const v = await cp1.push(basePolicy(mock.baseURL));
        const p1 = await c.proxy(cp1, { nodeId: 'rp-1', args: FAST });
        const p2 = await c.proxy(cp2, { nodeId: 'rp-2', args: FAST });
        await p1.waitVersion(v.version);
        await p2.waitVersion(v.version);
        // Each replica finds the other in the registry (a round a second).
        for (const [cp, other] of [[cp1, 'cp-2'], [cp2, 'cp-1']]) {
            await waitFor(async () => (await stats(cp)).replicas.answered.includes(other),
                { timeoutMs: 10000 * SLOW, what: `${cp.id} to see ${other}` });
        }

        const s1 = await traffic(p1, 7, tally());
        const s2 = await traffic(p2, 5, tally());
        const all = s1.requests + s2.requests;
        for (const cp of [cp1, cp2]) {
            const st = await waitRequests(cp, '', all);
            assert.deepEqual(st.replicas.answered.sort(), ['cp-1', 'cp-2']);
            assert.deepEqual(st.replicas.unreachable, []);
            assert.equal(st.proxies, 2);
            assert.equal(st.totals.prompt_tokens, s1.prompt + s2.prompt);
            assert.equal(st.totals.errors, 0);
            for (const m of ['mock-a', 'mock-b']) {
                assert.equal(st.models.find((x) => x.model === m)?.requests,
                    s1.byModel[m] + s2.byModel[m], `${cp.id} ${m}`);
            }
            assert.ok(st.totals.ttft_ms.p50 > 0, 'streams from both sides give a TTFT');
            assert.equal((await stats(cp, '?window=1h')).totals.requests, all);
        }
        // scope=replica: each replica's own proxy only.
        const own1 = await waitRequests(cp1, '?scope=replica', s1.requests);
        assert.equal(own1.proxies, 1);
        assert.deepEqual(own1.replicas, { answered: ['cp-1'], unreachable: [] });
        await waitRequests(cp2, '?scope=replica&window=10s', s2.requests);

        // Health: both proxies report the targets' breakers, wherever asked.
        const h = await cp2.api('/v1/health');
        assert.equal(h.status, 200, h.body);
        const ta = h.json.targets.find((t) => t.model === 'mock-a');
        assert.equal(ta.breaker.closed, 2, JSON.stringify(h.json));
        assert.equal(ta.requests, s1.byModel['mock-a'] + s2.byModel['mock-a']);
        assert.deepEqual(h.json.replicas.answered.sort(), ['cp-1', 'cp-2']);

        // Fleet: both proxies, each with the replica it follows.
        const f = (await cp1.api('/v1/fleet')).json;
        const byId = Object.fromEntries(f.proxies.map((p) => [p.node_id, p]));
        assert.equal(f.control_plane, 'cp-1');
        assert.equal(byId['rp-1']?.control_plane, 'cp-1', JSON.stringify(f));
        assert.equal(byId['rp-2']?.control_plane, 'cp-2');
        assert.equal(byId['rp-2'].acked_version, v.version);
        assert.equal(f.proxies.length, 2);
        const fr = (await cp1.api('/v1/fleet?scope=replica')).json;
        assert.deepEqual(fr.proxies.map((p) => p.node_id), ['rp-1']);

        // The export peers read, and bad input.
        const ex = await fetchT(`${cp2.url}/v1/stats/export?window=10s`, {}, 5000);
        assert.equal(ex.status, 200);
        assert.equal(ex.headers.get('content-type'), 'application/x-protobuf');
        assert.ok((await ex.arrayBuffer()).byteLength > 0);
        for (const [p, code] of [['/v1/stats?scope=everything', 'invalid_scope'],
            ['/v1/fleet?scope=x', 'invalid_scope'], ['/v1/health?scope=', 'invalid_scope'],
            ['/v1/stats/export?window=2m', 'invalid_window']]) {
            const r = await cp1.api(p);
            assert.equal(r.status, 400, `${p}: ${r.body}`);
            assert.equal(r.json.error.code, code, p);
        }
        assert.equal((await cp1.api('/v1/stats/export', { method: 'POST', body: {} })).status, 405);
        assert.equal((await cp1.api('/v1/stats/other')).status, 404);

        // A stale registration (another --id, cp-2's URL) is not merged twice.
        const ghost = (await registrationKey(etcd, 'cp-2')).replace(/cp-2$/, 'ghost');
        await etcdPut(etcd, ghost, cp2.url);
        const withGhost = await waitFor(async () => {
            const st = await stats(cp1);
            return st.replicas.unreachable.some((u) => u.id === 'ghost') ? st : null;
        }, { timeoutMs: 10000 * SLOW, what: 'cp-1 to ask the ghost' });
        assert.match(withGhost.replicas.unreachable[0].error, /another replica/);
        assert.equal(withGhost.totals.requests, all, 'cp-2 counted once');
        const fg = (await cp1.api('/v1/fleet')).json;
        assert.equal(fg.proxies.length, 2);
        assert.match(fg.replicas.unreachable.find((u) => u.id === 'ghost').error, /another replica/);
        await etcdDelete(etcd, ghost);

        // SIGKILL cp-2: cp-1 still answers at once, naming cp-2 until its lease runs out, and
        // counts only what it can see (rp-2 follows cp-2 alone).
        await cp2.kill9();
        const t0 = Date.now();
        const after = await stats(cp1);
        assert.ok(Date.now() - t0 < 3000 * SLOW, `answered in ${Date.now() - t0} ms`);
        assert.equal(after.totals.requests, s1.requests, JSON.stringify(after.replicas));
        if (after.replicas.unreachable.length) {
            assert.equal(after.replicas.unreachable[0].id, 'cp-2');
            assert.ok(after.replicas.unreachable[0].error.length > 0);
        }
        await waitFor(async () => {
            const r = (await stats(cp1)).replicas;
            return r.unreachable.length === 0 && r.answered.length === 1;
        }, { timeoutMs: 15000 * SLOW, what: 'cp-2 to leave the registry (lease expiry)' });
        await c.stopProc(p2.proc);

        // A replica stopped with SIGTERM withdraws at once.
        const cp3 = await c.control({ id: 'cp-3', store: `etcd:${etcd.url}`, prefix });
        await waitFor(async () => (await stats(cp1)).replicas.answered.includes('cp-3'),
            { timeoutMs: 10000 * SLOW, what: 'cp-1 to see cp-3' });
        await cp3.stop();
        // Its lease would keep it listed for CP_PEERS_TTL_S (5 s); the resignation does not.
        await waitFor(async () => {
            const r = (await stats(cp1)).replicas;
            return r.answered.length === 1 && r.unreachable.length === 0;
        }, { timeoutMs: 3500, intervalMs: 100, what: 'cp-3 to withdraw on SIGTERM' });
    });
});

const b64 = (s) => Buffer.from(s).toString('base64');

// Writes <key> = <value> straight into etcd (v3 JSON gateway), outside any lease.
async function etcdPut(etcd, key, value) {
    const r = await fetchT(`${etcd.url}/v3/kv/put`, {
        method: 'POST',
        body: JSON.stringify({ key: b64(key), value: b64(value) }),
    }, 5000);
    assert.equal(r.status, 200, await r.text());
}

async function etcdDelete(etcd, key) {
    const r = await fetchT(`${etcd.url}/v3/kv/deleterange`, {
        method: 'POST',
        body: JSON.stringify({ key: b64(key) }),
    }, 5000);
    assert.equal(r.status, 200, await r.text());
}

// The full etcd key of a replica's registration, as the control plane wrote it (its first
// registry round may still be under way).
async function registrationKey(etcd, id) {
    let keys = [];
    return waitFor(async () => {
        const r = await fetchT(`${etcd.url}/v3/kv/range`, {
            method: 'POST',
            body: JSON.stringify({ key: b64('\0'), range_end: b64('\0'), keys_only: true }),
        }, 5000);
        keys = ((await r.json()).kvs ?? []).map((kv) => Buffer.from(kv.key, 'base64').toString());
        return keys.find((x) => x.endsWith(`replicas/${id}`)) ?? null;
    }, { timeoutMs: 10000 * SLOW, what: `the registration of ${id}` })
        .catch((e) => {
            throw new Error(`${e.message}; keys: ${keys.join(' ')}`);
        });
}

test('a peer that never answers costs at most the cap; stopping while waiting is clean', T, async () => {
    const c = newCluster();
    clusters.push(c);
    // Accepts connections and reads, never answers.
    const silent = net.createServer((sock) => sock.on('error', () => {}));
    await new Promise((res) => silent.listen(0, '127.0.0.1', res));
    try {
        await c.guard(async () => {
            const etcd = await c.etcd();
            const cp = await c.control({ id: 'cp-w', store: `etcd:${etcd.url}`, prefix: '/sy-silent' });
            const key = (await registrationKey(etcd, 'cp-w')).replace(/cp-w$/, 'silent');
            await etcdPut(etcd, key, `http://127.0.0.1:${silent.address().port}`);
            const st = await waitFor(async () => {
                const s = await stats(cp);
                return s.replicas.unreachable.length ? s : null;
            }, { timeoutMs: 10000 * SLOW, what: 'the silent peer to be asked' });
            assert.equal(st.replicas.unreachable[0].id, 'silent');
            assert.match(st.replicas.unreachable[0].error, /timed? ?out/i);
            const t0 = Date.now();
            const h = await cp.api('/v1/health');
            const took = Date.now() - t0;
            assert.equal(h.status, 200);
            assert.ok(took >= 1000 && took < 4000 * SLOW, `/v1/health took ${took} ms`);
            // SIGTERM while a request waits on the silent peer: it exits 0 (no leak, no crash).
            const pending = cp.api('/v1/fleet').catch((e) => e);
            await new Promise((res) => setTimeout(res, 200));
            await cp.stop();
            await pending;
        });
    } finally {
        silent.close();
    }
});

test('a single replica on the file store answers alone, with no registry', T, async () => {
    const c = newCluster();
    clusters.push(c);
    await c.guard(async () => {
        const mock = await c.mock();
        const cp = await c.control({ id: 'cp-solo' });
        const v = await cp.push(basePolicy(mock.baseURL));
        const px = await c.proxy(cp, { nodeId: 'solo', args: FAST });
        await px.waitVersion(v.version);
        const s = await traffic(px, 3, tally());
        const st = await waitRequests(cp, '', s.requests);
        assert.deepEqual(st.replicas, { answered: ['cp-solo'], unreachable: [] });
        const f = (await cp.api('/v1/fleet')).json;
        assert.equal(f.proxies[0].control_plane, 'cp-solo');
    });
});

// tests/e2e/etcd.test.mjs - two control planes on one real etcd (same prefix, different ids),
// one proxy on each: concurrent pushes through both get distinct version numbers, both
// replicas list all of them, both proxies converge on the newest, and a control plane
// killed with SIGKILL comes back on the same etcd with the history intact.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { newCluster, basePolicy, nodeOf, waitFor, SLOW } from './lib/cluster.mjs';

let c;
let etcd;
let cp1;
let cp2;
let mock;
let pa; // follows cp1
let pb; // follows cp2
const PREFIX = '/switchyard-e2e';
const T = { timeout: 45000 * SLOW };

before(async () => {
    c = newCluster();
    try {
        etcd = await c.etcd();
        mock = await c.mock();
        cp1 = await c.control({ id: 'cp-1', store: `etcd:${etcd.url}`, prefix: PREFIX });
        cp2 = await c.control({ id: 'cp-2', store: `etcd:${etcd.url}`, prefix: PREFIX });
        pa = await c.proxy(cp1, { nodeId: 'etcd-a' });
        pb = await c.proxy(cp2, { nodeId: 'etcd-b' });
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

// Waits until GET /v1/policies on <cp> satisfies pred; returns it.
async function waitList(cp, pred, what) {
    let last;
    return waitFor(async () => {
        last = await cp.policies();
        return pred(last) ? last : null;
    }, { timeoutMs: 10000, intervalMs: 100, what: `${cp.id}: ${what}` }).catch((e) => {
        throw new Error(`${e.message}\nlast: ${JSON.stringify(last)}`);
    });
}

test('both replicas use etcd; a push through one reaches the proxy of the other', T, () => c.guard(async () => {
    for (const cp of [cp1, cp2]) {
        const h = await cp.api('/healthz');
        assert.equal(h.status, 200, h.body);
        assert.equal(h.json.store, 'etcd');
        assert.equal(h.json.id, cp.id);
        assert.equal((await cp.api('/readyz')).status, 200);
    }
    const r = await cp1.push(basePolicy(mock.baseURL), { note: 'via cp-1' });
    assert.equal(r.version, 1);
    await pa.waitVersion(1);
    await pb.waitVersion(1); // cp-2 learnt it from etcd's watch
    await cp1.waitFleet((f) => nodeOf(f, 'etcd-a')?.acked_version === 1, 'etcd-a acked 1');
    const f2 = await cp2.waitFleet((f) => f.active_version === 1 && nodeOf(f, 'etcd-b')?.acked_version === 1,
                                   'etcd-b acked 1');
    assert.equal(f2.control_plane, 'cp-2');
    assert.equal(nodeOf(f2, 'etcd-b').control_plane, 'cp-2');
    // The fleet view covers every replica's proxies once each replica has found the other
    // (tests/e2e/replicas.test.mjs); scope=replica lists a replica's own.
    const both = await cp2.waitFleet((f) => nodeOf(f, 'etcd-a')?.control_plane === 'cp-1',
                                     'etcd-a through cp-1');
    assert.equal(nodeOf(both, 'etcd-a').acked_version, 1);
    const own = (await cp2.api('/v1/fleet?scope=replica')).json;
    assert.deepEqual(own.proxies.map((p) => p.node_id), ['etcd-b']);
    const l2 = await cp2.policies();
    assert.equal(l2.active, 1);
    assert.equal(l2.versions[0].note, 'via cp-1');
}));

test('10 concurrent pushes through both replicas get distinct versions; all converge on the newest', T, () => c.guard(async () => {
    const N = 10;
    const replies = await Promise.all(Array.from({ length: N }, (_, i) => {
        const p = basePolicy(mock.baseURL);
        p.routes[0].targets[0].weight = 10 + i; // each one is a different policy
        const cp = i % 2 === 0 ? cp1 : cp2;
        return cp.pushRaw(p, { note: `concurrent ${i} via ${cp.id}` });
    }));
    for (const r of replies) assert.equal(r.status, 201, r.body);
    const versions = replies.map((r) => r.json.version);
    assert.equal(new Set(versions).size, N, `distinct versions: ${versions}`);
    assert.deepEqual([...versions].sort((a, b) => a - b), Array.from({ length: N }, (_, i) => i + 2),
                     'versions 2..11, no gaps, no duplicates');
    const top = Math.max(...versions);
    const topReply = replies.find((r) => r.json.version === top);
    assert.equal(topReply.json.active, true, 'the newest push is active');

    // Every replica lists every version, and agrees on the active one (the newest).
    const expected = Array.from({ length: N + 1 }, (_, i) => N + 1 - i);
    const lists = [];
    for (const cp of [cp1, cp2]) {
        lists.push(await waitList(cp, (l) => l.active === top && l.versions.length === N + 1,
                                  `all ${N + 1} versions, active ${top}`));
    }
    for (const l of lists) assert.deepEqual(l.versions.map((v) => v.version), expected);
    assert.deepEqual(lists[0], lists[1], 'both replicas list the same history');
    for (let i = 0; i < N; i++) {
        const v = lists[0].versions.find((x) => x.version === versions[i]);
        assert.equal(v.note, `concurrent ${i} via ${i % 2 === 0 ? 'cp-1' : 'cp-2'}`);
        assert.equal(v.hash, replies[i].json.hash);
    }

    await pa.waitVersion(top);
    await pb.waitVersion(top);
    const a = await pa.chat('converged a');
    const b = await pb.chat('converged b');
    assert.deepEqual([a.version, b.version], [String(top), String(top)]);
    await cp1.waitFleet((f) => f.active_version === top && nodeOf(f, 'etcd-a')?.acked_version === top, `etcd-a acked ${top}`);
    await cp2.waitFleet((f) => f.active_version === top && nodeOf(f, 'etcd-b')?.acked_version === top, `etcd-b acked ${top}`);
}));

test('kill -9 one replica and restart it on the same etcd: history intact, its proxy reconnects', T, () => c.guard(async () => {
    const before = await cp2.policies();
    await cp1.kill9();
    // The other replica and both proxies are unaffected.
    assert.equal((await pb.chat('cp-1 down')).version, String(before.active));
    assert.equal((await pa.chat('cp-1 down')).version, String(before.active));
    await cp1.start();
    assert.deepEqual(await cp1.policies(), before, 'the restarted replica lists the same history');
    const g = await cp1.api('/v1/policies/2');
    assert.equal(g.status, 200);
    assert.match(g.json.note, /^concurrent /);
    await cp1.waitFleet((f) => nodeOf(f, 'etcd-a')?.connected && nodeOf(f, 'etcd-a')?.acked_version === before.active,
                        'etcd-a reconnected', 15000);

    // Rollback through the restarted replica reaches both proxies as one new version.
    const rb = await cp1.api('/v1/policies/1/activate', { method: 'POST' });
    assert.equal(rb.status, 200, rb.body);
    assert.equal(rb.json.version, before.active + 1);
    assert.equal(rb.json.rollback_of, 1);
    await pa.waitVersion(rb.json.version);
    await pb.waitVersion(rb.json.version);
    const l2 = await waitList(cp2, (l) => l.active === rb.json.version, 'the rollback version active');
    assert.equal(l2.versions[0].rollback_of, 1);
}));

test('etcd down: the replicas say so, refuse pushes with 503, proxies keep serving', T, () => c.guard(async () => {
    const active = (await cp1.policies()).active;
    etcd.proc.stopping = true;
    etcd.proc.signal('SIGKILL');
    await etcd.proc.exited;
    for (const cp of [cp1, cp2]) {
        await waitFor(async () => (await cp.api('/readyz')).status === 503,
                      { timeoutMs: 10000, intervalMs: 200, what: `${cp.id} /readyz 503 without etcd` });
        const r = await cp.pushRaw(basePolicy(mock.baseURL), { note: 'no etcd' });
        assert.equal(r.status, 503, r.body);
        assert.ok(r.json?.error?.message, `an error message: ${r.body}`);
    }
    for (const px of [pa, pb]) assert.equal((await px.chat('etcd down')).version, String(active));
}));

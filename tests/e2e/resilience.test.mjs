// tests/e2e/resilience.test.mjs - the data plane never needs the control plane to serve:
// a crashed (SIGKILLed) control plane leaves the proxies serving; a proxy restarted while it
// is down serves its saved snapshot at once; the restarted control plane (same file store)
// has its whole history, the proxies reconnect on their own, and the next push reaches them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { newCluster, basePolicy, nodeOf, sleep, waitFor, SLOW } from './lib/cluster.mjs';

let c;
let cp;
let mock;
let pa;
let pb;
let history; // GET /v1/policies before the crash
const T = { timeout: 45000 * SLOW };

before(async () => {
    c = newCluster();
    try {
        mock = await c.mock();
        cp = await c.control({ id: 'cp-res' });
        pa = await c.proxy(cp, { nodeId: 'res-a' });
        pb = await c.proxy(cp, { nodeId: 'res-b' });
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

const bothAcked = (v) => (f) => f.active_version === v &&
    nodeOf(f, 'res-a')?.connected && nodeOf(f, 'res-a')?.acked_version === v &&
    nodeOf(f, 'res-b')?.connected && nodeOf(f, 'res-b')?.acked_version === v;

test('two versions pushed; both proxies run v2 and keep it on disk', T, () => c.guard(async () => {
    assert.equal((await cp.push(basePolicy(mock.baseURL), { note: 'one' })).version, 1);
    for (const px of [pa, pb]) await px.waitVersion(1);
    const p2 = basePolicy(mock.baseURL);
    p2.models[0].upstream_model = 'a2-upstream';
    assert.equal((await cp.push(p2, { note: 'two' })).version, 2);
    for (const px of [pa, pb]) await px.waitVersion(2);
    await cp.waitFleet(bothAcked(2), 'both acked 2');
    for (const px of [pa, pb]) {
        assert.ok(fs.existsSync(path.join(px.stateDir, 'snapshot.pb')), `${px.nodeId} saved its snapshot`);
    }
    history = await cp.policies();
    assert.deepEqual(history.versions.map((v) => v.version), [2, 1]);
}));

test('kill -9 the control plane: the proxies keep serving', T, () => c.guard(async () => {
    await cp.kill9();
    assert.equal(cp.proc.exit.signal, 'SIGKILL');
    // Long enough for both proxies to see the stream break and retry a few times.
    await sleep(1500);
    for (const px of [pa, pb]) {
        assert.ok(!px.proc.exit, `${px.nodeId} still running`);
        assert.equal(await px.readyz(), 200, `${px.nodeId} still ready`);
        for (let i = 0; i < 3; i++) {
            const ans = await px.chat(`cp down ${i}`);
            assert.equal(ans.text, `echo: cp down ${i}`);
            assert.equal(ans.version, '2');
        }
    }
}));

test('a proxy restarted while the control plane is down serves the saved version at once', T, () => c.guard(async () => {
    await pa.stop(); // asserts exit 0
    await pa.start(); // same node id, same --state-dir
    // The first requests after "listening on", no waiting: the snapshot was loaded from disk.
    assert.equal(await pa.readyz(), 200, 'ready at once from the saved snapshot');
    const ans = await pa.chat('from disk');
    assert.equal(ans.text, 'echo: from disk');
    assert.equal(ans.version, '2');
    assert.equal(await pa.version(), '2');
    // And it keeps serving while its reconnect attempts fail.
    await sleep(1000);
    assert.equal((await pa.chat('still from disk')).version, '2');
    assert.ok(!pa.proc.exit);
}));

test('the control plane restarts on the same store: history intact, proxies reconnect', T, () => c.guard(async () => {
    await cp.start(); // same --store dir, same ports
    const again = await cp.policies();
    assert.deepEqual(again, history, 'GET /v1/policies is the same after the crash');
    const g = await cp.api('/v1/policies/1');
    assert.equal(g.status, 200);
    assert.equal(g.json.note, 'one');
    const t0 = Date.now();
    const fleet = await cp.waitFleet(bothAcked(2), 'both reconnected and acked 2', 15000);
    assert.equal(fleet.active_version, 2);
    assert.ok(Date.now() - t0 < 15000 * SLOW);
    for (const id of ['res-a', 'res-b']) assert.equal(nodeOf(fleet, id).last_nack, null);
}));

test('a push after the restart reaches both proxies', T, () => c.guard(async () => {
    const p3 = basePolicy(mock.baseURL);
    p3.models[1].upstream_model = 'b3-upstream';
    const r = await cp.push(p3, { note: 'three' });
    assert.equal(r.version, 3, 'numbering continues after the restart');
    for (const px of [pa, pb]) {
        await px.waitVersion(3);
        const ans = await px.chat('after restart');
        assert.equal(ans.version, '3');
        assert.equal(ans.text, 'echo: after restart');
    }
    await cp.waitFleet(bothAcked(3), 'both acked 3');
    const list = await cp.policies();
    assert.deepEqual(list.versions.map((v) => v.version), [3, 2, 1]);
}));

test('a proxy down during a push starts on its saved version, then catches up', T, () => c.guard(async () => {
    await pb.stop();
    const p4 = basePolicy(mock.baseURL);
    p4.routes[0].targets[1].weight = 2;
    const r = await cp.push(p4, { note: 'four' });
    assert.equal(r.version, 4);
    await pa.waitVersion(4);
    await pb.start();
    await pb.waitVersion(4);
    assert.equal((await pb.chat('caught up')).version, '4');
    const fleet = await cp.waitFleet(bothAcked(4), 'both acked 4');
    // One entry per node, however often it reconnected.
    const ids = fleet.proxies.map((p) => p.node_id).sort();
    assert.deepEqual(ids, ['res-a', 'res-b'], JSON.stringify(fleet));
}));

test('a corrupt saved snapshot is ignored with a warning; the control plane\'s version is applied', T, () => c.guard(async () => {
    await pb.stop();
    fs.writeFileSync(path.join(pb.stateDir, 'snapshot.pb'), 'this is not a PolicySnapshot \u0000\u00ff');
    await pb.start();
    await pb.waitVersion(4);
    assert.match(pb.proc.stderr, /snapshot\.pb/, 'the bad file is named in the log');
    assert.equal((await pb.chat('repaired')).version, '4');
    // The file is rewritten with the good snapshot: a restart without the control plane works.
    await waitFor(() => !fs.readFileSync(path.join(pb.stateDir, 'snapshot.pb'), 'latin1').includes('not a PolicySnapshot'),
                  { timeoutMs: 5000, what: 'snapshot.pb rewritten' });
    await cp.kill9();
    await pb.stop();
    await pb.start();
    assert.equal(await pb.readyz(), 200);
    assert.equal((await pb.chat('from the rewritten file')).version, '4');
}));

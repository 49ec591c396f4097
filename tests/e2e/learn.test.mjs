// tests/e2e/learn.test.mjs - learned routing end to end: a control plane, a managed proxy and
// switchyard-mockllm; a route with strategy learned over two mock models; a driver that sends
// chat requests through the proxy and posts feedback for each answer to the control plane
// (POST /v1/feedback with the answer's x-switchyard-request-id) by a fixed rule.
//
// File store: the learner pushes versions that favour the model users like, with its note;
// GET /v1/learn and `switchyardctl learn status` show it; freeze stops new versions while the
// rule flips; unfreeze resumes and the shares follow the flip; rollback activates the weights
// from before learning as a new version and freezes.
// etcd: two control planes, one leader; learned versions come from it; SIGKILL it and the
// other takes over within the lease TTL (5 s) and goes on learning.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { newCluster, basePolicy, waitFor, sleep, httpJson, fetchT, ctl, SLOW } from './lib/cluster.mjs';

const T = { timeout: 55000 * SLOW };
const clusters = [];
after(async () => {
    for (const c of clusters) await c.stop();
});

function learnPolicy(mockUrl) {
    const p = basePolicy(mockUrl);
    p.routes.push({
        name: 'smart',
        match: { model: 'smart' },
        strategy: 'learned',
        targets: [
            { model: 'mock-a', weight: 500 },
            { model: 'mock-b', weight: 500 },
        ],
        // Fast on purpose: an update a second, little evidence needed, old evidence halves
        // in about two seconds so a change of mind shows quickly.
        learn: { update_period_s: 1, min_samples: 5, max_step: 0.25, discount: 0.7 },
    });
    return p;
}

// Sends chat requests for "smart" through <proxyUrl> on <conc> loops and posts feedback for
// every answer to <cpUrl>: thumbs from rule(model). The rule may change while it runs.
class Driver {
    constructor(proxyUrl, cpUrl, rule) {
        this.proxyUrl = proxyUrl;
        this.cpUrl = cpUrl;
        this.rule = rule;
        this.sent = { 'mock-a': 0, 'mock-b': 0 };
        this.refused = [];
        this.errors = [];
        this.running = false;
    }

    start(conc = 4) {
        this.running = true;
        this.loops = Array.from({ length: conc }, (_, i) => this.loop(i));
        return this;
    }

    async loop(i) {
        let n = 0;
        while (this.running) {
            try {
                const r = await fetchT(`${this.proxyUrl}/v1/chat/completions`, {
                    method: 'POST',
                    headers: { 'content-type': 'application/json' },
                    body: JSON.stringify({ model: 'smart', messages: [{ role: 'user', content: `q ${i}.${n++}` }] }),
                });
                await r.arrayBuffer();
                const id = r.headers.get('x-switchyard-request-id');
                const model = r.headers.get('x-switchyard-model');
                if (r.status !== 200 || !id || !(model in this.sent)) {
                    this.errors.push(`chat: ${r.status} id=${id} model=${model}`);
                    await sleep(50);
                    continue;
                }
                const f = await httpJson(`${this.cpUrl}/v1/feedback`, {
                    method: 'POST',
                    body: { request_id: id, thumbs: this.rule(model) },
                });
                if (f.status === 201) this.sent[model]++;
                else this.refused.push(`${f.status} ${f.body}`);
            } catch (e) {
                // A control plane killed on purpose refuses for a moment; note and go on.
                this.errors.push(String(e && e.message));
                await sleep(50);
            }
        }
    }

    async stop() {
        this.running = false;
        await Promise.all(this.loops || []);
    }
}

const aGood = (m) => (m === 'mock-a' ? 'up' : 'down');
const bGood = (m) => (m === 'mock-b' ? 'up' : 'down');

// The weights of route smart in version <v> on <cp>: { 'mock-a': w, 'mock-b': w }.
async function weightsOf(cp, v) {
    const r = await cp.api(`/v1/policies/${v}`);
    assert.equal(r.status, 200, r.body);
    const compiled = typeof r.json.compiled === 'string' ? JSON.parse(r.json.compiled) : r.json.compiled;
    const route = compiled.routes.find((x) => x.name === 'smart');
    return Object.fromEntries(route.targets.map((t) => [t.model, t.weight]));
}

// Waits until the active version on <cp> is a learned version newer than <after> for which
// pred(weights, version record) holds; returns { version, weights, note }.
async function waitLearned(cp, after, pred, what, timeoutMs = 20000) {
    let last;
    return waitFor(async () => {
        const l = await cp.policies();
        last = l.versions.slice(0, 3);
        if (l.active <= after) return null;
        const rec = l.versions.find((v) => v.version === l.active);
        if (!rec || !rec.note.startsWith('learned: route smart from version ')) return null;
        const weights = await weightsOf(cp, l.active);
        return pred(weights, rec) ? { version: l.active, weights, note: rec.note } : null;
    }, { timeoutMs, intervalMs: 150, what: `${cp.id}: ${what}` }).catch((e) => {
        throw new Error(`${e.message}\nnewest versions: ${JSON.stringify(last)}`);
    });
}

async function learnStatus(cp) {
    const r = await cp.api('/v1/learn');
    assert.equal(r.status, 200, r.body);
    return r.json;
}

const NOTE = /^learned: route smart from version (\d+): mock-a \d+\.\d% \(up [01]\.\d\d, n \d+\), mock-b \d+\.\d% \(up [01]\.\d\d, n \d+\)$/;

test('learn, freeze, unfreeze, rollback (file store)', T, async () => {
    const c = newCluster();
    clusters.push(c);
    await c.guard(async () => {
        const mock = await c.mock();
        const cp = await c.control({ id: 'cp-learn' });
        const px = await c.proxy(cp, { nodeId: 'px-learn' });
        const first = await cp.push(learnPolicy(mock.baseURL), { note: 'before learning' });
        await px.waitVersion(first.version);

        const st0 = await learnStatus(cp);
        assert.equal(st0.leader, 'cp-learn');
        assert.equal(st0.is_leader, true);
        assert.equal(st0.routes.length, 1);
        assert.equal(st0.routes[0].route, 'smart');
        assert.deepEqual(st0.routes[0].targets.map((t) => t.weight), [500, 500]);

        const d = new Driver(px.url, cp.url, aGood).start();
        try {
            // 1. A new version favouring mock-a, with its note.
            const v1 = await waitLearned(cp, first.version, (w) => w['mock-a'] > w['mock-b'],
                                         'a learned version favouring mock-a');
            const m = NOTE.exec(v1.note);
            assert.ok(m, `note: ${v1.note}`);
            assert.ok(Number(m[1]) >= first.version && Number(m[1]) < v1.version, v1.note);
            assert.equal(v1.weights['mock-a'] + v1.weights['mock-b'], 1000);
            // The step bound: the first learned version moves at most 0.25 from 500/500.
            const firstLearned = await weightsOf(cp, first.version + 1);
            assert.ok(firstLearned['mock-a'] <= 750, JSON.stringify(firstLearned));

            // GET /v1/learn tells the same story.
            const st = await waitFor(async () => {
                const s = await learnStatus(cp);
                return s.routes[0].last_version >= v1.version ? s : null;
            }, { timeoutMs: 5000, what: '/v1/learn to show the learned version' });
            const r = st.routes[0];
            assert.equal(r.last_update_by, 'cp-learn');
            assert.equal(r.frozen, false);
            const [ta, tb] = r.targets;
            assert.equal(ta.model, 'mock-a');
            assert.ok(ta.posterior.mean > 0.7 && tb.posterior.mean < 0.3,
                      JSON.stringify(r.targets));
            assert.ok(ta.posterior.ci95[0] < ta.posterior.mean && ta.posterior.mean < ta.posterior.ci95[1]);
            assert.ok(ta.posterior.n >= 5);
            assert.ok(typeof r.next_update_unix_ms === 'number');

            const cs = await ctl(['--server', cp.url, 'learn', 'status']);
            assert.equal(cs.code, 0, cs.stderr);
            assert.match(cs.stdout, /^leader: +cp-learn \(this replica\)$/m);
            assert.match(cs.stdout, /^route smart: every 1s/m);
            assert.match(cs.stdout, /^mock-a +\d+ +\d+\.\d%/m);

            // 2. Freeze: users change their mind, but no version appears while frozen.
            const fz = await ctl(['--server', cp.url, 'learn', 'freeze', 'smart']);
            assert.equal(fz.code, 0, fz.stderr);
            assert.match(fz.stdout, /learning frozen for route smart/);
            d.rule = bGood;
            await sleep(1500); // a round that was already under way finishes
            const frozenAt = (await cp.policies()).versions[0].version;
            const sentBefore = d.sent['mock-a'] + d.sent['mock-b'];
            await sleep(4000); // four update periods
            const l = await cp.policies();
            assert.equal(l.versions[0].version, frozenAt, `no version while frozen: ${JSON.stringify(l.versions[0])}`);
            assert.ok(d.sent['mock-a'] + d.sent['mock-b'] > sentBefore + 20, 'feedback went on');
            const sf = await learnStatus(cp);
            assert.deepEqual(sf.frozen_routes, ['smart']);
            assert.equal(sf.routes[0].frozen, true);
            assert.equal(sf.routes[0].next_update_unix_ms, null);

            // 3. Unfreeze: learning resumes and follows the new preference.
            const wFrozen = await weightsOf(cp, l.active);
            const uf = await cp.api('/v1/learn/unfreeze', { method: 'POST' });
            assert.equal(uf.status, 200, uf.body);
            assert.deepEqual(uf.json.frozen_routes, []);
            const v2 = await waitLearned(cp, frozenAt, (w) => w['mock-b'] > wFrozen['mock-b'],
                                         'a learned version moving toward mock-b');
            assert.match(v2.note, NOTE);
        } finally {
            await d.stop();
        }
        assert.deepEqual(d.refused, [], 'every piece of feedback was accepted');

        // 4. Rollback: the weights from before learning, as a new version; learning frozen.
        const rb = await ctl(['--server', cp.url, '--json', 'learn', 'rollback']);
        assert.equal(rb.code, 0, rb.stderr);
        const out = JSON.parse(rb.stdout);
        assert.equal(out.rolled_back, true);
        assert.equal(out.to_version, first.version);
        assert.equal(out.rollback_of, first.version);
        assert.equal(out.frozen, true);
        assert.ok(out.learned_versions >= 2, rb.stdout);
        const l = await cp.policies();
        assert.equal(l.active, out.version);
        assert.equal(l.versions[0].rollback_of, first.version);
        assert.deepEqual(await weightsOf(cp, out.version), { 'mock-a': 500, 'mock-b': 500 });
        await px.waitVersion(out.version);
        const sr = await learnStatus(cp);
        assert.equal(sr.frozen, true);
        assert.equal(sr.routes[0].frozen, true);
        // Nothing else to roll back now.
        const again = await cp.api('/v1/learn/rollback', { method: 'POST', body: { route: 'smart' } });
        assert.equal(again.status, 200, again.body);
        assert.equal(again.json.rolled_back, false);
        assert.equal((await cp.policies()).active, out.version);
        // Bad requests.
        const bad = await cp.api('/v1/learn/freeze', { method: 'POST', body: { route: 'nope' } });
        assert.equal(bad.status, 404, bad.body);
        assert.equal(bad.json.error.code, 'unknown_route');
        assert.equal((await cp.api('/v1/learn/freeze')).status, 405);
    });
});

test('leader election on etcd: one leader learns; SIGKILL it and the other takes over', T, async () => {
    const c = newCluster();
    clusters.push(c);
    await c.guard(async () => {
        const etcd = await c.etcd();
        const mock = await c.mock();
        const prefix = '/switchyard-learn';
        const cp1 = await c.control({ id: 'cp-1', store: `etcd:${etcd.url}`, prefix });
        await waitFor(async () => (await learnStatus(cp1)).is_leader, { timeoutMs: 10000, what: 'cp-1 leads' });
        const cp2 = await c.control({ id: 'cp-2', store: `etcd:${etcd.url}`, prefix });
        const pa = await c.proxy(cp1, { nodeId: 'pa' });
        const pb = await c.proxy(cp2, { nodeId: 'pb' });
        const first = await cp1.push(learnPolicy(mock.baseURL), { note: 'before learning' });
        await pa.waitVersion(first.version);
        await pb.waitVersion(first.version);
        for (const [cp, leads] of [[cp1, true], [cp2, false]]) {
            const s = await learnStatus(cp);
            assert.equal(s.leader, 'cp-1', `${cp.id}: ${JSON.stringify(s)}`);
            assert.equal(s.is_leader, leads, cp.id);
        }

        // Traffic through cp-2's proxy, feedback to cp-2: the leader (cp-1) learns from it.
        const d = new Driver(pb.url, cp2.url, aGood).start();
        try {
            const v1 = await waitLearned(cp2, first.version, (w) => w['mock-a'] > w['mock-b'],
                                         'a learned version favouring mock-a');
            const s1 = await waitFor(async () => {
                const s = await learnStatus(cp2);
                return s.routes[0].last_version >= v1.version ? s : null;
            }, { timeoutMs: 5000, what: 'cp-2 to show the learned version' });
            assert.equal(s1.routes[0].last_update_by, 'cp-1');
            assert.equal(s1.is_leader, false);

            // The leader dies; cp-2 takes over once its lease runs out, and learns on.
            await cp1.kill9();
            const t0 = Date.now();
            d.rule = bGood;
            await waitFor(async () => (await learnStatus(cp2)).is_leader,
                          { timeoutMs: 12000, intervalMs: 100, what: 'cp-2 to lead' });
            const took = Date.now() - t0;
            assert.ok(took <= 8000 * SLOW, `took over after ${took} ms`);
            const s2 = await learnStatus(cp2);
            assert.equal(s2.leader, 'cp-2');
            const wBefore = await weightsOf(cp2, (await cp2.policies()).active);
            const v2 = await waitLearned(cp2, v1.version, (w) => w['mock-b'] > wBefore['mock-b'],
                                         'cp-2 to learn toward mock-b');
            const s3 = await waitFor(async () => {
                const s = await learnStatus(cp2);
                return s.routes[0].last_version >= v2.version ? s : null;
            }, { timeoutMs: 5000, what: 'cp-2 to show its learned version' });
            assert.equal(s3.routes[0].last_update_by, 'cp-2');
            await pb.waitVersion(v2.version);
        } finally {
            await d.stop();
        }
    });
});

// tests/e2e/experiments.test.mjs - an A/B experiment end to end on two managed proxies:
// sticky assignment (one user, one arm, on both proxies; x-switchyard-arm), feedback
// through the proxies with the signed request ids, exactly-once at the control plane (a
// duplicate through the other proxy is dropped), results at GET /v1/experiments (posterior,
// probability to be best, test, stopping rule), switchyardctl experiment status/promote
// pushing the version that ends it, and feedback sent straight to the control plane.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { newCluster, basePolicy, ctl, waitFor, fetchT, SLOW } from './lib/cluster.mjs';

const T = { timeout: 90000 * SLOW };
const clusters = [];
after(async () => {
    for (const c of clusters) await c.stop();
});

function policy(mockUrl) {
    const p = basePolicy(mockUrl);
    p.routes = [{ name: 'auto', match: { model: 'auto' }, targets: [{ model: 'mock-a' }] }];
    p.experiments = [{
        name: 'e1',
        route: 'auto',
        metric: 'thumbs_up',
        min_samples: 5,
        stop: { rule: 'prob_best', threshold: 0.9 },
        arms: [{ name: 'A', model: 'mock-a', share: 50 }, { name: 'B', model: 'mock-b', share: 50 }],
    }];
    return p;
}

async function chat(px, user) {
    const r = await fetchT(`${px.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'auto', user, messages: [{ role: 'user', content: 'hi' }] }),
    }, 15000 * SLOW);
    const text = await r.text();
    assert.equal(r.status, 200, text);
    return {
        arm: r.headers.get('x-switchyard-arm'),
        model: r.headers.get('x-switchyard-model'),
        id: r.headers.get('x-switchyard-request-id'),
        requestId: r.headers.get('x-request-id'),
    };
}

async function feedback(url, body) {
    const r = await fetchT(`${url}/v1/feedback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
    });
    const text = await r.text();
    let json;
    try {
        json = JSON.parse(text);
    } catch {
        json = undefined;
    }
    return { status: r.status, json, text };
}

test('a two-arm experiment: sticky arms, feedback, results, promotion', T, async () => {
    const c = newCluster();
    clusters.push(c);
    await c.guard(async () => {
        const mock = await c.mock();
        const cp = await c.control();
        const v1 = (await cp.push(policy(mock.baseURL))).version;
        const p1 = await c.proxy(cp, { nodeId: 'exp-1', args: ['--telemetry-interval-ms', '200'] });
        const p2 = await c.proxy(cp, { nodeId: 'exp-2', args: ['--telemetry-interval-ms', '200'] });
        await p1.waitVersion(v1);
        await p2.waitVersion(v1);

        // Sticky: each user gets one arm, the same through both proxies.
        const armOf = new Map();
        const answers = [];
        for (let i = 0; i < 24; i++) {
            const user = `user-${i % 12}`;
            const a = await chat(i % 2 ? p2 : p1, user);
            assert.match(a.arm, /^e1\/[AB]$/, 'x-switchyard-arm');
            assert.equal(a.model, a.arm === 'e1/A' ? 'mock-a' : 'mock-b', 'the arm serves');
            assert.match(a.id, /^sy1\./);
            assert.equal(a.requestId, a.id, 'x-request-id is the signed id');
            if (armOf.has(user)) assert.equal(a.arm, armOf.get(user), `${user} stays on one arm`);
            armOf.set(user, a.arm);
            answers.push(a);
        }
        const arms = new Set(armOf.values());
        assert.equal(arms.size, 2, 'twelve users reach both arms');

        // Feedback through the proxies: B is liked, A is not.
        let sent = { A: 0, B: 0 };
        for (const [i, a] of answers.entries()) {
            const arm = a.arm.slice(3);
            const r = await feedback((i % 2 ? p1 : p2).url,
                { request_id: a.id, thumbs: arm === 'B' ? 'up' : 'down' });
            assert.equal(r.status, 202, r.text);
            assert.equal(r.json.arm, arm);
            assert.equal(r.json.experiment, 'e1');
            sent[arm]++;
        }
        // The same feedback again through the other proxy: accepted there (it has not seen
        // it), dropped at the control plane.
        const dup = await feedback(p1.url, { request_id: answers[0].id, thumbs: 'up' });
        assert.equal(dup.status, 202, dup.text);

        let x;
        await waitFor(async () => {
            x = (await cp.api('/v1/experiments/e1')).json;
            const a = x?.arms?.find((r) => r.name === 'A');
            const b = x?.arms?.find((r) => r.name === 'B');
            return a && b && a.feedback === sent.A && b.feedback === sent.B &&
                a.requests + b.requests === answers.length;
        }, { timeoutMs: 20000 * SLOW, intervalMs: 200, what: 'feedback and traffic at the control plane' })
            .catch((e) => {
                throw new Error(`${e.message}\n${JSON.stringify(x)}`);
            });
        const a = x.arms.find((r) => r.name === 'A');
        const b = x.arms.find((r) => r.name === 'B');
        assert.equal(b.up, sent.B);
        assert.equal(b.down, 0);
        assert.equal(a.up, 0);
        assert.equal(b.up_rate, 1);
        assert.equal(a.up_rate, 0);
        assert.ok(b.posterior_mean > 0.8 && a.posterior_mean < 0.2);
        assert.ok(b.ci95[0] > a.ci95[1], 'the intervals separate');
        assert.ok(b.prob_best > 0.99, `P(best) ${b.prob_best}`);
        assert.ok(Math.abs(a.prob_best + b.prob_best - 1) < 1e-6);
        assert.equal(x.status, 'concluded');
        assert.equal(x.winner, 'B');
        assert.equal(x.test.significant, true);
        assert.ok(x.test.p_value < 0.01);
        assert.ok(b.latency_ms.p50 > 0 && b.cost_per_request_usd > 0);
        const m = await cp.api('/metrics');
        assert.match(m.body, /switchyard_control_feedback_total\{outcome="duplicate"\} [1-9]/);

        // Straight to the control plane: stored (201), duplicate (409), forged (404).
        const direct = await chat(p1, 'user-direct');
        let r = await feedback(cp.url, { request_id: direct.id, score: 0.7, metric: 'helpfulness' });
        assert.equal(r.status, 201, r.text);
        r = await feedback(cp.url, { request_id: direct.id, score: 0.2, metric: 'helpfulness' });
        assert.equal(r.status, 409, r.text);
        assert.equal(r.json.error.code, 'duplicate_feedback');
        const forged = direct.id.slice(0, -3) + (direct.id.endsWith('AAA') ? 'BBB' : 'AAA');
        r = await feedback(cp.url, { request_id: forged, thumbs: 'up' });
        assert.equal(r.status, 404, r.text);
        assert.equal(r.json.error.code, 'unknown_request_id');
        r = await feedback(cp.url, { request_id: direct.id, thumbs: 'up', score: 1 });
        assert.equal(r.status, 400, r.text);

        // switchyardctl: status, then promotion pushes the version that ends the experiment.
        let out = await ctl(['--server', cp.url, 'experiment', 'status', 'e1']);
        assert.equal(out.code, 0, out.stderr);
        assert.match(out.stdout, /experiment e1 on route auto: concluded, winner B/);
        assert.match(out.stdout, /two-proportion z-test B vs A/);
        out = await ctl(['--server', cp.url, 'experiment', 'promote', 'e1', 'C']);
        assert.equal(out.code, 1, out.stdout);
        assert.match(out.stderr, /no arm C/);
        out = await ctl(['--server', cp.url, 'experiment', 'promote', 'e1', 'B']);
        assert.equal(out.code, 0, out.stderr);
        const v2 = (await cp.policies()).active;
        assert.ok(v2 > v1);
        const ver = (await cp.api(`/v1/policies/${v2}`)).json;
        assert.match(ver.note, /experiment e1: promoted arm B/);
        assert.ok(!/"experiments"/.test(JSON.stringify(ver.compiled)), 'the experiment is gone');
        await p1.waitVersion(v2);
        await p2.waitVersion(v2);
        for (let i = 0; i < 6; i++) {
            const after = await chat(i % 2 ? p1 : p2, `user-${i}`);
            assert.equal(after.model, 'mock-b', 'the winner takes all of the route');
            assert.equal(after.arm, null, 'no arm any more');
        }
        const closed = (await cp.api('/v1/experiments/e1')).json;
        assert.equal(closed.status, 'promoted');
        assert.equal(closed.promoted_arm, 'B');
        assert.equal(closed.promoted_in_version, v2);
        out = await ctl(['--server', cp.url, 'experiment', 'promote', 'e1', 'B']);
        assert.equal(out.code, 1);
        assert.match(out.stderr, /already promoted/);
        out = await ctl(['--server', cp.url, 'experiment', 'list']);
        assert.equal(out.code, 0, out.stderr);
        assert.match(out.stdout, /e1\s+auto\s+thumbs_up\s+promoted\s+B/);
    });
});

test('stop.auto_promote: the control plane promotes the winner itself', T, async () => {
    const c = newCluster();
    clusters.push(c);
    await c.guard(async () => {
        const mock = await c.mock();
        const cp = await c.control();
        const p = policy(mock.baseURL);
        p.experiments[0].min_samples = 3;
        p.experiments[0].stop = { rule: 'prob_best', threshold: 0.9, auto_promote: true };
        p.experiments[0].sticky = { by: 'request' };
        const v1 = (await cp.push(p)).version;
        const px = await c.proxy(cp, { nodeId: 'exp-auto', args: ['--telemetry-interval-ms', '200'] });
        await px.waitVersion(v1);
        const seen = { A: 0, B: 0 };
        for (let i = 0; i < 60 && (seen.A < 6 || seen.B < 6); i++) {
            const a = await chat(px, `u${i}`);
            const arm = a.arm.slice(3);
            seen[arm]++;
            const r = await feedback(cp.url, { request_id: a.id, thumbs: arm === 'A' ? 'up' : 'down' });
            assert.equal(r.status, 201, r.text);
        }
        assert.ok(seen.A >= 3 && seen.B >= 3, JSON.stringify(seen));
        let list;
        await waitFor(async () => {
            list = await cp.policies();
            return list.active > v1;
        }, { timeoutMs: 20000 * SLOW, intervalMs: 250, what: 'an automatic promotion' });
        const note = list.versions.find((v) => v.version === list.active).note;
        assert.match(note, /experiment e1: promoted arm A/);
        const closed = (await cp.api('/v1/experiments/e1')).json;
        assert.equal(closed.status, 'promoted');
        assert.equal(closed.promoted_arm, 'A');
    });
});

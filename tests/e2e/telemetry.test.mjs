// tests/e2e/telemetry.test.mjs - fleet telemetry end to end: traffic through two managed
// proxies (two tenants, two models, streams, client errors) shows up in the control plane's
// /v1/stats, /v1/spend, /v1/health and /metrics exactly (requests and tokens) and to the
// cent (cost); spend survives a control-plane restart (SIGTERM and SIGKILL) on the file store
// and on etcd; a proxy's backlog survives a 10 s control-plane outage, and a backlog too small
// for an outage coalesces intervals without losing a request.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { newCluster, basePolicy, waitFor, fetchT, sleep, SLOW } from './lib/cluster.mjs';

const T = { timeout: 90000 * SLOW };
const sha256 = (k) => crypto.createHash('sha256').update(k).digest('hex');
const KEYS = { acme: 'sk-gw-acme-telemetry', beta: 'sk-gw-beta-telemetry' };
const FAST = ['--telemetry-interval-ms', '200'];
const PRICES = { 'mock-a': [1, 2], 'mock-b': [3, 6] };

const clusters = [];
after(async () => {
    for (const c of clusters) await c.stop();
});

function policy(mockUrl) {
    const p = basePolicy(mockUrl);
    p.tenants = [
        { name: 'acme', api_keys_sha256: [sha256(KEYS.acme)], labels: { team: 'search' },
          budget: { monthly_usd: 100, daily_usd: 5 } },
        { name: 'beta', api_keys_sha256: [sha256(KEYS.beta)] },
    ];
    return p;
}

// What the proxies served, as the clients saw it.
class Ledger {
    constructor() {
        this.total = { requests: 0, prompt: 0, completion: 0, cost: 0, clientErrors: 0 };
        this.byTenant = new Map(); // tenant -> {requests, prompt, completion, cost, models: Map}
        this.byModel = new Map();
        this.tags = new Map(); // "tenant|tag" -> {requests, cost}
    }

    add(tenant, model, usage, cost) {
        const t = this.byTenant.get(tenant) ??
            { requests: 0, prompt: 0, completion: 0, cost: 0, models: new Map() };
        const m = t.models.get(model) ?? { requests: 0, prompt: 0, completion: 0, cost: 0 };
        for (const o of [this.total, t, m]) {
            o.requests++;
            o.prompt += usage.prompt_tokens;
            o.completion += usage.completion_tokens;
            o.cost += cost;
        }
        t.models.set(model, m);
        this.byTenant.set(tenant, t);
        this.byModel.set(model, (this.byModel.get(model) ?? 0) + 1);
    }
}

// One chat request through <px> as <tenant>; records it in <ledger>.
async function chat(px, ledger, tenant, model, { stream = false, tag, user } = {}) {
    const body = { model, messages: [{ role: 'user', content: `hello from ${tenant}` }] };
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEYS[tenant]}` };
    if (tag) headers['x-switchyard-tags'] = tag;
    if (user) body.user = user;
    if (stream) {
        body.stream = true;
        body.stream_options = { include_usage: true };
    }
    const r = await fetchT(`${px.url}/v1/chat/completions`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
    }, 15000 * SLOW);
    const text = await r.text();
    if (model === 'no-such-model') {
        assert.equal(r.status, 404, text);
        ledger.total.requests++;
        ledger.total.clientErrors++;
        return;
    }
    assert.equal(r.status, 200, text);
    let usage;
    if (stream) {
        for (const line of text.split('\n')) {
            if (!line.startsWith('data: {')) continue;
            const ev = JSON.parse(line.slice(6));
            if (ev.usage) usage = ev.usage;
        }
    } else {
        usage = JSON.parse(text).usage;
    }
    assert.ok(usage && usage.prompt_tokens > 0, `usage in ${text.slice(0, 300)}`);
    // A JSON answer carries its cost; a stream's headers leave before the usage arrives, so
    // it is priced here from the policy (basePolicy: mock-a 1/2, mock-b 3/6 $ per Mtok).
    const price = PRICES[model];
    const cost = stream
        ? (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6
        : Number(r.headers.get('x-switchyard-cost-usd'));
    assert.ok(cost > 0, `cost of ${model}: ${r.headers.get('x-switchyard-cost-usd')}`);
    ledger.add(tenant, model, usage, cost);
    for (const t of [tag, user && `user:${user}`].filter(Boolean)) {
        const k = `${tenant}|${t}`;
        const e = ledger.tags.get(k) ?? { requests: 0, cost: 0 };
        e.requests++;
        e.cost += cost;
        ledger.tags.set(k, e);
    }
}

// A fixed mix: both proxies, both tenants, both models, some streams, two 404s.
async function traffic(proxies, ledger, n) {
    for (let i = 0; i < n; i++) {
        const px = proxies[i % proxies.length];
        const tenant = i % 3 === 0 ? 'beta' : 'acme';
        const model = i % 4 === 0 ? 'mock-b' : 'mock-a';
        await chat(px, ledger, tenant, model, {
            stream: i % 5 === 0,
            tag: i % 2 ? 'checkout' : 'search,beta-feature',
            user: i % 7 === 0 ? `user-${i % 3}` : undefined,
        });
    }
}

async function waitStats(cp, want, window = '1m') {
    let last;
    return waitFor(async () => {
        last = (await cp.api(`/v1/stats?window=${window}`)).json;
        return last && last.totals.requests === want ? last : null;
    }, { timeoutMs: 15000 * SLOW, intervalMs: 100, what: `/v1/stats to count ${want} requests` })
        .catch((e) => {
            throw new Error(`${e.message}\nlast: ${JSON.stringify(last)?.slice(0, 2000)}`);
        });
}

async function spend(cp, period = 'day') {
    const r = await cp.api(`/v1/spend?period=${period}`);
    assert.equal(r.status, 200, r.body);
    return r.json;
}

// Asserts /v1/spend matches the ledger: requests and tokens exactly, cost to the cent.
function assertSpend(s, ledger) {
    let total = 0;
    for (const [name, want] of ledger.byTenant) {
        const t = s.tenants.find((x) => x.tenant === name);
        assert.ok(t, `tenant ${name} in ${JSON.stringify(s)}`);
        assert.equal(t.requests, want.requests, `${name} requests`);
        assert.equal(t.prompt_tokens, want.prompt, `${name} prompt tokens`);
        assert.equal(t.completion_tokens, want.completion, `${name} completion tokens`);
        assert.ok(Math.abs(t.cost_usd - want.cost) < 0.005, `${name} cost ${t.cost_usd} vs ${want.cost}`);
        assert.ok(Math.abs(t.cost_usd - want.cost) < 1e-6, `${name} cost exact: ${t.cost_usd} vs ${want.cost}`);
        for (const [model, wm] of want.models) {
            const m = t.models.find((x) => x.model === model);
            assert.ok(m, `${name}/${model}`);
            assert.equal(m.requests, wm.requests, `${name}/${model} requests`);
            assert.equal(m.provider, 'mock');
            assert.equal(m.prompt_tokens, wm.prompt);
            assert.equal(m.completion_tokens, wm.completion);
        }
        total += want.cost;
    }
    assert.ok(Math.abs(s.total_usd - total) < 1e-6, `total ${s.total_usd} vs ${total}`);
}

// Spend counts requests that reached a model (the 404s for an unknown model did not).
function spendRequests(s) {
    return s.tenants.reduce((a, t) => a + t.requests, 0);
}

async function waitSpend(cp, ledger, period = 'day') {
    let last;
    const want = [...ledger.byTenant.values()].reduce((a, t) => a + t.requests, 0);
    await waitFor(async () => {
        last = await spend(cp, period);
        return spendRequests(last) === want;
    }, { timeoutMs: 20000 * SLOW, intervalMs: 200, what: `spend to count ${want} requests` })
        .catch((e) => {
            throw new Error(`${e.message}\nlast: ${JSON.stringify(last)?.slice(0, 2000)}`);
        });
    return last;
}

function metricSum(text, name, filter = () => true) {
    let sum = 0;
    for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (!filter(line)) continue;
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
}

test('traffic through two proxies is counted exactly in stats, spend, health and metrics', T,
    async () => {
        const c = newCluster();
        clusters.push(c);
        await c.guard(async () => {
            const mock = await c.mock();
            const cp = await c.control();
            await cp.push(policy(mock.baseURL));
            const p1 = await c.proxy(cp, { nodeId: 'tel-1', args: FAST });
            const p2 = await c.proxy(cp, { nodeId: 'tel-2', args: FAST });
            await p1.waitVersion(1);
            await p2.waitVersion(1);
            const ledger = new Ledger();
            await traffic([p1, p2], ledger, 24);
            await chat(p1, ledger, 'acme', 'no-such-model');
            await chat(p2, ledger, 'beta', 'no-such-model');

            const st = await waitStats(cp, ledger.total.requests);
            assert.equal(st.window, '1m');
            assert.equal(st.window_s, 60);
            assert.equal(st.proxies, 2);
            assert.equal(st.active_version, 1);
            assert.equal(st.totals.prompt_tokens, ledger.total.prompt);
            assert.equal(st.totals.completion_tokens, ledger.total.completion);
            assert.equal(st.totals.errors, 0);
            assert.equal(st.totals.client_errors, 2);
            assert.ok(Math.abs(st.totals.cost_usd - ledger.total.cost) < 1e-6);
            assert.ok(st.totals.latency_ms.p50 > 0 && st.totals.latency_ms.p99 >= st.totals.latency_ms.p50);
            assert.ok(st.totals.ttft_ms.p50 > 0, 'streams give a TTFT');
            assert.ok(Math.abs(st.totals.rps - ledger.total.requests / 60) < 0.01);
            for (const [model, n] of ledger.byModel) {
                const row = st.models.find((m) => m.model === model);
                assert.equal(row?.requests, n, `model ${model}`);
                assert.equal(row.provider, 'mock');
            }
            assert.equal(st.providers.find((p) => p.provider === 'mock').requests,
                ledger.total.requests - 2);
            assert.equal(st.routes.find((r) => r.route === '').requests, 2, 'the 404s have no route');
            for (const [name, t] of ledger.byTenant) {
                assert.equal(st.tenants.find((x) => x.tenant === name).requests,
                    t.requests + (name === 'acme' || name === 'beta' ? 1 : 0));
            }
            // Attribution tags (x-switchyard-tags, and user:<id> for the body's user).
            const tags = new Map();
            for (const t of st.tags) tags.set(`${t.tenant}|${t.tag}`, t);
            const expectTags = new Map();
            for (const [k, e] of ledger.tags) {
                for (const tag of k.split('|')[1].split(',')) {
                    const kk = `${k.split('|')[0]}|${tag}`;
                    const x = expectTags.get(kk) ?? { requests: 0, cost: 0 };
                    x.requests += e.requests;
                    x.cost += e.cost;
                    expectTags.set(kk, x);
                }
            }
            assert.equal(tags.size, expectTags.size, JSON.stringify(st.tags));
            for (const [k, e] of expectTags) {
                assert.equal(tags.get(k)?.requests, e.requests, `tag ${k}`);
                assert.ok(Math.abs(tags.get(k).cost_usd - e.cost) < 1e-6, `tag ${k} cost`);
            }
            assert.ok(tags.has('acme|user:user-0') || tags.has('beta|user:user-0'));
            const st10 = (await cp.api('/v1/stats?window=1h')).json;
            assert.equal(st10.totals.requests, ledger.total.requests);

            const day = await waitSpend(cp, ledger, 'day');
            assertSpend(day, ledger);
            const acme = day.tenants.find((t) => t.tenant === 'acme');
            assert.deepEqual(acme.labels, { team: 'search' });
            assert.equal(acme.budget_usd, 5);
            assert.equal(day.tenants.find((t) => t.tenant === 'beta').budget_usd, null);
            assert.ok(day.projected_usd >= day.total_usd);
            const month = await spend(cp, 'month');
            assertSpend(month, ledger);
            assert.equal(month.tenants.find((t) => t.tenant === 'acme').budget_usd, 100);
            assert.match(month.date, /^\d{4}-\d{2}$/);

            const health = (await cp.api('/v1/health')).json;
            const ta = health.targets.find((t) => t.provider === 'mock' && t.model === 'mock-a');
            assert.ok(ta, JSON.stringify(health));
            assert.equal(ta.state, 'closed');
            assert.equal(ta.breaker.closed, 2, 'both proxies report the target');
            assert.equal(ta.requests, ledger.byModel.get('mock-a'));
            assert.equal(ta.errors, 0);

            const m = await cp.api('/metrics');
            assert.equal(m.status, 200);
            assert.match(m.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
            assert.equal(metricSum(m.body, 'switchyard_fleet_requests_total'), ledger.total.requests);
            assert.equal(metricSum(m.body, 'switchyard_fleet_tokens_total', (l) => l.includes('type="prompt"')),
                ledger.total.prompt);
            assert.match(m.body, /switchyard_control_proxies_connected 2\n/);
            assert.match(m.body, /switchyard_control_policy_version 1\n/);
            assert.match(m.body, /# TYPE switchyard_fleet_request_duration_seconds histogram/);
            assert.match(m.body, /switchyard_fleet_circuit_breaker_state\{node="tel-1",provider="mock",model="mock-a"\} 0/);

            // Bad input is answered, not guessed at.
            for (const [p, code] of [['/v1/stats?window=5m', 'invalid_window'],
                ['/v1/spend?period=year', 'invalid_period'],
                ['/v1/spend?period=day&date=2026-02-30', 'invalid_period'],
                ['/v1/spend?period=month&date=2026-13', 'invalid_period']]) {
                const r = await cp.api(p);
                assert.equal(r.status, 400, `${p}: ${r.body}`);
                assert.equal(r.json.error.code, code);
            }
            assert.equal((await cp.api('/v1/stats', { method: 'POST', body: '{}' })).status, 405);
            assert.equal((await cp.api('/v1/stats/x')).status, 404);

            // A graceful restart, then a crash right after traffic: spend stays exact.
            await cp.stop();
            await cp.start();
            assertSpend(await spend(cp, 'day'), ledger);
            await traffic([p1, p2], ledger, 10);
            await cp.kill9();
            await cp.start();
            assertSpend(await waitSpend(cp, ledger, 'day'), ledger);
        });
    });

test('spend survives a control-plane restart on etcd', T, async () => {
    const c = newCluster();
    clusters.push(c);
    await c.guard(async () => {
        const etcd = await c.etcd();
        const mock = await c.mock();
        const cp = await c.control({ store: `etcd:${etcd.url}`, prefix: '/sy-tel' });
        await cp.push(policy(mock.baseURL));
        const px = await c.proxy(cp, { nodeId: 'tel-etcd', args: FAST });
        await px.waitVersion(1);
        const ledger = new Ledger();
        await traffic([px], ledger, 12);
        assertSpend(await waitSpend(cp, ledger), ledger);
        await cp.kill9();
        await traffic([px], ledger, 6); // served while the control plane is down
        await cp.start();
        assertSpend(await waitSpend(cp, ledger), ledger);
        await cp.stop();
        await cp.start();
        assertSpend(await spend(cp), ledger);
    });
});

test('the proxy backlog survives a 10 s outage; a full backlog coalesces, losing nothing', T,
    async () => {
        const c = newCluster();
        clusters.push(c);
        await c.guard(async () => {
            const mock = await c.mock();
            const cp = await c.control();
            await cp.push(policy(mock.baseURL));
            const px = await c.proxy(cp, { nodeId: 'tel-backlog', args: FAST });
            const tiny = await c.proxy(cp, { nodeId: 'tel-tiny',
                args: [...FAST, '--telemetry-backlog', '3'] });
            await px.waitVersion(1);
            await tiny.waitVersion(1);
            const ledger = new Ledger();
            await traffic([px, tiny], ledger, 6);
            await waitSpend(cp, ledger);

            await cp.stop();
            const down = Date.now();
            while (Date.now() - down < 10000) {
                await traffic([px, tiny], ledger, 2);
                await sleep(500);
            }
            await cp.start();
            assertSpend(await waitSpend(cp, ledger), ledger);
            const m = await cp.api('/metrics');
            assert.ok(metricSum(m.body, 'switchyard_control_telemetry_coalesced_intervals_total') > 0,
                'the three-report backlog had to coalesce');
        });
    });

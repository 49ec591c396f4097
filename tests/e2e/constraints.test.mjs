// tests/e2e/constraints.test.mjs - x-switchyard-region and x-switchyard-compliance are hard
// constraints: no target, fallback, retry or hedge of a request ever reaches a provider
// outside them, checked from each provider's own counters (one mock process per provider)
// while the EU primary keeps failing and recovering; when nothing is eligible the answer is
// 503 no_eligible_target naming the constraint, and nothing is sent anywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    withFleet, provider, userMsg, pool, parseChain, tally, NOT_SENT, sleep, SLOW,
} from './lib/fleet.mjs';
import { openai } from './lib/harness.mjs';

const T = (s) => ({ timeout: s * 1000 * SLOW });

// Provider name -> { region, compliance }; model m-<provider> on each.
const PROVIDERS = {
    us: { region: 'us', compliance: ['soc2'] },
    eu: { region: 'eu', compliance: ['soc2', 'gdpr'] },
    euh: { region: 'eu', compliance: ['hipaa', 'gdpr'] },
};

function policy(m, breaker = { failures: 5, open_ms: 300 }) {
    return {
        providers: Object.entries(PROVIDERS).map(([n, p]) => provider(n, m[n], p)),
        models: Object.keys(PROVIDERS).map((n) => ({ name: `m-${n}`, provider: n, upstream_model: `${n}-up` })),
        routes: [
            { name: 'chat', match: { model: 'chat' }, strategy: 'weighted',
              targets: [{ model: 'm-us', weight: 60 }, { model: 'm-eu', weight: 40 }], fallback: ['m-euh'] },
            { name: 'us-only', match: { model: 'us-only' }, targets: [{ model: 'm-us' }] },
            { name: 'hedged', match: { model: 'hedged' }, strategy: 'priority',
              targets: [{ model: 'm-eu' }, { model: 'm-us' }], fallback: ['m-euh'],
              hedge_after_ms: 100, retries: { max: 2, backoff_ms: 5, max_backoff_ms: 10 } },
        ],
        resilience: {
            breaker,
            retry_budget: { ratio: 1, min_per_second: 100 },
        },
    };
}

// Request kinds: their headers and the providers they may reach.
const KINDS = {
    eu: { headers: { 'x-switchyard-region': 'eu' }, ok: ['eu', 'euh'] },
    hipaa: { headers: { 'x-switchyard-compliance': 'hipaa' }, ok: ['euh'] },
    euHipaa: { headers: { 'x-switchyard-region': 'eu', 'x-switchyard-compliance': 'hipaa' }, ok: ['euh'] },
    euSoc2: { headers: { 'x-switchyard-region': 'eu', 'x-switchyard-compliance': 'soc2' }, ok: ['eu'] },
    none: { headers: {}, ok: ['us', 'eu', 'euh'] },
};

// Toggles the eu mock between 503 and healthy every <ms> until stop() is awaited.
function flapper(mock, ms = 100) {
    let on = true;
    let failing = false;
    let flips = 0;
    const done = (async () => {
        while (on) {
            failing = !failing;
            flips++;
            await mock.config({ status: failing ? 503 : 200 });
            await sleep(ms);
        }
        await mock.config({ status: 200 });
    })();
    return { stop: async () => { on = false; await done; return flips; } };
}

// Sends <n> requests of kinds kinds[i % kinds.length], 32 at a time. Checks each answer
// against its kind; returns [{ kind, r, chain }].
async function traffic(f, n, kinds) {
    return pool(n, 32, async (i) => {
        const kind = kinds[i % kinds.length];
        const r = await f.chat({ model: 'chat', messages: userMsg(`${kind} ${i}`) }, KINDS[kind].headers);
        const chain = parseChain(r.headers['x-switchyard-chain']);
        const what = `request ${i} (${kind}): ${r.status} chain ${r.headers['x-switchyard-chain']}`;
        for (const e of chain) {
            assert.ok(KINDS[kind].ok.includes(e.model.slice(2)), `${what}: tried ${e.model}`);
        }
        if (r.status === 200) {
            assert.ok(KINDS[kind].ok.includes(r.headers['x-switchyard-provider']), `${what}: served by ${r.headers['x-switchyard-provider']}`);
            assert.equal(r.json?.choices?.[0]?.message?.content, `echo: ${kind} ${i}`);
        } else {
            // Only the eu provider fails; whoever can avoid it must not see an error. Its
            // failure (502), or 503 when its breaker opened between planning and trying.
            assert.ok(r.status === 502 || (r.status === 503 && r.json?.error?.code === 'no_available_target'),
                      `${what}: ${r.text}`);
            assert.ok(kind === 'euSoc2' || kind === 'eu', `${what}: ${r.text}`);
            assert.ok(chain.length >= 1 && chain.every((e) => e.model === 'm-eu' || NOT_SENT.has(e.result)), `${what}`);
        }
        return { kind, r, chain };
    });
}

// Upstream requests per provider according to the chains (attempts that were sent).
function chained(results) {
    const out = { us: 0, eu: 0, euh: 0 };
    for (const { chain } of results) {
        for (const e of chain) if (!NOT_SENT.has(e.result)) out[e.model.slice(2)]++;
    }
    return out;
}

test('2000 constrained and mixed requests while the EU primary flaps: nothing leaves its constraints', T(55), (t) => withFleet({
    mocks: Object.keys(PROVIDERS),
    // The breaker opens after 5 failures and probes every 100 ms: eu is skipped, then used
    // again, many times during the run.
    policy: (m) => policy(m, { failures: 5, open_ms: 100 }),
}, async (f) => {
    const { us, eu } = f.mocks;

    // Phase 1: constrained traffic only. The us provider must see nothing at all.
    let flap = flapper(eu);
    const t0 = Date.now();
    const one = await traffic(f, 1500, ['eu', 'hipaa', 'euHipaa', 'euSoc2']);
    let flips = await flap.stop();
    const c1 = await f.counts();
    t.diagnostic(`phase 1: 1500 requests in ${Date.now() - t0} ms, ${flips} flips; mocks ${JSON.stringify(c1)}; ` +
                 `statuses ${JSON.stringify(tally(one, (x) => `${x.kind}:${x.r.status}`))}`);
    assert.equal(c1.us, 0, 'the us provider never saw a constrained request');
    assert.equal((await us.stats()).requests_total, 0);
    assert.deepEqual(c1, chained(one), 'each provider saw exactly the attempts the chains name');
    for (const x of one) {
        if (x.kind !== 'eu' && x.kind !== 'euSoc2') assert.equal(x.r.status, 200, `${x.kind} never needs eu: ${x.r.text}`);
    }
    // The run did exercise the failover paths it claims to.
    const fellBack = one.filter((x) => x.kind === 'eu' && x.r.status === 200 &&
        x.r.headers['x-switchyard-provider'] === 'euh');
    const euServed = one.filter((x) => x.kind === 'eu' && x.r.headers['x-switchyard-provider'] === 'eu' && x.r.status === 200);
    const failedOver = one.filter((x) => x.chain.length >= 2 && x.chain[0].model === 'm-eu');
    assert.ok(fellBack.length >= 5 && euServed.length >= 5,
              `eu requests: ${euServed.length} served by eu, ${fellBack.length} by its fallback euh`);
    assert.ok(failedOver.length >= 1 || flips < 2, `some eu attempts failed over (${failedOver.length})`);

    // Phase 2: mixed with unconstrained requests. The us provider sees exactly the
    // unconstrained requests the chains say went there, and nothing else.
    await f.resetMocks();
    flap = flapper(eu);
    const two = await traffic(f, 500, ['none', 'eu', 'hipaa', 'none', 'euSoc2']);
    flips = await flap.stop();
    const c2 = await f.counts();
    t.diagnostic(`phase 2: 500 requests, ${flips} flips; mocks ${JSON.stringify(c2)}`);
    assert.deepEqual(c2, chained(two), 'each provider saw exactly the attempts the chains name');
    const usFromNone = chained(two.filter((x) => x.kind === 'none')).us;
    assert.equal(c2.us, usFromNone, 'the us provider saw only unconstrained requests');
    assert.ok(usFromNone >= 50, `unconstrained requests did reach us (${usFromNone}): the test can tell`);
}));

test('retries and hedges stay inside the constraints', T(30), () => withFleet({
    mocks: Object.keys(PROVIDERS),
    policy: (m) => policy(m, { failures: 1000 }),
}, async (f) => {
    const { us, eu, euh } = f.mocks;
    // The eu target is slow: the hedge goes to the next ELIGIBLE candidate.
    await eu.config({ latency_ms: 1000 });
    const r = await f.chat({ model: 'hedged', messages: userMsg('h') }, KINDS.eu.headers);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-switchyard-provider'], 'euh', 'hedged to euh, skipping us');
    assert.equal(r.headers['x-switchyard-attempts'], '2');
    assert.equal(await us.count(), 0);
    // Without constraints the same route hedges to us.
    const r2 = await f.chat({ model: 'hedged', messages: userMsg('h2') });
    assert.equal(r2.headers['x-switchyard-provider'], 'us');
    assert.equal(await us.count(), 1);

    // Retries: eu fails; an eu+soc2 request may only use eu, so it retries there and fails.
    await f.resetMocks();
    await eu.config({ status: 503 });
    const r3 = await f.chat({ model: 'hedged', messages: userMsg('r') }, KINDS.euSoc2.headers);
    assert.equal(r3.status, 502, r3.text);
    assert.equal(r3.headers['x-switchyard-chain'], 'm-eu:503,m-eu:503,m-eu:503');
    assert.deepEqual(await f.counts(), { us: 0, eu: 3, euh: 0 });
    // An eu request retries eu, then falls back to euh, never us.
    const r4 = await f.chat({ model: 'hedged', messages: userMsg('r4') }, KINDS.eu.headers);
    assert.equal(r4.status, 200, r4.text);
    assert.equal(r4.headers['x-switchyard-chain'], 'm-eu:503,m-eu:503,m-eu:503,m-euh:200');
    assert.deepEqual(await f.counts(), { us: 0, eu: 6, euh: 1 });
    assert.equal((await euh.stats()).by_model['euh-up'], 1);
}));

test('no eligible target: 503 no_eligible_target naming the constraint, nothing sent', T(30), () => withFleet({
    mocks: Object.keys(PROVIDERS),
    policy,
}, async (f) => {
    const cases = [
        ['chat', { 'x-switchyard-region': 'ap' }, ['region ap', 'route chat']],
        ['chat', { 'x-switchyard-region': 'EU' }, ['region EU']], // matched exactly
        ['chat', { 'x-switchyard-compliance': 'pci' }, ['compliance pci']],
        ['chat', { 'x-switchyard-region': 'eu', 'x-switchyard-compliance': 'hipaa,soc2' }, ['region eu', 'hipaa', 'soc2']],
        ['us-only', { 'x-switchyard-region': 'eu' }, ['region eu', 'us-only']],
        ['us-only', { 'x-switchyard-compliance': 'hipaa' }, ['compliance hipaa', 'us-only']],
        ['m-us', { 'x-switchyard-region': 'eu' }, ['region eu', 'model m-us']],
    ];
    for (const [model, headers, words] of cases) {
        const r = await f.chat({ model, messages: userMsg('x') }, headers);
        const what = `${model} ${JSON.stringify(headers)}`;
        assert.equal(r.status, 503, `${what}: ${r.status} ${r.text}`);
        assert.equal(r.json?.error?.code, 'no_eligible_target', `${what}: ${r.text}`);
        for (const w of words) assert.ok(r.json.error.message.includes(w), `${what}: "${w}" in ${r.json.error.message}`);
    }
    // The SDK sees a 503 APIError with that code.
    const client = f.client({ defaultHeaders: { 'x-switchyard-compliance': 'pci' } });
    await assert.rejects(client.chat.completions.create({ model: 'chat', messages: userMsg('x') }),
                         (e) => e instanceof openai.APIError && e.status === 503 && e.code === 'no_eligible_target');
    assert.deepEqual(await f.counts(), { us: 0, eu: 0, euh: 0 }, 'nothing was sent anywhere');

    // Spaces in the compliance list are ignored; a satisfiable pair is served.
    const ok = await f.chat({ model: 'chat', messages: userMsg('y') }, { 'x-switchyard-compliance': ' hipaa , gdpr ' });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers['x-switchyard-provider'], 'euh');
    // And with euh down, hipaa requests fail there rather than go anywhere else.
    await f.mocks.euh.config({ status: 503 });
    const bad = await f.chat({ model: 'chat', messages: userMsg('z') }, KINDS.hipaa.headers);
    assert.equal(bad.status, 502, bad.text);
    assert.equal(bad.headers['x-switchyard-chain'], 'm-euh:503');
    assert.deepEqual(await f.counts(), { us: 0, eu: 0, euh: 2 });
}));

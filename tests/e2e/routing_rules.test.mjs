// tests/e2e/routing_rules.test.mjs - which route and model a request gets, end to end:
// match conditions (tags from the header and from metadata keys, prompt-size bounds, tools,
// JSON mode, stream, keywords in the last user message or the system prompt, regex, model
// globs), first match wins, direct model names, default_route, 404; a 70/30 weighted split
// over 10k requests; and the strategies (priority, lowest_cost, cache_affinity, least_busy,
// lowest_latency) with one mock process per provider where speed or health matters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withFleet, provider, userMsg, pool, tally, SLOW } from './lib/fleet.mjs';
import { openai } from './lib/harness.mjs';

const T = (s) => ({ timeout: s * 1000 * SLOW });

const MED = 'a medium sized question about nothing in particular, '.repeat(4); // ~210 bytes: 55 tokens
const LONG = 'x'.repeat(4000); // 1003 tokens by the proxy's estimate
const NOT_LONG = 'y'.repeat(1000); // 253 tokens

// Every model lives on the one mock "m", under its own upstream name.
const RULE_MODELS = ['tagged', 'long', 'tools', 'json', 'stream', 'code', 'pirate', 'sql', 'fix',
    'short', 'auto', 'glob', 'default'];

function rulesPolicy(m, { defaultRoute = true } = {}) {
    const auto = (name, match, model = name) => ({
        name, match: { model: 'auto*', ...match }, targets: [{ model: `m-${model}` }],
    });
    const p = {
        providers: [provider('m', m.m)],
        models: RULE_MODELS.map((n) => ({ name: `m-${n}`, provider: 'm', upstream_model: `${n}-up` })),
        routes: [
            auto('tagged', { tags: ['vip', 'beta'] }),
            auto('long', { min_prompt_tokens: 500 }),
            auto('tools', { has_tools: true }),
            auto('json', { json_mode: true }),
            auto('stream', { stream: true }),
            auto('code', { keywords: { any: ['refactor', 'stack trace'], in: 'last_user' } }),
            auto('pirate', { keywords: { any: ['pirate'], in: 'system' } }),
            auto('sql', { keywords: [{ any: ['sql'] }, { any: ['postgres', 'mysql'] }] }),
            auto('fix', { regex: { pattern: '^(please )?fix( the)? (bug|crash)', in: 'last_user' } }),
            auto('short', { max_prompt_tokens: 20 }),
            { name: 'auto', match: { model: 'auto' }, targets: [{ model: 'm-auto' }] },
            { name: 'glob', match: { model: 'gpt-4*' }, targets: [{ model: 'm-glob' }] },
            { name: 'catchall', match: { model: 'catchall' }, targets: [{ model: 'm-default' }] },
        ],
    };
    if (defaultRoute) p.default_route = 'catchall';
    return p;
}

const TOOLS = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];

// [what, body, headers, expected route, expected model]
function ruleCases() {
    const u = (text, extra = {}) => ({ model: 'auto', messages: userMsg(text), ...extra });
    return [
        ['plain auto', u(MED), {}, 'auto', 'm-auto'],
        ['short prompt (max_prompt_tokens 20)', u('hi'), {}, 'short', 'm-short'],
        ['tags from the header', u(MED), { 'x-switchyard-tags': 'vip, beta' }, 'tagged', 'm-tagged'],
        ['one tag of two is not enough', u(MED), { 'x-switchyard-tags': 'vip' }, 'auto', 'm-auto'],
        ['tags from metadata keys', u(MED, { metadata: { vip: 'yes', beta: '1' } }), {}, 'tagged', 'm-tagged'],
        ['header and metadata tags together', u(MED, { metadata: { beta: 'x' } }), { 'x-switchyard-tags': 'vip' }, 'tagged', 'm-tagged'],
        ['metadata values are not tags', u(MED, { metadata: { k1: 'vip', k2: 'beta' } }), {}, 'auto', 'm-auto'],
        ['min_prompt_tokens 500', u(LONG), {}, 'long', 'm-long'],
        ['below min_prompt_tokens', u(NOT_LONG), {}, 'auto', 'm-auto'],
        ['has_tools', u(MED, { tools: TOOLS }), {}, 'tools', 'm-tools'],
        ['json_mode json_object', u(MED, { response_format: { type: 'json_object' } }), {}, 'json', 'm-json'],
        ['json_mode json_schema', u(MED, { response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'object' } } } }), {}, 'json', 'm-json'],
        ['response_format text is not json_mode', u(MED, { response_format: { type: 'text' } }), {}, 'auto', 'm-auto'],
        ['keyword in the last user message, any case', u(`Please REFACTOR this module. ${MED}`), {}, 'code', 'm-code'],
        ['a two-word keyword', u(`here is the stack trace: ${MED}`), {}, 'code', 'm-code'],
        ['keyword only in an earlier user message', {
            model: 'auto',
            messages: [{ role: 'user', content: 'refactor this' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: MED }],
        }, {}, 'auto', 'm-auto'],
        ['keyword in the system prompt', {
            model: 'auto', messages: [{ role: 'system', content: 'Talk like a Pirate.' }, { role: 'user', content: MED }],
        }, {}, 'pirate', 'm-pirate'],
        ['a system-prompt keyword in the user message does not count', u(`pirate ${MED}`), {}, 'auto', 'm-auto'],
        ['two keyword rules that both hold', u(`tune this sql for postgres ${MED}`), {}, 'sql', 'm-sql'],
        ['two keyword rules, one holds', u(`tune this sql please ${MED}`), {}, 'auto', 'm-auto'],
        ['regex, anchored', u(`Please fix the crash in main.c ${MED}`), {}, 'fix', 'm-fix'],
        ['regex, other form', u(`fix bug 12 ${MED}`), {}, 'fix', 'm-fix'],
        ['regex does not match mid-text', u(`we should fix the bug ${MED}`), {}, 'auto', 'm-auto'],
        ['first match wins: tags before tools, stream and code', u(`refactor ${MED}`, { tools: TOOLS }),
            { 'x-switchyard-tags': 'beta,vip' }, 'tagged', 'm-tagged'],
        ['first match wins: long before tools', u(LONG, { tools: TOOLS }), {}, 'long', 'm-long'],
        ['first match wins: a glob route before the exact one', u('hi', { tools: TOOLS }), {}, 'tools', 'm-tools'],
        ['model glob auto*', { model: 'auto-code', messages: userMsg(`refactor ${MED}`) }, {}, 'code', 'm-code'],
        ['model glob gpt-4*', { model: 'gpt-4o', messages: userMsg(MED) }, {}, 'glob', 'm-glob'],
        ['model glob gpt-4* again', { model: 'gpt-4-turbo', messages: userMsg(MED) }, {}, 'glob', 'm-glob'],
        ['a model name goes straight to the model', { model: 'm-json', messages: userMsg(MED) }, {}, 'direct', 'm-json'],
        ['model names are case-sensitive', { model: 'M-JSON', messages: userMsg(MED) }, {}, 'catchall', 'm-default'],
        ['no route, no model: default_route', { model: 'gpt-3.5', messages: userMsg(MED) }, {}, 'catchall', 'm-default'],
        ['auto-x without conditions: default_route', { model: 'auto-x', messages: userMsg(MED) }, {}, 'catchall', 'm-default'],
        ['the default route by its own name', { model: 'catchall', messages: userMsg(MED) }, {}, 'catchall', 'm-default'],
    ];
}

test('match conditions, first match wins, direct names, default_route', T(30), (t) => withFleet({
    mocks: ['m'],
    policy: (m) => rulesPolicy(m),
}, async (f) => {
    const cases = ruleCases();
    const want = {};
    for (const [what, body, headers, route, model] of cases) {
        const r = await f.chat(body, headers);
        assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
        assert.equal(r.headers['x-switchyard-route'], route, `${what}: route`);
        assert.equal(r.headers['x-switchyard-model'], model, `${what}: model`);
        assert.equal(r.headers['x-switchyard-provider'], 'm');
        assert.equal(r.json.model, model.replace(/^m-/, '') + '-up', `${what}: the upstream model name was sent`);
        want[`${model.replace(/^m-/, '')}-up`] = (want[`${model.replace(/^m-/, '')}-up`] || 0) + 1;
    }
    // stream: true through the SDK.
    const { data: stream, response } = await f.client().chat.completions
        .create({ model: 'auto', messages: userMsg(MED), stream: true }).withResponse();
    let text = '';
    for await (const ch of stream) text += ch.choices[0]?.delta?.content || '';
    assert.equal(text, `echo: ${MED}`);
    assert.equal(response.headers.get('x-switchyard-route'), 'stream');
    assert.equal(response.headers.get('x-switchyard-model'), 'm-stream');
    want['stream-up'] = 1;
    // The provider saw exactly these upstream models.
    const s = await f.mocks.m.stats();
    assert.deepEqual(s.by_model, want);
    t.diagnostic(`${cases.length + 1} cases`);
}));

test('tags are compared ignoring ASCII case (docs/policy.md)', T(20), () => withFleet({
    mocks: ['m'],
    policy: (m) => rulesPolicy(m),
}, async (f) => {
    const r = await f.chat({ model: 'auto', messages: userMsg(MED) }, { 'x-switchyard-tags': 'VIP,Beta' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-switchyard-route'], 'tagged',
                 'tags VIP,Beta match a route for tags [vip, beta]');
    const other = await f.chat({ model: 'auto', messages: userMsg(MED) }, { 'x-switchyard-tags': 'VIPS,Beta' });
    assert.equal(other.headers['x-switchyard-route'], 'auto', 'a different tag does not match');
}));

test('unknown model without a default_route: 404 model_not_found, nothing sent upstream', T(20), () => withFleet({
    mocks: ['m'],
    policy: (m) => rulesPolicy(m, { defaultRoute: false }),
}, async (f) => {
    for (const model of ['gpt-3.5', 'auto-x', 'M-JSON', 'catchall2']) {
        const r = await f.chat({ model, messages: userMsg(MED) });
        assert.equal(r.status, 404, `${model}: ${r.text}`);
        assert.equal(r.json?.error?.code, 'model_not_found');
        assert.equal(r.json?.error?.param, 'model');
        assert.ok(r.json.error.message.includes(model), r.json.error.message);
    }
    await assert.rejects(
        f.client().chat.completions.create({ model: 'nope', messages: userMsg('x') }),
        (e) => e instanceof openai.NotFoundError && e.code === 'model_not_found');
    // Still routed: a known model, and auto.
    const r = await f.chat({ model: 'auto', messages: userMsg(MED) });
    assert.equal(r.headers['x-switchyard-route'], 'auto');
    assert.equal(await f.mocks.m.count(), 1);
}));

test('a 70/30 weighted split over 10k requests', T(55), (t) => withFleet({
    mocks: ['m'],
    policy: (m) => ({
        providers: [provider('m', m.m)],
        models: [
            { name: 'w-a', provider: 'm', upstream_model: 'a-up' },
            { name: 'w-b', provider: 'm', upstream_model: 'b-up' },
            { name: 'w-idle', provider: 'm', upstream_model: 'idle-up' },
        ],
        routes: [{
            name: 'split', match: { model: 'split' },
            targets: [{ model: 'w-a', weight: 70 }, { model: 'w-b', weight: 30 }, { model: 'w-idle', weight: 0 }],
        }],
    }),
}, async (f) => {
    const N = 10000;
    const t0 = Date.now();
    const models = await pool(N, 32, async (i) => {
        const r = await f.chat({ model: 'split', messages: userMsg(`s${i}`) });
        if (r.status !== 200 || r.json?.choices?.[0]?.message?.content !== `echo: s${i}`) {
            throw new Error(`request ${i}: ${r.status} ${r.text}`);
        }
        return r.headers['x-switchyard-model'];
    });
    const secs = (Date.now() - t0) / 1000;
    const c = tally(models, (m) => m);
    const share = (c['w-a'] || 0) / N;
    t.diagnostic(`${N} requests in ${secs.toFixed(1)} s: ${JSON.stringify(c)}, w-a share ${share.toFixed(4)}`);
    assert.equal((c['w-a'] || 0) + (c['w-b'] || 0), N, `only w-a and w-b: ${JSON.stringify(c)}`);
    // sd of the share is sqrt(0.21 / 10000) = 0.0046: +-0.02 is over 4 sd.
    assert.ok(Math.abs(share - 0.7) <= 0.02, `w-a share ${share} (70/30 split)`);
    const s = await f.mocks.m.stats();
    assert.deepEqual(s.by_model, { 'a-up': c['w-a'], 'b-up': c['w-b'] }, 'the provider saw the same split');
}));

// ---- strategies ------------------------------------------------------------------------

test('priority: the first healthy target takes everything; a broken one is skipped', T(30), () => withFleet({
    mocks: ['one', 'two'],
    policy: (m) => ({
        providers: [provider('p1', m.one), provider('p2', m.two)],
        models: [{ name: 'p-one', provider: 'p1' }, { name: 'p-two', provider: 'p2' }],
        routes: [{ name: 'prio', match: { model: 'prio' }, strategy: 'priority',
                   targets: [{ model: 'p-one', weight: 1 }, { model: 'p-two', weight: 1000 }] }],
        resilience: { breaker: { failures: 2, open_ms: 60000 }, retry_budget: { ratio: 1, min_per_second: 100 } },
    }),
}, async (f) => {
    const res = await pool(40, 4, (i) => f.chat({ model: 'prio', messages: userMsg(`p${i}`) }));
    for (const r of res) {
        assert.equal(r.status, 200);
        assert.equal(r.headers['x-switchyard-model'], 'p-one', 'weights are ignored: the first target wins');
    }
    assert.equal(await f.mocks.two.count(), 0);
    await f.mocks.one.config({ status: 503 });
    const after = [];
    for (let i = 0; i < 20; i++) {
        const r = await f.chat({ model: 'prio', messages: userMsg(`q${i}`) });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.headers['x-switchyard-model'], 'p-two');
        after.push(r.headers['x-switchyard-chain']);
    }
    assert.deepEqual(after.slice(0, 2), ['p-one:503,p-two:200', 'p-one:503,p-two:200']);
    assert.deepEqual(new Set(after.slice(2)), new Set(['p-two:200']), 'breaker open: p-one skipped');
    assert.equal(await f.mocks.one.count(), 40 + 2);
}));

test('lowest_cost: the cheapest model for the request wins every time', T(30), () => withFleet({
    mocks: ['m'],
    policy: (m) => ({
        providers: [provider('m', m.m)],
        models: [
            { name: 'c-exp', provider: 'm', upstream_model: 'exp-up', pricing: { input_per_mtok: 5, output_per_mtok: 15 } },
            { name: 'c-mid', provider: 'm', upstream_model: 'mid-up', pricing: { input_per_mtok: 1, output_per_mtok: 2 } },
            { name: 'c-cheap', provider: 'm', upstream_model: 'cheap-up', pricing: { input_per_mtok: 0.1, output_per_mtok: 0.2 } },
            // Cheap to read, dear to write, and the other way round.
            { name: 'c-in', provider: 'm', upstream_model: 'in-up', pricing: { input_per_mtok: 10, output_per_mtok: 0.1 } },
            { name: 'c-out', provider: 'm', upstream_model: 'out-up', pricing: { input_per_mtok: 0.1, output_per_mtok: 10 } },
        ],
        routes: [
            { name: 'cost', match: { model: 'cost' }, strategy: 'lowest_cost',
              targets: [{ model: 'c-exp' }, { model: 'c-mid' }, { model: 'c-cheap' }] },
            { name: 'cost2', match: { model: 'cost2' }, strategy: 'lowest_cost',
              targets: [{ model: 'c-in' }, { model: 'c-out' }] },
        ],
    }),
}, async (f) => {
    const res = await pool(30, 4, (i) => f.chat({ model: 'cost', messages: userMsg(`c${i} ${MED}`) }));
    assert.deepEqual(tally(res, (r) => `${r.status} ${r.headers['x-switchyard-model']}`), { '200 c-cheap': 30 });
    // A long prompt with a small output limit: reading dominates.
    const a = await f.chat({ model: 'cost2', messages: userMsg(LONG), max_tokens: 10 });
    assert.equal(a.headers['x-switchyard-model'], 'c-out', 'long prompt, max_tokens 10: c-out is cheaper');
    // A tiny prompt with a big output limit: writing dominates.
    const b = await f.chat({ model: 'cost2', messages: userMsg('hi'), max_tokens: 2000 });
    assert.equal(b.headers['x-switchyard-model'], 'c-in', 'short prompt, max_tokens 2000: c-in is cheaper');
    const s = await f.mocks.m.stats();
    assert.deepEqual(s.by_model, { 'cheap-up': 30, 'out-up': 1, 'in-up': 1 });
}));

test('cache_affinity: one conversation sticks to one model; different prompts spread', T(30), () => withFleet({
    mocks: ['m'],
    policy: (m) => ({
        providers: [provider('m', m.m)],
        models: ['a1', 'a2', 'a3'].map((n) => ({ name: n, provider: 'm', upstream_model: `${n}-up` })),
        routes: [{ name: 'agent', match: { model: 'agent' }, strategy: 'cache_affinity',
                   targets: [{ model: 'a1' }, { model: 'a2' }, { model: 'a3' }] }],
    }),
}, async (f) => {
    const system = { role: 'system', content: 'You are a careful agent. '.repeat(40) };
    // One conversation growing over 50 turns (same system prompt, same first user message).
    const convo = [system, { role: 'user', content: 'task: tidy the repository' }];
    const seen = [];
    for (let i = 0; i < 50; i++) {
        const r = await f.chat({ model: 'agent', messages: [...convo, { role: 'user', content: `step ${i}` }] });
        assert.equal(r.status, 200, r.text);
        seen.push(r.headers['x-switchyard-model']);
        convo.push({ role: 'user', content: `step ${i}` }, { role: 'assistant', content: `done ${i}` });
    }
    assert.equal(new Set(seen).size, 1, `one model for the conversation: ${JSON.stringify(tally(seen, (x) => x))}`);
    // Concurrent requests of the same conversation agree too.
    const again = await pool(20, 8, (i) => f.chat({ model: 'agent', messages: [system, { role: 'user', content: 'task: tidy the repository' }, { role: 'user', content: `p${i}` }] }));
    assert.deepEqual(new Set(again.map((r) => r.headers['x-switchyard-model'])), new Set(seen));
    // 40 different system prompts: spread over the targets.
    const spread = await pool(40, 8, (i) => f.chat({
        model: 'agent',
        messages: [{ role: 'system', content: `You are agent number ${i}.` }, { role: 'user', content: 'hello' }],
    }));
    const c = tally(spread, (r) => r.headers['x-switchyard-model']);
    assert.ok(Object.keys(c).length >= 2, `different prompts use several models: ${JSON.stringify(c)}`);
    for (const k of Object.keys(c)) assert.ok(['a1', 'a2', 'a3'].includes(k));
}));

test('least_busy: with a slow target, traffic shifts to the other', T(30), (t) => withFleet({
    mocks: ['slow', 'fast'],
    policy: (m) => ({
        providers: [provider('ps', m.slow), provider('pf', m.fast)],
        models: [{ name: 'lb-slow', provider: 'ps' }, { name: 'lb-fast', provider: 'pf' }],
        routes: [{ name: 'busy', match: { model: 'busy' }, strategy: 'least_busy',
                   targets: [{ model: 'lb-slow' }, { model: 'lb-fast' }] }],
    }),
}, async (f) => {
    await f.mocks.slow.config({ latency_ms: 500 });
    const models = [];
    const t0 = Date.now();
    await pool(8, 8, async () => {
        while (Date.now() - t0 < 2000) {
            const r = await f.chat({ model: 'busy', messages: userMsg('lb') });
            assert.equal(r.status, 200, r.text);
            models.push(r.headers['x-switchyard-model']);
        }
    });
    const c = tally(models, (m) => m);
    const slowShare = (c['lb-slow'] || 0) / models.length;
    t.diagnostic(`${models.length} requests: ${JSON.stringify(c)}`);
    assert.ok(models.length >= 50, `${models.length} requests`);
    assert.ok(slowShare < 0.25, `the slow target got ${(100 * slowShare).toFixed(1)}% (${JSON.stringify(c)})`);
    assert.ok((c['lb-slow'] || 0) >= 1, 'the slow target still gets its share when it is free');
    assert.equal(await f.mocks.fast.count(), c['lb-fast']);
}));

test('lowest_latency: after warm-up most traffic goes to the fast target', T(30), (t) => withFleet({
    mocks: ['slow', 'fast'],
    policy: (m) => ({
        providers: [provider('ps', m.slow), provider('pf', m.fast)],
        models: [{ name: 'll-slow', provider: 'ps' }, { name: 'll-fast', provider: 'pf' }],
        routes: [{ name: 'quick', match: { model: 'quick' }, strategy: 'lowest_latency',
                   targets: [{ model: 'll-slow' }, { model: 'll-fast' }] }],
    }),
}, async (f) => {
    await f.mocks.slow.config({ latency_ms: 150 });
    const warm = [];
    for (let i = 0; i < 10; i++) {
        const r = await f.chat({ model: 'quick', messages: userMsg(`w${i}`) });
        assert.equal(r.status, 200, r.text);
        warm.push(r.headers['x-switchyard-model']);
    }
    assert.ok(warm.includes('ll-slow') && warm.includes('ll-fast'),
              `warm-up explores both targets: ${JSON.stringify(warm)}`);
    const res = await pool(100, 4, (i) => f.chat({ model: 'quick', messages: userMsg(`m${i}`) }));
    const c = tally(res, (r) => r.headers['x-switchyard-model']);
    t.diagnostic(`after warm-up: ${JSON.stringify(c)}`);
    assert.ok((c['ll-fast'] || 0) >= 90, `the fast target got ${c['ll-fast']} of 100: ${JSON.stringify(c)}`);
}));

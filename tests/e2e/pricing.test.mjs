// tests/e2e/pricing.test.mjs - the pricing catalogue (--pricing FILE|URL): a control plane
// applies the catalogue's prices to the active policy as a new version, a managed proxy
// prices answers with them (x-switchyard-cost-usd, time-of-day windows included), a changed
// file is followed within seconds, a broken one changes nothing and is reported by
// GET /v1/pricing, an operator's push gets the prices re-applied, nothing is pushed when
// nothing changed, a URL catalogue works, and a control plane starts without its catalogue.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { newCluster, basePolicy, waitFor, sleep, ctl, SLOW } from './lib/cluster.mjs';
import { postJson } from './lib/harness.mjs';

const T = { timeout: 60000 * SLOW };
const NOTE = /^pricing: catalogue (\S+) \(sha256 ([0-9a-f]{12})\) changed (\d+) models? \((.*)\) from version (\d+)$/;

let c;
let mock;
let cp; // --pricing FILE --pricing-refresh 1
let px; // follows cp
let catPath;
let policyPath;

// "HH:MM" <minutes> from now (UTC), wrapped into the day.
function hhmm(minutes) {
    const d = new Date(Date.now() + minutes * 60000);
    return `${String(d.getUTCHours()).padStart(2, '0')}:${String(d.getUTCMinutes()).padStart(2, '0')}`;
}

// The window around now, fixed once so that the catalogue's bytes do not change by the minute.
const WIN_START = hhmm(-90);
const WIN_END = hhmm(90);

// The catalogue: mock-a is a-upstream (any provider), mock-b is b-upstream at provider
// "mock", with a window around now (three hours wide, so the test never crosses an edge).
function catalogue({ aIn = 100, aOut = 300, bIn = 1000, bOut = 2000, winIn = 7, winOut = 9 } = {}) {
    return {
        models: [
            { model: 'a-upstream', input_per_mtok: aIn, output_per_mtok: aOut },
            {
                model: 'b-upstream',
                provider: 'mock',
                input_per_mtok: bIn,
                output_per_mtok: bOut,
                windows: [{ start: WIN_START, end: WIN_END, input_per_mtok: winIn, output_per_mtok: winOut }],
            },
            { model: 'not-in-the-policy', input_per_mtok: 1, output_per_mtok: 1 },
        ],
    };
}

function writeFile(p, content) {
    const text = typeof content === 'string' ? content : JSON.stringify(content, null, 2);
    fs.writeFileSync(`${p}.tmp`, text);
    fs.renameSync(`${p}.tmp`, p); // a refresh never reads half a file
}

async function pricing(cpx) {
    const r = await cpx.api('/v1/pricing');
    assert.equal(r.status, 200, r.body);
    return r.json;
}

async function activeVersion(cpx) {
    const r = await cpx.api('/v1/policies/active');
    assert.equal(r.status, 200, r.body);
    return r.json;
}

function modelOf(version, name) {
    return version.compiled.models.find((m) => m.name === name);
}

// Waits until the active version satisfies pred(version); returns it.
async function waitActive(cpx, pred, what, timeoutMs = 10000) {
    let last;
    return waitFor(async () => {
        last = await activeVersion(cpx);
        return pred(last) ? last : null;
    }, { timeoutMs, intervalMs: 100, what }).catch((e) => {
        throw new Error(`${e.message}\nlast active: ${JSON.stringify(last && { version: last.version, note: last.note })}`);
    });
}

// A chat completion through the proxy: its cost header, usage and policy version.
async function chat(model) {
    const r = await postJson(`${px.url}/v1/chat/completions`,
                             { model, messages: [{ role: 'user', content: 'price this please' }] });
    assert.equal(r.status, 200, r.body);
    return {
        cost: Number(r.headers.get('x-switchyard-cost-usd')),
        usage: r.json.usage,
        version: Number(r.headers.get('x-switchyard-policy-version')),
    };
}

// The cost of <usage> at prices in/out (USD per million tokens).
function costOf(usage, inPrice, outPrice) {
    const cached = usage.prompt_tokens_details?.cached_tokens || 0;
    return ((usage.prompt_tokens - cached) * inPrice + cached * inPrice +
            usage.completion_tokens * outPrice) / 1e6;
}

function assertCost(got, usage, inPrice, outPrice, what) {
    assert.ok(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0, `${what}: usage ${JSON.stringify(usage)}`);
    const want = costOf(usage, inPrice, outPrice);
    assert.ok(Math.abs(got - want) < 1e-8, `${what}: cost ${got}, want ${want} (usage ${JSON.stringify(usage)})`);
}

before(async () => {
    c = newCluster();
    try {
        mock = await c.mock();
        policyPath = path.join(c.dir, 'policy.json');
        catPath = path.join(c.dir, 'prices.yaml');
        writeFile(policyPath, basePolicy(mock.baseURL));
        writeFile(catPath, catalogue());
        cp = await c.control({
            id: 'cp-pricing',
            bootstrap: policyPath,
            args: ['--pricing', catPath, '--pricing-refresh', '1'],
        });
        px = await c.proxy(cp, { nodeId: 'px-pricing' });
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

test('the active version carries the catalogue prices, and the proxy charges them', T, () => c.guard(async () => {
    const v = await waitActive(cp, (a) => a.version === 2, 'version 2 from the catalogue');
    const m = NOTE.exec(v.note);
    assert.ok(m, `note: ${v.note}`);
    assert.equal(m[1], catPath);
    assert.equal(m[3], '2');
    assert.equal(m[4], 'mock-a, mock-b');
    assert.equal(m[5], '1');
    assert.deepEqual(modelOf(v, 'mock-a').pricing,
                     { input_per_mtok: 100, output_per_mtok: 300, cached_input_per_mtok: 0 });
    const b = modelOf(v, 'mock-b').pricing;
    assert.equal(b.input_per_mtok, 1000);
    assert.equal(b.windows.length, 1);
    assert.deepEqual(b.windows[0], { start: WIN_START, end: WIN_END, input_per_mtok: 7, output_per_mtok: 9,
                                     cached_input_per_mtok: 0 });

    const p = await pricing(cp);
    assert.equal(p.source, catPath);
    assert.equal(p.refresh_s, 1);
    assert.equal(p.last_error, null);
    assert.match(p.sha256, /^[0-9a-f]{64}$/);
    assert.equal(p.sha256.slice(0, 12), m[2]);
    assert.equal(typeof p.loaded_unix_ms, 'number');
    assert.ok(p.last_attempt_unix_ms >= p.loaded_unix_ms);
    assert.equal(p.models.length, 3);
    assert.deepEqual(p.models[0], { model: 'a-upstream', input_per_mtok: 100, output_per_mtok: 300,
                                    cached_input_per_mtok: 0 });
    assert.equal(p.models[1].provider, 'mock');
    assert.equal(p.reconcile.last_pushed_version, 2);
    assert.equal(p.reconcile.last_error, null);

    await px.waitVersion(2);
    const a = await chat('mock-a');
    assert.equal(a.version, 2);
    assertCost(a.cost, a.usage, 100, 300, 'mock-a at the base price');
    const w = await chat('mock-b');
    assertCost(w.cost, w.usage, 7, 9, 'mock-b inside its window');
}));

test('nothing changed: no new version over several refreshes', T, () => c.guard(async () => {
    const before = (await cp.policies()).versions.length;
    const active = (await activeVersion(cp)).version;
    writeFile(catPath, catalogue()); // the same bytes again
    await sleep(3500);
    const after = await cp.policies();
    assert.equal(after.versions.length, before, JSON.stringify(after.versions.map((v) => v.note)));
    assert.equal(after.active, active);
    const p = await pricing(cp);
    assert.ok(Date.now() - p.last_attempt_unix_ms < 2500 * SLOW, 'still refreshing');
    assert.equal(p.last_error, null);
}));

test('a changed file is a new version within seconds, and the proxy follows', T, () => c.guard(async () => {
    const prev = await activeVersion(cp);
    writeFile(catPath, catalogue({ aIn: 50, aOut: 70 }));
    const v = await waitActive(cp, (a) => a.version > prev.version, 'a version after the change', 5000);
    const m = NOTE.exec(v.note);
    assert.ok(m, `note: ${v.note}`);
    assert.equal(m[3], '1');
    assert.equal(m[4], 'mock-a');
    assert.equal(m[5], String(prev.version));
    assert.equal(modelOf(v, 'mock-a').pricing.input_per_mtok, 50);
    assert.equal(modelOf(v, 'mock-b').pricing.input_per_mtok, 1000);
    await px.waitVersion(v.version);
    const a = await chat('mock-a');
    assertCost(a.cost, a.usage, 50, 70, 'mock-a after the change');
}));

test('a broken catalogue keeps the old prices and /v1/pricing says why', T, () => c.guard(async () => {
    const before = await cp.policies();
    const p0 = await pricing(cp);
    const bad = catalogue({ aIn: 1 });
    bad.models[0].output_per_mtok = -1;
    bad.models[1].windows.push({ start: '25:00', end: '01:00' });
    writeFile(catPath, bad);
    let p = await waitFor(async () => {
        const s = await pricing(cp);
        return s.last_error ? s : null;
    }, { timeoutMs: 5000, what: 'last_error' });
    assert.match(p.last_error, /^models\[0\]\.output_per_mtok: must be between 0 and 1000000, got -1$/m);
    assert.match(p.last_error, /^models\[1\]\.windows\[1\]\.start: expected a time of day "HH:MM".*got "25:00"$/m);
    assert.equal(p.sha256, p0.sha256, 'the previous catalogue is kept');
    assert.deepEqual(p.models, p0.models);

    writeFile(catPath, 'models:\n  - {model: a-upstream, input_per_mtok: 1\n');
    p = await waitFor(async () => {
        const s = await pricing(cp);
        return /line \d+, column \d+/.test(s.last_error || '') ? s : null;
    }, { timeoutMs: 5000, what: 'a syntax error in last_error' });
    assert.equal(p.sha256, p0.sha256);

    fs.rmSync(catPath);
    p = await waitFor(async () => {
        const s = await pricing(cp);
        return /No such file or directory/.test(s.last_error || '') ? s : null;
    }, { timeoutMs: 5000, what: 'a missing file in last_error' });
    assert.ok(p.last_error.includes(catPath), p.last_error);

    await sleep(1500);
    assert.deepEqual((await cp.policies()).versions.length, before.versions.length, 'no version pushed');
    const a = await chat('mock-a');
    assertCost(a.cost, a.usage, 50, 70, 'mock-a keeps its price');

    // Back to the last good content: loaded again, and nothing to push.
    writeFile(catPath, catalogue({ aIn: 50, aOut: 70 }));
    await waitFor(async () => (await pricing(cp)).last_error === null, { timeoutMs: 5000, what: 'error cleared' });
    await sleep(1500);
    assert.equal((await cp.policies()).versions.length, before.versions.length);
}));

test("an operator's push gets the catalogue prices re-applied, once", T, () => c.guard(async () => {
    const pushed = basePolicy(mock.baseURL); // its own prices: 1/2 and 3/6
    pushed.routes[0].targets[0].weight = 9;
    const r = await cp.push(pushed, { note: 'operator' });
    const v = await waitActive(cp, (a) => a.version > r.version, 'prices re-applied', 5000);
    const m = NOTE.exec(v.note);
    assert.ok(m, `note: ${v.note}`);
    assert.equal(m[4], 'mock-a, mock-b');
    assert.equal(m[5], String(r.version));
    assert.equal(modelOf(v, 'mock-a').pricing.input_per_mtok, 50);
    assert.equal(v.compiled.routes[0].targets[0].weight, 9, "the operator's change stays");
    await sleep(2500);
    const list = await cp.policies();
    assert.equal(list.active, v.version, 'no loop');
    assert.equal(list.versions[0].version, v.version);
    await px.waitVersion(v.version);
    const b = await chat('mock-b');
    assertCost(b.cost, b.usage, 7, 9, 'mock-b inside its window');
}));

test('switchyardctl pricing shows the catalogue', T, () => c.guard(async () => {
    const r = await ctl(['--server', cp.url, 'pricing']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /a-upstream/);
    assert.match(r.stdout, /b-upstream/);
    assert.ok(r.stdout.includes(catPath), r.stdout);
    const j = await ctl(['--server', cp.url, '--json', 'pricing']);
    assert.equal(j.code, 0, j.stderr);
    assert.equal(JSON.parse(j.stdout).models.length, 3);
}));

test('a URL catalogue, and a control plane that starts without its catalogue', T, () => c.guard(async () => {
    let body = JSON.stringify(catalogue({ aIn: 11, aOut: 12 }));
    let status = 200;
    let hits = 0;
    let auth;
    const srv = http.createServer((req, res) => {
        hits++;
        auth = req.headers.authorization;
        if (req.url !== '/prices.json?token=s3cret') {
            res.writeHead(404).end('no');
            return;
        }
        res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const url = `http://ops:pa55@127.0.0.1:${srv.address().port}/prices.json?token=s3cret`;
    try {
        const cpu = await c.control({ id: 'cp-url', bootstrap: policyPath,
                                      args: ['--pricing', url, '--pricing-refresh', '1'] });
        let v = await waitActive(cpu, (a) => a.version === 2, 'URL prices applied');
        assert.equal(modelOf(v, 'mock-a').pricing.input_per_mtok, 11);
        const m = NOTE.exec(v.note);
        assert.ok(m, v.note);
        assert.ok(!v.note.includes('s3cret') && !v.note.includes('pa55'), `no credentials in the note: ${v.note}`);
        assert.equal(auth, `Basic ${Buffer.from('ops:pa55').toString('base64')}`, 'user:password@ is sent');
        let p = await pricing(cpu);
        assert.equal(p.source, `http://127.0.0.1:${srv.address().port}/prices.json?...`);
        assert.equal(p.last_error, null);

        status = 503;
        p = await waitFor(async () => {
            const s = await pricing(cpu);
            return s.last_error ? s : null;
        }, { timeoutMs: 5000, what: 'HTTP error' });
        assert.match(p.last_error, /HTTP status 503/);
        assert.ok(!p.last_error.includes('s3cret'));
        assert.equal(modelOf(await activeVersion(cpu), 'mock-a').pricing.input_per_mtok, 11);

        status = 200;
        body = JSON.stringify(catalogue({ aIn: 13, aOut: 12 }));
        v = await waitActive(cpu, (a) => modelOf(a, 'mock-a').pricing.input_per_mtok === 13, 'new URL prices');
        assert.equal(v.version, 3);
        assert.ok(hits >= 3);

        // A catalogue that is not there at start: the control plane starts anyway.
        const later = path.join(c.dir, 'later.yaml');
        const cpl = await c.control({ id: 'cp-later', bootstrap: policyPath,
                                      args: ['--pricing', later, '--pricing-refresh', '1'] });
        p = await waitFor(async () => {
            const s = await pricing(cpl);
            return s.last_error ? s : null;
        }, { timeoutMs: 5000, what: 'start error' });
        assert.match(p.last_error, /No such file or directory/);
        assert.equal(p.sha256, null);
        assert.equal(p.loaded_unix_ms, null);
        assert.deepEqual(p.models, []);
        assert.equal((await activeVersion(cpl)).version, 1);
        writeFile(later, 'models: [{model: b-upstream, input_per_mtok: 4, output_per_mtok: 5}]\n');
        v = await waitActive(cpl, (a) => a.version === 2, 'prices once the file exists');
        assert.equal(modelOf(v, 'mock-b').pricing.input_per_mtok, 4);
        assert.equal(modelOf(v, 'mock-a').pricing.input_per_mtok, 1, 'no entry: unchanged');

        // Without --pricing the path says so.
        const cpn = await c.control({ id: 'cp-none' });
        const r = await cpn.api('/v1/pricing');
        assert.equal(r.status, 404, r.body);
        assert.equal(r.json.error.code, 'pricing_not_configured');
        assert.equal((await cp.api('/v1/pricing', { method: 'POST', body: {} })).status, 405);
        assert.equal((await cp.api('/v1/pricing/x')).status, 404);
    } finally {
        await new Promise((r) => srv.close(r));
    }
}));

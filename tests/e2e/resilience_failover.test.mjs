// tests/e2e/resilience_failover.test.mjs - failover as clients and providers see it, with one
// mock process per provider so each provider's own counters tell where requests went:
// fallback and the circuit breaker (open, probe, close), attempt timeouts, 429 with
// Retry-After (honoured up to max_retry_after_ms), the retry budget during a total outage,
// a stream that breaks after its first byte (an SSE error event, never a retry), and hedging
// (the slow attempt is cancelled at the provider).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    withFleet, provider, userMsg, pool, parseChain, waitFor, SLOW,
} from './lib/fleet.mjs';
import { openai } from './lib/harness.mjs';

const T = (s) => ({ timeout: s * 1000 * SLOW });

// Two providers, "p" on mock "primary" and "b" on mock "backup"; one model on each; routes
// from <routes>. The budget is out of the way (ratio 1: a failed attempt may always move on;
// in this data plane moving to a fallback spends the retry budget too) except where a test
// sets its own.
function twoProviders(routes, resilience = {}) {
    return (m) => ({
        providers: [provider('p', m.primary), provider('b', m.backup)],
        models: [
            { name: 'm-primary', provider: 'p', upstream_model: 'primary-up' },
            { name: 'm-backup', provider: 'b', upstream_model: 'backup-up' },
        ],
        routes,
        resilience: {
            retry_budget: { ratio: 1, min_per_second: 100 },
            ...resilience,
        },
    });
}

function hdr(r, name) {
    return r.headers[name];
}

// Asserts a 200 chat answer with the echoed text; returns it.
function ok200(r, text, what = '') {
    assert.equal(r.status, 200, `${what} status ${r.status}: ${r.text}`);
    assert.equal(r.json?.choices?.[0]?.message?.content, `echo: ${text}`, `${what} body ${r.text}`);
    return r;
}

test('primary 503: every request served by the fallback, the breaker opens, probes only, then recovers', T(50), (t) => withFleet({
    mocks: ['primary', 'backup'],
    policy: twoProviders(
        [{ name: 'svc', match: { model: 'svc' }, strategy: 'priority', targets: [{ model: 'm-primary' }], fallback: ['m-backup'] }],
        { breaker: { failures: 3, open_ms: 1500 } }),
}, async (f) => {
    const { primary, backup } = f.mocks;
    await primary.config({ status: 503 });

    // Phase A: 60 requests one after another. The first three fail at the primary and fall
    // back; then the breaker is open and the primary is not even tried.
    const a = [];
    const tA = Date.now();
    for (let i = 0; i < 60; i++) {
        const r = ok200(await f.chat({ model: 'svc', messages: userMsg(`a${i}`) }), `a${i}`, `A${i}`);
        assert.equal(hdr(r, 'x-switchyard-model'), 'm-backup', `A${i} served by the fallback`);
        assert.equal(hdr(r, 'x-switchyard-provider'), 'b');
        assert.equal(hdr(r, 'x-switchyard-route'), 'svc');
        a.push(r);
    }
    const elapsedA = Date.now() - tA;
    assert.equal(hdr(a[0], 'x-switchyard-chain'), 'm-primary:503,m-backup:200');
    assert.equal(hdr(a[0], 'x-switchyard-attempts'), '2');
    let s = await primary.stats();
    const primaryA = s.requests_total;
    // Each attempt at the primary shows in exactly one answer's chain.
    const chainedA = a.reduce((n, r) => n + parseChain(hdr(r, 'x-switchyard-chain')).filter((e) => e.model === 'm-primary').length, 0);
    assert.equal(primaryA, chainedA, 'primary requests == primary attempts in the chains');
    // 3 to open it, plus at most one probe per open_ms window.
    assert.ok(primaryA >= 3 && primaryA <= 3 + 1 + Math.floor(elapsedA / 1500),
              `primary saw ${primaryA} requests in ${elapsedA} ms (3 to open the breaker + probes)`);
    // Every answer either failed over from the primary (the three that opened the breaker,
    // and probes) or, breaker open, went straight to the backup.
    const chains = a.map((r) => `${hdr(r, 'x-switchyard-attempts')} ${hdr(r, 'x-switchyard-chain')}`);
    const direct = chains.filter((c) => c === '1 m-backup:200').length;
    const viaPrimary = chains.filter((c) => c === '2 m-primary:503,m-backup:200').length;
    assert.equal(direct + viaPrimary, 60, `chains: ${JSON.stringify(chains)}`);
    assert.equal(viaPrimary, primaryA);
    assert.deepEqual(chains.slice(0, 3), Array(3).fill('2 m-primary:503,m-backup:200'));
    assert.equal(chains[3], '1 m-backup:200', 'breaker open after 3 failures: the primary is skipped');
    assert.equal((await backup.stats()).by_model['backup-up'], 60);

    // Phase B: 2.5 s of continuous traffic, 4 at a time. The breaker lets one probe through
    // per open_ms (1.5 s); each fails and re-opens it. Clients still see no error.
    const before = primaryA;
    const tB = Date.now();
    let nB = 0;
    await pool(4, 4, async () => {
        while (Date.now() - tB < 2500) {
            const i = nB++;
            const r = ok200(await f.chat({ model: 'svc', messages: userMsg(`b${i}`) }), `b${i}`, `B${i}`);
            assert.equal(hdr(r, 'x-switchyard-model'), 'm-backup');
        }
    });
    const elapsedB = Date.now() - tB;
    s = await primary.stats();
    const probes = s.requests_total - before;
    assert.ok(nB >= 20, `only ${nB} requests in the window`);
    assert.ok(probes >= 1, `at least one half-open probe in ${elapsedB} ms (got ${probes})`);
    assert.ok(probes <= 1 + Math.ceil(elapsedB / 1500),
              `primary saw ${probes} requests during ${elapsedB} ms of traffic (${nB} requests): only probes`);
    assert.equal(s.in_flight, 0);
    t.diagnostic(`A: primary saw ${primaryA} of 60 in ${elapsedA} ms; B: ${probes} probe(s) in ${elapsedB} ms of ${nB} requests`);

    // Phase C: the primary recovers; after the open window a probe succeeds and traffic
    // returns to it.
    await primary.reset();
    const tC = Date.now();
    let back;
    await waitFor(async () => {
        const r = ok200(await f.chat({ model: 'svc', messages: userMsg('c') }), 'c', 'C');
        if (hdr(r, 'x-switchyard-model') === 'm-primary') back = r;
        return back;
    }, { timeoutMs: 1500 + 4000, intervalMs: 20, what: 'traffic back on the primary' });
    assert.ok(Date.now() - tC <= (1500 + 4000) * SLOW);
    t.diagnostic(`C: back on the primary ${Date.now() - tC} ms after it recovered`);
    for (let i = 0; i < 20; i++) {
        const r = ok200(await f.chat({ model: 'svc', messages: userMsg(`d${i}`) }), `d${i}`, `D${i}`);
        assert.equal(hdr(r, 'x-switchyard-model'), 'm-primary', `D${i} on the recovered primary`);
        assert.equal(hdr(r, 'x-switchyard-chain'), 'm-primary:200');
    }
    assert.equal((await primary.stats()).by_model['primary-up'], 21);
    assert.match(f.proxy.stderr, /circuit breaker for p\/primary-up opened/);
    assert.match(f.proxy.stderr, /circuit breaker for p\/primary-up closed/);
}));

test('a primary slower than attempt_ms: the fallback answers within timeout + fallback time', T(30), (t) => withFleet({
    mocks: ['primary', 'backup'],
    policy: twoProviders(
        [{ name: 'slow', match: { model: 'slow' }, strategy: 'priority', targets: [{ model: 'm-primary' }],
           fallback: ['m-backup'], timeouts: { attempt_ms: 300 } }],
        { breaker: { failures: 1000 } }),
}, async (f) => {
    const { primary, backup } = f.mocks;
    await primary.config({ latency_ms: 2000 });
    for (let i = 0; i < 3; i++) {
        const r = ok200(await f.chat({ model: 'slow', messages: userMsg(`t${i}`) }), `t${i}`);
        assert.equal(hdr(r, 'x-switchyard-model'), 'm-backup');
        assert.equal(hdr(r, 'x-switchyard-chain'), 'm-primary:upstream_timeout,m-backup:200');
        assert.equal(hdr(r, 'x-switchyard-attempts'), '2');
        assert.ok(r.ms >= 280, `answered after ${r.ms.toFixed(0)} ms: the primary had its 300 ms`);
        assert.ok(r.ms < 1500, `answered after ${r.ms.toFixed(0)} ms (attempt_ms 300 + a fast fallback)`);
        t.diagnostic(`request ${i}: ${r.ms.toFixed(0)} ms`);
    }
    // A stream: the same timeout bounds the wait for the first byte.
    const t0 = performance.now();
    const { data: stream, response } = await f.client().chat.completions
        .create({ model: 'slow', messages: userMsg('streamed'), stream: true }).withResponse();
    let text = '';
    for await (const ch of stream) text += ch.choices[0]?.delta?.content || '';
    const ms = performance.now() - t0;
    assert.equal(text, 'echo: streamed');
    assert.equal(response.headers.get('x-switchyard-model'), 'm-backup');
    assert.ok(ms < 1500, `stream answered after ${ms.toFixed(0)} ms`);
    // The abandoned attempts were closed: the primary holds nothing once they are over.
    await waitFor(async () => (await primary.stats()).in_flight === 0, { timeoutMs: 1500, what: 'primary in_flight 0' });
    const ps = await primary.stats();
    assert.equal(ps.requests_total, 4);
    assert.equal(ps.streams_completed, 0);
    assert.equal((await backup.stats()).requests_total, 4);
}));

test('429 with Retry-After: 1 is waited out before the retry at the same target', T(30), (t) => withFleet({
    mocks: ['primary', 'backup'],
    policy: twoProviders(
        [{ name: 'rl', match: { model: 'rl' }, targets: [{ model: 'm-primary' }],
           retries: { max: 1, backoff_ms: 10, max_backoff_ms: 20 } }],
        { breaker: { failures: 1000 }, max_retry_after_ms: 5000 }),
}, async (f) => {
    const { primary } = f.mocks;
    await primary.config({ status: 429, retry_after_s: 1 });
    // The provider recovers once it has answered the first attempt: only a retry that
    // waited will see it (the backoff alone is 10-20 ms).
    const pending = f.chat({ model: 'rl', messages: userMsg('later') });
    await waitFor(async () => (await primary.count()) >= 1, { timeoutMs: 5000, intervalMs: 10, what: 'the first attempt' });
    await primary.config({ status: 200, retry_after_s: 0 });
    const r = ok200(await pending, 'later');
    assert.equal(hdr(r, 'x-switchyard-chain'), 'm-primary:429,m-primary:200');
    assert.equal(hdr(r, 'x-switchyard-attempts'), '2');
    assert.ok(r.ms >= 950, `the retry came ${r.ms.toFixed(0)} ms after the request: Retry-After 1 s honoured (backoff alone is 10-20 ms)`);
    assert.ok(r.ms < 5000, `answered after ${r.ms.toFixed(0)} ms`);
    assert.equal(await primary.count(), 2);
    t.diagnostic(`answered after ${r.ms.toFixed(0)} ms`);

    // Still limited when the retry fails too: the client gets the 429 and its Retry-After.
    await primary.reset();
    await primary.config({ status: 429, retry_after_s: 1 });
    const r2 = await f.chat({ model: 'rl', messages: userMsg('again') });
    assert.equal(r2.status, 429, r2.text);
    assert.equal(r2.json?.error?.code, 'rate_limit_exceeded');
    assert.equal(hdr(r2, 'retry-after'), '1');
    assert.equal(hdr(r2, 'x-switchyard-chain'), 'm-primary:429,m-primary:429');
    assert.ok(r2.ms >= 950, `second attempt after ${r2.ms.toFixed(0)} ms`);
    assert.equal(await primary.count(), 2);
}));

test('429 with Retry-After above max_retry_after_ms: no wait at that target', T(30), (t) => withFleet({
    mocks: ['primary', 'backup'],
    policy: twoProviders([
        { name: 'rl-single', match: { model: 'rl-single' }, targets: [{ model: 'm-primary' }],
          retries: { max: 2, backoff_ms: 10 } },
        { name: 'rl-fb', match: { model: 'rl-fb' }, targets: [{ model: 'm-primary' }], fallback: ['m-backup'],
          retries: { max: 2, backoff_ms: 10 } },
    ], { breaker: { failures: 1000 }, max_retry_after_ms: 500 }),
}, async (f) => {
    const { primary, backup } = f.mocks;
    await primary.config({ status: 429, retry_after_s: 5 });

    // Nowhere else to go: the 429 is answered at once, its Retry-After passed on.
    const r = await f.chat({ model: 'rl-single', messages: userMsg('x') });
    assert.equal(r.status, 429, r.text);
    assert.equal(hdr(r, 'retry-after'), '5');
    assert.equal(hdr(r, 'x-switchyard-attempts'), '1');
    assert.equal(hdr(r, 'x-switchyard-chain'), 'm-primary:429');
    assert.ok(r.ms < 1500, `answered after ${r.ms.toFixed(0)} ms (no 5 s wait)`);
    assert.equal(await primary.count(), 1);

    // With a fallback: it moves on at once.
    const r2 = ok200(await f.chat({ model: 'rl-fb', messages: userMsg('y') }), 'y');
    assert.equal(hdr(r2, 'x-switchyard-model'), 'm-backup');
    assert.equal(hdr(r2, 'x-switchyard-chain'), 'm-primary:429,m-backup:200');
    assert.ok(r2.ms < 1500, `answered after ${r2.ms.toFixed(0)} ms`);
    assert.equal(await primary.count(), 2);
    assert.equal(await backup.count(), 1);
}));

test('the retry budget caps upstream attempts during a total outage', T(40), (t) => withFleet({
    mocks: ['a', 'b', 'c'],
    policy: (m) => ({
        providers: [provider('pa', m.a), provider('pb', m.b), provider('pc', m.c)],
        models: [
            { name: 'm-a', provider: 'pa' },
            { name: 'm-b', provider: 'pb' },
            { name: 'm-c', provider: 'pc' },
        ],
        routes: [{
            name: 'outage', match: { model: 'outage' }, strategy: 'priority',
            targets: [{ model: 'm-a' }], fallback: ['m-b', 'm-c'],
            retries: { max: 3, backoff_ms: 1, max_backoff_ms: 2 },
        }],
        resilience: { retry_budget: { ratio: 0.1, min_per_second: 1 } },
    }),
}, async (f) => {
    for (const m of Object.values(f.mocks)) await m.config({ status: 503 });
    const N = 100;
    const t0 = Date.now();
    const res = await pool(N, 10, (i) => f.chat({ model: 'outage', messages: userMsg(`o${i}`) }));
    const secs = (Date.now() - t0) / 1000;
    for (const r of res) {
        assert.ok(r.status === 502 || r.status === 503, `status ${r.status}: ${r.text}`);
        assert.equal(typeof r.json?.error?.message, 'string', r.text);
    }
    const counts = await f.counts();
    const total = counts.a + counts.b + counts.c;
    const attempts = res.reduce((n, r) => n + Number(hdr(r, 'x-switchyard-attempts') || 0), 0);
    const chained = res.reduce((n, r) => n + parseChain(hdr(r, 'x-switchyard-chain'))
        .filter((e) => e.result !== 'circuit_open').length, 0);
    assert.equal(total, attempts, `upstream requests ${JSON.stringify(counts)} == sum of x-switchyard-attempts`);
    assert.equal(total, chained, 'upstream requests == attempts named in the chains');
    // Every request is tried once; extra attempts come only from the budget: ratio x N,
    // the per-second floor over the run, and at most the bank (min_per_second + 10).
    const bound = N + Math.ceil(0.1 * N) + Math.ceil(secs) + 1 + 11;
    t.diagnostic(`${total} upstream requests ${JSON.stringify(counts)} for ${N} in ${secs.toFixed(2)} s (bound ${bound})`);
    assert.ok(total >= N, `${total} upstream requests for ${N} client requests`);
    assert.ok(total <= bound && total <= 1.5 * N,
              `${total} upstream requests for ${N} requests in ${secs.toFixed(1)} s (bound ${bound}; ` +
              `without a budget up to ${N * 4 * 3}): ${JSON.stringify(counts)}`);
    assert.match(f.proxy.stderr, /circuit breaker for pa\/m-a opened/);
}));

test('a stream that breaks after its first byte ends with an SSE error event, never a retry', T(30), (t) => withFleet({
    mocks: ['primary', 'backup'],
    policy: twoProviders(
        [{ name: 'st', match: { model: 'st' }, strategy: 'priority', targets: [{ model: 'm-primary' }],
           fallback: ['m-backup'], retries: { max: 2, backoff_ms: 10 } }],
        { breaker: { failures: 1000 } }),
}, async (f) => {
    const { primary, backup } = f.mocks;
    await primary.config({ fail_after_chunks: 2 });

    // The SDK: some content, then an APIError from the iterator.
    const stream = await f.client().chat.completions.create({
        model: 'st', messages: userMsg('one two three four five six'), stream: true,
    });
    let text = '';
    let err;
    try {
        for await (const ch of stream) text += ch.choices[0]?.delta?.content || '';
    } catch (e) {
        err = e;
    }
    assert.ok(err instanceof openai.APIError, `the iterator raised an APIError (got ${err})`);
    assert.match(String(err.message), /stream/i);
    assert.ok(text.startsWith('echo:'), `content before the error: ${JSON.stringify(text)}`);
    assert.ok(text.length < 'echo: one two three four five six'.length);

    // On the wire: whole SSE events, the last one an OpenAI error object, no [DONE].
    const res = await fetch(`${f.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'st', messages: userMsg('one two three four'), stream: true }),
        signal: AbortSignal.timeout(10000 * SLOW),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-switchyard-attempts'), '1');
    assert.equal(res.headers.get('x-switchyard-model'), 'm-primary');
    const body = await res.text();
    assert.ok(body.endsWith('\n\n'), `ends on an event boundary: ${JSON.stringify(body.slice(-40))}`);
    const events = body.split('\n\n').filter(Boolean);
    for (const ev of events) assert.match(ev, /^data: /, `an SSE data event: ${JSON.stringify(ev)}`);
    assert.ok(!body.includes('[DONE]'), 'no [DONE] after a broken stream');
    const last = JSON.parse(events[events.length - 1].slice(6));
    assert.equal(typeof last.error?.message, 'string', `last event ${events[events.length - 1]}`);
    assert.equal(last.error.code, 'upstream_stream_broken');
    assert.ok(events.length >= 3, `${events.length} events: content came first`);

    // Neither a retry at the primary nor a fallback.
    const ps = await primary.stats();
    assert.equal(ps.requests_total, 2, 'one upstream request per client request');
    assert.equal(ps.streams_failed, 2);
    assert.equal(await backup.count(), 0, 'the fallback never saw a request');
}));

test('hedging: a slow first target is raced after hedge_after_ms and cancelled', T(30), (t) => withFleet({
    mocks: ['primary', 'backup'],
    policy: twoProviders(
        [{ name: 'hedged', match: { model: 'hedged' }, strategy: 'priority',
           targets: [{ model: 'm-primary' }, { model: 'm-backup' }], hedge_after_ms: 200 }],
        { breaker: { failures: 1000 } }),
}, async (f) => {
    const { primary, backup } = f.mocks;
    await primary.config({ latency_ms: 1500 });

    // A stream (the mock counts cancelled streams).
    const t0 = performance.now();
    const res = await fetch(`${f.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'hedged', messages: userMsg('race me'), stream: true }),
        signal: AbortSignal.timeout(10000 * SLOW),
    });
    const body = await res.text();
    const ms = performance.now() - t0;
    assert.equal(res.status, 200);
    assert.ok(body.includes('data: [DONE]'), body);
    assert.equal(res.headers.get('x-switchyard-model'), 'm-backup');
    assert.equal(res.headers.get('x-switchyard-attempts'), '2');
    assert.equal(res.headers.get('x-switchyard-chain'), 'm-primary:cancelled,m-backup:stream');
    assert.ok(ms >= 180, `answered after ${ms.toFixed(0)} ms: the hedge waited for hedge_after_ms`);
    assert.ok(ms < 1000, `answered after ${ms.toFixed(0)} ms (the primary needs 1500)`);
    t.diagnostic(`hedged stream answered after ${ms.toFixed(0)} ms`);
    await waitFor(async () => {
        const s = await primary.stats();
        return s.streams_cancelled === 1 && s.in_flight === 0;
    }, { timeoutMs: 3000, what: 'the primary to see its stream cancelled' });

    // A plain request: the primary's request is closed long before its 5 s answer.
    await primary.reset();
    await primary.config({ latency_ms: 5000 });
    const r = ok200(await f.chat({ model: 'hedged', messages: userMsg('plain race') }), 'plain race');
    assert.equal(hdr(r, 'x-switchyard-model'), 'm-backup');
    assert.equal(hdr(r, 'x-switchyard-attempts'), '2');
    assert.ok(r.ms < 1000, `answered after ${r.ms.toFixed(0)} ms`);
    const tAns = performance.now();
    await waitFor(async () => (await primary.stats()).in_flight === 0,
                  { timeoutMs: 2500, what: 'the primary in_flight back to 0' });
    assert.ok(performance.now() - tAns < 4000, 'cancelled, not finished');
    const ps = await primary.stats();
    assert.equal(ps.requests_total, 1);
    assert.equal(ps.streams_completed, 0);
    assert.equal(await backup.count(), 2);

    // A fast primary is not hedged (one hedge in five is left for a stalled machine).
    await primary.reset();
    for (let i = 0; i < 5; i++) {
        const r3 = ok200(await f.chat({ model: 'hedged', messages: userMsg(`quick${i}`) }), `quick${i}`);
        assert.equal(hdr(r3, 'x-switchyard-model'), 'm-primary');
    }
    assert.equal(await primary.count(), 5);
    assert.ok(await backup.count() <= 2 + 1, 'a fast primary is not raced');
}));

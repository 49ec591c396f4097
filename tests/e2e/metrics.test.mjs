// tests/e2e/metrics.test.mjs - GET /metrics: after a known mix of traffic (7 chats on
// route-a, 3 on route-b, 2 upstream 503s, 1 stream) spread over both workers' connections,
// any worker's answer is valid Prometheus text (parsed here by a small strict parser) with
// exact request counts per series, tokens equal to the usage the mock reported, histograms
// whose _count equals the requests and whose buckets are cumulative up to +Inf, the breaker
// gauges, and no access-log line for the scrapes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startStack, basePolicy, waitFor, SLOW } from './lib/harness.mjs';

let st;
const T = { timeout: 30000 * SLOW };

before(async () => {
    st = await startStack({
        workers: 2,
        policy: (mockUrl) => {
            const p = basePolicy(mockUrl);
            p.routes.push(
                { name: 'route-a', match: { model: 'alpha' }, targets: [{ model: 'mock-a' }] },
                { name: 'route-b', match: { model: 'beta' }, targets: [{ model: 'mock-b' }] },
            );
            return p;
        },
    });
});
after(async () => {
    if (st) await st.stop();
});

// One request on a fresh connection (agent: false), so requests and scrapes land on
// whichever worker the kernel picks, not always the same pooled connection's.
function request(method, path, body) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request(`${st.url}${path}`, {
            method,
            agent: false,
            headers: data ? { 'content-type': 'application/json' } : {},
            timeout: 10000 * SLOW,
        }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timeout`)));
        req.on('error', reject);
        req.end(data);
    });
}

// ---- a small, strict parser for the Prometheus text format (0.0.4) -------------------------

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

// Returns { families: Map(name -> { type, help, samples: [{ name, labels, value }] }) }.
// Throws on anything a Prometheus server would reject, and on what the format forbids:
// a sample before its TYPE, a family's samples split by another family, duplicate series.
function parseProm(text) {
    assert.ok(text.endsWith('\n'), 'exposition ends with a newline');
    const families = new Map();
    const seen = new Set();
    let current = null;
    const familyOf = (name) => {
        for (const suffix of ['_bucket', '_sum', '_count', '']) {
            if (suffix && !name.endsWith(suffix)) continue;
            const base = name.slice(0, name.length - suffix.length);
            const f = families.get(base);
            if (f && (suffix === '' || f.type === 'histogram')) return [base, f];
        }
        return [null, null];
    };
    for (const [i, line] of text.slice(0, -1).split('\n').entries()) {
        const where = `line ${i + 1}: ${line}`;
        if (line.startsWith('#')) {
            const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
            assert.ok(m, `comment is HELP or TYPE: ${where}`);
            assert.match(m[2], NAME, where);
            const f = families.get(m[2]) ?? { samples: [] };
            if (m[1] === 'TYPE') {
                assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]), where);
                assert.equal(f.type, undefined, `one TYPE per family: ${where}`);
                assert.equal(f.samples.length, 0, `TYPE before samples: ${where}`);
                f.type = m[3];
            } else {
                f.help = m[3];
            }
            families.set(m[2], f);
            current = m[2];
            continue;
        }
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
        assert.ok(m, `sample syntax: ${where}`);
        const labels = {};
        if (m[3] !== undefined && m[3] !== '') {
            // name="value" pairs; values escape \\, \" and \n only.
            const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/gy;
            let pos = 0;
            let p;
            while (pos < m[3].length && (p = re.exec(m[3]))) {
                assert.match(p[1], LABEL, where);
                assert.ok(!(p[1] in labels), `duplicate label ${p[1]}: ${where}`);
                labels[p[1]] = p[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
                pos = re.lastIndex;
            }
            assert.equal(pos, m[3].length, `label syntax: ${where}`);
        }
        const value = Number(m[4] === '+Inf' ? Infinity : m[4]);
        assert.ok(!Number.isNaN(value), `value: ${where}`);
        const [base, f] = familyOf(m[1]);
        assert.ok(f && f.type, `sample after its family's TYPE: ${where}`);
        assert.equal(base, current, `a family's lines are together: ${where}`);
        const id = m[1] + JSON.stringify(Object.entries(labels).sort());
        assert.ok(!seen.has(id), `duplicate series: ${where}`);
        seen.add(id);
        f.samples.push({ name: m[1], labels, value });
    }
    return families;
}

const KEY = ['tenant', 'route', 'provider', 'model', 'arm', 'status_class', 'stream'];
const keyOf = (labels) => KEY.map((k) => labels[k]).join('|');

// sample value of <name> with exactly <labels>
function value(fams, family, name, labels) {
    const f = fams.get(family);
    assert.ok(f, `family ${family}`);
    const want = JSON.stringify(Object.entries(labels).sort());
    const s = f.samples.find((x) => x.name === name &&
        JSON.stringify(Object.entries(x.labels).sort()) === want);
    return s?.value;
}

async function scrape() {
    const r = await request('GET', '/metrics');
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    return { text: r.text, fams: parseProm(r.text) };
}

const expected = new Map(); // series key -> { requests, prompt, completion, cached }
function expect(labels, usage) {
    const k = keyOf(labels);
    const e = expected.get(k) ?? { labels, requests: 0, prompt: 0, completion: 0, cached: 0 };
    e.requests++;
    if (usage) {
        e.prompt += usage.prompt_tokens ?? 0;
        e.completion += usage.completion_tokens ?? 0;
        e.cached += usage.prompt_tokens_details?.cached_tokens ?? 0;
    }
    expected.set(k, e);
}
const series = (route, model, cls, stream) => ({
    tenant: '', route, provider: 'mock', model, arm: '', status_class: cls, stream: String(stream),
});

test('a known mix of traffic is counted exactly, merged over workers', T, async () => {
    // The same family list before any traffic: declared, empty.
    const empty = await scrape();
    assert.equal(value(empty.fams, 'switchyard_requests_in_flight', 'switchyard_requests_in_flight', {}), 0);
    assert.equal(empty.fams.get('switchyard_requests_total').samples.length, 0);

    const chat = async (model, text, extra = {}) => {
        const r = await request('POST', '/v1/chat/completions',
                                { model, messages: [{ role: 'user', content: text }], ...extra });
        return r;
    };
    const jobs = [];
    for (let i = 0; i < 7; i++) jobs.push(['alpha', `hello number ${i} ${'x'.repeat(i * 5)}`]);
    for (let i = 0; i < 3; i++) jobs.push(['beta', `beta ${'y'.repeat(i * 9)} ${i}`]);
    await Promise.all(jobs.map(async ([model, text]) => {
        const r = await chat(model, text);
        assert.equal(r.status, 200, r.text);
        const usage = JSON.parse(r.text).usage;
        assert.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
        expect(series(model === 'alpha' ? 'route-a' : 'route-b',
                      model === 'alpha' ? 'mock-a' : 'mock-b', '2xx', false), usage);
    }));

    // One stream, with usage in its last event.
    const s = await chat('alpha', 'a streamed answer please', {
        stream: true, stream_options: { include_usage: true },
    });
    assert.equal(s.status, 200);
    let usage;
    for (const ev of s.text.split('\n\n')) {
        const d = ev.replace(/^data: /, '');
        if (!d || d === '[DONE]') continue;
        const j = JSON.parse(d);
        if (j.usage) usage = j.usage;
    }
    assert.ok(usage, `the stream carried usage: ${s.text}`);
    expect(series('route-a', 'mock-a', '2xx', true), usage);

    // Two upstream 503s on route-b (no retries, no fallback: one attempt each).
    await st.mockConfig({ status: 503 });
    for (let i = 0; i < 2; i++) {
        const r = await chat('beta', `failing ${i}`);
        assert.ok(r.status >= 500, `${r.status}: ${r.text}`); // the proxy answers 502 or 503
        expect(series('route-b', 'mock-b', '5xx', false), null);
    }
    await st.mockReset();

    // The exchange is recorded just after its last byte: wait until every one is in.
    const total = [...expected.values()].reduce((a, e) => a + e.requests, 0);
    assert.equal(total, 13);
    let m;
    await waitFor(async () => {
        m = await scrape();
        const rt = m.fams.get('switchyard_requests_total').samples;
        return rt.reduce((a, x) => a + x.value, 0) === total &&
            value(m.fams, 'switchyard_requests_in_flight', 'switchyard_requests_in_flight', {}) === 0;
    }, { timeoutMs: 5000, what: '13 requests in /metrics' });

    // Exactly the expected series, with exact counts and tokens.
    const rt = m.fams.get('switchyard_requests_total').samples;
    assert.deepEqual(rt.map((x) => keyOf(x.labels)).sort(), [...expected.keys()].sort());
    for (const e of expected.values()) {
        const k = keyOf(e.labels);
        assert.equal(value(m.fams, 'switchyard_requests_total', 'switchyard_requests_total', e.labels),
                     e.requests, `requests ${k}`);
        for (const [kind, n] of [['prompt', e.prompt], ['completion', e.completion], ['cached', e.cached]]) {
            assert.equal(value(m.fams, 'switchyard_tokens_total', 'switchyard_tokens_total',
                               { ...e.labels, kind }), n, `${kind} tokens ${k}`);
        }
        // Cost: the policy's prices (per million tokens) times the reported usage.
        const price = e.labels.model === 'mock-a' ? [1, 2] : [3, 6];
        const cost = (e.prompt * price[0] + e.completion * price[1]) / 1e6;
        const got = value(m.fams, 'switchyard_cost_usd_total', 'switchyard_cost_usd_total', e.labels);
        assert.ok(Math.abs(got - cost) < 1e-9 * e.requests, `cost ${k}: ${got} vs ${cost}`);

        // The duration histogram: _count == requests, buckets cumulative, +Inf == _count.
        const h = 'switchyard_request_duration_seconds';
        const buckets = m.fams.get(h).samples.filter((x) => x.name === `${h}_bucket` &&
            keyOf(x.labels) === k);
        assert.equal(buckets.length, 19, `18 le bounds and +Inf for ${k}`);
        let prev = 0;
        let prevLe = 0;
        for (const b of buckets) {
            const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
            assert.ok(le > prevLe, `le ascending ${k}`);
            assert.ok(b.value >= prev, `cumulative ${k} at le=${b.labels.le}`);
            prev = b.value;
            prevLe = le;
        }
        assert.equal(buckets.at(-1).labels.le, '+Inf');
        assert.equal(buckets.at(-1).value, e.requests, `+Inf ${k}`);
        assert.equal(value(m.fams, h, `${h}_count`, e.labels), e.requests, `_count ${k}`);
        const sum = value(m.fams, h, `${h}_sum`, e.labels);
        assert.ok(sum > 0 && sum < 10 * e.requests, `_sum ${k}: ${sum}`);
    }

    // TTFT: only the stream's series, one observation.
    const tt = 'switchyard_time_to_first_token_seconds';
    const ttSeries = new Set(m.fams.get(tt).samples.map((x) => keyOf(x.labels)));
    assert.deepEqual([...ttSeries], [keyOf(series('route-a', 'mock-a', '2xx', true))]);
    assert.equal(value(m.fams, tt, `${tt}_count`, series('route-a', 'mock-a', '2xx', true)), 1);

    // Upstream errors by provider and status.
    assert.equal(value(m.fams, 'switchyard_upstream_errors_total', 'switchyard_upstream_errors_total',
                       { provider: 'mock', code: '503' }), 2);
    // Breakers for every policy model, 0 (two failures do not open one).
    for (const model of ['mock-a', 'mock-b']) {
        assert.equal(value(m.fams, 'switchyard_circuit_breaker_state', 'switchyard_circuit_breaker_state',
                           { provider: 'mock', model }), 0, `breaker ${model}`);
    }
    assert.equal(value(m.fams, 'switchyard_policy_version', 'switchyard_policy_version', {}), 1);
    const bi = m.fams.get('switchyard_build_info').samples;
    assert.equal(bi.length, 1);
    assert.match(bi[0].labels.version, /^\d+\.\d+\.\d+/);
    assert.equal(bi[0].value, 1);
    assert.equal(value(m.fams, 'switchyard_stats_overflow_total', 'switchyard_stats_overflow_total', {}), 0);
    for (const [name, f] of m.fams) {
        assert.ok(f.type, `${name} has a TYPE`);
        assert.ok(f.help, `${name} has a HELP`);
    }

    // Every worker answers with the same totals (several fresh connections).
    for (let i = 0; i < 6; i++) {
        const again = await scrape();
        assert.deepEqual(again.fams.get('switchyard_requests_total').samples,
                         m.fams.get('switchyard_requests_total').samples);
        assert.deepEqual(again.fams.get('switchyard_tokens_total').samples,
                         m.fams.get('switchyard_tokens_total').samples);
    }
});

test('HEAD /metrics, wrong method, and scrapes stay out of the access log', T, async () => {
    const h = await request('HEAD', '/metrics');
    assert.equal(h.status, 200);
    assert.equal(h.text, '');
    await request('GET', '/metrics');
    await waitFor(() => st.accessLogEntries().length > 0, { what: 'access log lines' });
    const paths = st.accessLogEntries().map((e) => e.path);
    assert.ok(!paths.includes('/metrics'), 'no /metrics line in the access log');
    // A wrong method is an error like any other (and logged as one).
    const p = await request('POST', '/metrics', {});
    assert.equal(p.status, 405);
    assert.equal(p.headers.allow, 'GET, HEAD');
});

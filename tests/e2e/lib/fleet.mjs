// tests/e2e/lib/fleet.mjs - one switchyard-proxy in front of SEVERAL switchyard-mockllm
// processes, one per "provider", so a test can fail one provider and read each provider's
// own counters (GET /_mock/stats) to see exactly where requests went.
//
//   const f = await startFleet({
//       mocks: ['primary', 'backup'],
//       policy: (m) => ({ providers: [{ name: 'p', base_url: m.primary.baseURL }, ...], ... }),
//   });
//   const r = await f.chat({ model: 'x', messages: userMsg('hi') }, { 'x-switchyard-region': 'eu' });
//   await f.mocks.primary.config({ status: 503 });
//   (await f.mocks.primary.stats()).requests_total
//   await f.stop();   // SIGTERM; throws unless every process exited 0 in time
//
// f.chat() is a plain HTTP/1.1 client with its own keep-alive pool (no SDK): fast enough for
// tens of thousands of requests, and it returns every status as it is. f.client() gives the
// official OpenAI SDK for the proxy when a test wants the SDK's view.
// Environment: SY_BIN_DIR as for harness.mjs.

import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN_DIR, SLOW, OpenAI, Proc, fetchT, waitFor, sleep } from './harness.mjs';

export { SLOW, sleep, waitFor };

// ---- one mock per provider ---------------------------------------------------------------

export class FleetMock {
    constructor(name) {
        this.name = name;
    }

    async start() {
        this.proc = new Proc(`mock[${this.name}]`, path.join(BIN_DIR, 'switchyard-mockllm'),
                             ['--listen', '127.0.0.1:0', '--name', this.name], {});
        this.port = await this.proc.port();
        this.url = `http://127.0.0.1:${this.port}`;
        this.baseURL = `${this.url}/v1`;
        return this;
    }

    async stats() {
        const r = await fetchT(`${this.url}/_mock/stats`);
        if (r.status !== 200) throw new Error(`${this.name}: GET /_mock/stats: ${r.status}`);
        return r.json();
    }

    // requests_total of this mock (API requests it received).
    async count() {
        return (await this.stats()).requests_total;
    }

    async config(cfg) {
        const r = await fetchT(`${this.url}/_mock/config`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(cfg),
        });
        const body = await r.text();
        if (r.status !== 200) throw new Error(`${this.name}: POST /_mock/config ${JSON.stringify(cfg)}: ${r.status} ${body}`);
    }

    async reset() {
        const r = await fetchT(`${this.url}/_mock/reset`, { method: 'POST' });
        await r.arrayBuffer();
        if (r.status !== 200) throw new Error(`${this.name}: POST /_mock/reset: ${r.status}`);
    }
}

// ---- the fleet -------------------------------------------------------------------------------

export class Fleet {
    constructor() {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-e2e-fleet-'));
        this.policyPath = path.join(this.dir, 'policy.json');
        this.procs = [];
        this.mocks = {};
        this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    }

    // <mocks>: names; <policy>(mocks) returns the policy object (mocks[name].baseURL is the
    // provider base_url). <logLevel> of the proxy: info (the default) or debug; the port is
    // read from its info line "listening on".
    async start({ mocks = ['mock'], policy, workers = 2, env = {}, proxyArgs = [], logLevel = 'info' }) {
        const started = await Promise.all(mocks.map((n) => {
            const m = new FleetMock(n);
            const p = m.start();
            return p.finally(() => this.procs.push(m.proc)).then(() => m);
        }));
        for (const m of started) this.mocks[m.name] = m;
        this.writePolicy(policy(this.mocks));
        this.proxy = new Proc('proxy', path.join(BIN_DIR, 'switchyard-proxy'), [
            '--listen', '127.0.0.1:0',
            '--policy', this.policyPath,
            '--workers', String(workers),
            '--access-log', 'off',
            '--log-level', logLevel,
            '--drain-timeout-ms', '2000',
            ...proxyArgs,
        ], env);
        this.procs.push(this.proxy);
        this.port = await this.proxy.port();
        this.url = `http://127.0.0.1:${this.port}`;
        this.baseURL = `${this.url}/v1`;
        await waitFor(async () => (await fetchT(`${this.url}/readyz`)).status === 200, {
            timeoutMs: 10000,
            what: 'proxy /readyz == 200',
        });
        return this;
    }

    writePolicy(obj) {
        const tmp = `${this.policyPath}.tmp`;
        fs.writeFileSync(tmp, typeof obj === 'string' ? obj : JSON.stringify(obj, null, 2));
        fs.renameSync(tmp, this.policyPath);
    }

    // The official SDK for the proxy; no SDK retries, so every status is seen as it is.
    client(extra = {}) {
        return new OpenAI({
            apiKey: 'sk-client-key-the-proxy-replaces',
            baseURL: this.baseURL,
            maxRetries: 0,
            timeout: 20000 * SLOW,
            ...extra,
        });
    }

    // POST /v1/chat/completions with <body> (an object) and extra <headers>. Resolves
    // { status, headers (lower-case names), text, json, ms } for every status; rejects only
    // on a transport failure or after <timeoutMs>.
    chat(body, headers = {}, { timeoutMs = 20000 } = {}) {
        return rawPost(this.agent, this.port, '/v1/chat/completions', body, headers, timeoutMs * SLOW);
    }

    // Each mock's requests_total, as { name: n }.
    async counts() {
        const out = {};
        for (const [n, m] of Object.entries(this.mocks)) out[n] = await m.count();
        return out;
    }

    async resetMocks() {
        await Promise.all(Object.values(this.mocks).map((m) => m.reset()));
    }

    describe() {
        return this.procs.map((p) => p.describe()).join('\n');
    }

    // SIGTERM the proxy, then the mocks. With <check>, throws unless each exited 0 in time.
    async stop({ check = true } = {}) {
        this.agent.destroy();
        const problems = [];
        const order = [this.proxy, ...Object.values(this.mocks).map((m) => m.proc)].filter(Boolean);
        for (const p of order) {
            const wasDead = !!p.exit;
            const r = await p.stop(8000);
            if (wasDead) problems.push(`${p.name} died during the test (${JSON.stringify(p.exit)})`);
            else if (r.timedOut) problems.push(`${p.name} did not exit within ${8 * SLOW} s of SIGTERM`);
            else if (r.code !== 0) problems.push(`${p.name} exited with ${JSON.stringify(r)} after SIGTERM`);
        }
        if (problems.length === 0 || !check) fs.rmSync(this.dir, { recursive: true, force: true });
        if (check && problems.length) throw new Error(problems.join('; ') + '\n' + this.describe());
    }
}

export async function startFleet(opts) {
    const f = new Fleet();
    try {
        await f.start(opts);
    } catch (e) {
        const d = f.describe();
        await f.stop({ check: false });
        e.message += `\n${d}`;
        throw e;
    }
    return f;
}

// Starts a fleet, runs fn(fleet), stops it (asserting clean exits). A failure's message gets
// every process's stderr appended.
export async function withFleet(opts, fn) {
    const f = await startFleet(opts);
    let failure;
    try {
        await fn(f);
    } catch (e) {
        failure = e;
        const more = `\n==== processes ====\n${f.describe()}`;
        if (e && typeof e === 'object') {
            e.message += more;
            if (typeof e.stack === 'string') e.stack += more;
        }
    }
    try {
        await f.stop({ check: true });
    } catch (e) {
        if (!failure) failure = e;
    }
    if (failure) throw failure;
}

// ---- HTTP --------------------------------------------------------------------------------

function rawPost(agent, port, p, body, headers, timeoutMs) {
    const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
        const req = http.request({
            host: '127.0.0.1',
            port,
            path: p,
            method: 'POST',
            agent,
            headers: {
                'content-type': 'application/json',
                'content-length': payload.length,
                authorization: 'Bearer sk-client-key-the-proxy-replaces',
                ...headers,
            },
        }, (res) => {
            const chunks = [];
            res.on('data', (d) => chunks.push(d));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                let json;
                try {
                    json = JSON.parse(text);
                } catch {
                    json = undefined;
                }
                resolve({ status: res.statusCode, headers: res.headers, text, json, ms: performance.now() - t0 });
            });
            res.on('error', reject);
        });
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`POST ${p}: no answer within ${timeoutMs} ms`)));
        req.on('error', reject);
        req.end(payload);
    });
}

// ---- helpers -------------------------------------------------------------------------------

// Runs fn(i) for i in [0, n) with at most <concurrency> at once; resolves with the results
// in order.
export async function pool(n, concurrency, fn) {
    const out = new Array(n);
    let next = 0;
    async function worker() {
        while (next < n) {
            const i = next++;
            out[i] = await fn(i);
        }
    }
    await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
    return out;
}

// Parses x-switchyard-chain "model:result,model:result" into [{ model, result }].
export function parseChain(v) {
    if (!v) return [];
    return v.split(',').filter(Boolean).map((s) => {
        const i = s.lastIndexOf(':');
        return { model: s.slice(0, i), result: s.slice(i + 1) };
    });
}

// Chain results that did NOT send a request upstream.
export const NOT_SENT = new Set(['circuit_open', 'unsupported']);

// A provider entry for the policy.
export function provider(name, mock, extra = {}) {
    return { name, kind: 'openai', base_url: mock.baseURL, timeout_ms: 10000, connect_timeout_ms: 2000, ...extra };
}

export function userMsg(text) {
    return [{ role: 'user', content: text }];
}

// Counts of the values of <key>(x) over <items>.
export function tally(items, key) {
    const out = {};
    for (const it of items) {
        const k = key(it);
        out[k] = (out[k] || 0) + 1;
    }
    return out;
}

// tests/e2e/lib/harness.mjs - starts real switchyard-mockllm and switchyard-proxy processes on
// ephemeral loopback ports for one test file, and tears them down.
//
// Every process is started with its own stderr captured; the port is read from the line
// "listening on HOST:PORT". Teardown sends SIGTERM and asserts exit code 0 within a few
// seconds (under ASan/LSan a leak turns into a non-zero exit), and prints the stderr of a
// process that misbehaved. Children that are still alive when node exits are SIGKILLed, so
// a failing test never leaves processes behind. Every wait has a timeout.
//
// Environment: SY_BIN_DIR (default: <repo>/build/bin) holds the binaries.

import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../../..');
export const SDK_DIR = path.join(REPO, 'tests/sdk');
export const BIN_DIR = process.env.SY_BIN_DIR || path.join(REPO, 'build/bin');

// Sanitizer builds start and stop more slowly; stretch waits when ASAN_OPTIONS is set.
export const SLOW = process.env.ASAN_OPTIONS ? 3 : 1;

// ---- the official SDKs, from tests/sdk/node_modules (installed by scripts/deps.sh) ----------

function loadSdk(name) {
    const pkg = path.join(SDK_DIR, 'node_modules', name, 'package.json');
    if (!fs.existsSync(pkg)) {
        throw new Error(
            `${pkg} not found: the npm SDKs are not installed. Run scripts/deps.sh ` +
            `(it runs npm install in tests/sdk).`);
    }
    return createRequire(path.join(SDK_DIR, 'package.json'))(name);
}

export const openai = loadSdk('openai');
export const OpenAI = openai.OpenAI;

// ---- processes -----------------------------------------------------------------------------

const live = new Set();
process.on('exit', () => {
    for (const p of live) {
        try {
            p.child.kill('SIGKILL');
        } catch {
            /* already gone */
        }
    }
});

export function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

// Resolves with the value of fn() once it is truthy; rejects after <timeoutMs>.
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 50, what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs * SLOW;
    let last;
    for (;;) {
        try {
            const v = await fn();
            if (v) return v;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}` + (last ? `: ${last.message}` : ''));
        }
        await sleep(intervalMs);
    }
}

// A started child process: its stderr so far, its exit, its port.
export class Proc {
    constructor(name, bin, args, env) {
        this.name = name;
        this.args = args;
        this.stderr = '';
        this.stdout = '';
        this.exit = null; // { code, signal } once exited
        if (!fs.existsSync(bin)) {
            throw new Error(`${bin} not found (build first: cmake --build build; or set SY_BIN_DIR)`);
        }
        this.child = spawn(bin, args, {
            env: { ...process.env, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        live.add(this);
        this.child.stdout.on('data', (d) => (this.stdout += d));
        this.child.stderr.on('data', (d) => (this.stderr += d));
        this.exited = new Promise((resolve) => {
            this.child.on('exit', (code, signal) => {
                this.exit = { code, signal };
                live.delete(this);
                resolve(this.exit);
            });
            this.child.on('error', (err) => {
                this.exit = { code: -1, signal: null, error: err };
                live.delete(this);
                resolve(this.exit);
            });
        });
    }

    get pid() {
        return this.child.pid;
    }

    describe() {
        const ex = this.exit ? ` exited ${JSON.stringify(this.exit)}` : ' running';
        return `--- ${this.name} (${this.args.join(' ')})${ex}; stderr:\n${tail(this.stderr)}`;
    }

    // Resolves with the port from "listening on HOST:PORT" on stderr.
    async port(timeoutMs = 10000) {
        const re = /listening on \S+:(\d+)/;
        await waitFor(() => re.test(this.stderr) || this.exit, {
            timeoutMs,
            intervalMs: 20,
            what: `${this.name} to log "listening on"`,
        }).catch((e) => {
            throw new Error(`${e.message}\n${this.describe()}`);
        });
        const m = re.exec(this.stderr);
        if (!m) throw new Error(`${this.name} exited before listening\n${this.describe()}`);
        return Number(m[1]);
    }

    signal(sig) {
        if (!this.exit) this.child.kill(sig);
    }

    // Sends SIGTERM and returns the exit, SIGKILLing after <timeoutMs>.
    async stop(timeoutMs = 5000) {
        if (this.exit) return this.exit;
        this.child.kill('SIGTERM');
        let timer;
        const timeout = new Promise((r) => (timer = setTimeout(() => r('timeout'), timeoutMs * SLOW)));
        const r = await Promise.race([this.exited, timeout]);
        clearTimeout(timer); // a pending timer would keep the test process alive
        if (r === 'timeout') {
            this.child.kill('SIGKILL');
            await this.exited;
            return { code: null, signal: 'SIGKILL', timedOut: true };
        }
        return r;
    }
}

function tail(s, n = 8000) {
    return s.length > n ? '...' + s.slice(-n) : s;
}

// Returns a loopback port that nothing listens on (bound, then closed).
export function closedPort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

// ---- policies ------------------------------------------------------------------------------

// The default test policy: one provider "mock" at <mockUrl>, models mock-a / mock-b
// (upstream names a-upstream / b-upstream), and route "weighted" answering to model "auto".
export function basePolicy(mockUrl) {
    return {
        providers: [
            {
                name: 'mock',
                kind: 'openai',
                base_url: mockUrl,
                api_key_env: 'SY_TEST_MOCK_KEY',
                timeout_ms: 10000,
                connect_timeout_ms: 2000,
            },
        ],
        models: [
            {
                name: 'mock-a',
                provider: 'mock',
                upstream_model: 'a-upstream',
                pricing: { input_per_mtok: 1.0, output_per_mtok: 2.0 },
            },
            {
                name: 'mock-b',
                provider: 'mock',
                upstream_model: 'b-upstream',
                pricing: { input_per_mtok: 3.0, output_per_mtok: 6.0 },
            },
        ],
        routes: [
            {
                name: 'weighted',
                match: { model: 'auto' },
                targets: [
                    { model: 'mock-a', weight: 3 },
                    { model: 'mock-b', weight: 1 },
                ],
            },
        ],
        server: { max_body_bytes: 1048576 },
    };
}

// ---- the stack: one mock and one proxy -----------------------------------------------------

// Starts a mock and a proxy. <opts.policy(mockUrl)> returns the policy object (default
// basePolicy); <opts.proxyArgs> adds arguments; <opts.env> adds environment variables.
// Returns a Stack; call stack.stop() in after().
export async function startStack(opts = {}) {
    const st = new Stack();
    try {
        await st.start(opts);
    } catch (e) {
        await st.stop({ check: false });
        throw e;
    }
    return st;
}

export class Stack {
    constructor() {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-e2e-'));
        this.policyPath = path.join(this.dir, 'policy.json');
        this.accessLog = path.join(this.dir, 'access.log');
        this.procs = [];
    }

    async start({ policy = basePolicy, proxyArgs = [], env = {}, workers = 2 } = {}) {
        this.mock = new Proc('mockllm', path.join(BIN_DIR, 'switchyard-mockllm'),
                             ['--listen', '127.0.0.1:0', '--name', 'mock'], {});
        this.procs.push(this.mock);
        this.mockPort = await this.mock.port();
        this.mockUrl = `http://127.0.0.1:${this.mockPort}`;
        this.writePolicy(policy(`${this.mockUrl}/v1`, this));

        this.proxy = new Proc('proxy', path.join(BIN_DIR, 'switchyard-proxy'), [
            '--listen', '127.0.0.1:0',
            '--policy', this.policyPath,
            '--workers', String(workers),
            '--access-log', this.accessLog,
            '--drain-timeout-ms', '2000',
            ...proxyArgs,
        ], { SY_TEST_MOCK_KEY: 'sk-test-mock-key', ...env });
        this.procs.push(this.proxy);
        this.port = await this.proxy.port();
        this.url = `http://127.0.0.1:${this.port}`;
        this.baseURL = `${this.url}/v1`;
        await waitFor(async () => (await fetchT(`${this.url}/readyz`)).status === 200, {
            timeoutMs: 10000,
            what: 'proxy /readyz == 200',
        }).catch((e) => {
            throw new Error(`${e.message}\n${this.proxy.describe()}`);
        });
        return this;
    }

    writePolicy(obj) {
        const text = typeof obj === 'string' ? obj : JSON.stringify(obj, null, 2);
        // Write-then-rename so a SIGHUP never reads half a file.
        const tmp = `${this.policyPath}.tmp`;
        fs.writeFileSync(tmp, text);
        fs.renameSync(tmp, this.policyPath);
    }

    // An OpenAI client for the proxy; no retries so every status is seen as it is.
    client(extra = {}) {
        return new OpenAI({
            apiKey: 'sk-client-key-the-proxy-replaces',
            baseURL: this.baseURL,
            maxRetries: 0,
            timeout: 20000 * SLOW,
            ...extra,
        });
    }

    // ---- mock control ----
    async mockStats() {
        const r = await fetchT(`${this.mockUrl}/_mock/stats`);
        if (r.status !== 200) throw new Error(`GET /_mock/stats: ${r.status}`);
        return r.json();
    }

    async mockConfig(cfg) {
        const r = await fetchT(`${this.mockUrl}/_mock/config`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(cfg),
        });
        if (r.status !== 200) throw new Error(`POST /_mock/config: ${r.status} ${await r.text()}`);
    }

    async mockReset() {
        const r = await fetchT(`${this.mockUrl}/_mock/reset`, { method: 'POST' });
        if (r.status !== 200) throw new Error(`POST /_mock/reset: ${r.status}`);
    }

    // Lines of the access log parsed as JSON (throws on a line that is not JSON).
    accessLogEntries() {
        if (!fs.existsSync(this.accessLog)) return [];
        return fs.readFileSync(this.accessLog, 'utf8')
            .split('\n')
            .filter((l) => l.trim() !== '')
            .map((l) => {
                try {
                    return JSON.parse(l);
                } catch (e) {
                    throw new Error(`access log line is not JSON: ${l}`);
                }
            });
    }

    // Stops proxy then mock with SIGTERM. With <check> (default) throws unless both exited
    // with code 0 in time, including their stderr in the message.
    async stop({ check = true } = {}) {
        const problems = [];
        for (const p of [this.proxy, this.mock]) {
            if (!p) continue;
            const wasDead = p.exit && !p.stopping;
            p.stopping = true;
            const r = await p.stop(5000);
            if (wasDead) problems.push(`${p.name} died during the test`);
            else if (r.timedOut) problems.push(`${p.name} did not exit within ${5 * SLOW} s of SIGTERM`);
            else if (r.code !== 0) problems.push(`${p.name} exited with ${JSON.stringify(r)} after SIGTERM`);
        }
        if (problems.length === 0 || !check) {
            fs.rmSync(this.dir, { recursive: true, force: true });
        }
        if (check && problems.length) {
            throw new Error(problems.join('; ') + '\n' + this.procs.map((p) => p.describe()).join('\n'));
        }
    }

    describe() {
        return this.procs.map((p) => p.describe()).join('\n');
    }
}

// ---- HTTP helpers ----------------------------------------------------------------------------

// fetch with a timeout (default 10 s).
export async function fetchT(url, init = {}, timeoutMs = 10000) {
    return fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs * SLOW) });
}

// POST JSON to the proxy without the SDK; returns { status, headers, body, json }.
export async function postJson(url, obj, headers = {}) {
    const r = await fetchT(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof obj === 'string' ? obj : JSON.stringify(obj),
    });
    const body = await r.text();
    let json;
    try {
        json = JSON.parse(body);
    } catch {
        json = undefined;
    }
    return { status: r.status, headers: r.headers, body, json };
}

// Runs the real curl binary; returns { code, stdout, stderr }. Never hangs: --max-time is
// the caller's, and the process is killed after <timeoutMs>.
export function curl(args, { input, timeoutMs = 15000 } = {}) {
    return new Promise((resolve) => {
        const child = spawn('curl', ['-sS', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs * SLOW);
        child.on('exit', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
        child.stdin.on('error', () => {});
        if (input !== undefined) child.stdin.end(input);
        else child.stdin.end();
    });
}

export function haveCurl() {
    return spawnSync('curl', ['--version']).status === 0;
}

// Asserts that <body> is an OpenAI error object; returns its "error" member.
export function errorObject(assert, body, what = 'error body') {
    let j;
    try {
        j = typeof body === 'string' ? JSON.parse(body) : body;
    } catch {
        assert.fail(`${what} is not JSON: ${body}`);
    }
    assert.ok(j && typeof j.error === 'object' && j.error !== null, `${what} has no "error": ${body}`);
    assert.equal(typeof j.error.message, 'string', `${what}: error.message`);
    assert.ok(j.error.message.length > 0, `${what}: empty error.message`);
    assert.equal(typeof j.error.type, 'string', `${what}: error.type`);
    assert.ok('param' in j.error, `${what}: error.param missing`);
    assert.ok('code' in j.error, `${what}: error.code missing`);
    return j.error;
}

// The text of the last user message the mock echoes.
export function userMsg(text) {
    return [{ role: 'user', content: text }];
}

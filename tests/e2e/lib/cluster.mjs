// tests/e2e/lib/cluster.mjs - a control plane, managed proxies, a mock and (optionally) etcd,
// all real processes on ephemeral loopback ports, for the control-plane e2e tests.
//
// A Cluster owns every process it starts. cluster.stop() (call it in after()) stops them
// in order (proxies, control planes, mock, etcd) with SIGTERM and, for the switchyard
// processes, asserts exit code 0 within a few seconds (under ASan/LSan a leak is a non-zero
// exit). A process killed on purpose (kill9()) or stopped on purpose (stop()) is not
// reported. cluster.guard(fn) appends every process's stderr to a failure's message.
// Environment: SY_BIN_DIR as for harness.mjs.

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
    BIN_DIR, REPO, SDK_DIR, SLOW, OpenAI, Proc, basePolicy, closedPort, fetchT, sleep, waitFor,
} from './harness.mjs';

export { basePolicy, sleep, waitFor, fetchT, SLOW, BIN_DIR, REPO };

// A package from tests/sdk/node_modules (installed by scripts/deps.sh), e.g. @grpc/grpc-js.
export function requireSdk(name) {
    const pkg = path.join(SDK_DIR, 'node_modules', name, 'package.json');
    if (!fs.existsSync(pkg)) {
        throw new Error(`${pkg} not found: run scripts/deps.sh (it runs npm install in tests/sdk).`);
    }
    return createRequire(path.join(SDK_DIR, 'package.json'))(name);
}

// The environment every managed proxy gets unless told otherwise (basePolicy's key).
export const MOCK_KEY_ENV = { SY_TEST_MOCK_KEY: 'sk-test-mock-key' };

// Waits for <re> (with one capture group, the port) on <proc>'s stderr.
async function portFrom(proc, re, what, timeoutMs = 10000) {
    await waitFor(() => re.test(proc.stderr) || proc.exit, {
        timeoutMs,
        intervalMs: 20,
        what: `${proc.name} to log "${what}"`,
    }).catch((e) => {
        throw new Error(`${e.message}\n${proc.describe()}`);
    });
    const m = re.exec(proc.stderr);
    if (!m) throw new Error(`${proc.name} exited before "${what}"\n${proc.describe()}`);
    return Number(m[1]);
}

// { status, headers, body, json } of one HTTP request; json is undefined unless JSON.
export async function httpJson(url, { method = 'GET', body, contentType, timeoutMs = 10000 } = {}) {
    const init = { method, headers: {} };
    if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        init.headers['content-type'] = contentType ||
            (typeof body === 'string' ? 'application/yaml' : 'application/json');
    }
    const r = await fetchT(url, init, timeoutMs);
    const text = await r.text();
    let json;
    try {
        json = JSON.parse(text);
    } catch {
        json = undefined;
    }
    return { status: r.status, headers: r.headers, body: text, json };
}

// ---- the pieces ----------------------------------------------------------------------------

export class Mock {
    constructor(cluster) {
        this.cluster = cluster;
    }

    async start() {
        this.proc = this.cluster.spawn('mockllm', 'switchyard-mockllm',
                                       ['--listen', '127.0.0.1:0', '--name', 'mock']);
        this.port = await this.proc.port();
        this.url = `http://127.0.0.1:${this.port}`;
        this.baseURL = `${this.url}/v1`;
        return this;
    }

    async config(cfg) {
        const r = await httpJson(`${this.url}/_mock/config`, { method: 'POST', body: cfg });
        if (r.status !== 200) throw new Error(`POST /_mock/config: ${r.status} ${r.body}`);
    }

    async reset() {
        const r = await httpJson(`${this.url}/_mock/reset`, { method: 'POST' });
        if (r.status !== 200) throw new Error(`POST /_mock/reset: ${r.status}`);
    }
}

export class ControlPlane {
    // <store>: 'file' (a fresh directory under the cluster's), 'file:DIR', or 'etcd:URLS'.
    constructor(cluster, { id, store = 'file', prefix, bootstrap, args = [] } = {}) {
        this.cluster = cluster;
        this.id = id || `cp-${cluster.seq()}`;
        if (store === 'file') {
            this.storeDir = path.join(cluster.dir, `store-${this.id}`);
            store = `file:${this.storeDir}`;
        } else if (store.startsWith('file:')) {
            this.storeDir = store.slice(5);
        }
        this.store = store;
        this.prefix = prefix;
        this.bootstrap = bootstrap;
        this.extraArgs = args;
        this.grpcPort = 0;
        this.adminPort = 0;
        this.generation = 0;
    }

    args() {
        const a = [
            '--grpc-listen', `127.0.0.1:${this.grpcPort}`,
            '--admin-listen', `127.0.0.1:${this.adminPort}`,
            '--store', this.store,
            '--id', this.id,
        ];
        if (this.prefix) a.push('--etcd-prefix', this.prefix);
        if (this.bootstrap) a.push('--bootstrap-policy', this.bootstrap);
        return [...a, ...this.extraArgs];
    }

    // Starts the process. The first start picks free ports; a restart listens on the same
    // ones (proxies were told the gRPC address), retrying while the old socket lingers.
    async start() {
        const deadline = Date.now() + 10000 * SLOW;
        for (;;) {
            this.generation++;
            this.proc = this.cluster.spawn(`control[${this.id}#${this.generation}]`,
                                           'switchyard-control', this.args());
            try {
                const grpc = await portFrom(this.proc, /grpc listening on \S+:(\d+)/, 'grpc listening on');
                const admin = await portFrom(this.proc, /admin listening on \S+:(\d+)/, 'admin listening on');
                this.grpcPort = grpc;
                this.adminPort = admin;
                break;
            } catch (e) {
                // Only a restart on fixed ports is retried (bind races with the old socket).
                if (!this.proc.exit || this.generation === 1 || Date.now() > deadline) throw e;
                this.proc.stopping = true;
                await sleep(250);
            }
        }
        this.grpcAddr = `127.0.0.1:${this.grpcPort}`;
        this.url = `http://127.0.0.1:${this.adminPort}`;
        return this;
    }

    // SIGKILL: a crash. The process is not reported at teardown.
    async kill9() {
        this.proc.stopping = true;
        this.proc.signal('SIGKILL');
        await this.proc.exited;
    }

    // SIGTERM, asserting exit 0 (throws otherwise).
    async stop() {
        return this.cluster.stopProc(this.proc);
    }

    api(p, opts) {
        return httpJson(`${this.url}${p}`, opts);
    }

    // POST /v1/policies; <policy> is an object (sent as JSON) or a string (sent as YAML).
    // Returns the reply ({status, json, ...}) without judging it.
    pushRaw(policy, { note, activate } = {}) {
        const q = new URLSearchParams();
        if (note !== undefined) q.set('note', note);
        if (activate !== undefined) q.set('activate', String(activate));
        const qs = q.toString();
        return this.api(`/v1/policies${qs ? `?${qs}` : ''}`, { method: 'POST', body: policy });
    }

    // As pushRaw, but throws unless the answer is 201; returns its JSON.
    async push(policy, opts) {
        const r = await this.pushRaw(policy, opts);
        if (r.status !== 201) throw new Error(`POST /v1/policies: ${r.status} ${r.body}`);
        return r.json;
    }

    async fleet() {
        const r = await this.api('/v1/fleet');
        if (r.status !== 200) throw new Error(`GET /v1/fleet: ${r.status} ${r.body}`);
        return r.json;
    }

    async policies() {
        const r = await this.api('/v1/policies');
        if (r.status !== 200) throw new Error(`GET /v1/policies: ${r.status} ${r.body}`);
        return r.json;
    }

    // Resolves with the fleet once pred(fleet) is truthy.
    async waitFleet(pred, what, timeoutMs = 15000) {
        let last;
        return waitFor(async () => {
            last = await this.fleet();
            return pred(last) ? last : null;
        }, { timeoutMs, intervalMs: 100, what: `fleet on ${this.id}: ${what}` }).catch((e) => {
            throw new Error(`${e.message}\nlast fleet: ${JSON.stringify(last)}`);
        });
    }
}

// The entry for <nodeId> in a fleet reply (undefined if absent).
export function nodeOf(fleet, nodeId) {
    return (fleet.proxies || []).find((p) => p.node_id === nodeId);
}

export class ManagedProxy {
    constructor(cluster, cp, { nodeId, stateDir = true, env = MOCK_KEY_ENV, zone, workers = 2, args = [] } = {}) {
        this.cluster = cluster;
        this.cp = cp;
        this.nodeId = nodeId || `px-${cluster.seq()}`;
        this.stateDir = stateDir === true ? path.join(cluster.dir, `state-${this.nodeId}`) : stateDir || null;
        this.env = env;
        this.zone = zone;
        this.workers = workers;
        this.extraArgs = args;
        this.generation = 0;
    }

    args() {
        const a = [
            '--listen', '127.0.0.1:0',
            '--control-plane', this.cp.grpcAddr,
            '--node-id', this.nodeId,
            '--workers', String(this.workers),
            '--access-log', 'off',
            '--drain-timeout-ms', '3000',
        ];
        if (this.stateDir) a.push('--state-dir', this.stateDir);
        if (this.zone) a.push('--zone', this.zone);
        return [...a, ...this.extraArgs];
    }

    // Starts the process (again, after stop()); does not wait for a policy.
    async start() {
        this.generation++;
        this.proc = this.cluster.spawn(`proxy[${this.nodeId}#${this.generation}]`,
                                       'switchyard-proxy', this.args(), this.env);
        this.port = await this.proc.port();
        this.url = `http://127.0.0.1:${this.port}`;
        this.baseURL = `${this.url}/v1`;
        return this;
    }

    async stop() {
        return this.cluster.stopProc(this.proc);
    }

    client(extra = {}) {
        return new OpenAI({
            apiKey: 'sk-client-key-the-proxy-replaces',
            baseURL: this.baseURL,
            maxRetries: 0,
            timeout: 20000 * SLOW,
            ...extra,
        });
    }

    async readyz() {
        return (await httpJson(`${this.url}/readyz`)).status;
    }

    // The policy version the proxy answers with now (header of GET /v1/models), or null.
    async version() {
        const r = await fetchT(`${this.url}/v1/models`);
        await r.arrayBuffer();
        return r.headers.get('x-switchyard-policy-version');
    }

    // A chat completion with the SDK: { text, version, status }.
    async chat(text, model = 'mock-a') {
        const { data, response } = await this.client().chat.completions
            .create({ model, messages: [{ role: 'user', content: text }] })
            .withResponse();
        return {
            text: data.choices[0].message.content,
            version: response.headers.get('x-switchyard-policy-version'),
            status: response.status,
        };
    }

    // Waits until the proxy answers with policy version <v> (a number or string).
    async waitVersion(v, timeoutMs = 15000) {
        let last;
        await waitFor(async () => {
            last = await this.version();
            return last === String(v);
        }, { timeoutMs, intervalMs: 100, what: `${this.nodeId} to serve policy version ${v}` }).catch((e) => {
            throw new Error(`${e.message} (last seen: ${last})`);
        });
    }
}

export class Etcd {
    constructor(cluster) {
        this.cluster = cluster;
        this.dataDir = path.join(cluster.dir, `etcd-${cluster.seq()}`);
    }

    async start() {
        const bin = process.env.SY_ETCD || '/usr/bin/etcd';
        if (!fs.existsSync(bin)) throw new Error(`${bin} not found: install etcd-server (scripts/deps.sh)`);
        this.cluster.etcds.push(this);
        for (let attempt = 1; ; attempt++) {
            const client = await closedPort();
            let peer = await closedPort();
            while (peer === client) peer = await closedPort();
            this.port = client;
            this.url = `http://127.0.0.1:${client}`;
            const peerUrl = `http://127.0.0.1:${peer}`;
            this.proc = new Proc(`etcd#${attempt}`, bin, [
                '--name', 't',
                '--data-dir', this.dataDir,
                '--listen-client-urls', this.url,
                '--advertise-client-urls', this.url,
                '--listen-peer-urls', peerUrl,
                '--initial-advertise-peer-urls', peerUrl,
                '--initial-cluster', `t=${peerUrl}`,
                '--log-level', 'warn',
            ], {});
            try {
                await waitFor(async () => {
                    if (this.proc.exit) throw new Error('etcd exited');
                    const r = await httpJson(`${this.url}/health`, { timeoutMs: 1000 });
                    return r.json && r.json.health === 'true';
                }, { timeoutMs: 10000, intervalMs: 100, what: 'etcd /health' });
                return this;
            } catch (e) {
                this.proc.stopping = true;
                this.proc.signal('SIGKILL');
                await this.proc.exited;
                fs.rmSync(this.dataDir, { recursive: true, force: true });
                if (attempt >= 2) throw new Error(`${e.message}\n${this.proc.describe()}`);
            }
        }
    }
}

// ---- the cluster ---------------------------------------------------------------------------

const DESCRIBED = Symbol('described');

export class Cluster {
    constructor() {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-e2e-cp-'));
        this.procs = []; // every switchyard Proc ever started, in order
        this.etcds = [];
        this.proxies = [];
        this.controls = [];
        this.n = 0;
    }

    seq() {
        return ++this.n;
    }

    spawn(name, bin, args, env = {}) {
        const p = new Proc(name, path.join(BIN_DIR, bin), args, env);
        this.procs.push(p);
        return p;
    }

    async mock() {
        this.mockServer = await new Mock(this).start();
        return this.mockServer;
    }

    async etcd() {
        return new Etcd(this).start();
    }

    async control(opts) {
        const cp = new ControlPlane(this, opts);
        this.controls.push(cp);
        return cp.start();
    }

    async proxy(cp, opts) {
        const px = new ManagedProxy(this, cp, opts);
        this.proxies.push(px);
        return px.start();
    }

    // SIGTERM one process on purpose; throws unless it exits 0 in time.
    async stopProc(p) {
        if (!p) return;
        const wasDead = p.exit && !p.stopping;
        p.stopping = true;
        const r = await p.stop(8000);
        let problem = null;
        if (wasDead) problem = `${p.name} died during the test (${JSON.stringify(p.exit)})`;
        else if (r.timedOut) problem = `${p.name} did not exit within ${8 * SLOW} s of SIGTERM`;
        else if (r.code !== 0) problem = `${p.name} exited with ${JSON.stringify(r)} after SIGTERM`;
        if (problem) throw new Error(`${problem}\n${p.describe()}`);
        return r;
    }

    // Stops everything still running: proxies, then control planes, then the rest. With
    // <check> throws unless every switchyard process exited 0 (or was stopped on purpose).
    async stop({ check = true } = {}) {
        const problems = [];
        const order = [
            ...this.procs.filter((p) => p.name.startsWith('proxy')),
            ...this.procs.filter((p) => p.name.startsWith('control')),
            ...this.procs.filter((p) => !p.name.startsWith('proxy') && !p.name.startsWith('control')),
        ];
        for (const p of order) {
            if (p.stopping && p.exit) continue; // stopped or killed on purpose, already judged
            try {
                await this.stopProc(p);
            } catch (e) {
                problems.push(e.message);
            }
        }
        for (const e of this.etcds) {
            if (e.proc && !e.proc.exit) {
                e.proc.stopping = true;
                await e.proc.stop(5000);
            }
        }
        if (problems.length === 0 || !check) fs.rmSync(this.dir, { recursive: true, force: true });
        if (check && problems.length) throw new Error(problems.join('\n'));
    }

    describe() {
        const all = [...this.procs, ...this.etcds.map((e) => e.proc).filter(Boolean)];
        return all.map((p) => p.describe()).join('\n');
    }

    // Runs fn(); a failure's message gets every process's stderr appended.
    async guard(fn) {
        try {
            return await fn();
        } catch (e) {
            if (e && typeof e === 'object' && !e[DESCRIBED]) {
                Object.defineProperty(e, DESCRIBED, { value: true });
                const more = `\n==== processes ====\n${this.describe()}`;
                e.message += more;
                // node:test prints the stack, captured with the original message.
                if (typeof e.stack === 'string') e.stack += more;
            }
            throw e;
        }
    }
}

// Starts a Cluster; teardown is the caller's (after(() => cluster.stop())).
export function newCluster() {
    return new Cluster();
}

// ---- switchyardctl -------------------------------------------------------------------------

// Runs switchyardctl with <args>; resolves { code, signal, stdout, stderr }. Killed after
// <timeoutMs> (then code is null).
export function ctl(args, { input, env = {}, cwd, timeoutMs = 20000 } = {}) {
    const bin = path.join(BIN_DIR, 'switchyardctl');
    if (!fs.existsSync(bin)) throw new Error(`${bin} not found (build first, or set SY_BIN_DIR)`);
    return new Promise((resolve) => {
        const childEnv = { ...process.env, NO_COLOR: '1', ...env };
        if (!('COLUMNS' in env)) delete childEnv.COLUMNS; // nothing is cut off a pipe then
        if (!('SWITCHYARD_SERVER' in env)) delete childEnv.SWITCHYARD_SERVER;
        const child = spawn(bin, args, {
            env: childEnv,
            cwd,
            stdio: ['pipe', 'pipe', 'pipe'],
        });
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

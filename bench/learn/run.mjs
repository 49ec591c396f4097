#!/usr/bin/env node
// bench/learn/run.mjs - learned routing, simulated: how fast does the learner put traffic on
// the best arm, what does it cost on the way (regret), and does it follow when the best arm
// changes?
//
// Starts three switchyard-mockllm processes (one per arm, with different latencies), a
// control plane (file store in a temporary directory) and one managed proxy, all on
// ephemeral loopback ports, and pushes a policy whose route "bench" has strategy learned over
// the three arms (with different prices). A driver sends chat requests through the proxy and
// posts feedback for every answer to the control plane: thumbs up with a hidden probability
// per arm, drawn from a seeded generator. After phase 1 the hidden probabilities change so
// that another arm is best (phase 2). Every CHECK feedback events it prints the share of the
// last WINDOW requests that went to the best arm (by the oracle utility, the learner's own
// formula on the hidden rates and the configured prices and latencies), the regret against
// always choosing the best arm, and the cost against always choosing the highest-quality arm.
//
// Targets: >= 90% of traffic on the best arm within 2,000 feedback events of the start, and
// again within 2,000 after the change. Exit status 0 when both are met, 1 when not, 2 on a
// setup error. It stops by itself (--max-seconds) and stops every process it started.
//
// usage: node bench/learn/run.mjs [--bin-dir DIR] [--seed N] [--phase-events N]
//                                 [--concurrency N] [--max-seconds S] [--keep]
//   --bin-dir DIR       the binaries (default $SY_BIN_DIR, else <repo>/build/bin)
//   --seed N            seed of the thumbs (default 1)
//   --phase-events N    feedback events per phase (default 3000)
//   --concurrency N     requests in flight (default 8)
//   --max-seconds S     hard limit for the whole run (default 150)
//   --keep              keep the temporary directory (logs, store)

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// ---- options -----------------------------------------------------------------------------

const opt = {
    binDir: process.env.SY_BIN_DIR || path.join(REPO, 'build/bin'),
    seed: 1,
    phaseEvents: 3000,
    concurrency: 8,
    maxSeconds: 150,
    keep: false,
};
for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    const next = () => {
        if (i + 1 >= process.argv.length) usage(`${a}: missing value`);
        return process.argv[++i];
    };
    if (a === '--bin-dir') opt.binDir = next();
    else if (a === '--seed') opt.seed = Number(next());
    else if (a === '--phase-events') opt.phaseEvents = Number(next());
    else if (a === '--concurrency') opt.concurrency = Number(next());
    else if (a === '--max-seconds') opt.maxSeconds = Number(next());
    else if (a === '--keep') opt.keep = true;
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown option ${a}`);
}
for (const k of ['seed', 'phaseEvents', 'concurrency', 'maxSeconds']) {
    if (!Number.isInteger(opt[k]) || opt[k] < (k === 'seed' ? 0 : 1)) usage(`bad value for ${k}`);
}

function usage(msg) {
    const text = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8')
        .split('\n').filter((l) => l.startsWith('//')).slice(0, 30)
        .map((l) => l.replace(/^\/\/ ?/, '')).join('\n');
    if (msg) {
        console.error(`run.mjs: ${msg}`);
        process.exit(2);
    }
    console.log(text);
    process.exit(0);
}

// ---- the simulated world -------------------------------------------------------------------

const CHECK = 250;   // report every CHECK feedback events
const WINDOW = 200;  // share on the best arm over the last WINDOW requests
const TARGET_SHARE = 0.9;
const TARGET_EVENTS = 2000;

// Prices (USD per million tokens) and mock latencies: cost ratios 1 : 1/3 : 1/20.
const ARMS = [
    { model: 'premium', input: 15, output: 45, latencyMs: 40 },
    { model: 'mid', input: 5, output: 15, latencyMs: 20 },
    { model: 'cheap', input: 0.75, output: 2.25, latencyMs: 10 },
];
const OBJECTIVE = { quality: 1, cost: 0.5, latency: 0.1 };
// Hidden thumbs-up probabilities. Phase 1: premium is the best-rated but mid is best value;
// phase 2: mid gets worse and cheap gets much better.
const PHASES = [
    { premium: 0.9, mid: 0.85, cheap: 0.4 },
    { premium: 0.9, mid: 0.45, cheap: 0.88 },
];
const LEARN = {
    objective: OBJECTIVE,
    update_period_s: 1,
    exploration: 0.02,
    max_step: 0.4,
    min_samples: 10,
    threshold: 0.02,
    discount: 0.8,
};

// The learner's utility with the true rates and the configured cost and latency.
function utilities(rates) {
    const maxCost = Math.max(...ARMS.map((a) => a.input + a.output));
    const maxLat = Math.max(...ARMS.map((a) => a.latencyMs));
    return Object.fromEntries(ARMS.map((a) => [a.model,
        OBJECTIVE.quality * rates[a.model] -
        OBJECTIVE.cost * (a.input + a.output) / maxCost -
        OBJECTIVE.latency * a.latencyMs / maxLat]));
}

// mulberry32: a small seeded generator, so the thumbs are the same draws run after run.
function rng(seed) {
    let s = seed >>> 0;
    return () => {
        s = (s + 0x6d2b79f5) >>> 0;
        let t = s;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

// ---- processes -------------------------------------------------------------------------------

const children = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-bench-learn-'));

function start(name, bin, args, env = {}) {
    const file = path.join(opt.binDir, bin);
    if (!fs.existsSync(file)) {
        console.error(`run.mjs: ${file} not found: build first (cmake --build build) or pass --bin-dir`);
        cleanup(2);
    }
    const log = fs.openSync(path.join(tmp, `${name}.log`), 'w');
    const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', log] });
    child.logPath = path.join(tmp, `${name}.log`);
    child.name = name;
    children.push(child);
    return child;
}

async function waitLog(child, re, what, ms = 10000) {
    const until = Date.now() + ms;
    for (;;) {
        const m = re.exec(fs.readFileSync(child.logPath, 'utf8'));
        if (m) return m;
        if (child.exitCode !== null || Date.now() > until) {
            console.error(`run.mjs: ${child.name}: no "${what}"; its log:\n` +
                          fs.readFileSync(child.logPath, 'utf8').slice(-2000));
            cleanup(2);
        }
        await sleep(20);
    }
}

function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
}

let cleaning = false;
function cleanup(code) {
    if (cleaning) return;
    cleaning = true;
    for (const c of children.reverse()) {
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    }
    setTimeout(() => {
        for (const c of children) {
            if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        }
        if (opt.keep) console.error(`run.mjs: logs and store kept in ${tmp}`);
        else fs.rmSync(tmp, { recursive: true, force: true });
        process.exit(code);
    }, 1500);
}
process.on('SIGINT', () => cleanup(130));
process.on('SIGTERM', () => cleanup(143));
const deadline = setTimeout(() => {
    console.error(`run.mjs: --max-seconds ${opt.maxSeconds} reached; stopping`);
    report();
    cleanup(1);
}, opt.maxSeconds * 1000);

async function post(url, body) {
    const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10000),
    });
    const text = await r.text();
    return { status: r.status, headers: r.headers, text };
}

// ---- the run ---------------------------------------------------------------------------------

const records = []; // per accepted feedback: { phase, model, cost, premiumCost, regret }
const checkpoints = [];
const reached = [null, null]; // feedback events into the phase when >= 90% was first seen
let phase = 0;
let phaseStart = 0; // records.length when the phase began
let stopping = false;

function bestOf(p) {
    const u = utilities(PHASES[p]);
    return Object.keys(u).reduce((a, b) => (u[a] >= u[b] ? a : b));
}

function checkpoint() {
    const n = records.length;
    const inPhase = n - phaseStart;
    const best = bestOf(phase);
    const win = records.slice(Math.max(phaseStart, n - WINDOW));
    const share = win.filter((r) => r.model === best).length / win.length;
    const sum = (arr, f) => arr.reduce((s, r) => s + f(r), 0);
    const mine = records.slice(phaseStart);
    const row = {
        phase: phase + 1,
        events: inPhase,
        best,
        share,
        shares: Object.fromEntries(ARMS.map((a) => [a.model, win.filter((r) => r.model === a.model).length / win.length])),
        regretPerReq: sum(mine, (r) => r.regret) / Math.max(1, mine.length),
        regret: sum(mine, (r) => r.regret),
        costRatio: sum(mine, (r) => r.cost) / Math.max(1e-30, sum(mine, (r) => r.premiumCost)),
    };
    checkpoints.push(row);
    return row;
}

function fmtRow(r) {
    const sh = ARMS.map((a) => `${a.model} ${(100 * r.shares[a.model]).toFixed(0).padStart(3)}%`).join('  ');
    return `| ${r.phase} | ${String(r.events).padStart(5)} | ${r.best.padEnd(7)} | ` +
        `${(100 * r.share).toFixed(1).padStart(5)}% | ${sh} | ${r.regret.toFixed(1).padStart(7)} | ` +
        `${r.regretPerReq.toFixed(3)} | ${(100 * r.costRatio).toFixed(1).padStart(5)}% |`;
}

function report() {
    console.log('');
    for (let p = 0; p < 2; p++) {
        const rows = checkpoints.filter((r) => r.phase === p + 1);
        const last = rows[rows.length - 1];
        const ok = reached[p] !== null && reached[p] <= TARGET_EVENTS;
        console.log(`phase ${p + 1}: best arm ${bestOf(p)}; >= ${100 * TARGET_SHARE}% of the last ` +
            `${WINDOW} requests on it after ${reached[p] ?? 'never'} feedback events ` +
            `(target <= ${TARGET_EVENTS}): ${ok ? 'met' : 'NOT met'}` +
            (last ? `; at the end: ${(100 * last.share).toFixed(1)}% on it, regret ` +
                `${last.regret.toFixed(1)} (${last.regretPerReq.toFixed(3)} per request), cost ` +
                `${(100 * last.costRatio).toFixed(1)}% of always-${ARMS[0].model}` : ''));
    }
}

async function driver(i, draw, proxyUrl, cpUrl, arms) {
    let n = 0;
    while (!stopping) {
        let r;
        try {
            r = await post(`${proxyUrl}/v1/chat/completions`, {
                model: 'bench',
                messages: [{ role: 'user', content: `question ${i}.${n++}` }],
            });
        } catch (e) {
            console.error(`chat: ${e.message}`);
            await sleep(100);
            continue;
        }
        const model = r.headers.get('x-switchyard-model');
        const id = r.headers.get('x-switchyard-request-id');
        if (r.status !== 200 || !id || !arms[model]) {
            console.error(`chat: HTTP ${r.status} model=${model}: ${r.text.slice(0, 200)}`);
            await sleep(100);
            continue;
        }
        if (stopping) break;
        const p = phase;
        const up = draw() < PHASES[p][model];
        let f;
        try {
            f = await post(`${cpUrl}/v1/feedback`, { request_id: id, thumbs: up ? 'up' : 'down' });
        } catch (e) {
            console.error(`feedback: ${e.message}`);
            continue;
        }
        if (f.status !== 201) {
            console.error(`feedback: HTTP ${f.status}: ${f.text.slice(0, 200)}`);
            continue;
        }
        const usage = JSON.parse(r.text).usage || {};
        const tokCost = (a) => ((usage.prompt_tokens || 0) * a.input + (usage.completion_tokens || 0) * a.output) / 1e6;
        const u = utilities(PHASES[p]);
        records.push({
            phase: p,
            model,
            cost: tokCost(arms[model]),
            premiumCost: tokCost(ARMS[0]),
            regret: u[bestOf(p)] - u[model],
        });
        const inPhase = records.length - phaseStart;
        if (inPhase % 50 === 0 && reached[p] === null && inPhase >= WINDOW / 4) {
            const best = bestOf(p);
            const win = records.slice(Math.max(phaseStart, records.length - WINDOW));
            if (win.length >= WINDOW / 4 && win.filter((x) => x.model === best).length / win.length >= TARGET_SHARE)
                reached[p] = inPhase;
        }
        if (inPhase % CHECK === 0) console.log(fmtRow(checkpoint()));
        if (inPhase >= opt.phaseEvents && p === phase) {
            if (phase === 0) {
                phase = 1;
                phaseStart = records.length;
                console.log(`| - | change: ${JSON.stringify(PHASES[1])}; best is now ${bestOf(1)} | | | | | | |`);
            } else {
                stopping = true;
            }
        }
    }
}

async function main() {
    const mocks = {};
    for (const a of ARMS) {
        const m = start(`mock-${a.model}`, 'switchyard-mockllm',
                        ['--listen', '127.0.0.1:0', '--name', a.model, '--latency-ms', String(a.latencyMs)]);
        const port = (await waitLog(m, /listening on \S+:(\d+)/, 'listening on'))[1];
        mocks[a.model] = `http://127.0.0.1:${port}/v1`;
    }
    const cp = start('control', 'switchyard-control', [
        '--grpc-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0',
        '--store', `file:${path.join(tmp, 'store')}`, '--id', 'bench-cp',
    ]);
    const grpc = (await waitLog(cp, /grpc listening on \S+:(\d+)/, 'grpc listening on'))[1];
    const admin = (await waitLog(cp, /admin listening on \S+:(\d+)/, 'admin listening on'))[1];
    const cpUrl = `http://127.0.0.1:${admin}`;
    const policy = {
        providers: ARMS.map((a) => ({ name: `p-${a.model}`, kind: 'openai', base_url: mocks[a.model] })),
        models: ARMS.map((a) => ({
            name: a.model, provider: `p-${a.model}`,
            pricing: { input_per_mtok: a.input, output_per_mtok: a.output },
        })),
        routes: [{
            name: 'bench', match: { model: 'bench' }, strategy: 'learned',
            targets: ARMS.map((a) => ({ model: a.model, weight: 1 })),
            learn: LEARN,
        }],
    };
    const pushed = await post(`${cpUrl}/v1/policies?note=bench`, policy);
    if (pushed.status !== 201) {
        console.error(`run.mjs: push: HTTP ${pushed.status}: ${pushed.text}`);
        cleanup(2);
        return;
    }
    const px = start('proxy', 'switchyard-proxy', [
        '--listen', '127.0.0.1:0', '--control-plane', `127.0.0.1:${grpc}`, '--node-id', 'bench-px',
        '--workers', '2', '--access-log', 'off',
    ]);
    const pport = (await waitLog(px, /listening on \S+:(\d+)/, 'listening on'))[1];
    const proxyUrl = `http://127.0.0.1:${pport}`;
    for (let t = 0; ; t++) {
        try {
            if ((await fetch(`${proxyUrl}/readyz`)).status === 200) break;
        } catch { /* not yet */ }
        if (t > 200) {
            console.error('run.mjs: the proxy never got ready');
            cleanup(2);
            return;
        }
        await sleep(50);
    }

    const u1 = utilities(PHASES[0]);
    const u2 = utilities(PHASES[1]);
    console.log(`learned route over ${ARMS.map((a) => `${a.model} ($${a.input}/$${a.output} per Mtok, ${a.latencyMs} ms)`).join(', ')}`);
    console.log(`objective ${JSON.stringify(OBJECTIVE)}; learn ${JSON.stringify({ ...LEARN, objective: undefined })}`);
    console.log(`phase 1 rates ${JSON.stringify(PHASES[0])}, utilities ${JSON.stringify(u1, (k, v) => (typeof v === 'number' ? +v.toFixed(3) : v))}`);
    console.log(`phase 2 rates ${JSON.stringify(PHASES[1])}, utilities ${JSON.stringify(u2, (k, v) => (typeof v === 'number' ? +v.toFixed(3) : v))}`);
    console.log(`seed ${opt.seed}, ${opt.concurrency} requests in flight, ${opt.phaseEvents} feedback events per phase\n`);
    console.log(`| phase | events | best | on best (last ${WINDOW}) | shares (last ${WINDOW}) | regret | regret/req | cost vs always-${ARMS[0].model} |`);
    console.log('|---|---|---|---|---|---|---|---|');

    const draw = rng(opt.seed);
    const arms = Object.fromEntries(ARMS.map((a) => [a.model, a]));
    const t0 = Date.now();
    await Promise.all(Array.from({ length: opt.concurrency }, (_, i) => driver(i, draw, proxyUrl, cpUrl, arms)));
    const secs = (Date.now() - t0) / 1000;
    clearTimeout(deadline);
    report();
    const versions = JSON.parse((await (await fetch(`${cpUrl}/v1/policies`)).text()));
    console.log(`${records.length} feedback events in ${secs.toFixed(1)} s ` +
        `(${(records.length / secs).toFixed(0)}/s); ${versions.versions.length - 1} learned versions`);
    const ok = reached.every((r) => r !== null && r <= TARGET_EVENTS);
    cleanup(ok ? 0 : 1);
}

main().catch((e) => {
    console.error(`run.mjs: ${e.stack || e}`);
    cleanup(2);
});

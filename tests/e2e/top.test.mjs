// tests/e2e/top.test.mjs - switchyard-top against a real control plane (file store), a
// managed proxy and switchyard-mockllm, after chat traffic through the proxy:
//   - --once for every view, its numbers equal to what the admin API reports, and the exit
//     statuses (0 ok, 1 unreachable or an error answer, 2 bad arguments);
//   - the live dashboard inside a real tmux session: numbers equal to the API's, views
//     switched with 1-6 and Tab, sort/window/pause/help keys, resizes down to "terminal too
//     small" and back, a control-plane restart (SIGTERM: the status line says unreachable;
//     started again on the same ports and store: data comes back), colours off with
//     NO_COLOR, and `q` exiting 0.
// Every wait polls with a timeout; nothing sleeps a fixed time to assert something.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { newCluster, basePolicy, waitFor, sleep, SLOW, BIN_DIR } from './lib/cluster.mjs';
import { closedPort } from './lib/harness.mjs';

const TOP = path.join(BIN_DIR, 'switchyard-top');
const T = { timeout: 120000 * SLOW };
const TMUX_OK = spawnSync('tmux', ['-V']).status === 0;

let c;
let cp;
let mock;
let px;
let chats = 0;

// ---- helpers -------------------------------------------------------------------------------

// The dashboard's number formats (tui/tui_format.c), for comparing with the API's numbers.
function fmtCount(n) {
    if (n < 10000) return String(n);
    throw new Error(`fmtCount: ${n} is beyond what this test sends`);
}

function fmtUsd(v) {
    const a = Math.abs(v);
    const sign = v < 0 ? '-' : '';
    if (a === 0) return '$0.00';
    if (a < 0.0001) return `${sign}$${a.toFixed(6)}`;
    if (a < 0.995) return `${sign}$${a.toFixed(4)}`;
    if (a < 9999.995) return `${sign}$${a.toFixed(2)}`;
    throw new Error(`fmtUsd: ${v} is beyond what this test sends`);
}

// Runs switchyard-top with <args>; resolves { code, signal, stdout, stderr }.
function top(args, { env = {}, timeoutMs = 20000 } = {}) {
    assert.ok(fs.existsSync(TOP), `${TOP} not found (build first, or set SY_BIN_DIR)`);
    return new Promise((resolve) => {
        const childEnv = { ...process.env, ...env };
        delete childEnv.SWITCHYARD_SERVER;
        const child = spawn(TOP, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs * SLOW);
        child.on('exit', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
    });
}

function show(r) {
    return `exit ${r.code} signal ${r.signal}\n--- stdout:\n${r.stdout}\n--- stderr:\n${r.stderr}`;
}

async function api(p) {
    const r = await cp.api(p);
    assert.equal(r.status, 200, `GET ${p}: ${r.status} ${r.body}`);
    return r.json;
}

// Sends <n> chat completions through the proxy (every third one streamed).
async function sendChats(n) {
    const client = px.client();
    for (let i = 0; i < n; i++) {
        const messages = [{ role: 'user', content: `top test ${chats + i}` }];
        if (i % 3 === 2) {
            const stream = await client.chat.completions.create({ model: 'auto', stream: true, messages });
            for await (const chunk of stream) void chunk;
        } else {
            const r = await client.chat.completions.create({ model: 'auto', messages });
            assert.match(r.choices[0].message.content, /top test/);
        }
    }
    chats += n;
}

// Waits until the control plane's 1h stats count <n> requests; returns the stats.
async function statsWithRequests(n) {
    let last;
    return waitFor(async () => {
        last = await api('/v1/stats?window=1h');
        return last.totals.requests === n ? last : null;
    }, { timeoutMs: 20000, intervalMs: 200, what: `/v1/stats to count ${n} requests` }).catch((e) => {
        throw new Error(`${e.message}; last totals: ${JSON.stringify(last && last.totals)}`);
    });
}

// ---- tmux ----------------------------------------------------------------------------------

class Tmux {
    constructor(dir, name) {
        this.sock = path.join(dir, `tmux-${name}.sock`);
        this.name = name;
        this.exitFile = path.join(dir, `${name}.exit`);
        this.errFile = path.join(dir, `${name}.stderr`);
    }

    run(args, { check = true } = {}) {
        // tmux wants a UTF-8 locale whatever the caller has.
        const env = { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
        const r = spawnSync('tmux', ['-S', this.sock, ...args], { encoding: 'utf8', env, timeout: 10000 });
        if (check && r.status !== 0) {
            throw new Error(`tmux ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
        }
        return r;
    }

    // Starts switchyard-top with <args> in a detached <cols>x<rows> session. The exit status
    // and stderr go to files (the session ends when the program does).
    start(args, { cols = 100, rows = 30, env = {} } = {}) {
        const vars = { LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', ...env };
        for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) {
            if (process.env[k] !== undefined && vars[k] === undefined) vars[k] = process.env[k];
        }
        const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
        const envs = Object.entries(vars).map(([k, v]) => `${k}=${q(v)}`).join(' ');
        const cmd = `env -u SWITCHYARD_SERVER ${envs} ${q(TOP)} ${args.map(q).join(' ')} ` +
            `2>${q(this.errFile)}; echo $? >${q(this.exitFile)}`;
        this.run(['-f', '/dev/null', 'new-session', '-d', '-s', this.name, '-x', String(cols),
                  '-y', String(rows), cmd]);
    }

    capture({ escapes = false } = {}) {
        const r = this.run(['capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', this.name],
                           { check: false });
        return r.status === 0 ? r.stdout : '';
    }

    keys(...keys) {
        this.run(['send-keys', '-t', this.name, ...keys]);
    }

    resize(cols, rows) {
        this.run(['resize-window', '-t', this.name, '-x', String(cols), '-y', String(rows)]);
    }

    // Resolves with the screen once pred(screen) is truthy.
    async until(pred, what, timeoutMs = 15000) {
        let last = '';
        return waitFor(async () => {
            last = this.capture();
            return (await pred(last)) ? last : null;
        }, { timeoutMs, intervalMs: 150, what: `screen: ${what}` }).catch((e) => {
            throw new Error(`${e.message}\n--- last screen:\n${last}\n--- stderr:\n${this.stderr()}`);
        });
    }

    stderr() {
        return fs.existsSync(this.errFile) ? fs.readFileSync(this.errFile, 'utf8') : '';
    }

    // Resolves with the exit status once the program has ended.
    async exited(timeoutMs = 10000) {
        const text = await waitFor(() => fs.existsSync(this.exitFile) &&
                                         fs.readFileSync(this.exitFile, 'utf8').trim(),
                                   { timeoutMs, intervalMs: 100, what: `${this.name} to exit` });
        return Number(text);
    }

    kill() {
        this.run(['kill-server'], { check: false });
    }
}

// Lines of <screen> with trailing spaces cut.
function lines(screen) {
    return screen.split('\n').map((l) => l.replace(/\s+$/, ''));
}

// Whether some SGR sequence in <screen> sets a foreground or background colour.
function hasColour(screen) {
    for (const m of screen.matchAll(/\x1b\[([0-9;:]*)m/g)) {
        for (const p of m[1].split(/[;:]/)) {
            const n = Number(p);
            if ((n >= 30 && n <= 38) || (n >= 40 && n <= 48) || (n >= 90 && n <= 107)) return true;
        }
    }
    return false;
}

// ---- the cluster ---------------------------------------------------------------------------

before(async () => {
    c = newCluster();
    try {
        mock = await c.mock();
        cp = await c.control({ id: 'cp-top' });
        await cp.push(basePolicy(mock.baseURL), { note: 'first from the top test' });
        px = await c.proxy(cp, { nodeId: 'top-node' });
        await px.waitVersion(1);
        await sendChats(12);
        await statsWithRequests(12);
        await waitFor(async () => (await api('/v1/spend?period=day')).total_usd > 0,
                      { timeoutMs: 20000, intervalMs: 200, what: '/v1/spend to record the spend' });
    } catch (e) {
        const d = c.describe();
        await c.stop({ check: false });
        c = null;
        e.message += `\n${d}`;
        throw e;
    }
});

after(async () => {
    if (c) await c.stop();
});

// ---- --once --------------------------------------------------------------------------------

test('--once: every view, numbers as the API reports them', T, () => c.guard(async () => {
    const stats = await api('/v1/stats?window=1h');
    let r = await top(['--once', '--server', cp.url, '--window', '1h']);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stderr, '', show(r));
    assert.match(r.stdout, new RegExp(`^switchyard-top overview: ${cp.url}, window 1h, \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC\\n`), show(r));
    assert.doesNotMatch(r.stdout, /\x1b/, 'no escape codes in --once output');
    assert.match(r.stdout, new RegExp(`Requests\\s+${fmtCount(stats.totals.requests)}\\s`), show(r));
    assert.match(r.stdout, new RegExp(`Cost\\s+${fmtUsd(stats.totals.cost_usd).replace('$', '\\$')}\\n`), show(r));
    assert.match(r.stdout, /Policy\s+version 1\s/, show(r));
    assert.match(r.stdout, /Proxies\s+1 connected of 1\n/, show(r));
    assert.match(r.stdout, /Traffic, last 1h \(1 proxy reporting\)/, show(r));

    // Traffic: one row per model, its request count as the API has it.
    r = await top(['--once', '--view', 'traffic', '--server', cp.url, '--window=1h']);
    assert.equal(r.code, 0, show(r));
    assert.ok(stats.models.length >= 1, JSON.stringify(stats.models));
    for (const m of stats.models) {
        const re = new RegExp(`^  ${m.provider}/${m.model}\\s+(\\d+)\\s`, 'm');
        const got = re.exec(r.stdout);
        assert.ok(got, `no row for ${m.provider}/${m.model}\n${show(r)}`);
        assert.equal(Number(got[1]), m.requests, `${m.model}: requests\n${show(r)}`);
    }
    assert.match(r.stdout, new RegExp(`^  TOTAL\\s+${stats.totals.requests}\\s`, 'm'), show(r));
    assert.match(r.stdout, /^  weighted\s+\d+\s/m, show(r));

    // Spend: today's and this month's cost of the one (unnamed) tenant.
    const day = await api('/v1/spend?period=day');
    const month = await api('/v1/spend?period=month');
    r = await top(['--once', '--view', 'spend', '--server', cp.url]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, new RegExp(`Today ${day.date}\\s+${fmtUsd(day.total_usd).replace('$', '\\$')}\\s`), show(r));
    assert.match(r.stdout, new RegExp(`Month ${month.date}\\s+${fmtUsd(month.total_usd).replace('$', '\\$')}\\s`), show(r));
    const tenant = month.tenants[0];
    const name = tenant.tenant || '(none)';
    const row = r.stdout.split('\n').find((l) => l.startsWith(`  ${name} `));
    assert.ok(row, `no row for tenant ${name}\n${show(r)}`);
    assert.ok(row.includes(fmtUsd(day.tenants[0].cost_usd)), `today's cost in ${row}`);
    assert.ok(row.includes(fmtUsd(tenant.cost_usd)), `month's cost in ${row}`);
    assert.match(r.stdout, /^  mock\/mock-a\s/m, show(r));

    r = await top(['--once', '--view', 'fleet', '--server', cp.url]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /Fleet: control plane cp-top, active version 1/, show(r));
    assert.match(r.stdout, /1 proxy: 1 connected, 0 behind, 0 with a NACK/, show(r));
    assert.match(r.stdout, /^  top-node\s.*\syes, \d\w*\s+1\s/m, show(r));

    r = await top(['--once', '--view', 'policies', '--server', cp.url]);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /Policies: active version 1, 1 version, newest first/, show(r));
    assert.match(r.stdout, /^  \*\s+1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+[0-9a-f]{12}\s+-\s+first from the top test$/m, show(r));

    r = await top(['--once', '--view', 'experiments', '--server', cp.url]);
    assert.equal(r.code, 0, show(r));
    const exp = await cp.api('/v1/experiments');
    if (exp.status === 404) {
        assert.match(r.stdout, /no experiments \(the control plane does not report any\)/, show(r));
    } else {
        assert.equal(exp.status, 200, exp.body);
        assert.match(r.stdout, new RegExp(`Experiments: ${exp.json.experiments.length}`), show(r));
    }
}));

test('--once: exit statuses and messages', T, () => c.guard(async () => {
    const port = await closedPort();
    let r = await top(['--once', '--server', `127.0.0.1:${port}`]);
    assert.equal(r.code, 1, show(r));
    assert.equal(r.stdout, '', show(r));
    assert.match(r.stderr, new RegExp(`^switchyard-top: cannot reach http://127\\.0\\.0\\.1:${port}: connection refused\\n$`), show(r));

    // A server that answers, but not as an admin API: the mock provider.
    r = await top(['--once', '--view', 'fleet', '--server', mock.url]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^switchyard-top: http:\/\/127\.0\.0\.1:\d+: GET \/v1\/fleet: HTTP 404/, show(r));

    for (const [args, msg] of [
        [['--bogus'], /unknown option '--bogus'/],
        [['--window', '5m'], /--window: '5m' is not one of 10s, 1m, 1h/],
        [['--view', 'charts', '--once'], /--view: 'charts' is not one of/],
        [['--interval', '5'], /--interval: '5' is not a number of milliseconds/],
        [['--server'], /option '--server' needs a value/],
        [['--server', 'ftp://x'], /--server: 'ftp:\/\/x' is not an http/],
        [['extra'], /unexpected argument 'extra'/],
    ]) {
        r = await top(args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${show(r)}`);
        assert.match(r.stderr, msg, show(r));
        assert.match(r.stderr, /run 'switchyard-top --help' for usage/, show(r));
    }
    r = await top(['--help']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^usage: switchyard-top /, show(r));

    // Without a terminal and without --once there is nothing to draw on.
    r = await top(['--server', cp.url]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /not a terminal; use --once/, show(r));
}));

test('--once: a control plane without /v1/experiments', T, () => c.guard(async () => {
    // An admin API that predates experiments answers 404 for them: not an error.
    const srv = http.createServer((req, res) => {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `unknown path ${req.url}`, type: 'invalid_request_error', code: 'not_found', param: null } }));
    });
    await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
        const url = `http://127.0.0.1:${srv.address().port}`;
        let r = await top(['--once', '--view', 'experiments', '--server', url]);
        assert.equal(r.code, 0, show(r));
        assert.match(r.stdout, /^  no experiments \(the control plane does not report any\)$/m, show(r));
        // Other documents are not optional.
        r = await top(['--once', '--view', 'traffic', '--server', url]);
        assert.equal(r.code, 1, show(r));
        assert.match(r.stderr, /GET \/v1\/stats\?window=1m: HTTP 404: unknown path \/v1\/stats\?window=1m/, show(r));
    } finally {
        await new Promise((resolve) => srv.close(resolve));
    }
}));

// ---- the live dashboard in tmux ------------------------------------------------------------

test('live dashboard in tmux: views, keys, resize, restart, quit', T, () => c.guard(async () => {
    assert.ok(TMUX_OK, 'tmux not found: scripts/deps.sh installs it');
    const tm = new Tmux(c.dir, 'top');
    try {
        let stats = await api('/v1/stats?window=1h');
        tm.start(['--server', cp.url, '--window', '1h', '--interval', '500']);

        // Overview: the API's request count and cost.
        let screen = await tm.until((s) => new RegExp(`Requests\\s+${stats.totals.requests}\\s`).test(s) &&
                                          s.includes(fmtUsd(stats.totals.cost_usd)),
                                    'overview with the API numbers');
        let ls = lines(screen);
        assert.match(ls[0], /^ 1 Overview  2 Traffic  3 Spend  4 Fleet  5 Policies  6 Experiments/);
        assert.match(ls[1], new RegExp(`^switchyard-top  ${cp.url}  window 1h  every 0\\.5s`));
        assert.match(screen, /Proxies\s+1 connected of 1/);
        assert.match(screen, /Policy\s+version 1/);
        assert.match(ls[ls.length - 1] || ls[ls.length - 2], /updated \d\d:\d\d:\d\d UTC/);

        // 1-6 and Tab.
        tm.keys('2');
        screen = await tm.until((s) => s.includes('Models, last 1h'), 'the traffic view');
        for (const m of stats.models) {
            assert.match(screen, new RegExp(`  ${m.provider}/${m.model}\\s+${m.requests}\\s`), screen);
        }
        tm.keys('s');
        await tm.until((s) => s.includes('sort err% (s)') && s.includes('ERR%\u25bc'), 'sorted by err%');
        tm.keys('3');
        const day = await api('/v1/spend?period=day');
        screen = await tm.until((s) => s.includes('Tenants') && s.includes(fmtUsd(day.total_usd)),
                                'the spend view');
        tm.keys('4');
        await tm.until((s) => /Fleet: control plane cp-top, active version 1/.test(s) &&
                              /top-node\s.*yes/.test(s), 'the fleet view');
        tm.keys('5');
        await tm.until((s) => s.includes('Policies: active version 1') &&
                              s.includes('first from the top test'), 'the policies view');
        tm.keys('6');
        await tm.until((s) => /no experiments|Experiments: \d+/.test(s), 'the experiments view');
        tm.keys('Tab');
        await tm.until((s) => s.includes('Traffic, last 1h'), 'Tab wraps to the overview');
        tm.keys('Tab');
        await tm.until((s) => s.includes('Models, last 1h'), 'Tab to traffic');
        tm.keys('BTab');
        await tm.until((s) => s.includes('Traffic, last 1h'), 'Shift-Tab back to the overview');

        // Window, pause, help.
        tm.keys('w');
        await tm.until((s) => s.includes('window 10s') && s.includes('Traffic, last 10s'), 'window 10s');
        tm.keys('w');
        tm.keys('w');
        await tm.until((s) => s.includes('window 1h') && s.includes('Traffic, last 1h'), 'back to 1h');
        tm.keys('p');
        await tm.until((s) => s.includes('PAUSED') && s.includes('paused (p resumes)'), 'paused');
        tm.keys('p');
        await tm.until((s) => !s.includes('PAUSED'), 'resumed');
        tm.keys('?');
        await tm.until((s) => s.includes('switchyard-top keys') && s.includes('any key closes'), 'help');
        tm.keys('x');
        await tm.until((s) => !s.includes('switchyard-top keys'), 'help closed');

        // Resizes: 80x24, then too small, then back.
        tm.resize(80, 24);
        screen = await tm.until((s) => {
            const l = s.split('\n');
            return l.length >= 24 && l.every((x) => x.length <= 80) && /Requests\s+\d/.test(s) &&
                   /\? help {2}q quit/.test(s);
        }, 'the overview at 80x24');
        assert.match(lines(screen)[0], /^ 1 Overview  2 Traffic  3 Spend  4 Fleet  5 Policies  6 Experiments/);
        tm.resize(30, 8);
        await tm.until((s) => s.includes('terminal too small'), '"terminal too small" at 30x8');
        tm.resize(12, 3);
        await tm.until((s) => /terminal/.test(s), 'still alive at 12x3');
        tm.resize(100, 30);
        await tm.until((s) => s.includes('Traffic, last 1h') && !s.includes('too small'), 'back at 100x30');

        // A control-plane restart: unreachable in the status line, the last numbers kept,
        // then data again once it is back (same ports, same store).
        tm.keys('3');
        await tm.until((s) => s.includes('Tenants'), 'the spend view before the restart');
        await cp.stop();
        screen = await tm.until((s) => new RegExp(`server ${cp.url} unreachable: connection refused, retrying`).test(s),
                                'unreachable in the status line');
        assert.match(screen, /Tenants/, 'the last data stays on screen');
        await cp.start();
        const dayAfter = await api('/v1/spend?period=day');
        assert.equal(dayAfter.total_usd, day.total_usd, 'spend survives the restart');
        await tm.until((s) => !s.includes('unreachable') && /updated \d\d:\d\d:\d\d UTC/.test(s) &&
                              s.includes(fmtUsd(dayAfter.total_usd)), 'spend back after the restart');
        // New traffic after the restart shows in the overview as the API counts it.
        await px.waitVersion(1);
        await waitFor(async () => (await cp.fleet()).proxies.some((p) => p.node_id === 'top-node' && p.connected),
                      { timeoutMs: 20000, intervalMs: 200, what: 'the proxy to reconnect' });
        await sendChats(3);
        stats = await waitFor(async () => {
            const s = await api('/v1/stats?window=1h');
            return s.totals.requests >= 3 ? s : null;
        }, { timeoutMs: 20000, intervalMs: 200, what: 'stats after the restart' });
        tm.keys('1');
        await tm.until(async (s) => {
            const now = await api('/v1/stats?window=1h');
            return new RegExp(`Requests\\s+${now.totals.requests}\\s`).test(s);
        }, 'the overview counts the new requests');

        // q quits cleanly.
        tm.keys('q');
        assert.equal(await tm.exited(), 0, `exit status; stderr:\n${tm.stderr()}`);
        assert.equal(tm.stderr(), '', 'nothing on stderr');
    } finally {
        tm.kill();
    }
}));

test('live dashboard: colours, and none with NO_COLOR', T, () => c.guard(async () => {
    assert.ok(TMUX_OK, 'tmux not found: scripts/deps.sh installs it');
    for (const [name, env, coloured] of [['colour', {}, true], ['nocolour', { NO_COLOR: '' }, false]]) {
        const tm = new Tmux(c.dir, name);
        try {
            tm.start(['--server', cp.url, '--view', 'fleet'], { cols: 80, rows: 24, env });
            await tm.until((s) => s.includes('top-node'), `${name}: the fleet view`);
            const screen = tm.capture({ escapes: true });
            assert.equal(hasColour(screen), coloured, `${name}: colour SGR codes:\n${JSON.stringify(screen)}`);
            tm.keys('q');
            assert.equal(await tm.exited(), 0, `${name}: exit status; stderr:\n${tm.stderr()}`);
        } finally {
            tm.kill();
        }
    }
}));

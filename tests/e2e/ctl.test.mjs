// tests/e2e/ctl.test.mjs - switchyardctl against a real control plane (file store) with one
// managed proxy: push (YAML, JSON, stdin, staged), a rejected push, list, get, diff,
// activate and rollback, fleet, --json, and the exit statuses (0 ok, 1 server error,
// 2 usage, 3 unreachable).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { newCluster, basePolicy, ctl, nodeOf, SLOW } from './lib/cluster.mjs';
import { closedPort } from './lib/harness.mjs';

let c;
let cp;
let mock;
let px;
let files;
const T = { timeout: 30000 * SLOW };

// The policy as YAML text, written by hand (the control plane parses YAML; node does not).
function yamlPolicy(mockBase, weightA) {
    return `# switchyardctl e2e
providers:
  - name: mock
    kind: openai
    base_url: "${mockBase}"
    api_key_env: SY_TEST_MOCK_KEY
models:
  - {name: mock-a, provider: mock, upstream_model: a-upstream}
  - {name: mock-b, provider: mock, upstream_model: b-upstream}
routes:
  - name: weighted
    match: {model: auto}
    targets:
      - {model: mock-a, weight: ${weightA}}
      - {model: mock-b, weight: 1}
`;
}

function run(args, opts) {
    return ctl(['--server', cp.url, ...args], opts);
}

// A readable message for a failed expectation about one run.
function show(r) {
    return `exit ${r.code} signal ${r.signal}\n--- stdout:\n${r.stdout}\n--- stderr:\n${r.stderr}`;
}

before(async () => {
    c = newCluster();
    try {
        mock = await c.mock();
        cp = await c.control({ id: 'cp-ctl' });
        px = await c.proxy(cp, { nodeId: 'ctl-node', zone: 'zc' });
    } catch (e) {
        const d = c.describe();
        await c.stop({ check: false });
        e.message += `\n${d}`;
        throw e;
    }
    files = {
        v1: path.join(c.dir, 'v1.yaml'),
        v2: path.join(c.dir, 'v2.json'),
        v3: path.join(c.dir, 'v3.yaml'),
        bad: path.join(c.dir, 'bad.yaml'),
        dash: path.join(c.dir, '-dash.yaml'),
    };
    fs.writeFileSync(files.v1, yamlPolicy(mock.baseURL, 3));
    const p2 = basePolicy(mock.baseURL);
    p2.routes[0].targets[0].weight = 9;
    fs.writeFileSync(files.v2, JSON.stringify(p2, null, 2));
    fs.writeFileSync(files.v3, yamlPolicy(mock.baseURL, 4));
    fs.writeFileSync(files.bad, yamlPolicy(mock.baseURL, 3)
        .replace('{model: mock-a, weight: 3}', '{model: gpt5-nope, weight: 3}')
        .replace('kind: openai', 'kind: openia'));
    fs.writeFileSync(files.dash, yamlPolicy(mock.baseURL, 6));
});
after(async () => {
    if (c) await c.stop();
});

test('policy push: YAML, a rejected file, JSON, staged, stdin', T, () => c.guard(async () => {
    let r = await run(['policy', 'push', files.v1, '--note', 'first from ctl']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /pushed version 1 \(hash [0-9a-f]{12}\), now active/, show(r));
    await px.waitVersion(1);

    r = await run(['policy', 'push', files.bad]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^switchyardctl: policy rejected: 2 errors$/m, show(r));
    assert.match(r.stderr, /^\s+routes\[0\]\.targets\[0\]\.model: .*gpt5-nope/m, show(r));
    assert.match(r.stderr, /^\s+providers\[0\]\.kind: .*openia/m, show(r));
    assert.equal((await cp.policies()).versions.length, 1, 'a rejected push stores nothing');

    // --json: the server's error object on stdout, exit 1.
    r = await run(['--json', 'policy', 'push', files.bad]);
    assert.equal(r.code, 1, show(r));
    const err = JSON.parse(r.stdout);
    assert.deepEqual(err.error.errors.map((e) => e.path).sort(),
                     ['providers[0].kind', 'routes[0].targets[0].model']);

    r = await run(['policy', 'push', files.v2, '--note=json file']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /pushed version 2 .*now active/, show(r));

    r = await run(['policy', 'push', files.v3, '--no-activate', '--note', 'staged']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /pushed version 3 .*not active/, show(r));
    assert.match(r.stdout, /switchyardctl policy activate 3/, show(r));
    assert.equal((await cp.policies()).active, 2);

    // stdin, options after the command words, --json: the reply as the server sent it.
    r = await run(['policy', 'push', '-', '--json', '--note', 'from stdin'],
                  { input: yamlPolicy(mock.baseURL, 5) });
    assert.equal(r.code, 0, show(r));
    const pushed = JSON.parse(r.stdout);
    assert.equal(pushed.version, 4);
    assert.equal(pushed.active, true);
    assert.match(pushed.hash, /^[0-9a-f]{16}$/);
    await px.waitVersion(4);

    // `--` ends options: a file whose name starts with a dash.
    r = await ctl(['--server', cp.url, 'policy', 'push', '--no-activate', '--', '-dash.yaml'],
                  { cwd: c.dir });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /pushed version 5 .*not active/, show(r));
}));

test('policy list, get, diff', T, () => c.guard(async () => {
    let r = await run(['policy', 'list']);
    assert.equal(r.code, 0, show(r));
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^VERSION\s+ACTIVE\s+CREATED\s+HASH\s+ROLLBACK OF\s+NOTE$/, show(r));
    assert.deepEqual(lines.slice(1).map((l) => Number(l.split(/\s+/)[0])), [5, 4, 3, 2, 1], show(r));
    assert.match(lines.find((l) => l.startsWith('4 ')), /^4\s+\*\s/, 'v4 marked active');
    assert.match(lines.find((l) => l.startsWith('1 ')), /first from ctl$/);
    const list = await cp.policies();
    assert.ok(lines.find((l) => l.startsWith('2 ')).includes(list.versions[3].hash.slice(0, 12)), 'hash column');

    r = await run(['--json', 'policy', 'list']);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(JSON.parse(r.stdout), list, '--json prints what the server answered');

    r = await run(['policy', 'get', '1']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^version:\s+1\b/m, show(r));
    assert.match(r.stdout, /^note:\s+first from ctl$/m, show(r));
    assert.ok(r.stdout.includes('# switchyardctl e2e'), 'the source as pushed');

    r = await run(['policy', 'get', '1', '--source']);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, fs.readFileSync(files.v1, 'utf8'), '--source gives back the file byte for byte');

    r = await run(['policy', 'get', 'active', '--compiled']);
    assert.equal(r.code, 0, show(r));
    const compiled = JSON.parse(r.stdout);
    assert.equal(compiled.routes[0].targets[0].weight, 5, 'active (v4) compiled');

    r = await run(['policy', 'get', 'active', '--json']);
    assert.equal(r.code, 0, show(r));
    const got = JSON.parse(r.stdout);
    assert.equal(got.version, 4);
    assert.equal(got.note, 'from stdin');
    assert.ok('source' in got && 'compiled' in got);

    r = await run(['policy', 'get', '99']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^switchyardctl: .*99/m, show(r));

    r = await run(['policy', 'diff', '1', '2']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^--- .*1$/m, show(r));
    assert.match(r.stdout, /^\+\+\+ .*2$/m, show(r));
    assert.match(r.stdout, /^-\s+"weight": 3/m, show(r));
    assert.match(r.stdout, /^\+\s+"weight": 9/m, show(r));
    assert.doesNotMatch(r.stdout, /\x1b\[/, 'no colour into a pipe');

    r = await run(['policy', 'diff', '2', 'active']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^\+\s+"weight": 5/m, show(r));

    r = await run(['policy', 'diff', '1', '1']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /versions 1 and 1 compile to the same policy/, show(r));

    r = await run(['--json', 'policy', 'diff', '1', '2']);
    assert.equal(r.code, 0, show(r));
    const d = JSON.parse(r.stdout);
    assert.deepEqual([d.from, d.to], [1, 2]);
}));

test('policy activate: a staged version, then a rollback; the proxy follows', T, () => c.guard(async () => {
    let r = await run(['policy', 'activate', '5']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^activated version 5$/m, show(r));
    await px.waitVersion(5);

    r = await run(['policy', 'activate', '1']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /activated version 6 \(rollback to 1\)/, show(r));
    await px.waitVersion(6);
    const list = await cp.policies();
    assert.equal(list.active, 6);
    assert.equal(list.versions[0].rollback_of, 1);

    r = await run(['policy', 'list']);
    assert.match(r.stdout.split('\n').find((l) => l.startsWith('6 ')), /^6\s+\*\s+.*\s1\s/, show(r));

    r = await run(['--json', 'policy', 'activate', '2']);
    assert.equal(r.code, 0, show(r));
    const j = JSON.parse(r.stdout);
    assert.deepEqual([j.version, j.active, j.rollback_of], [7, true, 2]);

    r = await run(['policy', 'activate', '42']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /^switchyardctl: .*42/m, show(r));
}));

test('fleet: the proxy and its acked version, as a table and as JSON', T, () => c.guard(async () => {
    await px.waitVersion(7);
    await cp.waitFleet((f) => nodeOf(f, 'ctl-node')?.acked_version === 7, 'ctl-node acked 7');
    let r = await run(['fleet']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /active version 7/, show(r));
    const row = r.stdout.split('\n').find((l) => l.startsWith('ctl-node'));
    assert.ok(row, show(r));
    assert.ok(row.includes(`127.0.0.1:${px.port}`), `address in ${row}`);
    assert.match(row, /\byes\b/, 'connected');
    assert.match(row, /\s7\s/, 'acked 7');
    assert.doesNotMatch(row, /behind/);

    r = await run(['fleet', '--json']);
    assert.equal(r.code, 0, show(r));
    const f = JSON.parse(r.stdout);
    assert.equal(f.active_version, 7);
    assert.equal(nodeOf(f, 'ctl-node').zone, 'zc');
    assert.equal(nodeOf(f, 'ctl-node').acked_version, 7);
}));

test('exit statuses: unreachable is 3, usage is 2; SWITCHYARD_SERVER and version', T, () => c.guard(async () => {
    const port = await closedPort();
    let r = await ctl(['--server', `http://127.0.0.1:${port}`, 'policy', 'list']);
    assert.equal(r.code, 3, show(r));
    assert.match(r.stderr, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}`), show(r));
    r = await ctl(['--server', `127.0.0.1:${port}`, 'fleet']);
    assert.equal(r.code, 3, show(r));
    r = await ctl(['--server', `http://127.0.0.1:${port}`, 'policy', 'push', files.v1]);
    assert.equal(r.code, 3, show(r));

    for (const args of [
        [],
        ['policy'],
        ['policy', 'frobnicate'],
        ['policy', 'get'],
        ['policy', 'diff', '1'],
        ['policy', 'activate', 'notanumber'],
        ['policy', 'push'],
        ['policy', 'push', path.join(c.dir, 'does-not-exist.yaml')],
        ['--bogus-option', 'fleet'],
        ['--timeout-ms', 'soon', 'fleet'],
        ['--server', 'ftp://127.0.0.1:1', 'fleet'],
        ['nonsense'],
    ]) {
        r = await run(args);
        assert.equal(r.code, 2, `switchyardctl ${args.join(' ')}: ${show(r)}`);
        assert.ok(r.stderr.length > 0, `switchyardctl ${args.join(' ')} says why`);
    }
    r = await ctl(['--help']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout + r.stderr, /policy push/);

    // $SWITCHYARD_SERVER when --server is absent; host:port alone means http://.
    r = await ctl(['policy', 'list', '--json'], { env: { SWITCHYARD_SERVER: `127.0.0.1:${cp.adminPort}` } });
    assert.equal(r.code, 0, show(r));
    assert.equal(JSON.parse(r.stdout).active, 7);

    r = await run(['version']);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /"id":"cp-ctl"/, show(r));
    r = await ctl(['--server', `http://127.0.0.1:${port}`, 'version']);
    assert.equal(r.code, 0, `version with the server down still exits 0: ${show(r)}`);
}));

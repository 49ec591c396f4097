// tests/e2e/interop.test.mjs - the policy stream is plain gRPC: @grpc/grpc-js with
// @grpc/proto-loader, loading proto/switchyard/v1/discovery.proto directly, plays a proxy
// against a real control plane: snapshot, ACK, a pushed update, NACK, a stale nonce, and
// the fleet view of all of it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { newCluster, basePolicy, nodeOf, requireSdk, sleep, SLOW, REPO } from './lib/cluster.mjs';

const grpc = requireSdk('@grpc/grpc-js');
const protoLoader = requireSdk('@grpc/proto-loader');

let c;
let cp;
let mock;
let client;
let call;
let pushed1;
let snap1; // the first snapshot received
const T = { timeout: 30000 * SLOW };

// Messages from the server, in order, and whoever waits for the next one.
const inbox = [];
const waiters = [];
let streamEnd = null;

function nextSnapshot(timeoutMs = 10000) {
    if (inbox.length) return Promise.resolve(inbox.shift());
    if (streamEnd) return Promise.reject(new Error(`stream ended: ${streamEnd}`));
    return new Promise((resolve, reject) => {
        const w = { resolve, reject };
        w.timer = setTimeout(() => {
            waiters.splice(waiters.indexOf(w), 1);
            reject(new Error(`no snapshot within ${timeoutMs * SLOW} ms`));
        }, timeoutMs * SLOW);
        waiters.push(w);
    });
}

function deliver(msg) {
    const w = waiters.shift();
    if (w) {
        clearTimeout(w.timer);
        w.resolve(msg);
    } else {
        inbox.push(msg);
    }
}

before(async () => {
    c = newCluster();
    try {
        mock = await c.mock();
        cp = await c.control({ id: 'cp-interop' });
        pushed1 = await cp.push(basePolicy(mock.baseURL), { note: 'for grpc-js' });
    } catch (e) {
        const d = c.describe();
        await c.stop({ check: false });
        e.message += `\n${d}`;
        throw e;
    }
    const def = protoLoader.loadSync(path.join(REPO, 'proto/switchyard/v1/discovery.proto'), {
        includeDirs: [path.join(REPO, 'proto')],
        keepCase: true,
        longs: String,
        enums: String,
        defaults: true,
        oneofs: true,
    });
    const pkg = grpc.loadPackageDefinition(def);
    client = new pkg.switchyard.v1.PolicyDiscovery(cp.grpcAddr, grpc.credentials.createInsecure());
});

after(async () => {
    if (call) {
        call.cancel();
        call = null;
    }
    if (client) client.close();
    if (c) await c.stop();
});

test('grpc-js opens StreamPolicies and receives the active snapshot', T, () => c.guard(async () => {
    call = client.StreamPolicies();
    call.on('data', deliver);
    call.on('error', (e) => {
        streamEnd = `error ${e.code}: ${e.details}`;
        for (const w of waiters.splice(0)) w.reject(new Error(streamEnd));
    });
    call.on('end', () => {
        streamEnd = streamEnd || 'end';
    });
    call.write({
        node: { id: 'interop', zone: 'js', build_version: 'grpc-js/1.14.7', listen_address: '127.0.0.1:1' },
        version_info: '',
        response_nonce: '',
    });
    const snap = await nextSnapshot();
    assert.equal(snap.version_info, '1');
    assert.equal(typeof snap.nonce, 'string');
    assert.ok(snap.nonce.length > 0, 'a nonce');
    assert.equal(snap.hash, pushed1.hash, 'the hash the push answered');
    assert.equal(snap.note, 'for grpc-js');
    assert.ok(Number(snap.created_unix_ms) > 1.6e12, `created_unix_ms ${snap.created_unix_ms}`);
    const p = snap.policy;
    assert.ok(p, 'a policy');
    assert.equal(p.providers.length, 1);
    assert.equal(p.providers[0].name, 'mock');
    assert.equal(p.providers[0].kind, 'openai');
    assert.equal(p.providers[0].base_url, mock.baseURL);
    assert.equal(p.providers[0].api_key_env, 'SY_TEST_MOCK_KEY');
    assert.equal(p.providers[0].timeout_ms, 10000);
    assert.equal(p.providers[0].connect_timeout_ms, 2000);
    assert.deepEqual(p.models.map((m) => [m.name, m.provider, m.upstream_model]),
                     [['mock-a', 'mock', 'a-upstream'], ['mock-b', 'mock', 'b-upstream']]);
    assert.equal(p.models[1].pricing.input_per_mtok, 3);
    assert.equal(p.models[1].pricing.output_per_mtok, 6);
    assert.equal(p.routes.length, 1);
    assert.equal(p.routes[0].name, 'weighted');
    assert.equal(p.routes[0].match.model, 'auto');
    assert.deepEqual(p.routes[0].targets.map((t) => [t.model, t.weight]), [['mock-a', 3], ['mock-b', 1]]);
    assert.equal(Number(p.server.max_body_bytes), 1048576);

    // Connected, nothing acknowledged yet.
    const f = await cp.waitFleet((x) => nodeOf(x, 'interop')?.connected, 'interop connected');
    const n = nodeOf(f, 'interop');
    assert.equal(n.acked_version, null);
    assert.equal(n.zone, 'js');
    assert.equal(n.build_version, 'grpc-js/1.14.7');
    assert.equal(n.address, '127.0.0.1:1');
    assert.match(n.peer, /127\.0\.0\.1/);

    // ACK.
    call.write({ version_info: snap.version_info, response_nonce: snap.nonce });
    const f2 = await cp.waitFleet((x) => nodeOf(x, 'interop')?.acked_version === 1, 'interop acked 1');
    assert.equal(nodeOf(f2, 'interop').last_nack, null);
    assert.equal(f2.active_version, 1);
    snap1 = snap;
}));

test('a push arrives on the open stream; NACK and a stale nonce are recorded as such', T, () => c.guard(async () => {
    assert.ok(snap1, 'the first test ran');
    const p2 = basePolicy(mock.baseURL);
    p2.routes[0].targets[1].weight = 7;
    const r = await cp.push(p2, { note: 'second' });
    assert.equal(r.version, 2);
    const snap2 = await nextSnapshot();
    assert.equal(snap2.version_info, '2');
    assert.notEqual(snap2.nonce, snap1.nonce, 'a new nonce');
    assert.equal(snap2.hash, r.hash);
    assert.equal(snap2.policy.routes[0].targets[1].weight, 7);

    // NACK: old version, this nonce, a reason.
    call.write({ version_info: '1', response_nonce: snap2.nonce,
                 error_detail: { code: 3, message: 'interop: refusing version 2 on purpose' } });
    const f = await cp.waitFleet((x) => nodeOf(x, 'interop')?.last_nack, 'interop NACK recorded');
    const n = nodeOf(f, 'interop');
    assert.equal(String(n.last_nack.version), '2');
    assert.match(n.last_nack.error, /refusing version 2 on purpose/);
    assert.equal(n.acked_version, 1, 'a NACK keeps the acked version');
    assert.equal(f.active_version, 2);

    // An ACK carrying a superseded nonce is ignored.
    call.write({ version_info: '2', response_nonce: snap1.nonce });
    await sleep(500);
    assert.equal(nodeOf(await cp.fleet(), 'interop').acked_version, 1, 'a stale nonce changes nothing');

    // The right ACK.
    call.write({ version_info: '2', response_nonce: snap2.nonce });
    await cp.waitFleet((x) => nodeOf(x, 'interop')?.acked_version === 2, 'interop acked 2');
    assert.equal(inbox.length, 0, 'no snapshot was sent that was not asked for');
}));

test('closing the stream shows the node as disconnected', T, () => c.guard(async () => {
    call.end();
    await cp.waitFleet((x) => nodeOf(x, 'interop') && nodeOf(x, 'interop').connected === false,
                       'interop disconnected');
    call = null;
}));

test('a stream cancelled before it answers leaves the control plane healthy', T, () => c.guard(async () => {
    const snaps = [];
    const s = client.StreamPolicies();
    s.on('error', () => {}); // CANCELLED, expected
    const first = new Promise((resolve) => s.on('data', (m) => {
        snaps.push(m);
        resolve();
    }));
    s.write({ node: { id: 'interop-cancel' }, version_info: '', response_nonce: '' });
    await first;
    assert.equal(snaps[0].version_info, '2');
    s.cancel(); // RST_STREAM, no ACK, no half-close
    await cp.waitFleet((x) => nodeOf(x, 'interop-cancel')?.connected === false, 'interop-cancel disconnected');
    const h = await cp.api('/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.json.active_version, 2);
    assert.ok(!cp.proc.exit, 'control plane still running');
}));

test('a stream without a node id, or with bytes that are not a PolicyRequest, is refused', T, () => c.guard(async () => {
    // Resolves with the stream's error status (or 'data' if a snapshot came instead).
    const outcome = (s) => new Promise((resolve) => {
        s.on('data', () => resolve('data'));
        s.on('error', (e) => resolve(e));
    });
    const s1 = client.StreamPolicies();
    const o1 = outcome(s1);
    s1.write({ version_info: '', response_nonce: '' });
    const e1 = await o1;
    assert.notEqual(e1, 'data', 'no snapshot without a node id');
    assert.equal(e1.code, grpc.status.INVALID_ARGUMENT, e1.details);
    assert.match(e1.details, /node/);

    const s2 = client.makeBidiStreamRequest('/switchyard.v1.PolicyDiscovery/StreamPolicies', (b) => b, (b) => b);
    const o2 = outcome(s2);
    s2.write(Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]));
    const e2 = await o2;
    assert.notEqual(e2, 'data');
    assert.equal(e2.code, grpc.status.INVALID_ARGUMENT, e2.details);

    assert.equal((await cp.api('/healthz')).status, 200);
}));

// tests/e2e/feedback_proxy.test.mjs - the proxy's half of feedback: signed request ids and
// POST /v1/feedback (docs/feedback.md).
//
// 1. A real control plane, a managed proxy (tenant keys on) and the mock: the openai SDK's
//    request id is the signed x-switchyard-request-id; feedback with it is 202 and names the
//    route and model; every bad input gets its status and code; tampered ids are 404;
//    duplicates 409; a client's own x-request-id is echoed while the signed id still comes;
//    and, once the policy compiler knows experiments, a sticky two-arm experiment.
// 2. A stand-in control plane written with @grpc/grpc-js replays the real snapshot with a
//    fleet_key, so this file can sign ids itself (an independent implementation of the
//    format): the proxy's ids carry that key's MAC, expired and future ids are 410, and ids
//    of the previous key still verify after a key change.
// 3. Standalone proxies: /v1/feedback is 501; ids are signed with $SWITCHYARD_FLEET_KEY
//    when set; the access log carries feedback_id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import {
    newCluster, basePolicy, requireSdk, waitFor, httpJson, SLOW, REPO,
} from './lib/cluster.mjs';
import { OpenAI, startStack, postJson, errorObject, userMsg } from './lib/harness.mjs';

const grpc = requireSdk('@grpc/grpc-js');
const protoLoader = requireSdk('@grpc/proto-loader');

const T = { timeout: 60000 * SLOW };
const sha256 = (k) => crypto.createHash('sha256').update(k).digest('hex');
const ACME_KEY = 'sk-gw-acme-feedback-0123456789';
const TTL_S = 7 * 86400;

// ---- the id format, written again from docs/feedback.md ------------------------------------

function varint(v) {
    let x = BigInt.asUintN(64, BigInt(v));
    const out = [];
    while (x >= 0x80n) {
        out.push(Number(x & 0x7fn) | 0x80);
        x >>= 7n;
    }
    out.push(Number(x));
    return Buffer.from(out);
}

function readVarint(buf, pos) {
    let x = 0n;
    for (let shift = 0n; ; shift += 7n) {
        const b = buf[pos.i++];
        x |= BigInt(b & 0x7f) << shift;
        if (!(b & 0x80)) return BigInt.asIntN(64, x);
    }
}

const NAMES = ['tenant', 'route', 'model', 'experiment', 'arm'];

function signId(key, f) {
    const parts = [Buffer.from([1]), varint(f.policy_version ?? 1), varint(f.unix_s)];
    for (const n of NAMES) {
        const s = Buffer.from(f[n] ?? '', 'utf8');
        parts.push(varint(s.length), s);
    }
    parts.push(f.nonce ?? crypto.randomBytes(8));
    const payload = Buffer.concat(parts);
    const mac = crypto.createHmac('sha256', key).update(payload).digest().subarray(0, 16);
    return `sy1.${payload.toString('base64url')}.${mac.toString('base64url')}`;
}

// { fields, macOk } of an id (only used on well-formed ids).
function readId(id, key) {
    const m = /^sy1\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{22})$/.exec(id);
    assert.ok(m, `an sy1 id: ${id}`);
    const payload = Buffer.from(m[1], 'base64url');
    const mac = Buffer.from(m[2], 'base64url');
    const want = crypto.createHmac('sha256', key).update(payload).digest().subarray(0, 16);
    const pos = { i: 0 };
    assert.equal(payload[pos.i++], 1, 'payload version 1');
    const fields = { policy_version: readVarint(payload, pos), unix_s: readVarint(payload, pos) };
    for (const n of NAMES) {
        const len = Number(readVarint(payload, pos));
        fields[n] = payload.subarray(pos.i, pos.i + len).toString('utf8');
        pos.i += len;
    }
    assert.equal(payload.length - pos.i, 8, '8 nonce bytes at the end');
    return { fields, macOk: crypto.timingSafeEqual(mac, want) };
}

// ---- helpers ---------------------------------------------------------------------------------

function tenantPolicy(mockUrl) {
    const p = basePolicy(mockUrl);
    p.tenants = [{ name: 'acme', api_keys_sha256: [sha256(ACME_KEY)] }];
    return p;
}

function feedback(px, body, { key = ACME_KEY, raw = false } = {}) {
    const headers = key ? { authorization: `Bearer ${key}` } : {};
    return postJson(`${px.url}/v1/feedback`, raw ? body : JSON.stringify(body), headers);
}

function client(px, extra = {}) {
    return new OpenAI({ apiKey: ACME_KEY, baseURL: px.baseURL, maxRetries: 0, timeout: 20000 * SLOW, ...extra });
}

async function chat(px, opts = {}, reqOpts = {}) {
    return client(px).chat.completions
        .create({ model: 'auto', messages: userMsg(opts.text ?? 'hello'), ...opts.body }, reqOpts)
        .withResponse();
}

function assertError(r, status, code, param) {
    assert.equal(r.status, status, `status of ${r.body}`);
    const e = errorObject(assert, r.body);
    assert.equal(e.code, code, r.body);
    if (param !== undefined) assert.equal(e.param, param, r.body);
    return e;
}

// ---- 1. real control plane ---------------------------------------------------------------------

let c;
let cp;
let px;
let mock;

before(async () => {
    c = newCluster();
    try {
        mock = await c.mock();
        cp = await c.control({ id: 'cp-feedback' });
        await cp.push(tenantPolicy(mock.baseURL), { note: 'feedback' });
        px = await c.proxy(cp, { nodeId: 'px-feedback' });
        await px.waitVersion(1);
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

test('the SDK request id is the signed x-switchyard-request-id', T, () => c.guard(async () => {
    const { data, response } = await chat(px);
    const signed = response.headers.get('x-switchyard-request-id');
    assert.match(signed, /^sy1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    assert.equal(data._request_id, signed, 'response._request_id');
    assert.equal(response.headers.get('x-request-id'), signed);
    // Readable by anyone (signed, not encrypted): it says what served.
    const { fields } = readId(signed, 'not-the-key');
    assert.equal(fields.route, 'weighted');
    assert.equal(fields.model, response.headers.get('x-switchyard-model'));
    assert.equal(fields.tenant, 'acme');
    assert.equal(String(fields.policy_version), '1');
    assert.ok(Math.abs(Number(fields.unix_s) - Date.now() / 1000) < 60, 'issued now');

    // Two answers, two ids.
    const again = await chat(px);
    assert.notEqual(again.response.headers.get('x-switchyard-request-id'), signed);

    // A stream gets its headers at commit, signed id included.
    const s = await client(px).chat.completions
        .create({ model: 'mock-b', messages: userMsg('stream me'), stream: true })
        .withResponse();
    for await (const _ of s.data) { /* drain */ }
    const sid = s.response.headers.get('x-switchyard-request-id');
    assert.match(sid, /^sy1\./);
    assert.equal(s.response.headers.get('x-request-id'), sid);
    assert.equal(readId(sid, 'x').fields.model, 'mock-b');
    assert.equal(readId(sid, 'x').fields.route, '', 'a direct model call has no route');

    // Embeddings too.
    const emb = await client(px).embeddings.create({ model: 'mock-a', input: 'x' }).withResponse();
    assert.match(emb.response.headers.get('x-switchyard-request-id'), /^sy1\./);
}));

test('an error before any model answered has a plain id and no signed one', T, () => c.guard(async () => {
    const r = await postJson(`${px.baseURL}/chat/completions`,
                             { model: 'no-such-model', messages: userMsg('x') },
                             { authorization: `Bearer ${ACME_KEY}` });
    assert.equal(r.status, 404);
    const id = r.headers.get('x-request-id');
    assert.ok(id && !id.startsWith('sy1.'), `plain id: ${id}`);
    assert.equal(r.headers.get('x-switchyard-request-id'), null);
    // Refused before dispatch (no key): still an x-request-id.
    const r2 = await postJson(`${px.baseURL}/chat/completions`, { model: 'auto', messages: userMsg('x') });
    assert.equal(r2.status, 401);
    assert.ok(r2.headers.get('x-request-id'));
}));

test('feedback with the id is accepted and names the route and model', T, () => c.guard(async () => {
    const { data, response } = await chat(px);
    const id = data._request_id;
    const r = await feedback(px, { request_id: id, thumbs: 'up', comment: 'très bien 👍' });
    assert.equal(r.status, 202, r.body);
    assert.deepEqual(r.json, {
        status: 'accepted',
        request_id: id,
        route: 'weighted',
        model: response.headers.get('x-switchyard-model'),
        experiment: null,
        arm: null,
    });
    assert.ok(r.headers.get('x-request-id'), 'the feedback request has its own id');
    // Once per metric: the same again is 409; another metric is another verdict.
    assertError(await feedback(px, { request_id: id, thumbs: 'down' }), 409, 'duplicate_feedback', 'request_id');
    assert.equal((await feedback(px, { request_id: id, score: 0.8, metric: 'tone' })).status, 202);
    assertError(await feedback(px, { request_id: id, score: 0.1, metric: 'tone' }), 409, 'duplicate_feedback');
    // A score, with a metric, on another answer.
    const other = (await chat(px)).data._request_id;
    const r2 = await feedback(px, { request_id: other, score: 0, metric: 'helpful.v2' });
    assert.equal(r2.status, 202, r2.body);
}));

test('feedback needs the tenant key like every /v1/ path', T, () => c.guard(async () => {
    const id = (await chat(px)).data._request_id;
    assertError(await feedback(px, { request_id: id, thumbs: 'up' }, { key: null }), 401, 'missing_api_key');
    assertError(await feedback(px, { request_id: id, thumbs: 'up' }, { key: 'sk-wrong-key-abcdefgh' }),
                401, 'invalid_api_key');
    const get = await httpJson(`${px.url}/v1/feedback`);
    assert.equal(get.status, 405);
}));

test('every bad input gets its status, code and param', T, () => c.guard(async () => {
    const id = (await chat(px)).data._request_id;
    const cases = [
        ['{not json', 400, 'invalid_feedback', null, true],
        ['[1,2]', 400, 'invalid_feedback', null, true],
        [{ thumbs: 'up' }, 400, 'invalid_feedback', 'request_id'],
        [{ request_id: 7, thumbs: 'up' }, 400, 'invalid_feedback', 'request_id'],
        [{ request_id: id }, 400, 'invalid_feedback', 'thumbs'],
        [{ request_id: id, thumbs: 'up', score: 1 }, 400, 'invalid_feedback', 'score'],
        [{ request_id: id, thumbs: 'meh' }, 400, 'invalid_feedback', 'thumbs'],
        [{ request_id: id, score: 1.5 }, 400, 'invalid_feedback', 'score'],
        [{ request_id: id, score: -0.01 }, 400, 'invalid_feedback', 'score'],
        [{ request_id: id, score: '0.5' }, 400, 'invalid_feedback', 'score'],
        [{ request_id: id, thumbs: 'up', metric: 'Not OK' }, 400, 'invalid_feedback', 'metric'],
        [{ request_id: id, thumbs: 'up', metric: 'm'.repeat(65) }, 400, 'invalid_feedback', 'metric'],
        [{ request_id: id, thumbs: 'up', comment: 'c'.repeat(2001) }, 400, 'invalid_feedback', 'comment'],
        [{ request_id: id, thumbs: 'up', comment: 42 }, 400, 'invalid_feedback', 'comment'],
        [{ request_id: 'chatcmpl-abc123', thumbs: 'up' }, 404, 'unknown_request_id'],
        [{ request_id: 'sy1.AAAA.AAAAAAAAAAAAAAAAAAAAAA', thumbs: 'up' }, 404, 'unknown_request_id'],
        // Signed with a key this fleet does not have.
        [{ request_id: signId('another-fleet', { unix_s: Math.floor(Date.now() / 1000), route: 'weighted', model: 'mock-a' }),
           thumbs: 'up' }, 404, 'unknown_request_id'],
    ];
    for (const [body, status, code, param, raw] of cases) {
        const r = await feedback(px, body, { raw });
        const e = assertError(r, status, code, param);
        assert.ok(e.message.length > 20, `a clear message: ${e.message}`);
    }
    // None of those counted: the id still takes its feedback.
    assert.equal((await feedback(px, { request_id: id, thumbs: 'down' })).status, 202);
}));

test('a tampered id is 404', T, () => c.guard(async () => {
    const id = (await chat(px)).data._request_id;
    const dot = id.lastIndexOf('.');
    // Change one payload character (keep it base64url) and, separately, one MAC character.
    const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    for (const i of [5, 12, dot - 2, dot + 3]) {
        assertError(await feedback(px, { request_id: flip(id, i), thumbs: 'up' }), 404, 'unknown_request_id');
    }
    // Another route and model, same MAC: forged.
    const { fields } = readId(id, 'x');
    const forged = signId('guess', { ...fields, model: 'mock-b' });
    const spliced = forged.slice(0, forged.lastIndexOf('.')) + id.slice(dot);
    assertError(await feedback(px, { request_id: spliced, thumbs: 'up' }), 404, 'unknown_request_id');
    assert.equal((await feedback(px, { request_id: id, thumbs: 'up' })).status, 202);
}));

test("a client's x-request-id is echoed; the signed id still comes", T, () => c.guard(async () => {
    const { data, response } = await chat(px, {}, { headers: { 'x-request-id': 'client-req-77' } });
    assert.equal(response.headers.get('x-request-id'), 'client-req-77');
    assert.equal(data._request_id, 'client-req-77');
    const signed = response.headers.get('x-switchyard-request-id');
    assert.match(signed, /^sy1\./);
    assertError(await feedback(px, { request_id: 'client-req-77', thumbs: 'up' }), 404, 'unknown_request_id');
    assert.equal((await feedback(px, { request_id: signed, thumbs: 'up' })).status, 202);
    // An invalid client id (a space) is replaced as before: then the SDK id is the signed one.
    const r = await chat(px, {}, { headers: { 'x-request-id': 'has space' } });
    assert.equal(r.response.headers.get('x-request-id'), r.response.headers.get('x-switchyard-request-id'));
}));

function experimentPolicy(mockUrl) {
    const p = tenantPolicy(mockUrl);
    p.experiments = [{
        name: 'tone',
        route: 'weighted',
        metric: 'thumbs_up',
        sticky: { by: 'user' },
        arms: [
            { name: 'a', model: 'mock-a', share: 50 },
            { name: 'b', model: 'mock-b', share: 50 },
        ],
    }];
    return p;
}

test('a two-arm experiment: one user stays on one arm, users spread over both', T, (t) => c.guard(async () => {
    const r = await cp.pushRaw(experimentPolicy(mock.baseURL), { note: 'experiment' });
    const problems = [r.json?.error?.message, ...(r.json?.error?.errors ?? []).map((e) => e.message)];
    if (r.status === 400 && problems.some((m) => /unknown key "experiments"/.test(m ?? ''))) {
        t.skip('the policy compiler does not know experiments yet');
        return;
    }
    assert.equal(r.status, 201, r.body);
    const version = r.json.version;
    await px.waitVersion(version);
    const armOf = { a: 'mock-a', b: 'mock-b' };
    const seen = new Map();
    for (let u = 0; u < 24; u++) {
        const user = `user-${u}`;
        let arm;
        for (let k = 0; k < 3; k++) {
            const { data, response } = await chat(px, { body: { user } });
            const h = response.headers.get('x-switchyard-arm');
            assert.match(h, /^tone\/[ab]$/);
            if (arm) assert.equal(h, arm, `${user} stays on ${arm}`);
            arm = h;
            const a = h.slice('tone/'.length);
            assert.equal(response.headers.get('x-switchyard-model'), armOf[a], 'the arm serves');
            const { fields } = readId(data._request_id, 'x');
            assert.equal(fields.experiment, 'tone');
            assert.equal(fields.arm, a);
            if (u === 0 && k === 0) {
                const fb = await feedback(px, { request_id: data._request_id, thumbs: 'up' });
                assert.equal(fb.status, 202, fb.body);
                assert.equal(fb.json.experiment, 'tone');
                assert.equal(fb.json.arm, a);
            }
        }
        seen.set(arm, (seen.get(arm) ?? 0) + 1);
    }
    assert.equal(seen.size, 2, `both arms used: ${JSON.stringify([...seen])}`);
    // Back to the plain policy for whatever runs after.
    const back = await cp.push(tenantPolicy(mock.baseURL), { note: 'no experiment' });
    await px.waitVersion(back.version);
}));

// ---- 2. a stand-in control plane that sends a fleet key -----------------------------------------

const KEY1 = Buffer.from('fleet-key-one-for-the-e2e-test-0001');
const KEY2 = Buffer.from('fleet-key-two-for-the-e2e-test-0002');

function loadDiscovery() {
    const def = protoLoader.loadSync(path.join(REPO, 'proto/switchyard/v1/discovery.proto'), {
        includeDirs: [path.join(REPO, 'proto')],
        keepCase: true,
        longs: String,
        enums: String,
        defaults: false,
    });
    return grpc.loadPackageDefinition(def).switchyard.v1;
}

// The real control plane's active snapshot, as grpc-js decodes it.
async function fetchSnapshot(pkg, addr) {
    const cl = new pkg.PolicyDiscovery(addr, grpc.credentials.createInsecure());
    try {
        const call = cl.StreamPolicies();
        const snap = await new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('no snapshot')), 10000 * SLOW);
            call.on('data', (m) => {
                clearTimeout(timer);
                resolve(m);
            });
            call.on('error', (e) => {
                if (e.code !== grpc.status.CANCELLED) reject(e);
            });
            call.write({ node: { id: 'e2e-fetch' }, version_info: '', response_nonce: '' });
        });
        call.cancel();
        return snap;
    } finally {
        cl.close();
    }
}

class FakeControlPlane {
    constructor(pkg, snapshot) {
        this.pkg = pkg;
        this.snapshot = snapshot;
        this.calls = new Set();
        this.server = new grpc.Server();
        this.server.addService(pkg.PolicyDiscovery.service, {
            StreamPolicies: (call) => {
                this.calls.add(call);
                call.on('data', () => {}); // ACKs and NACKs: not judged here
                call.on('error', () => {});
                call.on('end', () => call.end());
                call.on('cancelled', () => this.calls.delete(call));
                call.write(this.snapshot);
            },
        });
    }

    async start() {
        const port = await new Promise((resolve, reject) => {
            this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(),
                                  (e, p) => (e ? reject(e) : resolve(p)));
        });
        this.grpcAddr = `127.0.0.1:${port}`;
        return this;
    }

    publish(snapshot) {
        this.snapshot = snapshot;
        for (const call of this.calls) call.write(snapshot);
    }

    stop() {
        this.server.forceShutdown();
    }
}

test('with a fleet key from the control plane: ids carry its MAC; age and key changes', T, () => c.guard(async () => {
    const pkg = loadDiscovery();
    const real = await fetchSnapshot(pkg, cp.grpcAddr);
    const fake = await new FakeControlPlane(pkg, {
        ...real, version_info: '101', nonce: 'fake-1', fleet_key: KEY1,
    }).start();
    try {
        const fpx = await c.proxy(fake, { nodeId: 'px-fleet-key', stateDir: false });
        await fpx.waitVersion(101);
        const { data, response } = await chat(fpx);
        const id1 = data._request_id;
        const read = readId(id1, KEY1);
        assert.ok(read.macOk, 'signed with the fleet key');
        assert.equal(read.fields.route, 'weighted');
        assert.equal(read.fields.model, response.headers.get('x-switchyard-model'));
        assert.equal(String(read.fields.policy_version), '101');

        const now = Math.floor(Date.now() / 1000);
        const mk = (unix_s, key = KEY1) => signId(key, { policy_version: 101, unix_s, route: 'weighted', model: 'mock-a', tenant: 'acme' });
        // Signed here with the same key: the proxy takes it (the format is what the docs say).
        const mine = await feedback(fpx, { request_id: mk(now - 3600), thumbs: 'up' });
        assert.equal(mine.status, 202, mine.body);
        assert.equal(mine.json.model, 'mock-a');
        // Age: within 7 days yes, beyond no; 5 minutes of clock skew, not more.
        assert.equal((await feedback(fpx, { request_id: mk(now - TTL_S + 120), thumbs: 'up' })).status, 202);
        assertError(await feedback(fpx, { request_id: mk(now - TTL_S - 120), thumbs: 'up' }), 410, 'request_id_expired');
        assert.equal((await feedback(fpx, { request_id: mk(now + 60), thumbs: 'up' })).status, 202);
        assertError(await feedback(fpx, { request_id: mk(now + 900), thumbs: 'up' }), 410, 'request_id_expired');

        // The key changes: new ids use the new key, ids of the old one still verify.
        fake.publish({ ...real, version_info: '102', nonce: 'fake-2', fleet_key: KEY2 });
        await fpx.waitVersion(102);
        const id2 = (await chat(fpx)).data._request_id;
        assert.ok(readId(id2, KEY2).macOk, 'signed with the new key');
        assert.equal((await feedback(fpx, { request_id: id1, thumbs: 'up' })).status, 202, 'old key still verifies');
        assert.equal((await feedback(fpx, { request_id: id2, thumbs: 'up' })).status, 202);
        assertError(await feedback(fpx, { request_id: mk(now, Buffer.from('a-third-key')), thumbs: 'up' }),
                    404, 'unknown_request_id');
        // The ids of the first proxy (signed with the real control plane's fleet key, or its
        // own per-process key while that control plane sends none) mean nothing to this one.
        const elsewhere = (await chat(px)).data._request_id;
        assertError(await feedback(fpx, { request_id: elsewhere, thumbs: 'up' }), 404, 'unknown_request_id');
        assert.match(fpx.proc.stderr, /signed with the fleet key from the control plane/);
        await fpx.stop();
    } finally {
        fake.stop();
    }
}));

// ---- 3. standalone proxies ----------------------------------------------------------------------

test('standalone: /v1/feedback is 501; ids are signed; the access log has feedback_id', T, async () => {
    const st = await startStack();
    try {
        const oc = st.client();
        const { data, response } = await oc.chat.completions
            .create({ model: 'auto', messages: userMsg('hi') }).withResponse();
        const id = data._request_id;
        assert.match(id, /^sy1\./);
        assert.equal(response.headers.get('x-switchyard-request-id'), id);
        const r = await postJson(`${st.baseURL}/feedback`, { request_id: id, thumbs: 'up' });
        const e = assertError(r, 501, 'feedback_not_available');
        assert.match(e.message, /control plane/);
        assert.match(st.proxy.stderr, /per-process key: feedback only works through this proxy/);
        const line = await waitFor(() => st.accessLogEntries().find((x) => x.feedback_id === id),
                                   { what: 'access log line with feedback_id' });
        assert.equal(line.status, 200);
        assert.notEqual(line.request_id, id, 'request_id stays the plain id of the log');
        const fbLine = await waitFor(() => st.accessLogEntries().find((x) => x.path === '/v1/feedback'),
                                     { what: 'access log line of the feedback' });
        assert.equal(fbLine.status, 501);
        assert.equal(fbLine.error, 'feedback_not_available');
    } finally {
        await st.stop();
    }
});

test('standalone with SWITCHYARD_FLEET_KEY: ids carry that key', T, async () => {
    const key = 'a-shared-standalone-fleet-key';
    const st = await startStack({ env: { SWITCHYARD_FLEET_KEY: key } });
    try {
        const { data } = await st.client().chat.completions
            .create({ model: 'mock-a', messages: userMsg('hi') }).withResponse();
        const r = readId(data._request_id, Buffer.from(key));
        assert.ok(r.macOk, 'MAC under $SWITCHYARD_FLEET_KEY');
        assert.equal(r.fields.model, 'mock-a');
        assert.equal(r.fields.tenant, '');
        assert.match(st.proxy.stderr, /SWITCHYARD_FLEET_KEY/);
    } finally {
        await st.stop();
    }
});

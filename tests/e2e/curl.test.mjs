// tests/e2e/curl.test.mjs - HTTP edge cases with the real curl binary: malformed JSON,
// oversized bodies (with and without Expect: 100-continue), wrong method, unknown path,
// and a client that hangs up mid-stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startStack, basePolicy, curl, haveCurl, errorObject, waitFor, userMsg,
         fetchT } from './lib/harness.mjs';

const MAX_BODY = 2048;
let st;
before(async () => {
    assert.ok(haveCurl(), 'curl not found: run scripts/deps.sh');
    st = await startStack({
        policy: (mockUrl) => {
            const p = basePolicy(mockUrl);
            p.server.max_body_bytes = MAX_BODY;
            return p;
        },
    });
});
after(async () => {
    if (st) await st.stop();
});

const T = { timeout: 20000 };
const SEP = '\n--SY-STATUS--';

// curl returning { status, body, headers (lower-cased raw text), code }. Headers go to a file:
// curl 7.88 crashes on "-D /dev/stderr" when stderr is a socket, as node's pipes are.
let nreq = 0;
async function req(args, opts) {
    const hfile = path.join(st.dir, `headers-${++nreq}.txt`);
    const r = await curl(['--max-time', '10', '-D', hfile, '-o', '-', '-w', `${SEP}%{http_code}`, ...args], opts);
    const i = r.stdout.lastIndexOf(SEP);
    let headers = '';
    try {
        headers = fs.readFileSync(hfile, 'utf8').toLowerCase();
    } catch {
        /* no response */
    }
    return {
        code: r.code,
        status: i >= 0 ? Number(r.stdout.slice(i + SEP.length)) : 0,
        body: i >= 0 ? r.stdout.slice(0, i) : r.stdout,
        headers,
        stderr: r.stderr,
    };
}

const chat = () => `${st.baseURL}/chat/completions`;

test('malformed JSON -> 400 invalid_request_error', T, async () => {
    const r = await req(['-H', 'content-type: application/json', '--data-binary', '{"model": "mock-a", "messages": [',
                         chat()]);
    assert.equal(r.status, 400, `${r.stderr}\n${r.body}`);
    const e = errorObject(assert, r.body);
    assert.equal(e.type, 'invalid_request_error');
    assert.match(r.headers, /x-request-id: \S+/);
    assert.match(r.headers, /content-type: application\/json/);
});

test('JSON followed by trailing bytes -> 400 (the whole body must be one JSON value)', T, async () => {
    const good = JSON.stringify({ model: 'mock-a', messages: userMsg('x') });
    for (const body of [`${good}garbage`, `${good}{}`, `${good} ]`]) {
        const r = await req(['-H', 'content-type: application/json', '--data-binary', body, chat()]);
        assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.body.slice(0, 200)}`);
        assert.equal(errorObject(assert, r.body, body).type, 'invalid_request_error');
    }
    // Trailing whitespace is still one JSON value.
    const r = await req(['-H', 'content-type: application/json', '--data-binary', `${good} \n`, chat()]);
    assert.equal(r.status, 200, r.body);
});

test('non-object JSON and wrong types -> 400', T, async () => {
    for (const body of ['[]', '"hi"', '{"model":"mock-a","messages":"nope"}', '{"messages":[{"role":"user","content":"x"}]}']) {
        const r = await req(['-H', 'content-type: application/json', '--data-binary', body, chat()]);
        assert.ok(r.status === 400 || r.status === 404, `${body} -> ${r.status} ${r.body}`);
        errorObject(assert, r.body, body);
    }
});

function bigBody() {
    return JSON.stringify({ model: 'mock-a', messages: userMsg('x'.repeat(10 * 1024)) });
}

test('oversized body -> 413 with an error object', T, async () => {
    const r = await req(['-H', 'content-type: application/json', '-H', 'Expect:', '--data-binary', '@-', chat()],
                        { input: bigBody() });
    assert.equal(r.status, 413, `${r.stderr}\n${r.body}`);
    errorObject(assert, r.body);
});

test('oversized body with Expect: 100-continue -> 413 with an error object', T, async () => {
    const r = await req(['-H', 'content-type: application/json', '-H', 'Expect: 100-continue',
                         '--expect100-timeout', '5', '--data-binary', '@-', chat()], { input: bigBody() });
    assert.equal(r.status, 413, `${r.stderr}\n${r.body}`);
    errorObject(assert, r.body);
});

test('body just under the limit is accepted', T, async () => {
    const text = 'y'.repeat(MAX_BODY - 200);
    const r = await req(['-H', 'content-type: application/json', '--data-binary', '@-', chat()],
                        { input: JSON.stringify({ model: 'mock-a', messages: userMsg(text) }) });
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).choices[0].message.content, `echo: ${text}`);
});

test('GET /v1/chat/completions -> 405', T, async () => {
    const r = await req([chat()]);
    assert.equal(r.status, 405, r.body);
    errorObject(assert, r.body);
});

test('unknown path -> 404', T, async () => {
    const r = await req([`${st.url}/v1/nope`]);
    assert.equal(r.status, 404, r.body);
    errorObject(assert, r.body);
});

test('keep-alive: two requests on one connection', T, async () => {
    const body = JSON.stringify({ model: 'mock-a', messages: userMsg('ka') });
    const r = await curl(['--max-time', '10', '-H', 'content-type: application/json', '--data-binary', body, chat(),
                          '--next', '-H', 'content-type: application/json', '--data-binary', body, chat(), '-v']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((r.stdout.match(/echo: ka/g) || []).length, 2, r.stdout);
    assert.match(r.stderr, /Re-using existing connection/i, 'connection reused');
});

test('client abort mid-stream cancels the upstream; the proxy stays healthy', { timeout: 30000 }, async () => {
    await st.mockReset();
    await st.mockConfig({ chunk_delay_ms: 200 });
    try {
        const text = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
        const r = await curl(['-N', '--max-time', '1', '-H', 'content-type: application/json', '--data-binary',
                              JSON.stringify({ model: 'mock-a', messages: userMsg(text), stream: true }), chat()]);
        assert.equal(r.code, 28, `curl timed out on purpose (exit ${r.code}): ${r.stderr}`);
        assert.match(r.stdout, /^data: /m, 'some chunks arrived before the abort');
        assert.doesNotMatch(r.stdout, /\[DONE\]/, 'stream was cut before its end');
        const stats = await waitFor(async () => {
            const s = await st.mockStats();
            return s.streams_cancelled >= 1 ? s : null;
        }, { timeoutMs: 5000, what: 'mock streams_cancelled >= 1' });
        assert.ok(stats.streams_cancelled >= 1);
    } finally {
        await st.mockReset();
    }
    assert.equal((await fetchT(`${st.url}/healthz`)).status, 200);
    const ok = await req(['-H', 'content-type: application/json', '--data-binary',
                          JSON.stringify({ model: 'mock-a', messages: userMsg('after abort') }), chat()]);
    assert.equal(ok.status, 200, ok.body);
    assert.equal(JSON.parse(ok.body).choices[0].message.content, 'echo: after abort');
});

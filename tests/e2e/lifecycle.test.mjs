// tests/e2e/lifecycle.test.mjs - SIGTERM drains: a stream in flight completes, then the proxy
// exits 0 and stops accepting connections.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, userMsg, waitFor, fetchT, SLOW } from './lib/harness.mjs';

let st;
after(async () => {
    if (st) await st.stop();
});

test('SIGTERM lets a stream in flight finish, then exits 0', { timeout: 30000 }, async () => {
    st = await startStack({ proxyArgs: ['--drain-timeout-ms', '10000'] });
    await st.mockConfig({ chunk_delay_ms: 100 });
    const client = st.client();
    const text = 'a b c d e f g h i j';
    const stream = await client.chat.completions.create({ model: 'mock-a', messages: userMsg(text), stream: true });
    let out = '';
    let signalled = false;
    for await (const chunk of stream) {
        out += chunk.choices[0]?.delta?.content || '';
        if (!signalled && out.length > 0) {
            st.proxy.signal('SIGTERM');
            signalled = true;
        }
    }
    assert.ok(signalled, 'signalled mid-stream');
    assert.equal(out, `echo: ${text}`, 'the stream in flight completed');
    const ex = await waitFor(() => st.proxy.exit, { timeoutMs: 5000, what: 'proxy to exit after drain' });
    assert.deepEqual(ex, { code: 0, signal: null }, st.describe());
    st.proxy.stopping = true; // exited on purpose: teardown must not call it a crash
    await assert.rejects(fetchT(`${st.url}/healthz`, {}, 2000 / SLOW), 'no longer listening');
});

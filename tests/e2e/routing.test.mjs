// tests/e2e/routing.test.mjs - weighted route targets share traffic, and 64 concurrent
// streams each get their own complete answer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, userMsg } from './lib/harness.mjs';

let st;
let client;
before(async () => {
    st = await startStack();
    client = st.client();
});
after(async () => {
    if (st) await st.stop();
});

test('route weights 3:1 split 200 requests roughly 3:1', { timeout: 45000 }, async () => {
    const counts = { 'mock-a': 0, 'mock-b': 0 };
    const N = 200;
    let next = 0;
    // 8 at a time: fast, but still many separate routing decisions.
    async function worker() {
        while (next < N) {
            const i = next++;
            const { data, response } = await client.chat.completions
                .create({ model: 'auto', messages: userMsg(`w${i}`) })
                .withResponse();
            assert.equal(data.choices[0].message.content, `echo: w${i}`);
            assert.equal(response.headers.get('x-switchyard-route'), 'weighted');
            const m = response.headers.get('x-switchyard-model');
            assert.ok(m in counts, `unexpected model ${m}`);
            counts[m]++;
        }
    }
    await Promise.all(Array.from({ length: 8 }, worker));
    assert.equal(counts['mock-a'] + counts['mock-b'], N);
    // Expected 150:50; binomial sd ~6.1, so these bounds are > 5 sd wide.
    assert.ok(counts['mock-a'] >= 110 && counts['mock-a'] <= 185, `mock-a got ${counts['mock-a']}/200`);
    assert.ok(counts['mock-b'] >= 15 && counts['mock-b'] <= 90, `mock-b got ${counts['mock-b']}/200`);
});

test('the provider is asked for the target upstream_model', { timeout: 20000 }, async () => {
    await st.mockReset();
    await client.chat.completions.create({ model: 'mock-b', messages: userMsg('which') });
    await client.chat.completions.create({ model: 'mock-a', messages: userMsg('which') });
    const s = await st.mockStats();
    assert.equal(s.by_model?.['b-upstream'], 1, `by_model ${JSON.stringify(s.by_model)}`);
    assert.equal(s.by_model?.['a-upstream'], 1, `by_model ${JSON.stringify(s.by_model)}`);
    assert.equal(s.by_model?.['mock-b'], undefined, 'client-facing name not sent upstream');
});

test('64 concurrent streams all complete with their own text', { timeout: 45000 }, async () => {
    const N = 64;
    await st.mockConfig({ chunk_delay_ms: 5 });
    try {
        const results = await Promise.all(
            Array.from({ length: N }, async (_, i) => {
                const text = `stream number ${i} says ${'word '.repeat(i % 7)}done`;
                const stream = await client.chat.completions.create({
                    model: i % 2 ? 'mock-a' : 'auto',
                    messages: userMsg(text),
                    stream: true,
                });
                let out = '';
                for await (const chunk of stream) out += chunk.choices[0]?.delta?.content || '';
                return { want: `echo: ${text}`, got: out };
            }),
        );
        for (const r of results) assert.equal(r.got, r.want);
    } finally {
        await st.mockReset();
    }
});

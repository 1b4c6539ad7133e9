import { test } from 'vitest';
import '/work/main/src/index.js';
import { chatTokenizer, colorRecords, tinyLlama } from '/work/main/src/test-util/tiny-chat.js';
import { sft } from '/work/main/src/train/sft.js';
const tok = chatTokenizer();
test('x', async () => {
  for (const [lr, steps, r, alpha, q] of [[1e-2, 60, 8, 32, false], [3e-3, 100, 8, 16, true], [1e-2, 60, 8, 16, true]] as const) {
    const out = await sft(tinyLlama(3), tok, colorRecords(), { progress: false, log: () => {}, qlora: q, lora: { r, alpha, dropout: 0 }, batchSize: 6, maxSteps: steps, lr, schedule: 'constant' });
    console.log(q, lr, steps, r, alpha, out.train.losses.filter((_, i) => i % 10 === 9).map((l) => l.loss.toFixed(3)).join(' '));
  }
}, 120000);

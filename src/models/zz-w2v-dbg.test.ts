import { test } from 'vitest';
import '../index.js';
import { mul } from '../autograd/ops/elementwise.js';
import { sum } from '../autograd/ops/reduce.js';
import { listDevices } from '../tensor/backend.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCTC } from './auto.js';
const maxDiff = async (a: { data(): Promise<ArrayLike<number>> }, b: { data(): Promise<ArrayLike<number>> }) => { const x = await a.data(), y = await b.data(); let m = 0; for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!)); return m; };
test('dbg', async () => {
  for (const device of listDevices()) for (const name of ['wav2vec2', 'wav2vec2-stable']) {
    const ref = await loadRef(name, device);
    const model = await AutoModelForCTC.fromPretrained(hfDir(name), { device });
    const inputs = { inputValues: ref['input_values']!, attentionMask: ref['attention_mask'] ?? null };
    const t0 = performance.now();
    const out = model.forward({ ...inputs, labels: ref['ctc_labels']! });
    const lossDiff = Math.abs((await out.loss!.item()) - (await ref['ctc_loss']!.data())[0]!);
    const ms = performance.now() - t0;
    sum(mul(out.logits, ref['grad_probe']!)).backward();
    let worst = 0;
    for (const [n, p] of model.namedParameters()) {
      if (n.endsWith('k_proj.bias')) continue;
      const w = await ref['grad.' + n]!.data(); const s = Math.max(...Array.from(w, Math.abs));
      worst = Math.max(worst, (await maxDiff(p.grad!, ref['grad.' + n]!)) / s);
    }
    console.log(`RESULT ${device} ${name} logits ${(await maxDiff(out.logits, ref['logits']!)).toExponential(2)} hidden ${(await maxDiff(out.lastHiddenState!, ref['last_hidden_state']!)).toExponential(2)} ctc ${lossDiff.toExponential(2)} grad(rel max) ${worst.toExponential(2)} fwd+loss ${ms.toFixed(0)} ms`);
  }
});

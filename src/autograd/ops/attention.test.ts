// The fused attention kernel against the composed path (bmm + softmax) on every backend that has it.

import { describe, expect, test } from 'vitest';
import '../../index.js';
import { getBackend, listDevices } from '../../tensor/backend.js';
import { randn, tensor } from '../../tensor/create.js';
import { manualSeed } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import { expectClose } from '../../test-util/fixtures.js';
import { attention, attentionProbs, type AttentionOpOptions } from './attention.js';
import { bmm } from './matmul.js';
import { reshape } from './movement.js';

function composed(q: Tensor, k: Tensor, v: Tensor, o: AttentionOpOptions = {}): Tensor {
  const [B, H, T] = q.shape as [number, number, number];
  const S = k.shape[2]!, hv = v.shape[3]!;
  return reshape(bmm(reshape(attentionProbs(q, k, o), [B * H, T, S]), reshape(v, [B * H, S, hv])), [B, H, T, hv]);
}

const cases: [string, number, number, AttentionOpOptions | ((d: string) => AttentionOpOptions)][] = [
  ['plain', 4, 4, {}],
  ['causal, queries are the last 3 of 6 positions', 3, 6, { causal: true }],
  ['padding bias with an empty row, custom scale', 3, 4, (d) => ({ scale: 0.3, bias: tensor([[[[0, 0, -Infinity, 0]], [[-Infinity, -Infinity, -Infinity, -Infinity]]]], { device: d }).reshape([2, 1, 1, 4]) })],
];

for (const device of listDevices().filter((d) => getBackend(d).attention)) {
  describe(`fused attention on ${device}`, () => {
    for (const [name, T, S, o] of cases) {
      test(name, async () => {
        manualSeed(5);
        const opts = typeof o === 'function' ? o(device) : o;
        const mk = (l: number, d: number) => randn([2, 2, l, d], { device, requiresGrad: true });
        const [q, k, v] = [mk(T, 4), mk(S, 4), mk(S, 3)];
        const probe = randn([2, 2, T, 3], { device });
        const run = (f: typeof attention) => {
          [q, k, v].forEach((t) => { t.grad = null; });
          const out = f(q, k, v, opts);
          out.mul(probe).sum().backward();
          return [out, q.grad!, k.grad!, v.grad!].map((t) => Array.from(t.dataSync()));
        };
        const fused = run(attention), ref = run(composed);
        fused.forEach((a, i) => expectClose(a, ref[i]!, 1e-5, 1e-4, `${name} tensor ${i}`));
        expect(fused[0]!.every(Number.isFinite)).toBe(true);
      });
    }
  });
}

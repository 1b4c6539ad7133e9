// Fused softmax / log-softmax / layer norm / RMS norm against PyTorch on every backend, plus finite differences.

import { describe, expect, test } from 'vitest';
import { listDevices } from '../../tensor/backend.js';
import { tensor, zeros } from '../../tensor/create.js';
import { describeOps } from '../../test-util/op-check.js';
import { layerNorm, rmsNorm } from './nn.js';

describeOps('nn primitives', {
  softmax: (x) => x.softmax(-1),
  softmax_dim0: (x) => x.softmax(0),
  log_softmax: (x) => x.logSoftmax(-1),
  layer_norm: (x, w, b) => layerNorm(x!, [5], w!, b!, 1e-5),
  layer_norm_noaffine: (x) => layerNorm(x, [2, 3]),
  rms_norm: (x, w) => rmsNorm(x!, [5], w!, 1e-6),
});

describe('nn primitive edge cases', () => {
  test('softmax is stable for large logits', async () => {
    const p = (await tensor([1000, 1001], { dtype: 'float32' }).softmax().data()) as Float32Array;
    expect(p[1]).toBeCloseTo(1 / (1 + Math.exp(-1)), 6);
  });
  test('layerNorm checks the normalized shape', () => {
    expect(() => layerNorm(zeros([2, 4]), [5])).toThrow(/layerNorm: input \[2, 4\] does not end with normalized shape \[5\]/);
  });
  test('layerNorm / rmsNorm refuse parameters of another dtype (torch: "expected scalar type Float but found Half")', () => {
    for (const device of listDevices()) {
      const x = zeros([1, 4], { device }), h = zeros([4], { dtype: 'float16', device });
      expect(() => layerNorm(x, [4], h)).toThrow("layerNorm: parameter dtype float16 does not match the input's float32 (convert one with .to())");
      expect(() => layerNorm(x.half(), [4], h, zeros([4], { device }))).toThrow("layerNorm: parameter dtype float32 does not match the input's float16");
      expect(() => rmsNorm(x, [4], h)).toThrow("rmsNorm: parameter dtype float16 does not match the input's float32");
    }
  });
});

// Issue 15 classes I and P: values printed by torch 1.13 (snippets in the comments).
for (const device of listDevices()) {
  describe(`nn primitives at the edges on ${device}`, () => {
    test('logSoftmax of tied huge logits: output and gradient as PyTorch (x - max - log(sum))', async () => {
      // x = torch.tensor([1e30, 1e30, 0.], requires_grad=True); y = F.log_softmax(x, 0)
      // -> [-0.6931471824645996, -0.6931471824645996, -1.0000000150474662e+30];
      // (y * torch.tensor([1., -2, 0.5])).sum().backward() -> x.grad [1.25, -1.75, 0.5]
      const x = tensor([1e30, 1e30, 0], { device, requiresGrad: true });
      const y = x.logSoftmax(0);
      expect(await y.tolist()).toEqual([-0.6931471824645996, -0.6931471824645996, -1.0000000150474662e+30]);
      y.mul(tensor([1, -2, 0.5], { device })).sum().backward();
      expect(await x.grad!.tolist()).toEqual([1.25, -1.75, 0.5]);
    });

    test('float16 layerNorm / rmsNorm keep their statistics in float32 for the backward', async () => {
      // torch 1.13 has no CPU half layer_norm; reference: the float32 computation of the float16 values, rounded to float16.
      // h = torch.float16; x = torch.tensor([-0.6629362106323242, -0.6391799449920654], dtype=h).float().requires_grad_()
      // w = torch.tensor([-0.8722, 0.5393], dtype=h).float(); b = torch.tensor([0.6695, -1.2747], dtype=h).float()
      // y = F.layer_norm(x, [2], w, b, 1e-5) -> y.half() [1.5126953125, -0.75341796875];
      // (y * torch.tensor([1., -1])).sum().backward() -> x.grad.half() [-0.87890625, 0.87890625]
      const h = (v: number[], requiresGrad = false) => tensor(v, { dtype: 'float16', device, requiresGrad });
      const x = h([-0.6629362106323242, -0.6391799449920654], true);
      const y = layerNorm(x, [2], h([-0.8722, 0.5393]), h([0.6695, -1.2747]), 1e-5);
      expect(await y.tolist()).toEqual([1.5126953125, -0.75341796875]);
      y.mul(h([1, -1])).sum().backward();
      const g = await x.grad!.tolist() as number[];
      expect(x.grad!.dtype).toBe('float16');
      [-0.87890625, 0.87890625].forEach((v, i) => expect(Math.abs(g[i]! - v)).toBeLessThanOrEqual(2 ** -10)); // within 1 float16 ulp
      // rmsNorm, same x and w: ms = (x*x).mean(); y = x * torch.rsqrt(ms + 1e-6) * w; (y * [1, -1]).sum().backward()
      // -> x.grad [-0.231361985206604, 0.24001705646514893]
      const xr = h([-0.6629362106323242, -0.6391799449920654], true);
      rmsNorm(xr, [2], h([-0.8722, 0.5393]), 1e-6).mul(h([1, -1])).sum().backward();
      const gr = await xr.grad!.tolist() as number[];
      [-0.231361985206604, 0.24001705646514893].forEach((v, i) => expect(Math.abs(gr[i]! - v)).toBeLessThanOrEqual(2 ** -12));
    });
  });
}

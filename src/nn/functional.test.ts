// Losses, convolution, pooling and attention against PyTorch on every backend, plus finite differences in float64.

import { describe, expect, test } from 'vitest';
import { listDevices } from '../tensor/backend.js';
import { manualSeed } from '../tensor/random.js';
import { ones, tensor, zeros } from '../tensor/create.js';
import { describeOps } from '../test-util/op-check.js';
import { expectOpError } from '../test-util/devices.js';
import * as F from './functional.js';

describeOps('functional', {
  cross_entropy: (x, t) => F.crossEntropy(x!, t!),
  cross_entropy_ignore_smooth: (x, t) => F.crossEntropy(x!, t!, { ignoreIndex: -100, labelSmoothing: 0.1 }),
  cross_entropy_sum: (x, t) => F.crossEntropy(x!, t!, { reduction: 'sum' }),
  cross_entropy_ignore: (x, t) => F.crossEntropy(x!, t!, { ignoreIndex: -100 }),
  cross_entropy_none_3d: (x, t) => F.crossEntropy(x!, t!, { reduction: 'none' }),
  nll_loss: (x, t) => F.nllLoss(x!, t!),
  mse_loss: (a, b) => F.mseLoss(a!, b!),
  bce_with_logits: (x, y) => F.binaryCrossEntropyWithLogits(x!, y!),
  conv1d: (x, w, b) => F.conv1d(x!, w!, b!, { stride: 2, padding: 1 }),
  conv1d_groups_dilation: (x, w) => F.conv1d(x!, w!, null, { padding: 2, dilation: 2, groups: 2 }),
  conv2d: (x, w, b) => F.conv2d(x!, w!, b!, { stride: [1, 2], padding: 1 }),
  conv2d_groups: (x, w) => F.conv2d(x!, w!, null, { groups: 3 }),
  max_pool2d: (x) => F.maxPool2d(x, 2),
  max_pool2d_pad_stride: (x) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }),
  avg_pool2d: (x) => F.avgPool2d(x, [2, 3], { stride: 1, padding: [1, 1] }),
  max_pool1d: (x) => F.maxPool1d(x, 3, 2),
  avg_pool1d: (x) => F.avgPool1d(x, 2),
  attention: (q, k, v) => F.scaledDotProductAttention(q!, k!, v!),
  attention_causal: (q, k, v) => F.scaledDotProductAttention(q!, k!, v!, { isCausal: true }),
  attention_causal_cached: (q, k, v) => F.scaledDotProductAttention(q!, k!, v!, { isCausal: true }),
  attention_padding_empty_row: (q, k, v, m) => F.scaledDotProductAttention(q!, k!, v!, { attnMask: m }),
  // A bias that requires grad (T5's relative positions) takes the composed path.
  attention_bias_grad: (q, k, v, b) => F.scaledDotProductAttention(q!, k!, v!, { attnMask: b }),
});

describe('functional details', () => {
  test('dropout keeps about 1 - p of the elements, scaled by 1 / (1 - p), and is identity in eval', async () => {
    manualSeed(1);
    const y = (await F.dropout(ones([10000]), 0.3).data()) as Float32Array;
    const kept = y.filter((v) => v !== 0);
    expect(kept.length / y.length).toBeGreaterThan(0.68);
    expect(kept.length / y.length).toBeLessThan(0.72);
    expect(kept[0]).toBeCloseTo(1 / 0.7, 6);
    const x = ones([3]);
    expect(F.dropout(x, 0.5, false)).toBe(x);
  });
  test('cross-entropy with an out-of-range target names the op', () => {
    expect(() => F.crossEntropy(zeros([2, 3]), tensor([0, 3], { dtype: 'int32' }))).toThrow(/crossEntropy: index 3 is out of range/);
    expect(() => F.crossEntropy(zeros([2, 3]), tensor([0, 1, 2], { dtype: 'int32' }))).toThrow(/nllLoss: target \[3\] does not match input \[2, 3\]/);
  });
  test('cross-entropy with probability targets equals the index form for one-hot targets', async () => {
    const logits = tensor([[1, 2, 0.5], [0, -1, 3]]);
    const a = await F.crossEntropy(logits, tensor([1, 2], { dtype: 'int32' })).item();
    const b = await F.crossEntropy(logits, F.oneHot(tensor([1, 2], { dtype: 'int32' }), 3).float()).item();
    expect(b).toBeCloseTo(a, 6);
  });
  test('causal attention with fewer queries than keys lets the last query see every key', async () => {
    const q = ones([1, 1, 4]), k = tensor([[[0], [0], [0]]], { dtype: 'float32' }).expand([1, 3, 4]), v = tensor([[[1], [2], [3]]], { dtype: 'float32' });
    expect(await F.scaledDotProductAttention(q, k, v, { isCausal: true }).tolist()).toEqual([[[2]]]);
  });
});

// Issue 15: values printed by torch 1.13 (snippets in the comments; F = torch.nn.functional).
for (const device of listDevices()) {
  const f32 = (v: number | number[] | number[][] | number[][][], requiresGrad = false) => tensor(v, { dtype: 'float32', device, requiresGrad });
  const i32 = (v: number | number[] | number[][]) => tensor(v, { dtype: 'int32', device });
  const near = (got: unknown, want: number[], digits = 6) => (got as number[]).flat(3).forEach((g, i) => expect(g).toBeCloseTo(want[i]!, digits));

  describe(`losses PyTorch parity on ${device}`, () => {
    test('an ignored row contributes exactly 0 whatever its logits hold (-inf, NaN), with or without weight', async () => {
      // lg = torch.tensor([[[-inf, 1.68], [1e30, -inf]], [[-1.54, -1.75], [-1.00, -1.50]]], requires_grad=True)
      // l = F.nll_loss(F.log_softmax(lg, 1), torch.tensor([[-1, 0], [-1, 0]]), ignore_index=-1) -> 0.412969708442688;
      // l.backward() -> lg.grad [[[0, 0], [0, 0]], [[0, -0.2810882329940796], [0, 0.281088262796402]]]
      const lg = f32([[[-Infinity, 1.68], [1e30, -Infinity]], [[-1.54, -1.75], [-1.0, -1.5]]], true);
      const l = F.nllLoss(F.logSoftmax(lg, 1), i32([[-1, 0], [-1, 0]]), { ignoreIndex: -1 });
      expect(await l.item()).toBeCloseTo(0.412969708442688, 6);
      l.backward();
      near(await lg.grad!.tolist(), [0, 0, 0, 0, 0, -0.2810882329940796, 0, 0.281088262796402]);
      // F.cross_entropy(torch.tensor([[88.5, nan], [-0.539, -0.372]]), torch.tensor([-100, -100]),
      //   weight=torch.tensor([1.58, 0.99]), reduction='sum') -> 0.0
      const x = f32([[88.5, NaN], [-0.539, -0.372]]);
      expect(await F.crossEntropy(x, i32([-100, -100]), { weight: f32([1.58, 0.99]), reduction: 'sum' }).item()).toBe(0);
      // same with target [-100, 1], reduction='mean' -> 0.6131292581558228; without weight, reduction='none' -> [0, 0.6131292581558228]
      expect(await F.crossEntropy(x, i32([-100, 1]), { weight: f32([1.58, 0.99]) }).item()).toBeCloseTo(0.6131292581558228, 6);
      near(await F.crossEntropy(x, i32([-100, 1]), { reduction: 'none' }).tolist(), [0, 0.6131292581558228]);
      // F.cross_entropy(torch.tensor([[-inf, 2.], [-0.539, -0.372]]), torch.tensor([-100, 1]), label_smoothing=0.1) -> 0.6214792728424072
      expect(await F.crossEntropy(f32([[-Infinity, 2], [-0.539, -0.372]]), i32([-100, 1]), { labelSmoothing: 0.1 }).item()).toBeCloseTo(0.6214792728424072, 6);
      // F.nll_loss(F.log_softmax(torch.tensor([[0.857, 1e30, inf]]), 1), torch.tensor([0]), ignore_index=0,
      //   weight=torch.tensor([1.1, 1.6, 0.6]), reduction='none') -> [0.0]
      const o = F.nllLoss(F.logSoftmax(f32([[0.857, 1e30, Infinity]]), 1), i32([0]), { ignoreIndex: 0, weight: f32([1.1, 1.6, 0.6]), reduction: 'none' });
      expect(await o.tolist()).toEqual([0]);
    });

    test('every target ignored: the loss is NaN and the gradient 0, on every path', async () => {
      // lg = torch.tensor([[1.,2,3],[0,1,-1]], requires_grad=True); F.cross_entropy(lg, torch.tensor([-100,-100]), **kw)
      // -> nan, lg.grad all 0, for kw = {}, {label_smoothing: 0.1}, {weight: [1,2,3]}, {weight: [1,2,3], label_smoothing: 0.2}
      const kws = [{}, { labelSmoothing: 0.1 }, { weight: f32([1, 2, 3]) }, { weight: f32([1, 2, 3]), labelSmoothing: 0.2 }];
      for (const kw of kws) {
        const lg = f32([[1, 2, 3], [0, 1, -1]], true);
        const loss = F.crossEntropy(lg, i32([-100, -100]), kw);
        expect(Number.isNaN(await loss.item())).toBe(true);
        loss.backward();
        expect(await lg.grad!.tolist()).toEqual([[0, 0, 0], [0, 0, 0]]);
      }
      // [N, C, d] logits: F.cross_entropy(torch.randn(2,3,2), torch.full((2,2),-100)) -> nan, grad 0
      const lg3 = f32([[[1, 2], [0, 1], [3, -1]], [[0, 0], [1, 1], [2, 2]]], true);
      const l3 = F.crossEntropy(lg3, i32([[-100, -100], [-100, -100]]));
      expect(Number.isNaN(await l3.item())).toBe(true);
      l3.backward();
      expect((await lg3.grad!.tolist() as number[][][]).flat(2).every((v) => v === 0)).toBe(true);
      // [C] logits: F.cross_entropy(torch.randn(3), torch.tensor(-100)) -> nan, grad 0
      const lc = f32([1, 2, 3], true);
      const l1 = F.crossEntropy(lc, i32(-100));
      expect(Number.isNaN(await l1.item())).toBe(true);
      l1.backward();
      expect(await lc.grad!.tolist()).toEqual([0, 0, 0]);
      // F.nll_loss(lp, torch.tensor([-100,-100])) -> nan, grad 0
      const lp = f32([[-1, -2, -0.5], [-0.3, -1, -2]], true);
      const ln = F.nllLoss(lp, i32([-100, -100]));
      expect(Number.isNaN(await ln.item())).toBe(true);
      ln.backward();
      expect(await lp.grad!.tolist()).toEqual([[0, 0, 0], [0, 0, 0]]);
    });

    test('an ignored row with a NaN logit gets a NaN gradient (0 * softmax), as in PyTorch', async () => {
      // lg = torch.tensor([[1.,2,3],[nan,0,1],[-inf,0,1]], requires_grad=True); F.cross_entropy(lg, torch.tensor([0,-100,-100]))
      // -> 2.4076058864593506; lg.grad [[-0.90996945, 0.24472849, 0.66524100], [nan, nan, nan], [0, 0, 0]]
      const lg = f32([[1, 2, 3], [NaN, 0, 1], [-Infinity, 0, 1]], true);
      const loss = F.crossEntropy(lg, i32([0, -100, -100]));
      expect(await loss.item()).toBeCloseTo(2.4076058864593506, 5);
      loss.backward();
      const g = await lg.grad!.tolist() as number[][];
      near(g[0], [-0.90996945, 0.24472849, 0.665241]);
      expect(g.slice(1)).toEqual([[NaN, NaN, NaN], [0, 0, 0]]);
    });

    test('some targets ignored with weight and smoothing: the value and gradient of PyTorch', async () => {
      // F.cross_entropy(lg, torch.tensor([2,-100]), weight=torch.tensor([1.,2,3]), label_smoothing=0.2)
      // -> 0.4693211317062378, grad [[0.0618063249, 0.1839688271, -0.2457750887], [0, 0, 0]]
      const lg = f32([[1, 2, 3], [0, 1, -1]], true);
      const loss = F.crossEntropy(lg, i32([2, -100]), { weight: f32([1, 2, 3]), labelSmoothing: 0.2 });
      expect(await loss.item()).toBeCloseTo(0.4693211317062378, 6);
      loss.backward();
      near(await lg.grad!.tolist(), [0.0618063249, 0.1839688271, -0.2457750887, 0, 0, 0]);
    });

    test('probability targets honour weight', async () => {
      // lg = torch.tensor([[1.,2,3]], requires_grad=True)
      // F.cross_entropy(lg, torch.tensor([[0.2,0.3,0.5]]), weight=torch.tensor([1.,2,10])) -> 3.364114284515381
      // lg.grad -> [[0.32217738, 0.81942528, -1.14160204]]
      const lg = f32([[1, 2, 3]], true);
      const loss = F.crossEntropy(lg, f32([[0.2, 0.3, 0.5]]), { weight: f32([1, 2, 10]) });
      expect(await loss.item()).toBeCloseTo(3.364114284515381, 5);
      loss.backward();
      near(await lg.grad!.tolist(), [0.32217738, 0.81942528, -1.14160204]);
      // With label_smoothing=0.1 on [[1,2,3],[0,1,-1]] and targets [[0.2,0.3,0.5],[1,0,0]] -> 2.740570068359375,
      // grad [[0.14781977, 0.38843250, -0.53625196], [-0.30351433, 0.41016069, -0.10664628]]
      const lg2 = f32([[1, 2, 3], [0, 1, -1]], true);
      const l2 = F.crossEntropy(lg2, f32([[0.2, 0.3, 0.5], [1, 0, 0]]), { weight: f32([1, 2, 10]), labelSmoothing: 0.1 });
      expect(await l2.item()).toBeCloseTo(2.740570068359375, 5);
      l2.backward();
      near(await lg2.grad!.tolist(), [0.14781977, 0.3884325, -0.53625196, -0.30351433, 0.41016069, -0.10664628]);
      // reduction='sum' -> 4.771719932556152; 'none' -> [3.3641, 1.4076]
      const two = f32([[1, 2, 3], [0, 1, -1]]), p = f32([[0.2, 0.3, 0.5], [1, 0, 0]]);
      expect(await F.crossEntropy(two, p, { weight: f32([1, 2, 10]), reduction: 'sum' }).item()).toBeCloseTo(4.771719932556152, 5);
      near(await F.crossEntropy(two, p, { weight: f32([1, 2, 10]), reduction: 'none' }).tolist(), [3.3641142845, 1.4076058865], 5);
      // [N, C, d]: lg = torch.tensor([[[1.,0],[2,1],[3,-1]]]); tg = torch.tensor([[[0.2,1],[0.3,0],[0.5,0]]]) -> 2.3858602046966553
      // grad [[[0.16108869, -0.37763575], [0.40971264, 0.33262047], [-0.5708012, 0.04501529]]]
      const lg3 = f32([[[1, 0], [2, 1], [3, -1]]], true);
      const l3 = F.crossEntropy(lg3, f32([[[0.2, 1], [0.3, 0], [0.5, 0]]]), { weight: f32([1, 2, 10]) });
      expect(await l3.item()).toBeCloseTo(2.3858602046966553, 5);
      l3.backward();
      near(await lg3.grad!.tolist(), [0.16108869, -0.37763575, 0.40971264, 0.33262047, -0.5708012, 0.04501529]);
    });

    test('binaryCrossEntropyWithLogits at infinite and NaN inputs gives what PyTorch gives', async () => {
      // x = torch.tensor([inf, -inf, 1., 0., nan, 100.]); t = torch.tensor([0., 1., nan, inf, 0.5, 0.])
      // F.binary_cross_entropy_with_logits(x, t, reduction='none') -> [inf, nan, nan, nan, nan, 100]
      // .sum().backward() -> x.grad [1, -1, nan, -inf, nan, 1], t.grad [-inf, inf, -1, -0, nan, -100]
      const x = f32([Infinity, -Infinity, 1, 0, NaN, 100], true), t = f32([0, 1, NaN, Infinity, 0.5, 0], true);
      const l = F.binaryCrossEntropyWithLogits(x, t, 'none');
      expect(await l.tolist()).toEqual([Infinity, NaN, NaN, NaN, NaN, 100]);
      l.sum().backward();
      expect(await x.grad!.tolist()).toEqual([1, -1, NaN, -Infinity, NaN, 1]);
      expect(await t.grad!.tolist()).toEqual([-Infinity, Infinity, -1, -0, NaN, -100]);
      expect(() => F.binaryCrossEntropyWithLogits(f32([[1, 2]]), f32([1, 2]))).toThrow(/binaryCrossEntropyWithLogits: target \[2\] must have the logits' shape \[1, 2\]/);
    });

    test('max pooling sends the whole gradient to the first largest value of a window', async () => {
      // x = torch.tensor([[[1.,3,3,2]]], requires_grad=True); F.max_pool1d(x, 2, 1).sum().backward() -> [[[0, 2, 1, 0]]]
      const x = f32([[[1, 3, 3, 2]]], true);
      F.maxPool1d(x, 2, 1).sum().backward();
      expect(await x.grad!.tolist()).toEqual([[[0, 2, 1, 0]]]);
      // with a NaN: F.max_pool1d(torch.tensor([[[1., nan, 3, 2]]]), 2, 1) -> [[[nan, nan, 3]]], grad [[[0, 2, 1, 0]]]
      const xn = f32([[[1, NaN, 3, 2]]], true);
      const y = F.maxPool1d(xn, 2, 1);
      expect(await y.tolist()).toEqual([[[NaN, NaN, 3]]]);
      y.sum().backward();
      expect(await xn.grad!.tolist()).toEqual([[[0, 2, 1, 0]]]);
    });

    test('oneHot rejects ids outside [0, numClasses) and float ids, like F.one_hot', async () => {
      // F.one_hot(torch.tensor([0, 2]), 3) -> [[1,0,0],[0,0,1]]
      const y = F.oneHot(i32([[0, 2]]), 3);
      expect(y.dtype).toBe('int32');
      expect(await y.tolist()).toEqual([[[1, 0, 0], [0, 0, 1]]]);
      expect(F.oneHot(i32(1), 3).shape).toEqual([3]);
      // torch: Class values must be non-negative. / must be smaller than num_classes. / only applicable to index tensor.
      // The index kernel checks the ids: on webgpu the error comes at the next read.
      await expectOpError(device, () => F.oneHot(i32([-1, 0]), 3), /oneHot: index -1 is out of range for a dimension of size 3/);
      await expectOpError(device, () => F.oneHot(i32([3, 0]), 3), /oneHot: index 3 is out of range/);
      expect(() => F.oneHot(f32([1, 0]), 3)).toThrow(/oneHot: ids must be an integer tensor, got float32/);
      expect(await F.oneHot(tensor([2, 0], { dtype: 'uint8', device }), 3).tolist()).toEqual([[0, 0, 1], [1, 0, 0]]);
    });
    test("oneHot over GPT-2's vocabulary allocates ids x classes, not classes^2", async () => {
      const y = F.oneHot(i32([5, 50000]), 50257);
      expect(y.shape).toEqual([2, 50257]);
      const data = await y.data();
      expect([data[5], data[50257 + 50000], Array.from(data).reduce((a, b) => a + b, 0)]).toEqual([1, 1, 2]);
    });
  });
}

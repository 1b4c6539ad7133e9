// ctcLoss against PyTorch 1.13's F.ctc_loss (scripts/gen_ctc_fixtures.py: losses, and gradients w.r.t. the logits
// through log_softmax) on every backend, the gradient w.r.t. logProbs by finite differences, and the errors.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { listDevices } from '../../tensor/backend.js';
import { randn, tensor } from '../../tensor/create.js';
import { Generator } from '../../tensor/random.js';
import { canReadSync } from '../../test-util/devices.js';
import { expectClose } from '../../test-util/fixtures.js';
import { gradcheck } from '../gradcheck.js';
import { mul } from './elementwise.js';
import { ctcLoss, type CtcLossOptions } from './ctc.js';
import { logSoftmax } from './nn.js';
import { sum } from './reduce.js';

interface Case {
  logits: { shape: number[]; data: number[] };
  targets: { shape: number[]; data: number[] };
  inputLengths: number[] | number;
  targetLengths: number[] | number;
  options: Required<CtcLossOptions>;
  loss: (number | 'inf')[];
  lossShape: number[];
  probe: number[];
  grad: number[] | null;
}
const fx = JSON.parse(readFileSync(new URL('../../../test/data/ctc.json', import.meta.url), 'utf8')) as { cases: Record<string, Case> };

for (const [device, recursion] of listDevices().flatMap((d) => [[d, 'host'], [d, 'tensor']] as const)) {
  // Targets and lengths are read on the host: where the device cannot read synchronously (webgpu) they are given as
  // cpu tensors, as ctcLoss's error asks; the host recursion needs synchronous reads of logProbs (tested below).
  const hostDevice = canReadSync(device) ? device : 'cpu';
  const noHost = recursion === 'host' && !canReadSync(device);
  describe(`ctcLoss on ${device} (${recursion} recursion) equals torch.nn.functional.ctc_loss`, () => {
    for (const [name, c] of Object.entries(fx.cases)) {
      it.skipIf(noHost)(name, async () => {
        const logits = tensor(c.logits.data, { shape: c.logits.shape, dtype: 'float32', device, requiresGrad: true });
        const targets = tensor(c.targets.data, { shape: c.targets.shape, dtype: 'int32', device: hostDevice });
        const il = typeof c.inputLengths === 'number' ? c.inputLengths : tensor(c.inputLengths, { dtype: 'int32', device: hostDevice });
        const loss = ctcLoss(logSoftmax(logits, -1), targets, il, c.targetLengths, { ...c.options, recursion });
        expect(loss.shape).toEqual(c.lossShape);
        const want = c.loss.map((v) => (v === 'inf' ? Infinity : v));
        const got = Array.from(await loss.data());
        got.forEach((v, i) => (want[i] === Infinity ? expect(v, `${name}[${i}]`).toBe(Infinity) : expect(Math.abs(v - want[i]!), `${name}[${i}] = ${v}, torch ${want[i]}`).toBeLessThan(1e-4 + 1e-5 * Math.abs(want[i]!))));
        if (c.grad === null) return;
        sum(mul(loss, tensor(c.probe, { shape: c.lossShape, dtype: 'float32', device }))).backward();
        expectClose(await logits.grad!.data(), c.grad, 2e-5, 1e-4, `${name} gradient`);
      });
    }

    it.skipIf(noHost)('an impossible alignment with zeroInfinity has zero gradient', async () => {
      const logits = randn([4, 1, 3], { device, requiresGrad: true });
      const loss = ctcLoss(logSoftmax(logits, -1), tensor([[1, 1, 1]], { device: hostDevice }), [4], [3], { zeroInfinity: true, reduction: 'sum', recursion });
      expect(await loss.item()).toBe(0);
      loss.backward();
      expect(Array.from(await logits.grad!.data()).every((v) => v === 0)).toBe(true);
    });

    if (!canReadSync(device)) {
      it('names what a device without synchronous reads cannot do', () => {
        const lp = logSoftmax(randn([4, 1, 3], { device }), -1);
        const opts = { recursion } as const;
        if (recursion === 'host') expect(() => ctcLoss(lp, tensor([[1]], { device: 'cpu' }), [4], [1], opts)).toThrow(`ctcLoss: recursion 'host' needs a device that reads synchronously, not '${device}'`);
        else expect(() => ctcLoss(lp, tensor([[1]], { device }), [4], [1], opts)).toThrow(`ctcLoss: targets on device '${device}' cannot be read synchronously; pass it as a number array or a cpu tensor`);
      });
    }
  });
}

describe('ctcLoss gradient', () => {
  it('is the exact derivative w.r.t. logProbs (finite differences, float64), varying lengths and repeats', () => {
    const g = new Generator(3);
    const lp = logSoftmax(tensor(g.normal(6 * 3 * 3), { shape: [6, 3, 3], dtype: 'float64' }), -1);
    const targets = tensor([[1, 1, 2], [2, 0, 0], [2, 1, 1]]);
    const raw = tensor(g.normal(5 * 3), { shape: [5, 3], dtype: 'float64' });
    for (const recursion of ['host', 'tensor'] as const) {
      gradcheck((x) => ctcLoss(x, targets, [6, 4, 5], [3, 1, 2], { reduction: 'none', recursion }), [lp]);
      // Unnormalized inputs too: the recursion does not assume the classes sum to one.
      gradcheck((x) => ctcLoss(x, tensor([2, 1]), 5, 2, { reduction: 'sum', recursion }), [raw]);
    }
  });

  it('frames past a sequence end get no gradient; the two recursions agree', async () => {
    const x = logSoftmax(randn([6, 2, 3]), -1).detach();
    const grads: Float32Array[] = [];
    for (const recursion of ['host', 'tensor'] as const) {
      const lp = x.clone();
      lp.requiresGrad = true;
      ctcLoss(lp, tensor([[1, 2], [2, 1]]), [6, 3], [2, 2], { recursion }).backward();
      const grad = (await lp.grad!.data()) as Float32Array;
      for (let t = 3; t < 6; t++) for (let c = 0; c < 3; c++) expect(grad[(t * 2 + 1) * 3 + c]).toBe(0);
      grads.push(grad);
    }
    expectClose(grads[1]!, Array.from(grads[0]!), 1e-6, 1e-5, 'tensor vs host');
  });

  it('empty targets only: the loss is minus the blank path, the gradient -1 on each blank frame', async () => {
    const x = logSoftmax(randn([4, 2, 3]), -1).detach();
    const v = await x.data();
    for (const recursion of ['host', 'tensor'] as const) {
      const lp = x.clone();
      lp.requiresGrad = true;
      const loss = ctcLoss(lp, tensor([[1], [1]]), [4, 2], [0, 0], { reduction: 'none', recursion });
      const want = [-(v[0]! + v[6]! + v[12]! + v[18]!), -(v[3]! + v[9]!)];
      expectClose(await loss.data(), want, 1e-5, 1e-6, recursion);
      sum(loss).backward();
      // [T, B, C]: frames 0-3 of sequence 0 and frames 0-1 of sequence 1, class 0 (blank)
      expectClose(await lp.grad!.data(), [-1, 0, 0, -1, 0, 0, -1, 0, 0, -1, 0, 0, -1, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0, 0], 1e-6, 0, `${recursion} gradient`);
    }
  });

  it('a -inf log-probability on an unused class is harmless; NaN propagates', async () => {
    for (const recursion of ['host', 'tensor'] as const) {
      const lp = tensor([[[0, -Infinity, -1]], [[-1, -Infinity, 0]], [[-0.5, -Infinity, -0.5]]], { dtype: 'float32' });
      const loss = await ctcLoss(lp, tensor([[2]]), [3], [1], { reduction: 'sum', recursion }).item();
      expect(Number.isFinite(loss)).toBe(true);
      const nan = tensor([[[0, 0, NaN]], [[-1, 0, 0]]], { dtype: 'float32' });
      expect(await ctcLoss(nan, tensor([[2]]), [2], [1], { recursion }).item()).toBeNaN();
    }
  });
});

describe('ctcLoss errors', () => {
  const lp = logSoftmax(randn([5, 2, 4]), -1);
  const targets = tensor([[1, 2], [3, 3]]);
  it('names the op and the shapes', () => {
    expect(() => ctcLoss(randn([5, 4, 2, 2]), targets, [5, 5], [2, 2])).toThrow('ctcLoss: logProbs must be [T, B, C] (or [T, C] unbatched), got [5, 4, 2, 2]');
    expect(() => ctcLoss(tensor([[[1]]]), targets, [1], [1])).toThrow('ctcLoss: logProbs must be floating point, got int32 [1, 1, 1]');
    expect(() => ctcLoss(lp, tensor([[1.5, 2]]), [5, 5], [2, 2])).toThrow('ctcLoss: targets must be an integer tensor, got float32 [1, 2]');
    expect(() => ctcLoss(lp, tensor([[1, 2], [3, 3], [1, 1]]), [5, 5], [2, 2])).toThrow('ctcLoss: targets [3, 2] do not match the batch of logProbs [5, 2, 4] ([T, B, C])');
    expect(() => ctcLoss(lp, targets, [5], [2, 2])).toThrow('ctcLoss: inputLengths has 1 entries for a batch of 2');
    expect(() => ctcLoss(lp, targets, [6, 5], [2, 2])).toThrow('ctcLoss: inputLengths[0] = 6 is out of range [0, 5] (T of logProbs [5, 2, 4])');
    expect(() => ctcLoss(lp, targets, [5, -1], [2, 2])).toThrow('ctcLoss: inputLengths[1] = -1 is out of range');
    expect(() => ctcLoss(lp, targets, [5, 5], [3, 2])).toThrow('ctcLoss: targetLengths[0] = 3 is out of range [0, 2] (S of targets [2, 2])');
    expect(() => ctcLoss(lp, tensor([1, 2, 3]), [5, 5], [4, 1])).toThrow('ctcLoss: targetLengths[0] = 4 is out of range [0, 3] (targets [3])');
    expect(() => ctcLoss(lp, tensor([1, 2, 3]), [5, 5], [1, 1])).toThrow('ctcLoss: 1-D targets [3] hold 3 labels but targetLengths add up to 2');
    expect(() => ctcLoss(lp, tensor([[1, 0], [3, 3]]), [5, 5], [2, 2])).toThrow('ctcLoss: target 0 (sequence 0, position 1) is the blank label; targets [2, 2]');
    expect(() => ctcLoss(lp, tensor([[1, 4], [3, 3]]), [5, 5], [2, 2])).toThrow('ctcLoss: target 4 (sequence 0, position 1) is out of range [0, 4) for 4 classes');
    expect(() => ctcLoss(lp, targets, [5, 5], [2, 2], { blank: 4 })).toThrow('ctcLoss: blank 4 is out of range [0, 4) for logProbs [5, 2, 4]');
    expect(() => ctcLoss(lp, targets, tensor([5, 5], { dtype: 'float32' }), [2, 2])).toThrow('ctcLoss: inputLengths must be an integer tensor, got float32 [2]');
    expect(() => ctcLoss(lp, targets, [5, 5], [2, 2], { reduction: 'avg' as 'mean' })).toThrow(`ctcLoss: reduction must be 'mean', 'sum' or 'none', got "avg"`);
    expect(() => ctcLoss(lp, targets, [5, 5], [2, 2], { recursion: 'gpu' as 'host' })).toThrow(`ctcLoss: recursion must be 'auto', 'host' or 'tensor', got "gpu"`);
  });

  it('padding beyond a target length is not checked (as PyTorch)', async () => {
    const loss = ctcLoss(lp, tensor([[1, 2], [3, 0]]), [5, 5], [2, 1], { reduction: 'none' });
    expect(loss.shape).toEqual([2]);
    expect(Number.isFinite((await loss.data())[1])).toBe(true);
  });
});

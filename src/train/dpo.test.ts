// DPO: the sigmoid loss and its gradient against closed forms, a tiny bigram model against a plain-JS computation, and torch (test/data/chat/dpo.json).

import { readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { embedding } from '../autograd/ops/indexing.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { tokenizePreference } from '../data/sft.js';
import { chatTokenizer, COLORS, tinyLlama } from '../test-util/tiny-chat.js';
import { dpoLoss, dpoTrain, logSigmoid, preferenceLogps, sequenceLogps } from './dpo.js';

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const softplus = (x: number): number => Math.log1p(Math.exp(x));

interface DpoCase {
  beta: number;
  labelSmoothing: number;
  loss: number;
  policyLogps: number[];
  referenceLogps: number[];
  chosenRewards: number[];
  rejectedRewards: number[];
  accuracy: number;
  gradPolicyLogits: number[];
}
const torchRef = JSON.parse(readFileSync(new URL('../../test/data/chat/dpo.json', import.meta.url), 'utf8')) as {
  shape: [number, number, number];
  policyLogits: number[];
  referenceLogits: number[];
  labels: number[];
  cases: DpoCase[];
};

for (const device of listDevices()) {
  const vec = (v: number[], requiresGrad = false): Tensor => tensor(v, { device, dtype: 'float32', requiresGrad });

  describe(`dpoLoss on ${device}`, () => {
    test('loss, rewards, margins, accuracy and gradients against the closed forms', async () => {
      const beta = 0.1;
      const pc = vec([-1, -3], true), pr = vec([-2, -1], true);
      const rc = vec([-1.5, -2], true), rr = vec([-1.5, -2], true);
      const out = dpoLoss({ policyChosenLogps: pc, policyRejectedLogps: pr, referenceChosenLogps: rc, referenceRejectedLogps: rr }, { beta });
      // z = β((πc − rc) − (πr − rr)): 0.1 (0.5 + 0.5) = 0.1 and 0.1 (−1 − 1) = −0.2; loss = mean(softplus(−z)).
      const z = [0.1, -0.2];
      expectClose([await out.loss.item()], [(softplus(-0.1) + softplus(0.2)) / 2], 1e-6, 1e-6, 'loss');
      expect(Math.abs((await out.loss.item()) - 0.7212677645)).toBeLessThan(1e-6);
      expectClose(await out.chosenRewards.data(), [0.05, -0.1], 1e-7, 1e-6, 'chosen rewards');
      expectClose(await out.rejectedRewards.data(), [-0.05, 0.1], 1e-7, 1e-6, 'rejected rewards');
      expectClose(await out.margins.data(), [0.1, -0.2], 1e-7, 1e-6, 'margins');
      expect(await out.accuracy.item()).toBe(0.5);
      out.loss.backward();
      // d loss / d πc_i = −β σ(−z_i) / B; d loss / d πr_i is its negative; the reference gets no gradient.
      const dpc = z.map((zi) => (-beta * sigmoid(-zi)) / 2);
      expectClose(await pc.grad!.data(), dpc, 1e-8, 1e-6, 'd/d policy chosen');
      expectClose(await pr.grad!.data(), dpc.map((g) => -g), 1e-8, 1e-6, 'd/d policy rejected');
      expect(rc.grad).toBeNull();
      expect(rr.grad).toBeNull();
      expect(out.chosenRewards.requiresGrad).toBe(false);
    });

    test('label smoothing (cDPO) and a policy equal to the reference', async () => {
      const beta = 0.5, ls = 0.2;
      const pc = vec([-4, -2, -7], true), pr = vec([-5, -2.5, -6], true);
      const rc = vec([-4.5, -2, -6], false), rr = vec([-4.5, -3, -6.5], false);
      const out = dpoLoss({ policyChosenLogps: pc, policyRejectedLogps: pr, referenceChosenLogps: rc, referenceRejectedLogps: rr }, { beta, labelSmoothing: ls });
      const z = [0.5 * (0.5 + 0.5), 0.5 * (0 - 0.5), 0.5 * (-1 - 0.5)];
      const per = z.map((zi) => (1 - ls) * softplus(-zi) + ls * softplus(zi));
      expectClose([await out.loss.item()], [per.reduce((a, b) => a + b) / 3], 1e-6, 1e-6, 'loss');
      out.loss.backward();
      const dpc = z.map((zi) => (beta * (-(1 - ls) * sigmoid(-zi) + ls * sigmoid(zi))) / 3);
      expectClose(await pc.grad!.data(), dpc, 1e-7, 1e-5, 'd/d policy chosen');
      expectClose(await pr.grad!.data(), dpc.map((g) => -g), 1e-7, 1e-5, 'd/d policy rejected');
      expect(await out.accuracy.item()).toBeCloseTo(1 / 3, 6);

      // At the first step the policy is the reference: z = 0, loss = log 2, gradient −β/(2B) (σ(0) = 1/2, not a kink).
      const same = vec([-3, -1], true), other = vec([-2, -2], true);
      const first = dpoLoss({ policyChosenLogps: same, policyRejectedLogps: other, referenceChosenLogps: vec([-3, -1]), referenceRejectedLogps: vec([-2, -2]) });
      expectClose([await first.loss.item()], [Math.LN2], 1e-7, 1e-6, 'loss at z = 0');
      first.loss.backward();
      expectClose(await same.grad!.data(), [-0.1 / 4, -0.1 / 4], 1e-9, 1e-6, 'gradient at z = 0');
      expect(await first.accuracy.item()).toBe(0);
    });

    test('large margins stay finite', async () => {
      const pc = vec([0, -500], true);
      const out = dpoLoss({ policyChosenLogps: pc, policyRejectedLogps: vec([-500, 0]), referenceChosenLogps: vec([0, 0]), referenceRejectedLogps: vec([0, 0]) }, { beta: 1 });
      // z = 500 (loss ~0) and z = −500 (loss 500).
      expectClose([await out.loss.item()], [250], 1e-3, 1e-6, 'loss');
      out.loss.backward();
      expectClose(await pc.grad!.data(), [0, -0.5], 1e-7, 1e-6, 'gradient');
      expectClose(await logSigmoid(vec([-100, 0, 100, 30])).data(), [-100, -Math.LN2, 0, -Math.exp(-30)], 1e-6, 1e-6, 'logSigmoid');
    });

    test('sequenceLogps: shifted, masked sums of label log-probabilities (hand-built logits)', async () => {
      // B = 2, T = 3, V = 3. Row 0: labels [-100, 2, 0] -> log p(2 | pos 0) + log p(0 | pos 1). Row 1: [-100, -100, 1].
      const logits = tensor([[[1, 2, 3], [0, 0, 0], [9, 9, 9]], [[5, 1, 0], [2, -1, 0.5], [4, 4, 4]]], { device, requiresGrad: true });
      const labels = tensor([[-100, 2, 0], [-100, -100, 1]], { device, dtype: 'int32' });
      const lse = (r: number[]): number => Math.log(r.reduce((s, x) => s + Math.exp(x), 0));
      const expected = [3 - lse([1, 2, 3]) + (0 - lse([0, 0, 0])), -1 - lse([2, -1, 0.5])];
      const out = sequenceLogps(logits, labels);
      expect(out.shape).toEqual([2]);
      expectClose(await out.data(), expected, 1e-6, 1e-6, 'logps');
      out.sum().backward();
      // d/d logits = onehot(label) − softmax at the predicting positions; zero at the last position and masked ones.
      const sm = (r: number[]): number[] => r.map((x) => Math.exp(x - lse(r)));
      const g0 = sm([1, 2, 3]).map((p, v) => (v === 2 ? 1 : 0) - p), g1 = sm([0, 0, 0]).map((p, v) => (v === 0 ? 1 : 0) - p);
      const g2 = sm([2, -1, 0.5]).map((p, v) => (v === 1 ? 1 : 0) - p);
      expectClose(await logits.grad!.data(), [...g0, ...g1, 0, 0, 0, 0, 0, 0, ...g2, 0, 0, 0], 1e-6, 1e-5, 'gradient');
    });

    test('a tiny bigram model: loss and gradient against a plain-JS computation', async () => {
      // logits[t] = W[token t]: the policy is W, the reference the frozen W0. Pairs share the prompt [0, 1].
      const V = 4, beta = 0.3;
      const W0 = Array.from({ length: V * V }, (_, i) => Math.sin(i * 1.7) * 1.5);
      const W = W0.map((w, i) => w + 0.4 * Math.cos(i * 2.3));
      const chosen = [[0, 1, 2, 3], [0, 1, 3, 3]], rejected = [[0, 1, 1, 2], [0, 1, 2, 0]];
      const promptLen = 2;
      const toLabels = (seqs: number[][]): number[][] => seqs.map((s) => s.map((t, i) => (i < promptLen ? -100 : t)));
      const w = tensor(W, { device, shape: [V, V], requiresGrad: true });
      const w0 = tensor(W0, { device, shape: [V, V] });
      const logps = (weight: Tensor, seqs: number[][]): Tensor =>
        sequenceLogps(embedding(tensor(seqs, { device, dtype: 'int32' }), weight), tensor(toLabels(seqs), { device, dtype: 'int32' }));
      const out = dpoLoss({ policyChosenLogps: logps(w, chosen), policyRejectedLogps: logps(w, rejected), referenceChosenLogps: logps(w0, chosen), referenceRejectedLogps: logps(w0, rejected) }, { beta });
      out.loss.backward();

      // The same in plain arithmetic.
      const row = (M: number[], a: number): number[] => M.slice(a * V, a * V + V);
      const logSoftmax = (r: number[]): number[] => {
        const m = Math.max(...r), l = m + Math.log(r.reduce((s, x) => s + Math.exp(x - m), 0));
        return r.map((x) => x - l);
      };
      const seqLogp = (M: number[], s: number[]): number => s.slice(promptLen).reduce((acc, tok, k) => acc + logSoftmax(row(M, s[promptLen + k - 1]!))[tok]!, 0);
      const B = chosen.length;
      const grad = new Array<number>(V * V).fill(0);
      let loss = 0;
      for (let i = 0; i < B; i++) {
        const z = beta * (seqLogp(W, chosen[i]!) - seqLogp(W0, chosen[i]!) - (seqLogp(W, rejected[i]!) - seqLogp(W0, rejected[i]!)));
        loss += softplus(-z) / B;
        const dz = (-beta * sigmoid(-z)) / B; // d loss / d (policy chosen logp); the rejected one gets −dz
        for (const [s, sign] of [[chosen[i]!, 1], [rejected[i]!, -1]] as const) {
          for (let t = promptLen; t < s.length; t++) {
            const a = s[t - 1]!, p = logSoftmax(row(W, a)).map(Math.exp);
            for (let v = 0; v < V; v++) grad[a * V + v]! += sign * dz * ((v === s[t] ? 1 : 0) - p[v]!);
          }
        }
      }
      expectClose([await out.loss.item()], [loss], 1e-6, 1e-5, 'loss');
      expectClose(await w.grad!.data(), grad, 1e-7, 1e-4, 'd loss / d W');
    });

    test('against torch on a random batch (TRL\'s concatenated chosen/rejected layout)', async () => {
      const [N, T, V] = torchRef.shape;
      const B = N / 2;
      const labels = tensor(torchRef.labels, { device, dtype: 'int32', shape: [N, T] });
      for (const c of torchRef.cases) {
        const policy = tensor(torchRef.policyLogits, { device, shape: [N, T, V], requiresGrad: true });
        const reference = tensor(torchRef.referenceLogits, { device, shape: [N, T, V] });
        const pol = sequenceLogps(policy, labels), ref = sequenceLogps(reference, labels);
        expectClose(await pol.data(), c.policyLogps, 1e-4, 1e-5, 'policy logps');
        expectClose(await ref.data(), c.referenceLogps, 1e-4, 1e-5, 'reference logps');
        const out = dpoLoss(
          { policyChosenLogps: pol.narrow(0, 0, B), policyRejectedLogps: pol.narrow(0, B, B), referenceChosenLogps: ref.narrow(0, 0, B), referenceRejectedLogps: ref.narrow(0, B, B) },
          { beta: c.beta, labelSmoothing: c.labelSmoothing },
        );
        expectClose([await out.loss.item()], [c.loss], 1e-5, 1e-5, `loss (beta ${c.beta})`);
        expectClose(await out.chosenRewards.data(), c.chosenRewards, 1e-5, 1e-4, 'chosen rewards');
        expectClose(await out.rejectedRewards.data(), c.rejectedRewards, 1e-5, 1e-4, 'rejected rewards');
        expect(await out.accuracy.item()).toBeCloseTo(c.accuracy, 6);
        out.loss.backward();
        expectClose(await policy.grad!.data(), c.gradPolicyLogits, 1e-6, 1e-4, `d loss / d policy logits (beta ${c.beta})`);
      }
    });
  });
}

describe('bad input', () => {
  const v = (x: number[]): Tensor => tensor(x, { dtype: 'float32' });
  const ok = { policyChosenLogps: v([-1, -2]), policyRejectedLogps: v([-1, -2]), referenceChosenLogps: v([-1, -2]), referenceRejectedLogps: v([-1, -2]) };
  test('dpoLoss names the input and the problem', () => {
    expect(() => dpoLoss({ ...ok, policyRejectedLogps: v([-1]) })).toThrow('dpoLoss: policyRejectedLogps has shape [1] but policyChosenLogps has [2]');
    expect(() => dpoLoss({ ...ok, referenceChosenLogps: tensor([[-1, -2]], { dtype: 'float32' }) })).toThrow('dpoLoss: referenceChosenLogps must be a non-empty 1-D tensor [batch], got shape [1, 2]');
    expect(() => dpoLoss({ ...ok, policyChosenLogps: tensor([1, 2], { dtype: 'int32' }) })).toThrow('must hold floating-point log-probabilities, got int32');
    expect(() => dpoLoss({ ...ok, referenceRejectedLogps: undefined as unknown as Tensor })).toThrow('dpoLoss: referenceRejectedLogps is missing');
    expect(() => dpoLoss(ok, { beta: 0 })).toThrow('dpoLoss: beta must be a positive number, got 0');
    expect(() => dpoLoss(ok, { labelSmoothing: 0.7 })).toThrow('dpoLoss: labelSmoothing must be in [0, 0.5], got 0.7');
  });
  test('sequenceLogps checks shapes and dtypes', () => {
    const logits = tensor([[[0, 0], [0, 0]]], { dtype: 'float32' });
    expect(() => sequenceLogps(tensor([[0, 0]], { dtype: 'float32' }), tensor([[0]], { dtype: 'int32' }))).toThrow('sequenceLogps: logits must be [batch, length, vocab], got shape [1, 2]');
    expect(() => sequenceLogps(logits, tensor([[0, 0, 0]], { dtype: 'int32' }))).toThrow('sequenceLogps: labels [1, 3] must be [batch, length] matching logits [1, 2, 2]');
    expect(() => sequenceLogps(logits, tensor([[0, 1]], { dtype: 'float32' }))).toThrow('labels must hold token ids');
    expect(() => sequenceLogps(tensor([[[0, 0], [0, 0]]]), tensor([[0, 1]], { dtype: 'int32' }))).toThrow('sequenceLogps: logits must be floating point, got int32');
    expect(() => sequenceLogps(tensor([[[0, 0]]], { dtype: 'float32' }), tensor([[0]], { dtype: 'int32' }))).toThrow('at least 2 positions');
  });
});

describe('dpoTrain on a tiny LLaMA', () => {
  const tok = chatTokenizer();
  // Chosen: the right colour; rejected: the colour of the next thing.
  const records = COLORS.map(([thing, color], i) => ({ kind: 'preference' as const, prompt: `color of ${thing} ?`, chosen: color, rejected: COLORS[(i + 1) % COLORS.length]![1] }));
  const margins = (pol: { chosen: number[]; rejected: number[] }, ref: { chosen: number[]; rejected: number[] }, beta: number): number[] =>
    pol.chosen.map((c, i) => beta * (c - ref.chosen[i]! - (pol.rejected[i]! - ref.rejected[i]!)));

  test('full fine-tuning: the chosen-vs-rejected margin and accuracy on the training pairs rise; stats are logged', async () => {
    const model = tinyLlama(1);
    const dir = await mkdtemp(join(tmpdir(), 'attend-dpo-'));
    const out = await dpoTrain(model, tok, records, { beta: 0.1, lr: 3e-3, batchSize: 6, maxSteps: 12, schedule: 'constant', progress: false, log: () => {}, outDir: dir });
    expect(out.pairs).toBe(6);
    // The reference is the model before training: at step 1 the implicit rewards are 0 and the loss is log 2.
    expect(out.stats[0]!['rewards/margins']).toBeCloseTo(0, 5);
    expect(out.train.losses[0]!.loss).toBeCloseTo(Math.LN2, 5);
    const after = await preferenceLogps(model, tokenizePreference(tok, records).pairs, { padId: tok.padTokenId! });
    const m = margins(after, out.reference, 0.1);
    expect(m.every((x) => x > 0)).toBe(true); // accuracy 1 on the training pairs (0 before: all margins were 0)
    expect(m.reduce((a, b) => a + b) / m.length).toBeGreaterThan(0.5);
    expect(out.stats.at(-1)!['rewards/accuracies']).toBe(1);
    expect(out.stats.at(-1)!['rewards/margins']).toBeGreaterThan(out.stats[0]!['rewards/margins']! + 0.5);
    expect(out.train.losses.at(-1)!.loss).toBeLessThan(0.4);
    // metrics.jsonl's train records (every 10 steps and the last) hold the statistics averaged over their interval.
    const lines = (await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((r) => r['kind'] === ('train' as unknown));
    expect(lines.map((r) => r['step'])).toEqual([10, 12]);
    expect(Object.keys(out.stats[0]!).sort()).toEqual(['logps/chosen', 'logps/rejected', 'rewards/accuracies', 'rewards/chosen', 'rewards/margins', 'rewards/rejected', 'step']);
    const mean = (k: string, from: number, to: number): number => out.stats.slice(from, to).reduce((a, r) => a + r[k]!, 0) / (to - from);
    for (const k of ['rewards/chosen', 'rewards/margins', 'rewards/accuracies']) {
      expect(lines[0]![k], k).toBeCloseTo(mean(k, 0, 10), 6);
      expect(lines[1]![k], k).toBeCloseTo(mean(k, 10, 12), 6);
    }
    expect(await readFile(join(dir, 'rewards.svg'), 'utf8')).toContain('<svg');
    expect(out.saved).toContain('model.safetensors');
  }, 30_000);

  test('LoRA: the reference is the model with adapters disabled; base weights stay bit-identical', async () => {
    const model = tinyLlama(2);
    const base = await model.model.layers[0]!.self_attn.q_proj.weight.data();
    const before = await preferenceLogps(model, tokenizePreference(tok, records).pairs, { padId: tok.padTokenId! });
    const out = await dpoTrain(model, tok, records, { beta: 0.1, lr: 1e-2, batchSize: 6, maxSteps: 10, schedule: 'constant', lora: { r: 4, alpha: 8, dropout: 0 }, progress: false, log: () => {} });
    expectClose(out.reference.chosen, before.chosen, 1e-5, 1e-5, 'reference = base model');
    expect(Array.from(await model.model.layers[0]!.self_attn.q_proj.weight.data())).toEqual(Array.from(base));
    expect(out.stats.at(-1)!['rewards/margins']).toBeGreaterThan(0.3);
    expect(out.stats.at(-1)!['rewards/accuracies']).toBe(1);
  }, 30_000);

  test('bad input', async () => {
    await expect(dpoTrain(tinyLlama(0), tok, records, { beta: -1, progress: false })).rejects.toThrow('dpo: beta must be a positive number, got -1');
    await expect(dpoTrain(tinyLlama(0), tok, [], { progress: false })).rejects.toThrow('dpo: data must be a non-empty array');
  });
});

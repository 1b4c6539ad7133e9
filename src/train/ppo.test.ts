// PPO: GAE on a 4-step case, the clipped policy and value losses (inside and outside the clip range), per-token rewards
// and whitening, all worked out by hand; a tiny LLaMA policy raising a learned reward model's score.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { expectClose } from '../test-util/fixtures.js';
import { chatTokenizer, nextTokenEntropy, tinyLlama } from '../test-util/tiny-chat.js';
import { promptIds } from './grpo.js';
import { gae, PolicyWithValueHead, ppoPolicyLoss, ppoTrain, ppoValueLoss, tokenRewards, whiten } from './ppo.js';
import { RewardModel, trainRewardModel } from './reward.js';

describe('GAE (by hand)', () => {
  test('4 steps, gamma 0.9, lambda 0.8', () => {
    // rewards [0, 0, 0, 1], values [0.5, 0.4, 0.3, 0.2], V after the last token 0; γλ = 0.72.
    // t=3: δ = 1 − 0.2 = 0.8                      A = 0.8
    // t=2: δ = 0.9·0.2 − 0.3 = −0.12              A = −0.12 + 0.72·0.8     = 0.456
    // t=1: δ = 0.9·0.3 − 0.4 = −0.13              A = −0.13 + 0.72·0.456   = 0.19832
    // t=0: δ = 0.9·0.4 − 0.5 = −0.14              A = −0.14 + 0.72·0.19832 = 0.0027904
    const { advantages, returns } = gae([0, 0, 0, 1], [0.5, 0.4, 0.3, 0.2], 0.9, 0.8);
    expectClose(advantages, [0.0027904, 0.19832, 0.456, 0.8], 1e-12, 1e-12, 'advantages');
    expectClose(returns, [0.5027904, 0.59832, 0.756, 1.0], 1e-12, 1e-12, 'returns = A + V');
    // γ = λ = 1: A_t = (sum of rewards from t) − V_t (Monte Carlo).
    expectClose(gae([1, 2, 3], [0.5, 0.5, 0.5], 1, 1).advantages, [5.5, 4.5, 2.5], 1e-12, 1e-12, 'Monte Carlo');
    expect(() => gae([1], [1, 2], 1, 1)).toThrow('gae: 1 rewards but 2 values');
    expect(() => gae([1], [1], 1.5, 1)).toThrow('gae: gamma and lambda must be in [0, 1], got 1.5 and 1');
  });

  test('per-token rewards: −kl_coef (logp − ref) with the score on the last token; whitening', () => {
    expectClose(tokenRewards(2, [-1, -2], [-1.5, -1], 0.1), [-0.05, 2.1], 1e-12, 1e-12, 'rewards');
    // [1, 2, 3]: mean 2, unbiased variance 1.
    expectClose(whiten([1, 2, 3]), [-1 / Math.sqrt(1 + 1e-8), 0, 1 / Math.sqrt(1 + 1e-8)], 1e-12, 1e-12, 'whiten');
    expect(whiten([4, 4])).toEqual([0, 0]);
  });
});

for (const device of listDevices()) {
  describe(`PPO losses on ${device}`, () => {
    const t = (v: number[][], requiresGrad = false) => tensor(v, { device, dtype: 'float32', requiresGrad });
    test('clipped policy loss: ratios inside and outside [0.8, 1.2]', async () => {
      // tok0 A = 1, r = 1.5: max(−1.5, −1.2) = −1.2 (clipped, no gradient)
      // tok1 A = −1, r = 0.5: max(0.5, 0.8) = 0.8 (clipped, no gradient)
      // tok2 A = 2, r = 1.1: inside the range, −2.2; gradient −A r = −2.2
      // tok3 A = −1, r = 1.5: max(1.5, 1.2) = 1.5 (the unclipped term is the pessimistic one: gradient −A r = 1.5)
      const old = [[-1, -2, -0.5, -3]];
      const r = [1.5, 0.5, 1.1, 1.5];
      const logps = t([old[0]!.map((o, i) => o + Math.log(r[i]!))], true);
      const out = ppoPolicyLoss({ logps, oldLogps: t(old), advantages: t([[1, -1, 2, -1]]), mask: t([[1, 1, 1, 1]]) }, 0.2);
      expectClose([await out.loss.item()], [(-1.2 + 0.8 - 2.2 + 1.5) / 4], 1e-6, 1e-6, 'loss');
      expectClose([await out.clipFraction.item()], [0.5], 1e-7, 1e-7, 'clip fraction');
      out.loss.backward();
      expectClose(await logps.grad!.data(), [0, 0, -2.2 / 4, 1.5 / 4], 1e-6, 1e-5, 'gradient');
      // A masked token counts for nothing.
      const masked = ppoPolicyLoss({ logps: t([old[0]!.map((o, i) => o + Math.log(r[i]!))]), oldLogps: t(old), advantages: t([[1, -1, 2, -1]]), mask: t([[1, 1, 1, 0]]) }, 0.2);
      expectClose([await masked.loss.item()], [(-1.2 + 0.8 - 2.2) / 3], 1e-6, 1e-6, 'masked loss');
    });

    test('clipped value loss', async () => {
      // tok0 V = 1, V_old = 0.5, R = 2: clipped V 0.7; max((1−2)², (0.7−2)²) = 1.69 (clipped: no gradient)
      // tok1 V = 0, V_old = 0.5, R = 0.45: clipped V 0.3; max(0.2025, 0.0225) = 0.2025; gradient 0.5 · 2 (V − R) / 2
      const values = t([[1, 0]], true);
      const out = ppoValueLoss({ values, oldValues: t([[0.5, 0.5]]), returns: t([[2, 0.45]]), mask: t([[1, 1]]) }, 0.2);
      expectClose([await out.loss.item()], [0.5 * (1.69 + 0.2025) / 2], 1e-6, 1e-6, 'loss');
      expectClose([await out.clipFraction.item()], [0.5], 1e-7, 1e-7, 'clip fraction');
      out.loss.backward();
      expectClose(await values.grad!.data(), [0, -0.225], 1e-6, 1e-6, 'gradient');
      expect(() => ppoValueLoss({ values, oldValues: t([[0.5]]), returns: t([[2, 0.45]]), mask: t([[1, 1]]) })).toThrow('ppoValueLoss: oldValues has shape [1, 1], values [1, 2]');
    });
  });
}

describe('ppoTrain on a tiny LLaMA', () => {
  test('the policy raises a learned reward model\'s score; statistics are logged', async () => {
    const tok = chatTokenizer();
    // The reward model prefers completions saying "blue" (trained as in reward.test.ts, fewer pairs).
    const words = ['sky', 'grass', 'snow', 'red', 'green', 'white', 'hello', 'a'];
    let s = 7;
    const rand = (n: number): number => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return Math.floor((s / 2147483648) * n);
    };
    const phrase = (n: number): string[] => Array.from({ length: n }, () => words[rand(words.length)]!);
    const pairs = Array.from({ length: 32 }, () => {
      const chosen = phrase(1 + rand(2));
      chosen.splice(rand(chosen.length + 1), 0, 'blue');
      return { kind: 'preference' as const, prompt: 'color of sky ?', chosen: chosen.join(' '), rejected: phrase(1 + rand(3)).join(' ') };
    });
    const rm = new RewardModel(tinyLlama(4));
    await trainRewardModel(rm, tok, pairs, { batchSize: 8, epochs: 3, lr: 3e-3, schedule: 'constant', progress: false, log: () => {} });

    const policy = tinyLlama(6);
    const prompts = ['color of sky ?', 'color of snow ?', 'color of grass ?', 'color of coal ?'].map((prompt) => ({ prompt }));
    const out = await ppoTrain(policy, rm, tok, prompts, {
      promptsPerStep: 4, maxNewTokens: 3, ppoEpochs: 2, maxSteps: 40, lr: 1e-2, klCoef: 0.02, schedule: 'constant', seed: 0, progress: false, log: () => {},
    });
    expect(out.model).toBeInstanceOf(PolicyWithValueHead);
    expect(out.stats).toHaveLength(40);
    for (const key of ['score', 'score_std', 'kl', 'non_score_reward', 'pg_clipfrac', 'vf_clipfrac', 'entropy', 'response_length', 'value_loss']) {
      expect(Number.isFinite(out.stats[0]![key]), key).toBe(true);
    }
    // Steps 1 and 2 train on the same rollout (ppoEpochs 2): same score; the first update starts at ratio 1 (no clipping).
    expect(out.stats[1]!.score).toBe(out.stats[0]!.score);
    expect(out.stats[0]!.pg_clipfrac).toBe(0);
    const score = out.stats.map((r) => r.score!);
    const first = score.slice(0, 6).reduce((a, b) => a + b) / 6, last = score.slice(-6).reduce((a, b) => a + b) / 6;
    expect(last).toBeGreaterThan(first + 0.5);
  }, 60_000);

  test('completions are scored at the sampling temperature (TRL): the entropy is that of softmax(logits / T)', async () => {
    const tok = chatTokenizer(), policy = tinyLlama(9), T = 0.5, prompt = 'color of sky ?';
    const entropy = await nextTokenEntropy(policy, promptIds(tok, prompt), T);
    // One new token: the completion's only scored position is the prompt's last.
    const out = await ppoTrain(policy, new RewardModel(tinyLlama(4)), tok, [{ prompt }], { promptsPerStep: 1, maxNewTokens: 1, ppoEpochs: 1, maxSteps: 1, temperature: T, lr: 1e-3, progress: false, log: () => {} });
    expect(out.stats[0]!['entropy']).toBeCloseTo(entropy, 5);
    expect(out.stats[0]!['kl']).toBeCloseTo(0, 6); // the policy and the reference, both at T
    await expect(ppoTrain(policy, new RewardModel(tinyLlama(4)), tok, [{ prompt }], { temperature: -1, progress: false })).rejects.toThrow('ppo: temperature must be a positive number, got -1');
  }, 20_000);
});

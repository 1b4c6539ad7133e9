// GRPO: group advantages, the clipped surrogate with the k3 KL, and its gradient worked out by hand; a tiny LLaMA whose
// mean reward rises under a programmatic reward; bad input.

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { expectClose } from '../test-util/fixtures.js';
import { chatTokenizer, COLORS, nextTokenEntropy, tinyLlama, VOCAB } from '../test-util/tiny-chat.js';
import { BUILTIN_REWARDS, groupAdvantages, grpoLoss, grpoTrain, loadPromptJsonl, promptIds, rewardFunction, type PromptRecord } from './grpo.js';
import { klK3, rolloutTokens } from './policy.js';

describe('group advantages (by hand)', () => {
  test('(r - mean) / (unbiased std + 1e-4) per group of k', () => {
    // Group [1, 0, 0, 1]: mean 0.5, unbiased std sqrt((4 x 0.25) / 3) = sqrt(1/3).
    const s = Math.sqrt(1 / 3) + 1e-4;
    // Group [3, 1, 2, 6]: mean 3, deviations 0, -2, -1, 3, unbiased std sqrt(14 / 3).
    const s2 = Math.sqrt(14 / 3) + 1e-4;
    expectClose(groupAdvantages([1, 0, 0, 1, 3, 1, 2, 6], 4), [0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0, -2 / s2, -1 / s2, 3 / s2], 1e-12, 1e-12, 'advantages');
    expect(groupAdvantages([1, 0, 0, 1], 4, { scaleRewards: false })).toEqual([0.5, -0.5, -0.5, 0.5]);
    // Two samples: std = |a - b| / sqrt(2).
    expectClose(groupAdvantages([0, 2], 2), [-1 / (Math.SQRT2 + 1e-4), 1 / (Math.SQRT2 + 1e-4)], 1e-12, 1e-12, 'k = 2');
  });
  test('equal rewards give zero advantages, not NaN', () => {
    expect(groupAdvantages([2, 2, 2, 0.5, 0.5, 0.5], 3)).toEqual([0, 0, 0, 0, 0, 0]);
    expect(groupAdvantages([0, 0], 2, { scaleRewards: false })).toEqual([0, 0]);
  });
  test('bad input', () => {
    expect(() => groupAdvantages([1], 1)).toThrow('group size (numGenerations) must be an integer >= 2');
    expect(() => groupAdvantages([1, 2, 3], 2)).toThrow('3 rewards do not make whole groups of 2');
    expect(() => groupAdvantages([1, NaN], 2)).toThrow('reward 1 is NaN');
  });
});

for (const device of listDevices()) {
  describe(`grpoLoss on ${device}`, () => {
    const t = (v: number[][] | number[], requiresGrad = false) => tensor(v, { device, dtype: 'float32', requiresGrad });
    test('k3 KL estimator', async () => {
      // d = ref - logp: 0 -> 0; 0.5 -> e^0.5 - 1.5; -0.5 -> e^-0.5 - 0.5; 2 -> e^2 - 3.
      const kl = klK3(t([0, -1, -1, -3]), t([0, -0.5, -1.5, -1]));
      expectClose(await kl.data(), [0, Math.exp(0.5) - 1.5, Math.exp(-0.5) - 0.5, Math.exp(2) - 3], 1e-6, 1e-6, 'k3');
    });

    test('clipped surrogate, clip fraction and gradient (ratios inside and outside the clip range)', async () => {
      // Row 0 (A = +1): ratios 1.5 (clipped to 1.2) and 0.9. Row 1 (A = -1): ratios 0.5 (clipped to 0.8) and 1.1, the
      // second masked out. Per token -min(rA, clip(r)A): -1.2, -0.9 | 0.8, (1.1 masked).
      const old = [[-1, -2], [-0.5, -3]];
      const ratios = [[1.5, 0.9], [0.5, 1.1]];
      const lp = old.map((r, i) => r.map((o, j) => o + Math.log(ratios[i]![j]!)));
      const logps = t(lp, true);
      const mask = t([[1, 1], [1, 0]]);
      const out = grpoLoss({ logps, oldLogps: t(old), refLogps: null, advantages: t([1, -1]), mask }, { beta: 0 });
      // 'grpo': mean over rows of each row's token mean: ((-1.2 - 0.9) / 2 + 0.8 / 1) / 2 = -0.125.
      expectClose([await out.loss.item()], [-0.125], 1e-6, 1e-6, 'loss');
      expectClose([await out.clipFraction.item()], [2 / 3], 1e-6, 1e-6, 'clip fraction');
      out.loss.backward();
      // Clipped tokens carry no gradient; row 0 token 1: d(-r A)/d logp = -r A = -0.9, x 1/2 (row mean) x 1/2 (rows).
      expectClose(await logps.grad!.data(), [0, -0.225, 0, 0], 1e-6, 1e-6, 'gradient');

      const dapo = grpoLoss({ logps: t(lp), oldLogps: t(old), refLogps: null, advantages: t([1, -1]), mask }, { beta: 0, lossType: 'dapo' });
      expectClose([await dapo.loss.item()], [(-1.2 - 0.9 + 0.8) / 3], 1e-6, 1e-6, 'dapo loss');
    });

    test('the KL penalty: beta x k3 per token, its gradient 1 - e^(ref - logp)', async () => {
      // ratio 1 (old = logp), advantages 0: only the KL term is left. d = ref - logp = [0.5, -0.5] and [2, (masked)].
      const lp = [[-1, -2], [-3, -1]];
      const logps = t(lp, true);
      const ref = [[-0.5, -2.5], [-1, -4]];
      const beta = 0.1;
      const out = grpoLoss({ logps, oldLogps: t(lp), refLogps: t(ref), advantages: t([0, 0]), mask: t([[1, 1], [1, 0]]) }, { beta });
      const k = (d: number) => Math.exp(d) - d - 1;
      expectClose([await out.loss.item()], [(beta * ((k(0.5) + k(-0.5)) / 2 + k(2))) / 2], 1e-6, 1e-6, 'loss');
      expectClose([await out.kl.item()], [(k(0.5) + k(-0.5) + k(2)) / 3], 1e-6, 1e-6, 'mean KL');
      out.loss.backward();
      const g = (d: number, w: number) => beta * (1 - Math.exp(d)) * w;
      expectClose(await logps.grad!.data(), [g(0.5, 0.25), g(-0.5, 0.25), g(2, 0.5), 0], 1e-6, 1e-6, 'gradient');
    });
  });
}

describe('rollout tokens', () => {
  test('prompt + completion rows, padded, with the completion mask on the predicting positions', () => {
    const r = rolloutTokens([[5, 6], [7]], [[1, 2], [3]], 0);
    expect(r.ids).toEqual([[5, 6, 1, 2], [7, 3, 0, 0]]);
    expect(r.attention).toEqual([[1, 1, 1, 1], [1, 1, 0, 0]]);
    // Position t predicts token t + 1: row 0's completion is tokens 2..3 (positions 1, 2); row 1's is token 1 (position 0).
    expect(r.completionMask).toEqual([[0, 1, 1], [1, 0, 0]]);
  });
});

describe('rewards', () => {
  test('built-in rewards compare with "answer"', () => {
    const exact = rewardFunction('exact-answer');
    expect(exact('  Blue ', { prompt: 'p', answer: 'blue' })).toBe(1);
    expect(exact('blue sky', { prompt: 'p', answer: 'blue' })).toBe(0);
    expect(rewardFunction('contains-answer')('the sky is blue .', { prompt: 'p', answer: 'blue' })).toBe(1);
    expect(rewardFunction('contains-answer')('blueish', { prompt: 'p', answer: 'blue' })).toBe(0);
    expect(rewardFunction('numeric-answer')('it is 12.0 apples', { prompt: 'p', answer: 12 })).toBe(1);
    expect(rewardFunction('numeric-answer')('it is 13', { prompt: 'p', answer: '12' })).toBe(0);
  });
  test('bad input: an unknown name lists the names; a record without "answer" is named', () => {
    expect(() => rewardFunction('accuracy')).toThrow(`unknown reward 'accuracy' (built-in rewards: ${Object.keys(BUILTIN_REWARDS).join(', ')})`);
    expect(() => rewardFunction('exact-answer')('x', { prompt: 'p' })).toThrow(`reward 'exact-answer' needs an "answer" field`);
  });
  test('bad input: prompt files name the file and line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-grpo-'));
    const file = join(dir, 'prompts.jsonl');
    await writeFile(file, '{"prompt": "a", "answer": "b"}\n\n{"question": "a"}\n');
    await expect(loadPromptJsonl(file)).rejects.toThrow(`${file}:3: missing "prompt" (the line has keys "question")`);
    await writeFile(file, '{"prompt": "a"}\n{"prompt": "b", "answer": 1}\nnot json\n');
    await expect(loadPromptJsonl(file, { required: ['answer'] })).rejects.toThrow(`${file}:1: missing "answer" (the reward needs it)`);
    const { records, skipped } = await loadPromptJsonl(file, { skipBadLines: true, required: ['answer'] });
    expect(records).toEqual([{ prompt: 'b', answer: 1 }]);
    expect(skipped.map((s) => s.line)).toEqual([1, 3]);
  });
});

describe('grpoTrain', () => {
  const tok = chatTokenizer();
  const records = COLORS.map(([thing, color]) => ({ prompt: `color of ${thing} ?`, answer: color }));

  test('k < 2 is refused before any work', async () => {
    await expect(grpoTrain(tinyLlama(0), tok, records, rewardFunction('exact-answer'), { numGenerations: 1, progress: false })).rejects.toThrow('grpo: numGenerations must be an integer >= 2');
  });

  test('numIterations 2: each batch of completions trains two steps, the second against the sampling policy\'s log-probabilities', async () => {
    const out = await grpoTrain(tinyLlama(5), tok, records, rewardFunction('contains-answer'), {
      numGenerations: 4, promptsPerStep: 6, maxNewTokens: 3, maxSteps: 4, numIterations: 2, lr: 5e-2, epsilon: 0.1, lossType: 'dapo', schedule: 'constant', progress: false, log: () => {},
    });
    const s = out.stats;
    expect(s[1]!.reward).toBe(s[0]!.reward);
    expect(s[1]!.completion_length).toBe(s[0]!.completion_length);
    expect(s[0]!.clip_ratio).toBe(0); // the first update on a batch starts at ratio 1
    expect(s[0]!.kl).toBe(0); // and at the reference
    expect(s[2]!.kl).toBeGreaterThan(0);
  }, 20_000);

  test('a tiny LLaMA learns to say the colour: mean reward rises (seeded)', async () => {
    const model = tinyLlama(3);
    const dir = await mkdtemp(join(tmpdir(), 'attend-grpo-'));
    const out = await grpoTrain(model, tok, records, rewardFunction('contains-answer'), {
      numGenerations: 8, promptsPerStep: 6, maxNewTokens: 2, maxSteps: 30, lr: 2e-2, beta: 0.02, seed: 0,
      schedule: 'constant', progress: false, log: () => {}, outDir: dir,
    });
    const reward = out.stats.map((s) => s.reward!);
    const first = reward.slice(0, 5).reduce((a, b) => a + b) / 5, last = reward.slice(-5).reduce((a, b) => a + b) / 5;
    expect(out.stats).toHaveLength(30);
    for (const key of ['reward', 'reward_std', 'kl', 'clip_ratio', 'entropy', 'completion_length']) expect(Number.isFinite(out.stats[0]![key])).toBe(true);
    expect(last).toBeGreaterThan(first + 0.3);
    expect(last).toBeGreaterThan(0.5);
    expect(out.stats.at(-1)!.kl).toBeGreaterThan(0); // the policy left the reference
    // metrics.jsonl: the statistics averaged over each 10-step logging interval.
    const lines = (await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((r) => r['step'])).toEqual([10, 20, 30]);
    expect(lines[2]!['reward']).toBeCloseTo(reward.slice(20).reduce((a, b) => a + b) / 10, 6);
    expect(await readFile(join(dir, 'reward.svg'), 'utf8')).toContain('<svg');
    expect(await readFile(join(dir, 'kl.svg'), 'utf8')).toContain('<svg');
    expect(VOCAB['blue']).toBeDefined();
  }, 60_000);

  test('dynamic sampling: groups whose rewards are all equal are replaced by other prompts\' groups, up to 4 x promptsPerStep prompts', async () => {
    // Prompts marked flat always score 0.5 (no spread); the others score by the completion's length, which varies.
    const mixed: PromptRecord[] = records.map((r, i) => ({ ...r, flat: i % 2 === 0 }));
    const run = async (dynamicSampling: boolean) => {
      const calls: boolean[] = [], groups: boolean[][] = [];
      const reward = (c: string, r: PromptRecord): number => {
        calls.push(r['flat'] === true);
        return r['flat'] === true ? 0.5 : c.length % 3;
      };
      const out = await grpoTrain(tinyLlama(7), tok, mixed, reward, {
        numGenerations: 4, promptsPerStep: 3, maxNewTokens: 3, maxSteps: 4, lr: 1e-2, schedule: 'constant', seed: 1, dynamicSampling, progress: false, log: () => {},
      });
      // The reward is called k times per sampled prompt: one group per k consecutive calls.
      for (let i = 0; i < calls.length; i += 4) groups.push(calls.slice(i, i + 4));
      return { stats: out.stats, groups };
    };
    const plain = await run(false);
    expect(plain.stats.map((s) => s['prompts_sampled'])).toEqual([3, 3, 3, 3]);
    expect(plain.stats.some((s) => s['frac_reward_zero_std']! > 0)).toBe(true);
    const dyn = await run(true);
    let at = 0;
    for (const s of dyn.stats) {
      const n = s['prompts_sampled']!, flat = dyn.groups.slice(at, at + n).filter((g) => g[0]).length;
      at += n;
      // Enough groups with a spread (the flat ones were replaced), or the cap of 4 x 3 prompts reached.
      expect(n - flat === 3 || n === 12).toBe(true);
      expect(s['frac_reward_zero_std']).toBeCloseTo(flat / n, 6);
      expect(s['reward_group_std']).toBeGreaterThan(0);
    }
    expect(at).toBe(dyn.groups.length);
    expect(dyn.stats.some((s) => s['prompts_sampled']! > 3)).toBe(true);
  }, 30_000);

  test('completions are scored at the sampling temperature (TRL): the entropy is that of softmax(logits / T)', async () => {
    const model = tinyLlama(9), T = 0.5;
    const prompt = 'color of sky ?';
    const entropy = await nextTokenEntropy(model, promptIds(tok, prompt), T);
    // One new token per completion: every completion's only scored position is the prompt's last.
    const out = await grpoTrain(model, tok, [{ prompt, answer: 'blue' }], rewardFunction('exact-answer'), {
      numGenerations: 4, promptsPerStep: 1, maxNewTokens: 1, maxSteps: 1, temperature: T, lr: 1e-3, progress: false, log: () => {},
    });
    expect(out.stats[0]!['entropy']).toBeCloseTo(entropy, 5);
    await expect(grpoTrain(model, tok, [{ prompt, answer: 'blue' }], rewardFunction('exact-answer'), { temperature: 0, progress: false })).rejects.toThrow('grpo: temperature must be a positive number, got 0');
  }, 20_000);
});

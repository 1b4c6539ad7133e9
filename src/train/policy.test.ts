// The RL helpers: per-token log-probabilities and entropy by hand, the reference model (adapters disabled, or a frozen
// copy), sampled completions cut at eos, and the mean / std of step statistics.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { ConfigReader } from '../models/base.js';
import { GPT2LMHeadModel, gpt2Config } from '../models/gpt2.js';
import { addLora, withLoraDisabled } from '../models/lora.js';
import { normal_ } from '../nn/init.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { Generator } from '../tensor/random.js';
import { expectClose } from '../test-util/fixtures.js';
import { tinyLlama, VOCAB } from '../test-util/tiny-chat.js';
import { frozenCopy, meanStd, referenceForward, sampleCompletions, tokenEntropy, tokenLogps } from './policy.js';
import { PolicyWithValueHead } from './ppo.js';
import { RewardModel } from './reward.js';

const lse = (r: number[]): number => Math.log(r.reduce((s, x) => s + Math.exp(x), 0));

for (const device of listDevices()) {
  describe(`token log-probabilities on ${device}`, () => {
    test('tokenLogps and tokenEntropy by hand', async () => {
      // B = 1, T = 3, V = 3; ids [2, 0, 1]: position 0 scores token 0, position 1 scores token 1.
      const rows = [[1, 2, 3], [0, 0, 0], [5, 5, 5]];
      const logits = tensor([rows], { device, requiresGrad: true });
      const lp = tokenLogps(logits, tensor([[2, 0, 1]], { device, dtype: 'int32' }));
      expect(lp.shape).toEqual([1, 2]);
      expectClose(await lp.data(), [1 - lse(rows[0]!), 0 - lse(rows[1]!)], 1e-6, 1e-6, 'logps');
      lp.sum().backward();
      const p0 = rows[0]!.map((x) => Math.exp(x - lse(rows[0]!)));
      expectClose(await logits.grad!.data(), [...p0.map((p, v) => (v === 0 ? 1 : 0) - p), ...[0, 1, 2].map((v) => (v === 1 ? 1 : 0) - 1 / 3), 0, 0, 0], 1e-6, 1e-6, 'gradient');
      const h = tokenEntropy(logits);
      expectClose(await h.data(), [-p0.reduce((s, p) => s + p * Math.log(p), 0), Math.log(3)], 1e-6, 1e-6, 'entropy');
      expect(h.requiresGrad).toBe(false);
    });
  });
}

describe('the reference model', () => {
  const ids = tensor([[VOCAB['color']!, VOCAB['of']!, VOCAB['sky']!, VOCAB['?']!]], { dtype: 'int32' });
  test('withLoraDisabled computes the base model and switches the adapters back on (also after a throw)', async () => {
    const model = tinyLlama(0);
    const base = Array.from(await noGrad(() => model.forward({ inputIds: ids }).logits).data());
    addLora(model, { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'] });
    for (const [name, p] of model.namedParameters()) if (name.endsWith('lora_B.weight')) normal_(p, 0, 0.5); // a trained-looking adapter
    const adapted = Array.from(await noGrad(() => model.forward({ inputIds: ids }).logits).data());
    expect(Math.max(...Array.from(adapted, (x, i) => Math.abs(x - base[i]!)))).toBeGreaterThan(1e-3);
    const off = await noGrad(() => withLoraDisabled(model, () => model.forward({ inputIds: ids }).logits)).data();
    expectClose(off, base, 1e-6, 1e-6, 'adapters disabled = base model');
    expectClose(await noGrad(() => model.forward({ inputIds: ids }).logits).data(), adapted, 0, 0, 'adapters back on');
    expect(() => withLoraDisabled(model, () => { throw new Error('boom'); })).toThrow('boom');
    expectClose(await noGrad(() => model.forward({ inputIds: ids }).logits).data(), adapted, 0, 0, 'adapters back on after a throw');
    expectClose(await referenceForward(model)({ inputIds: ids }).data(), base, 1e-6, 1e-6, 'referenceForward under LoRA');
    expect(() => withLoraDisabled(tinyLlama(0), () => 1)).toThrow('withLoraDisabled: the model has no LoRA adapter');
  });

  test('frozenCopy: the same function, frozen, independent of later updates', async () => {
    const model = tinyLlama(1);
    const ref = referenceForward(model); // full fine-tuning: a frozen copy made now
    const before = Array.from(await noGrad(() => model.forward({ inputIds: ids }).logits).data());
    const copy = frozenCopy(model);
    expect(copy.parameters().every((p) => !p.requiresGrad)).toBe(true);
    noGrad(() => model.lm_head.weight.replaceStorage(model.lm_head.weight.mul(2)));
    expectClose(await ref({ inputIds: ids }).data(), before, 1e-6, 1e-6, 'reference unchanged by training');
    expectClose(await noGrad(() => copy.forward({ inputIds: ids }).logits).data(), before, 1e-6, 1e-6, 'copy');
  });
});

describe('GPT-2 (tied embeddings, n_embd)', () => {
  test('frozen copy, value head and reward head on a tiny GPT-2', async () => {
    const model = new GPT2LMHeadModel(gpt2Config(new ConfigReader({ model_type: 'gpt2', vocab_size: 40, n_positions: 16, n_embd: 16, n_layer: 1, n_head: 2 }, 'config.json'))).eval();
    const ids = tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'int32' });
    const logits = Array.from(await noGrad(() => model.forward({ inputIds: ids }).logits).data());
    expectClose(await referenceForward(model)({ inputIds: ids }).data(), logits, 1e-6, 1e-6, 'frozen copy');
    const pv = new PolicyWithValueHead(model);
    const out = noGrad(() => pv.forward({ inputIds: ids }));
    expect(out.values.shape).toEqual([2, 3]);
    expect(Array.from(await out.values.data())).toEqual([0, 0, 0, 0, 0, 0]); // the value head starts at zero
    const r = noGrad(() => new RewardModel(model).forward(ids, tensor([[1, 1, 0], [1, 1, 1]], { dtype: 'int32' })));
    expect(r.shape).toEqual([2]);
  });
});

describe('sampleCompletions', () => {
  test('k samples of one prompt, each cut after its first eos; seeded', async () => {
    const model = tinyLlama(2);
    const prompt = [VOCAB['color']!, VOCAB['of']!, VOCAB['sky']!, VOCAB['?']!];
    const eos = VOCAB['sky']!; // a common token as eos, so that some samples stop early
    const a = await sampleCompletions(model, prompt, 8, { maxNewTokens: 6, generator: new Generator(5), eosTokenId: [eos], padTokenId: 0 });
    const b = await sampleCompletions(model, prompt, 8, { maxNewTokens: 6, generator: new Generator(5), eosTokenId: [eos], padTokenId: 0 });
    expect(a).toEqual(b);
    expect(a).toHaveLength(8);
    for (const c of a) {
      const at = c.indexOf(eos);
      expect(at === -1 ? c.length === 6 : at === c.length - 1).toBe(true);
    }
    expect(model.training).toBe(false);
  });
});

describe('meanStd', () => {
  test("the mean and the unbiased standard deviation (torch.std's), as TRL's reward / reward_std", () => {
    // [1, 2, 4]: mean 7/3; squared deviations 16/9 + 1/9 + 25/9 = 42/9, over n - 1 = 2: 7/3.
    const s = meanStd('reward', [1, 2, 4]);
    expect(s['reward']).toBeCloseTo(7 / 3, 12);
    expect(s['reward_std']).toBeCloseTo(Math.sqrt(7 / 3), 12);
    expect(meanStd('x', [5])).toEqual({ x: 5, x_std: 0 });
  });
});

// Reward model: last-token pooling and the Bradley–Terry loss by hand; a tiny LLaMA reward model learns a toy preference (held-out accuracy).

import { describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { expectClose } from '../test-util/fixtures.js';
import { chatTokenizer, tinyLlama } from '../test-util/tiny-chat.js';
import { bradleyTerryLoss, lastTokenStates, RewardModel, scoreSequences, trainRewardModel } from './reward.js';
import { tokenizePreference } from '../data/sft.js';

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));
const softplus = (x: number): number => Math.log1p(Math.exp(x));

for (const device of listDevices()) {
  describe(`reward model math on ${device}`, () => {
    test('lastTokenStates picks each row\'s last real token (right or left padding)', async () => {
      // hidden[b, t, c] = 100 b + 10 t + c; B = 3, T = 4, C = 2.
      const h = Array.from({ length: 3 }, (_, b) => Array.from({ length: 4 }, (_, t) => [100 * b + 10 * t, 100 * b + 10 * t + 1]));
      const mask = tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 1, 1]], { dtype: 'int32', device });
      const out = lastTokenStates(tensor(h, { device, dtype: 'float32' }), mask);
      expect(Array.from(await out.data())).toEqual([10, 11, 130, 131, 230, 231]);
      const noMask = lastTokenStates(tensor(h, { device, dtype: 'float32' }), null);
      expect(Array.from(await noMask.data())).toEqual([30, 31, 130, 131, 230, 231]);
    });

    test('Bradley–Terry loss, accuracy and gradient by hand', async () => {
      const c = tensor([1, -0.5, 2], { device, dtype: 'float32', requiresGrad: true });
      const r = tensor([0, 0.5, 2.5], { device, dtype: 'float32', requiresGrad: true });
      const out = bradleyTerryLoss(c, r);
      const d = [1, -1, -0.5];
      expectClose([await out.loss.item()], [d.reduce((a, x) => a + softplus(-x), 0) / 3], 1e-6, 1e-6, 'loss');
      expect(await out.accuracy.item()).toBeCloseTo(1 / 3, 6);
      expectClose([await out.margin.item()], [-0.5 / 3], 1e-6, 1e-6, 'margin');
      out.loss.backward();
      expectClose(await c.grad!.data(), d.map((x) => -sigmoid(-x) / 3), 1e-7, 1e-6, 'd/d chosen');
      expectClose(await r.grad!.data(), d.map((x) => sigmoid(-x) / 3), 1e-7, 1e-6, 'd/d rejected');
      expect(() => bradleyTerryLoss(c, tensor([1], { device, dtype: 'float32' }))).toThrow('bradleyTerryLoss: chosen [3] and rejected [1] must be non-empty [batch] tensors of one size');
    });
  });
}

describe('a reward model learns a toy preference', () => {
  test('texts containing "blue" score higher: held-out accuracy well above chance', async () => {
    const tok = chatTokenizer();
    const words = ['sky', 'grass', 'snow', 'coal', 'red', 'green', 'white', 'black', 'yellow', 'hello', 'hi', 'a', '.'];
    let s = 12345;
    const rand = (n: number): number => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return Math.floor((s / 2147483648) * n);
    };
    const phrase = (n: number): string[] => Array.from({ length: n }, () => words[rand(words.length)]!);
    const pair = () => {
      const chosen = phrase(2 + rand(3));
      chosen.splice(rand(chosen.length + 1), 0, 'blue');
      return { kind: 'preference' as const, prompt: 'color of sky ?', chosen: chosen.join(' '), rejected: phrase(3 + rand(3)).join(' ') };
    };
    const train = Array.from({ length: 48 }, pair), heldOut = Array.from({ length: 32 }, pair);
    const rm = new RewardModel(tinyLlama(8));
    const pairs = tokenizePreference(tok, heldOut).pairs;
    const padId = tok.padTokenId!;
    const heldOutAccuracy = async (): Promise<{ accuracy: number; rc: number[] }> => {
      const rc = await scoreSequences(rm, pairs.map((p) => p.chosen.inputIds), { padId });
      const rr = await scoreSequences(rm, pairs.map((p) => p.rejected.inputIds), { padId });
      return { accuracy: rc.filter((c, i) => c > rr[i]!).length / rc.length, rc };
    };
    expect((await heldOutAccuracy()).accuracy).toBeLessThanOrEqual(0.6); // chance before training (0.5 with this seed)
    const out = await trainRewardModel(rm, tok, train, { batchSize: 8, epochs: 3, lr: 3e-3, schedule: 'constant', progress: false, log: () => {} });
    expect(out.stats).toHaveLength(18);
    const { accuracy, rc } = await heldOutAccuracy();
    expect(accuracy).toBeGreaterThanOrEqual(0.9); // 1.0 measured
    // Padding does not change a sequence's score (pooled at the last real token; causal attention).
    const alone = await scoreSequences(rm, [pairs[0]!.chosen.inputIds], { padId });
    expectClose(alone, [rc[0]!], 1e-4, 1e-4, 'score with and without padding');
  }, 30_000);
});

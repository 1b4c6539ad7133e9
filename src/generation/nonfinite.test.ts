// Generation refuses non-finite logits as PyTorch does: sampling raises torch.multinomial's error, beam search and
// greedy search raise too (greedy would otherwise emit token 0 from all-NaN logits), naming the row and step.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import type { GPT2LMHeadModel } from '../models/gpt2.js';
import { listDevices } from '../tensor/backend.js';
import { fullLike, tensor } from '../tensor/create.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { badScores, checkProbabilities, softmax } from './logits.js';
import { generate } from './generate.js';

describe('non-finite scores', () => {
  test('badScores names the first NaN or +Infinity, or a row with every token masked; finite rows pass', () => {
    expect(badScores(Float64Array.from([0, -Infinity, 2]))).toBeNull();
    expect(badScores(Float64Array.from([0, NaN, Infinity]))).toBe('NaN at token 1');
    expect(badScores(Float64Array.from([0, Infinity, NaN]))).toBe('+Infinity at token 1');
    expect(badScores(Float64Array.from([-Infinity, -Infinity]))).toBe('every token at -Infinity');
  });

  test("checkProbabilities raises torch.multinomial's message for NaN, +Infinity and all-masked rows", () => {
    const check = (row: number[]) => () => { const s = Float64Array.from(row); checkProbabilities(softmax(s), s, 'row 0, step 1'); };
    expect(check([1, 2, -Infinity])).not.toThrow();
    expect(check([1, NaN, 3])).toThrow('generate: probability tensor contains either inf, nan or element < 0 (row 0, step 1: the scores hold NaN at token 1)');
    expect(check([1, Infinity, 3])).toThrow(/contains either inf, nan or element < 0 \(row 0, step 1: the scores hold \+Infinity at token 1\)/);
    expect(check([-Infinity, -Infinity])).toThrow(/every token at -Infinity/);
  });
});

for (const device of listDevices()) {
  describe(`generation with a broken model on ${device}`, () => {
    test('greedy, sampling and beam search raise on NaN logits instead of emitting a token', async () => {
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const prompt = tensor([[5, 17, 300]], { dtype: 'int32', device });
      // Sane first: the same calls work on the intact model.
      (await generate(model, prompt, { maxNewTokens: 2 })).dispose();
      (await generate(model, prompt, { maxNewTokens: 2, doSample: true, seed: 1 })).dispose();
      (await generate(model, prompt, { maxNewTokens: 2, numBeams: 2 })).dispose();
      // A NaN in the final layer norm makes every logit NaN (torch.argmax would pick token 0).
      const w = (model as GPT2LMHeadModel).transformer.ln_f.weight!;
      noGrad(() => w.replaceStorage(fullLike(w, NaN)));
      await expect(generate(model, prompt, { maxNewTokens: 2 })).rejects.toThrow(/generate: the logits of row 0 at step 1 hold NaN \(token 0\)/);
      await expect(generate(model, prompt, { maxNewTokens: 2, doSample: true, seed: 1 })).rejects.toThrow('generate: probability tensor contains either inf, nan or element < 0 (row 0, step 1: the scores hold NaN at token 0)');
      // The warpers let the NaN through to the check (top-k, top-p and min-p remove nothing by comparing with NaN).
      await expect(generate(model, prompt, { maxNewTokens: 2, doSample: true, seed: 1, temperature: 0.7, topK: 5, topP: 0.9, minP: 0.05 })).rejects.toThrow(/probability tensor contains either inf, nan or element < 0/);
      await expect(generate(model, prompt, { maxNewTokens: 2, numBeams: 2 })).rejects.toThrow(/generate: beam search: the scores contain either inf or nan \(beam 0, step 1: NaN at token 0\)/);
      prompt.dispose();
    });
  });
}

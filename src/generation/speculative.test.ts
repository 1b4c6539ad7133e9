// Assisted generation against plain greedy decoding: identical tokens and scores with a perfect draft (the target
// itself), a poor one (random weights) and a cross-architecture one (GPT-2 drafting for LLaMA); KVCache.crop; bad input.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { manualSeed } from '../tensor/random.js';
import { KVCache } from '../nn/attention.js';
import { AutoModelForCausalLM, AutoModelForSeq2SeqLM } from '../models/auto.js';
import type { PreTrainedModel } from '../models/base.js';
import { GPT2LMHeadModel } from '../models/gpt2.js';
import { expectClose } from '../test-util/fixtures.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { generateWithScores } from './generate.js';
import { assistedGenerate, type AssistedGenerateOptions } from './speculative.js';

/** A small GPT-2 with the fixture's vocabulary but its own random weights: it rarely guesses the target's tokens. */
function randomDraft(device: string): GPT2LMHeadModel {
  manualSeed(3);
  return new GPT2LMHeadModel({ vocab_size: 512, n_positions: 128, n_embd: 32, n_layer: 1, n_head: 2, embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0 }).to(device).eval();
}

/** Runs both decoders and checks assisted generation reproduces greedy's tokens and scores; returns its statistics. */
async function expectSameAsGreedy(target: PreTrainedModel, draft: PreTrainedModel, ids: number[], opts: AssistedGenerateOptions, device: string) {
  const prompt = tensor([ids], { dtype: 'int32', device });
  const greedy = await generateWithScores(target, prompt, { maxNewTokens: opts.maxNewTokens, minNewTokens: opts.minNewTokens, eosTokenId: opts.eosTokenId, repetitionPenalty: opts.repetitionPenalty });
  const out = await assistedGenerate(target, draft, prompt, opts);
  expect(await out.sequences.tolist()).toEqual(await greedy.sequences.tolist());
  expect(out.scores.length).toBe(greedy.scores.length);
  expectClose(out.scores.flatMap((s) => Array.from(s)), greedy.scores.flatMap((s) => Array.from(s)), 1e-4, 0, 'scores');
  return out;
}

for (const device of listDevices()) {
  describe(`assisted generation on ${device}`, () => {
    test('KVCache.crop keeps the first positions', async () => {
      const c = new KVCache();
      const k = tensor(Array.from({ length: 2 * 5 * 3 }, (_, i) => i), { shape: [1, 2, 5, 3], device });
      c.update(k, k);
      c.crop(7); // longer than the cache: nothing to drop, as HF's DynamicCache.crop
      expect(c.length).toBe(5);
      c.crop(2);
      expect(c.length).toBe(2);
      expect(await c.key!.tolist()).toEqual([[[[0, 1, 2], [3, 4, 5]], [[15, 16, 17], [18, 19, 20]]]]);
      expect(await c.value!.tolist()).toEqual(await c.key!.tolist());
      c.crop(0);
      expect(c.length).toBe(0);
      expect(() => c.crop(-1)).toThrow(/KVCache.crop: length must be a non-negative integer, got -1/);
      k.dispose();
    });

    test('GPT-2 drafting for itself: every proposal accepted, 2 target passes for 12 tokens', async () => {
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const out = await expectSameAsGreedy(model, model, [5, 17, 300, 42], { maxNewTokens: 12, minNewTokens: 12, numAssistantTokens: 5 }, device);
      expect(out.acceptanceRate).toBe(1);
      expect(out.proposedTokens).toBe(10); // rounds of 5 proposals + 1 target token: 6 + 6
      expect(out.targetForwardPasses).toBe(2);
      expect(out.draftForwardPasses).toBe(10);
    });

    test('a random draft: few proposals accepted, the tokens are still greedy\'s', async () => {
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const out = await expectSameAsGreedy(model, randomDraft(device), [5, 17, 300, 42], { maxNewTokens: 16, minNewTokens: 16, numAssistantTokens: 4 }, device);
      expect(out.acceptanceRate).toBeLessThan(0.5);
      expect(out.acceptedTokens).toBe(Math.round(out.acceptanceRate * out.proposedTokens));
      // Every target pass yields accepted proposals plus one token of its own.
      expect(out.acceptedTokens + out.targetForwardPasses).toBe(16);
    });

    test('heuristic schedule, repetition penalty and an eos that stops early still match greedy', async () => {
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const free = await generateWithScores(model, tensor([[9, 8, 7]], { dtype: 'int32', device }), { maxNewTokens: 10, eosTokenId: [] });
      const eos = ((await free.sequences.tolist()) as number[][])[0]![7]!; // the 5th new token ends the text
      const out = await expectSameAsGreedy(model, model, [9, 8, 7], { maxNewTokens: 10, eosTokenId: eos, numAssistantTokens: 2, numAssistantTokensSchedule: 'heuristic' }, device);
      expect(out.sequences.shape[1]).toBeLessThanOrEqual(8);
      await expectSameAsGreedy(model, randomDraft(device), [9, 8, 7], { maxNewTokens: 10, repetitionPenalty: 1.5, numAssistantTokens: 3, numAssistantTokensSchedule: 'heuristic' }, device);
    });

    test('model.generate(ids, { assistantModel }) is the same greedy output (HF\'s assistant_model)', async () => {
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const ids = tensor([[5, 17, 300]], { dtype: 'int32', device });
      const plain = await model.generate(ids, { maxNewTokens: 9 });
      const assisted = await model.generate(ids, { maxNewTokens: 9, assistantModel: randomDraft(device), numAssistantTokens: 3 });
      expect(await assisted.tolist()).toEqual(await plain.tolist());
      const streamed: number[] = [];
      await model.generate(ids, { maxNewTokens: 9, assistantModel: model, onToken: ([t]) => streamed.push(t!) });
      expect([5, 17, 300, ...streamed]).toEqual(((await plain.tolist()) as number[][])[0]);
    });

    test('LLaMA target: drafted by itself and by the GPT-2 fixture (same vocabulary, other architecture)', async () => {
      const llama = await AutoModelForCausalLM.fromPretrained(hfDir('llama'), { device });
      const gpt2 = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const self = await expectSameAsGreedy(llama, llama, [1, 40, 7, 99], { maxNewTokens: 12, minNewTokens: 12, numAssistantTokens: 3 }, device);
      expect(self.acceptanceRate).toBe(1);
      expect(self.targetForwardPasses).toBe(3);
      const cross = await expectSameAsGreedy(llama, gpt2, [1, 40, 7, 99], { maxNewTokens: 12, minNewTokens: 12, numAssistantTokens: 3 }, device);
      expect(cross.acceptedTokens + cross.targetForwardPasses).toBe(12);
    });
  });
}

describe('assisted generation: bad input', () => {
  test('clear errors naming the option', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const ids = tensor([[1, 2, 3]], { dtype: 'int32' });
    await expect(assistedGenerate(model, model, tensor([[1, 2], [3, 4]], { dtype: 'int32' }))).rejects.toThrow(/assistedGenerate: assisted generation takes a batch of 1, got inputIds \[2, 2\]/);
    manualSeed(1);
    const other = new GPT2LMHeadModel({ vocab_size: 300, n_positions: 128, n_embd: 32, n_layer: 1, n_head: 2 }).eval();
    await expect(assistedGenerate(model, other, ids)).rejects.toThrow(/assistantModel's vocab_size 300 differs from the model's 512/);
    await expect(assistedGenerate(model, model, ids, { numAssistantTokens: 0 })).rejects.toThrow(/numAssistantTokens must be a positive integer, got 0/);
    await expect(assistedGenerate(model, model, ids, { numAssistantTokensSchedule: 'fast' as 'constant' })).rejects.toThrow(/numAssistantTokensSchedule must be 'constant' or 'heuristic', got "fast"/);
    await expect(assistedGenerate(model, {} as PreTrainedModel, ids)).rejects.toThrow(/assistantModel must be a model/);
    await expect(assistedGenerate(model, model, ids, { maxNewTokens: 0 })).rejects.toThrow(/maxNewTokens must be a positive integer/);
    const short = new GPT2LMHeadModel({ vocab_size: 512, n_positions: 8, n_embd: 32, n_layer: 1, n_head: 2 }).eval();
    await expect(assistedGenerate(model, short, ids, { maxNewTokens: 10 })).rejects.toThrow(/assistedGenerate: assistantModel: .*n_positions = 8/);
    await expect(model.generate(ids, { assistantModel: model, doSample: true })).rejects.toThrow(/doSample is not supported with an assistantModel/);
    await expect(model.generate(ids, { assistantModel: model, numBeams: 2 })).rejects.toThrow(/numBeams > 1 is not supported with an assistantModel/);
    await expect(model.generate(ids, { assistantModel: model, attentionMask: tensor([[1, 1, 1]], { dtype: 'int32' }) })).rejects.toThrow(/attentionMask is not supported with an assistantModel/);
    const t5 = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'));
    await expect(assistedGenerate(t5, model, ids)).rejects.toThrow(/must be decoder-only/);
  });
});

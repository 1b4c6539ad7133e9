// Generation against transformers: GPT-2 greedy tokens and scores, KV-cache decoding equals full passes, seeded
// sampling, streaming, left padding; T5 greedy and beam search are in src/models/t5-generation.test.ts.

import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { AutoModelForCausalLM, AutoModelForSeq2SeqLM } from '../models/auto.js';
import { expectClose } from '../test-util/fixtures.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { generate, generateWithScores, streamGenerate } from './generate.js';

for (const device of listDevices()) {
  describe(`GPT-2 generation on ${device}`, () => {
    test('greedy tokens equal transformers, and each step\'s scores too', async () => {
      const ref = await loadRef('gpt2', device);
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      // The fixture forbade eos for all 12 steps (its scores hold -inf for token 2 throughout).
      const out = await generateWithScores(model, ref['gen.input_ids']!.int(), { maxNewTokens: 12, minNewTokens: 12 });
      expect(await out.sequences.tolist()).toEqual(await ref['greedy.sequences']!.int().tolist());
      const want = await ref['greedy.scores']!.data();
      const got = new Float32Array(out.scores.flatMap((s) => Array.from(s)));
      expectClose(got, Array.from(want), 1e-4, 0, 'greedy scores');
    });
    test('the KV cache gives the logits of a full pass at every step', async () => {
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device });
      const prompt = tensor([[5, 17, 300, 42]], { dtype: 'int32', device });
      const out = await generateWithScores(model, prompt, { maxNewTokens: 6 });
      const seq = out.sequences;
      const full = noGrad(() => model.forward({ inputIds: seq }).logits); // [1, 10, V]
      const V = full.shape[2]!;
      const fullData = await full.data();
      out.scores.forEach((s, i) => expectClose(s, Array.from(fullData.subarray((3 + i) * V, (4 + i) * V)), 1e-4, 0, `step ${i}`));
    });
  });
}

for (const device of listDevices()) {
  describe(`LLaMA generation on ${device}`, () => {
    test('greedy tokens and scores equal transformers (grouped-query attention, RoPE, KV cache)', async () => {
      const ref = await loadRef('llama', device);
      const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'), { device });
      const out = await generateWithScores(model, ref['gen.input_ids']!.int(), { maxNewTokens: 12, minNewTokens: 12 });
      expect(await out.sequences.tolist()).toEqual(await ref['greedy.sequences']!.int().tolist());
      expectClose(new Float32Array(out.scores.flatMap((s) => Array.from(s))), Array.from(await ref['greedy.scores']!.data()), 1e-4, 0, 'greedy scores');
    });
  });

  describe(`T5 generation on ${device}`, () => {
    test('greedy sequences equal transformers (both rows, one right-padded)', async () => {
      const ref = await loadRef('t5', device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'), { device });
      const mask = ref['attention_mask']!.int();
      // The fixture forbade eos for all 10 steps (its scores hold -inf for token 1 throughout).
      const out = await generateWithScores(model, ref['input_ids']!.int(), { attentionMask: mask, maxNewTokens: 10, minNewTokens: 10 });
      expect(await out.sequences.tolist()).toEqual(await ref['greedy.sequences']!.int().tolist());
      // Our scores are one [B, V] array per step; the fixture stores [B, steps, V].
      const V = 512;
      const byRow = [0, 1].flatMap((b) => out.scores.flatMap((s) => Array.from(s.subarray(b * V, (b + 1) * V))));
      expectClose(byRow, Array.from(await ref['greedy.scores']!.data()), 1e-4, 0, 'greedy scores');
      expect(mask.isDisposed).toBe(false); // generate never frees the caller's tensors
    });
    test('beam search (3 beams, early stopping) equals transformers, sequence score included', async () => {
      const ref = await loadRef('t5', device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'), { device });
      const ids = ref['input_ids']!.narrow(0, 0, 1).int();
      const out = await generateWithScores(model, ids, { attentionMask: ref['attention_mask']!.narrow(0, 0, 1).int(), numBeams: 3, maxNewTokens: 10, lengthPenalty: 1, earlyStopping: true });
      expect(await out.sequences.tolist()).toEqual(await ref['beam.sequences']!.int().tolist());
      expect(out.sequencesScores![0]).toBeCloseTo((await ref['beam.sequences_scores']!.data())[0]!, 5);
    });
  });
}

describe('generation options', () => {
  test('sampling with a seed is reproducible and respects top-k', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const prompt = tensor([[5, 17, 300]], { dtype: 'int32' });
    const a = await (await generate(model, prompt, { doSample: true, seed: 7, maxNewTokens: 10, topK: 5, temperature: 0.9 })).tolist();
    const b = await (await generate(model, prompt, { doSample: true, seed: 7, maxNewTokens: 10, topK: 5, temperature: 0.9 })).tolist();
    const c = await (await generate(model, prompt, { doSample: true, seed: 8, maxNewTokens: 10, topK: 5, temperature: 0.9 })).tolist();
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    // Every sampled token is among the 5 best of its step.
    const out = await generateWithScores(model, prompt, { doSample: true, seed: 7, maxNewTokens: 10, topK: 5, temperature: 0.9 });
    for (const s of out.scores) expect(s.filter((v) => v > -Infinity).length).toBe(5);
  });
  test('streaming yields the same tokens as generate', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const prompt = tensor([[5, 17, 300]], { dtype: 'int32' });
    const streamed: number[] = [];
    for await (const [t] of streamGenerate(model, prompt, { maxNewTokens: 8 })) streamed.push(t!);
    const full = (await (await generate(model, prompt, { maxNewTokens: 8 })).tolist()) as number[][];
    expect([5, 17, 300, ...streamed]).toEqual(full[0]);
  });
  test('a left-padded row generates what it generates alone', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const alone = (await (await generate(model, tensor([[7, 8, 9]], { dtype: 'int32' }), { maxNewTokens: 5 })).tolist()) as number[][];
    const batch = (await (await generate(model, tensor([[0, 0, 7, 8, 9], [1, 2, 3, 4, 5]], { dtype: 'int32' }), {
      maxNewTokens: 5, attentionMask: tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], { dtype: 'int32' }),
    })).tolist()) as number[][];
    expect(batch[0]!.slice(2)).toEqual(alone[0]);
  });
  test('eos stops a row, which is then padded; minNewTokens forbids an early eos', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const prompt = tensor([[5, 17, 300]], { dtype: 'int32' });
    const free = (await (await generate(model, prompt, { maxNewTokens: 6 })).tolist()) as number[][];
    const eos = free[0]![3]!; // pretend the first generated token ends the text
    const stopped = (await (await generate(model, prompt, { maxNewTokens: 6, eosTokenId: eos })).tolist()) as number[][];
    expect(stopped[0]).toEqual(free[0]!.slice(0, 4));
    const batch = (await (await generate(model, tensor([[5, 17, 300], [9, 9, 9]], { dtype: 'int32' }), { maxNewTokens: 6, eosTokenId: eos, padTokenId: 0 })).tolist()) as number[][];
    const done = batch[0]!.indexOf(eos, 3);
    expect(batch[0]!.slice(done + 1).every((t) => t === 0)).toBe(true);
    const forced = (await (await generate(model, prompt, { maxNewTokens: 6, eosTokenId: eos, minNewTokens: 3 })).tolist()) as number[][];
    expect(forced[0]!.slice(3, 6)).not.toContain(eos);
  });
  test('bad options are clear errors', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    await expect(generate(model, tensor([[1, 2]], { dtype: 'float32' }), {})).rejects.toThrow(/inputIds must be an int32 tensor/);
    await expect(generate(model, tensor([[1, 2]], { dtype: 'int32' }), { maxNewTokens: 0 })).rejects.toThrow(/maxNewTokens must be a positive integer/);
    await expect(generate(model, tensor([[1, 2]], { dtype: 'int32' }), { doSample: true, temperature: 0 })).rejects.toThrow(/temperature must be > 0/);
  });
});

describe('no_repeat_ngram_size, forced_bos_token_id, forced_eos_token_id', () => {
  test('greedy and beams obey them, from options or from generation_config.json; unforced steps equal plain greedy', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-processors-'));
    for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('gpt2'), f), join(dir, f));
    const prompt = tensor([[5, 6, 7, 8]]);
    const plain = await AutoModelForCausalLM.fromPretrained(dir);
    const free = ((await (await generate(plain, prompt, { maxNewTokens: 12 })).tolist()) as number[][])[0]!;
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ no_repeat_ngram_size: 2, forced_bos_token_id: 40, forced_eos_token_id: 41 }));
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    expect(model.generationConfig).toMatchObject({ noRepeatNgramSize: 2, forcedBosTokenId: 40, forcedEosTokenId: 41 });
    for (const numBeams of [1, 3]) {
      const seq = ((await (await generate(model, prompt, { maxNewTokens: 12, numBeams })).tolist()) as number[][])[0]!;
      const gen = seq.slice(4);
      expect(gen[0]).toBe(40);
      expect(gen[gen.length - 1]).toBe(41);
      const bigrams = seq.slice(1).map((t, i) => `${seq[i]},${t}`);
      expect(new Set(bigrams).size).toBe(bigrams.length); // no bigram twice, prompt included
    }
    // The options override the config; without any, the random model repeats bigrams (so the check above can fail).
    const off = ((await (await generate(model, prompt, { maxNewTokens: 12, noRepeatNgramSize: 100, forcedBosTokenId: free[4]!, forcedEosTokenId: free[15]! })).tolist()) as number[][])[0]!;
    expect(off).toEqual(free);
    const bigrams = free.slice(1).map((t, i) => `${free[i]},${t}`);
    expect(new Set(bigrams).size).toBeLessThan(bigrams.length);
    await expect(generate(model, prompt, { noRepeatNgramSize: 0 })).rejects.toThrow(/noRepeatNgramSize must be a positive integer, got 0/);
    await expect(generate(model, prompt, { forcedBosTokenId: -1 })).rejects.toThrow(/forcedBosTokenId must be a non-negative integer token id/);
  });
});

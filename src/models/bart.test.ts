// BART against Hugging Face transformers (test/data/hf/bart): logits, encoder states, gradients, AdamW, caching, greedy and beam search.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { indexSelect } from '../autograd/ops/indexing.js';
import { cat, narrow } from '../autograd/ops/movement.js';
import { generateWithScores } from '../generation/generate.js';
import { forceToken, noRepeatNgramTokens } from '../generation/logits.js';
import { AdamW } from '../optim/adamw.js';
import { listDevices } from '../tensor/backend.js';
import { ones, tensor, zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { expectClose } from '../test-util/fixtures.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForSeq2SeqLM } from './auto.js';
import type { PreTrainedModel } from './base.js';
import { BartForConditionalGeneration } from './bart.js';
import { shiftTokensRight } from './base.js';

const DIR = hfDir('bart');
const refJson = JSON.parse(readFileSync(`${DIR}/ref.json`, 'utf8')) as { greedy: number[][]; beam: number[][] };
const load = (device?: string) => AutoModelForSeq2SeqLM.fromPretrained(DIR, { device });

/** Decodes step by step with the caches (the first step feeds `first` tokens): every step's logits, [B, T, V]. */
function decodeIncrementally(model: PreTrainedModel, ref: Record<string, Tensor>, first: number, reorderAfter?: { step: number; rows: Tensor }): Tensor {
  return noGrad(() => {
    const caches = model.newCache();
    let attentionMask = ref['attention_mask']!, decoderIds = ref['decoder_input_ids']!;
    let encoded: Tensor | null = null;
    const steps: Tensor[] = [];
    for (let t = 0; t < decoderIds.shape[1]!; t += t === 0 ? first : 1) {
      if (reorderAfter && t === reorderAfter.step) {
        // Beam search: rows continue from other rows; the caches, encoder output and its mask follow.
        for (const c of caches) c.reorder(reorderAfter.rows);
        steps.splice(0, steps.length, ...steps.map((x) => indexSelect(x, 0, reorderAfter.rows)));
        [attentionMask, decoderIds, encoded] = [attentionMask, decoderIds, encoded!].map((x) => indexSelect(x, 0, reorderAfter.rows)) as [Tensor, Tensor, Tensor];
      }
      const out = model.forward({
        inputIds: ref['input_ids']!, attentionMask, decoderInputIds: narrow(decoderIds, 1, t, t === 0 ? first : 1), pastKeyValues: caches, encoderHiddenStates: encoded,
      });
      encoded = out.encoderLastHiddenState!;
      steps.push(out.logits);
    }
    for (const c of caches) c.dispose();
    return cat(steps, 1);
  });
}

/**
 * expectGradsMatch, except for the key biases: their true gradient is 0 (a bias on keys shifts every score of a query
 * equally), so both sides hold float rounding noise (~1e-10); ours must be that small next to the largest gradient.
 */
async function expectBartGradsMatch(model: Module, logits: Tensor, ref: Record<string, Tensor>): Promise<void> {
  const isKeyBias = (k: string) => /\.k_proj\.bias$/.test(k);
  await expectGradsMatch(model, logits, Object.fromEntries(Object.entries(ref).filter(([k]) => !isKeyBias(k))));
  const largest = Math.max(...(await Promise.all(model.parameters().map(async (p) => Math.max(...Array.from(await p.grad!.data(), Math.abs))))));
  const keyBiases = model.namedParameters().filter(([k]) => isKeyBias(k));
  expect(keyBiases.length).toBe(6);
  for (const [name, p] of keyBiases) expectClose(await p.grad!.data(), new Array<number>(p.numel()).fill(0), 1e-6 * largest, 0, `gradient of ${name}`);
}

for (const device of listDevices()) {
  describe(`BART on ${device}`, () => {
    test('logits and encoder states match transformers (row 1 right-padded)', async () => {
      const ref = await loadRef('bart', device);
      const model = await load(device);
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, decoderInputIds: ref['decoder_input_ids']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.encoderLastHiddenState!, ref['encoder_last_hidden_state']!, 1e-4, 'encoder_last_hidden_state');
    });
    test('labels: shifted right into the decoder inputs; the loss is cross-entropy of the reference logits', async () => {
      const ref = await loadRef('bart', device);
      const model = await load(device);
      // Labels whose right shift (after decoder_start_token_id 2) is the fixture's decoder_input_ids; the last one is eos.
      const dec = await ref['decoder_input_ids']!.tolist() as number[][];
      const labels = dec.map((row) => [...row.slice(1), 2]);
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels: tensor(labels, { dtype: 'int32', device }) });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      // float64 cross-entropy over the fixture's logits
      const V = 512, logits = await ref['logits']!.data(), flat = labels.flat();
      const want = flat.reduce((s, y, i) => {
        const row = Array.from(logits.subarray(i * V, (i + 1) * V)), m = Math.max(...row);
        return s + m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0)) - row[y]!;
      }, 0) / flat.length;
      expect(await out.loss!.item()).toBeCloseTo(want, 4);
    });
    test('gradients of sum(logits * probe) match for every parameter, and so does one AdamW step on them', async () => {
      const ref = await loadRef('bart', device);
      const model = await load(device);
      expect(Object.keys(ref).filter((k) => k.startsWith('grad.')).length).toBe(model.namedParameters().length);
      const row = (k: string) => ref[k]!.narrow(0, 0, 1);
      await expectBartGradsMatch(model, model.forward({ inputIds: row('input_ids'), attentionMask: row('attention_mask'), decoderInputIds: row('decoder_input_ids') }).logits, ref);
      new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }).step();
      // The first Adam step is lr * g / (|g| + eps): where |g| is near eps it follows float rounding noise on both sides,
      // so the key biases (true gradient 0, checked above) and stray elements with 0 < |g| < 1e-6 are skipped. Exact
      // zeros (the unused position rows) are kept: there both sides only decay the weights.
      let skipped = 0, total = 0;
      for (const [name, p] of model.namedParameters()) {
        const g = await ref[`grad.${name}`]!.data(), want = await ref[`adamw.${name}`]!.data(), got = await p.data();
        const noise = name.endsWith('.k_proj.bias');
        const keep = Array.from(g, (_, i) => i).filter((i) => !noise && (g[i] === 0 || Math.abs(g[i]!) >= 1e-6));
        skipped += g.length - keep.length;
        total += g.length;
        expectClose(keep.map((i) => got[i]!), keep.map((i) => want[i]!), 1e-5, 0, `adamw.${name}`);
      }
      // 1.8% of 208,896: the key biases and the encoder's q/k weights, whose gradients are at most 1e-4 and often below
      // 1e-6 (near-uniform attention at random init); their gradients themselves are checked above.
      expect(skipped).toBeLessThan(total / 40);
    });
    test('decoding step by step with the caches gives the full pass logits, also after a beam reorder', async () => {
      const ref = await loadRef('bart', device);
      const model = await load(device);
      await expectTensorClose(decodeIncrementally(model, ref, 1), ref['logits']!, 1e-4, 'one token at a time');
      await expectTensorClose(decodeIncrementally(model, ref, 3), ref['logits']!, 1e-4, 'a 3-token prefix, then one at a time');
      const rows = tensor(Int32Array.from([1, 1, 0]), { dtype: 'int32', device });
      await expectTensorClose(decodeIncrementally(model, ref, 1, { step: 2, rows }), noGrad(() => indexSelect(ref['logits']!, 0, rows)), 1e-4, 'reordered');
    });
    test('greedy (with the padded row) and beam search equal transformers exactly', async () => {
      const ref = await loadRef('bart', device);
      const model = await load(device);
      // The fixture forbade eos for all 8 steps (its scores hold -inf for token 2 throughout): min_new_tokens = 8.
      const greedy = await generateWithScores(model, ref['input_ids']!, { attentionMask: ref['attention_mask']!, maxNewTokens: 8, minNewTokens: 8 });
      expect(await greedy.sequences.tolist()).toEqual(refJson.greedy);
      expect(await greedy.sequences.tolist()).toEqual(await ref['greedy.sequences']!.int().tolist());
      // greedy.scores is [B, steps, V]; ours is one [B, V] array per step.
      const got = new Float32Array(2 * 8 * 512);
      greedy.scores.forEach((s, t) => { for (let b = 0; b < 2; b++) got.set(s.subarray(b * 512, (b + 1) * 512), (b * 8 + t) * 512); });
      expectClose(got, Array.from(await ref['greedy.scores']!.data()), 1e-4, 0, 'greedy scores');
      const beam = await model.generate(ref['input_ids']!.narrow(0, 0, 1), { numBeams: 4, maxNewTokens: 8, minNewTokens: 8, lengthPenalty: 2.0, earlyStopping: true });
      expect(await beam.tolist()).toEqual(refJson.beam);
      expect(await beam.tolist()).toEqual(await ref['beam.sequences']!.int().tolist());
    });
  });
}

describe('BART details', () => {
  test('shared embeddings tie the encoder, decoder and lm_head; final_logits_bias is a buffer; two caches per decoder layer', async () => {
    const model = await load() as BartForConditionalGeneration;
    expect(model.isEncoderDecoder).toBe(true);
    expect(model.lm_head.weight).toBe(model.model.shared.weight);
    expect(model.model.encoder.embed_tokens).toBe(model.model.shared);
    expect(model.model.decoder.embed_tokens).toBe(model.model.shared);
    expect(model.namedParameters().map(([n]) => n)).not.toContain('final_logits_bias');
    expect(Object.keys(model.stateDict())).toContain('final_logits_bias');
    expect(model.model.encoder.embed_positions.weight.shape).toEqual([66, 64]);
    expect(model.newCache()).toHaveLength(4);
    expect(model.generationConfig).toMatchObject({ decoderStartTokenId: 2, eosTokenId: 2, padTokenId: 1, bosTokenId: 0 });
  });
  test('shift_tokens_right: start token first, -100 read as pad_token_id; inputIds alone feed the decoder shifted (denoising)', async () => {
    const ids = tensor([[5, 6, -100, 7]], { dtype: 'int32' });
    expect(await shiftTokensRight(ids, 1, 2).tolist()).toEqual([[2, 5, 6, 1]]);
    const ref = await loadRef('bart');
    const model = await load();
    const shifted = shiftTokensRight(ref['input_ids']!.int(), 1, 2);
    const a = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! });
    const b = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, decoderInputIds: shifted });
    await expectTensorClose(a.logits, b.logits, 1e-6, 'logits');
  });
  test('final_logits_bias is added to the logits', async () => {
    const ref = await loadRef('bart');
    const model = await load() as BartForConditionalGeneration;
    const bias = Float32Array.from({ length: 512 }, (_, i) => (i % 7) - 3);
    model.final_logits_bias.replaceStorage(tensor(bias, { shape: [1, 512] }));
    const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, decoderInputIds: ref['decoder_input_ids']! });
    const want = Float32Array.from(await ref['logits']!.data(), (x, i) => x + bias[i % 512]!);
    expectClose(await out.logits.data(), Array.from(want), 1e-4, 0, 'logits + bias');
  });
});

describe("BART checkpoints' generation processors (logits.ts; not yet wired into generate.ts)", () => {
  test('no_repeat_ngram_size: the tokens that would complete an n-gram already in the sequence', () => {
    expect(noRepeatNgramTokens([2, 5, 6, 5], 2)).toEqual([6]);
    expect(noRepeatNgramTokens([2, 5, 6, 5, 6], 3)).toEqual([5]);
    expect(noRepeatNgramTokens([2, 5, 6, 5, 7, 5], 2).sort()).toEqual([6, 7]);
    expect(noRepeatNgramTokens([2, 5, 6], 3)).toEqual([]); // no earlier (5, 6)
    expect(noRepeatNgramTokens([2], 3)).toEqual([]); // shorter than n - 1: nothing to ban (HF: cur_len + 1 < n)
    expect(noRepeatNgramTokens([2, 5, 5], 1).sort()).toEqual([2, 5]); // n = 1: every token seen
    expect(() => noRepeatNgramTokens([2], 0)).toThrow(/noRepeatNgramSize must be a positive integer, got 0/);
  });
  test('forced_bos / forced_eos: one token left at score 0', () => {
    const s = Float64Array.from([0.5, -1, 3]);
    forceToken(s, 0);
    expect(Array.from(s)).toEqual([0, -Infinity, -Infinity]);
    expect(() => forceToken(s, 3)).toThrow(/forced token 3 is outside the vocabulary \(3\)/);
  });
});

describe('BART errors', () => {
  async function folder(patch: Record<string, unknown>): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'attend-bart-'));
    const config = JSON.parse(await readFile(join(DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
    await copyFile(join(DIR, 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  test('bad config fields name the file and the key', async () => {
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ activation_function: 'gelu_fast' }))).rejects.toThrow(/config.json: "activation_function" must be one of gelu, gelu_new/);
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ encoder_attention_heads: 5 }))).rejects.toThrow(/config.json: "d_model" \(64\) must be divisible by "encoder_attention_heads" \(5\)/);
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ decoder_start_token_id: 512 }))).rejects.toThrow(/config.json: "decoder_start_token_id" \(512\) must be below "vocab_size" \(512\)/);
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ normalize_before: true }))).rejects.toThrow(/config.json: "normalize_before": true is an mBART \/ Marian-style variant/);
  });
  test('a config that disagrees with the checkpoint names the weight', async () => {
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ max_position_embeddings: 32 })))
      .rejects.toThrow(/model.safetensors: weight model.(en|de)coder.embed_positions.weight has shape \[66, 64\], the config says \[34, 64\]/);
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ tie_word_embeddings: false }))).rejects.toThrow(/missing weights for lm_head.weight/);
  });
  test('bad inputs', async () => {
    const model = await load();
    const ids = ones([2, 5], { dtype: 'int32' });
    expect(() => model.forward({ decoderInputIds: ids })).toThrow(/BART: forward needs "inputIds"/);
    expect(() => model.forward({ encoderHiddenStates: zeros([2, 5, 64]) })).toThrow(/BART: pass decoderInputIds, or labels \(or inputIds\)/);
    expect(() => model.forward({ inputIds: ids, attentionMask: ones([2, 4]), decoderInputIds: ids })).toThrow(/BART: attentionMask must be \[2, 5\], got \[2, 4\]/);
    expect(() => model.forward({ inputIds: ids, decoderInputIds: ids, decoderAttentionMask: ones([2, 4]) })).toThrow(/BART: decoderAttentionMask must be \[2, 5\], got \[2, 4\]/);
    expect(() => model.forward({ inputIds: ids, decoderInputIds: ones([3, 2], { dtype: 'int32' }) })).toThrow(/decoder batch 3 differs from the encoder's 2/);
    expect(() => model.forward({ inputIds: ids, decoderInputIds: ids, encoderHiddenStates: zeros([2, 5, 8]) })).toThrow(/encoderHiddenStates must be \[batch, time, 64\], got \[2, 5, 8\]/);
    expect(() => model.forward({ inputIds: ids, decoderInputIds: ids, pastKeyValues: model.newCache().slice(1) })).toThrow(/pastKeyValues must hold 4 caches/);
    expect(() => model.forward({ inputIds: ones([1, 65], { dtype: 'int32' }), decoderInputIds: ids })).toThrow(/BART: inputIds needs 65 positions, more than max_position_embeddings = 64/);
    expect(() => model.forward({ inputIds: ones([5], { dtype: 'int32' }), decoderInputIds: ids })).toThrow(/BART: inputIds must be \[batch, time\], got \[5\]/);
    await expect(model.generate(ids, { maxNewTokens: 100 })).rejects.toThrow(/max_position_embeddings = 64/);
  });
});

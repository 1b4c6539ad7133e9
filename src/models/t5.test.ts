// T5 against Hugging Face transformers (v1.0 fixture) and a float64 re-implementation (v1.1): logits, loss, gradients, caching.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { indexSelect } from '../autograd/ops/indexing.js';
import { cat, narrow } from '../autograd/ops/movement.js';
import { listDevices } from '../tensor/backend.js';
import { ones, tensor, zeros } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForSeq2SeqLM } from './auto.js';
import type { PreTrainedModel } from './base.js';
import { relativePositionBucket, T5ForConditionalGeneration } from './t5.js';

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
/** Labels whose right shift is the fixture's decoder_input_ids, and the loss of the reference logits on them (float64). */
const lossRef = readJson<{ labels: number[]; loss: number }>(`${hfDir('t5')}/loss.json`);
const V11 = 't5/v1_1';

/** Decodes step by step with the model's caches (the first step feeds `first` tokens) and returns the logits of every step, [B, T, V]. */
function decodeIncrementally(model: PreTrainedModel, ref: Record<string, Tensor>, first: number, reorderAfter?: { step: number; rows: Tensor }): Tensor {
  return noGrad(() => {
    const caches = model.newCache();
    let inputIds = ref['input_ids']!, attentionMask = ref['attention_mask']!, decoderIds = ref['decoder_input_ids']!;
    let encoded: Tensor | null = null;
    const steps: Tensor[] = [];
    for (let t = 0; t < decoderIds.shape[1]!; t += t === 0 ? first : 1) {
      if (reorderAfter && t === reorderAfter.step) {
        // Beam search: rows continue from other rows; every cache, the encoder output and its mask follow.
        for (const c of caches) c.reorder(reorderAfter.rows);
        steps.splice(0, steps.length, ...steps.map((x) => indexSelect(x, 0, reorderAfter.rows)));
        [inputIds, attentionMask, decoderIds, encoded] = [inputIds, attentionMask, decoderIds, encoded!].map((x) => indexSelect(x, 0, reorderAfter.rows)) as [Tensor, Tensor, Tensor, Tensor];
      }
      const out = model.forward({
        inputIds, attentionMask, decoderInputIds: narrow(decoderIds, 1, t, t === 0 ? first : 1), pastKeyValues: caches, encoderHiddenStates: encoded,
      });
      encoded = out.encoderLastHiddenState!;
      steps.push(out.logits);
    }
    for (const c of caches) c.dispose();
    return cat(steps, 1);
  });
}

for (const device of listDevices()) {
  describe(`T5 on ${device}`, () => {
    test('logits and encoder states match transformers (a right-padded row)', async () => {
      const ref = await loadRef('t5', device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'), { device });
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, decoderInputIds: ref['decoder_input_ids']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.encoderLastHiddenState!, ref['encoder_last_hidden_state']!, 1e-4, 'encoder_last_hidden_state');
    });
    test('labels alone: shifted right into the decoder inputs, cross-entropy with -100 ignored', async () => {
      const ref = await loadRef('t5', device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'), { device });
      const labels = tensor(Int32Array.from(lossRef.labels), { shape: [2, 6], device });
      const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      expect(await out.loss!.item()).toBeCloseTo(lossRef.loss, 4);
    });
    test('a -100 label inside the sequence is fed to the decoder as pad_token_id', async () => {
      const ref = await loadRef('t5', device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'), { device });
      const labels = Int32Array.from(lossRef.labels);
      labels[2] = -100;
      const decoderIds = Int32Array.from(await ref['decoder_input_ids']!.data());
      decoderIds[3] = 0;
      const viaLabels = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, labels: tensor(labels, { shape: [2, 6], device }) });
      const direct = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, decoderInputIds: tensor(decoderIds, { shape: [2, 6], device }) });
      await expectTensorClose(viaLabels.logits, direct.logits, 1e-6, 'logits');
    });
    test('gradients of sum(logits * probe) match for every parameter', async () => {
      const ref = await loadRef('t5', device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'), { device });
      const row = (k: string) => ref[k]!.narrow(0, 0, 1);
      const logits = model.forward({ inputIds: row('input_ids'), attentionMask: row('attention_mask'), decoderInputIds: row('decoder_input_ids') }).logits;
      await expectGradsMatch(model, logits, ref);
    });
    test('decoding step by step with the caches gives the full pass logits', async () => {
      const ref = await loadRef('t5', device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'), { device });
      await expectTensorClose(decodeIncrementally(model, ref, 1), ref['logits']!, 1e-4, 'one token at a time');
      await expectTensorClose(decodeIncrementally(model, ref, 3), ref['logits']!, 1e-4, 'a 3-token prefix, then one at a time');
    });
    test('reordering every cache mid-decode (beam search) continues the reordered rows', async () => {
      const ref = await loadRef('t5', device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'), { device });
      const rows = tensor(Int32Array.from([1, 1, 0]), { dtype: 'int32', device });
      const logits = decodeIncrementally(model, ref, 1, { step: 3, rows });
      const want = noGrad(() => indexSelect(ref['logits']!, 0, rows));
      await expectTensorClose(logits, want, 1e-4, 'logits');
    });
    test('v1.1 (gated-gelu, untied unscaled lm_head, more decoder than encoder blocks): logits, states, loss and gradients', async () => {
      const ref = await loadRef(V11, device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir(V11), { device });
      const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
      const out = model.forward({ ...inputs, decoderInputIds: ref['decoder_input_ids']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.encoderLastHiddenState!, ref['encoder_last_hidden_state']!, 1e-4, 'encoder_last_hidden_state');
      await expectTensorClose(out.lastHiddenState!, ref['last_hidden_state']!, 1e-4, 'decoder last_hidden_state');
      const { loss } = model.forward({ ...inputs, labels: ref['labels']! });
      expect(await loss!.item()).toBeCloseTo(readJson<{ loss: number }>(`${hfDir(V11)}/ref.json`).loss, 4);
      const row = (k: string) => ref[k]!.narrow(0, 0, 1);
      await expectGradsMatch(model, model.forward({ inputIds: row('input_ids'), attentionMask: row('attention_mask'), decoderInputIds: row('decoder_input_ids') }).logits, ref);
    });
    test('v1.1 cached decoding equals the full pass', async () => {
      const ref = await loadRef(V11, device);
      const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir(V11), { device });
      await expectTensorClose(decodeIncrementally(model, ref, 2), ref['logits']!, 1e-4, 'logits');
    });
  });
}

describe('T5 details', () => {
  test("relative position buckets equal transformers' (float32 log included) for several settings", () => {
    const { from, tables } = readJson<{ from: number; tables: { num_buckets: number; max_distance: number; bidirectional: boolean; buckets: number[] }[] }>(`${hfDir('t5')}/buckets.json`);
    for (const t of tables) {
      const got = t.buckets.map((_, i) => relativePositionBucket(from + i, t.bidirectional, t.num_buckets, t.max_distance));
      expect(got, `${t.num_buckets} buckets, max distance ${t.max_distance}, ${t.bidirectional ? 'bidirectional' : 'causal'}`).toEqual(t.buckets);
    }
  });
  test('scale_decoder_outputs (transformers 5 configs) overrides the tie_word_embeddings default', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-t5-'));
    const config = JSON.parse(await readFile(join(hfDir(V11), 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, scale_decoder_outputs: true }));
    await copyFile(join(hfDir(V11), 'model.safetensors'), join(dir, 'model.safetensors'));
    const ref = await loadRef(V11);
    const model = await AutoModelForSeq2SeqLM.fromPretrained(dir);
    const out = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, decoderInputIds: ref['decoder_input_ids']! });
    await expectTensorClose(out.logits, ref['logits_scaled']!, 1e-4, 'logits');
  });
  test('the model is an encoder-decoder with tied embeddings and two caches per decoder block', async () => {
    const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5')) as T5ForConditionalGeneration;
    expect(model.isEncoderDecoder).toBe(true);
    expect(model.lm_head.weight).toBe(model.shared.weight);
    expect(model.encoder.embed_tokens).toBe(model.shared);
    expect(model.newCache()).toHaveLength(2 * model.config.num_decoder_layers);
    expect(model.generationConfig).toMatchObject({ decoderStartTokenId: 0, eosTokenId: 1, padTokenId: 0 });
    const v11 = await AutoModelForSeq2SeqLM.fromPretrained(hfDir(V11)) as T5ForConditionalGeneration;
    expect(v11.lm_head.weight).not.toBe(v11.shared.weight);
    expect(v11.newCache()).toHaveLength(6);
  });
});

describe('T5 errors', () => {
  async function folder(patch: Record<string, unknown>): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'attend-t5-'));
    const config = JSON.parse(await readFile(join(hfDir('t5'), 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
    await copyFile(join(hfDir('t5'), 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  test('an unknown feed_forward_proj names the key and the choices', async () => {
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ feed_forward_proj: 'gated-swiglu' })))
      .rejects.toThrow(/config.json: "feed_forward_proj" must be one of relu, gelu, gelu_new, silu, gated-relu, gated-gelu/);
  });
  test('a gated config against a v1.0 checkpoint names the missing and unexpected weights', async () => {
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ feed_forward_proj: 'gated-gelu' }))).rejects.toThrow(/missing weights for encoder.block.0.layer.1.DenseReluDense.wi_0.weight/);
  });
  test('untied embeddings without an lm_head weight', async () => {
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ tie_word_embeddings: false }))).rejects.toThrow(/missing weights for lm_head.weight/);
  });
  test('weights of the wrong shape name the key', async () => {
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ relative_attention_num_buckets: 16 })))
      .rejects.toThrow(/model.safetensors: weight (en|de)coder.block.0.layer.0.SelfAttention.relative_attention_bias.weight has shape \[32, 4\], the config says \[16, 4\]/);
  });
  test('a bad config field names the key', async () => {
    await expect(AutoModelForSeq2SeqLM.fromPretrained(await folder({ d_kv: 16.5 }))).rejects.toThrow(/"d_kv" must be a positive integer/);
  });
  test('bad inputs', async () => {
    const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'));
    const ids = ones([2, 5], { dtype: 'int32' });
    expect(() => model.forward({ inputIds: ids })).toThrow(/T5: pass decoderInputIds, or labels to derive them from/);
    expect(() => model.forward({ inputIds: ids, attentionMask: ones([2, 4]), decoderInputIds: ids })).toThrow(/T5: attentionMask must be \[2, 5\], got \[2, 4\]/);
    expect(() => model.forward({ inputIds: ids, decoderInputIds: ids, decoderAttentionMask: ones([2, 4]) })).toThrow(/T5: decoderAttentionMask must be \[2, 5\], got \[2, 4\]/);
    expect(() => model.forward({ inputIds: ids, decoderInputIds: ones([3, 2], { dtype: 'int32' }) })).toThrow(/decoder batch 3 differs from the encoder's 2/);
    expect(() => model.forward({ inputIds: ids, decoderInputIds: ids, encoderHiddenStates: zeros([2, 5, 8]) })).toThrow(/encoderHiddenStates must be \[batch, time, 64\], got \[2, 5, 8\]/);
    expect(() => model.forward({ inputIds: ids, decoderInputIds: ids, pastKeyValues: model.newCache().slice(1) })).toThrow(/pastKeyValues must hold 4 caches/);
  });
  test('labels without a decoder_start_token_id', async () => {
    const model = await AutoModelForSeq2SeqLM.fromPretrained(await folder({ decoder_start_token_id: null }));
    expect(() => model.forward({ inputIds: ones([1, 3], { dtype: 'int32' }), labels: ones([1, 3], { dtype: 'int32' }) })).toThrow(/no decoder_start_token_id/);
  });
});

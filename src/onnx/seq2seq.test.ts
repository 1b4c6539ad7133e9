// ONNX export of T5 and BART in Optimum's three files, run by ONNX Runtime: encoder states and logits equal ours and
// transformers', decoding over present -> past equals the full pass, and greedy decoding equals our generate.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { generateWithScores } from '../generation/generate.js';
import { listDevices } from '../tensor/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForSeq2SeqLM } from '../models/auto.js';
import type { PreTrainedModel } from '../models/base.js';
import { BartForConditionalGeneration } from '../models/bart.js';
import { T5ForConditionalGeneration } from '../models/t5.js';
import { exportOnnx } from './export.js';
import { seq2seqGraphs } from './seq2seq.js';

const i64 = (t: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(t.flat(), (v) => BigInt(v)), [t.length, t[0]!.length]);
const rows = async (t: Tensor): Promise<number[][]> => (await t.tolist()) as number[][];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

interface Sessions { encoder: ort.InferenceSession; decoder: ort.InferenceSession; withPast: ort.InferenceSession; layers: number }

async function sessions(model: PreTrainedModel): Promise<Sessions> {
  const g = seq2seqGraphs(model);
  const open = async (name: string) => ort.InferenceSession.create(await g[name]!.toBytes());
  const layers = model instanceof T5ForConditionalGeneration ? model.config.num_decoder_layers : (model as BartForConditionalGeneration).config.decoder_layers;
  return { encoder: await open('encoder_model.onnx'), decoder: await open('decoder_model.onnx'), withPast: await open('decoder_with_past_model.onnx'), layers };
}

/** The with-past feeds for the next step: this step's self-attention presents, the first step's cross-attention ones. */
function pastFeeds(s: Sessions, ids: number[][], mask: ort.Tensor, out: ort.InferenceSession.ReturnType, first: ort.InferenceSession.ReturnType): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = { input_ids: i64(ids), encoder_attention_mask: mask };
  for (let i = 0; i < s.layers; i++) {
    for (const kv of ['key', 'value']) {
      feeds[`past_key_values.${i}.decoder.${kv}`] = out[`present.${i}.decoder.${kv}`]!;
      feeds[`past_key_values.${i}.encoder.${kv}`] = first[`present.${i}.encoder.${kv}`]!;
    }
  }
  return feeds;
}

/** [B, T, V] logits, position t of every row, as [B, V]. */
function at(logits: ort.Tensor, t: number): Float32Array[] {
  const [B, T, V] = logits.dims as [number, number, number];
  return Array.from({ length: B }, (_, b) => (logits.data as Float32Array).slice((b * T + t) * V, (b * T + t + 1) * V));
}

/** Greedy decoding over the three files for `steps` tokens: the sequences (start token first) and each step's logits [B, V]. */
async function ortGreedy(s: Sessions, ids: number[][], maskRows: number[][], start: number, steps: number): Promise<{ tokens: number[][]; scores: Float32Array[][] }> {
  const mask = i64(maskRows);
  const enc = await s.encoder.run({ input_ids: i64(ids), attention_mask: mask });
  const tokens = ids.map(() => [start]);
  const first = await s.decoder.run({ input_ids: i64(tokens), encoder_attention_mask: mask, encoder_hidden_states: enc['last_hidden_state']! });
  let out = first;
  const scores: Float32Array[][] = [];
  for (let step = 0; step < steps; step++) {
    const last = at(out['logits']!, out['logits']!.dims[1]! - 1);
    scores.push(last);
    const next = last.map((l) => l.reduce((best, v, j) => (v > l[best]! ? j : best), 0));
    next.forEach((t, b) => tokens[b]!.push(t));
    if (step < steps - 1) out = await s.withPast.run(pastFeeds(s, next.map((t) => [t]), mask, out, first));
  }
  return { tokens, scores };
}

const FIXTURES = [
  { name: 't5', note: 'relu FFN, tied and rescaled head, row 1 right-padded' },
  { name: 't5/v1_1', note: 'gated-gelu, untied head, max_distance 12 over 20 encoder / 15 decoder positions' },
  { name: 'bart', note: 'positions offset by 2, post-norm, final_logits_bias, row 1 right-padded' },
];

for (const device of listDevices()) {
  describe(`ONNX export of encoder-decoders from ${device}`, () => {
    for (const { name, note } of FIXTURES) {
      test(`${name} (${note}): encoder states and logits equal ours and transformers' within 1e-4; past steps equal the full pass; greedy equals our generate`, async () => {
        const ref = await loadRef(name, device);
        const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir(name), { device });
        const ours = noGrad(() => model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, decoderInputIds: ref['decoder_input_ids']! }));
        const s = await sessions(model);
        const ids = await rows(ref['input_ids']!), mask = i64(await rows(ref['attention_mask']!)), dec = await rows(ref['decoder_input_ids']!);
        const enc = (await s.encoder.run({ input_ids: i64(ids), attention_mask: mask }))['last_hidden_state']!;
        expect(maxAbsDiff(enc.data as Float32Array, await ours.encoderLastHiddenState!.data())).toBeLessThan(1e-4);
        expect(maxAbsDiff(enc.data as Float32Array, await ref['encoder_last_hidden_state']!.data())).toBeLessThan(1e-4);
        // The whole decoder sequence at once.
        const full = await s.decoder.run({ input_ids: i64(dec), encoder_attention_mask: mask, encoder_hidden_states: enc });
        expect(full['logits']!.dims).toEqual(ours.logits.shape);
        expect(maxAbsDiff(full['logits']!.data as Float32Array, await ours.logits.data())).toBeLessThan(1e-4);
        expect(maxAbsDiff(full['logits']!.data as Float32Array, await ref['logits']!.data())).toBeLessThan(1e-4);
        // Three tokens through decoder_model, then one at a time through decoder_with_past_model.
        const first = await s.decoder.run({ input_ids: i64(dec.map((r) => r.slice(0, 3))), encoder_attention_mask: mask, encoder_hidden_states: enc });
        const [B, T, V] = ours.logits.shape as [number, number, number];
        const stepped = new Float32Array(B * T * V);
        const put = (logits: ort.Tensor, t0: number): void => {
          const n = logits.dims[1]!;
          for (let t = 0; t < n; t++) at(logits, t).forEach((l, b) => stepped.set(l, (b * T + t0 + t) * V));
        };
        put(first['logits']!, 0);
        let out = first;
        for (let t = 3; t < T; t++) {
          out = await s.withPast.run(pastFeeds(s, dec.map((r) => [r[t]!]), mask, out, first));
          put(out['logits']!, t);
        }
        expect(maxAbsDiff(stepped, await ours.logits.data())).toBeLessThan(1e-4);

        // Greedy decoding over the three files equals our generate.
        const steps = 10;
        // No end-of-sequence token: exactly `steps` argmax steps on both sides, the padded row included.
        const gen = await generateWithScores(model, ref['input_ids']!, { attentionMask: ref['attention_mask']!, maxNewTokens: steps, eosTokenId: [] });
        const start = model instanceof T5ForConditionalGeneration ? model.config.decoder_start_token_id! : (model as BartForConditionalGeneration).config.decoder_start_token_id;
        const got = await ortGreedy(s, ids, await rows(ref['attention_mask']!), start, steps);
        expect(got.tokens).toEqual(await rows(gen.sequences));
        got.scores.forEach((perRow, t) => {
          perRow.forEach((l, b) => expect(maxAbsDiff(l, gen.scores[t]!.subarray(b * V, (b + 1) * V)), `step ${t} row ${b}`).toBeLessThan(1e-4));
        });
      });
    }
  });
}

describe('ONNX export of encoder-decoders: the files and bad cases', () => {
  test('exportOnnx writes three files with Optimum\'s names and dynamic axes; withPast false leaves out the third', async () => {
    const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('bart'));
    const dir = await mkdtemp(join(tmpdir(), 'attend-onnx-'));
    const written = await exportOnnx(model, dir);
    expect((await readdir(dir)).sort()).toEqual(['decoder_model.onnx', 'decoder_with_past_model.onnx', 'encoder_model.onnx']);
    const open = (f: string) => ort.InferenceSession.create(join(dir, f));
    const enc = await open('encoder_model.onnx'), dec = await open('decoder_model.onnx'), past = await open('decoder_with_past_model.onnx');
    expect([enc.inputNames, enc.outputNames]).toEqual([['input_ids', 'attention_mask'], ['last_hidden_state']]);
    const kv = (prefix: string, parts: string[]) => [0, 1].flatMap((i) => parts.flatMap((p) => [`${prefix}.${i}.${p}.key`, `${prefix}.${i}.${p}.value`]));
    expect(dec.inputNames).toEqual(['input_ids', 'encoder_attention_mask', 'encoder_hidden_states']);
    expect(dec.outputNames).toEqual(['logits', ...kv('present', ['decoder', 'encoder'])]);
    expect(past.inputNames).toEqual(['input_ids', 'encoder_attention_mask', ...kv('past_key_values', ['decoder', 'encoder'])]);
    expect(past.outputNames).toEqual(['logits', ...kv('present', ['decoder'])]);
    const shape = (s: ort.InferenceSession, n: string) => s.inputMetadata.concat(s.outputMetadata).map((m) => (m.name === n && m.isTensor ? m.shape : null)).find((x) => x);
    expect(shape(past, 'past_key_values.1.encoder.value')).toEqual(['batch_size', 4, 'encoder_sequence_length_out', 16]);
    expect(shape(past, 'present.0.decoder.key')).toEqual(['batch_size', 4, 'past_decoder_sequence_length + decoder_sequence_length', 16]);
    expect([written.path, written.bytes > 0, written.outputs.includes('present.1.encoder.value')]).toEqual([dir, true, true]);
    expect(Object.keys(seq2seqGraphs(model, { withPast: false }))).toEqual(['encoder_model.onnx', 'decoder_model.onnx']);
    await rm(dir, { recursive: true });
  });

  test('a quantized layer names its module; a model of another kind lists the supported ones', async () => {
    const model = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'));
    const { quantize } = await import('../quant/quant-linear.js');
    await quantize(model, 'q8_0');
    expect(() => seq2seqGraphs(model)).toThrow(/unsupported op in module encoder\.block\.0\.layer\.0\.SelfAttention\.q: a QuantLinear where the exporter expects a Linear/);
    const { Linear } = await import('../nn/linear.js');
    expect(() => seq2seqGraphs(new Linear(2, 2))).toThrow(/model Linear is not an encoder-decoder \(supported: T5ForConditionalGeneration, BartForConditionalGeneration\)/);
  });
});

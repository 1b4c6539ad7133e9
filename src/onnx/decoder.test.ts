// ONNX export of the decoder-only models, run by ONNX Runtime: logits equal ours (and transformers'), greedy decoding over the past equals our generate.

import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import type { PreTrainedModel } from '../models/base.js';
import { exportOnnx, toOnnx } from './export.js';

const i64 = (rows: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), (v) => BigInt(v)), [rows.length, rows[0]!.length]);
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** The kv heads and head size of a decoder's cache. */
function kvShape(model: PreTrainedModel): [number, number] {
  const c = model.config as Record<string, number | undefined>;
  if (c['n_head'] !== undefined) return [c['n_head'], c['n_embd']! / c['n_head']];
  return [c['num_key_value_heads']!, c['head_dim']!];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, keep: (i: number) => boolean = () => true): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) if (keep(i)) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** HF's positions for a padded batch: real tokens count 0, 1, ...; padding gets 1 (it is masked anyway). */
const positions = (mask: number[][]): number[][] => mask.map((row) => {
  let c = -1;
  return row.map((m) => (m ? ++c : 1));
});

/**
 * Greedy decoding over the exported decoder with past: each step feeds present.* back as past_key_values.*.
 * Rows may be left-padded (mask 0); returns every row's tokens, padding included.
 */
async function ortGreedy(session: ort.InferenceSession, layers: number, nKv: number, hs: number, prompts: number[][], masks: number[][], steps: number): Promise<number[][]> {
  const B = prompts.length, mask = masks.map((r) => [...r]), tokens = prompts.map((r) => [...r]);
  let feeds: Record<string, ort.Tensor> = { input_ids: i64(prompts), attention_mask: i64(mask), position_ids: i64(positions(mask)) };
  for (let i = 0; i < layers; i++) {
    feeds[`past_key_values.${i}.key`] = new ort.Tensor('float32', new Float32Array(0), [B, nKv, 0, hs]);
    feeds[`past_key_values.${i}.value`] = new ort.Tensor('float32', new Float32Array(0), [B, nKv, 0, hs]);
  }
  for (let s = 0; s < steps; s++) {
    const out = await session.run(feeds);
    const logits = out['logits']!, [, T, V] = logits.dims as [number, number, number];
    const next = tokens.map((row, b) => {
      const last = (logits.data as Float32Array).subarray((b * T + T - 1) * V, (b * T + T) * V);
      let best = 0;
      for (let v = 1; v < V; v++) if (last[v]! > last[best]!) best = v;
      row.push(best);
      mask[b]!.push(1);
      return best;
    });
    const pos = positions(mask).map((r) => [r[r.length - 1]!]);
    feeds = { input_ids: i64(next.map((t) => [t])), attention_mask: i64(mask), position_ids: i64(pos) };
    for (let i = 0; i < layers; i++) {
      feeds[`past_key_values.${i}.key`] = out[`present.${i}.key`]!;
      feeds[`past_key_values.${i}.value`] = out[`present.${i}.value`]!;
    }
  }
  return tokens;
}

/** Each fixture model loaded once per device (the tests below only read them). */
const loaded = new Map<string, Promise<PreTrainedModel>>();
function load(name: string, device?: string): Promise<PreTrainedModel> {
  const key = `${name}@${device ?? ''}`;
  if (!loaded.has(key)) loaded.set(key, AutoModelForCausalLM.fromPretrained(hfDir(name), { device }));
  return loaded.get(key)!;
}

const FIXTURES = [
  { name: 'gpt2', layers: 2 },
  { name: 'llama', layers: 2 },
  { name: 'mistral', layers: 2 }, // sliding window 8: shorter than the 20-token rows and the 27-token generation
  { name: 'qwen2', layers: 2 }, // q/k/v biases, tied head
  { name: 'gemma', layers: 2 }, // multi-query, (1 + w) RMSNorm, scaled embeddings, GeGLU
];

for (const device of listDevices()) {
  describe(`ONNX export of decoders from ${device}`, () => {
    for (const { name, layers } of FIXTURES) {
      test(`${name}: ONNX Runtime's logits equal ours and transformers' within 1e-4 (a left-padded row included)`, async () => {
        const ref = await loadRef(name, device);
        const model = await load(name, device);
        const ids = ref['input_ids']!, mask = ref['attention_mask']!;
        const [B, T] = ids.shape as [number, number];
        // Positions 0..T-1 on every row, as the fixtures' reference (and our default) use.
        const ours = await model.forward({ inputIds: ids.int(), attentionMask: mask }).logits.data();
        const session = await ort.InferenceSession.create(await toOnnx(model));
        const idRows = (await ids.tolist()) as number[][], maskRows = (await mask.tolist()) as number[][];
        const out = await session.run({ input_ids: i64(idRows), attention_mask: i64(maskRows), position_ids: i64(idRows.map(() => range(0, T))) });
        const logits = out['logits']!;
        expect(logits.dims).toEqual([B, T, ours.length / (B * T)]);
        const V = ours.length / (B * T);
        // Padded query positions predict nothing (their rows are garbage in every implementation): compared where mask = 1.
        const keep = (i: number): boolean => maskRows[Math.floor(i / (T * V))]![Math.floor(i / V) % T] === 1;
        expect(maxAbsDiff(logits.data as Float32Array, ours, keep)).toBeLessThan(1e-4);
        expect(maxAbsDiff(logits.data as Float32Array, await ref['logits']!.data(), keep)).toBeLessThan(1e-4);
      });

      test(`${name}: greedy decoding over present -> past equals our generate for 20 tokens`, async () => {
        const ref = await loadRef(name, device);
        const model = await load(name, device);
        const prompt = ((await ref['gen.input_ids']!.tolist()) as number[][])[0]!;
        // No end-of-sequence token: exactly 20 argmax steps on both sides.
        const ours = ((await (await model.generate(tensor([prompt], { dtype: 'int32', device }), { maxNewTokens: 20, eosTokenId: [] })).tolist()) as number[][])[0]!;
        expect(ours.length).toBe(prompt.length + 20);
        const session = await ort.InferenceSession.create(await toOnnx(model, { withPast: true }));
        const [nKv, hs] = kvShape(model);
        expect((await ortGreedy(session, layers, nKv, hs, [prompt], [prompt.map(() => 1)], 20))[0]).toEqual(ours);
      });
    }
  });
}

describe('ONNX export: a left-padded batch through the past', () => {
  for (const { name, layers } of FIXTURES) {
    test(`${name}: two rows, one left-padded by 3, decode as our generate with attentionMask`, async () => {
      const model = await load(name);
      const prompts = [[11, 57, 203, 9, 77, 140], [0, 0, 0, 31, 8, 250]], masks = [[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]];
      const opts = { maxNewTokens: 12, eosTokenId: [], attentionMask: tensor(masks, { dtype: 'int32' }) };
      const ours = (await (await model.generate(tensor(prompts, { dtype: 'int32' }), opts)).tolist()) as number[][];
      const session = await ort.InferenceSession.create(await toOnnx(model, { withPast: true }));
      const [nKv, hs] = kvShape(model);
      expect(await ortGreedy(session, layers, nKv, hs, prompts, masks, 12)).toEqual(ours);
    });
  }
});

describe('ONNX export: the file and bad cases', () => {
  test('inputs and outputs carry HF Optimum names and dynamic axes', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'));
    const session = await ort.InferenceSession.create(await toOnnx(model, { withPast: true }));
    expect(session.inputNames).toEqual(['input_ids', 'attention_mask', 'position_ids', 'past_key_values.0.key', 'past_key_values.0.value', 'past_key_values.1.key', 'past_key_values.1.value']);
    expect(session.outputNames).toEqual(['present.0.key', 'present.0.value', 'present.1.key', 'present.1.value', 'logits']);
    const meta = session.inputMetadata.find((m) => m.name === 'past_key_values.0.key');
    expect(meta && meta.isTensor ? meta.shape : null).toEqual(['batch_size', 2, 'past_sequence_length', 16]);
  });

  test('fixed axes: batch_size 1 is a number in the file', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const session = await ort.InferenceSession.create(await toOnnx(model, { dynamicAxes: { batch_size: 1 } }));
    const meta = session.inputMetadata.find((m) => m.name === 'input_ids');
    expect(meta && meta.isTensor ? meta.shape : null).toEqual([1, 'sequence_length']);
    await expect(toOnnx(model, { dynamicAxes: { batch: 1 } })).rejects.toThrow(/dynamicAxes names an unknown axis 'batch'/);
  });

  test('external data: the weights in <file>_data, the graph file small; ONNX Runtime reads both', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'));
    const dir = await mkdtemp(join(tmpdir(), 'attend-onnx-'));
    const inline = await exportOnnx(model, join(dir, 'inline.onnx'));
    const ext = await exportOnnx(model, join(dir, 'model.onnx'), { externalData: true });
    expect(ext.dataPath).toBe(join(dir, 'model.onnx_data'));
    expect((await stat(ext.dataPath!)).size).toBe(ext.dataBytes);
    expect(ext.dataBytes).toBeGreaterThanOrEqual(4 * 2 * 512 * 64); // the embedding and head at least
    expect(ext.bytes).toBeLessThan(inline.bytes - ext.dataBytes! + 64 * 20);
    const ids = [[3, 99, 250, 7]], feeds = () => ({ input_ids: i64(ids), attention_mask: i64([[1, 1, 1, 1]]), position_ids: i64([[0, 1, 2, 3]]) });
    const a = (await (await ort.InferenceSession.create(join(dir, 'model.onnx'))).run(feeds()))['logits']!.data as Float32Array;
    const b = (await (await ort.InferenceSession.create(join(dir, 'inline.onnx'))).run(feeds()))['logits']!.data as Float32Array;
    const ours = await model.forward({ inputIds: tensor(ids, { dtype: 'int32' }) }).logits.data();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(maxAbsDiff(a, ours)).toBeLessThan(1e-4);
  });

  test('opsets 18 and 21 (ReduceMean takes its axes as an input from 18) give opset 17\'s logits', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gemma'));
    const ids = [[3, 99, 250, 7]], feeds = () => ({ input_ids: i64(ids), attention_mask: i64([[1, 1, 1, 1]]), position_ids: i64([[0, 1, 2, 3]]) });
    const logits = async (opset: number) => Array.from((await (await ort.InferenceSession.create(await toOnnx(model, { opset }))).run(feeds()))['logits']!.data as Float32Array);
    const base = await logits(17);
    expect(await logits(18)).toEqual(base);
    expect(await logits(21)).toEqual(base);
  });

  test('an unsupported model lists the supported ones', async () => {
    const { Linear } = await import('../nn/linear.js');
    await expect(toOnnx(new Linear(2, 2))).rejects.toThrow(/ONNX export: model Linear is not supported \(supported: GPT2LMHeadModel; LlamaForCausalLM/);
  });

  test('an unsupported module names itself and its path', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'));
    const { quantize } = await import('../quant/quant-linear.js');
    await quantize(model, 'q8_0');
    await expect(toOnnx(model)).rejects.toThrow(/ONNX export: unsupported op in module model\.layers\.0\.self_attn\.q_proj: a QuantLinear where the exporter expects a Linear/);
  });

  test('a bad opset names the range', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    await expect(toOnnx(model, { opset: 13 })).rejects.toThrow(/opset 13 is not supported \(17 to 21/);
  });
});

// QuantLinear / QuantEmbedding against float32 layers on the dequantized weights, and quantize(model) on the LLaMA fixture.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { linear } from '../autograd/ops/matmul.js';
import { embedding } from '../autograd/ops/indexing.js';
import { listDevices } from '../tensor/backend.js';
import { canReadSync, expectOpError } from '../test-util/devices.js';
import { randn, tensor } from '../tensor/create.js';
import { Generator } from '../tensor/random.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { dequantizeValues, quantizeValues, type QuantType } from './formats.js';
import { QuantEmbedding, QuantLinear, modelBytes, quantize } from './quant-linear.js';

const TYPES: QuantType[] = ['q8_0', 'q4_0', 'nf4'];
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

for (const device of listDevices()) {
  describe(`QuantLinear on ${device}`, () => {
    test.each(TYPES)('%s: y = x W^T + b over 3 row panels equals linear() on the dequantized W; gradients reach x', async (type) => {
      // in = 2048 -> 32 rows per panel; out = 80 -> panels of 32, 32, 16.
      const [inF, outF] = [2048, 80];
      const w = new Float32Array(new Generator(1).normal(outF * inF));
      const q = quantizeValues(w, [outF, inF], type);
      const bias = randn([outF], { device });
      const layer = new QuantLinear(q, bias);
      expect(layer.panelRows).toBe(32);
      const x = randn([2, 3, inF], { device, requiresGrad: true });
      const y = layer.forward(x);
      expect(y.shape).toEqual([2, 3, outF]);
      const dense = tensor(dequantizeValues(q), { shape: [outF, inF], device });
      const x2 = x.detach().requiresGrad_();
      const want = linear(x2, dense, bias);
      expect(maxDiff(await y.data(), await want.data())).toBeLessThan(1e-4);
      y.sum().backward();
      want.sum().backward();
      expect(maxDiff(await x.grad!.data(), await x2.grad!.data())).toBeLessThan(1e-4);
    });
    test('QuantEmbedding looks up dequantized rows', async () => {
      const table = new Float32Array(new Generator(2).normal(50 * 64));
      const q = quantizeValues(table, [50, 64], 'q4_0');
      const ids = tensor([[3, 0, 49], [7, 7, 1]], { device });
      const want = embedding(ids, tensor(dequantizeValues(q), { shape: [50, 64], device }));
      const got = new QuantEmbedding(q).forward(ids);
      expect(got.shape).toEqual([2, 3, 64]);
      expect(maxDiff(await got.data(), await want.data())).toBe(0);
      // On webgpu the table is looked up on the device: the index error comes from that lookup, at the next read.
      await expectOpError(device, () => new QuantEmbedding(q).forward(tensor([50], { device })), canReadSync(device) ? 'QuantEmbedding: index 50 is out of range for 50 embeddings' : /index 50 is out of range for a dimension of size 50/);
    });
  });
}

describe('quantize(model)', () => {
  test.each(['q8_0', 'q4_0', 'nf4'] as const)('%s on the LLaMA fixture: every Linear swapped, bytes reported, logits near the float32 ones', async (type) => {
    const ref = await loadRef('llama');
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('llama'));
    const before = await noGrad(() => model.forward({ inputIds: ref['input_ids']! }).logits).data();
    const report = await quantize(model, type);
    expect(report.quantized).toHaveLength(2 * 7 + 1);
    expect(report.quantized).toContain('model.layers.1.mlp.down_proj');
    expect(report.quantized).toContain('lm_head');
    expect(report.skipped).toEqual([]);
    expect(report.bytesBefore).toBe(607520);
    expect(report.bytesAfter).toBe(modelBytes(model));
    expect(model.modules().filter((m) => m instanceof Linear)).toHaveLength(0);
    const after = await noGrad(() => model.forward({ inputIds: ref['input_ids']! }).logits).data();
    const diff = maxDiff(after, before);
    expect(diff).toBeGreaterThan(0);
    expect(diff).toBeLessThan(type === 'q8_0' ? 1e-2 : 0.2);
    console.log(`quantize ${type}: ${report.bytesBefore} -> ${report.bytesAfter} bytes, max |logit difference| ${diff.toExponential(2)}`);
  });
  test('embeddings: true quantizes the tables too; a tied lm_head shares the blocks, or is kept with a kept table', async () => {
    class Tied extends Module {
      emb = new Embedding(40, 64);
      head = new Linear(64, 40, { bias: false });
      odd = new Linear(20, 8);
      constructor() {
        super();
        this.head.weight = this.emb.weight;
      }
    }
    const kept = new Tied();
    const r1 = await quantize(kept, 'q8_0');
    expect(r1.quantized).toEqual([]);
    expect(r1.skipped).toEqual([
      { name: 'head', reason: 'its weight is tied to an embedding that stays unquantized' },
      { name: 'odd', reason: 'rows of 20 values are not whole blocks of 32' },
    ]);
    const both = new Tied();
    const r2 = await quantize(both, 'q8_0', { embeddings: true });
    expect(r2.quantized).toEqual(['emb', 'head']);
    expect(both.emb).toBeInstanceOf(QuantEmbedding);
    expect((both.head as unknown as QuantLinear).weight).toBe((both.emb as unknown as QuantEmbedding).weight);
    // 40 x 64 float32 (10,240 bytes) once -> 40 x 2 blocks of 34 bytes once; the odd Linear stays (20 x 8 + 8 floats).
    expect(r2.bytesBefore).toBe(40 * 64 * 4 + (20 * 8 + 8) * 4);
    expect(r2.bytesAfter).toBe(40 * 2 * 34 + (20 * 8 + 8) * 4);
  });
  test('an unknown type is refused before anything changes', async () => {
    const m = new Linear(32, 4);
    await expect(quantize(m, 'q3_k' as QuantType)).rejects.toThrow('quantize: unknown type "q3_k" (known: q8_0, q4_0, nf4)');
  });
});

// Whisper against Hugging Face transformers: logits, encoder states, gradients and one AdamW step on every backend;
// the KV cache against the full forward; sinusoidal positions; bad inputs.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { cat, slice } from '../autograd/ops/movement.js';
import { loadSafetensors } from '../io/safetensors.js';
import { AdamW } from '../optim/adamw.js';
import { listDevices } from '../tensor/backend.js';
import { randn, tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForSpeechSeq2Seq } from './auto.js';
import { ConfigReader } from './base.js';
import { sinusoids, WhisperForConditionalGeneration, whisperConfig } from './whisper.js';

/**
 * One AdamW step moves each element by lr * g / (|g| + eps) (first step, bias-corrected), which for a gradient near eps
 * (1e-8) magnifies float32 summation differences in g: the encoder's k_proj gradients hold a few such elements (a
 * key projection's gradient cancels over the keys, since softmax ignores a per-query shift). Each element is held to
 * 1e-5 plus what a gradient error of 2e-6 of the tensor's largest gradient (ours: 1.5e-6 at most) allows through
 * that slope. Returns how many elements needed more than 1e-5 (7 of 235,136 on cpu, 10 on wasm).
 */
async function expectAdamWClose(got: ArrayLike<number>, ref: Record<string, Tensor>, name: string): Promise<number> {
  const want = await ref[`adamw.${name}`]!.data();
  const gradRef = ref[`grad.${name}`];
  const g = gradRef ? await gradRef.data() : new Float32Array(want.length);
  const gradTol = 2e-6 * Math.max(0, ...Array.from(g, Math.abs));
  let relaxed = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    const slope = (1e-2 * 1e-8) / (Math.abs(g[i]!) + 1e-8) ** 2;
    if (err > 1e-5 + slope * gradTol) expect.fail(`adamw.${name} element ${i}: got ${got[i]}, expected ${want[i]} (gradient ${g[i]})`);
    if (err > 1e-5) relaxed++;
  }
  return relaxed;
}

const load = (device: string) => AutoModelForSpeechSeq2Seq.fromPretrained(hfDir('whisper'), { device });

for (const device of listDevices()) {
  describe(`Whisper on ${device}`, () => {
    test('logits and encoder states match transformers', async () => {
      const ref = await loadRef('whisper', device);
      const model = await load(device);
      expect(model.isEncoderDecoder).toBe(true);
      const out = model.forward({ inputFeatures: ref['input_features']!, decoderInputIds: ref['decoder_input_ids']!.int() });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.encoderLastHiddenState!, ref['encoder_last_hidden_state']!, 1e-4, 'encoder_last_hidden_state');
      expect(out.lastHiddenState!.shape).toEqual([1, 5, 64]);
    });

    test('gradients of sum(logits * probe) match for every parameter, and so does one AdamW step on them', async () => {
      const ref = await loadRef('whisper', device);
      const model = await load(device);
      expect(Object.keys(ref).filter((k) => k.startsWith('grad.')).length).toBe(model.namedParameters().length - 1); // frozen encoder positions
      const logits = model.forward({ inputFeatures: ref['input_features']!, decoderInputIds: ref['decoder_input_ids']!.int() }).logits;
      await expectGradsMatch(model, logits, ref);
      new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }).step();
      let relaxed = 0;
      for (const [name, p] of model.namedParameters()) relaxed += await expectAdamWClose(await p.data(), ref, name);
      expect(relaxed).toBeLessThan(20); // a handful of near-zero gradients among ~90,000 elements
    });

    test('decoding with the KV cache, one token at a time, gives the full forward pass logits', async () => {
      const ref = await loadRef('whisper', device);
      const model = await load(device);
      const ids = ref['decoder_input_ids']!.int();
      const encoded = model.forward({ inputFeatures: ref['input_features']!, decoderInputIds: slice(ids, 1, 0, 1) }).encoderLastHiddenState!;
      const caches = model.newCache();
      const steps = [0, 1, 2, 3, 4].map((t) => model.forward({ encoderHiddenStates: encoded, decoderInputIds: slice(ids, 1, t, t + 1), pastKeyValues: caches }).logits);
      await expectTensorClose(cat(steps, 1), ref['logits']!, 1e-4, 'cached logits');
    });
  });
}

describe.each(listDevices())('Whisper in half precision on %s', (device) => {
  test.each(['float16', 'bfloat16'] as const)('%s: float32 features are read in the model dtype; logits close to transformers\' float32', async (dtype) => {
    const ref = await loadRef('whisper', device);
    const model = await AutoModelForSpeechSeq2Seq.fromPretrained(hfDir('whisper'), { device, dtype });
    const logits = model.forward({ inputFeatures: ref['input_features']!, decoderInputIds: ref['decoder_input_ids']!.int() }).logits;
    expect(logits.dtype).toBe(dtype);
    const a = await logits.data(), b = await ref['logits']!.data();
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    // Rounding of 2^-11 (float16) or 2^-8 (bfloat16) relative through 2 + 2 layers; logits are at most 0.54.
    expect(maxDiff).toBeLessThan(dtype === 'float16' ? 2e-3 : 2e-2); // measured 3.8e-4, 3.7e-3 on cpu
    expect(maxDiff).toBeGreaterThan(0);
  });
});

describe('Whisper: construction, loss and bad input', () => {
  test('encoder positions built from the config equal the checkpoint sinusoids', async () => {
    const want = (await loadSafetensors(`${hfDir('whisper')}/model.safetensors`))['model.encoder.embed_positions.weight']!;
    await expectTensorClose(sinusoids(50, 64), want, 1e-6, 'sinusoids');
  });

  test('labels give the decoder inputs (shifted right) and a cross-entropy loss', async () => {
    const ref = await loadRef('whisper');
    const model = await load('cpu');
    const labels = tensor([[7, 8, 9, -100, 11]]);
    const viaLabels = model.forward({ inputFeatures: ref['input_features']!, labels });
    const shifted = tensor([[1, 7, 8, 9, 0]]);
    const direct = model.forward({ inputFeatures: ref['input_features']!, decoderInputIds: shifted });
    await expectTensorClose(viaLabels.logits, direct.logits, 1e-6, 'logits from labels');
    // Positions 0-2 and 4 count; the -100 is ignored.
    const logp = (await direct.logits.data()) as Float32Array;
    let want = 0;
    [[0, 7], [1, 8], [2, 9], [4, 11]].forEach(([t, y]) => {
      const row = Array.from(logp.subarray(t! * 512, (t! + 1) * 512));
      const m = Math.max(...row);
      want += m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) - row[y!]!;
    });
    expect(await viaLabels.loss!.item()).toBeCloseTo(want / 4, 5);
  });

  test('bad inputs are named', async () => {
    const model = await load('cpu');
    const dec = tensor([[1, 2]]);
    expect(() => model.forward({ decoderInputIds: dec })).toThrow(/Whisper: forward needs "inputFeatures"/);
    expect(() => model.forward({ inputFeatures: randn([1, 40, 100]), decoderInputIds: dec })).toThrow(/inputFeatures must be \[batch, 80 mel bins, frames\].*got \[1, 40, 100\]/);
    expect(() => model.forward({ inputFeatures: randn([1, 80, 102]), decoderInputIds: dec })).toThrow(/102 frames: audio longer than the model accepts \(max_source_positions\*2 = 100 frames\)/);
    expect(() => model.forward({ inputFeatures: randn([2, 80, 100]), decoderInputIds: dec })).toThrow(/decoder batch 1 differs from the encoder's 2/);
    expect(() => model.forward({ inputFeatures: randn([1, 80, 100]), decoderInputIds: tensor([Array.from({ length: 65 }, () => 1)]) })).toThrow(/65 decoder positions exceed max_target_positions = 64/);
    const cfg = { model_type: 'whisper', vocab_size: 512, d_model: 64, encoder_attention_heads: 5 };
    expect(() => whisperConfig(new ConfigReader(cfg, 'x/config.json'))).toThrow(/x\/config.json: "d_model" \(64\) must be divisible by "encoder_attention_heads" \(5\)/);
    // Shorter audio (fewer frames) runs: the encoder takes the first positions.
    const short = new WhisperForConditionalGeneration(whisperConfig(new ConfigReader({ vocab_size: 32, d_model: 8, encoder_attention_heads: 2, decoder_attention_heads: 2, encoder_layers: 1, decoder_layers: 1, encoder_ffn_dim: 16, decoder_ffn_dim: 16, max_source_positions: 10, max_target_positions: 8, pad_token_id: 0, decoder_start_token_id: 1 }, 'c')));
    expect(short.forward({ inputFeatures: randn([1, 80, 7]), decoderInputIds: tensor([[1]]) }).encoderLastHiddenState!.shape).toEqual([1, 4, 8]);
  });
});

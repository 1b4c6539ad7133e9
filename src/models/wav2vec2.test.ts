// wav2vec2 (Wav2Vec2ForCTC) against Hugging Face transformers: logits, hidden states, gradients (weight norm's g and v
// included), an AdamW step and the CTC loss on every backend; old weight-norm key names; frame lengths; bad input.

import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { cat } from '../autograd/ops/movement.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { AdamW } from '../optim/adamw.js';
import { loadAudio } from '../processors/audio.js';
import { Wav2Vec2FeatureExtractor } from '../processors/wav2vec2.js';
import { listDevices } from '../tensor/backend.js';
import { ones, randn, tensor, zeros } from '../tensor/create.js';
import { manualSeed } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { expectGradsMatch, expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForCTC } from './auto.js';
import { ConfigReader } from './base.js';
import { Wav2Vec2ForCTC, wav2vec2Config } from './wav2vec2.js';

/**
 * The attention key biases shift every score of a query row by the same amount, so softmax cancels them: their true
 * gradient is zero and the reference holds float32 noise there (~1e-9), which no bound relative to itself can compare
 * (as in bert.test.ts). They are checked to be zero next to the other gradients instead; AdamW turns that noise into a
 * step of about lr * |g| / (|g| + eps) of either sign, so their AdamW values are not compared either.
 */
const isKeyBias = (k: string): boolean => k.endsWith('.attention.k_proj.bias');

async function expectW2vGradsMatch(model: Wav2Vec2ForCTC, logits: Tensor, ref: Record<string, Tensor>): Promise<void> {
  await expectGradsMatch(model, logits, Object.fromEntries(Object.entries(ref).filter(([k]) => !isKeyBias(k))));
  const largest = Math.max(...(await Promise.all(model.parameters().map(async (p) => Math.max(...Array.from(await p.grad!.data(), Math.abs))))));
  const keyBiases = model.namedParameters().filter(([k]) => isKeyBias(k));
  expect(keyBiases.length).toBe(model.config.num_hidden_layers);
  for (const [name, p] of keyBiases) expectClose(await p.grad!.data(), new Array<number>(p.numel()).fill(0), 1e-6 * largest, 0, `gradient of ${name}`);
}

let haveEspeak = true;
try {
  execFileSync('espeak-ng', ['--version'], { stdio: 'ignore' });
} catch {
  haveEspeak = false;
  console.warn('wav2vec2.test: espeak-ng is not installed: skipping the speech round trip (apt-get install espeak-ng)');
}

const load = async (device?: string): Promise<Wav2Vec2ForCTC> => (await AutoModelForCTC.fromPretrained(hfDir('wav2vec2'), { device })) as Wav2Vec2ForCTC;

for (const device of listDevices()) {
  describe(`wav2vec2 on ${device}`, () => {
    test('logits and last hidden state match transformers', async () => {
      const ref = await loadRef('wav2vec2', device);
      const model = await load(device);
      const out = model.forward({ inputValues: ref['input_values']! });
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.lastHiddenState!, ref['last_hidden_state']!, 1e-4, 'last_hidden_state');
    });
    test('the CTC loss on ctc_labels matches transformers (blank = pad_token_id, mean over label lengths), and backpropagates', async () => {
      const ref = await loadRef('wav2vec2', device);
      const model = await load(device);
      // Labels size the loss by their values: read on the host, so given on cpu (required on webgpu).
      const out = model.forward({ inputValues: ref['input_values']!, labels: (await loadRef('wav2vec2'))['ctc_labels']! });
      expect(out.loss!.shape).toEqual([]);
      expect(Math.abs((await out.loss!.item()) - (await ref['ctc_loss']!.data())[0]!)).toBeLessThan(1e-4);
      out.loss!.backward();
      const g = await model.lm_head.weight.grad!.data();
      expect(g.every(Number.isFinite) && g.some((v) => v !== 0)).toBe(true);
    });
    test('gradients of sum(logits * probe) match for every parameter (weight norm g and v included), and so does one AdamW step', async () => {
      const ref = await loadRef('wav2vec2', device);
      const model = await load(device);
      const names = model.namedParameters().map(([n]) => n);
      expect(names).toContain('wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0');
      expect(names).toContain('wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original1');
      await expectW2vGradsMatch(model, model.forward({ inputValues: ref['input_values']! }).logits, ref);
      new AdamW(model.parameters(), { lr: 1e-2, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }).step();
      for (const [name, p] of model.namedParameters()) {
        if (!isKeyBias(name)) expectClose(await p.data(), Array.from(await ref[`adamw.${name}`]!.data()), 1e-5, 0, `adamw.${name}`);
      }
    });
  });

  // test/data/hf/wav2vec2-stable (scripts/gen_wav2vec2_fixtures.py): LayerNorm feature encoder with conv bias, pre-norm
  // encoder with a final LayerNorm, an odd positional kernel, and a batch whose second row is padded with a mask.
  describe(`wav2vec2 (do_stable_layer_norm, feat_extract_norm 'layer') on ${device}`, () => {
    test('logits, hidden states, gradients and the CTC loss of a padded batch match the PyTorch reference', async () => {
      const ref = await loadRef('wav2vec2-stable', device);
      const model = (await AutoModelForCTC.fromPretrained(hfDir('wav2vec2-stable'), { device })) as Wav2Vec2ForCTC;
      const inputs = { inputValues: ref['input_values']!, attentionMask: ref['attention_mask']! };
      const out = model.forward(inputs);
      await expectTensorClose(out.logits, ref['logits']!, 1e-4, 'logits');
      await expectTensorClose(out.lastHiddenState!, ref['last_hidden_state']!, 1e-4, 'last_hidden_state');
      await expectW2vGradsMatch(model, out.logits, ref);
      const host = await loadRef('wav2vec2-stable'); // labels and mask for the loss on cpu (required on webgpu)
      const loss = await model.forward({ inputValues: inputs.inputValues, attentionMask: host['attention_mask']!, labels: host['ctc_labels']! }).loss!.item();
      expect(Math.abs(loss - (await ref['ctc_loss']!.data())[0]!)).toBeLessThan(1e-4);
    });
    test("the padded row's real frames equal the row run alone, unpadded", async () => {
      const ref = await loadRef('wav2vec2-stable', device);
      const model = (await AutoModelForCTC.fromPretrained(hfDir('wav2vec2-stable'), { device })) as Wav2Vec2ForCTC;
      const logits = model.forward({ inputValues: ref['input_values']!, attentionMask: ref['attention_mask']! }).logits;
      const frames = model.featureLengths([700])[0]!;
      await expectTensorClose(logits.narrow(0, 1, 1).narrow(1, 0, frames), ref['row1_alone_logits']!, 1e-4, 'row 1 padded');
      const alone = model.forward({ inputValues: ref['input_values']!.narrow(0, 1, 1).narrow(1, 0, 700) }).logits;
      await expectTensorClose(alone, ref['row1_alone_logits']!, 1e-4, 'row 1 alone');
    });
  });
}

describe('wav2vec2 frames, masks and loading', () => {
  test('featureLengths follows the conv kernels and strides (HF _get_feat_extract_output_lengths)', async () => {
    const model = await load();
    // kernels 10, 3, 3 and strides 5, 2, 2: 4000 -> 799 -> 399 -> 199
    expect(model.featureLengths([4000, 40, 39, 59, 60, 0])).toEqual([199, 1, 0, 1, 2, 0]);
    expect(Array.from(await model.featureLengths(tensor([4000, 41, 60, 3])).data())).toEqual([199, 1, 2, 0]);
    expect(model.wav2vec2.minSamples).toBe(40);
  });
  test('CTC loss of a batch: -100 padding of the labels anywhere is dropped, as masked_select does; reduction from the config', async () => {
    const ref = await loadRef('wav2vec2');
    const model = await load();
    const x = ref['input_values']!, labels = Array.from(await ref['ctc_labels']!.data());
    const loss = async (l: number[][]): Promise<number> => model.forward({ inputValues: cat(l.map(() => x), 0), labels: tensor(l, { dtype: 'int32' }) }).loss!.item();
    const full = await loss([labels]), short = await loss([labels.slice(0, 5)]);
    const padded = [...labels.slice(0, 2), -100, ...labels.slice(2, 5), -100, -100];
    // 'mean' divides each example's loss by its label length, then averages over the batch.
    expect(await loss([labels, padded])).toBeCloseTo((full + short) / 2, 4);
    const sumModel = new Wav2Vec2ForCTC({ ...model.config, ctc_loss_reduction: 'sum' });
    sumModel.loadStateDict(model.stateDict());
    sumModel.eval();
    const both = await sumModel.forward({ inputValues: cat([x, x], 0), labels: tensor([labels, padded], { dtype: 'int32' }) }).loss!.item();
    expect(both).toBeCloseTo(full * labels.length + short * 5, 2);
    expect(() => model.forward({ inputValues: x, labels: tensor([[1, 40]], { dtype: 'int32' }) })).toThrow(/ctcLoss: target 40 .* out of range \[0, 32\)/);
    expect(() => model.forward({ inputValues: x, labels: tensor([1, 2], { dtype: 'int32' }) })).toThrow(/wav2vec2: labels must be \[1, length\] \(negative = padding\), got \[2\]/);
  });
  test('an all-ones attention mask changes nothing', async () => {
    const ref = await loadRef('wav2vec2');
    const model = await load();
    const x = ref['input_values']!;
    await expectTensorClose(model.forward({ inputValues: x, attentionMask: ones([1, 4000], { dtype: 'int32' }) }).logits, ref['logits']!, 1e-4, 'all-ones mask');
  });
  test.skipIf(!haveEspeak)('speech from espeak-ng: read, resampled to 16 kHz, normalised by the feature extractor, run through the model', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-w2v-'));
    const path = join(dir, 'digits.wav');
    execFileSync('espeak-ng', ['-w', path, 'four two seven']);
    const samples = await loadAudio(path);
    const { inputValues } = new Wav2Vec2FeatureExtractor().call(samples, { samplingRate: 16000 });
    const v = Array.from(await inputValues.data());
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    expect(Math.abs(mean)).toBeLessThan(1e-4);
    expect(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length).toBeCloseTo(1, 3);
    const model = await load();
    const { logits } = model.forward({ inputValues });
    expect(logits.shape).toEqual([1, model.featureLengths([samples.length])[0], 32]);
    expect(Array.from(await logits.data()).every(Number.isFinite)).toBe(true);
  });
  test('a model built from a config trains: the CTC loss of one utterance falls (train mode: dropout, LayerDrop)', async () => {
    manualSeed(0);
    const config = wav2vec2Config(new ConfigReader({
      vocab_size: 6, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 32, conv_dim: [8, 8], conv_kernel: [4, 3],
      conv_stride: [2, 2], num_conv_pos_embeddings: 4, num_conv_pos_embedding_groups: 2, ctc_loss_reduction: 'mean', layerdrop: 0.2,
    }, 'config.json'));
    const model = new Wav2Vec2ForCTC(config).train();
    // The weight norm starts at g = ||v||: the conv weight equals v.
    const wn = model.wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight;
    expectClose(await wn.weight().data(), Array.from(await wn.original1.data()), 1e-6, 1e-5, 'initial weight');
    const inputValues = randn([1, 400]), labels = tensor([[1, 2, 3, 3, 4]], { dtype: 'int32' });
    const opt = new AdamW(model.parameters(), { lr: 3e-3 });
    const losses: number[] = [];
    for (let step = 0; step < 40; step++) {
      const { loss } = model.forward({ inputValues, labels });
      loss!.backward();
      opt.step();
      opt.zeroGrad();
      losses.push(await loss!.item());
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.slice(-5).reduce((a, b) => a + b) / 5).toBeLessThan(0.5 * losses[0]!);
  });
  test('old checkpoints with weight_g / weight_v (and masked_spec_embed) load to the same model', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-w2v-'));
    await copyFile(join(hfDir('wav2vec2'), 'config.json'), join(dir, 'config.json'));
    const tensors = await loadSafetensors(join(hfDir('wav2vec2'), 'model.safetensors'));
    const old = Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k.replace('parametrizations.weight.original0', 'weight_g').replace('parametrizations.weight.original1', 'weight_v'), v]));
    expect(Object.keys(old)).toContain('wav2vec2.encoder.pos_conv_embed.conv.weight_g');
    // SpecAugment's mask vector, present in checkpoints trained with mask_time_prob > 0: not used here, skipped.
    await saveSafetensors(join(dir, 'model.safetensors'), { ...old, 'wav2vec2.masked_spec_embed': randn([64]) });
    const ref = await loadRef('wav2vec2');
    const model = (await AutoModelForCTC.fromPretrained(dir)) as Wav2Vec2ForCTC;
    await expectTensorClose(model.forward({ inputValues: ref['input_values']! }).logits, ref['logits']!, 1e-4, 'logits');
  });
  test('a checkpoint without a weight-norm tensor names the key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-w2v-'));
    await copyFile(join(hfDir('wav2vec2'), 'config.json'), join(dir, 'config.json'));
    const tensors = await loadSafetensors(join(hfDir('wav2vec2'), 'model.safetensors'));
    delete tensors['wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0'];
    await saveSafetensors(join(dir, 'model.safetensors'), tensors);
    await expect(AutoModelForCTC.fromPretrained(dir)).rejects.toThrow(/missing weights for wav2vec2\.encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0/);
  });
  test('bad config fields name the file and key', async () => {
    const config = JSON.parse(await readFile(join(hfDir('wav2vec2'), 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const [patch, message] of [
      [{ conv_kernel: [10, 3] }, /"conv_dim", "conv_kernel" and "conv_stride" must have the same length, got 3, 2 and 3/],
      [{ conv_stride: [5, 0, 2] }, /"conv_stride" must be a non-empty list of positive integers/],
      [{ feat_extract_norm: 'batch' }, /"feat_extract_norm" must be one of group, layer/],
      [{ num_conv_pos_embedding_groups: 5 }, /"hidden_size" \(64\) must be divisible by "num_conv_pos_embedding_groups" \(5\)/],
      [{ add_adapter: true }, /"add_adapter" must be false/],
    ] as const) {
      const dir = await mkdtemp(join(tmpdir(), 'attend-w2v-'));
      await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, ...patch }));
      await copyFile(join(hfDir('wav2vec2'), 'model.safetensors'), join(dir, 'model.safetensors'));
      await expect(AutoModelForCTC.fromPretrained(dir)).rejects.toThrow(message);
    }
  });
  test('bad inputs: too short for the conv stack (naming the minimum), wrong rank, a mask of another shape, no input', async () => {
    const model = await load();
    expect(() => model.forward({ inputValues: zeros([1, 39]) })).toThrow(/wav2vec2: inputValues has 39 samples; the conv feature encoder \(kernels 10, 3, 3, strides 5, 2, 2\) needs at least 40/);
    expect(model.forward({ inputValues: zeros([2, 40]) }).logits.shape).toEqual([2, 1, 32]);
    expect(() => model.forward({ inputValues: zeros([4000]) })).toThrow(/wav2vec2: inputValues must be \[batch, samples\], got \[4000\]/);
    expect(() => model.forward({ inputValues: zeros([1, 1, 4000]) })).toThrow(/must be \[batch, samples\], got \[1, 1, 4000\]/);
    expect(() => model.forward({ inputValues: zeros([1, 4000]), attentionMask: ones([1, 3999]) })).toThrow(/wav2vec2: attentionMask must be \[1, 4000\] like inputValues, got \[1, 3999\]/);
    expect(() => model.forward({ inputIds: zeros([1, 4], { dtype: 'int32' }) })).toThrow(/wav2vec2: forward needs "inputValues"/);
    expect(() => model.forward({ inputValues: zeros([1, 4000], { dtype: 'int32' }) })).toThrow(/wav2vec2: inputValues must be floating point audio samples, got int32/);
  });
});

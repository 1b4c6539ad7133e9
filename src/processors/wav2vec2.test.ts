// Wav2Vec2FeatureExtractor: Hugging Face's padding and zero-mean unit-variance normalisation (epsilon 1e-7), config, errors.

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { expectClose } from '../test-util/fixtures.js';
import { Wav2Vec2FeatureExtractor } from './wav2vec2.js';

/** transformers' zero_mean_unit_var_norm of one utterance, written out: (x - mean) / sqrt(var + 1e-7). */
const hfNorm = (x: number[]): number[] => {
  const m = x.reduce((a, b) => a + b, 0) / x.length;
  const v = x.reduce((a, b) => a + (b - m) ** 2, 0) / x.length;
  return x.map((e) => (e - m) / Math.sqrt(v + 1e-7));
};

describe('Wav2Vec2FeatureExtractor', () => {
  test('normalises each utterance to zero mean and unit variance, with epsilon 1e-7', async () => {
    const fe = new Wav2Vec2FeatureExtractor();
    // [1, 2, 3, 4]: mean 2.5, population variance 1.25.
    const { inputValues, attentionMask } = fe.call([1, 2, 3, 4]);
    expect(inputValues.shape).toEqual([1, 4]);
    expect(attentionMask).toBeUndefined();
    expectClose(await inputValues.data(), [-1.5, -0.5, 0.5, 1.5].map((d) => d / Math.sqrt(1.25 + 1e-7)), 1e-6, 0, 'values');
    // A constant signal: the epsilon keeps it finite (0 / sqrt(1e-7) = 0), as in transformers.
    expect(Array.from(await fe.call(new Float32Array(8).fill(0.25)).inputValues.data())).toEqual(new Array(8).fill(0));
    // The epsilon matters at small amplitudes: var 1e-8 gives 1e-4 / sqrt(1.1e-7), not 1.
    expectClose(await fe.call([1e-4, -1e-4]).inputValues.data(), [1e-4 / Math.sqrt(1e-8 + 1e-7), -1e-4 / Math.sqrt(1e-8 + 1e-7)], 1e-5, 0, 'small');
  });
  test('a padded batch with a mask: statistics over the real samples, padding set to padding_value', async () => {
    const fe = new Wav2Vec2FeatureExtractor({ return_attention_mask: true, padding_value: -1 });
    const a = [0.5, -0.25, 0.75, 0.1, -0.3], b = [2, 4, 9];
    const { inputValues, attentionMask } = fe.call([a, b], { padding: true });
    expect(inputValues.shape).toEqual([2, 5]);
    expect(Array.from(await attentionMask!.data())).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    expectClose(await inputValues.data(), [...hfNorm(a), ...hfNorm(b), -1, -1], 1e-6, 0, 'values');
  });
  test('without a mask (the base models), the padded row is normalised as a whole, zeros included', async () => {
    const fe = new Wav2Vec2FeatureExtractor();
    const { inputValues } = fe.call([[1, 2, 3, 4], [3, 5]], { padding: 'longest' });
    expectClose(await inputValues.data(), [...hfNorm([1, 2, 3, 4]), ...hfNorm([3, 5, 0, 0])], 1e-6, 0, 'values');
  });
  test("padding 'max_length', truncation, padToMultipleOf, do_normalize false", async () => {
    const fe = new Wav2Vec2FeatureExtractor({ do_normalize: false, padding_value: 0.5 });
    const max = fe.call([[1, 2, 3]], { padding: 'max_length', maxLength: 5, returnAttentionMask: true });
    expect(Array.from(await max.inputValues.data())).toEqual([1, 2, 3, 0.5, 0.5]);
    expect(Array.from(await max.attentionMask!.data())).toEqual([1, 1, 1, 0, 0]);
    const cut = fe.call([[1, 2, 3, 4, 5, 6], [7]], { padding: 'max_length', maxLength: 4, truncation: true });
    expect(await cut.inputValues.tolist()).toEqual([[1, 2, 3, 4], [7, 0.5, 0.5, 0.5]]);
    expect(fe.call([[1, 2, 3], [4]], { padding: true, padToMultipleOf: 4 }).inputValues.shape).toEqual([2, 4]);
  });
  test('reads preprocessor_config.json (defaults without one)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-w2v-fe-'));
    expect((await Wav2Vec2FeatureExtractor.fromPretrained(dir)).config).toEqual({ feature_size: 1, sampling_rate: 16000, padding_value: 0, return_attention_mask: false, do_normalize: true });
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({
      do_normalize: true, feature_extractor_type: 'Wav2Vec2FeatureExtractor', feature_size: 1, padding_side: 'right', padding_value: 0.0, return_attention_mask: true, sampling_rate: 8000,
    }));
    const fe = await Wav2Vec2FeatureExtractor.fromPretrained(dir);
    expect(fe.config).toEqual({ feature_size: 1, sampling_rate: 8000, padding_value: 0, return_attention_mask: true, do_normalize: true });
    expect(() => fe.call([1, 2], { samplingRate: 16000 })).toThrow(/sampled at 16000 Hz, the model at 8000 Hz; resample it first/);
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ do_normalize: 'yes' }));
    await expect(Wav2Vec2FeatureExtractor.fromPretrained(dir)).rejects.toThrow(/preprocessor_config.json: "do_normalize" must be a boolean, got "yes"/);
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ feature_size: 2 }));
    await expect(Wav2Vec2FeatureExtractor.fromPretrained(dir)).rejects.toThrow(/preprocessor_config.json: Wav2Vec2FeatureExtractor: feature_size must be 1/);
  });
  test('bad input: empty audio, NaN samples, uneven lengths without padding, too long for max_length, a wrong rate', () => {
    const fe = new Wav2Vec2FeatureExtractor();
    expect(() => fe.call([])).toThrow(/audio 0 is empty \(0 samples\)/);
    expect(() => fe.call([[1, 2], new Float32Array(0)], { padding: true })).toThrow(/audio 1 is empty \(0 samples\)/);
    expect(() => fe.call([1, Number.NaN])).toThrow(/audio 0 sample 1 is NaN, not a finite number/);
    expect(() => fe.call([[1, 2, 3], [1]])).toThrow(/audio 1 has 1 samples and audio 0 has 3; pass padding: true/);
    expect(() => fe.call([[1, 2, 3]], { padding: 'max_length', maxLength: 2 })).toThrow(/audio 0 has 3 samples, more than maxLength 2; pass truncation: true/);
    expect(() => fe.call([1, 2], { padding: 'max_length' })).toThrow(/padding 'max_length' needs maxLength/);
    expect(() => fe.call([1, 2], { samplingRate: 44100 })).toThrow(/sampled at 44100 Hz, the model at 16000 Hz/);
  });
});

// WhisperFeatureExtractor against Hugging Face's: mel filters, 30 s padded log-mel features, short clips, bad input.

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadRef } from '../test-util/hf-fixtures.js';
import { expectClose } from '../test-util/fixtures.js';
import { WhisperFeatureExtractor } from './whisper.js';

describe('WhisperFeatureExtractor', () => {
  test('mel filters equal transformers mel_filter_bank(slaney, slaney) within 1e-6', async () => {
    const ref = await loadRef('whisper');
    const fe = new WhisperFeatureExtractor();
    expect(ref['fe.mel_filters']!.shape).toEqual([201, 80]);
    expectClose(Float32Array.from(fe.melFilters), Array.from(await ref['fe.mel_filters']!.data()), 1e-6, 0, 'mel_filters');
  });

  test('fe.audio (1.5 s) -> fe.input_features [1, 80, 3000] within 1e-4', async () => {
    const ref = await loadRef('whisper');
    const audio = (await ref['fe.audio']!.data()) as Float32Array;
    const { inputFeatures } = new WhisperFeatureExtractor().call(audio, { samplingRate: 16000 });
    expect(inputFeatures.shape).toEqual([1, 80, 3000]);
    expectClose(await inputFeatures.data(), Array.from(await ref['fe.input_features']!.data()), 1e-4, 0, 'input_features');
  });

  test('a batch: one row per signal, each as when given alone', async () => {
    const ref = await loadRef('whisper');
    const audio = (await ref['fe.audio']!.data()) as Float32Array;
    const other = audio.map((v, i) => v * 0.5 + Math.sin(i * 0.01) * 0.01);
    const fe = new WhisperFeatureExtractor();
    const both = await fe.call([audio, other]).inputFeatures.data();
    expectClose(both.subarray(0, 240000), Array.from(await ref['fe.input_features']!.data()), 1e-4, 0, 'row 0');
    expectClose(both.subarray(240000), Array.from(await fe.call(other).inputFeatures.data()), 0, 0, 'row 1');
  });

  test('logMel of the unpadded clip: 150 frames, equal to the padded features away from the end', async () => {
    const ref = await loadRef('whisper');
    const audio = (await ref['fe.audio']!.data()) as Float32Array;
    const mel = new WhisperFeatureExtractor().logMel(audio);
    expect([mel.nMels, mel.frames]).toEqual([80, 150]);
    const want = await ref['fe.input_features']!.data();
    // Frames whose window lies inside the clip (t * 160 + 200 < 24000) see no padding; the clamp is the same
    // because the maximum lies inside the clip.
    const got: number[] = [], exp: number[] = [];
    for (let m = 0; m < 80; m++) for (let t = 0; t < 148; t++) { got.push(mel.data[m * 150 + t]!); exp.push(want[m * 3000 + t]!); }
    expectClose(got, exp, 1e-4, 0, 'logMel');
  });

  test('other FFT lengths (98 = 2*7*7, 101 prime, 512 = 4^4*2) give the features of a direct DFT', () => {
    const audio = Float32Array.from({ length: 3000 }, (_, i) => Math.sin(i * 0.07) * 0.5 + Math.cos(i * 0.013) * 0.2);
    for (const nFft of [98, 101, 512]) {
      const fe = new WhisperFeatureExtractor({ n_fft: nFft, hop_length: 64, feature_size: 20 });
      const mel = fe.logMel(audio);
      // The same pipeline with an O(n^2) DFT.
      const half = Math.floor(nFft / 2), bins = half + 1, len = audio.length;
      const frames = Math.floor((len + 2 * half - nFft) / 64);
      const want = new Float64Array(20 * frames);
      for (let t = 0; t < frames; t++) {
        const x = Array.from({ length: nFft }, (_, n) => {
          const i = t * 64 + n - half;
          return audio[i < 0 ? -i : i >= len ? 2 * (len - 1) - i : i]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * n) / nFft));
        });
        const power = Array.from({ length: bins }, (_, k) => {
          let re = 0, im = 0;
          x.forEach((v, n) => { re += v * Math.cos((2 * Math.PI * k * n) / nFft); im -= v * Math.sin((2 * Math.PI * k * n) / nFft); });
          return re * re + im * im;
        });
        for (let m = 0; m < 20; m++) want[m * frames + t] = Math.log10(Math.max(1e-10, power.reduce((a, p, k) => a + p * fe.melFilters[k * 20 + m]!, 0)));
      }
      const max = Math.max(...want);
      expect(mel.frames).toBe(frames);
      expectClose(mel.data, Array.from(want, (v) => (Math.max(v, max - 8) + 4) / 4), 1e-5, 0, `n_fft ${nFft}`);
    }
  });

  test('preprocessor_config.json is read; bad fields name the file and key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-wfe-'));
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ feature_size: 128, sampling_rate: 16000, hop_length: 160, n_fft: 400, chunk_length: 30 }));
    const fe = await WhisperFeatureExtractor.fromPretrained(dir);
    expect(fe.config.feature_size).toBe(128);
    expect(fe.melFilters.length).toBe(201 * 128);
    expect(fe.logMel(new Float32Array(1600).fill(0.1)).nMels).toBe(128);
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ hop_length: 'x' }));
    await expect(WhisperFeatureExtractor.fromPretrained(dir)).rejects.toThrow(/preprocessor_config.json: "hop_length" must be a positive integer/);
    expect((await WhisperFeatureExtractor.fromPretrained(tmpdir())).config.feature_size).toBe(80);
  });

  test('bad input: wrong sampling rate, empty or too short signal, audio over 30 s without truncation', () => {
    const fe = new WhisperFeatureExtractor();
    expect(() => fe.call(new Float32Array(100), { samplingRate: 44100 })).toThrow(/sampled at 44100 Hz, the model expects 16000 Hz; resample/);
    expect(() => fe.logMel(new Float32Array(100), { samplingRate: 8000 })).toThrow(/8000 Hz/);
    expect(() => fe.call(new Float32Array(0))).toThrow(/empty/);
    expect(() => fe.logMel(new Float32Array(0))).toThrow(/empty/);
    expect(() => fe.logMel(new Float32Array(150))).toThrow(/too short/);
    const long = new Float32Array(16000 * 31).fill(0.01);
    expect(() => fe.call(long, { truncation: false })).toThrow(/31.00 s .* longer than the model accepts \(30 s/);
    expect(fe.call(long).inputFeatures.shape).toEqual([1, 80, 3000]);
    expect(() => fe.call([new Float32Array(400), new Float32Array(0)])).toThrow(/audio 1 is empty/);
  });
});

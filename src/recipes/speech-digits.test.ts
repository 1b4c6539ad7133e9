// The speech-digits recipe: tokens, batched log-mel against the Whisper extractor, the model's shapes and padding, batches, a smoke run, bad options.

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { trainCommand } from '../cli/train.js';
import { synthesize, type UtteranceSpec } from '../data/spoken-digits.js';
import { wordErrorRate } from '../data/wer.js';
import { WhisperFeatureExtractor } from '../processors/whisper.js';
import { listDevices } from '../tensor/backend.js';
import { manualSeed } from '../tensor/random.js';
import { parseRecipeArgs } from './recipe.js';
import {
  BLANK, TOKENS, collateClips, decodeTokens, encodeTranscript, logMelBatch, speechBatches, SpeechDigitsCtc, speechDigitsRecipe,
  subsampledLength, type Clip, type SpeechDigitsOptions,
} from './speech-digits.js';

const spec: UtteranceSpec = {
  text: 'nine oh one', accent: 'gmw/en-GB-x-rp', variant: 'f2', speed: 190, pitch: 60, snrDb: 20, noise: 'pink',
  gainDb: -6, leadSeconds: 0.05, trailSeconds: 0.1, noiseSeed: 11,
};

describe('tokens', () => {
  test('blank, then the eleven words; unknown words are errors', () => {
    expect(TOKENS).toEqual(['<blank>', 'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'oh']);
    expect(BLANK).toBe(0);
    expect(encodeTranscript(' four two  oh ')).toEqual([5, 3, 11]);
    expect(decodeTokens([0, 5, 3, 0, 11])).toBe('four two oh');
    expect(() => encodeTranscript('four ten')).toThrow(/'ten' is not one of the words zero, one/);
  });
});

describe('features and model', () => {
  let clips: Float32Array[];
  beforeAll(async () => {
    clips = await Promise.all([spec, { ...spec, text: 'seven', speed: 250 }, { ...spec, text: 'two two eight five', variant: 'm5', snrDb: null }].map((s) => synthesize(s)));
  });

  test.each(listDevices())('batched log-mel equals WhisperFeatureExtractor.logMel on espeak-ng speech (%s)', (device) => {
    const fe = new WhisperFeatureExtractor();
    const mels = logMelBatch(fe, clips, device, 300); // a small chunk size: clips are split across several products
    clips.forEach((x, i) => {
      const ref = fe.logMel(x);
      expect(mels[i]!.frames).toBe(ref.frames);
      expect(mels[i]!.frames).toBe(Math.floor(x.length / 160));
      let worst = 0;
      for (let k = 0; k < ref.data.length; k++) worst = Math.max(worst, Math.abs(ref.data[k]! - mels[i]!.data[k]!));
      expect(worst).toBeLessThan(2e-4);
    });
    expect(() => logMelBatch(fe, [new Float32Array(100)], device)).toThrow(/clip 0 has 100 samples, too short/);
  });

  test.each(listDevices())('logits [B, T / 8 rounded up, 12]; a clip gives the same logits alone or padded in a batch (%s)', async (device) => {
    manualSeed(0);
    const model = new SpeechDigitsCtc({ num_mel_bins: 80, d_model: 32, encoder_layers: 2, encoder_attention_heads: 4, encoder_ffn_dim: 64, dropout: 0.1, vocab_size: 12, max_source_positions: 375, conv_layers: 3 });
    model.to(device).eval();
    const mels = logMelBatch(new WhisperFeatureExtractor(), clips, device);
    const c: Clip[] = mels.map((mel) => ({ mel, targets: [1] }));
    const batch = collateClips(c, device);
    const { logits, lengths } = noGrad(() => model.forward(batch.features, batch.frames));
    const T = Math.max(...mels.map((m) => m.frames));
    expect(logits.shape).toEqual([3, subsampledLength(T, 3), 12]);
    expect(lengths).toEqual(mels.map((m) => subsampledLength(m.frames, 3)));
    expect([1, 4, 5, 9].map((n) => subsampledLength(n, 2))).toEqual([1, 1, 2, 3]);
    expect([1, 8, 9, 17, 150].map((n) => subsampledLength(n, 3))).toEqual([1, 1, 2, 3, 19]);
    const all = (await logits.tolist()) as number[][][];
    for (let i = 0; i < 3; i++) {
      const one = collateClips([c[i]!], device);
      const alone = (await noGrad(() => model.forward(one.features, one.frames)).logits.tolist()) as number[][][];
      for (let t = 0; t < lengths[i]!; t++) {
        for (let v = 0; v < 12; v++) expect(Math.abs(alone[0]![t]![v]! - all[i]![t]![v]!)).toBeLessThan(1e-4);
      }
    }
    expect(() => model.forward(batch.features, [1, 2])).toThrow(/expected features \[B, 80, T\] and B frame counts/);
  });

  test('batches: every clip once per epoch, similar lengths together, the same for the same (epoch, seed)', async () => {
    const fake = (frames: number, id: number): Clip => ({ mel: { data: new Float32Array(80 * frames).fill(id), nMels: 80, frames }, targets: [id % 11 + 1] });
    const pool = Array.from({ length: 20 }, (_, i) => fake(20 + 7 * i, i));
    const factory = speechBatches(pool, 4, 'cpu', { freqMasks: 1, freqWidth: 10, timeMasks: 1, timeFraction: 0.1 });
    const read = async (epoch: number) => {
      const out: { targets: number[]; frames: number[]; sum: number }[] = [];
      for await (const b of factory(epoch, 3)) {
        const f = (await b.features.data()) as Float32Array;
        out.push({ targets: ((await b.targets.tolist()) as number[][]).map((r) => r[0]!), frames: b.frames, sum: f.reduce((a, v) => a + v, 0) });
      }
      return out;
    };
    const e0 = await read(0);
    expect(e0).toHaveLength(5);
    expect(e0.flatMap((b) => b.frames).sort((a, b) => a - b)).toEqual(pool.map((p) => p.mel.frames));
    for (const b of e0) expect(b.frames).toEqual([...b.frames].sort((x, y) => x - y)); // sorted within the bucket
    expect(await read(0)).toEqual(e0); // same masks and order again
    expect((await read(1)).map((b) => b.frames.join())).not.toEqual(e0.map((b) => b.frames.join()));
  });
});

describe('the recipe', () => {
  test('--smoke synthesises, trains, scores ours and pocketsphinx on held-out voices and real recordings, writes its files', async () => {
    const root = await mkdtemp(join(tmpdir(), 'attend-speech-'));
    const dir = join(root, 'run');
    let printed = '';
    await trainCommand.run(['speech-digits', '--smoke', '--out', dir, '--cache-dir', join(root, 'cache'), '--examples', '12'], (t) => { printed += t; });
    expect(printed).toContain('saved');
    interface Results {
      data: { variants: { train: string[]; val: string[]; test: string[] } };
      steps: number;
      trainLoss: { first: number; last: number };
      test: { ours: { wer: { rate: number } }; pocketsphinx: { wer: { rate: number } } };
      examples: { voice: string; reference: string; ours: string; pocketsphinx: string }[];
      realRecordings: { recording: string; reference: string | null; pocketsphinx: string }[];
    }
    const r = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
    const variants = r.data.variants;
    for (const v of variants.test) {
      expect(variants.train).not.toContain(v);
      expect(variants.val).not.toContain(v);
    }
    expect(r.steps).toBe(6);
    expect(Number.isFinite(r.trainLoss.first) && Number.isFinite(r.trainLoss.last)).toBe(true);
    expect(r.trainLoss.last).toBeLessThan(r.trainLoss.first);
    // The reported WERs are those of the transcripts it lists, scored against the synthesised texts.
    const ex = r.examples;
    expect(ex).toHaveLength(12);
    for (const e of ex) expect(variants.test).toContain(e.voice.split('+')[1]);
    expect(r.test.ours.wer.rate).toBeCloseTo(wordErrorRate(ex.map((e) => e.reference), ex.map((e) => e.ours)).rate, 12);
    expect(r.test.pocketsphinx.wer.rate).toBeCloseTo(wordErrorRate(ex.map((e) => e.reference), ex.map((e) => e.pocketsphinx)).rate, 12);
    expect(r.test.pocketsphinx.wer.rate).toBeLessThan(0.8); // a real recognizer, even on unusual voices
    const real = r.realRecordings;
    expect(real.map((x) => x.recording)).toEqual(['numbers.raw', 'tidigits/dhd.2934z.raw', 'cards/004.wav']);
    expect(real[1]!.pocketsphinx).toBe('two nine three four zero');
    for (const f of ['metrics.jsonl', 'loss.svg', 'wer.svg', 'table.md', 'model/model.safetensors', 'model/config.json']) expect(existsSync(join(dir, f))).toBe(true);
    expect(readFileSync(join(dir, 'table.md'), 'utf8')).toMatch(/\| pocketsphinx 0\.8 en-us, digits JSGF \|/);
  }, 60_000);

  test('bad options are errors that name the option, before anything is written', async () => {
    expect(() => parseRecipeArgs(speechDigitsRecipe, ['--steps', 'many'], false)).toThrow(/--steps must be a number/);
    const dir = join(await mkdtemp(join(tmpdir(), 'attend-speech-')), 'never');
    const ctx = { outDir: dir, resume: false, log: () => undefined };
    const smoke = (o: Partial<SpeechDigitsOptions>): SpeechDigitsOptions => ({ ...speechDigitsRecipe.defaults, ...speechDigitsRecipe.smoke, ...o });
    const cases: [Partial<SpeechDigitsOptions>, RegExp][] = [
      [{ heads: 3 }, /--heads \(3\) must divide --d-model \(32\)/],
      [{ testUtterances: 0 }, /--test-utterances must be a positive integer/],
      [{ snrMin: 30, snrMax: 10 }, /--snr-min <= --snr-max/],
      [{ maxDigits: 50 }, /--max-digits must be at most 20/],
      [{ testVariants: 90, valVariants: 20 }, /leave none of the \d+ for training/],
      [{ warmupSteps: 10 }, /--warmup-steps \(10\) is more than --steps \(6\)/],
    ];
    for (const [o, message] of cases) await expect(speechDigitsRecipe.run(smoke(o), ctx)).rejects.toThrow(message);
    expect(existsSync(dir)).toBe(false);
  });
});

// Spoken-digit synthesis: espeak-ng voices and variants, the held-out split, seeded specs, real audio at 16 kHz, SNR, the cache.

import { mkdtemp, readdir, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  DEFAULT_SETTINGS, SAMPLE_RATE, WORDS, addNoise, checkEspeak, englishAccents, sampleUtterances, splitVariants, synthesize,
  synthesizeSet, voiceVariants, type UtteranceSpec,
} from './spoken-digits.js';

const power = (x: Float32Array | Float64Array, from = 0, to = x.length) => {
  let p = 0;
  for (let i = from; i < to; i++) p += x[i]! * x[i]!;
  return p / (to - from);
};

describe('espeak-ng', () => {
  test('a missing espeak-ng names the Debian package', () => {
    expect(() => checkEspeak('/nonexistent/espeak-ng')).toThrow(/'\/nonexistent\/espeak-ng' was not found: install the Debian package espeak-ng/);
    expect(() => englishAccents('/nonexistent/espeak-ng')).toThrow(/Debian package espeak-ng/);
  });

  test('English accents (eSpeak voices, no MBROLA) and variants', () => {
    expect(checkEspeak().version).toMatch(/eSpeak NG/);
    const accents = englishAccents();
    expect(accents).toContain('gmw/en-US');
    expect(accents).toContain('gmw/en-GB-scotland');
    expect(accents.every((a) => a.startsWith('gmw/'))).toBe(true);
    const variants = voiceVariants();
    for (const v of ['m1', 'm7', 'f1', 'f5', 'klatt', 'whisper', 'croak']) expect(variants).toContain(v);
    expect(variants.some((v) => /\s/.test(v))).toBe(false);
  });
});

describe('voice split and utterance specs', () => {
  const variants = Array.from({ length: 40 }, (_, i) => `v${i}`);

  test('test and validation variants are disjoint from training and from each other, seeded', () => {
    const s = splitVariants(variants, { test: 8, val: 4, seed: 0 });
    expect([s.test.length, s.val.length, s.train.length]).toEqual([8, 4, 28]);
    expect(new Set([...s.train, ...s.val, ...s.test]).size).toBe(40);
    expect(splitVariants(variants, { test: 8, val: 4, seed: 0 })).toEqual(s);
    expect(splitVariants(variants, { test: 8, val: 4, seed: 1 }).test).not.toEqual(s.test);
    expect(() => splitVariants(variants, { test: 30, val: 10, seed: 0 })).toThrow(/leave none of the 40 for training/);
  });

  test('specs are seeded, within the settings, and only use the given voices', () => {
    const voices = { accents: ['gmw/en-US', 'gmw/en'], variants: ['m1', 'f2', 'klatt'] };
    const specs = sampleUtterances(500, voices, DEFAULT_SETTINGS, 7);
    expect(sampleUtterances(500, voices, DEFAULT_SETTINGS, 7)).toEqual(specs);
    expect(sampleUtterances(5, voices, DEFAULT_SETTINGS, 8)).not.toEqual(specs.slice(0, 5));
    const lengths = new Set<number>();
    for (const s of specs) {
      const w = s.text.split(' ');
      lengths.add(w.length);
      expect(w.every((x) => (WORDS as readonly string[]).includes(x))).toBe(true);
      expect(voices.accents).toContain(s.accent);
      expect(voices.variants).toContain(s.variant);
      expect(s.speed).toBeGreaterThanOrEqual(120);
      expect(s.speed).toBeLessThanOrEqual(260);
      if (s.snrDb !== null) expect(s.snrDb >= 5 && s.snrDb <= 40).toBe(true);
    }
    expect([...lengths].sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const texts = specs.map((s) => s.text).join(' ');
    expect(texts).toMatch(/\boh\b/);
    expect(texts).toMatch(/\bzero\b/);
    const clean = specs.filter((s) => s.snrDb === null).length;
    expect(clean).toBeGreaterThan(25); // ~10% of 500
    expect(clean).toBeLessThan(80);
    expect(() => sampleUtterances(1, voices, { ...DEFAULT_SETTINGS, maxDigits: 0 }, 0)).toThrow(/minDigits <= maxDigits/);
    expect(() => sampleUtterances(1, voices, { ...DEFAULT_SETTINGS, pitch: [0, 120] }, 0)).toThrow(/pitch must be/);
  });
});

describe('audio', () => {
  const spec: UtteranceSpec = {
    text: 'four two seven', accent: 'gmw/en-US', variant: 'm3', speed: 175, pitch: 50, snrDb: null, noise: 'white',
    gainDb: -10, leadSeconds: 0.1, trailSeconds: 0.2, noiseSeed: 5,
  };

  test('addNoise adds noise at the asked SNR (white and pink)', () => {
    for (const kind of ['white', 'pink'] as const) {
      const x = new Float32Array(16000);
      addNoise(x, 0.01, 10, kind, 3);
      expect(10 * Math.log10(0.01 / power(x))).toBeCloseTo(10, 1);
    }
  });

  test('a clip is 16 kHz speech of plausible length with the padding asked for; noise at the asked SNR', async () => {
    const clean = await synthesize(spec);
    const seconds = clean.length / SAMPLE_RATE;
    expect(seconds).toBeGreaterThan(1); // three words at 175 wpm plus 0.3 s of padding
    expect(seconds).toBeLessThan(3);
    expect(power(clean, 0, 1600)).toBe(0); // 0.1 s of silence first
    const speechPower = power(clean, 1600, clean.length - 3200);
    expect(speechPower).toBeGreaterThan(1e-5);
    const noisy = await synthesize({ ...spec, snrDb: 10 });
    const noise = noisy.map((v, i) => v - clean[i]!);
    // The SNR is relative to the power of espeak-ng's output (its own short silences included), not of the padding.
    const snr = 10 * Math.log10(speechPower / power(noise));
    expect(snr).toBeGreaterThan(9);
    expect(snr).toBeLessThan(11);
    expect(await synthesize({ ...spec, snrDb: 10 })).toEqual(noisy); // seeded
  });

  test('sets are cached on disk by their specs, and a damaged entry is synthesised again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-digits-'));
    const specs = [spec, { ...spec, text: 'oh nine', variant: 'f4', snrDb: 20 }];
    const first = await synthesizeSet(specs, { cacheDir: dir });
    expect(first.cached).toBe(false);
    expect((await readdir(dir)).sort()).toEqual([`${first.key}.json`, `${first.key}.pcm`]);
    const again = await synthesizeSet(specs, { cacheDir: dir });
    expect(again.cached).toBe(true);
    expect(again.audio).toEqual(first.audio); // fresh audio is rounded to 16 bits as the cache stores it
    const other = await synthesizeSet([{ ...spec, speed: 200 }], { cacheDir: dir });
    expect(other.key).not.toBe(first.key);
    await truncate(join(dir, `${first.key}.pcm`), 100);
    const repaired = await synthesizeSet(specs, { cacheDir: dir });
    expect(repaired.cached).toBe(false);
    expect(repaired.audio).toEqual(first.audio);
  });

  test('the cache is kept per chunk: a list that starts with a cached one reuses its chunks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-digits-'));
    const specs = ['one', 'two', 'three'].map((text, i) => ({ ...spec, text, noiseSeed: i }));
    const short = await synthesizeSet(specs.slice(0, 2), { cacheDir: dir, chunkSize: 2 });
    expect(short.cached).toBe(false);
    expect(await readdir(dir)).toHaveLength(2); // one chunk: .pcm and .json
    const long = await synthesizeSet(specs, { cacheDir: dir, chunkSize: 2 });
    expect(long.cached).toBe(false); // the third utterance is new
    expect(long.audio.slice(0, 2)).toEqual(short.audio);
    expect(await readdir(dir)).toHaveLength(4);
    expect((await synthesizeSet(specs, { cacheDir: dir, chunkSize: 2 })).cached).toBe(true);
    await expect(synthesizeSet(specs, { cacheDir: dir, chunkSize: 0 })).rejects.toThrow(/chunkSize must be a positive integer/);
  });
});

// The resampler against torchaudio's sinc_interp_hann algorithm run by PyTorch in float64 (scripts/gen_resample_fixtures.py),
// and against physics: a sine keeps its frequency and amplitude, a tone above the new Nyquist frequency is removed.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expectClose } from '../test-util/fixtures.js';
import { resample, type ResampleOptions } from './resample.js';

interface Fixture { input: number[]; cases: { from: number; to: number; options: ResampleOptions; output: number[] }[] }
const fx = JSON.parse(readFileSync(new URL('../../test/data/resample.json', import.meta.url), 'utf8')) as Fixture;

const tone = (hz: number, rate: number, n: number, amp = 0.5): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * hz * i) / rate));
/** RMS away from the edges, where the zero padding beyond the signal shows. */
function rms(x: Float32Array, skip = 200): number {
  let s = 0;
  for (let i = skip; i < x.length - skip; i++) s += x[i]! ** 2;
  return Math.sqrt(s / (x.length - 2 * skip));
}

describe('resample', () => {
  for (const c of fx.cases) {
    it(`${c.from} -> ${c.to} Hz ${JSON.stringify(c.options)} equals torchaudio's algorithm in float64`, () => {
      const y = resample(Float32Array.from(fx.input), c.from, c.to, c.options);
      expect(y.length).toBe(c.output.length);
      expectClose(y, c.output, 1e-6, 0, `${c.from}->${c.to}`);
    });
  }

  for (const [from, hz] of [[22050, 440], [44100, 1000], [48000, 3000], [8000, 1000]] as const) {
    it(`a ${hz} Hz sine at ${from} Hz keeps its frequency and amplitude at 16 kHz`, () => {
      const y = resample(tone(hz, from, from), from, 16000);
      expect(y.length).toBe(16000);
      const want = tone(hz, 16000, y.length);
      let err = 0;
      for (let i = 200; i < y.length - 200; i++) err = Math.max(err, Math.abs(y[i]! - want[i]!));
      expect(err).toBeLessThan(1e-3);
    });
  }

  for (const [from, hz] of [[48000, 10000], [44100, 12000], [22050, 10000]] as const) {
    it(`a ${hz} Hz tone at ${from} Hz (above 16 kHz's Nyquist) is at least 40 dB down`, () => {
      const x = tone(hz, from, from);
      const y = resample(x, from, 16000);
      expect(20 * Math.log10(rms(y) / rms(x))).toBeLessThan(-40);
    });
  }

  it('output length is ceil(n * to / from); equal rates give a copy', () => {
    expect(resample(new Float32Array(101), 22050, 16000).length).toBe(Math.ceil((101 * 16000) / 22050));
    expect(resample([0.5], 48000, 16000).length).toBe(1);
    const x = Float32Array.from([0.1, 0.2, 0.3]);
    const y = resample(x, 16000, 16000);
    expect(y).toEqual(x);
    expect(y).not.toBe(x);
  });

  it('rejects bad rates, options and empty input', () => {
    const x = new Float32Array(10);
    expect(() => resample(x, 0, 16000)).toThrow('resample: fromRate must be a positive integer (Hz), got 0');
    expect(() => resample(x, 22050, -16000)).toThrow('resample: toRate must be a positive integer (Hz), got -16000');
    expect(() => resample(x, 22050.5, 16000)).toThrow('resample: fromRate must be a positive integer (Hz), got 22050.5');
    expect(() => resample(x, NaN, 16000)).toThrow(/fromRate must be a positive integer/);
    expect(() => resample(new Float32Array(0), 22050, 16000)).toThrow('resample: empty input (0 samples) from 22050 Hz');
    expect(() => resample(x, 22050, 16000, { rolloff: 0 })).toThrow('resample: rolloff must be in (0, 1], got 0');
    expect(() => resample(x, 22050, 16000, { lowpassFilterWidth: 2.5 })).toThrow(/lowpassFilterWidth must be a positive integer/);
  });
});

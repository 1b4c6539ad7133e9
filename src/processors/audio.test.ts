// loadAudio: WAV and raw PCM to mono at the requested rate, with the file named in errors.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readWav, writeWav } from '../io/wav.js';
import { loadAudio } from './audio.js';
import { resample } from './resample.js';

const tmp = mkdtempSync(join(tmpdir(), 'attend-audio-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const dir = new URL('../../test/data/wav/', import.meta.url).pathname;
let haveEspeak = true;
try {
  execFileSync('espeak-ng', ['--version'], { stdio: 'ignore' });
} catch {
  haveEspeak = false;
  console.warn('audio.test: espeak-ng is not installed: skipping the speech round trip (apt-get install espeak-ng)');
}

describe('loadAudio', () => {
  it('mixes a stereo file to mono and resamples it to 16 kHz', async () => {
    const n = 22050;
    const l = Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 300 * i) / n));
    const r = Float32Array.from({ length: n }, (_, i) => 0.25 * Math.sin((2 * Math.PI * 300 * i) / n));
    const path = join(tmp, 'stereo.wav');
    await writeWav(path, [l, r], n, { format: 'f32le' });
    const y = await loadAudio(path);
    expect(y.length).toBe(16000);
    const mono = Float32Array.from(l, (x, i) => (x + r[i]!) / 2);
    expect(y).toEqual(resample(mono, n, 16000));
    expect(Math.abs(y[8000 + 40]! - 0.375 * Math.sin((2 * Math.PI * 300 * (8000 + 40)) / 16000))).toBeLessThan(1e-3);
  });

  it('reads raw PCM when told its layout, and keeps the rate when it already matches', async () => {
    const y = await loadAudio(join(dir, 'three_channels_s16.raw'), { raw: { sampleRate: 16000, format: 's16le', channels: 3 } });
    expect(y.length).toBe(40);
    const z = await loadAudio(join(dir, 'mono_s16.wav'), { samplingRate: 8000 });
    expect(z.length).toBe(20);
  });

  it('names the file when it is not audio, too long, or the rate is bad', async () => {
    await expect(loadAudio(join(dir, 'three_channels_s16.raw'))).rejects.toThrow(/wav: .*three_channels_s16\.raw: not a RIFF\/WAVE file/);
    await expect(loadAudio(join(dir, 'mono_s16.wav'), { maxSeconds: 0.001 })).rejects.toThrow(/loadAudio: .*mono_s16\.wav: 0\.00 s of audio is longer than the 0\.001 s accepted/);
    await expect(loadAudio(join(dir, 'mono_s16.wav'), { samplingRate: 0 })).rejects.toThrow('loadAudio: samplingRate must be a positive integer (Hz), got 0');
  });

  it.skipIf(!haveEspeak)('brings espeak-ng speech (22050 Hz) to 16 kHz with its energy intact', async () => {
    const path = join(tmp, 'digits.wav');
    execFileSync('espeak-ng', ['-w', path, 'four two seven']);
    const src = await readWav(path);
    const y = await loadAudio(path);
    expect(y.length).toBe(Math.ceil((src.samples.length * 16000) / 22050));
    const energy = (x: Float32Array) => x.reduce((s, v) => s + v * v, 0) / x.length;
    // espeak-ng's speech lies mostly below 8 kHz: the mean power survives the low-pass within a few percent.
    expect(energy(y) / energy(src.samples)).toBeGreaterThan(0.9);
    expect(energy(y) / energy(src.samples)).toBeLessThan(1.05);
  });
});

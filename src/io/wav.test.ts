// WAV and raw PCM: files written by Python's wave module and hand-packed headers (scripts/gen_wav_fixtures.py), espeak-ng's
// output, pocketsphinx's raw test recording, round trips, and every bad-input error.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectClose } from '../test-util/fixtures.js';
import { decodePcm, decodeWav, encodeWav, readPcm, readWav, writeWav, type PcmFormat } from './wav.js';

const dir = new URL('../../test/data/wav/', import.meta.url).pathname;
interface Expected { sampleRate: number; channels: number; format: PcmFormat; samples: number[] }
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Record<string, Expected>;
const tmp = mkdtempSync(join(tmpdir(), 'attend-wav-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function hasCommand(cmd: string): boolean {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const haveEspeak = hasCommand('espeak-ng');
if (!haveEspeak) console.warn('wav.test: espeak-ng is not installed: skipping the espeak-ng tests (apt-get install espeak-ng)');
const numbersRaw = '/usr/share/pocketsphinx/test/data/numbers.raw';
if (!existsSync(numbersRaw)) console.warn(`wav.test: ${numbersRaw} is absent: skipping (apt-get install pocketsphinx-testdata)`);

describe('readWav: files from an independent writer', () => {
  for (const [name, want] of Object.entries(expected)) {
    it(name, async () => {
      const path = join(dir, name);
      const a = name.endsWith('.raw')
        ? await readPcm(path, { sampleRate: want.sampleRate, format: want.format, channels: want.channels })
        : await readWav(path);
      expect({ sampleRate: a.sampleRate, channels: a.channels, format: a.format }).toEqual({ sampleRate: want.sampleRate, channels: want.channels, format: want.format });
      expect(a.samples).toBeInstanceOf(Float32Array);
      expectClose(a.samples, want.samples, 1e-7, 1e-7, name);
    });
  }

  it('scales the integer extremes to -1 and (almost) 1', async () => {
    const a = await readWav(join(dir, 'mono_s16.wav'));
    expect(a.samples[0]).toBe(-1);
    expect(a.samples[1]).toBe(32767 / 32768);
  });
});

describe.skipIf(!haveEspeak)('espeak-ng output', () => {
  it('reads a file from espeak-ng -w, and the same speech from --stdout (streaming placeholder sizes)', async () => {
    const path = join(tmp, 'four-two.wav');
    execFileSync('espeak-ng', ['-w', path, 'four two']);
    const a = await readWav(path);
    expect(a.sampleRate).toBe(22050);
    expect(a.channels).toBe(1);
    expect(a.format).toBe('s16le');
    expect(a.samples.length).toBeGreaterThan(0.4 * 22050);
    const rms = Math.sqrt(a.samples.reduce((s, x) => s + x * x, 0) / a.samples.length);
    expect(rms).toBeGreaterThan(0.01);
    expect(Math.max(...a.samples.map(Math.abs))).toBeLessThanOrEqual(1);
    const piped = decodeWav(execFileSync('espeak-ng', ['--stdout', 'four two']), 'espeak-ng --stdout');
    expect(piped.samples).toEqual(a.samples);
  });
});

describe.skipIf(!existsSync(numbersRaw))('raw PCM', () => {
  it("reads pocketsphinx's numbers.raw (16 kHz s16le mono)", async () => {
    const a = await readPcm(numbersRaw, { sampleRate: 16000, format: 's16le' });
    const bytes = readFileSync(numbersRaw);
    expect(a.samples.length).toBe(bytes.byteLength / 2);
    expect(a.samples[1000]).toBe(bytes.readInt16LE(2000) / 32768);
    expect(a.sampleRate).toBe(16000);
  });
});

describe('encodeWav / writeWav', () => {
  it('16-bit PCM round-trips what decodeWav read bit for bit', async () => {
    const a = await readWav(join(dir, 'mono_s16.wav'));
    const b = decodeWav(encodeWav(a.samples, a.sampleRate));
    expect(b.samples).toEqual(a.samples);
    expect(b.sampleRate).toBe(16000);
    expect(encodeWav(a.samples, a.sampleRate)).toEqual(new Uint8Array(readFileSync(join(dir, 'mono_s16.wav'))));
  });

  it('float32 stereo round-trips exactly and mixes to mono', async () => {
    const l = Float32Array.from([0.5, -0.25, 1.5, 0]), r = Float32Array.from([0.25, 0.25, -0.5, 1e-9]);
    const path = join(tmp, 'st.wav');
    await writeWav(path, [l, r], 8000, { format: 'f32le' });
    const a = await readWav(path);
    expect(a).toEqual({ samples: Float32Array.from([0.375, 0, 0.5, 5e-10]), sampleRate: 8000, channels: 2, format: 'f32le' });
  });

  it('16-bit clips out-of-range values', () => {
    const a = decodeWav(encodeWav(Float32Array.from([2, -2, 0.5]), 100));
    expect(Array.from(a.samples)).toEqual([32767 / 32768, -1, 0.5]);
  });

  it('rejects bad arguments', () => {
    expect(() => encodeWav(new Float32Array(3), 0)).toThrow(/encodeWav: sampleRate must be a positive integer, got 0/);
    expect(() => encodeWav([new Float32Array(3), new Float32Array(2)], 8000)).toThrow(/channels differ in length \(3, 2\)/);
    expect(() => encodeWav(new Float32Array(3), 8000, { format: 's24le' as 's16le' })).toThrow(/format must be/);
  });
});

describe('bad input', () => {
  const good = new Uint8Array(readFileSync(join(dir, 'mono_s16.wav')));
  const edit = (f: (v: DataView, b: Uint8Array) => void, bytes = good): Uint8Array => {
    const b = bytes.slice();
    f(new DataView(b.buffer), b);
    return b;
  };

  it('not RIFF', () => {
    expect(() => decodeWav(new TextEncoder().encode('ID3\u0003 this is an mp3 file'), 'song.mp3')).toThrow(/wav: song\.mp3: not a RIFF\/WAVE file \(starts with "ID3/);
    expect(() => decodeWav(new Uint8Array(5), 'x.wav')).toThrow(/wav: x\.wav: not a WAV file: 5 bytes/);
  });

  it('truncated data chunk', () => {
    expect(() => decodeWav(good.subarray(0, good.length - 7), 'cut.wav')).toThrow(/wav: cut\.wav: truncated data chunk: it declares 80 bytes but only 73 follow/);
    expect(() => decodeWav(good.subarray(0, 30), 'cut.wav')).toThrow(/cut\.wav: truncated "fmt " chunk/);
  });

  it('unsupported format tag and bit depth', () => {
    expect(() => decodeWav(edit((v) => v.setUint16(20, 2, true)), 'adpcm.wav')).toThrow(/adpcm\.wav: unsupported format tag 0x0002 \(Microsoft ADPCM\)/);
    expect(() => decodeWav(edit((v) => v.setUint16(34, 12, true)), 'b12.wav')).toThrow(/b12\.wav: unsupported bit depth 12 for PCM/);
    expect(() => decodeWav(edit((v) => { v.setUint16(20, 3, true); }), 'f16.wav')).toThrow(/unsupported bit depth 16 for IEEE float/);
  });

  it('zero-length signal', () => {
    const empty = encodeWav(new Float32Array(0), 16000);
    expect(() => decodeWav(empty, 'empty.wav')).toThrow(/wav: empty\.wav: zero-length signal/);
    expect(() => decodePcm(new Uint8Array(0), { sampleRate: 16000, format: 's16le' }, 'e.raw')).toThrow(/e\.raw: zero-length signal/);
  });

  it('inconsistent headers, missing chunks', () => {
    expect(() => decodeWav(edit((v) => v.setUint16(32, 4, true)), 'a.wav')).toThrow(/a\.wav: block align 4 does not match 1 channel\(s\) of 16 bits/);
    expect(() => decodeWav(edit((_, b) => b.set([0x66, 0x6d, 0x74, 0x78], 12)), 'nofmt.wav')).toThrow(/nofmt\.wav: data chunk comes before the fmt chunk/);
    expect(() => decodeWav(edit((v) => v.setUint32(40, 79, true)), 'odd.wav')).toThrow(/odd\.wav: data chunk of 79 bytes is not a whole number of 2-byte frames/);
    expect(() => decodeWav(good.subarray(0, 36), 'nodata.wav')).toThrow(/nodata\.wav: no data chunk/);
  });

  it('raw PCM whose size is not a whole number of frames', async () => {
    const path = join(dir, 'three_channels_s16.raw');
    await expect(readPcm(path, { sampleRate: 16000, format: 's24le' })).resolves.toBeDefined();
    await expect(readPcm(path, { sampleRate: 16000, format: 's16le', channels: 7 })).rejects.toThrow(/three_channels_s16\.raw: 240 bytes is not a multiple of the frame size 14 \(7 channel\(s\) of s16le\)/);
    await expect(readPcm(path, { sampleRate: 0, format: 's16le' })).rejects.toThrow(/readPcm: .*: sampleRate must be a positive integer, got 0/);
    await expect(readPcm(path, { sampleRate: 16000, format: 'mp3' as PcmFormat })).rejects.toThrow(/format must be one of u8, s16le/);
  });

  it('a missing file names the path', async () => {
    await expect(readWav(join(tmp, 'nope.wav'))).rejects.toThrow(/wav: .*nope\.wav: cannot read \(ENOENT/);
  });
});

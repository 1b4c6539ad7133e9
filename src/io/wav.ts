// Reading and writing audio: RIFF/WAVE (PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE) and raw PCM.
//
// Samples come back as float32 in [-1, 1) with the usual scaling (int / 2^(bits-1), unsigned 8-bit centred on 128),
// the channels averaged to mono, as torchaudio / soundfile then `.mean(0)` would give. Node's fs is imported lazily so
// that browser bundles, which only use decodeWav / encodeWav / decodePcm, do not pull it in.

import { fs } from '#platform';

/** Sample encodings, named as ffmpeg / sox name raw formats. */
export type PcmFormat = 'u8' | 's16le' | 's24le' | 's32le' | 'f32le' | 'f64le';

export interface Audio {
  /** Mono samples: the channels averaged, scaled to [-1, 1). */
  samples: Float32Array;
  sampleRate: number;
  /** Channels in the source (before mixing to mono). */
  channels: number;
  /** How the source stored its samples. */
  format: PcmFormat;
}

export interface PcmOptions {
  sampleRate: number;
  format: PcmFormat;
  /** Interleaved channels in the data (default 1). */
  channels?: number;
}

export interface EncodeWavOptions {
  /** 's16le' (16-bit PCM, the default) or 'f32le' (32-bit IEEE float). */
  format?: 's16le' | 'f32le';
}

const BYTES: Record<PcmFormat, number> = { u8: 1, s16le: 2, s24le: 3, s32le: 4, f32le: 4, f64le: 8 };
const FORMAT_TAG_PCM = 1;
const FORMAT_TAG_FLOAT = 3;
const FORMAT_TAG_EXTENSIBLE = 0xfffe;
/** Names of a few format tags met in the wild, so that the error says what the file is. */
const TAG_NAMES: Record<number, string> = {
  2: 'Microsoft ADPCM', 6: 'A-law', 7: 'mu-law', 0x11: 'IMA ADPCM', 0x31: 'GSM 6.10', 0x50: 'MPEG', 0x55: 'MPEG layer 3',
};
// Streaming writers (e.g. `espeak-ng --stdout`, ffmpeg to a pipe) cannot seek back and leave a placeholder size.
const STREAMING_SIZES = new Set([0xffffffff, 0x7ffff000, 0x7fffffff]);

function fail(source: string, msg: string): never {
  throw new Error(`wav: ${source}: ${msg}`);
}

function fourcc(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at]!, b[at + 1]!, b[at + 2]!, b[at + 3]!);
}

function printable(id: string): string {
  return JSON.stringify(id);
}

/** Decodes interleaved samples of `format` to per-frame mono averages (float32). */
function decodeInterleaved(bytes: Uint8Array, format: PcmFormat, channels: number, frames: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(frames);
  const width = BYTES[format];
  const read = ((): ((at: number) => number) => {
    switch (format) {
      case 'u8': return (at) => (view.getUint8(at) - 128) / 128;
      case 's16le': return (at) => view.getInt16(at, true) / 32768;
      case 's24le': return (at) => ((view.getUint8(at) | (view.getUint8(at + 1) << 8) | (view.getInt8(at + 2) << 16)) / 8388608);
      case 's32le': return (at) => view.getInt32(at, true) / 2147483648;
      case 'f32le': return (at) => view.getFloat32(at, true);
      case 'f64le': return (at) => view.getFloat64(at, true);
    }
  })();
  let at = 0;
  for (let f = 0; f < frames; f++) {
    let s = 0;
    for (let c = 0; c < channels; c++, at += width) s += read(at);
    out[f] = channels === 1 ? s : s / channels;
  }
  return out;
}

function checkPcmOptions(where: string, opts: PcmOptions): number {
  const { sampleRate, format } = opts;
  const channels = opts.channels ?? 1;
  if (!Number.isInteger(sampleRate) || sampleRate <= 0) throw new Error(`${where}: sampleRate must be a positive integer, got ${sampleRate}`);
  if (!Number.isInteger(channels) || channels <= 0) throw new Error(`${where}: channels must be a positive integer, got ${channels}`);
  if (!Object.prototype.hasOwnProperty.call(BYTES, format)) {
    throw new Error(`${where}: format must be one of ${Object.keys(BYTES).join(', ')}, got ${JSON.stringify(format)}`);
  }
  return channels;
}

/** Decodes raw interleaved PCM (no header). `source` names the data in errors. */
export function decodePcm(bytes: Uint8Array, opts: PcmOptions, source = '<bytes>'): Audio {
  const channels = checkPcmOptions(`decodePcm: ${source}`, opts);
  const frameSize = BYTES[opts.format] * channels;
  if (bytes.byteLength === 0) fail(source, 'zero-length signal (no bytes)');
  if (bytes.byteLength % frameSize !== 0) {
    fail(source, `${bytes.byteLength} bytes is not a multiple of the frame size ${frameSize} (${channels} channel(s) of ${opts.format}): wrong format or channels, or a truncated file`);
  }
  const frames = bytes.byteLength / frameSize;
  return { samples: decodeInterleaved(bytes, opts.format, channels, frames), sampleRate: opts.sampleRate, channels, format: opts.format };
}

interface FmtChunk {
  tag: number;
  channels: number;
  sampleRate: number;
  blockAlign: number;
  bits: number;
}

function parseFmt(b: Uint8Array, at: number, size: number, source: string): FmtChunk {
  if (size < 16) fail(source, `fmt chunk is ${size} bytes, expected at least 16`);
  const v = new DataView(b.buffer, b.byteOffset + at, size);
  let tag = v.getUint16(0, true);
  const fmt = { channels: v.getUint16(2, true), sampleRate: v.getUint32(4, true), blockAlign: v.getUint16(12, true), bits: v.getUint16(14, true) };
  if (tag === FORMAT_TAG_EXTENSIBLE) {
    if (size < 40) fail(source, `WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes, expected 40`);
    // The sub-format GUID's first two bytes are the format tag (KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT).
    tag = v.getUint16(24, true);
  }
  return { tag, ...fmt };
}

function formatOf(fmt: FmtChunk, source: string): PcmFormat {
  if (fmt.tag === FORMAT_TAG_PCM) {
    const f = ({ 8: 'u8', 16: 's16le', 24: 's24le', 32: 's32le' } as Record<number, PcmFormat>)[fmt.bits];
    if (!f) fail(source, `unsupported bit depth ${fmt.bits} for PCM (supported: 8, 16, 24, 32)`);
    return f;
  }
  if (fmt.tag === FORMAT_TAG_FLOAT) {
    const f = ({ 32: 'f32le', 64: 'f64le' } as Record<number, PcmFormat>)[fmt.bits];
    if (!f) fail(source, `unsupported bit depth ${fmt.bits} for IEEE float (supported: 32, 64)`);
    return f;
  }
  const name = TAG_NAMES[fmt.tag] ? ` (${TAG_NAMES[fmt.tag]})` : '';
  return fail(source, `unsupported format tag 0x${fmt.tag.toString(16).padStart(4, '0')}${name}; supported: PCM (1), IEEE float (3), WAVE_FORMAT_EXTENSIBLE with either`);
}

/** Decodes a RIFF/WAVE file held in memory. `source` (a file name) names the data in errors. */
export function decodeWav(bytes: Uint8Array, source = '<bytes>'): Audio {
  if (bytes.byteLength < 12) fail(source, `not a WAV file: ${bytes.byteLength} bytes is shorter than a RIFF header`);
  const riff = fourcc(bytes, 0);
  if (riff === 'RIFX') fail(source, 'big-endian RIFX files are not supported');
  if (riff === 'RF64') fail(source, 'RF64 (WAV over 4 GB) is not supported');
  if (riff !== 'RIFF' || fourcc(bytes, 8) !== 'WAVE') fail(source, `not a RIFF/WAVE file (starts with ${printable(fourcc(bytes, 0))}...${printable(fourcc(bytes, 8))})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let fmt: FmtChunk | null = null;
  let data: Uint8Array | null = null;
  let at = 12;
  while (at + 8 <= bytes.byteLength && data === null) {
    const id = fourcc(bytes, at);
    const size = view.getUint32(at + 4, true);
    const body = at + 8;
    const left = bytes.byteLength - body;
    if (id === 'data') {
      if (fmt === null) fail(source, 'data chunk comes before the fmt chunk');
      let n = size;
      if (size > left) {
        if (!STREAMING_SIZES.has(size)) fail(source, `truncated data chunk: it declares ${size} bytes but only ${left} follow`);
        n = left - (left % Math.max(1, fmt.blockAlign));
      }
      data = bytes.subarray(body, body + n);
      break;
    }
    if (size > left) fail(source, `truncated ${printable(id)} chunk: it declares ${size} bytes but only ${left} follow`);
    if (id === 'fmt ') fmt = parseFmt(bytes, body, size, source);
    // Unknown chunks (LIST, fact, cue, ...) are skipped; chunks are padded to an even length.
    at = body + size + (size & 1);
  }
  if (fmt === null) fail(source, 'no fmt chunk');
  if (data === null) fail(source, 'no data chunk');
  const format = formatOf(fmt, source);
  if (fmt.channels === 0) fail(source, 'fmt chunk declares 0 channels');
  if (fmt.sampleRate === 0) fail(source, 'fmt chunk declares a sample rate of 0');
  const frameSize = fmt.channels * BYTES[format];
  if (fmt.blockAlign !== frameSize) fail(source, `block align ${fmt.blockAlign} does not match ${fmt.channels} channel(s) of ${fmt.bits} bits (${frameSize} bytes)`);
  if (data.byteLength === 0) fail(source, 'zero-length signal (the data chunk is empty)');
  if (data.byteLength % frameSize !== 0) fail(source, `data chunk of ${data.byteLength} bytes is not a whole number of ${frameSize}-byte frames`);
  const frames = data.byteLength / frameSize;
  return { samples: decodeInterleaved(data, format, fmt.channels, frames), sampleRate: fmt.sampleRate, channels: fmt.channels, format };
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  const { readFile } = await fs(`reading ${path} (in a browser decode the bytes)`);
  try {
    return await readFile(path);
  } catch (e) {
    throw new Error(`${what}: ${path}: cannot read (${(e as Error).message})`);
  }
}

/** Reads a WAV file: mono float32 samples, the sample rate, the source's channel count and sample format. */
export async function readWav(path: string): Promise<Audio> {
  return decodeWav(await readBytes(path, 'wav'), path);
}

/** Reads a headerless PCM file (e.g. pocketsphinx's 16 kHz s16le test recordings). */
export async function readPcm(path: string, opts: PcmOptions): Promise<Audio> {
  checkPcmOptions(`readPcm: ${path}`, opts);
  return decodePcm(await readBytes(path, 'wav'), opts, path);
}

/**
 * Encodes samples as a WAV file: one Float32Array (mono) or one per channel (interleaved on write). 16-bit PCM scales
 * by 32768 and clips to [-32768, 32767] (so that what decodeWav read comes back bit for bit); float32 stores as is.
 */
export function encodeWav(samples: Float32Array | readonly Float32Array[], sampleRate: number, opts: EncodeWavOptions = {}): Uint8Array {
  const format = opts.format ?? 's16le';
  if (format !== 's16le' && format !== 'f32le') throw new Error(`encodeWav: format must be 's16le' or 'f32le', got ${JSON.stringify(format)}`);
  if (!Number.isInteger(sampleRate) || sampleRate <= 0) throw new Error(`encodeWav: sampleRate must be a positive integer, got ${sampleRate}`);
  const chans = samples instanceof Float32Array ? [samples] : [...samples];
  if (chans.length === 0) throw new Error('encodeWav: no channels');
  const frames = chans[0]!.length;
  if (chans.some((c) => c.length !== frames)) throw new Error(`encodeWav: channels differ in length (${chans.map((c) => c.length).join(', ')})`);
  const width = BYTES[format];
  const blockAlign = width * chans.length;
  const dataBytes = frames * blockAlign;
  const out = new Uint8Array(44 + dataBytes);
  const v = new DataView(out.buffer);
  const ascii = (at: number, s: string): void => { for (let i = 0; i < 4; i++) out[at + i] = s.charCodeAt(i); };
  ascii(0, 'RIFF');
  v.setUint32(4, 36 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, format === 'f32le' ? FORMAT_TAG_FLOAT : FORMAT_TAG_PCM, true);
  v.setUint16(22, chans.length, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * blockAlign, true);
  v.setUint16(32, blockAlign, true);
  v.setUint16(34, width * 8, true);
  ascii(36, 'data');
  v.setUint32(40, dataBytes, true);
  let at = 44;
  for (let f = 0; f < frames; f++) {
    for (const c of chans) {
      const x = c[f]!;
      if (format === 'f32le') v.setFloat32(at, x, true);
      else v.setInt16(at, Number.isNaN(x) ? 0 : Math.max(-32768, Math.min(32767, Math.round(x * 32768))), true);
      at += width;
    }
  }
  return out;
}

/** Writes a WAV file (see encodeWav). */
export async function writeWav(path: string, samples: Float32Array | readonly Float32Array[], sampleRate: number, opts: EncodeWavOptions = {}): Promise<void> {
  const { writeFile } = await fs(`writing ${path} (in a browser use encodeWav)`);
  await writeFile(path, encodeWav(samples, sampleRate, opts));
}

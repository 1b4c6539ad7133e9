// Spoken digit strings synthesised with espeak-ng across English voices, variants, speeds, pitches and noise; seeded, cached on disk.

import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { decodeWav } from '../io/wav.js';
import { resample } from '../processors/resample.js';
import { Generator } from '../tensor/random.js';

/** The digits' words, index = digit. */
export const DIGIT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'] as const;
/** The recognizer's words: the ten digits and "oh", the other way to say 0 (TIDIGITS keeps them apart too). */
export const WORDS = [...DIGIT_WORDS, 'oh'] as const;

/** Audio is delivered at this rate (what Whisper's features and pocketsphinx's en-us model expect). */
export const SAMPLE_RATE = 16000;

const PACKAGE_HINT = 'install the Debian package espeak-ng (apt-get install espeak-ng)';

/** espeak-ng's version line and data folder; a clear error naming the Debian package when the binary is absent. */
export function checkEspeak(bin = 'espeak-ng'): { version: string; dataDir: string } {
  let out: string;
  try {
    out = execFileSync(bin, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`spoken digits: '${bin}' was not found: ${PACKAGE_HINT}`);
    throw new Error(`spoken digits: '${bin} --version' failed (${(e as Error).message.split('\n')[0]}); ${PACKAGE_HINT}`);
  }
  const version = out.split('\n')[0]!.trim();
  const dataDir = /Data at:\s*(\S+)/.exec(out)?.[1] ?? '';
  return { version, dataDir };
}

/**
 * eSpeak NG's own English voices (accents), as their voice files (`gmw/en-US`, ...): `espeak-ng --voices=en` less
 * the MBROLA voices (`mb/...`), which need the separate mbrola synthesiser and its databases.
 */
export function englishAccents(bin = 'espeak-ng'): string[] {
  checkEspeak(bin);
  const out = execFileSync(bin, ['--voices=en'], { encoding: 'utf8' });
  const files = new Set<string>();
  for (const line of out.split('\n').slice(1)) {
    const file = line.trim().split(/\s+/)[4];
    if (file?.startsWith('gmw/')) files.add(file);
  }
  if (files.size === 0) throw new Error(`spoken digits: '${bin} --voices=en' lists no eSpeak English voice (gmw/en*); is espeak-ng-data complete?`);
  return [...files].sort();
}

/**
 * Voice variants (`+m1`, `+f3`, `+klatt`, ...): the files of espeak-ng-data/voices/!v, sorted. Names with white space
 * are left out: they cannot be written after `+` on the command line.
 */
export function voiceVariants(bin = 'espeak-ng'): string[] {
  const { dataDir } = checkEspeak(bin);
  const dir = join(dataDir, 'voices', '!v');
  if (!dataDir || !existsSync(dir)) throw new Error(`spoken digits: no variant folder at '${dir}' (from '${bin} --version'); ${PACKAGE_HINT}`);
  return readdirSync(dir).filter((n) => !/\s/.test(n)).sort();
}

export interface VoiceSplit {
  train: string[];
  val: string[];
  test: string[];
}

/**
 * Variants split three ways, seeded: test and validation variants are never heard in training, in any accent. A
 * "voice" is an accent with a variant, so holding out variants holds out every voice made from them.
 */
export function splitVariants(variants: readonly string[], opts: { test: number; val: number; seed: number }): VoiceSplit {
  if (!(Number.isSafeInteger(opts.test) && opts.test >= 1 && Number.isSafeInteger(opts.val) && opts.val >= 0)) {
    throw new Error(`splitVariants: test must be a positive integer and val a non-negative integer, got ${opts.test} and ${opts.val}`);
  }
  if (opts.test + opts.val >= variants.length) {
    throw new Error(`splitVariants: ${opts.test} test + ${opts.val} validation variants leave none of the ${variants.length} for training`);
  }
  const perm = new Generator(opts.seed).permutation(variants.length);
  const pick = (a: number, b: number) => Array.from(perm.subarray(a, b), (i) => variants[i]!).sort();
  return { test: pick(0, opts.test), val: pick(opts.test, opts.test + opts.val), train: pick(opts.test + opts.val, variants.length) };
}

/** How utterances are drawn. Ranges are [low, high], uniform. */
export interface SynthesisSettings {
  minDigits: number;
  maxDigits: number;
  /** Words per minute (espeak-ng -s; its default is 175). */
  speed: [number, number];
  /** espeak-ng -p, 0-99 (default 50). */
  pitch: [number, number];
  /** Signal-to-noise ratio of the added noise in dB. */
  snrDb: [number, number];
  /** Fraction of utterances left without noise. */
  cleanFraction: number;
  /** Chance that a 0 is said "oh" instead of "zero". */
  ohProbability: number;
  /** Overall level in dB relative to espeak-ng's output. */
  gainDb: [number, number];
  /** Silence added before and after the speech, seconds. */
  padSeconds: [number, number];
}

export const DEFAULT_SETTINGS: SynthesisSettings = {
  minDigits: 1, maxDigits: 7, speed: [120, 260], pitch: [20, 80], snrDb: [5, 40], cleanFraction: 0.1,
  ohProbability: 0.25, gainDb: [-20, 0], padSeconds: [0, 0.3],
};

/** One utterance to synthesise: every random choice made, so that synthesis is a pure function of it. */
export interface UtteranceSpec {
  /** The transcript, e.g. "four two oh seven". */
  text: string;
  /** espeak-ng voice file (accent). */
  accent: string;
  variant: string;
  speed: number;
  pitch: number;
  /** null: no noise. */
  snrDb: number | null;
  noise: 'white' | 'pink';
  gainDb: number;
  leadSeconds: number;
  trailSeconds: number;
  /** Seed of the noise samples. */
  noiseSeed: number;
}

/** The voice of an utterance as espeak-ng's -v argument. */
export const voiceName = (u: Pick<UtteranceSpec, 'accent' | 'variant'>): string => `${u.accent}+${u.variant}`;

function checkSettings(s: SynthesisSettings): void {
  const range = (k: keyof SynthesisSettings, lo: number, hi: number) => {
    const r = s[k] as [number, number];
    if (!(Array.isArray(r) && r.length === 2 && r[0] >= lo && r[1] <= hi && r[0] <= r[1])) {
      throw new Error(`spoken digits: ${k} must be [low, high] within [${lo}, ${hi}], got ${JSON.stringify(r)}`);
    }
  };
  if (!(Number.isSafeInteger(s.minDigits) && Number.isSafeInteger(s.maxDigits) && s.minDigits >= 1 && s.maxDigits >= s.minDigits)) {
    throw new Error(`spoken digits: need 1 <= minDigits <= maxDigits, got ${s.minDigits} and ${s.maxDigits}`);
  }
  range('speed', 80, 450);
  range('pitch', 0, 99);
  range('snrDb', -20, 100);
  range('gainDb', -60, 20);
  range('padSeconds', 0, 5);
  for (const k of ['cleanFraction', 'ohProbability'] as const) {
    if (!(s[k] >= 0 && s[k] <= 1)) throw new Error(`spoken digits: ${k} must be in [0, 1], got ${s[k]}`);
  }
}

/**
 * `count` utterances, each a random digit string in a random voice (accent x variant from the lists) with random
 * speed, pitch, level, padding and noise; the same seed gives the same list.
 */
export function sampleUtterances(count: number, voices: { accents: readonly string[]; variants: readonly string[] }, settings: SynthesisSettings, seed: number): UtteranceSpec[] {
  checkSettings(settings);
  if (voices.accents.length === 0 || voices.variants.length === 0) throw new Error('spoken digits: no voices to sample from');
  const gen = new Generator(seed);
  const u = () => gen.uniform(1)[0]!;
  const pick = <T>(xs: readonly T[]): T => xs[Math.min(xs.length - 1, Math.floor(u() * xs.length))]!;
  const within = (r: [number, number]) => r[0] + u() * (r[1] - r[0]);
  const out: UtteranceSpec[] = [];
  for (let i = 0; i < count; i++) {
    const n = settings.minDigits + Math.floor(u() * (settings.maxDigits - settings.minDigits + 1));
    const digits = Array.from({ length: n }, () => Math.floor(u() * 10));
    const text = digits.map((d) => (d === 0 && u() < settings.ohProbability ? 'oh' : DIGIT_WORDS[d]!)).join(' ');
    const clean = u() < settings.cleanFraction;
    out.push({
      text, accent: pick(voices.accents), variant: pick(voices.variants),
      speed: Math.round(within(settings.speed)), pitch: Math.round(within(settings.pitch)),
      snrDb: clean ? null : Math.round(within(settings.snrDb) * 10) / 10, noise: u() < 0.5 ? 'white' : 'pink',
      gainDb: Math.round(within(settings.gainDb) * 10) / 10,
      leadSeconds: Math.round(within(settings.padSeconds) * 1000) / 1000, trailSeconds: Math.round(within(settings.padSeconds) * 1000) / 1000,
      noiseSeed: Math.floor(u() * 2 ** 31),
    });
  }
  return out;
}

/** espeak-ng's WAV for one utterance (its native 22,050 Hz), through a pipe. */
function runEspeak(bin: string, u: UtteranceSpec): Promise<Uint8Array> {
  const args = ['-v', voiceName(u), '-s', String(u.speed), '-p', String(u.pitch), '--stdout', u.text];
  return new Promise((resolve, reject) => {
    execFile(bin, args, { encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') reject(new Error(`spoken digits: '${bin}' was not found: ${PACKAGE_HINT}`));
        else reject(new Error(`spoken digits: ${bin} ${args.join(' ')} failed: ${stderr.toString().trim() || err.message}`));
      } else resolve(new Uint8Array(stdout.buffer, stdout.byteOffset, stdout.byteLength));
    });
  });
}

/**
 * Adds noise at `snrDb` relative to the power of `speech` (white, or pink by Paul Kellet's filter of white noise)
 * to `out`, in place. The noise covers the padding too, as a microphone's would.
 */
export function addNoise(out: Float32Array, speechPower: number, snrDb: number, kind: 'white' | 'pink', seed: number): void {
  const white = new Generator(seed).normal(out.length);
  const noise = new Float64Array(out.length);
  if (kind === 'white') noise.set(white);
  else {
    let b0 = 0, b1 = 0, b2 = 0;
    for (let i = 0; i < white.length; i++) {
      const w = white[i]!;
      b0 = 0.99765 * b0 + w * 0.099046;
      b1 = 0.963 * b1 + w * 0.2965164;
      b2 = 0.57 * b2 + w * 1.0526913;
      noise[i] = b0 + b1 + b2 + w * 0.1848;
    }
  }
  let p = 0;
  for (const v of noise) p += v * v;
  p /= Math.max(1, noise.length);
  const scale = p > 0 ? Math.sqrt(speechPower / 10 ** (snrDb / 10) / p) : 0;
  for (let i = 0; i < out.length; i++) out[i]! += scale * noise[i]!;
}

/** One utterance as 16 kHz mono float samples: espeak-ng, resampled, padded, scaled, noise added, clipped to [-1, 1]. */
export async function synthesize(u: UtteranceSpec, bin = 'espeak-ng'): Promise<Float32Array> {
  const wav = decodeWav(await runEspeak(bin, u), `espeak-ng -v ${voiceName(u)} "${u.text}"`);
  if (wav.samples.length === 0) throw new Error(`spoken digits: espeak-ng -v ${voiceName(u)} gave no audio for "${u.text}"`);
  const speech = wav.sampleRate === SAMPLE_RATE ? wav.samples : resample(wav.samples, wav.sampleRate, SAMPLE_RATE);
  const lead = Math.round(u.leadSeconds * SAMPLE_RATE), trail = Math.round(u.trailSeconds * SAMPLE_RATE);
  const out = new Float32Array(lead + speech.length + trail);
  const gain = 10 ** (u.gainDb / 20);
  let power = 0;
  for (let i = 0; i < speech.length; i++) {
    const v = speech[i]! * gain;
    out[lead + i] = v;
    power += v * v;
  }
  power /= speech.length;
  if (u.snrDb !== null) addNoise(out, power, u.snrDb, u.noise, u.noiseSeed);
  for (let i = 0; i < out.length; i++) out[i] = Math.max(-1, Math.min(1, out[i]!));
  return out;
}

/** Where synthesised sets are cached unless told otherwise: $ATTEND_CACHE/speech-digits or ~/.cache/attend/speech-digits. */
export function defaultCacheDir(): string {
  return join(process.env['ATTEND_CACHE'] ?? join(homedir(), '.cache', 'attend'), 'speech-digits');
}

export interface SynthesizeSetOptions {
  /** Cache folder (default defaultCacheDir()); null: no cache. */
  cacheDir?: string | null;
  bin?: string;
  /** espeak-ng processes running at once (default 2). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
  /** Utterances per cache file (default CACHE_CHUNK). */
  chunkSize?: number;
}

export interface SynthesizedSet {
  audio: Float32Array[];
  /** The cache key of the whole list (SHA-256 of the espeak-ng version and the specs). */
  key: string;
  /** True when every chunk came from the cache. */
  cached: boolean;
}

/** Samples rounded to 16 bits in place, as the cache stores them, so that a cached set equals a fresh one. */
function quantize(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = (Math.max(-32768, Math.min(32767, Math.round(x[i]! * 32768))) | 0) / 32768; // | 0: no -0
  return x;
}

/** Cache key of a list of specs: the synthesiser's version and every choice, so that any change makes a new entry. */
export function cacheKey(specs: readonly UtteranceSpec[], espeakVersion: string): string {
  return createHash('sha256').update(JSON.stringify({ format: 1, rate: SAMPLE_RATE, espeakVersion, specs })).digest('hex').slice(0, 24);
}

/** Utterances per cache file: a killed run keeps what it finished, and a longer list reuses a shorter one's chunks. */
export const CACHE_CHUNK = 500;

async function readChunk(pcmPath: string, indexPath: string, count: number): Promise<Float32Array[] | null> {
  if (!existsSync(pcmPath) || !existsSync(indexPath)) return null;
  const index = JSON.parse(await readFile(indexPath, 'utf8')) as { lengths: number[] };
  const bytes = await readFile(pcmPath);
  const total = index.lengths.reduce((a, b) => a + b, 0);
  if (index.lengths.length !== count || bytes.byteLength !== 2 * total) return null; // damaged or partial: synthesise again
  const pcm = new Int16Array(bytes.buffer, bytes.byteOffset, total);
  let at = 0;
  return index.lengths.map((n) => {
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = pcm[at + i]! / 32768;
    at += n;
    return x;
  });
}

async function writeChunk(pcmPath: string, indexPath: string, audio: readonly Float32Array[], meta: Record<string, unknown>): Promise<void> {
  const total = audio.reduce((n, a) => n + a.length, 0);
  const pcm = new Int16Array(total);
  let at = 0;
  for (const a of audio) {
    for (let i = 0; i < a.length; i++) pcm[at + i] = Math.round(a[i]! * 32768);
    at += a.length;
  }
  const tmp = `.tmp-${process.pid}`;
  await writeFile(pcmPath + tmp, new Uint8Array(pcm.buffer));
  await rename(pcmPath + tmp, pcmPath);
  await writeFile(indexPath + tmp, JSON.stringify({ ...meta, lengths: audio.map((a) => a.length) }));
  await rename(indexPath + tmp, indexPath);
}

/**
 * Synthesises every spec (espeak-ng runs `concurrency` at a time while this thread resamples), or reads it from the
 * cache: per chunk of `chunkSize` specs, `<chunk key>.pcm` (16-bit little-endian samples, concatenated) and
 * `<chunk key>.json` (lengths), written atomically.
 */
export async function synthesizeSet(specs: readonly UtteranceSpec[], opts: SynthesizeSetOptions = {}): Promise<SynthesizedSet> {
  const bin = opts.bin ?? 'espeak-ng';
  const { version } = checkEspeak(bin);
  const dir = opts.cacheDir === undefined ? defaultCacheDir() : opts.cacheDir;
  if (dir) await mkdir(dir, { recursive: true });
  const audio: Float32Array[] = [];
  let cached = true;
  const size = opts.chunkSize ?? CACHE_CHUNK;
  if (!(Number.isSafeInteger(size) && size >= 1)) throw new Error(`synthesizeSet: chunkSize must be a positive integer, got ${size}`);
  for (let c = 0; c < specs.length; c += size) {
    const chunk = specs.slice(c, c + size);
    const key = cacheKey(chunk, version);
    const pcmPath = dir ? join(dir, `${key}.pcm`) : '', indexPath = dir ? join(dir, `${key}.json`) : '';
    const hit = dir ? await readChunk(pcmPath, indexPath, chunk.length) : null;
    if (hit) {
      audio.push(...hit);
      opts.onProgress?.(audio.length, specs.length);
      continue;
    }
    cached = false;
    const out = new Array<Float32Array>(chunk.length);
    let next = 0;
    const worker = async () => {
      while (next < chunk.length) {
        const i = next++;
        out[i] = quantize(await synthesize(chunk[i]!, bin));
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 2) }, worker));
    if (dir) await writeChunk(pcmPath, indexPath, out, { key, espeakVersion: version, sampleRate: SAMPLE_RATE });
    audio.push(...out);
    opts.onProgress?.(audio.length, specs.length);
  }
  return { audio, key: cacheKey(specs, version), cached };
}

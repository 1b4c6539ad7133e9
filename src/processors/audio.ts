// Loading audio for a model: read a WAV (or headerless PCM) file, mix to mono, resample to the model's rate.

import { readPcm, readWav, type PcmOptions } from '../io/wav.js';
import { resample } from './resample.js';

export interface LoadAudioOptions {
  /** Rate the samples come back at (Hz, default 16000: Whisper's and wav2vec2's). */
  samplingRate?: number;
  /** The file is headerless PCM in this layout (e.g. { sampleRate: 16000, format: 's16le' }). */
  raw?: PcmOptions;
  /** Refuse audio longer than this many seconds (e.g. 30 for Whisper), naming the file and its duration. */
  maxSeconds?: number;
}

/** Mono float32 samples of an audio file at `samplingRate`, resampled band-limited (torchaudio's sinc_interp_hann). */
export async function loadAudio(path: string, opts: LoadAudioOptions = {}): Promise<Float32Array> {
  const rate = opts.samplingRate ?? 16000;
  if (!Number.isInteger(rate) || rate <= 0) throw new Error(`loadAudio: samplingRate must be a positive integer (Hz), got ${rate}`);
  const audio = opts.raw ? await readPcm(path, opts.raw) : await readWav(path);
  const seconds = audio.samples.length / audio.sampleRate;
  if (opts.maxSeconds !== undefined && seconds > opts.maxSeconds) {
    throw new Error(`loadAudio: ${path}: ${seconds.toFixed(2)} s of audio is longer than the ${opts.maxSeconds} s accepted`);
  }
  return resample(audio.samples, audio.sampleRate, rate);
}

// CLI command over Hugging Face speech models: transcribe (Whisper: audio -> text streamed as it decodes; wav2vec2: CTC).

import { ctcGreedyDecodeAsync } from '../generation/ctc.js';
import { generate, type GenerateOptions } from '../generation/generate.js';
import { TextStreamer } from '../generation/streamer.js';
import { whisperInitTokens } from '../generation/whisper.js';
import { readConfig } from '../io/hf.js';
import { AutoModelForCTC, AutoModelForSpeechSeq2Seq } from '../models/auto.js';
import { noGrad } from '../autograd/engine.js';
import { loadAudio } from '../processors/audio.js';
import { Wav2Vec2FeatureExtractor } from '../processors/wav2vec2.js';
import { WhisperFeatureExtractor } from '../processors/whisper.js';
import { Wav2Vec2CTCTokenizer } from '../tokenizers/ctc.js';
import { AutoTokenizer } from '../tokenizers/tokenizer.js';
import { generationOption, parseOptions, stringOption } from './args.js';
import type { CliCommand, Out } from './hf.js';

const stdout: Out = (t) => { process.stdout.write(t); };

export interface TranscribeOptions extends Pick<GenerateOptions, 'language' | 'task' | 'numBeams' | 'maxNewTokens'> {
  /** Called with the text decoded so far whenever it grows (greedy decoding only). */
  onText?: (text: string) => void;
}

export interface Transcription {
  text: string;
  /** The whole decoder sequence: start token, language, task, no-timestamps, the text's tokens, eos. */
  ids: number[];
}

/**
 * Transcribes one audio file with the Whisper model in `dir`: the audio is read (WAV, resampled to the model's
 * rate), turned into log-mel features by preprocessor_config.json's extractor and checked before the model loads;
 * audio longer than one chunk (30 s) is an error naming the file.
 */
export async function transcribe(dir: string, file: string, opts: TranscribeOptions = {}): Promise<Transcription> {
  const { json } = await readConfig(dir);
  if (json['model_type'] === 'wav2vec2') return transcribeCtc(dir, file, opts);
  const fe = await WhisperFeatureExtractor.fromPretrained(dir);
  const samples = await loadAudio(file, { samplingRate: fe.config.sampling_rate });
  let inputFeatures;
  try {
    ({ inputFeatures } = fe.call(samples, { samplingRate: fe.config.sampling_rate, truncation: false }));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const tok = await AutoTokenizer.fromPretrained(dir);
  const model = await AutoModelForSpeechSeq2Seq.fromPretrained(dir);
  // Default: as many tokens as the decoder has positions left after its prompt (transformers' max_length = 448).
  const start = model.generationConfig.decoderStartTokenId ?? 0;
  const promptLen = whisperInitTokens(model.generationConfig, start, opts).tokens.length;
  const limit = model.positionLimit()?.value ?? promptLen + 447;
  const stream = new TextStreamer(tok);
  const onToken = opts.onText && (opts.numBeams ?? 1) === 1
    ? ([t]: number[]) => {
      const before = stream.text;
      stream.put(t!);
      if (stream.text !== before) opts.onText!(stream.text);
    }
    : undefined;
  const seq = await generate(model, { inputFeatures }, {
    language: opts.language, task: opts.task, numBeams: opts.numBeams, maxNewTokens: opts.maxNewTokens ?? limit - promptLen + 1, onToken,
  });
  const ids = ((await seq.tolist()) as number[][])[0]!;
  return { text: tok.decode(ids, { skipSpecialTokens: true }), ids };
}

/**
 * Transcribes with a CTC model (wav2vec2): the waveform normalised by preprocessor_config.json's extractor, one
 * forward pass, the best token per frame, repeats collapsed and blanks dropped (vocab.json's tokenizer).
 */
async function transcribeCtc(dir: string, file: string, opts: TranscribeOptions): Promise<Transcription> {
  if ((opts.numBeams ?? 1) !== 1 || opts.language !== undefined || opts.task !== undefined) {
    throw new Error(`${dir}: a CTC model (wav2vec2) decodes greedily, without language or task: drop --num-beams, --language and --task`);
  }
  const fe = await Wav2Vec2FeatureExtractor.fromPretrained(dir);
  const tok = await Wav2Vec2CTCTokenizer.fromPretrained(dir);
  const samples = await loadAudio(file, { samplingRate: fe.config.sampling_rate });
  const model = await AutoModelForCTC.fromPretrained(dir);
  const { inputValues } = fe.call(samples, { samplingRate: fe.config.sampling_rate });
  const logits = noGrad(() => model.forward({ inputValues }).logits); // [1, frames, vocab]
  // Frame-level ids (blank = the pad token): the tokenizer collapses repeats and drops blanks, as HF's decode.
  const frames = ((await logits.argmax(-1).tolist()) as number[][])[0]!;
  const ids = (await ctcGreedyDecodeAsync(logits, { blank: tok.padTokenId }))[0]!;
  const text = tok.decode(frames);
  opts.onText?.(text);
  return { text, ids };
}

export const transcribeCommand: CliCommand = {
  summary: 'transcribe (or translate) a WAV file with a speech model (Whisper, streaming the text; wav2vec2 CTC)',
  usage: `attend transcribe --model DIR [options] audio.wav

DIR is a Hugging Face Whisper folder: config.json, model.safetensors, tokenizer.json, generation_config.json
(decoder prompt: forced_decoder_ids, lang_to_id, task_to_id, suppress_tokens) and preprocessor_config.json
(log-mel features; Whisper's defaults when absent). The audio is resampled to the model's rate; up to 30 s.
Or a wav2vec2 CTC folder (config.json, model.safetensors, vocab.json, preprocessor_config.json): greedy CTC
decoding, no language, task or beams.
  --language L         'en', 'english' or '<|en|>' (default: detected, for multilingual models)
  --task T             transcribe (default) or translate (into English)
  --num-beams N        beam search (prints the text at the end)
  --max-new-tokens N   tokens to decode at most (default: what the decoder's positions allow)
  --ids                also print the decoded token ids`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseOptions(args, {
      model: 'string', language: 'string', task: 'string', 'num-beams': 'string', 'max-new-tokens': 'string', ids: 'boolean', help: 'boolean',
    }, 'transcribe');
    if (values['help']) return out(`${this.usage}\n`);
    const numBeams = generationOption(values, 'num-beams', 'numBeams');
    const maxNewTokens = generationOption(values, 'max-new-tokens', 'maxNewTokens');
    const task = stringOption(values, 'task');
    if (task !== undefined && task !== 'transcribe' && task !== 'translate') throw new Error(`--task must be transcribe or translate, got '${task}'`);
    const dir = stringOption(values, 'model');
    if (!dir) throw new Error(`--model DIR is required\n\n${this.usage}`);
    if (positionals.length !== 1) throw new Error(`expected one audio file\n\n${this.usage}`);
    let shown = '';
    const result = await transcribe(dir, positionals[0]!, {
      language: stringOption(values, 'language'), task, numBeams, maxNewTokens,
      onText: (text) => {
        out(text.startsWith(shown) ? text.slice(shown.length) : `\n${text}`);
        shown = text;
      },
    });
    if (shown !== result.text) out(result.text.startsWith(shown) ? result.text.slice(shown.length) : `\n${result.text}`);
    out('\n');
    if (values['ids']) out(`ids: ${result.ids.join(' ')}\n`);
  },
};

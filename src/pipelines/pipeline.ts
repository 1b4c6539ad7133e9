// pipeline(task, modelDir): Hugging Face / transformers.js-style task pipelines (task names, argument names, output shapes).

import { noGrad } from '../autograd/engine.js';
import { generate, type GenerateOptions } from '../generation/generate.js';
import { readConfig } from '../io/hf.js';
import { AutoModel, AutoModelForCausalLM, AutoModelForCTC, AutoModelForImageClassification, AutoModelForSeq2SeqLM, AutoModelForSpeechSeq2Seq, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoModelForTokenClassification, type FromPretrainedOptions } from '../models/auto.js';
import type { PreTrainedModel } from '../models/base.js';
import { tensor } from '../tensor/create.js';
import { loadAudio } from '../processors/audio.js';
import { AutoImageProcessor, type ImageProcessor } from '../processors/image.js';
import { Wav2Vec2FeatureExtractor } from '../processors/wav2vec2.js';
import { WhisperFeatureExtractor } from '../processors/whisper.js';
import { Wav2Vec2CTCTokenizer } from '../tokenizers/ctc.js';
import type { ChatMessage } from '../tokenizers/chat-template.js';
import { AutoTokenizer, type Tokenizer } from '../tokenizers/tokenizer.js';
import { checkTexts, imageFrom, labelName, loadHead, run, softmax, topIndices, type ImageInput } from './common.js';
import { text2text, taskParams, type Text2TextPipeline } from './text2text.js';
import { tokenClassification, type TokenClassificationPipeline } from './token-classification.js';
import { zeroShotImageClassification, type ZeroShotImageClassificationPipeline } from './zero-shot-image.js';

export type { ImageInput } from './common.js';

export const SUPPORTED_TASKS = [
  'text-classification', 'fill-mask', 'text-generation', 'feature-extraction', 'image-classification', 'automatic-speech-recognition',
  'token-classification', 'text2text-generation', 'summarization', 'translation', 'zero-shot-image-classification',
] as const;
/** Other names of tasks, as transformers' pipeline() accepts them ('translation_en_to_de' also works). */
export const TASK_ALIASES = { ner: 'token-classification' } as const;
type TranslationTask = `translation_${string}_to_${string}`;
export type PipelineTask = (typeof SUPPORTED_TASKS)[number] | keyof typeof TASK_ALIASES | TranslationTask;
/** Every task name pipeline() accepts, for messages and help. */
export const TASK_NAMES = `${SUPPORTED_TASKS.join(', ')} (aliases: ${Object.keys(TASK_ALIASES).join(', ')}, translation_XX_to_YY)`;

export type PipelineOptions = FromPretrainedOptions;

export interface LabelScore { label: string; score: number }
export interface FillMaskResult { score: number; token: number; token_str: string; sequence: string }
export interface TextClassificationOptions {
  /** How many labels to return, best first (HF's top_k); null: all. Default 1. */
  topK?: number | null;
  /** HF's function_to_apply; default: sigmoid for multi-label or single-output models, else softmax. */
  functionToApply?: 'softmax' | 'sigmoid' | 'none';
}
export interface FillMaskOptions { topK?: number }
export interface ImageClassificationOptions {
  /** How many labels to return, best first (HF's top_k). Default 5 (at most the number of labels). */
  topK?: number;
}
export interface TextGenerationOptions extends GenerateOptions {
  /** Prepend the prompt to the generated text (HF's return_full_text). Default true. */
  returnFullText?: boolean;
}
export interface FeatureExtractionOptions {
  /** 'none' (default): one vector per token, [1, T, H]; 'mean' (over the tokens) or 'cls' (the first): [1, H]. */
  pooling?: 'none' | 'mean' | 'cls';
  /** Divide each vector by its L2 norm (sentence embeddings). Default false. */
  normalize?: boolean;
}
export type GeneratedText = { generated_text: string } | { generated_text: ChatMessage[] };

export type TextClassificationPipeline = (input: string | string[], opts?: TextClassificationOptions) => Promise<LabelScore[] | LabelScore[][]>;
export type FillMaskPipeline = (input: string | string[], opts?: FillMaskOptions) => Promise<FillMaskResult[] | FillMaskResult[][] | FillMaskResult[][][]>;
export type TextGenerationPipeline = (input: string | string[] | ChatMessage[], opts?: TextGenerationOptions) => Promise<GeneratedText[] | GeneratedText[][]>;
export type FeatureExtractionPipeline = (input: string | string[], opts?: FeatureExtractionOptions) => Promise<number[][][] | number[][] | (number[][][] | number[][])[]>;
export type ImageClassificationPipeline = (input: ImageInput | ImageInput[], opts?: ImageClassificationOptions) => Promise<LabelScore[] | LabelScore[][]>;
/** A WAV path (resampled to the model's rate) or mono samples already at the feature extractor's sampling_rate. */
export type AudioInput = string | Float32Array;
export type AsrOptions = Pick<GenerateOptions, 'language' | 'task' | 'numBeams' | 'maxNewTokens'>;
export type AsrPipeline = (input: AudioInput | AudioInput[], opts?: AsrOptions) => Promise<{ text: string } | { text: string }[]>;

interface TaskPipelines {
  'text-classification': TextClassificationPipeline;
  'token-classification': TokenClassificationPipeline;
  'fill-mask': FillMaskPipeline;
  'text-generation': TextGenerationPipeline;
  'text2text-generation': Text2TextPipeline;
  summarization: Text2TextPipeline;
  translation: Text2TextPipeline;
  'feature-extraction': FeatureExtractionPipeline;
  'image-classification': ImageClassificationPipeline;
  'zero-shot-image-classification': ZeroShotImageClassificationPipeline;
  'automatic-speech-recognition': AsrPipeline;
}
/** The callable a task name gives (aliases and translation_XX_to_YY included). */
export type PipelineFor<T extends PipelineTask> = T extends keyof TaskPipelines ? TaskPipelines[T]
  : T extends keyof typeof TASK_ALIASES ? TaskPipelines[(typeof TASK_ALIASES)[T]] : Text2TextPipeline;

/** The task a name stands for, or an error listing the names pipeline() knows. */
export function resolveTask(task: string): (typeof SUPPORTED_TASKS)[number] {
  if ((SUPPORTED_TASKS as readonly string[]).includes(task)) return task as (typeof SUPPORTED_TASKS)[number];
  if (Object.hasOwn(TASK_ALIASES, task)) return TASK_ALIASES[task as keyof typeof TASK_ALIASES];
  if (/^translation_[^_]+_to_[^_]+$/.test(task)) return 'translation';
  throw new Error(`pipeline: unknown task ${JSON.stringify(task)} (supported: ${TASK_NAMES})`);
}

/**
 * A callable for `task` on the Hugging Face folder `modelDir` (config.json, weights, tokenizer.json), as HF's
 * `pipeline(task, model=dir)`: e.g. `await (await pipeline('fill-mask', dir))('Paris is the [MASK] of France.')`.
 */
export async function pipeline<T extends PipelineTask>(task: T, modelDir: string, options: PipelineOptions = {}): Promise<PipelineFor<T>> {
  const t = resolveTask(task);
  let made: TaskPipelines[keyof TaskPipelines];
  if (t === 'text-classification') {
    const model = await loadHead(t, 'sequenceClassification', () => AutoModelForSequenceClassification.fromPretrained(modelDir, options));
    made = textClassification(model, await AutoTokenizer.fromPretrained(modelDir), (await readConfig(modelDir)).json);
  } else if (t === 'token-classification') {
    const model = await loadHead(t, 'tokenClassification', () => AutoModelForTokenClassification.fromPretrained(modelDir, options));
    made = tokenClassification(model, await AutoTokenizer.fromPretrained(modelDir), (await readConfig(modelDir)).json);
  } else if (t === 'fill-mask') {
    const model = await loadHead(t, 'maskedLM', () => AutoModelForMaskedLM.fromPretrained(modelDir, options));
    made = fillMask(model, await AutoTokenizer.fromPretrained(modelDir));
  } else if (t === 'text-generation') {
    const model = await loadHead(t, 'causalLM', () => AutoModelForCausalLM.fromPretrained(modelDir, options));
    made = textGeneration(model, await AutoTokenizer.fromPretrained(modelDir));
  } else if (t === 'text2text-generation' || t === 'summarization' || t === 'translation') {
    const { path, json } = await readConfig(modelDir);
    // transformers looks the task up under its full name (translation_en_to_de), or the first translation entry.
    const params = taskParams(t === 'translation' ? task : t, json, path);
    const model = await loadHead(t, 'seq2seqLM (an encoder-decoder such as T5 or BART)', () => AutoModelForSeq2SeqLM.fromPretrained(modelDir, options));
    made = text2text(t, model, await AutoTokenizer.fromPretrained(modelDir), params);
  } else if (t === 'automatic-speech-recognition') {
    made = (await readConfig(modelDir)).json['model_type'] === 'wav2vec2'
      ? await ctcSpeechRecognition(modelDir, await loadHead(t, 'ctc', () => AutoModelForCTC.fromPretrained(modelDir, options)))
      : await whisperSpeechRecognition(modelDir, await loadHead(t, 'speechSeq2Seq', () => AutoModelForSpeechSeq2Seq.fromPretrained(modelDir, options)));
  } else if (t === 'image-classification') {
    const model = await loadHead(t, 'imageClassification', () => AutoModelForImageClassification.fromPretrained(modelDir, options));
    made = imageClassification(model, await AutoImageProcessor.fromPretrained(modelDir), (await readConfig(modelDir)).json);
  } else if (t === 'zero-shot-image-classification') {
    const model = await loadHead(t, 'model (CLIPModel: image and text towers)', () => AutoModel.fromPretrained(modelDir, options));
    made = zeroShotImageClassification(model, await AutoTokenizer.fromPretrained(modelDir), await AutoImageProcessor.fromPretrained(modelDir));
  } else {
    const model = await loadHead(t, 'maskedLM (its encoder gives the features)', () => AutoModelForMaskedLM.fromPretrained(modelDir, options));
    made = featureExtraction(model, await AutoTokenizer.fromPretrained(modelDir));
  }
  return made as PipelineFor<T>;
}

function textClassification(model: PreTrainedModel, tok: Tokenizer, config: Record<string, unknown>): TextClassificationPipeline {
  return async (input, opts = {}) => {
    const texts = checkTexts(input, 'text-classification');
    const results: LabelScore[][] = [];
    for (const text of texts) {
      const enc = tok.encode(text);
      const { logits } = await run(model, enc.ids, enc.typeIds);
      const n = logits.length;
      const fn = opts.functionToApply ?? (config['problem_type'] === 'multi_label_classification' || n === 1 ? 'sigmoid' : 'softmax');
      const scores = fn === 'softmax' ? softmax(logits) : fn === 'sigmoid' ? Array.from(logits, (v) => 1 / (1 + Math.exp(-v))) : Array.from(logits);
      const k = opts.topK === null ? n : opts.topK ?? 1;
      if (!Number.isInteger(k) || k < 1) throw new Error(`pipeline('text-classification'): topK must be a positive integer or null, got ${String(opts.topK)}`);
      results.push(topIndices(scores, k).map((i) => ({ label: labelName(config, i), score: scores[i]! })));
    }
    // HF: one dict per input with the default top_k, a list per input when top_k is given; a single text gives a list.
    if (!Array.isArray(input)) return results[0]!;
    return opts.topK === undefined ? results.map((r) => r[0]!) : results;
  };
}

function fillMask(model: PreTrainedModel, tok: Tokenizer): FillMaskPipeline {
  const maskId = tok.maskTokenId;
  return async (input, opts = {}) => {
    if (maskId === null) throw new Error(`pipeline('fill-mask'): the tokenizer has no mask token`);
    const k = opts.topK ?? 5;
    if (!Number.isInteger(k) || k < 1) throw new Error(`pipeline('fill-mask'): topK must be a positive integer, got ${String(opts.topK)}`);
    const texts = checkTexts(input, 'fill-mask');
    const results: FillMaskResult[][][] = [];
    for (const text of texts) {
      const enc = tok.encode(text);
      const positions = enc.ids.flatMap((id, i) => (id === maskId ? [i] : []));
      if (positions.length === 0) throw new Error(`pipeline('fill-mask'): no mask_token (${tok.maskToken}) found in the input ${JSON.stringify(text)}`);
      const { logits, shape } = await run(model, enc.ids, enc.typeIds);
      const V = shape[2]!;
      results.push(positions.map((p) => {
        const probs = softmax(logits.subarray(p * V, (p + 1) * V));
        return topIndices(probs, k).map((id) => {
          const ids = enc.ids.slice();
          ids[p] = id;
          return { score: probs[id]!, token: id, token_str: tok.decode([id]), sequence: tok.decode(ids, { skipSpecialTokens: true }) };
        });
      }));
    }
    // HF: a list of candidates for one mask, a list per mask for several.
    const perText = results.map((r) => (r.length === 1 ? r[0]! : r));
    return (Array.isArray(input) ? perText : perText[0]!) as FillMaskResult[] | FillMaskResult[][] | FillMaskResult[][][];
  };
}

function isChat(input: unknown): input is ChatMessage[] {
  return Array.isArray(input) && input.length > 0 && input.every((m) => typeof m === 'object' && m !== null && 'role' in m);
}

function textGeneration(model: PreTrainedModel, tok: Tokenizer): TextGenerationPipeline {
  const device = model.parameters()[0]?.device;
  const one = async (ids: number[], opts: TextGenerationOptions): Promise<string> => {
    const { returnFullText: _full, ...gen } = opts;
    const prompt = tensor(Int32Array.from(ids), { shape: [1, ids.length], device });
    const out = await generate(model, prompt, gen);
    const seq = Array.from(await out.data());
    prompt.dispose();
    out.dispose();
    return tok.decode(seq.slice(ids.length), { skipSpecialTokens: true });
  };
  return async (input, opts = {}) => {
    if (isChat(input)) {
      const ids = tok.applyChatTemplate(input, { addGenerationPrompt: true, tokenize: true }) as number[];
      const reply = await one(ids, opts);
      // HF: the conversation with the assistant's reply appended (return_full_text false: the reply alone).
      return [{ generated_text: opts.returnFullText === false ? reply : [...input, { role: 'assistant', content: reply }] }] as GeneratedText[];
    }
    const texts = checkTexts(input, 'text-generation');
    const results: GeneratedText[][] = [];
    for (const text of texts) {
      const reply = await one(tok.encode(text).ids, opts);
      results.push([{ generated_text: opts.returnFullText === false ? reply : text + reply }]);
    }
    return Array.isArray(input) ? results : results[0]!;
  };
}

function featureExtraction(model: PreTrainedModel, tok: Tokenizer): FeatureExtractionPipeline {
  return async (input, opts = {}) => {
    const pooling = opts.pooling ?? 'none';
    if (!['none', 'mean', 'cls'].includes(pooling)) throw new Error(`pipeline('feature-extraction'): pooling must be 'none', 'mean' or 'cls', got ${JSON.stringify(pooling)}`);
    const texts = checkTexts(input, 'feature-extraction');
    const results: (number[][][] | number[][])[] = [];
    for (const text of texts) {
      const enc = tok.encode(text);
      const { hidden, hiddenShape } = await run(model, enc.ids, enc.typeIds);
      if (!hidden || !hiddenShape) throw new Error(`pipeline('feature-extraction'): ${model.constructor.name} returns no lastHiddenState`);
      const [, T, H] = hiddenShape as [number, number, number];
      let rows = Array.from({ length: T }, (_, t) => Array.from(hidden.subarray(t * H, (t + 1) * H)));
      if (pooling === 'cls') rows = [rows[0]!];
      if (pooling === 'mean') rows = [Array.from({ length: H }, (_, h) => rows.reduce((s, r) => s + r[h]!, 0) / T)];
      if (opts.normalize) rows = rows.map((r) => { const n = Math.hypot(...r) || 1; return r.map((v) => v / n); });
      // HF: [1, T, H] per text without pooling, [1, H] with it.
      results.push(pooling === 'none' ? [rows] : rows);
    }
    return Array.isArray(input) ? results : results[0]!;
  };
}

function imageClassification(model: PreTrainedModel, processor: ImageProcessor, config: Record<string, unknown>): ImageClassificationPipeline {
  const device = model.parameters()[0]?.device;
  return async (input, opts = {}) => {
    const k = opts.topK ?? 5;
    if (!Number.isInteger(k) || k < 1) throw new Error(`pipeline('image-classification'): topK must be a positive integer, got ${String(opts.topK)}`);
    const images = Array.isArray(input) ? input : [input];
    const results: LabelScore[][] = [];
    for (const [i, image] of images.entries()) {
      const { raw, name } = await imageFrom(image, i, 'image-classification');
      const { pixelValues } = processor.process(raw, { names: [name], device });
      const out = noGrad(() => model.forward({ pixelValues }));
      const probs = softmax(await out.logits.data());
      pixelValues.dispose();
      out.logits.dispose();
      results.push(topIndices(probs, k).map((c) => ({ label: labelName(config, c), score: probs[c]! })));
    }
    return Array.isArray(input) ? results : results[0]!;
  };
}

/** The inputs as sample arrays at `rate` Hz: paths are read (and resampled), arrays are taken as they are. */
async function audioList(input: AudioInput | AudioInput[], rate: number): Promise<{ samples: Float32Array; name: string }[]> {
  const list = Array.isArray(input) ? input : [input];
  return Promise.all(list.map(async (a, i) => {
    if (typeof a === 'string') return { samples: await loadAudio(a, { samplingRate: rate }), name: a };
    if (a instanceof Float32Array) return { samples: a, name: `input ${i}` };
    throw new Error(`pipeline('automatic-speech-recognition'): input ${i} must be a WAV path or a Float32Array of samples at ${rate} Hz`);
  }));
}

/** Whisper: log-mel features, then generate() with the generation config's prompt; the text without special tokens. */
async function whisperSpeechRecognition(dir: string, model: PreTrainedModel): Promise<AsrPipeline> {
  const fe = await WhisperFeatureExtractor.fromPretrained(dir);
  const tok = await AutoTokenizer.fromPretrained(dir);
  const rate = fe.config.sampling_rate;
  const device = model.parameters()[0]?.device;
  return async (input, opts = {}) => {
    const results: { text: string }[] = [];
    for (const { samples, name } of await audioList(input, rate)) {
      let inputFeatures;
      try {
        ({ inputFeatures } = fe.call(samples, { samplingRate: rate, truncation: false, device }));
      } catch (e) {
        throw new Error(`${name}: ${(e as Error).message}`);
      }
      const seq = await generate(model, { inputFeatures }, { language: opts.language, task: opts.task, numBeams: opts.numBeams, maxNewTokens: opts.maxNewTokens });
      results.push({ text: tok.decode(Array.from(await seq.data()), { skipSpecialTokens: true }) });
      inputFeatures.dispose();
      seq.dispose();
    }
    return Array.isArray(input) ? results : results[0]!;
  };
}

/** wav2vec2: one forward pass, the best token per frame, decoded by the CTC tokenizer (repeats collapsed, blanks dropped). */
async function ctcSpeechRecognition(dir: string, model: PreTrainedModel): Promise<AsrPipeline> {
  const fe = await Wav2Vec2FeatureExtractor.fromPretrained(dir);
  const tok = await Wav2Vec2CTCTokenizer.fromPretrained(dir);
  const rate = fe.config.sampling_rate;
  const device = model.parameters()[0]?.device;
  return async (input, opts = {}) => {
    if ((opts.numBeams ?? 1) !== 1 || opts.language !== undefined || opts.task !== undefined) {
      throw new Error(`pipeline('automatic-speech-recognition'): a CTC model (wav2vec2) decodes greedily, without language or task`);
    }
    const results: { text: string }[] = [];
    for (const { samples } of await audioList(input, rate)) {
      const { inputValues } = fe.call(samples, { samplingRate: rate, device });
      const logits = noGrad(() => model.forward({ inputValues }).logits); // [1, frames, vocab]
      const best = logits.argmax(-1);
      results.push({ text: tok.decode(Array.from(await best.data())) });
      for (const x of [inputValues, logits, best]) x.dispose();
    }
    return Array.isArray(input) ? results : results[0]!;
  };
}

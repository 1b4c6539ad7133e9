// AutoModelFor*: read config.json, pick the architecture by model_type, build it and load the checkpoint strictly.

import { fileExists, loadCheckpoint, readCheckpointHeader, readConfig, readJsonFile } from '../io/hf.js';
import { withSource, type ModelSource } from '../io/source.js';
import type { SafetensorsDType, SafetensorsEntry } from '../io/safetensors.js';
import type { FloatDType } from '../tensor/dtype.js';
import { checkWeights, ConfigReader, loadPretrainedWeights, type GenerationDefaults, type PreTrainedModel, type WeightSpec } from './base.js';
import { BartForConditionalGeneration, bartConfig, bartWeights } from './bart.js';
import { BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, bertConfig, bertWeights } from './bert.js';
import { CLIPModel, clipConfig, clipWeights } from './clip.js';
import { DistilBertForMaskedLM, DistilBertForSequenceClassification, DistilBertForTokenClassification, distilBertConfig, distilBertWeights } from './distilbert.js';
import { GPT2LMHeadModel, gpt2Config, gpt2Weights } from './gpt2.js';
import { LlamaForCausalLM, llamaConfig, llamaWeights } from './llama.js';
import { GemmaForCausalLM, gemmaConfig, gemmaWeights } from './gemma.js';
import { MistralForCausalLM, mistralConfig, mistralWeights } from './mistral.js';
import { Qwen2ForCausalLM, qwen2Config, qwen2Weights } from './qwen2.js';
import { RobertaForMaskedLM, RobertaForSequenceClassification, RobertaForTokenClassification, robertaConfig, robertaWeights } from './roberta.js';
import { T5ForConditionalGeneration, t5Config, t5Weights } from './t5.js';
import { Wav2Vec2ForCTC, wav2vec2Config, wav2vec2RenameKey, wav2vec2Weights } from './wav2vec2.js';
import { ViTForImageClassification, vitConfig, vitWeights } from './vit.js';
import { WhisperForConditionalGeneration, whisperConfig, whisperWeights } from './whisper.js';

export type Task = 'causalLM' | 'maskedLM' | 'sequenceClassification' | 'tokenClassification' | 'seq2seqLM' | 'imageClassification' | 'speechSeq2Seq' | 'ctc' | 'model';

type Factory = (config: ConfigReader) => PreTrainedModel;

interface Architecture {
  heads: Partial<Record<Task, Factory>>;
  /** The parameters each head expects, from the config alone: the checkpoint's header is checked against them first. */
  weights?: Partial<Record<Task, (config: ConfigReader) => WeightSpec>>;
  /** Checkpoint keys that are not weights of ours (old buffers such as GPT-2's causal mask). */
  ignore?: RegExp[];
  /** Maps old checkpoint key names to current ones (transformers' key fixes on load), before any check. */
  rename?: (key: string) => string;
}

const ARCHITECTURES = new Map<string, Architecture>([
  ['gpt2', {
    heads: { causalLM: (r) => new GPT2LMHeadModel(gpt2Config(r)) }, weights: { causalLM: (r) => gpt2Weights(gpt2Config(r)) }, ignore: [/\.attn\.(masked_)?bias$/],
  }],
  ['bert', {
    heads: {
      maskedLM: (r) => new BertForMaskedLM(bertConfig(r)),
      sequenceClassification: (r) => new BertForSequenceClassification(bertConfig(r)),
      tokenClassification: (r) => new BertForTokenClassification(bertConfig(r)),
    },
    weights: {
      maskedLM: (r) => bertWeights(bertConfig(r), 'maskedLM'),
      sequenceClassification: (r) => bertWeights(bertConfig(r), 'sequenceClassification'),
      tokenClassification: (r) => bertWeights(bertConfig(r), 'tokenClassification'),
    },
    // Old position_ids buffers; the pooler and next-sentence head of pre-training checkpoints that a head does not use.
    ignore: [/(^|\.)position_ids$/, /^bert\.pooler\./, /^cls\.seq_relationship\./],
  }],
  // Old position_ids buffers; the pooler of pre-training checkpoints (roberta-base), which no head here uses.
  ['roberta', {
    heads: { maskedLM: (r) => new RobertaForMaskedLM(robertaConfig(r)), sequenceClassification: (r) => new RobertaForSequenceClassification(robertaConfig(r)), tokenClassification: (r) => new RobertaForTokenClassification(robertaConfig(r)) },
    weights: { maskedLM: (r) => robertaWeights(robertaConfig(r), 'maskedLM'), sequenceClassification: (r) => robertaWeights(robertaConfig(r), 'sequenceClassification'), tokenClassification: (r) => robertaWeights(robertaConfig(r), 'tokenClassification') },
    ignore: [/(^|\.)position_ids$/, /^roberta\.pooler\./],
  }],
  ['distilbert', {
    heads: { sequenceClassification: (r) => new DistilBertForSequenceClassification(distilBertConfig(r)), maskedLM: (r) => new DistilBertForMaskedLM(distilBertConfig(r)), tokenClassification: (r) => new DistilBertForTokenClassification(distilBertConfig(r)) },
    weights: { sequenceClassification: (r) => distilBertWeights(distilBertConfig(r), 'sequenceClassification'), maskedLM: (r) => distilBertWeights(distilBertConfig(r), 'maskedLM'), tokenClassification: (r) => distilBertWeights(distilBertConfig(r), 'tokenClassification') },
    ignore: [/(^|\.)position_ids$/],
  }],
  // Older LLaMA checkpoints store the rotary frequencies, which are computed from the config here.
  ['llama', {
    heads: { causalLM: (r) => new LlamaForCausalLM(llamaConfig(r)) }, weights: { causalLM: (r) => llamaWeights(llamaConfig(r)) }, ignore: [/(^|\.)rotary_emb\.inv_freq$/],
  }],
  // LLaMA's descendants (llama.ts configured by their own files); old checkpoints may also store rotary frequencies.
  ['mistral', { heads: { causalLM: (r) => new MistralForCausalLM(mistralConfig(r)) }, weights: { causalLM: (r) => mistralWeights(mistralConfig(r)) }, ignore: [/(^|\.)rotary_emb\.inv_freq$/] }],
  ['qwen2', { heads: { causalLM: (r) => new Qwen2ForCausalLM(qwen2Config(r)) }, weights: { causalLM: (r) => qwen2Weights(qwen2Config(r)) }, ignore: [/(^|\.)rotary_emb\.inv_freq$/] }],
  ['gemma', { heads: { causalLM: (r) => new GemmaForCausalLM(gemmaConfig(r)) }, weights: { causalLM: (r) => gemmaWeights(gemmaConfig(r)) }, ignore: [/(^|\.)rotary_emb\.inv_freq$/] }],
  // Original T5 checkpoints carry an unused relative bias on the first cross-attention.
  ['t5', { heads: { seq2seqLM: (r) => new T5ForConditionalGeneration(t5Config(r)) }, weights: { seq2seqLM: (r) => t5Weights(t5Config(r)) }, ignore: [/^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$/] }],
  // masked_spec_embed is SpecAugment's mask vector (training only, not implemented); weight_g / weight_v are renamed.
  ['wav2vec2', { heads: { ctc: (r) => new Wav2Vec2ForCTC(wav2vec2Config(r)) }, weights: { ctc: (r) => wav2vec2Weights(wav2vec2Config(r)) }, ignore: [/^wav2vec2\.masked_spec_embed$/], rename: wav2vec2RenameKey }],
  // Pre-training checkpoints (google/vit-base-patch16-224-in21k) carry a pooler that the classifier does not use.
  ['vit', { heads: { imageClassification: (r) => new ViTForImageClassification(vitConfig(r)) }, weights: { imageClassification: (r) => vitWeights(vitConfig(r)) }, ignore: [/^vit\.pooler\./] }],
  // Older checkpoints store the position_ids buffers, which are computed here.
  ['clip', { heads: { model: (r) => new CLIPModel(clipConfig(r)) }, weights: { model: (r) => clipWeights(clipConfig(r)) }, ignore: [/\.embeddings\.position_ids$/] }],
  ['bart', { heads: { seq2seqLM: (r) => new BartForConditionalGeneration(bartConfig(r)) }, weights: { seq2seqLM: (r) => bartWeights(bartConfig(r)) } }],
  ['whisper', { heads: { speechSeq2Seq: (r) => new WhisperForConditionalGeneration(whisperConfig(r)) }, weights: { speechSeq2Seq: (r) => whisperWeights(whisperConfig(r)) } }],
]);

/** Adds (or replaces) an architecture: model files call this for their model_type. */
export function registerArchitecture(modelType: string, arch: Architecture): void {
  ARCHITECTURES.set(modelType, arch);
}

export interface FromPretrainedOptions {
  device?: string;
  /**
   * The dtype of the model's floating parameters, as transformers' `dtype` (`torch_dtype` before version 5):
   * 'float32' (the default, as in transformers 4; version 5 defaults to 'auto'), 'float16', 'bfloat16', 'float64',
   * or 'auto': config.json's "dtype" (or "torch_dtype") when present, else the checkpoint's first floating weight's
   * dtype (so a 2-byte checkpoint stays 2 bytes in memory).
   */
  dtype?: ModelDType;
}

export type ModelDType = FloatDType | 'auto';
const MODEL_DTYPES: readonly ModelDType[] = ['float32', 'float16', 'bfloat16', 'float64', 'auto'];
const FROM_STORED: Partial<Record<SafetensorsDType, FloatDType>> = { F32: 'float32', F64: 'float64', F16: 'float16', BF16: 'bfloat16' };

/** Throws unless the `dtype` option is absent or one of its values (checked before any file is read). */
function checkDTypeOption(dtype: unknown): void {
  if (dtype !== undefined && (typeof dtype !== 'string' || !(MODEL_DTYPES as readonly string[]).includes(dtype))) {
    throw new Error(`fromPretrained: option "dtype" must be one of ${MODEL_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}`);
  }
}

/** The floating dtype to build the model in, for a checked `dtype` option. */
function modelDType(dtype: ModelDType | undefined, config: Record<string, unknown>, entries: Record<string, SafetensorsEntry>): FloatDType {
  if (dtype !== 'auto') return dtype ?? 'float32';
  // transformers' order for dtype='auto': the config's dtype ("torch_dtype" before transformers 5), then the first
  // floating weight.
  const declared = config['dtype'] ?? config['torch_dtype'];
  if (typeof declared === 'string' && MODEL_DTYPES.includes(declared as ModelDType) && declared !== 'auto') return declared as FloatDType;
  for (const e of Object.values(entries)) {
    const d = FROM_STORED[e.dtype];
    if (d) return d;
  }
  return 'float32';
}

function fromPretrained(task: Task, src: ModelSource, opts: FromPretrainedOptions): Promise<PreTrainedModel> {
  return withSource(src, (dir) => loadPretrained(task, dir, opts));
}

async function loadPretrained(task: Task, dir: string, opts: FromPretrainedOptions): Promise<PreTrainedModel> {
  checkDTypeOption(opts.dtype);
  const { path, json } = await readConfig(dir);
  const type = json['model_type'];
  if (typeof type !== 'string') throw new Error(`${path}: no "model_type" field`);
  const arch = ARCHITECTURES.get(type);
  if (!arch) throw new Error(`${path}: unknown model_type '${type}' (supported: ${[...ARCHITECTURES.keys()].join(', ')})`);
  const make = arch.heads[task];
  if (!make) throw new Error(`${path}: model_type '${type}' has no ${task} head (available: ${Object.keys(arch.heads).join(', ')})`);
  const reader = new ConfigReader(json, path);
  const spec = arch.weights?.[task]?.(reader);
  const rawHeader = spec || opts.dtype === 'auto' ? await readCheckpointHeader(dir) : null;
  const header = rawHeader && arch.rename ? { ...rawHeader, entries: renameKeys(rawHeader.entries, arch.rename) } : rawHeader;
  const dtype = modelDType(opts.dtype, json, header?.entries ?? {});
  // Names and shapes from the safetensors headers only: a config that disagrees with its checkpoint fails here,
  // before the model (or any tensor) is allocated.
  if (spec && header) checkWeights(spec, header.entries, header.source, path, arch.ignore);
  // Read before the model is built, so that a bad generation_config.json allocates nothing.
  const genPath = `${dir.replace(/\/$/, '')}/generation_config.json`;
  const genJson = await readGenerationConfigJson(genPath);
  const generationConfig = generationDefaults(genPath, genJson ?? {}, json);
  // Converted before loading, so that weights stored in the model's dtype are copied as they are, never widened.
  const model = make(reader).to(dtype);
  const loaded = await loadCheckpoint(dir);
  const { source } = loaded, tensors = arch.rename ? renameKeys(loaded.tensors, arch.rename) : loaded.tensors;
  loadPretrainedWeights(model, tensors, source, arch.ignore);
  for (const t of Object.values(tensors)) t.dispose();
  model.generationConfig = generationConfig;
  // The files as read, for savePretrained.
  model.configJson = structuredClone(json);
  if (genJson) model.generationConfigJson = genJson;
  if (opts.device) model.to(opts.device);
  return model.eval();
}

/**
 * A causal LM of a config.json's model_type with fresh weights, and the checkpoint keys its loading ignores: reward
 * models (a causal LM's trunk under a `score` head) load their trunk into one.
 */
export function causalLMFromConfig(json: Record<string, unknown>, path: string): { model: PreTrainedModel; ignore: readonly RegExp[] } {
  const type = json['model_type'];
  if (typeof type !== 'string') throw new Error(`${path}: no "model_type" field`);
  const arch = ARCHITECTURES.get(type);
  const make = arch?.heads.causalLM;
  if (!arch || !make) throw new Error(`${path}: model_type '${type}' is not a causal LM here (causal LMs: ${[...ARCHITECTURES].filter(([, a]) => a.heads.causalLM).map(([k]) => k).join(', ')})`);
  return { model: make(new ConfigReader(json, path)), ignore: arch.ignore ?? [] };
}

/** The same values under renamed keys. */
function renameKeys<T>(entries: Record<string, T>, rename: (key: string) => string): Record<string, T> {
  return Object.fromEntries(Object.entries(entries).map(([k, v]) => [rename(k), v]));
}

/** A folder's generation_config.json (checked to be a JSON object), or undefined when the folder has none. */
async function readGenerationConfigJson(path: string): Promise<Record<string, unknown> | undefined> {
  if (!(await fileExists(path))) return undefined;
  const raw = await readJsonFile(path);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${path}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

/** Special token ids from config.json, overridden by generation_config.json where present (as transformers does). */
function generationDefaults(path: string, gen: Record<string, unknown>, config: Record<string, unknown>): GenerationDefaults {
  const pick = (key: string): unknown => gen[key] ?? config[key];
  const id = (key: string): number | undefined => {
    const v = pick(key);
    if (v === undefined || v === null) return undefined;
    if (!Number.isInteger(v)) throw new Error(`${path}: "${key}" must be an integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const eos = pick('eos_token_id');
  const eosTokenId = Array.isArray(eos) ? eos.map((v) => { if (!Number.isInteger(v)) throw new Error(`${path}: "eos_token_id" must hold integers`); return v as number; }) : id('eos_token_id');
  const out: GenerationDefaults = { bosTokenId: id('bos_token_id'), eosTokenId, padTokenId: id('pad_token_id'), decoderStartTokenId: id('decoder_start_token_id'), ...whisperPromptConfig(gen, config, path) };
  const ngram = id('no_repeat_ngram_size'), forcedBos = id('forced_bos_token_id'), forcedEos = id('forced_eos_token_id');
  // 0 is transformers' "off" for no_repeat_ngram_size.
  if (ngram !== undefined && ngram > 0) out.noRepeatNgramSize = ngram;
  if (forcedBos !== undefined) out.forcedBosTokenId = forcedBos;
  if (forcedEos !== undefined) out.forcedEosTokenId = forcedEos;
  return out;
}

/** Whisper's prompt and suppression fields (generation_config.json, else config.json), each checked; absent ones left out. */
function whisperPromptConfig(gen: Record<string, unknown>, config: Record<string, unknown>, path: string): Partial<GenerationDefaults> {
  const pick = (key: string): unknown => gen[key] ?? config[key];
  const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  const ids = (key: string): number[] | undefined => {
    const v = pick(key);
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every(isId)) throw new Error(`${path}: "${key}" must be an array of token ids, got ${JSON.stringify(v)}`);
    return v;
  };
  const idMap = (key: string): Record<string, number> | undefined => {
    const v = pick(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v) || !Object.values(v).every(isId)) throw new Error(`${path}: "${key}" must map names to token ids`);
    return v as Record<string, number>;
  };
  const out: Partial<GenerationDefaults> = {};
  // Only generation_config.json's: config.json's copy in older checkpoints forces English, which transformers overrides.
  const forced = gen['forced_decoder_ids'];
  if (forced !== undefined && forced !== null) {
    const ok = Array.isArray(forced) && forced.every((p) => Array.isArray(p) && p.length === 2 && isId(p[0]) && (p[1] === null || isId(p[1])));
    if (!ok) throw new Error(`${path}: "forced_decoder_ids" must be [position, token id or null] pairs, got ${JSON.stringify(forced)}`);
    out.forcedDecoderIds = forced as [number, number | null][];
  }
  const suppressTokens = ids('suppress_tokens'), beginSuppressTokens = ids('begin_suppress_tokens');
  const langToId = idMap('lang_to_id'), taskToId = idMap('task_to_id');
  const noTs = pick('no_timestamps_token_id'), multi = pick('is_multilingual');
  if (noTs !== undefined && noTs !== null && !isId(noTs)) throw new Error(`${path}: "no_timestamps_token_id" must be a token id, got ${JSON.stringify(noTs)}`);
  if (multi !== undefined && multi !== null && typeof multi !== 'boolean') throw new Error(`${path}: "is_multilingual" must be true or false`);
  if (suppressTokens?.length) out.suppressTokens = suppressTokens;
  if (beginSuppressTokens?.length) out.beginSuppressTokens = beginSuppressTokens;
  if (langToId) out.langToId = langToId;
  if (taskToId) out.taskToId = taskToId;
  if (isId(noTs)) out.noTimestampsTokenId = noTs;
  if (typeof multi === 'boolean') out.isMultilingual = multi;
  return out;
}

/** Loads a Hugging Face causal language model (config.json + model.safetensors or shards), in eval mode. */
export class AutoModelForCausalLM {
  static fromPretrained(dir: ModelSource, opts: FromPretrainedOptions = {}): Promise<PreTrainedModel> {
    return fromPretrained('causalLM', dir, opts);
  }
}
export class AutoModelForMaskedLM {
  static fromPretrained(dir: ModelSource, opts: FromPretrainedOptions = {}): Promise<PreTrainedModel> {
    return fromPretrained('maskedLM', dir, opts);
  }
}
export class AutoModelForSequenceClassification {
  static fromPretrained(dir: ModelSource, opts: FromPretrainedOptions = {}): Promise<PreTrainedModel> {
    return fromPretrained('sequenceClassification', dir, opts);
  }
}
export class AutoModelForTokenClassification {
  static fromPretrained(dir: ModelSource, opts: FromPretrainedOptions = {}): Promise<PreTrainedModel> {
    return fromPretrained('tokenClassification', dir, opts);
  }
}
export class AutoModelForSeq2SeqLM {
  static fromPretrained(dir: ModelSource, opts: FromPretrainedOptions = {}): Promise<PreTrainedModel> {
    return fromPretrained('seq2seqLM', dir, opts);
  }
}
/** Loads a Hugging Face image classifier (ViT): forward({ pixelValues }) -> logits. */
export class AutoModelForImageClassification {
  static fromPretrained(dir: ModelSource, opts: FromPretrainedOptions = {}): Promise<PreTrainedModel> {
    return fromPretrained('imageClassification', dir, opts);
  }
}
/** Loads a Hugging Face speech-to-text encoder-decoder (Whisper): forward({ inputFeatures, decoderInputIds }). */
export class AutoModelForSpeechSeq2Seq {
  static fromPretrained(dir: ModelSource, opts: FromPretrainedOptions = {}): Promise<PreTrainedModel> {
    return fromPretrained('speechSeq2Seq', dir, opts);
  }
}
/** Loads a Hugging Face CTC speech model (wav2vec2): forward({ inputValues }) -> per-frame logits. */
export class AutoModelForCTC {
  static fromPretrained(dir: ModelSource, opts: FromPretrainedOptions = {}): Promise<PreTrainedModel> {
    return fromPretrained('ctc', dir, opts);
  }
}
/** Loads a Hugging Face base model without a task head (CLIP: forward({ inputIds, pixelValues }) -> image-text scores). */
export class AutoModel {
  static fromPretrained(dir: ModelSource, opts: FromPretrainedOptions = {}): Promise<PreTrainedModel> {
    return fromPretrained('model', dir, opts);
  }
}

// text2text-generation, summarization, translation: an encoder-decoder (T5, BART) generating from a text, as transformers.

import { generate, type GenerateOptions } from '../generation/generate.js';
import type { PreTrainedModel } from '../models/base.js';
import { tensor } from '../tensor/create.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { checkTexts } from './common.js';

/** The generation options a text-to-text pipeline takes (HF's generate kwargs: max_new_tokens, num_beams, ...). */
export type Text2TextOptions = Pick<GenerateOptions,
  'maxNewTokens' | 'minNewTokens' | 'numBeams' | 'lengthPenalty' | 'earlyStopping' | 'noRepeatNgramSize' | 'doSample' | 'temperature' | 'topK' | 'topP' | 'repetitionPenalty' | 'seed'>;

export type Text2TextTask = 'text2text-generation' | 'summarization' | 'translation';
/** The output key of each task: generated_text, summary_text, translation_text. */
export type GeneratedText2Text = { generated_text: string } | { summary_text: string } | { translation_text: string };
/** One result per input: [{ generated_text }] for a text, [{ ... }, { ... }] for a list (HF's flattening). */
export type Text2TextPipeline = (input: string | string[], opts?: Text2TextOptions) => Promise<GeneratedText2Text[]>;

const RETURN_NAME: Record<Text2TextTask, string> = { 'text2text-generation': 'generated', summarization: 'summary', translation: 'translation' };

/** task_specific_params keys (HF's generation config names) -> our generate options; encoder-decoder lengths count the start token. */
function fromTaskParams(params: Record<string, unknown>, source: string, configPrefix: string): { prefix: string; gen: Text2TextOptions } {
  const gen: Text2TextOptions = {};
  const num = (key: string): number | undefined => {
    const v = params[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${source}: "${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const prefix = params['prefix'] ?? configPrefix;
  if (typeof prefix !== 'string') throw new Error(`${source}: "prefix" must be a string, got ${JSON.stringify(prefix)}`);
  // max_length / min_length include the decoder start token (transformers' lengths for an encoder-decoder).
  const maxLength = num('max_length'), minLength = num('min_length');
  if (maxLength !== undefined) gen.maxNewTokens = maxLength - 1;
  if (minLength !== undefined && minLength > 1) gen.minNewTokens = minLength - 1;
  const maxNew = num('max_new_tokens'), minNew = num('min_new_tokens');
  if (maxNew !== undefined) gen.maxNewTokens = maxNew;
  if (minNew !== undefined) gen.minNewTokens = minNew;
  const numBeams = num('num_beams'), lengthPenalty = num('length_penalty'), ngram = num('no_repeat_ngram_size');
  if (numBeams !== undefined) gen.numBeams = numBeams;
  if (lengthPenalty !== undefined) gen.lengthPenalty = lengthPenalty;
  if (ngram !== undefined && ngram > 0) gen.noRepeatNgramSize = ngram;
  const early = params['early_stopping'];
  if (early !== undefined && early !== null) {
    if (early !== true && early !== false && early !== 'never') throw new Error(`${source}: "early_stopping" must be true, false or "never", got ${JSON.stringify(early)}`);
    gen.earlyStopping = early;
  }
  return { prefix, gen };
}

/**
 * The task's entry of config.json's task_specific_params, as transformers' pipeline() applies it (over config.json's
 * own "prefix", when it has one): T5's
 * `{"summarization": {"prefix": "summarize: ", "num_beams": 4, ...}, "translation_en_to_de": {...}}`. For
 * 'translation' without languages, the first translation_XX_to_YY entry (as transformers does).
 */
export function taskParams(task: string, config: Record<string, unknown>, configPath: string): { prefix: string; gen: Text2TextOptions; task: string } {
  // The model's own prefix (config.json's "prefix"), which a task's entry overrides.
  const configPrefix = config['prefix'] ?? '';
  if (typeof configPrefix !== 'string') throw new Error(`${configPath}: "prefix" must be a string, got ${JSON.stringify(configPrefix)}`);
  const all = config['task_specific_params'];
  if (all === undefined || all === null) return { prefix: configPrefix, gen: {}, task };
  if (typeof all !== 'object' || Array.isArray(all)) throw new Error(`${configPath}: "task_specific_params" must be an object`);
  const table = all as Record<string, unknown>;
  const key = task === 'translation' ? Object.keys(table).find((k) => k.startsWith('translation')) ?? task : task;
  const params = table[key];
  if (params === undefined) return { prefix: configPrefix, gen: {}, task: key };
  if (params === null || typeof params !== 'object' || Array.isArray(params)) throw new Error(`${configPath}: "task_specific_params.${key}" must be an object`);
  return { ...fromTaskParams(params as Record<string, unknown>, `${configPath}: task_specific_params.${key}`, configPrefix), task: key };
}

/**
 * The pipeline for `task` over an encoder-decoder: each text gets the task's prefix, is encoded alone (special tokens
 * added, as transformers' default batch size 1), generated from with the task's defaults overridden by `opts`, and
 * decoded without special tokens (and, as transformers' postprocess, without clean-up of spaces).
 */
export function text2text(task: Text2TextTask, model: PreTrainedModel, tok: Tokenizer, params: { prefix: string; gen: Text2TextOptions }): Text2TextPipeline {
  const device = model.parameters()[0]?.device;
  const key = `${RETURN_NAME[task]}_text`;
  return async (input, opts = {}) => {
    const results: GeneratedText2Text[] = [];
    for (const text of checkTexts(input, task)) {
      const ids = tok.encode(params.prefix + text).ids;
      const inputIds = tensor(Int32Array.from(ids), { shape: [1, ids.length], device });
      const out = await generate(model, inputIds, { ...params.gen, ...opts });
      results.push({ [key]: tok.decode(Array.from(await out.data()), { skipSpecialTokens: true, cleanUpTokenizationSpaces: false }) } as GeneratedText2Text);
      inputIds.dispose();
      out.dispose();
    }
    return results;
  };
}

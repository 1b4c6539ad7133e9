// Test helpers for fine-tuning: a word-level tokenizer with Qwen2's ChatML template, a tiny LLaMA, a toy SFT set, and a model folder on disk.

import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { saveSafetensors } from '../io/safetensors.js';
import { ConfigReader } from '../models/base.js';
import { LlamaForCausalLM, llamaConfig } from '../models/llama.js';
import { tensor } from '../tensor/create.js';
import { manualSeed } from '../tensor/random.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';

/** Qwen2-0.5B-Instruct's chat_template (test/data/chat/templates.json): a default system turn, then ChatML turns. */
export const CHATML = (JSON.parse(readFileSync(new URL('../../test/data/chat/templates.json', import.meta.url), 'utf8')) as Record<string, { template: string }>).chatml!.template;

/** The toy task: "color of X ?" -> the colour, one word. */
export const COLORS: [string, string][] = [['sky', 'blue'], ['grass', 'green'], ['snow', 'white'], ['coal', 'black'], ['blood', 'red'], ['sun', 'yellow']];

const SPECIALS = ['<|im_start|>', '<|im_end|>', '<unk>'];
const WORDS = [...SPECIALS, 'system', 'user', 'assistant', 'You', 'are', 'a', 'helpful', 'assistant', '.', 'color', 'of', '?', 'Be', 'brief', 'hi', 'hello', ...COLORS.flat()];
export const VOCAB: Record<string, number> = {};
for (const w of WORDS) VOCAB[w] ??= Object.keys(VOCAB).length;

/** tokenizer.json: one token per word or punctuation run (WordLevel over Whitespace), ChatML's markers as added tokens. */
export const TOKENIZER_JSON = {
  version: '1.0', truncation: null, padding: null,
  added_tokens: SPECIALS.map((content) => ({ id: VOCAB[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null,
  decoder: null,
  model: { type: 'WordLevel', vocab: VOCAB, unk_token: '<unk>' },
};
/** tokenizer_config.json: ChatML, with <|im_end|> as eos (and pad), as Qwen2-Instruct's. */
export const TOKENIZER_CONFIG = { chat_template: CHATML, eos_token: '<|im_end|>', pad_token: '<|im_end|>', unk_token: '<unk>' };

export const chatTokenizer = (config: Record<string, unknown> = TOKENIZER_CONFIG): Tokenizer => Tokenizer.fromJSON(TOKENIZER_JSON, config);

/** config.json of a tiny LLaMA over VOCAB (2 layers, width 32, grouped-query attention). */
export const LLAMA_CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: Object.keys(VOCAB).length, hidden_size: 32, intermediate_size: 64,
  num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, max_position_embeddings: 64, rms_norm_eps: 1e-6,
  initializer_range: 0.1, tie_word_embeddings: false, eos_token_id: VOCAB['<|im_end|>'], pad_token_id: VOCAB['<|im_end|>'],
};

export function tinyLlama(seed = 0, config: Record<string, unknown> = LLAMA_CONFIG): LlamaForCausalLM {
  manualSeed(seed);
  return new LlamaForCausalLM(llamaConfig(new ConfigReader(config, 'config.json'))).eval();
}

/** The entropy of softmax(logits / T) at the last position of `ids`: what an RL trainer should log for one-token completions. */
export async function nextTokenEntropy(model: LlamaForCausalLM, ids: readonly number[], T: number): Promise<number> {
  const logits = model.forward({ inputIds: tensor([[...ids]], { dtype: 'int32' }) }).logits; // [1, L, V]
  const V = logits.shape[2]!;
  const z = Array.from((await logits.data()).subarray((ids.length - 1) * V, ids.length * V)).map((v) => v / T);
  const m = Math.max(...z), e = z.map((v) => Math.exp(v - m)), Z = e.reduce((a, b) => a + b, 0);
  return -e.reduce((a, v) => a + (v / Z) * Math.log(v / Z), 0);
}

/** The toy SFT set in TRL's messages format. */
export const colorRecords = (): { kind: 'messages'; messages: { role: string; content: string }[] }[] =>
  COLORS.map(([thing, color]) => ({ kind: 'messages', messages: [{ role: 'user', content: `color of ${thing} ?` }, { role: 'assistant', content: color }] }));

/** Writes a model folder (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with the chat template). */
export async function writeTinyModelFolder(dir: string, seed = 0): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(LLAMA_CONFIG, null, 2));
  await saveSafetensors(join(dir, 'model.safetensors'), tinyLlama(seed).stateDict(), { format: 'pt' });
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(TOKENIZER_JSON));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(TOKENIZER_CONFIG));
  return dir;
}

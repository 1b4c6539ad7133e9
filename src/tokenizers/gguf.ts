// The tokenizer stored in GGUF metadata (tokenizer.ggml.*) to a tokenizer.json our Tokenizer loads, and back.
//
// References: llama.cpp gguf-py (constants.py Keys.Tokenizer, TokenType; vocab.py) and convert_hf_to_gguf.py
// (_set_vocab_sentencepiece, _set_vocab_gpt2); transformers integrations/ggml.py (GGUFLlamaConverter, GGUFGPTConverter,
// GGUFTokenizerSkeleton, which rebuilds the merges of a SentencePiece vocabulary from its scores).
// 'llama': SentencePiece-style BPE over "▁"-joined text with <0xNN> byte fallback; 'gpt2': byte-level BPE with merges.

import { gguf, type GgufKV, type GgufValue } from '../io/gguf.js';
import { arrayAt, isJsonObject, objectAt, stringAt, type JsonObject, type JsonValue } from './json.js';

/** llama.cpp's token types (gguf-py TokenType). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Pre-tokenizer regexes of the byte-level vocabularies llama.cpp names in tokenizer.ggml.pre (as their tokenizer.json). */
const PRE_REGEX: Record<string, string> = {
  'llama-bpe': "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};
const GPT2_PRE = ['default', 'gpt-2', 'gpt2'];

export interface GgufTokenizer {
  /** A tokenizer.json (Tokenizer.fromJSON). */
  json: JsonObject;
  /** tokenizer_config.json fields: special token names and the chat template. */
  config: JsonObject;
}

type Meta = Record<string, GgufKV>;

function req(meta: Meta, key: string, source: string): GgufValue {
  const kv = meta[key];
  if (kv === undefined) throw new Error(`${source}: missing metadata key "${key}"`);
  return kv.value;
}

function strings(meta: Meta, key: string, source: string): string[] {
  const v = req(meta, key, source);
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw new Error(`${source}: metadata "${key}" must be an array of strings`);
  return v as string[];
}

function numbers(meta: Meta, key: string, source: string, n: number): number[] | undefined {
  if (meta[key] === undefined) return undefined;
  const v = meta[key]!.value;
  if (!Array.isArray(v) || v.length !== n || v.some((s) => typeof s !== 'number')) throw new Error(`${source}: metadata "${key}" must be an array of ${n} numbers (one per token)`);
  return v as number[];
}

function optId(meta: Meta, key: string, source: string, n: number): number | undefined {
  const v = meta[key]?.value;
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n) throw new Error(`${source}: metadata "${key}" must be a token id below ${n}, got ${String(v)}`);
  return v;
}

function optBool(meta: Meta, key: string, dflt: boolean): boolean {
  const v = meta[key]?.value;
  return typeof v === 'boolean' ? v : dflt;
}

/** Code points, as Python slices strings. */
const chars = (s: string): string[] => Array.from(s);

/**
 * Merges of a SentencePiece vocabulary from its scores, as transformers' GGUFTokenizerSkeleton builds them when a GGUF
 * has none: every split of every token into two tokens, best-scored pairs first within a token, then all of them by
 * the score of the merged token (stable sorts, as Python's).
 */
export function mergesFromScores(tokens: readonly string[], scores: readonly number[]): [string, string][] {
  const score = new Map<string, number>();
  tokens.forEach((t, i) => score.set(t, scores[i]!));
  const merges: [string, string, number][] = [];
  for (const [merge, pieceScore] of score) {
    const cps = chars(merge);
    const local: [string, string, number][] = [];
    for (let i = 1; i < cps.length; i++) {
      const l = cps.slice(0, i).join(''), r = cps.slice(i).join('');
      if (score.has(l) && score.has(r)) local.push([l, r, pieceScore]);
    }
    local.sort((a, b) => score.get(b[0])! - score.get(a[0])! || score.get(b[1])! - score.get(a[1])!);
    merges.push(...local);
  }
  merges.sort((a, b) => b[2] - a[2]);
  return merges.map(([l, r]) => [l, r]);
}

function template(bos: string | null, eos: string | null, ids: Map<string, number>): JsonValue {
  if (bos === null && eos === null) return null;
  const special = (t: string): JsonObject => ({ SpecialToken: { id: t, type_id: 0 } });
  const seq = (id: string, typeId: number): JsonObject => ({ Sequence: { id, type_id: typeId } });
  const wrap = (inner: JsonObject[]): JsonObject[] => [...(bos ? [special(bos)] : []), ...inner, ...(eos ? [special(eos)] : [])];
  const specials: JsonObject = {};
  for (const t of [bos, eos]) if (t) specials[t] = { id: t, ids: [ids.get(t)!], tokens: [t] };
  return { type: 'TemplateProcessing', single: wrap([seq('A', 0)]), pair: [...wrap([seq('A', 0)]), ...wrap([seq('B', 1)])], special_tokens: specials };
}

/** GGUF tokenizer metadata -> a tokenizer.json and tokenizer_config fields (errors name the file and the key). */
export function tokenizerFromGguf(meta: Meta, source: string): GgufTokenizer {
  const model = req(meta, 'tokenizer.ggml.model', source);
  if (model !== 'llama' && model !== 'gpt2') throw new Error(`${source}: metadata "tokenizer.ggml.model" is ${JSON.stringify(model)}; attend reads 'llama' (SentencePiece) and 'gpt2' (byte-level BPE)`);
  const tokens = strings(meta, 'tokenizer.ggml.tokens', source);
  const n = tokens.length;
  const types = numbers(meta, 'tokenizer.ggml.token_type', source, n) ?? tokens.map(() => TOKEN_TYPE.NORMAL);
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => { if (!ids.has(t)) ids.set(t, i); });
  const name = (key: string): string | null => {
    const id = optId(meta, key, source, n);
    return id === undefined ? null : tokens[id]!;
  };
  const bos = name('tokenizer.ggml.bos_token_id'), eos = name('tokenizer.ggml.eos_token_id');
  const unk = name('tokenizer.ggml.unknown_token_id'), pad = name('tokenizer.ggml.padding_token_id');
  let merges: [string, string][];
  if (meta['tokenizer.ggml.merges'] !== undefined) {
    merges = strings(meta, 'tokenizer.ggml.merges', source).map((m, i) => {
      const cut = m.indexOf(' ', 1);
      if (cut < 0) throw new Error(`${source}: metadata "tokenizer.ggml.merges"[${i}] must be two tokens separated by a space, got ${JSON.stringify(m)}`);
      return [m.slice(0, cut), m.slice(cut + 1)];
    });
  } else if (model === 'llama') {
    const scores = numbers(meta, 'tokenizer.ggml.scores', source, n);
    if (!scores) throw new Error(`${source}: missing metadata key "tokenizer.ggml.scores" (a 'llama' vocabulary without merges needs its scores)`);
    merges = mergesFromScores(tokens, scores);
  } else {
    throw new Error(`${source}: missing metadata key "tokenizer.ggml.merges" (a 'gpt2' vocabulary needs its merges)`);
  }
  const added: JsonObject[] = [];
  types.forEach((t, id) => {
    if (t === TOKEN_TYPE.CONTROL || t === TOKEN_TYPE.UNKNOWN || t === TOKEN_TYPE.USER_DEFINED) {
      added.push({ id, content: tokens[id]!, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t !== TOKEN_TYPE.USER_DEFINED });
    }
  });
  const vocab: JsonObject = {};
  for (const [t, i] of ids) vocab[t] = i;
  const bpe = (extra: JsonObject): JsonObject => ({
    type: 'BPE', dropout: null, unk_token: unk, continuing_subword_prefix: null, end_of_word_suffix: null, vocab, merges, ...extra,
  });
  const addBos = optBool(meta, 'tokenizer.ggml.add_bos_token', model === 'llama');
  const addEos = optBool(meta, 'tokenizer.ggml.add_eos_token', false);
  const post = template(addBos ? bos : null, addEos ? eos : null, ids);
  let json: JsonObject;
  if (model === 'llama') {
    const prefix = optBool(meta, 'tokenizer.ggml.add_space_prefix', true);
    const replace: JsonObject = { type: 'Replace', pattern: { String: ' ' }, content: '▁' };
    json = {
      version: '1.0', truncation: null, padding: null, added_tokens: added,
      normalizer: { type: 'Sequence', normalizers: prefix ? [{ type: 'Prepend', prepend: '▁' }, replace] : [replace] },
      pre_tokenizer: null, post_processor: post,
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : [])] },
      model: bpe({ fuse_unk: true, byte_fallback: true, ignore_merges: false }),
    };
  } else {
    const pre = meta['tokenizer.ggml.pre']?.value ?? 'default';
    const byteLevel = (useRegex: boolean): JsonObject => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
    let preTokenizer: JsonObject;
    if (typeof pre === 'string' && GPT2_PRE.includes(pre)) preTokenizer = byteLevel(true);
    else if (typeof pre === 'string' && PRE_REGEX[pre]) {
      preTokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: PRE_REGEX[pre]! }, behavior: 'Isolated', invert: false }, byteLevel(false)] };
    } else {
      throw new Error(`${source}: metadata "tokenizer.ggml.pre" is ${JSON.stringify(pre)}; attend knows ${[...GPT2_PRE, ...Object.keys(PRE_REGEX)].join(', ')}`);
    }
    json = {
      version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null, pre_tokenizer: preTokenizer, post_processor: post,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: bpe({ fuse_unk: false, byte_fallback: false, ignore_merges: pre === 'llama-bpe' }),
    };
  }
  const config: JsonObject = {};
  for (const [k, v] of [['bos_token', bos], ['eos_token', eos], ['unk_token', unk], ['pad_token', pad]] as const) if (v !== null) config[k] = v;
  const chat = meta['tokenizer.chat_template']?.value;
  if (typeof chat === 'string') config.chat_template = chat;
  return { json, config };
}

export interface TokenizerToGgufOptions {
  bosTokenId?: number;
  eosTokenId?: number;
  padTokenId?: number;
  chatTemplate?: string;
}

const BYTE_TOKEN = /^<0x[0-9A-F]{2}>$/;

/** The pre-tokenizer name llama.cpp uses for a byte-level tokenizer.json, or an error naming what is not supported. */
function preName(json: JsonObject, source: string): string {
  const pre = objectAt(json, 'pre_tokenizer');
  if (pre?.type === 'ByteLevel' && pre.use_regex !== false) return 'gpt-2';
  const parts = arrayAt(pre, 'pretokenizers');
  if (pre?.type === 'Sequence' && parts?.length === 2 && isJsonObject(parts[0]) && isJsonObject(parts[1]) && parts[1].type === 'ByteLevel') {
    const regex = stringAt(objectAt(parts[0], 'pattern'), 'Regex');
    const found = Object.entries(PRE_REGEX).find(([, r]) => r === regex);
    if (parts[0].type === 'Split' && found) return found[0];
  }
  throw new Error(`${source}: this byte-level pre_tokenizer has no llama.cpp name (attend writes GPT-2's, llama-bpe's and qwen2's): ${JSON.stringify(pre ?? null).slice(0, 120)}`);
}

/**
 * A tokenizer.json (BPE: SentencePiece-style with byte fallback -> 'llama', byte-level -> 'gpt2') as GGUF metadata.
 * The merges are written for both, so that reading the file back gives the same ids; 'llama' also gets scores (the
 * merge rank of each token, higher merged first) for llama.cpp's SentencePiece tokenizer.
 */
export function tokenizerToGguf(json: JsonObject, opts: TokenizerToGgufOptions = {}, source = 'tokenizer.json'): Record<string, GgufKV> {
  const model = objectAt(json, 'model');
  if (model?.type !== 'BPE') throw new Error(`${source}: only BPE tokenizers can be written to GGUF, got ${JSON.stringify(model?.type ?? null)}`);
  const vocab = objectAt(model, 'vocab') ?? {};
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(vocab)) if (typeof id === 'number') tokens[id] = t;
  const added = (arrayAt(json, 'added_tokens') ?? []).filter(isJsonObject);
  for (const a of added) if (typeof a.id === 'number' && typeof a.content === 'string') tokens[a.id] = a.content;
  for (let i = 0; i < tokens.length; i++) if (tokens[i] === undefined) throw new Error(`${source}: no token has id ${i}; GGUF needs ids 0 .. ${tokens.length - 1} without gaps`);
  const rawMerges = arrayAt(model, 'merges') ?? [];
  const merges = rawMerges.map((m) => (Array.isArray(m) ? `${String(m[0])} ${String(m[1])}` : String(m)));
  const byteFallback = model.byte_fallback === true;
  const unk = stringAt(model, 'unk_token');
  const special = new Map(added.map((a) => [a.content as string, a.special === true]));
  const types = tokens.map((t) => {
    if (byteFallback && BYTE_TOKEN.test(t)) return TOKEN_TYPE.BYTE;
    if (t === unk) return TOKEN_TYPE.UNKNOWN;
    if (special.has(t)) return special.get(t) ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
    return TOKEN_TYPE.NORMAL;
  });
  const meta: Record<string, GgufKV> = {};
  if (byteFallback) {
    // SentencePiece scores: a token made by merge r scores -r (llama.cpp merges the best-scored pair first).
    const rank = new Map<string, number>();
    merges.forEach((m, r) => { const t = m.replace(' ', ''); if (!rank.has(t)) rank.set(t, r); });
    const scores = tokens.map((t, i) => (types[i] !== TOKEN_TYPE.NORMAL ? 0 : rank.has(t) ? -rank.get(t)! : [...t].length > 1 ? -(merges.length + i) : 0));
    meta['tokenizer.ggml.model'] = gguf.str('llama');
    meta['tokenizer.ggml.tokens'] = gguf.strs(tokens);
    meta['tokenizer.ggml.scores'] = gguf.f32s(scores);
  } else {
    meta['tokenizer.ggml.model'] = gguf.str('gpt2');
    meta['tokenizer.ggml.pre'] = gguf.str(preName(json, source));
    meta['tokenizer.ggml.tokens'] = gguf.strs(tokens);
  }
  meta['tokenizer.ggml.token_type'] = gguf.i32s(types);
  meta['tokenizer.ggml.merges'] = gguf.strs(merges);
  // Special tokens the post-processor puts around a text: llama.cpp's add_bos / add_eos (and, unless given, which ids).
  const single = arrayAt(objectAt(json, 'post_processor'), 'single') ?? [];
  const specialOf = (x: JsonValue | undefined): string | undefined => (isJsonObject(x) ? stringAt(objectAt(x, 'SpecialToken'), 'id') : undefined);
  const bosName = specialOf(single[0]), eosName = single.length > 1 ? specialOf(single[single.length - 1]) : undefined;
  const indexOf = (t: string | undefined): number | undefined => (t === undefined || !tokens.includes(t) ? undefined : tokens.indexOf(t));
  const id = (key: string, v: number | undefined): void => { if (v !== undefined && v >= 0 && v < tokens.length) meta[key] = gguf.u32(v); };
  id('tokenizer.ggml.bos_token_id', opts.bosTokenId ?? indexOf(bosName));
  id('tokenizer.ggml.eos_token_id', opts.eosTokenId ?? indexOf(eosName));
  id('tokenizer.ggml.unknown_token_id', indexOf(unk));
  id('tokenizer.ggml.padding_token_id', opts.padTokenId);
  meta['tokenizer.ggml.add_bos_token'] = gguf.bool(bosName !== undefined);
  meta['tokenizer.ggml.add_eos_token'] = gguf.bool(eosName !== undefined);
  if (byteFallback) {
    const norms = arrayAt(objectAt(json, 'normalizer'), 'normalizers') ?? [];
    meta['tokenizer.ggml.add_space_prefix'] = gguf.bool(norms.some((x) => isJsonObject(x) && x.type === 'Prepend'));
  }
  if (opts.chatTemplate !== undefined) meta['tokenizer.chat_template'] = gguf.str(opts.chatTemplate);
  return meta;
}

// Checks a tokenizer.json's structure before the tokenizer library sees it: each problem named by file and key.
//
// The library assumes well-formed data: malformed files give internal TypeErrors, hang (a vocabulary id of 1e9 makes
// it walk a billion-slot array), or load and then encode to undefined ids. Hugging Face's Rust loader rejects these.

import { isJsonObject, type JsonObject, type JsonValue } from './json.js';

const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram', 'WordLevel'] as const;
type ModelType = (typeof MODEL_TYPES)[number];
const COMPONENTS = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const;

/** A value for an error message: short, and typed where JSON.stringify would hide it. */
function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** The model type: as written, or inferred as the library does for files without one. */
function modelType(model: JsonObject, fail: (msg: string) => never): ModelType {
  const type = model.type;
  if (type === undefined || type === null) {
    if (Array.isArray(model.vocab)) return 'Unigram';
    if ('merges' in model) return 'BPE';
    if ('unk_token' in model && 'continuing_subword_prefix' in model) return 'WordPiece';
    fail(`model.type is missing and cannot be told from the other keys (expected one of ${MODEL_TYPES.join(', ')})`);
  }
  if (typeof type !== 'string' || !(MODEL_TYPES as readonly string[]).includes(type)) {
    fail(`model.type ${show(type)} is not a known tokenizer model (${MODEL_TYPES.join(', ')})`);
  }
  return type as ModelType;
}

/** Throws an Error naming `source` and the key at the first structural problem of a tokenizer.json. */
export function validateTokenizerJson(json: JsonObject, source: string): void {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  const model = json.model;
  if (!isJsonObject(model)) fail('not a tokenizer.json (no "model" object)');
  const m = model as JsonObject;
  if (!('vocab' in m)) fail('not a tokenizer.json (its model has no "vocab")');
  const type = modelType(m, fail);

  // added_tokens: [{id, content, single_word, lstrip, rstrip, normalized, special}]
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) fail(`added_tokens must be an array of {"id", "content", ...} objects, got ${show(added)}`);
  const addedContents = new Set<string>();
  (added as JsonValue[]).forEach((t, i) => {
    if (!isJsonObject(t)) return fail(`added_tokens[${i}] must be an object with "id" and "content", got ${show(t)}`);
    if (typeof t.content !== 'string' || t.content === '') fail(`added_tokens[${i}].content must be a non-empty string, got ${show(t.content)}`);
    if (!isId(t.id)) fail(`added_tokens[${i}].id must be a non-negative integer, got ${show(t.id)}`);
    for (const flag of ['single_word', 'lstrip', 'rstrip', 'normalized', 'special']) {
      if (t[flag] !== undefined && typeof t[flag] !== 'boolean') fail(`added_tokens[${i}].${flag} must be true or false, got ${show(t[flag])}`);
    }
    addedContents.add(t.content as string);
  });

  // The vocabulary: [[token, score], ...] for Unigram, {token: id} otherwise; never empty.
  const ids: number[] = [];
  const tokens = new Set<string>();
  if (type === 'Unigram') {
    if (!Array.isArray(m.vocab)) fail(`model.vocab of a Unigram model must be an array of [token, score] pairs, got ${show(m.vocab)}`);
    const vocab = m.vocab as JsonValue[];
    vocab.forEach((entry, i) => {
      if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'number' || !Number.isFinite(entry[1])) {
        fail(`model.vocab[${i}] must be a [token, score] pair (a string and a finite number), got ${show(entry)}`);
      }
      tokens.add((entry as [string, number])[0]);
      ids.push(i);
    });
    const unkId = m.unk_id;
    if (unkId !== undefined && unkId !== null && (!isId(unkId) || unkId >= vocab.length)) {
      fail(`model.unk_id must be null or an index into model.vocab (0 to ${vocab.length - 1}), got ${show(unkId)}`);
    }
  } else {
    if (!isJsonObject(m.vocab)) fail(`model.vocab of a ${type} model must be an object {token: id}, got ${show(m.vocab)}`);
    for (const [token, id] of Object.entries(m.vocab as JsonObject)) {
      if (!isId(id)) fail(`model.vocab[${show(token)}] must be a non-negative integer id, got ${show(id)}`);
      tokens.add(token);
      ids.push(id as number);
    }
  }
  if (ids.length === 0) fail('model.vocab is empty: a tokenizer needs at least one token');
  // Ids index a dense table: one far beyond the number of tokens is a corrupt file (and would make the library walk a huge array).
  const count = ids.length + (added as JsonValue[]).length;
  const checkRange = (id: number, what: string): void => {
    if (id >= count) fail(`${what} is id ${id}, beyond the ${count} tokens of the vocabulary and added_tokens (ids must run from 0 without large gaps)`);
  };
  if (type !== 'Unigram') Object.entries(m.vocab as JsonObject).forEach(([token, id]) => checkRange(id as number, `model.vocab[${show(token)}]`));
  (added as JsonObject[]).forEach((t, i) => checkRange(t.id as number, `added_tokens[${i}]`));

  const optional = (key: string, kind: 'string' | 'boolean'): void => {
    const v = m[key];
    if (v !== undefined && v !== null && typeof v !== kind) fail(`model.${key} must be ${kind === 'string' ? 'a string' : 'true or false'} or null, got ${show(v)}`);
  };
  const known = (token: string): boolean => tokens.has(token) || addedContents.has(token);
  const checkUnk = (required: boolean): void => {
    optional('unk_token', 'string');
    const unk = m.unk_token;
    if (typeof unk === 'string' && !known(unk)) fail(`model.unk_token ${show(unk)} is not in model.vocab or added_tokens`);
    if (required && typeof unk !== 'string') fail(`model.unk_token must be a string (the token for unknown words), got ${show(unk)}`);
  };

  if (type === 'BPE') {
    checkUnk(false);
    for (const key of ['continuing_subword_prefix', 'end_of_word_suffix']) optional(key, 'string');
    for (const key of ['fuse_unk', 'byte_fallback', 'ignore_merges']) optional(key, 'boolean');
    const dropout = m.dropout;
    if (dropout !== undefined && dropout !== null && (typeof dropout !== 'number' || !(dropout >= 0 && dropout <= 1))) fail(`model.dropout must be null or a number in [0, 1], got ${show(dropout)}`);
    const merges = m.merges;
    if (!Array.isArray(merges)) fail(`model.merges must be an array of merges ("a b" strings or ["a", "b"] pairs), got ${show(merges)}`);
    const prefix = typeof m.continuing_subword_prefix === 'string' ? m.continuing_subword_prefix : '';
    const vocab = m.vocab as JsonObject;
    let format: 'string' | 'pair' | null = null;
    (merges as JsonValue[]).forEach((merge, i) => {
      let pair: string[] | null = null;
      if (typeof merge === 'string') {
        const parts = merge.split(' ');
        if (parts.length === 2) pair = parts;
      } else if (Array.isArray(merge) && merge.length === 2 && typeof merge[0] === 'string' && typeof merge[1] === 'string') {
        pair = [merge[0], merge[1]];
      }
      if (!pair) return fail(`model.merges[${i}] must be an "a b" string or an ["a", "b"] pair, got ${show(merge)}`);
      // The library reads every merge in the format of the first.
      const f = typeof merge === 'string' ? 'string' : 'pair';
      if (format !== null && f !== format) fail(`model.merges[${i}] is ${f === 'string' ? 'a string' : 'a pair'} but model.merges[0] is ${format === 'string' ? 'a string' : 'a pair'}; use one format`);
      format = f;
      const [a, b] = pair as [string, string];
      const merged = a + (prefix && b.startsWith(prefix) ? b.slice(prefix.length) : b);
      for (const t of [a, b, merged]) {
        if (!Object.hasOwn(vocab, t)) fail(`model.merges[${i}] (${show(merge)}): ${show(t)} is not in model.vocab`);
      }
    });
  } else if (type === 'WordPiece') {
    checkUnk(true);
    optional('continuing_subword_prefix', 'string');
    const max = m.max_input_chars_per_word;
    if (max !== undefined && max !== null && !(isId(max) && max > 0)) fail(`model.max_input_chars_per_word must be a positive integer, got ${show(max)}`);
  } else if (type === 'WordLevel') {
    checkUnk(false);
  } else {
    optional('byte_fallback', 'boolean');
  }

  for (const key of COMPONENTS) {
    const v = json[key];
    if (v !== undefined && v !== null) checkComponent(v, key, fail);
  }
}

/** Sequence components' lists, by the key each kind of Sequence uses. */
const SEQUENCE_KEYS = ['normalizers', 'pretokenizers', 'processors', 'decoders'];

/**
 * A normalizer / pre-tokenizer / post-processor / decoder: an object with a "type"; a Sequence's parts likewise; a
 * "pattern" a {"String": ...} or {"Regex": ...} object (the library silently drops the text on any other value).
 * Other settings are checked by the library and by post-process.ts when the tokenizer is built.
 */
function checkComponent(v: JsonValue, key: string, fail: (msg: string) => never): void {
  if (!isJsonObject(v) || typeof v.type !== 'string') return void fail(`${key} must be null or an object with a "type", got ${show(v)}`);
  for (const listKey of SEQUENCE_KEYS) {
    if (!(listKey in v)) continue;
    const list = v[listKey];
    if (!Array.isArray(list)) fail(`${key}.${listKey} must be an array, got ${show(list)}`);
    (list as JsonValue[]).forEach((part, i) => checkComponent(part, `${key}.${listKey}[${i}]`, fail));
  }
  if ('pattern' in v) {
    const pattern = v.pattern;
    const ok = isJsonObject(pattern) && (typeof pattern.String === 'string' || typeof pattern.Regex === 'string');
    if (!ok) fail(`${key}.pattern must be {"String": text} or {"Regex": pattern}, got ${show(pattern)}`);
  }
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

/** A token as tokenizer_config.json writes it: a string, an AddedToken object {"content": ...}, or null. */
const isTokenValue = (v: JsonValue | undefined): boolean => v === undefined || v === null || typeof v === 'string' || (isJsonObject(v) && typeof v.content === 'string');

/**
 * Checks the keys of a tokenizer_config.json / special_tokens_map.json that the tokenizer reads, naming `source`
 * (the file they came from) and the key.
 */
export function validateTokenizerConfig(config: JsonObject, source: string): void {
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  for (const key of SPECIAL_KEYS) {
    if (!isTokenValue(config[key])) fail(`${key} must be a token string, an AddedToken object {"content": ...} or null, got ${show(config[key])}`);
  }
  const extra = config.additional_special_tokens;
  if (extra !== undefined && extra !== null) {
    if (!Array.isArray(extra)) fail(`additional_special_tokens must be an array of tokens, got ${show(extra)}`);
    (extra as JsonValue[]).forEach((t, i) => {
      if (t === null || !isTokenValue(t)) fail(`additional_special_tokens[${i}] must be a token string or an AddedToken object, got ${show(t)}`);
    });
  }
  for (const key of ['padding_side', 'truncation_side']) {
    const v = config[key];
    if (v !== undefined && v !== null && v !== 'left' && v !== 'right') fail(`${key} must be 'left' or 'right', got ${show(v)}`);
  }
  const max = config.model_max_length;
  if (max !== undefined && max !== null && (typeof max !== 'number' || !(max > 0))) fail(`model_max_length must be a positive number, got ${show(max)}`);
  const clean = config.clean_up_tokenization_spaces;
  if (clean !== undefined && clean !== null && typeof clean !== 'boolean') fail(`clean_up_tokenization_spaces must be true or false, got ${show(clean)}`);
}

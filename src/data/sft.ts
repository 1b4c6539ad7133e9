// Fine-tuning data in TRL's formats: SFT (messages; prompt + completion) and preference pairs (prompt, chosen, rejected), with completion-only labels, truncation, packing.
//
// Labels follow Hugging Face's convention: aligned with inputIds (the model shifts them), -100 where no loss is taken.

import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkMessages, type ChatMessage } from '../tokenizers/chat-template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { loadText } from './files.js';

/** The label of a token that takes no loss (PyTorch's ignore_index). */
export const IGNORE_INDEX = -100;

/** One training example in one of TRL's SFT formats. */
export type SftRecord =
  | { kind: 'messages'; messages: ChatMessage[]; tools?: unknown[] }
  | { kind: 'promptCompletion'; prompt: string; completion: string }
  | { kind: 'conversationalPromptCompletion'; prompt: ChatMessage[]; completion: ChatMessage[]; tools?: unknown[] };

export interface SkippedLine {
  line: number;
  reason: string;
}

export interface SftDataset {
  records: SftRecord[];
  /** Lines left out under skipBadLines (1-based line numbers), with why. */
  skipped: SkippedLine[];
}

export interface ReadSftOptions {
  /** Skip (and count) lines that are not JSON or lack the fields, instead of stopping at the first. Default false. */
  skipBadLines?: boolean;
}

const show = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * One parsed JSONL value as an SFT record: `{ "messages": [...] }`, `{ "prompt": "...", "completion": "..." }`, or
 * prompt and completion as lists of messages (conversational prompt-completion). `where` prefixes errors (file:line).
 */
export function parseSftRecord(value: unknown, where: string): SftRecord {
  if (!isObject(value)) throw new Error(`${where}: expected a JSON object, got ${show(value)}`);
  const tools = value.tools;
  if (tools !== undefined && tools !== null && !Array.isArray(tools)) throw new Error(`${where}: "tools" must be a list of tool schemas, got ${show(tools)}`);
  const withTools = Array.isArray(tools) ? { tools } : {};
  if ('messages' in value) {
    const messages = value.messages;
    if (!Array.isArray(messages) || messages.length === 0) throw new Error(`${where}: "messages" must be a non-empty list of { role, content } objects, got ${show(messages)}`);
    checkMessages(messages as ChatMessage[], where);
    return { kind: 'messages', messages: messages as ChatMessage[], ...withTools };
  }
  if ('prompt' in value && 'completion' in value) {
    const { prompt, completion } = value;
    if (typeof prompt === 'string' && typeof completion === 'string') return { kind: 'promptCompletion', prompt, completion };
    if (Array.isArray(prompt) && Array.isArray(completion)) {
      checkMessages(prompt as ChatMessage[], `${where}: prompt`);
      checkMessages(completion as ChatMessage[], `${where}: completion`);
      if (completion.length === 0) throw new Error(`${where}: "completion" is an empty list of messages`);
      return { kind: 'conversationalPromptCompletion', prompt: prompt as ChatMessage[], completion: completion as ChatMessage[], ...withTools };
    }
    throw new Error(`${where}: "prompt" and "completion" must both be strings or both lists of messages, got ${show(prompt)} and ${show(completion)}`);
  }
  const keys = Object.keys(value);
  throw new Error(`${where}: expected "messages", or "prompt" and "completion" (TRL's SFT formats); the line has ${keys.length ? `keys ${keys.map((k) => show(k)).join(', ')}` : 'no keys'}`);
}

/** Parses JSON Lines with `parse` per line (blank lines skipped), stopping at the first bad line or, with skipBadLines, counting them. */
function parseJsonlRecords<R>(text: string, file: string, opts: ReadSftOptions, what: string, parse: (value: unknown, where: string) => R): { records: R[]; skipped: SkippedLine[] } {
  const records: R[] = [];
  const skipped: SkippedLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const where = `${file}:${i + 1}`;
    try {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (e) {
        throw new Error(`${where}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
      }
      records.push(parse(value, where));
    } catch (e) {
      if (!opts.skipBadLines) throw e;
      skipped.push({ line: i + 1, reason: e instanceof Error ? e.message.slice(where.length + 2) : String(e) });
    }
  });
  if (records.length === 0) throw new Error(`${file}: no ${what}${skipped.length ? ` (all ${skipped.length} lines were bad; the first: line ${skipped[0]!.line}: ${skipped[0]!.reason})` : ''}`);
  return { records, skipped };
}

/** SFT records from JSON Lines text; `file` names the source in errors ("file:line: ..."). */
export function parseSftJsonl(text: string, file = '<jsonl>', opts: ReadSftOptions = {}): SftDataset {
  return parseJsonlRecords(text, file, opts, 'SFT examples', parseSftRecord);
}

/** Reads a JSONL file of SFT examples (UTF-8); errors name the file and line. */
export async function loadSftJsonl(path: string, opts: ReadSftOptions = {}): Promise<SftDataset> {
  return parseSftJsonl(await loadText(path), path, opts);
}

// ---- tokenization ----

/** A tokenized example: token ids and labels (-100 where no loss is taken), of equal length. */
export interface SftExample {
  inputIds: number[];
  labels: number[];
}

export interface TokenizeSftOptions {
  /**
   * Loss on completions only (default true): -100 on prompt tokens of prompt-completion examples, and on everything but
   * the assistant turns of `messages` examples (TRL's completion_only_loss / assistant_only_loss). False: every token.
   */
  completionOnlyLoss?: boolean;
  /** Longest sequence in tokens; longer examples are truncated. Default: no limit. */
  maxLength?: number;
  /** Which end truncation removes: 'right' (default, as TRL: the end is cut) or 'left' (the start is cut, keeping the answer). */
  truncationSide?: 'left' | 'right';
  /** Append the eos token to string completions that do not end with it (TRL does). Default true. */
  addEos?: boolean;
  /** Chat template name or string, for conversational examples (see applyChatTemplate). */
  chatTemplate?: string;
  /** Extra template variables for conversational examples. */
  templateKwargs?: Record<string, unknown>;
}

export interface SftTokenizeStats {
  /** Examples cut to maxLength. */
  truncated: number;
  /** Examples left out because no token took loss (no assistant turn, or truncation removed the completion). */
  dropped: number;
  /** Prompt-completion examples whose tokenized prompt is not a prefix of the tokenized prompt + completion (TRL warns). */
  promptMismatch: number;
}

/** The code-point length of a string (token offsets count code points). */
const cpLength = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/** Labels for `ids` that keep tokens overlapping the code-point spans [start, end) and mask the rest. */
function labelsFromSpans(ids: readonly number[], offsets: readonly (readonly [number, number])[], spans: readonly [number, number][]): number[] {
  return ids.map((id, t) => {
    const [s, e] = offsets[t]!;
    const inside = spans.some(([a, b]) => (e > s ? s < b && e > a : s >= a && s < b));
    return inside ? id : IGNORE_INDEX;
  });
}

/**
 * The character span of each trainable message, found by rendering the conversation incrementally: the text of
 * messages[0..i) with the generation prompt is where message i's content starts, messages[0..i] where it ends. Works
 * for any template that renders a conversation's prefixes as prefixes of its text.
 */
function messageSpans(tokenizer: Tokenizer, messages: ChatMessage[], trainable: (i: number) => boolean, opts: TokenizeSftOptions, tools: unknown[] | undefined): { text: string; spans: [number, number][] } {
  const common = { tokenize: false as const, ...(opts.chatTemplate !== undefined ? { chatTemplate: opts.chatTemplate } : {}), ...(opts.templateKwargs ? { templateKwargs: opts.templateKwargs } : {}), ...(tools ? { tools } : {}) };
  const render = (n: number, addGenerationPrompt: boolean): string => tokenizer.applyChatTemplate(messages.slice(0, n), { ...common, addGenerationPrompt });
  const text = render(messages.length, false);
  const spans: [number, number][] = [];
  for (let i = 0; i < messages.length; i++) {
    if (!trainable(i)) continue;
    const through = render(i + 1, false);
    if (!text.startsWith(through)) {
      throw new Error(`the chat template renders messages[0..${i}] differently inside the whole conversation, so message ${i}'s tokens cannot be located; use completionOnlyLoss: false`);
    }
    // Start after the assistant header when the template has one that matches; else at the end of the previous turn.
    const withHeader = render(i, true);
    const start = through.startsWith(withHeader) ? withHeader : render(i, false);
    if (!through.startsWith(start)) throw new Error(`the chat template renders messages[0..${i - 1}] differently from the conversation that continues it; use completionOnlyLoss: false`);
    spans.push([cpLength(start), cpLength(through)]);
  }
  return { text, spans };
}

/** Tokenizes one record: input ids and labels, before truncation. */
export function tokenizeSftRecord(tokenizer: Tokenizer, record: SftRecord, opts: TokenizeSftOptions = {}): SftExample & { promptMismatch: boolean } {
  const completionOnly = opts.completionOnlyLoss ?? true;
  if (record.kind === 'promptCompletion') {
    let completion = record.completion;
    if (opts.addEos ?? true) {
      const eos = tokenizer.eosToken;
      if (eos === null) throw new Error('the tokenizer has no eos token to end completions with; set eos_token in tokenizer_config.json or pass addEos: false');
      if (!completion.endsWith(eos)) completion += eos;
    }
    // As TRL: the prompt and prompt + completion are tokenized as texts (with the tokenizer's special tokens, e.g. bos).
    const promptIds = tokenizer.encode(record.prompt).ids;
    const ids = tokenizer.encode(record.prompt + completion).ids;
    const promptMismatch = promptIds.some((id, i) => ids[i] !== id);
    const labels = completionOnly ? ids.map((id, i) => (i < promptIds.length ? IGNORE_INDEX : id)) : [...ids];
    return { inputIds: ids, labels, promptMismatch };
  }
  const messages = record.kind === 'messages' ? record.messages : [...record.prompt, ...record.completion];
  const firstTrainable = record.kind === 'messages' ? 0 : record.prompt.length;
  const trainable = (i: number): boolean => i >= firstTrainable && (record.kind === 'conversationalPromptCompletion' || messages[i]!.role === 'assistant');
  if (!completionOnly) {
    const ids = tokenizer.applyChatTemplate(messages, { ...(opts.chatTemplate !== undefined ? { chatTemplate: opts.chatTemplate } : {}), ...(opts.templateKwargs ? { templateKwargs: opts.templateKwargs } : {}), ...(record.tools ? { tools: record.tools } : {}) });
    return { inputIds: ids, labels: [...ids], promptMismatch: false };
  }
  const { text, spans } = messageSpans(tokenizer, messages, trainable, opts, record.tools);
  const enc = tokenizer.encode(text, { addSpecialTokens: false });
  return { inputIds: enc.ids, labels: labelsFromSpans(enc.ids, enc.offsets, spans), promptMismatch: false };
}

function checkLength(n: number | undefined, what: string): void {
  if (n !== undefined && (!Number.isSafeInteger(n) || n < 1)) throw new Error(`${what} must be a positive integer, got ${String(n)}`);
}

/** Cuts an example to `maxLength` tokens from the given side. */
function truncate(ex: SftExample, maxLength: number, side: 'left' | 'right'): SftExample {
  if (ex.inputIds.length <= maxLength) return ex;
  const cut = <T>(a: T[]): T[] => (side === 'right' ? a.slice(0, maxLength) : a.slice(a.length - maxLength));
  return { inputIds: cut(ex.inputIds), labels: cut(ex.labels) };
}

/**
 * Tokenizes SFT records: completion-only labels by default, truncation to maxLength. Examples where no token takes loss
 * are dropped (a batch of them would give a 0/0 loss) and counted. Errors name the record's index.
 */
export function tokenizeSft(tokenizer: Tokenizer, records: readonly SftRecord[], opts: TokenizeSftOptions = {}): { examples: SftExample[]; stats: SftTokenizeStats } {
  checkLength(opts.maxLength, 'tokenizeSft: maxLength');
  const side = opts.truncationSide ?? 'right';
  if (side !== 'left' && side !== 'right') throw new Error(`tokenizeSft: truncationSide must be 'left' or 'right', got ${show(side)}`);
  const stats: SftTokenizeStats = { truncated: 0, dropped: 0, promptMismatch: 0 };
  const examples: SftExample[] = [];
  records.forEach((record, i) => {
    let ex: SftExample;
    try {
      const { promptMismatch, ...rest } = tokenizeSftRecord(tokenizer, record, opts);
      if (promptMismatch) stats.promptMismatch++;
      ex = rest;
    } catch (e) {
      throw new Error(`tokenizeSft: example ${i}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (opts.maxLength !== undefined && ex.inputIds.length > opts.maxLength) {
      ex = truncate(ex, opts.maxLength, side);
      stats.truncated++;
    }
    if (ex.labels.every((l) => l === IGNORE_INDEX)) stats.dropped++;
    else examples.push(ex);
  });
  return { examples, stats };
}

// ---- preference pairs (DPO) ----

/** A preference pair in TRL's DPO formats: a prompt with a chosen and a rejected completion (strings, or lists of messages). */
export type PreferenceRecord =
  | { kind: 'preference'; prompt: string; chosen: string; rejected: string }
  | { kind: 'conversationalPreference'; prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[]; tools?: unknown[] };

export interface PreferenceDataset {
  records: PreferenceRecord[];
  skipped: SkippedLine[];
}

/** One parsed JSONL value as a preference pair: `{ "prompt", "chosen", "rejected" }`, all strings or all lists of messages. */
export function parsePreferenceRecord(value: unknown, where: string): PreferenceRecord {
  if (!isObject(value)) throw new Error(`${where}: expected a JSON object, got ${show(value)}`);
  const missing = ['prompt', 'chosen', 'rejected'].filter((k) => !(k in value));
  if (missing.length > 0) {
    throw new Error(`${where}: expected "prompt", "chosen" and "rejected" (TRL's preference format); missing ${missing.map((k) => show(k)).join(', ')}`);
  }
  const { prompt, chosen, rejected, tools } = value;
  if (typeof prompt === 'string' && typeof chosen === 'string' && typeof rejected === 'string') return { kind: 'preference', prompt, chosen, rejected };
  if (Array.isArray(prompt) && Array.isArray(chosen) && Array.isArray(rejected)) {
    for (const [name, list] of [['prompt', prompt], ['chosen', chosen], ['rejected', rejected]] as const) {
      if (list.length === 0) throw new Error(`${where}: "${name}" is an empty list of messages`);
      checkMessages(list as ChatMessage[], `${where}: ${name}`);
    }
    if (tools !== undefined && tools !== null && !Array.isArray(tools)) throw new Error(`${where}: "tools" must be a list of tool schemas, got ${show(tools)}`);
    return { kind: 'conversationalPreference', prompt: prompt as ChatMessage[], chosen: chosen as ChatMessage[], rejected: rejected as ChatMessage[], ...(Array.isArray(tools) ? { tools } : {}) };
  }
  throw new Error(`${where}: "prompt", "chosen" and "rejected" must all be strings or all lists of messages`);
}

/** Preference pairs from JSON Lines text; `file` names the source in errors. */
export function parsePreferenceJsonl(text: string, file = '<jsonl>', opts: ReadSftOptions = {}): PreferenceDataset {
  return parseJsonlRecords(text, file, opts, 'preference pairs', parsePreferenceRecord);
}

/** Reads a JSONL file of preference pairs (UTF-8); errors name the file and line. */
export async function loadPreferenceJsonl(path: string, opts: ReadSftOptions = {}): Promise<PreferenceDataset> {
  return parsePreferenceJsonl(await loadText(path), path, opts);
}

/** A tokenized pair: each side is prompt + completion with labels only on the completion (what the DPO loss sums). */
export interface PreferencePair {
  chosen: SftExample;
  rejected: SftExample;
}

/**
 * Tokenizes preference pairs as two prompt-completion examples each (eos appended to string completions; for
 * messages, the completion after the assistant header), truncated as tokenizeSft does; completionOnlyLoss is always
 * on (the DPO log-probabilities are those of the completions). A pair where either side is left without completion
 * tokens is dropped and counted.
 */
export function tokenizePreference(tokenizer: Tokenizer, records: readonly PreferenceRecord[], opts: Omit<TokenizeSftOptions, 'completionOnlyLoss'> = {}): { pairs: PreferencePair[]; stats: SftTokenizeStats } {
  const side = (r: PreferenceRecord, which: 'chosen' | 'rejected'): SftRecord =>
    r.kind === 'preference'
      ? { kind: 'promptCompletion', prompt: r.prompt, completion: r[which] }
      : { kind: 'conversationalPromptCompletion', prompt: r.prompt, completion: r[which], ...(r.tools ? { tools: r.tools } : {}) };
  const flat = records.flatMap((r) => [side(r, 'chosen'), side(r, 'rejected')]);
  // Tokenize one side at a time so that a dropped side drops its pair; errors name the pair.
  const stats: SftTokenizeStats = { truncated: 0, dropped: 0, promptMismatch: 0 };
  const pairs: PreferencePair[] = [];
  for (let i = 0; i < records.length; i++) {
    const sides: SftExample[] = [];
    for (const k of [0, 1]) {
      let out: { examples: SftExample[]; stats: SftTokenizeStats };
      try {
        out = tokenizeSft(tokenizer, [flat[2 * i + k]!], { ...opts, completionOnlyLoss: true });
      } catch (e) {
        throw new Error(`tokenizePreference: pair ${i} (${k === 0 ? 'chosen' : 'rejected'}): ${(e instanceof Error ? e.message : String(e)).replace(/^tokenizeSft: example 0: /, '')}`);
      }
      stats.truncated += out.stats.truncated;
      stats.promptMismatch += out.stats.promptMismatch;
      if (out.examples[0]) sides.push(out.examples[0]);
    }
    if (sides.length === 2) pairs.push({ chosen: sides[0]!, rejected: sides[1]! });
    else stats.dropped++;
  }
  return { pairs, stats };
}

/** A batch of pairs as TRL's concatenated forward pass: [2B, T] tensors, the B chosen rows first, then the B rejected. */
export function collatePreference(pairs: readonly PreferencePair[], padId: number): SftBatch {
  if (!Array.isArray(pairs) || pairs.length === 0) throw new Error('collatePreference: expected a non-empty array of pairs');
  return collateSft([...pairs.map((p) => p.chosen), ...pairs.map((p) => p.rejected)], padId);
}

// ---- packing and batching ----

/** Several examples in one sequence: positions restart at 0 at each example (sequenceStarts), so attention can reset there. */
export interface PackedSequence extends SftExample {
  positionIds: number[];
  /** Offset of each example's first token in the sequence (the first is 0). */
  sequenceStarts: number[];
}

/**
 * Packs examples into sequences of at most `maxLength` tokens by best-fit decreasing (TRL's 'bfd' strategy): longest
 * first, each into the fullest sequence that still has room. Longer examples are truncated (`truncationSide`, default
 * right). The first label of every example is -100, so that no example is trained to follow the one before it.
 */
export function packSft(examples: readonly SftExample[], maxLength: number, opts: { truncationSide?: 'left' | 'right' } = {}): PackedSequence[] {
  checkLength(maxLength, 'packSft: maxLength');
  const fitted = examples.map((ex, i) => {
    if (ex.inputIds.length !== ex.labels.length) throw new Error(`packSft: example ${i} has ${ex.inputIds.length} input ids but ${ex.labels.length} labels`);
    if (ex.inputIds.length === 0) throw new Error(`packSft: example ${i} is empty`);
    return truncate(ex, maxLength, opts.truncationSide ?? 'right');
  });
  const order = fitted.map((_, i) => i).sort((a, b) => fitted[b]!.inputIds.length - fitted[a]!.inputIds.length || a - b);
  const bins: { used: number; members: number[] }[] = [];
  for (const i of order) {
    const len = fitted[i]!.inputIds.length;
    let best: { used: number; members: number[] } | null = null;
    for (const bin of bins) if (bin.used + len <= maxLength && (best === null || bin.used > best.used)) best = bin;
    if (best === null) bins.push({ used: len, members: [i] });
    else {
      best.used += len;
      best.members.push(i);
    }
  }
  return bins.map(({ members }) => {
    const out: PackedSequence = { inputIds: [], labels: [], positionIds: [], sequenceStarts: [] };
    for (const i of members) {
      const ex = fitted[i]!;
      out.sequenceStarts.push(out.inputIds.length);
      out.inputIds.push(...ex.inputIds);
      out.labels.push(IGNORE_INDEX, ...ex.labels.slice(1));
      for (let p = 0; p < ex.inputIds.length; p++) out.positionIds.push(p);
    }
    return out;
  });
}

export interface SftBatch {
  /** [B, T] int32 token ids, padded on the right with padId. */
  inputIds: Tensor;
  /** [B, T] int32 labels, -100 at padding. */
  labels: Tensor;
  /**
   * [B, T] int32: 1 at tokens, 0 at padding; for packed sequences [B, 1, T, T] bool, true where query and key belong
   * to the same example (block diagonal; the model adds causality), so that attention resets at each example.
   */
  attentionMask: Tensor;
  /** [B, T] int32 positions: restarting per packed example, 0 at padding. */
  positionIds: Tensor;
}

/** Pads examples (or packed sequences) on the right into int32 tensors [B, T]. */
export function collateSft(batch: readonly (SftExample | PackedSequence)[], padId: number): SftBatch {
  if (!Array.isArray(batch) || batch.length === 0) throw new Error('collateSft: expected a non-empty array of examples');
  if (!Number.isInteger(padId)) throw new Error(`collateSft: padId must be an integer token id, got ${show(padId)}`);
  const T = Math.max(...batch.map((e) => e.inputIds.length));
  const B = batch.length;
  const ids = new Int32Array(B * T).fill(padId);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  const mask = new Int32Array(B * T);
  const pos = new Int32Array(B * T);
  batch.forEach((e, b) => {
    if (e.labels.length !== e.inputIds.length) throw new Error(`collateSft: example ${b} has ${e.inputIds.length} input ids but ${e.labels.length} labels`);
    const positions = 'positionIds' in e ? e.positionIds : null;
    for (let t = 0; t < e.inputIds.length; t++) {
      ids[b * T + t] = e.inputIds[t]!;
      labels[b * T + t] = e.labels[t]!;
      mask[b * T + t] = 1;
      pos[b * T + t] = positions ? positions[t]! : t;
    }
  });
  const make = (data: Int32Array): Tensor => tensor(data, { dtype: 'int32', shape: [B, T] });
  const packed = batch.some((e) => 'sequenceStarts' in e);
  return { inputIds: make(ids), labels: make(labels), attentionMask: packed ? blockMask(batch, T) : make(mask), positionIds: make(pos) };
}

/** [B, 1, T, T] bool: query i may see key j when both are tokens of the same packed example (padding sees nothing). */
function blockMask(batch: readonly (SftExample | PackedSequence)[], T: number): Tensor {
  const B = batch.length;
  const out = new Uint8Array(B * T * T);
  batch.forEach((e, b) => {
    const starts = 'sequenceStarts' in e ? e.sequenceStarts : [0];
    starts.forEach((start, k) => {
      const end = starts[k + 1] ?? e.inputIds.length;
      for (let i = start; i < end; i++) out.fill(1, (b * T + i) * T + start, (b * T + i) * T + end);
    });
  });
  return tensor(out, { dtype: 'bool', shape: [B, 1, T, T] });
}

// Token offsets for @huggingface/tokenizers, which returns none: replay the text side of the pipeline with alignments, then find each token in it.
//
// The replay covers added-token splitting, the normalizers and the pre-tokenizers that rewrite text (ByteLevel's prefix
// space, Metaspace); the tokens themselves always come from the library. Each token is then located in the replayed
// text in UTF-8 byte space, which handles byte-level tokens ('Ġ' -> 0x20, partial characters), byte fallback ('<0xE6>'),
// WordPiece's '##' and Metaspace's '▁' alike. Offsets are [start, end) in Unicode code points of the input, like
// Hugging Face's Python offsets (not UTF-16 units): `Array.from(text).slice(start, end).join('')` is the token's text.

import { AlignedText, isWhitespace } from './aligned.js';
import { fromByteLevel } from './byte-level.js';
import { hf, type HfPattern } from './hf-lib.js';
import { arrayAt, boolAt, isJsonObject, objectAt, stringAt, type JsonObject, type JsonValue } from './json.js';

export type Offset = [number, number];

type Step = (t: AlignedText) => AlignedText;
type SurfaceStep = (t: AlignedText, sectionIndex: number) => AlignedText;

function replaceConfig(config: JsonObject): { type: 'Replace'; pattern: HfPattern; content: string } {
  const p = objectAt(config, 'pattern');
  const pattern: HfPattern = {};
  const literal = stringAt(p, 'String');
  const regex = stringAt(p, 'Regex');
  if (literal !== undefined) pattern.String = literal;
  if (regex !== undefined) pattern.Regex = regex;
  return { type: 'Replace', pattern, content: stringAt(config, 'content') ?? '' };
}

// The library's own character classes, so that the replay normalises exactly as it does.
const BERT_CONTROL = /^\p{Cc}|\p{Cf}|\p{Co}|\p{Cs}$/u;
const NONSPACING_MARK = /^\p{Mn}$/u;
const ANY_MARK = /^\p{M}$/u;
const PRECOMPILED_DROP = /^[\u0001-\u0008\u000B\u000E-\u001F\u007F\u008F\u009F]$/;
const PRECOMPILED_SPACE = /^[\u0009\u000A\u000C\u000D\u00A0\u1680\u2000-\u200F\u2028\u2029\u202F\u205F\u2581\u3000\uFEFF\uFFFD]$/;

function isChineseChar(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0xf900 && cp <= 0xfaff);
}

// Whole-text tests that let the common case (nothing to change) skip the character-by-character replay.
const NEEDS_CLEANING = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\ufffd]|(?! )\s/u;
const HAS_CJK = /[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff]/;
const HAS_NONSPACING_MARK = /\p{Mn}/u;

function bertNormalizer(config: JsonObject): Step {
  const lowercase = boolAt(config, 'lowercase') ?? false;
  const stripAccents = boolAt(config, 'strip_accents');
  const strip = lowercase ? stripAccents !== false : stripAccents === true;
  return (t) => {
    if (boolAt(config, 'clean_text') && NEEDS_CLEANING.test(t.text)) {
      t = t.flatMap((c) => {
        const u = c.charCodeAt(0);
        if (u === 0 || u === 0xfffd || (c !== '\t' && c !== '\n' && c !== '\r' && BERT_CONTROL.test(c))) return '';
        return /^\s$/.test(c) ? ' ' : c;
      });
    }
    // The library tests UTF-16 units, so ideographs outside the BMP are left alone; so are they here.
    if (boolAt(config, 'handle_chinese_chars') && HAS_CJK.test(t.text)) {
      t = t.flatMap((c) => (c.length === 1 && isChineseChar(c.charCodeAt(0)) ? ` ${c} ` : c));
    }
    if (lowercase) t = t.lowercase();
    if (strip) {
      t = t.normalizeUnicode('NFD');
      if (HAS_NONSPACING_MARK.test(t.text)) t = t.flatMap((c) => (NONSPACING_MARK.test(c) ? '' : c));
    }
    return t;
  };
}

function precompiled(t: AlignedText): AlignedText {
  t = t.flatMap((c) => (PRECOMPILED_DROP.test(c) ? '' : PRECOMPILED_SPACE.test(c) ? ' ' : c));
  // The library keeps the full-width tilde out of NFKC.
  const parts: AlignedText[] = [];
  let from = 0;
  for (let i = 0; i <= t.length; i++) {
    if (i === t.length || t.chars[i] === '\uFF5E') {
      parts.push(t.slice(from, i).normalizeUnicode('NFKC'));
      if (i < t.length) parts.push(t.slice(i, i + 1));
      from = i + 1;
    }
  }
  return AlignedText.concat(parts);
}

/** The normalizer of a tokenizer.json replayed with alignments; null when there is none. */
export function alignedNormalizer(config: JsonValue | undefined): Step | null {
  if (!isJsonObject(config)) return null;
  switch (config.type) {
    case 'Sequence': {
      const steps = (arrayAt(config, 'normalizers') ?? []).map(alignedNormalizer).filter((s): s is Step => s !== null);
      return (t) => steps.reduce((acc, s) => s(acc), t);
    }
    case 'BertNormalizer':
      return bertNormalizer(config);
    case 'Precompiled':
      return precompiled;
    case 'Replace': {
      const pattern = new hf.ReplaceNormalizer(replaceConfig(config)).pattern;
      const content = stringAt(config, 'content') ?? '';
      return (t) => (pattern ? t.replace(pattern, content) : t);
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = config.type;
      return (t) => t.normalizeUnicode(form);
    }
    case 'Strip':
      return (t) => t.strip(boolAt(config, 'strip_left') ?? false, boolAt(config, 'strip_right') ?? false);
    case 'StripAccents':
      return (t) => t.flatMap((c) => (ANY_MARK.test(c) ? '' : c));
    case 'Lowercase':
      return (t) => t.lowercase();
    case 'Prepend': {
      const prefix = stringAt(config, 'prepend') ?? '';
      return (t) => t.prepend(prefix);
    }
    default:
      // Unknown here: the caller's check against the library's output falls back to coarse offsets.
      return (t) => t;
  }
}

/** The pre-tokenizer steps that change text rather than only split it. */
function surfaceSteps(config: JsonValue | undefined): SurfaceStep[] {
  if (!isJsonObject(config)) return [];
  switch (config.type) {
    case 'Sequence':
      return (arrayAt(config, 'pretokenizers') ?? []).flatMap(surfaceSteps);
    case 'ByteLevel':
      if (!boolAt(config, 'add_prefix_space')) return [];
      return [(t) => (t.chars[0] === ' ' ? t : t.prepend(' '))];
    case 'Metaspace': {
      const replacement = stringAt(config, 'replacement') ?? '\u2581';
      const rep = stringAt(config, 'str_rep') || replacement;
      const scheme = stringAt(config, 'prepend_scheme') ?? 'always';
      return [
        (t, sectionIndex) => {
          const r = t.flatMap((c) => (c === ' ' ? rep : c));
          const prepend = !r.text.startsWith(replacement) && (scheme === 'always' || (scheme === 'first' && sectionIndex === 0));
          return prepend ? r.prepend(rep) : r;
        },
      ];
    }
    case 'Replace': {
      const pattern = new hf.ReplacePreTokenizer(replaceConfig(config)).pattern;
      const content = stringAt(config, 'content') ?? '';
      return pattern ? [(t) => t.replace(pattern, content)] : [];
    }
    default:
      return [];
  }
}

interface AddedTokenInfo {
  content: string;
  lstrip: boolean;
  rstrip: boolean;
}

interface TrieNode {
  next: Map<string, TrieNode>;
  token?: AddedTokenInfo;
}

/** Longest-match, left-to-right splitting on added tokens, as the library's DictionarySplitter does. */
class AddedTokenSplitter {
  private readonly root: TrieNode = { next: new Map() };
  readonly empty: boolean;

  constructor(tokens: readonly AddedTokenInfo[]) {
    for (const t of tokens) {
      let node = this.root;
      for (const c of t.content) {
        let child = node.next.get(c);
        if (!child) node.next.set(c, (child = { next: new Map() }));
        node = child;
      }
      node.token = t;
    }
    this.empty = tokens.length === 0;
  }

  /** Pieces of `t`: text, or an added token with its original span (widened over whitespace it strips). */
  split(t: AlignedText): Piece[] {
    if (this.empty) return [{ text: t }];
    const pieces: Piece[] = [];
    let start = 0;
    let i = 0;
    while (i < t.length) {
      let node: TrieNode | undefined = this.root;
      let match: { token: AddedTokenInfo; end: number } | undefined;
      for (let j = i; j < t.length; j++) {
        node = node.next.get(t.chars[j]!);
        if (!node) break;
        if (node.token) match = { token: node.token, end: j + 1 };
      }
      if (match) {
        if (i > start) pieces.push({ text: t.slice(start, i) });
        pieces.push({ text: t.slice(i, match.end), added: match.token });
        i = start = match.end;
      } else {
        i++;
      }
    }
    if (start < t.length) pieces.push({ text: t.slice(start) });
    // lstrip / rstrip: the neighbouring whitespace goes, and Hugging Face counts it in the added token's offsets.
    pieces.forEach((p, k) => {
      const before = pieces[k - 1];
      if (p.added?.lstrip && before && !before.added) {
        const kept = before.text.strip(false, true);
        if (kept.length < before.text.length) p.from = before.text.starts[kept.length];
        before.text = kept;
      }
      const after = pieces[k + 1];
      if (p.added?.rstrip && after && !after.added) {
        const kept = after.text.strip(true, false);
        if (kept.length < after.text.length) p.to = after.text.ends[after.text.length - kept.length - 1];
        after.text = kept;
      }
    });
    return pieces;
  }
}

interface Piece {
  text: AlignedText;
  added?: AddedTokenInfo;
  from?: number | undefined;
  to?: number | undefined;
}

function addedSpan(p: Piece): AlignedText {
  const from = p.from ?? p.text.starts[0] ?? 0;
  const to = p.to ?? p.text.ends[p.text.length - 1] ?? from;
  return AlignedText.spanning(p.added?.content ?? p.text.text, from, to);
}

function utf8(c: string): number[] {
  const cp = c.codePointAt(0)!;
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 63)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63)];
}

function utf8String(s: string): number[] {
  const out: number[] = [];
  for (const c of s) out.push(...utf8(c));
  return out;
}

const BYTE_FALLBACK = /^<0x([0-9A-Fa-f]{2})>$/;

/** What the aligner needs from the library tokenizer. */
export interface AlignerSource {
  /** The library's normalizer, to check the replay against; null when the tokenizer has none. */
  normalize: ((text: string) => string) | null;
  /** tokenizer_config.json, for the options the library applies before normalizing. */
  config: JsonObject;
}

/** Finds each token of an encoding in its input text. */
export class OffsetAligner {
  private readonly normalizer: Step | null;
  private readonly surfaceSteps: SurfaceStep[];
  private readonly rawSplitter: AddedTokenSplitter;
  private readonly normalizedSplitter: AddedTokenSplitter;
  private readonly addedContents = new Set<string>();
  private readonly byteLevel: boolean;
  private readonly byteFallback: boolean;
  private readonly affixes: { prefix?: string; suffix?: string };
  private readonly unkToken: string | undefined;
  private readonly markers: number[][];
  private readonly needleCache = new Map<string, number[][]>();

  constructor(json: JsonObject, private readonly source: AlignerSource) {
    this.normalizer = alignedNormalizer(json.normalizer);
    this.surfaceSteps = surfaceSteps(json.pre_tokenizer);
    const added: AddedTokenInfo[] = [];
    const normalizedAdded: AddedTokenInfo[] = [];
    for (const t of arrayAt(json, 'added_tokens') ?? []) {
      if (!isJsonObject(t) || typeof t.content !== 'string') continue;
      const info = { content: t.content, lstrip: t.lstrip === true, rstrip: t.rstrip === true };
      if (t.normalized === true && source.normalize) {
        const content = source.normalize(t.content);
        normalizedAdded.push({ ...info, content });
        this.addedContents.add(content);
      } else {
        added.push(info);
      }
      this.addedContents.add(t.content);
    }
    this.rawSplitter = new AddedTokenSplitter(added);
    this.normalizedSplitter = new AddedTokenSplitter(normalizedAdded);
    const model = objectAt(json, 'model');
    this.byteLevel = mentionsByteLevel(json.pre_tokenizer) || mentionsByteLevel(json.decoder);
    this.byteFallback = boolAt(model, 'byte_fallback') === true;
    const prefix = stringAt(model, 'continuing_subword_prefix');
    const suffix = stringAt(model, 'end_of_word_suffix');
    this.affixes = { ...(prefix ? { prefix } : {}), ...(suffix ? { suffix } : {}) };
    const unkId = model?.type === 'Unigram' ? model.unk_id : undefined;
    const vocab = arrayAt(model, 'vocab');
    const unigramUnk = typeof unkId === 'number' && vocab ? vocab[unkId] : undefined;
    this.unkToken = stringAt(model, 'unk_token') ?? (Array.isArray(unigramUnk) && typeof unigramUnk[0] === 'string' ? unigramUnk[0] : undefined);
    const metaspace = findConfig(json.pre_tokenizer, 'Metaspace');
    this.markers = [[0x20], utf8String(stringAt(metaspace, 'replacement') ?? '\u2581')];
  }

  /** [start, end) code-point offsets in `text` of `tokens`, the library's tokens for it without special tokens. */
  align(text: string, tokens: readonly string[]): Offset[] {
    return this.match(this.surface(text), tokens);
  }

  /** The replayed text the tokens are drawn from, aligned to the input. */
  private surface(text: string): AlignedText {
    const parts: AlignedText[] = [];
    this.rawSplitter.split(AlignedText.of(text)).forEach((section, sectionIndex) => {
      if (section.added) {
        parts.push(addedSpan(section));
        return;
      }
      if (section.text.length === 0) return;
      const normalized = this.normalize(section.text);
      for (const sub of this.normalizedSplitter.split(normalized)) {
        if (sub.added) parts.push(addedSpan(sub));
        else if (sub.text.length > 0) parts.push(this.surfaceSteps.reduce((t, step) => step(t, sectionIndex), sub.text));
      }
    });
    return AlignedText.concat(parts);
  }

  private normalize(t: AlignedText): AlignedText {
    const config = this.source.config;
    if (!this.normalizer && config.remove_space !== true && config.do_lowercase_and_remove_accent !== true) return t;
    let raw = t.text;
    if (config.remove_space === true) {
      raw = raw.trim().split(/\s+/).join(' ');
      t = collapseWhitespace(t.strip(true, true));
    }
    if (config.do_lowercase_and_remove_accent === true) {
      raw = raw.toLowerCase().replace(/\p{M}/gu, '');
      t = t.lowercase().flatMap((c) => (ANY_MARK.test(c) ? '' : c));
    }
    const expected = this.source.normalize ? this.source.normalize(raw) : raw;
    if (this.normalizer) t = this.normalizer(t);
    if (t.text === expected) return t;
    // The replay disagrees with the library (an unusual normalizer): every character gets the whole section.
    return AlignedText.spanning(expected, t.starts[0] ?? 0, t.ends[t.length - 1] ?? 0);
  }

  private needles(token: string): number[][] {
    let found = this.needleCache.get(token);
    if (found) return found;
    found = [];
    if (this.addedContents.has(token)) found.push(utf8String(token));
    const fallback = this.byteFallback ? BYTE_FALLBACK.exec(token) : null;
    const bytes = this.byteLevel ? fromByteLevel(token) : undefined;
    if (fallback) found.push([parseInt(fallback[1]!, 16)]);
    else if (bytes) found.push(bytes);
    else {
      const { prefix, suffix } = this.affixes;
      let bare = token;
      if (prefix && bare.startsWith(prefix) && bare.length > prefix.length) bare = bare.slice(prefix.length);
      if (suffix && bare.endsWith(suffix) && bare.length > suffix.length) bare = bare.slice(0, -suffix.length);
      if (bare !== token) found.push(utf8String(bare));
      found.push(utf8String(token));
    }
    found = found.filter((n) => n.length > 0);
    this.needleCache.set(token, found);
    return found;
  }

  private match(surface: AlignedText, tokens: readonly string[]): Offset[] {
    const { chars, starts, ends } = surface;
    // The surface's UTF-8 bytes, with the character each byte belongs to and each character's first byte.
    const charByte = new Int32Array(chars.length + 1);
    for (let i = 0; i < chars.length; i++) {
      const cp = chars[i]!.codePointAt(0)!;
      charByte[i + 1] = charByte[i]! + (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
    }
    const n = charByte[chars.length]!;
    const bytes = new Uint8Array(n);
    const byteChar = new Int32Array(n);
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i]!;
      const at = charByte[i]!;
      if (charByte[i + 1]! - at === 1) {
        bytes[at] = c.charCodeAt(0);
        byteChar[at] = i;
      } else {
        utf8(c).forEach((b, k) => {
          bytes[at + k] = b;
          byteChar[at + k] = i;
        });
      }
    }
    const lastEnd = ends[ends.length - 1] ?? 0;
    const posAt = (charIndex: number): number => (charIndex < chars.length ? starts[charIndex]! : lastEnd);

    const matchesAt = (needle: number[], p: number): boolean => {
      if (p + needle.length > n) return false;
      for (let k = 0; k < needle.length; k++) if (bytes[p + k] !== needle[k]) return false;
      return true;
    };
    // Only whitespace may lie between one token and the next (pre-tokenizers drop nothing else).
    const findStrict = (needle: number[], from: number): number => {
      let p = from;
      for (;;) {
        if (matchesAt(needle, p)) return p;
        if (p >= n || !isWhitespace(chars[byteChar[p]!]!)) return -1;
        p = charByte[byteChar[p]! + 1]!;
      }
    };
    const findLoose = (needle: number[], from: number): number => {
      for (let p = from; p + needle.length <= n; p++) if (matchesAt(needle, p)) return p;
      return -1;
    };

    const offsets: Offset[] = new Array<Offset>(tokens.length);
    let cursor = 0;
    let pending: number[] = [];
    let pendingFrom = 0;

    // Tokens that could not be placed (unknown tokens) share the gap up to the next placed token.
    const settle = (until: number): void => {
      if (pending.length === 0) return;
      let c0 = pendingFrom < n ? byteChar[pendingFrom]! : chars.length;
      let c1 = until < n ? byteChar[until]! : chars.length;
      while (c0 < c1 && isWhitespace(chars[c0]!)) c0++;
      while (c1 > c0 && isWhitespace(chars[c1 - 1]!)) c1--;
      const words: Offset[] = [];
      for (let i = c0; i < c1; ) {
        let j = i;
        while (j < c1 && !isWhitespace(chars[j]!)) j++;
        words.push([starts[i]!, ends[j - 1]!]);
        while (j < c1 && isWhitespace(chars[j]!)) j++;
        i = j;
      }
      pending.forEach((t, k) => {
        if (c0 === c1) offsets[t] = [posAt(c0), posAt(c0)];
        else if (words.length === pending.length) offsets[t] = words[k]!;
        else if (c1 - c0 === pending.length) offsets[t] = [starts[c0 + k]!, ends[c0 + k]!];
        else offsets[t] = [starts[c0]!, ends[c1 - 1]!];
      });
      pending = [];
    };

    tokens.forEach((token, t) => {
      const needles = this.needles(token);
      const isUnk = token === this.unkToken;
      let best: { at: number; needle: number[] } | undefined;
      const consider = (needle: number[], find: (nd: number[], from: number) => number): void => {
        const at = find(needle, cursor);
        if (at >= 0 && (!best || at < best.at)) best = { at, needle };
      };
      for (const nd of needles) consider(nd, findStrict);
      if (!best && !isUnk) for (const nd of needles) consider(nd, findLoose);
      // A leading space or '▁' the pre-tokenizer inserted has no character of its own: look for the rest.
      if (!best && !isUnk) {
        for (const nd of needles) {
          for (const m of this.markers) {
            if (nd.length > m.length && m.every((b, k) => nd[k] === b)) consider(nd.slice(m.length), findLoose);
          }
        }
      }
      if (!best) {
        if (pending.length === 0) pendingFrom = cursor;
        pending.push(t);
        return;
      }
      const found: { at: number; needle: number[] } = best;
      settle(found.at);
      const end = found.at + found.needle.length;
      offsets[t] = [starts[byteChar[found.at]!]!, ends[byteChar[end - 1]!]!];
      cursor = end;
    });
    settle(n);
    return offsets;
  }
}

/** Runs of whitespace become one space, aligned to the run's first character. */
function collapseWhitespace(t: AlignedText): AlignedText {
  const keep: number[] = [];
  t.chars.forEach((c, i) => {
    if (!isWhitespace(c) || i === 0 || !isWhitespace(t.chars[i - 1]!)) keep.push(i);
  });
  return new AlignedText(
    keep.map((i) => (isWhitespace(t.chars[i]!) ? ' ' : t.chars[i]!)),
    keep.map((i) => t.starts[i]!),
    keep.map((i) => t.ends[i]!),
  );
}

function findConfig(config: JsonValue | undefined, type: string): JsonObject | undefined {
  if (!isJsonObject(config)) return undefined;
  if (config.type === type) return config;
  for (const key of ['pretokenizers', 'decoders', 'processors']) {
    for (const sub of arrayAt(config, key) ?? []) {
      const found = findConfig(sub, type);
      if (found) return found;
    }
  }
  return undefined;
}

export function mentionsByteLevel(config: JsonValue | undefined): boolean {
  return findConfig(config, 'ByteLevel') !== undefined;
}

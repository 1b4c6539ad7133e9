// OpenAI's tiktoken encodings (GPT-2's byte-level BPE and later ones) through js-tiktoken and the rank files it ships.

import type { TiktokenBPE } from 'js-tiktoken/lite';
import { BytePairEncoder, utf8ByteString } from './byte-pair.js';

export type TiktokenEncodingName = 'gpt2' | 'r50k_base' | 'p50k_base' | 'p50k_edit' | 'cl100k_base' | 'o200k_base';

export interface TiktokenEncodeOptions {
  /** Special tokens (e.g. '<|endoftext|>') to encode as such, or 'all'. Others in the text are an error, as in tiktoken. */
  allowedSpecial?: readonly string[] | 'all';
}

// Rank files are large (0.5 to 2.3 MB), so each is imported only when asked for; literal paths keep bundlers able to follow them.
async function loadRanks(name: TiktokenEncodingName): Promise<TiktokenBPE> {
  switch (name) {
    case 'gpt2':
      return (await import('js-tiktoken/ranks/gpt2')).default;
    case 'r50k_base':
      return (await import('js-tiktoken/ranks/r50k_base')).default;
    case 'p50k_base':
      return (await import('js-tiktoken/ranks/p50k_base')).default;
    case 'p50k_edit':
      return (await import('js-tiktoken/ranks/p50k_edit')).default;
    case 'cl100k_base':
      return (await import('js-tiktoken/ranks/cl100k_base')).default;
    case 'o200k_base':
      return (await import('js-tiktoken/ranks/o200k_base')).default;
    default:
      throw new Error(`TiktokenTokenizer: unknown encoding ${JSON.stringify(name)} (known: gpt2, r50k_base, p50k_base, p50k_edit, cl100k_base, o200k_base)`);
  }
}

/** Pieces up to this many characters keep their ids in the cache; longer ones are rare and would bloat it. */
const CACHE_PIECE_CHARS = 64;
/** The cache is emptied when it reaches this many pieces, bounding its memory. */
const CACHE_ENTRIES = 100_000;

function escapeRegex(text: string): string {
  return text.replace(/[\\^$*+?.()|[\]{}]/g, '\\$&');
}

/**
 * A tiktoken encoding: `encode` text to token ids and `decode` them back. js-tiktoken supplies the rank files, the
 * pre-tokenizer pattern and the special tokens; the byte-pair merge of each piece is ours (byte-pair.ts), because
 * js-tiktoken's rescans all pairs after each merge, quadratic in a piece's length (16k letters without a space: 15 s).
 */
export class TiktokenTokenizer {
  private readonly merger: BytePairEncoder;
  /** Rank -> token bytes (as a Latin-1 string). */
  private readonly tokenBytes = new Map<number, string>();
  private readonly pattern: RegExp;
  /** Piece -> ids, for short pieces (words recur). */
  private readonly cache = new Map<string, number[]>();
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder('utf-8');
  /** Special token -> id. */
  readonly specialTokens: Readonly<Record<string, number>>;
  /** Ordinary and special tokens (50257 for GPT-2). */
  readonly vocabSize: number;

  private constructor(data: TiktokenBPE, readonly name: string) {
    const ranks = new Map<string, number>();
    let end = 0;
    // bpe_ranks lines read "<label> <first rank> <token> <token> ...": base64 tokens, the ranks running on from the first.
    for (const line of data.bpe_ranks.split('\n')) {
      if (!line) continue;
      const fields = line.split(' ');
      const first = Number.parseInt(fields[1] ?? '', 10);
      if (!Number.isInteger(first) || first < 0) throw new Error(`${name}: bad rank line ${JSON.stringify(line.slice(0, 40))} (expected "<label> <first rank> <tokens>...")`);
      for (let i = 2; i < fields.length; i++) {
        let bytes: string;
        try {
          bytes = atob(fields[i]!);
        } catch {
          throw new Error(`${name}: token ${JSON.stringify(fields[i])} of rank ${first + i - 2} is not base64`);
        }
        const rank = first + i - 2;
        // The merge identifies a part's bytes by its rank, so ranks and byte strings must correspond one to one.
        if (ranks.has(bytes) || this.tokenBytes.has(rank)) throw new Error(`${name}: token ${JSON.stringify(fields[i])} or rank ${rank} appears twice`);
        ranks.set(bytes, rank);
        this.tokenBytes.set(rank, bytes);
      }
      end = Math.max(end, first + fields.length - 2);
    }
    this.merger = new BytePairEncoder(ranks);
    try {
      this.pattern = new RegExp(data.pat_str, 'gu');
    } catch (e) {
      throw new Error(`${name}: pat_str is not a valid regular expression (${e instanceof Error ? e.message : String(e)})`);
    }
    this.specialTokens = { ...data.special_tokens };
    this.vocabSize = Math.max(end, ...Object.values(this.specialTokens).map((id) => id + 1));
  }

  /** A tiktoken encoding by name; its rank file is imported from js-tiktoken, nothing is fetched. */
  static async fromEncoding(name: TiktokenEncodingName): Promise<TiktokenTokenizer> {
    return new TiktokenTokenizer(await loadRanks(name), name);
  }

  /** From rank data in js-tiktoken's format (e.g. imported from 'js-tiktoken/ranks/gpt2'). */
  static fromRanks(ranks: TiktokenBPE, name = 'custom'): TiktokenTokenizer {
    return new TiktokenTokenizer(ranks, name);
  }

  /** GPT-2's encoding (tiktoken's 'gpt2'): "London is a beautiful city" -> [23421, 318, 257, 4950, 1748]. */
  static gpt2(): Promise<TiktokenTokenizer> {
    return TiktokenTokenizer.fromEncoding('gpt2');
  }

  /** The end-of-text token's id (50256 for GPT-2), if the encoding has one. */
  get eotTokenId(): number | undefined {
    return this.specialTokens['<|endoftext|>'];
  }

  /** Token ids of `text`, as tiktoken's `encode`: O(n log n) in the length of each piece, so long unspaced text is fine. */
  encode(text: string, options: TiktokenEncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`${this.name}.encode: text must be a string, got ${typeof text}`);
    const specials = Object.keys(this.specialTokens);
    const allowed = new Set(options.allowedSpecial === 'all' ? specials : (options.allowedSpecial ?? []));
    const disallowed = specials.filter((t) => !allowed.has(t));
    if (disallowed.length > 0) {
      const found = new RegExp(disallowed.map(escapeRegex).join('|')).exec(text);
      if (found) throw new Error(`${this.name}.encode: the text contains a special token that is not allowed: ${found[0]} (pass allowedSpecial to encode it as such)`);
    }
    const ids: number[] = [];
    // In the encoding's order, as tiktoken: when two special tokens match at one place, the first listed wins.
    const allowedList = specials.filter((t) => allowed.has(t));
    const specialRegex = allowedList.length > 0 ? new RegExp(allowedList.map(escapeRegex).join('|'), 'g') : null;
    let start = 0;
    for (;;) {
      const special = specialRegex ? specialRegex.exec(text) : null;
      this.encodeOrdinary(special ? text.slice(start, special.index) : start === 0 ? text : text.slice(start), ids);
      if (!special) break;
      ids.push(this.specialTokens[special[0]]!);
      start = special.index + special[0].length;
    }
    return ids;
  }

  /** Pre-tokenizes `text` with the encoding's pattern and appends each piece's ids. */
  private encodeOrdinary(text: string, out: number[]): void {
    const pattern = this.pattern;
    pattern.lastIndex = 0;
    for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
      const piece = match[0];
      if (piece.length === 0) {
        pattern.lastIndex++; // the encodings' patterns never match empty, but a custom one might
        continue;
      }
      const cached = this.cache.get(piece);
      if (cached) {
        for (const id of cached) out.push(id);
        continue;
      }
      const pieceIds = this.merger.encode(utf8ByteString(piece, this.encoder));
      if (piece.length <= CACHE_PIECE_CHARS) {
        if (this.cache.size >= CACHE_ENTRIES) this.cache.clear();
        this.cache.set(piece, pieceIds);
      }
      // Not out.push(...pieceIds): a piece of a million bytes would overflow the stack.
      for (const id of pieceIds) out.push(id);
    }
  }

  decode(ids: ArrayLike<number>): string {
    const list = Array.from(ids);
    const specialText = new Map(Object.entries(this.specialTokens).map(([text, id]) => [id, text]));
    // Each token's bytes as a Latin-1 string; special tokens' text through UTF-8 first.
    const parts = list.map((id, i) => {
      const bytes = this.tokenBytes.get(id);
      if (bytes !== undefined) return bytes;
      const special = specialText.get(id);
      if (special === undefined) throw new Error(`${this.name}.decode: ${String(id)} at position ${i} is not a token id of this encoding (size ${this.vocabSize})`);
      return utf8ByteString(special, this.encoder);
    });
    let length = 0;
    for (const p of parts) length += p.length;
    const all = new Uint8Array(length);
    let offset = 0;
    for (const p of parts) for (let j = 0; j < p.length; j++) all[offset++] = p.charCodeAt(j);
    // Invalid UTF-8 (a token sequence cut inside a character) becomes U+FFFD, as tiktoken's decode with errors="replace".
    return this.decoder.decode(all);
  }
}

/** GPT-2's byte-level BPE encoding, loaded from js-tiktoken's bundled ranks. */
export function gpt2Encoding(): Promise<TiktokenTokenizer> {
  return TiktokenTokenizer.gpt2();
}

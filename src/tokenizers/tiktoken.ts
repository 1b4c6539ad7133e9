// OpenAI's tiktoken encodings (GPT-2's byte-level BPE and later ones) through js-tiktoken and the rank files it ships.

import { Tiktoken, type TiktokenBPE } from 'js-tiktoken/lite';

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

/** A tiktoken encoding: `encode` text to token ids and `decode` them back. */
export class TiktokenTokenizer {
  private readonly encoding: Tiktoken;
  /** [first, end) id ranges of the ordinary tokens. */
  private readonly rankRanges: [number, number][];
  /** Special token -> id. */
  readonly specialTokens: Readonly<Record<string, number>>;
  /** Ordinary and special tokens (50257 for GPT-2). */
  readonly vocabSize: number;

  private constructor(ranks: TiktokenBPE, readonly name: string) {
    this.encoding = new Tiktoken(ranks);
    // bpe_ranks lines read "<label> <first rank> <token> <token> ...", the ranks running on from the first.
    this.rankRanges = ranks.bpe_ranks.split('\n').filter(Boolean).map((line): [number, number] => {
      const fields = line.split(' ');
      const first = Number.parseInt(fields[1] ?? '', 10);
      return [first, first + fields.length - 2];
    });
    this.specialTokens = { ...ranks.special_tokens };
    this.vocabSize = Math.max(...this.rankRanges.map((r) => r[1]), ...Object.values(this.specialTokens).map((id) => id + 1));
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

  encode(text: string, options: TiktokenEncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`${this.name}.encode: text must be a string, got ${typeof text}`);
    const allowed = options.allowedSpecial === 'all' ? 'all' : [...(options.allowedSpecial ?? [])];
    return this.encoding.encode(text, allowed);
  }

  decode(ids: ArrayLike<number>): string {
    const list = Array.from(ids);
    const specialIds = new Set(Object.values(this.specialTokens));
    list.forEach((id, i) => {
      const known = Number.isInteger(id) && (specialIds.has(id) || this.rankRanges.some(([a, b]) => id >= a && id < b));
      if (!known) throw new Error(`${this.name}.decode: ${String(id)} at position ${i} is not a token id of this encoding (size ${this.vocabSize})`);
    });
    return this.encoding.decode(list);
  }
}

/** GPT-2's byte-level BPE encoding, loaded from js-tiktoken's bundled ranks. */
export function gpt2Encoding(): Promise<TiktokenTokenizer> {
  return TiktokenTokenizer.gpt2();
}

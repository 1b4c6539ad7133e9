// A typed view of the parts of @huggingface/tokenizers this package uses (its bundled .d.ts files use extensionless
// relative imports, which NodeNext module resolution cannot follow, so TypeScript would otherwise see them untyped).

import * as lib from '@huggingface/tokenizers';

export interface HfEncoding {
  ids: number[];
  tokens: string[];
}

/** The tokenizer's model (BPE, WordPiece, Unigram): pre-tokenized pieces -> token strings. */
export interface HfModel {
  encode(pieces: string[]): string[];
}

export interface HfTokenizer {
  model: HfModel;
  encode(text: string, options: { text_pair?: string | null; add_special_tokens?: boolean }): HfEncoding;
  decode(ids: number[], options: { skip_special_tokens?: boolean; clean_up_tokenization_spaces?: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens?: boolean): Map<string, number>;
  /** Null when the tokenizer.json has no normalizer. */
  normalizer: { normalize(text: string): string } | null;
}

/** The `pattern` of a Replace normalizer / pre-tokenizer config: a literal or an (Oniguruma) regex. */
export interface HfPattern {
  String?: string;
  Regex?: string;
}

interface HfLibrary {
  Unigram: abstract new (...args: never[]) => HfModel & { tokenize(piece: string): string[] };
  Tokenizer: new (tokenizerJson: object, tokenizerConfig: object) => HfTokenizer;
  ReplaceNormalizer: new (config: { type: 'Replace'; pattern: HfPattern; content: string }) => { pattern: RegExp | null };
  ReplacePreTokenizer: new (config: { type: 'Replace'; pattern: HfPattern; content: string }) => { pattern: RegExp | null };
  BertNormalizer: new (config: { type: 'BertNormalizer'; clean_text: boolean; handle_chinese_chars: boolean; strip_accents: boolean | null; lowercase: boolean }) => { normalize(text: string): string };
  BertPreTokenizer: new (config: { type: 'BertPreTokenizer' }) => { pre_tokenize_text(text: string): string[] };
  ByteLevelPreTokenizer: new (config: { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean }) => { pre_tokenize_text(text: string): string[] };
}

export const hf = lib as unknown as HfLibrary;

/**
 * The library's Unigram model appends each piece's tokens with `push(...tokens)`, whose arguments go on the stack: a
 * piece of ~120k characters (a long text without spaces) overflows it. This replaces that one method on the tokenizer's
 * model with a loop around the same per-piece `tokenize`, so ids are unchanged and any length works. Other models
 * spread only a word's tokens at a time.
 */
export function avoidStackOverflow(tokenizer: HfTokenizer): void {
  const model = tokenizer.model;
  if (!(model instanceof hf.Unigram) || typeof model.tokenize !== 'function') return;
  model.encode = (pieces: string[]): string[] => {
    const out: string[] = [];
    for (const piece of pieces) for (const token of model.tokenize(piece)) out.push(token);
    return out;
  };
}

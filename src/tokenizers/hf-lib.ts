// A typed view of the parts of @huggingface/tokenizers this package uses (its bundled .d.ts files use extensionless
// relative imports, which NodeNext module resolution cannot follow, so TypeScript would otherwise see them untyped).

import * as lib from '@huggingface/tokenizers';

export interface HfEncoding {
  ids: number[];
  tokens: string[];
}

export interface HfTokenizer {
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
  Tokenizer: new (tokenizerJson: object, tokenizerConfig: object) => HfTokenizer;
  ReplaceNormalizer: new (config: { type: 'Replace'; pattern: HfPattern; content: string }) => { pattern: RegExp | null };
  ReplacePreTokenizer: new (config: { type: 'Replace'; pattern: HfPattern; content: string }) => { pattern: RegExp | null };
  BertNormalizer: new (config: { type: 'BertNormalizer'; clean_text: boolean; handle_chinese_chars: boolean; strip_accents: boolean | null; lowercase: boolean }) => { normalize(text: string): string };
  BertPreTokenizer: new (config: { type: 'BertPreTokenizer' }) => { pre_tokenize_text(text: string): string[] };
  ByteLevelPreTokenizer: new (config: { type: 'ByteLevel'; add_prefix_space: boolean; trim_offsets: boolean; use_regex: boolean }) => { pre_tokenize_text(text: string): string[] };
}

export const hf = lib as unknown as HfLibrary;

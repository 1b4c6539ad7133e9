// Character vocabularies for CTC models, as Hugging Face's Wav2Vec2CTCTokenizer: vocab.json + tokenizer_config.json.

import { fileExists, readJsonFile } from '../io/hf.js';
import { withSource, type ModelSource } from '../io/source.js';
import { isJsonObject, tokenContent, type JsonObject, type JsonValue } from './json.js';

export interface Wav2Vec2CTCTokenizerOptions {
  /** The CTC blank (dropped by decode). */
  padToken?: string;
  unkToken?: string;
  bosToken?: string;
  eosToken?: string;
  /** The token that stands for a space between words. */
  wordDelimiterToken?: string;
  /** What decode writes for the word delimiter. */
  replaceWordDelimiterChar?: string;
  /** Upper-case text before encoding (the vocabularies of the English models are upper-case letters). */
  doLowerCase?: boolean;
  /** transformers' clean_up_tokenization (" ." -> "." and the like) after decoding. */
  cleanUpTokenizationSpaces?: boolean;
  /** Tokens matched whole in text (the special tokens and added tokens). */
  extraSpecialTokens?: string[];
}

export interface CTCDecodeOptions {
  /** Collapse runs of the same token first, as CTC's alignment requires (default true); the blank separates true repeats. */
  groupTokens?: boolean;
  /** Drop special tokens other than the blank (which grouping still needs) before grouping. */
  skipSpecialTokens?: boolean;
}

/** A character-level CTC tokenizer: text -> one id per character (spaces as the word delimiter), ids -> text. */
export class Wav2Vec2CTCTokenizer {
  readonly padToken: string;
  readonly unkToken: string;
  readonly wordDelimiterToken: string;
  readonly replaceWordDelimiterChar: string;
  readonly doLowerCase: boolean;
  readonly cleanUpTokenizationSpaces: boolean;
  /** Special tokens, longest first (matched whole when encoding). */
  readonly specialTokens: string[];
  private readonly encoder: Map<string, number>;
  private readonly decoder: Map<number, string>;

  constructor(vocab: Record<string, number>, opts: Wav2Vec2CTCTokenizerOptions = {}, source = 'vocab') {
    this.encoder = new Map();
    this.decoder = new Map();
    for (const [token, id] of Object.entries(vocab)) {
      if (!Number.isSafeInteger(id) || id < 0) throw new Error(`${source}: the id of ${JSON.stringify(token)} must be a non-negative integer, got ${JSON.stringify(id)}`);
      const other = this.decoder.get(id);
      if (other !== undefined) throw new Error(`${source}: id ${id} is given to both ${JSON.stringify(other)} and ${JSON.stringify(token)}`);
      this.encoder.set(token, id);
      this.decoder.set(id, token);
    }
    if (this.encoder.size === 0) throw new Error(`${source}: the vocabulary is empty`);
    this.padToken = opts.padToken ?? '<pad>';
    this.unkToken = opts.unkToken ?? '<unk>';
    this.wordDelimiterToken = opts.wordDelimiterToken ?? '|';
    this.replaceWordDelimiterChar = opts.replaceWordDelimiterChar ?? ' ';
    this.doLowerCase = opts.doLowerCase ?? false;
    this.cleanUpTokenizationSpaces = opts.cleanUpTokenizationSpaces ?? false;
    if (!this.encoder.has(this.padToken)) throw new Error(`${source}: the pad token ${JSON.stringify(this.padToken)} (CTC's blank) is not in the vocabulary`);
    const special = [this.padToken, this.unkToken, opts.bosToken ?? '<s>', opts.eosToken ?? '</s>', ...(opts.extraSpecialTokens ?? [])];
    this.specialTokens = [...new Set(special.filter((t) => t.length > 0 && this.encoder.has(t)))].sort((a, b) => b.length - a.length);
  }

  /**
   * Reads vocab.json and, where present, tokenizer_config.json, special_tokens_map.json and added_tokens.json. A
   * multilingual vocab.json (one vocabulary per language) needs `targetLang` (or the config's target_lang). The folder
   * is a path (Node), a URL, or files in memory.
   */
  static fromPretrained(src: ModelSource, opts: { targetLang?: string } = {}): Promise<Wav2Vec2CTCTokenizer> {
    return withSource(src, (dir) => Wav2Vec2CTCTokenizer.fromFolder(dir, opts));
  }

  private static async fromFolder(dir: string, opts: { targetLang?: string }): Promise<Wav2Vec2CTCTokenizer> {
    const base = dir.replace(/\/$/, '');
    const vocabPath = `${base}/vocab.json`;
    if (!(await fileExists(vocabPath))) throw new Error(`${vocabPath}: not found (a CTC tokenizer needs vocab.json)`);
    const config = await readObject(`${base}/tokenizer_config.json`);
    const specialMap = await readObject(`${base}/special_tokens_map.json`);
    const raw = await readJsonFile(vocabPath);
    if (!isJsonObject(raw)) throw new Error(`${vocabPath}: expected an object of token -> id`);
    let vocab: JsonObject = raw;
    const values = Object.values(raw);
    if (values.length > 0 && values.every(isJsonObject)) {
      const lang = opts.targetLang ?? (typeof config?.target_lang === 'string' ? config.target_lang : undefined);
      const langs = Object.keys(raw);
      if (lang === undefined) throw new Error(`${vocabPath}: holds one vocabulary per language (${langs.slice(0, 8).join(', ')}${langs.length > 8 ? ', ...' : ''}); pass targetLang`);
      const chosen = raw[lang];
      if (!isJsonObject(chosen)) throw new Error(`${vocabPath}: no vocabulary for target language ${JSON.stringify(lang)}`);
      vocab = chosen;
    }
    const merged: Record<string, number> = {};
    for (const [token, id] of Object.entries(vocab)) {
      if (typeof id !== 'number') throw new Error(`${vocabPath}: the id of ${JSON.stringify(token)} must be a number, got ${JSON.stringify(id)}`);
      merged[token] = id;
    }
    // Tokens added after training (transformers' added_tokens_decoder, or the older added_tokens.json).
    const decoderTable = config?.added_tokens_decoder;
    if (isJsonObject(decoderTable)) {
      for (const [id, tok] of Object.entries(decoderTable)) {
        const content = tokenContent(tok);
        if (content === undefined || !/^\d+$/.test(id)) throw new Error(`${base}/tokenizer_config.json: added_tokens_decoder entry ${JSON.stringify(id)} must map an id to a token`);
        if (!(content in merged)) merged[content] = Number(id);
      }
    }
    const added = await readObject(`${base}/added_tokens.json`);
    for (const [token, id] of Object.entries(added ?? {})) {
      if (typeof id !== 'number') throw new Error(`${base}/added_tokens.json: the id of ${JSON.stringify(token)} must be a number`);
      if (!(token in merged)) merged[token] = id;
    }
    // special_tokens_map.json overrides tokenizer_config.json, as in transformers.
    const pick = (key: string): string | undefined => tokenContent(specialMap?.[key]) ?? tokenContent(config?.[key]);
    const str = (key: string): string | undefined => (typeof config?.[key] === 'string' ? (config[key] as string) : undefined);
    const bool = (key: string): boolean | undefined => {
      const v = config?.[key];
      if (v !== undefined && v !== null && typeof v !== 'boolean') throw new Error(`${base}/tokenizer_config.json: "${key}" must be true or false, got ${JSON.stringify(v)}`);
      return v ?? undefined;
    };
    const extra = [...listOf(specialMap?.additional_special_tokens), ...listOf(config?.additional_special_tokens)];
    return new Wav2Vec2CTCTokenizer(merged, {
      padToken: pick('pad_token'), unkToken: pick('unk_token'), bosToken: pick('bos_token'), eosToken: pick('eos_token'),
      wordDelimiterToken: pick('word_delimiter_token'), replaceWordDelimiterChar: str('replace_word_delimiter_char'),
      doLowerCase: bool('do_lower_case'), cleanUpTokenizationSpaces: bool('clean_up_tokenization_spaces'), extraSpecialTokens: extra,
    }, vocabPath);
  }

  get vocabSize(): number {
    return this.encoder.size;
  }
  get padTokenId(): number {
    return this.encoder.get(this.padToken)!;
  }
  get unkTokenId(): number | undefined {
    return this.encoder.get(this.unkToken);
  }
  get wordDelimiterTokenId(): number | undefined {
    return this.encoder.get(this.wordDelimiterToken);
  }

  /** Text -> tokens: special tokens whole, every other character alone, spaces as the word delimiter (upper-cased first with doLowerCase). */
  tokenize(text: string): string[] {
    const out: string[] = [];
    let i = 0;
    while (i < text.length) {
      const special = this.specialTokens.find((t) => text.startsWith(t, i));
      if (special) { out.push(special); i += special.length; continue; }
      const cp = text.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      const c = this.doLowerCase ? ch.toUpperCase() : ch;
      out.push(c === ' ' ? this.wordDelimiterToken : c);
      i += ch.length;
    }
    return out;
  }

  /** Text -> ids for CTC labels (no special tokens added); characters outside the vocabulary become the unk token. */
  encode(text: string): number[] {
    return this.tokenize(text).map((t) => {
      const id = this.encoder.get(t) ?? this.unkTokenId;
      if (id === undefined) throw new Error(`Wav2Vec2CTCTokenizer: ${JSON.stringify(t)} is not in the vocabulary and there is no unk token ${JSON.stringify(this.unkToken)}`);
      return id;
    });
  }

  /** The token of an id, or an error naming it. */
  idToToken(id: number): string {
    const t = this.decoder.get(id);
    if (t === undefined) throw new Error(`Wav2Vec2CTCTokenizer: id ${id} is not in the vocabulary (${this.vocabSize} tokens)`);
    return t;
  }

  /** Ids (frame-level CTC output or labels) -> text: repeats collapsed, blanks dropped, the word delimiter as a space. */
  decode(ids: ArrayLike<number>, opts: CTCDecodeOptions = {}): string {
    let tokens = Array.from(ids, (id) => this.idToToken(id));
    if (opts.skipSpecialTokens) tokens = tokens.filter((t) => t === this.padToken || !this.specialTokens.includes(t));
    const grouped = opts.groupTokens ?? true ? tokens.filter((t, i) => i === 0 || t !== tokens[i - 1]) : tokens;
    const text = grouped.filter((t) => t !== this.padToken).map((t) => (t === this.wordDelimiterToken ? this.replaceWordDelimiterChar : t)).join('').trim();
    return this.cleanUpTokenizationSpaces ? cleanUpTokenization(text) : text;
  }

  batchDecode(rows: readonly ArrayLike<number>[], opts: CTCDecodeOptions = {}): string[] {
    return rows.map((r) => this.decode(r, opts));
  }
}

/** transformers' clean_up_tokenization: no space before punctuation and English contractions. */
function cleanUpTokenization(s: string): string {
  return s.replaceAll(' .', '.').replaceAll(' ?', '?').replaceAll(' !', '!').replaceAll(' ,', ',').replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" 's", "'s").replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}

async function readObject(path: string): Promise<JsonObject | undefined> {
  if (!(await fileExists(path))) return undefined;
  const v = await readJsonFile(path);
  if (!isJsonObject(v)) throw new Error(`${path}: expected a JSON object`);
  return v;
}

function listOf(v: JsonValue | undefined): string[] {
  return Array.isArray(v) ? v.map((t) => tokenContent(t)).filter((t): t is string => t !== undefined) : [];
}

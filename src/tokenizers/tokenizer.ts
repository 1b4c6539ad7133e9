// Tokenizer: Hugging Face tokenizer.json files run by @huggingface/tokenizers, plus offsets, pairs, batches, padding and truncation.

import { fs } from '#platform';
import { exists, isLocalFile, listFolder, readText, withSource, type ModelSource } from '../io/source.js';
import { tensor } from '../tensor/create.js';
import { isTensor, type Tensor } from '../tensor/tensor.js';
import { avoidStackOverflow, hf, type HfTokenizer } from './hf-lib.js';
import { ChatTemplates, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';
import { arrayAt, isJsonObject, numberAt, objectAt, stringAt, tokenContent, type JsonObject, type TokenizerJson } from './json.js';
import { OffsetAligner } from './offsets.js';
import { validateTokenizerConfig, validateTokenizerJson } from './validate.js';
import { PostProcessor, type Encoding, type TokenSequence } from './post-process.js';
import { truncateSequence, truncationLengths, type Side, type TruncationStrategy } from './truncation.js';

export interface EncodeOptions {
  /** A second text, encoded as a pair (sentence B, type id 1). */
  textPair?: string;
  /** Add the post-processor's special tokens ([CLS], [SEP], <s>, ...). Default true. */
  addSpecialTokens?: boolean;
  /** Truncate to `maxLength` tokens, special tokens included; true means 'longest_first'. Default false. */
  truncation?: boolean | TruncationStrategy;
  /** Length limit for truncation (and padding: 'max_length'); defaults to tokenizer_config's model_max_length. */
  maxLength?: number;
  /** Which end truncation removes tokens from; defaults to tokenizer_config's truncation_side, else 'right'. */
  truncationSide?: Side;
}

export interface DecodeOptions {
  /** Leave out special tokens such as [CLS] or <|endoftext|>. Default false, as in transformers. */
  skipSpecialTokens?: boolean;
  /** transformers' clean-up of spaces before punctuation (" ." -> "."); defaults to tokenizer_config, else false. */
  cleanUpTokenizationSpaces?: boolean;
}

export interface BatchEncodeOptions extends Omit<EncodeOptions, 'textPair'> {
  /** true or 'longest': pad to the longest sequence of the batch; 'max_length': to `maxLength`; false: no padding (default). */
  padding?: boolean | 'longest' | 'max_length';
  /** Where padding goes; defaults to tokenizer_config's padding_side, else 'right'. */
  paddingSide?: Side;
  /** int32 tensors [batch, length] (default) or plain arrays. */
  returnTensors?: boolean;
}

export interface BatchEncodingTensors {
  inputIds: Tensor;
  attentionMask: Tensor;
  tokenTypeIds: Tensor;
}

export interface BatchEncodingArrays {
  inputIds: number[][];
  attentionMask: number[][];
  tokenTypeIds: number[][];
}

/** Texts, or pairs of texts, for `encodeBatch`. */
export type BatchInput = ReadonlyArray<string | readonly [string, string]>;

type SpecialName = 'bos' | 'eos' | 'unk' | 'sep' | 'pad' | 'cls' | 'mask';
const SPECIAL_NAMES: readonly SpecialName[] = ['bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask'];

/** Names by which a special added token is recognised when no tokenizer_config.json says which token plays which role. */
const CONVENTIONAL: Record<SpecialName, readonly string[]> = {
  bos: ['<s>', '<|startoftext|>', '<|begin_of_text|>', '<bos>', '[BOS]'],
  eos: ['</s>', '<|endoftext|>', '<|end_of_text|>', '<eos>', '[EOS]'],
  unk: ['[UNK]', '<unk>', '<|unk|>'],
  sep: ['[SEP]', '<sep>'],
  pad: ['[PAD]', '<pad>', '<|pad|>'],
  cls: ['[CLS]', '<cls>'],
  mask: ['[MASK]', '<mask>'],
};

/** transformers writes 1e30 for "no limit". */
const NO_MAX_LENGTH = 1e15;

/** Token strings in a tokenizer_config, as strings (transformers may write AddedToken objects). */
function plainConfig(config: JsonObject): JsonObject {
  const out: JsonObject = { ...config };
  for (const name of SPECIAL_NAMES) {
    const key = `${name}_token`;
    if (key in out) out[key] = tokenContent(out[key]) ?? null;
  }
  const extra = arrayAt(out, 'additional_special_tokens');
  if (extra) out.additional_special_tokens = extra.map(tokenContent).filter((t): t is string => t !== undefined);
  return out;
}

function checkSide(side: string, what: string): Side {
  if (side !== 'left' && side !== 'right') throw new Error(`${what} must be 'left' or 'right', got ${JSON.stringify(side)}`);
  return side;
}

/**
 * A Hugging Face fast tokenizer (tokenizer.json): BPE (GPT-2, LLaMA), WordPiece (BERT) or Unigram (T5).
 * Tokenization itself is done by @huggingface/tokenizers; this class adds what transformers' tokenizers offer on top.
 */
export class Tokenizer {
  private readonly lib: HfTokenizer;
  private readonly aligner: OffsetAligner;
  private readonly postProcessor: PostProcessor;
  private readonly specials: Record<SpecialName, string | null>;
  private readonly cleanUpSpaces: boolean;
  private size: number | undefined;
  private chatTemplates: ChatTemplates;
  private readonly additionalSpecialTokens: string[];
  /** tokenizer_config's model_max_length, when it sets a real one. */
  readonly modelMaxLength: number | undefined;
  /** Default side for padding (HF `padding_side`); settable. */
  paddingSide: Side;
  /** Default side for truncation (HF `truncation_side`); settable. */
  truncationSide: Side;

  private constructor(
    private readonly json: JsonObject,
    config: JsonObject,
    private readonly source: string,
    configSource = `${source} (tokenizer config)`,
  ) {
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;
    // The library reads these keys without defaults; tokenizer.json files written by older versions may lack them.
    const libJson = { normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json, added_tokens: json.added_tokens ?? [] };
    // Ours first: it checks the post-processor's settings and names the key, where the library's fails with a TypeError.
    this.postProcessor = this.guard('cannot read its post_processor', () => new PostProcessor(json.post_processor, source));
    this.lib = this.guard('cannot build the tokenizer', () => new hf.Tokenizer(libJson, { ...config, clean_up_tokenization_spaces: this.cleanUpSpaces }));
    avoidStackOverflow(this.lib);
    const normalizer = this.lib.normalizer;
    this.aligner = this.guard('cannot read its normalizer or pre_tokenizer', () => new OffsetAligner(json, { normalize: normalizer ? (t) => normalizer.normalize(t) : null, config }));
    const max = numberAt(config, 'model_max_length');
    this.modelMaxLength = max !== undefined && max > 0 && max < NO_MAX_LENGTH ? max : undefined;
    this.paddingSide = checkSide(stringAt(config, 'padding_side') ?? 'right', `${source}: padding_side`);
    this.truncationSide = checkSide(stringAt(config, 'truncation_side') ?? 'right', `${source}: truncation_side`);
    this.specials = this.findSpecialTokens(config);
    this.chatTemplates = new ChatTemplates(config.chat_template, configSource);
    this.additionalSpecialTokens = (arrayAt(config, 'additional_special_tokens') ?? []).filter((t): t is string => typeof t === 'string');
  }

  /**
   * Runs a step done by the library (or by code replaying the file's settings) and turns a failure inside it into an
   * error naming the file: the file was validated, so what breaks there is one of its settings, not the caller's input.
   */
  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      if (message.startsWith(`${this.source}: `)) throw e;
      throw new Error(`${this.source}: ${what}: ${message}`);
    }
  }

  /**
   * From the parsed contents of a tokenizer.json (and optionally of tokenizer_config.json); works in browsers.
   * `source` names the data in error messages; `configSource` names the config (and its chat_template).
   */
  static fromJSON(tokenizerJson: unknown, tokenizerConfig: unknown = {}, source = 'tokenizer.json', configSource?: string): Tokenizer {
    if (!isJsonObject(tokenizerJson)) throw new Error(`${source}: expected a tokenizer.json object, got ${describe(tokenizerJson)}`);
    validateTokenizerJson(tokenizerJson, source);
    if (!isJsonObject(tokenizerConfig)) throw new Error(`${source}: tokenizer config must be an object, got ${describe(tokenizerConfig)}`);
    validateTokenizerConfig(tokenizerConfig, `${source} (tokenizer config)`);
    return new Tokenizer(tokenizerJson, plainConfig(tokenizerConfig), source, configSource);
  }

  /**
   * Reads a tokenizer.json, and the tokenizer_config.json and special_tokens_map.json beside it when present: a path
   * (Node) or a URL.
   */
  static async fromFile(path: string): Promise<Tokenizer> {
    const json = await readJson(path);
    const dir = path.slice(0, Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
    const config = (await readOptionalJson(`${dir}tokenizer_config.json`)) ?? {};
    validateTokenizerConfig(config, `${dir}tokenizer_config.json`);
    const specialMap = (await readOptionalJson(`${dir}special_tokens_map.json`)) ?? {};
    validateTokenizerConfig(specialMap, `${dir}special_tokens_map.json`);
    // transformers >= 4.50 saves the template as chat_template.jinja beside the config, which it then prefers.
    const jinja = await readOptionalText(`${dir}chat_template.jinja`);
    const chat = jinja === null ? {} : { chat_template: jinja };
    const configSource = jinja === null ? `${dir}tokenizer_config.json` : `${dir}chat_template.jinja`;
    return Tokenizer.fromJSON(json, { ...config, ...specialMap, ...chat }, path, configSource);
  }

  /** The tokenizer.json contents (for saving or inspection). */
  toJSON(): TokenizerJson {
    return this.json;
  }

  /** Writes the tokenizer.json (Node), indented as Hugging Face writes it. */
  async save(path: string): Promise<void> {
    await (await fs('Tokenizer.save (in a browser use toJSON)')).writeFile(path, JSON.stringify(this.json, null, 2));
  }

  // ---- vocabulary ----

  /** Number of tokens, added tokens included (`len(tokenizer)` in transformers). */
  get vocabSize(): number {
    this.size ??= this.lib.get_vocab(true).size;
    return this.size;
  }

  /** Token -> id, added tokens included. */
  getVocab(): Map<string, number> {
    return this.lib.get_vocab(true);
  }

  tokenToId(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.lib.id_to_token(id) : undefined;
  }

  // ---- special tokens: from tokenizer_config / special_tokens_map, else tokenizer.json, else conventional names ----

  get bosToken(): string | null { return this.specials.bos; }
  get eosToken(): string | null { return this.specials.eos; }
  get unkToken(): string | null { return this.specials.unk; }
  get sepToken(): string | null { return this.specials.sep; }
  get clsToken(): string | null { return this.specials.cls; }
  get maskToken(): string | null { return this.specials.mask; }
  get padToken(): string | null { return this.specials.pad; }

  /** Sets the padding token, e.g. `tokenizer.padToken = tokenizer.eosToken` for GPT-2; it must be in the vocabulary. */
  set padToken(token: string | null) {
    if (token !== null && this.tokenToId(token) === undefined) throw new Error(`padToken: ${JSON.stringify(token)} is not in the vocabulary`);
    this.specials.pad = token;
  }

  get bosTokenId(): number | null { return this.specialId('bos'); }
  get eosTokenId(): number | null { return this.specialId('eos'); }
  get unkTokenId(): number | null { return this.specialId('unk'); }
  get sepTokenId(): number | null { return this.specialId('sep'); }
  get clsTokenId(): number | null { return this.specialId('cls'); }
  get maskTokenId(): number | null { return this.specialId('mask'); }
  get padTokenId(): number | null { return this.specialId('pad'); }

  private specialId(name: SpecialName): number | null {
    const token = this.specials[name];
    return token === null ? null : (this.tokenToId(token) ?? null);
  }

  private findSpecialTokens(config: JsonObject): Record<SpecialName, string | null> {
    const addedSpecial = new Set(
      (arrayAt(this.json, 'added_tokens') ?? []).flatMap((t) => (isJsonObject(t) && t.special === true && typeof t.content === 'string' ? [t.content] : [])),
    );
    const model = objectAt(this.json, 'model');
    const unkId = numberAt(model, 'unk_id');
    const fromJson: Partial<Record<SpecialName, string | undefined>> = {
      pad: stringAt(objectAt(this.json, 'padding'), 'pad_token'),
      unk: stringAt(model, 'unk_token') ?? (unkId !== undefined ? this.lib.id_to_token(unkId) : undefined),
    };
    const out = {} as Record<SpecialName, string | null>;
    for (const name of SPECIAL_NAMES) {
      const key = `${name}_token`;
      if (key in config) out[name] = tokenContent(config[key]) ?? null;
      else out[name] = fromJson[name] ?? CONVENTIONAL[name].find((t) => addedSpecial.has(t)) ?? null;
    }
    return out;
  }

  // ---- encoding ----

  /** Token strings of `text`, without special tokens unless asked. */
  tokenize(text: string, options: { textPair?: string; addSpecialTokens?: boolean } = {}): string[] {
    return this.encode(text, { ...options, addSpecialTokens: options.addSpecialTokens ?? false }).tokens;
  }

  /** Encodes a text, or a pair with `textPair`: ids, tokens, offsets, attention mask, type ids. */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    checkText(text, 'encode: text');
    if (options.textPair !== undefined) checkText(options.textPair, 'encode: textPair');
    const add = options.addSpecialTokens ?? true;
    let a = this.encodeSequence(text);
    let b = options.textPair === undefined ? null : this.encodeSequence(options.textPair);
    const strategy = truncationStrategy(options.truncation);
    if (strategy) {
      const maxLength = this.resolveMaxLength(options.maxLength, 'truncation');
      const budget = maxLength - (add ? this.postProcessor.numSpecialTokens(b !== null) : 0);
      if (budget < 0) throw new Error(`truncation: maxLength ${maxLength} leaves no room for the ${maxLength - budget} special tokens`);
      const [n1, n2] = truncationLengths(a.ids.length, b ? b.ids.length : null, budget, strategy);
      const side = checkSide(options.truncationSide ?? this.truncationSide, 'truncationSide');
      a = truncateSequence(a, n1, side);
      if (b && n2 !== null) b = truncateSequence(b, n2, side);
    }
    return this.postProcessor.process(a, b, add);
  }

  private encodeSequence(text: string): TokenSequence {
    return this.guard('cannot encode', () => {
      const { ids, tokens } = this.lib.encode(text, { add_special_tokens: false });
      // The library gives undefined for a token it has no id for (no unk_token to fall back on): never return that.
      const bad = ids.findIndex((id) => !Number.isInteger(id));
      if (bad >= 0) throw new Error(`token ${JSON.stringify(tokens[bad])} has no id (it is not in the vocabulary, and the model has no unk_token)`);
      return { ids, tokens, offsets: this.aligner.align(text, tokens) };
    });
  }

  private resolveMaxLength(maxLength: number | undefined, what: string): number {
    const max = maxLength ?? this.modelMaxLength;
    if (max === undefined) throw new Error(`${what} needs maxLength (the tokenizer_config.json sets no model_max_length)`);
    if (!Number.isInteger(max) || max < 0) throw new Error(`${what}: maxLength must be a non-negative integer, got ${max}`);
    return max;
  }

  /**
   * Encodes many texts (or [a, b] pairs) at once, like transformers' `tokenizer(texts, padding=True, truncation=True,
   * max_length=..., return_tensors='pt')`: input ids, attention mask and token type ids, as int32 tensors [batch, length]
   * unless `returnTensors: false`.
   */
  encodeBatch(inputs: BatchInput, options: BatchEncodeOptions & { returnTensors: false }): BatchEncodingArrays;
  encodeBatch(inputs: BatchInput, options?: BatchEncodeOptions & { returnTensors?: true }): BatchEncodingTensors;
  encodeBatch(inputs: BatchInput, options?: BatchEncodeOptions): BatchEncodingArrays | BatchEncodingTensors;
  encodeBatch(inputs: BatchInput, options: BatchEncodeOptions = {}): BatchEncodingArrays | BatchEncodingTensors {
    if (!Array.isArray(inputs)) throw new Error(`encodeBatch: expected an array of texts or [text, text] pairs, got ${describe(inputs)}`);
    if (inputs.length === 0) throw new Error('encodeBatch: the batch is empty');
    const padding = options.padding === true ? 'longest' : options.padding || null;
    const padId = padding ? this.padTokenId : null;
    if (padding && padId === null) {
      throw new Error(
        this.padToken === null
          ? 'encodeBatch: asked to pad but the tokenizer has no pad token; set one first, e.g. tokenizer.padToken = tokenizer.eosToken'
          : `encodeBatch: asked to pad but the pad token ${JSON.stringify(this.padToken)} is not in the vocabulary; set tokenizer.padToken to a token that is`,
      );
    }
    const encodings = inputs.map((input: string | readonly [string, string], i) => {
      if (typeof input === 'string') return this.encode(input, options);
      if (Array.isArray(input) && input.length === 2 && typeof input[0] === 'string' && typeof input[1] === 'string') {
        return this.encode(input[0], { ...options, textPair: input[1] });
      }
      throw new Error(`encodeBatch: item ${i} must be a string or a [string, string] pair, got ${describe(input)}`);
    });
    const longest = Math.max(...encodings.map((e) => e.ids.length));
    const length = padding === 'max_length' ? this.resolveMaxLength(options.maxLength, "padding 'max_length'") : longest;
    const side = checkSide(options.paddingSide ?? this.paddingSide, 'paddingSide');
    const pad = (row: number[], value: number): number[] => {
      const fill = new Array<number>(Math.max(0, length - row.length)).fill(value);
      return side === 'right' ? [...row, ...fill] : [...fill, ...row];
    };
    const out: BatchEncodingArrays = padding
      ? {
          inputIds: encodings.map((e) => pad(e.ids, padId!)),
          attentionMask: encodings.map((e) => pad(e.attentionMask, 0)),
          tokenTypeIds: encodings.map((e) => pad(e.typeIds, 0)),
        }
      : { inputIds: encodings.map((e) => e.ids), attentionMask: encodings.map((e) => e.attentionMask), tokenTypeIds: encodings.map((e) => e.typeIds) };
    if (options.returnTensors === false) return out;
    const width = out.inputIds[0]!.length;
    const ragged = out.inputIds.findIndex((r) => r.length !== width);
    if (ragged >= 0) {
      throw new Error(
        `encodeBatch: cannot make a tensor of sequences of different lengths (item 0 has ${width} tokens, item ${ragged} has ${out.inputIds[ragged]!.length}); ` +
          `pass padding: true${padding === 'max_length' ? ' and truncation: true' : ''}, or returnTensors: false`,
      );
    }
    const shape = [out.inputIds.length, width];
    const toTensor = (rows: number[][]): Tensor => tensor(Int32Array.from(rows.flat()), { dtype: 'int32', shape });
    return { inputIds: toTensor(out.inputIds), attentionMask: toTensor(out.attentionMask), tokenTypeIds: toTensor(out.tokenTypeIds) };
  }

  // ---- chat ----

  /**
   * Formats a conversation with the tokenizer's chat template, as transformers' `apply_chat_template`: the template gets
   * `messages`, `add_generation_prompt`, `tools`, `documents`, the special tokens (bos_token, eos_token, ...) and
   * `templateKwargs`. Token ids by default, encoded without adding special tokens (the template writes its own bos);
   * the text with `tokenize: false`.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions & { tokenize: false }): string;
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions & { tokenize?: true }): number[];
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string | number[];
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string | number[] {
    const special: Record<string, unknown> = {};
    for (const name of SPECIAL_NAMES) if (this.specials[name] !== null) special[`${name}_token`] = this.specials[name];
    if (this.additionalSpecialTokens.length > 0) special.additional_special_tokens = this.additionalSpecialTokens;
    const text = this.chatTemplates.render(messages, options, special);
    return options.tokenize === false ? text : this.encode(text, { addSpecialTokens: false }).ids;
  }

  /** The chat template as tokenizer_config.json holds it (a string, or the named list), or null (HF `chat_template`). */
  get chatTemplate(): string | { name: string; template: string }[] | null {
    return this.chatTemplates.toJSON();
  }

  /** Sets the chat template (e.g. for a tokenizer trained here), checked as when read from a config. */
  set chatTemplate(value: string | { name: string; template: string }[] | null) {
    this.chatTemplates = new ChatTemplates(value, this.chatTemplates.source);
  }

  /** Names of the chat templates in the config (['default'] for a single template; [] for none). */
  get chatTemplateNames(): string[] {
    return this.chatTemplates.names;
  }

  // ---- decoding ----

  /** Text from token ids (a number array, typed array or 1-D tensor). */
  decode(ids: ArrayLike<number> | Tensor, options: DecodeOptions = {}): string {
    const list = this.checkIds(ids, 'decode');
    if (list.length === 0) return '';
    return this.guard('cannot decode', () =>
      this.lib.decode(list, {
        skip_special_tokens: options.skipSpecialTokens ?? false,
        clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? this.cleanUpSpaces,
      }),
    );
  }

  /** `decode` for each row (arrays, or a 2-D tensor [batch, length]). */
  batchDecode(sequences: ReadonlyArray<ArrayLike<number>> | Tensor, options: DecodeOptions = {}): string[] {
    if (isTensor(sequences)) {
      if (sequences.ndim !== 2) throw new Error(`batchDecode: expected a 2-D tensor [batch, length], got shape [${sequences.shape.join(', ')}]`);
      const [rows, cols] = sequences.shape as [number, number];
      const data = Array.from(sequences.dataSync());
      return Array.from({ length: rows }, (_, r) => this.decode(data.slice(r * cols, (r + 1) * cols), options));
    }
    return sequences.map((s) => this.decode(s, options));
  }

  private checkIds(ids: ArrayLike<number> | Tensor, what: string): number[] {
    let list: number[];
    if (isTensor(ids)) {
      if (ids.ndim > 1) throw new Error(`${what}: expected a 1-D tensor of ids, got shape [${ids.shape.join(', ')}]; use batchDecode for batches`);
      list = Array.from(ids.dataSync());
    } else {
      if (typeof ids !== 'object' || ids === null || typeof ids.length !== 'number') throw new Error(`${what}: expected an array of token ids, got ${describe(ids)}`);
      list = Array.from(ids);
    }
    list.forEach((id, i) => {
      if (typeof id !== 'number' || this.idToToken(id) === undefined) {
        throw new Error(`${what}: ${describe(id)} at position ${i} is not a token id of this vocabulary (size ${this.vocabSize})`);
      }
    });
    return list;
  }
}

/** Loads tokenizers saved by Hugging Face (`save_pretrained`) from a folder. */
export class AutoTokenizer {
  /**
   * Reads tokenizer.json with its tokenizer_config.json and special_tokens_map.json from a folder: a path (Node), a URL,
   * or files in memory (a Map or record of File / Blob / bytes).
   */
  static async fromPretrained(src: ModelSource): Promise<Tokenizer> {
    return withSource(src, async (base) => {
      const file = `${base}/tokenizer.json`;
      if (await exists(file)) return Tokenizer.fromFile(file);
      const listed = await listFolder(base);
      if (listed === null && isLocalFile(base)) throw new Error(`${base}: no such folder`);
      const present = listed === null ? '' : ` (the folder has: ${listed.filter((f) => /\.(json|txt|model)$/.test(f)).join(', ') || 'no tokenizer files'})`;
      throw new Error(`${file}: not found; AutoTokenizer needs the fast-tokenizer file tokenizer.json${present}`);
    });
  }
}

function truncationStrategy(t: EncodeOptions['truncation']): TruncationStrategy | null {
  if (t === undefined || t === false) return null;
  if (t === true) return 'longest_first';
  if (t === 'longest_first' || t === 'only_first' || t === 'only_second') return t;
  throw new Error(`truncation must be true, false, 'longest_first', 'only_first' or 'only_second', got ${JSON.stringify(t)}`);
}

function checkText(text: unknown, what: string): void {
  if (typeof text !== 'string') throw new Error(`${what} must be a string, got ${describe(text)}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

async function readOptionalText(path: string): Promise<string | null> {
  try {
    return await readText(path);
  } catch (e) {
    const code = isJsonObject(e) ? e.code : undefined;
    if (code === 'ENOENT') return null;
    throw new Error(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`);
  }
}

function parseJsonObject(text: string, path: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isJsonObject(value)) throw new Error(`${path}: expected a JSON object, got ${describe(value)}`);
  return value;
}

async function readJson(path: string): Promise<JsonObject> {
  const text = await readOptionalText(path);
  if (text === null) throw new Error(`${path}: file not found`);
  return parseJsonObject(text, path);
}

async function readOptionalJson(path: string): Promise<JsonObject | null> {
  const text = await readOptionalText(path);
  return text === null ? null : parseJsonObject(text, path);
}


// The tokenizer.json post-processor replayed on whole encodings: special tokens, type ids and ByteLevel offset trimming.
//
// The library's post-processors only handle token strings (its ByteLevel one even drops the second sequence of a pair),
// so this follows Hugging Face's Rust semantics: the first sequence has type id 0 and the second 1 unless the processor
// says otherwise, added special tokens get offsets [0, 0], RoBERTa gives every token type id 0.

import { isWhitespace } from './aligned.js';
import { arrayAt, boolAt, isJsonObject, numberAt, objectAt, stringAt, type JsonObject, type JsonValue } from './json.js';
import type { Offset } from './offsets.js';

/** One text's tokens before post-processing. */
export interface TokenSequence {
  ids: number[];
  tokens: string[];
  offsets: Offset[];
}

/** The result of encoding a text or a pair of texts. */
export interface Encoding {
  ids: number[];
  tokens: string[];
  /** [start, end) in Unicode code points of the input text (of the second text for its tokens); [0, 0] for added special tokens. */
  offsets: Offset[];
  attentionMask: number[];
  /** Segment ids: 0 for the first text, 1 for the second (token_type_ids). */
  typeIds: number[];
  /** 1 for special tokens the post-processor added, 0 for tokens of the texts. */
  specialTokensMask: number[];
}

interface Part extends TokenSequence {
  typeIds: number[];
  special: number[];
}

type Processor = (parts: Part[], addSpecialTokens: boolean) => Part[];

function specialPart(ids: number[], tokens: string[], typeId: number): Part {
  return { ids, tokens, offsets: ids.map((): Offset => [0, 0]), typeIds: ids.map(() => typeId), special: ids.map(() => 1) };
}

function withTypeId(p: Part, typeId: number): Part {
  return { ...p, typeIds: p.ids.map(() => typeId) };
}

const BYTE_LEVEL_SPACE = '\u0120';

/** Hugging Face's `process_offsets`: byte-level tokens' leading and trailing spaces leave their offsets. */
function trimOffsets(p: Part, addPrefixSpace: boolean): Part {
  const isSpace = (c: string): boolean => c === BYTE_LEVEL_SPACE || isWhitespace(c);
  const offsets = p.offsets.map((o, i): Offset => {
    const chars = Array.from(p.tokens[i]!);
    let leading = 0;
    while (leading < chars.length && isSpace(chars[leading]!)) leading++;
    let trailing = 0;
    while (trailing < chars.length && isSpace(chars[chars.length - 1 - trailing]!)) trailing++;
    let [start, end] = o;
    if (leading > 0) {
      // The one space that add_prefix_space put in front of the first token is not in the text to trim.
      if ((i === 0 || start === 0) && addPrefixSpace && leading === 1) leading = 0;
      start = Math.min(start + leading, end);
    }
    if (trailing > 0 && end >= trailing) end = Math.max(end - trailing, start);
    return [start, end];
  });
  return { ...p, offsets };
}

function tokenAndId(v: JsonValue | undefined, what: string, source: string): [string, number] {
  if (Array.isArray(v) && typeof v[0] === 'string' && typeof v[1] === 'number') return [v[0], v[1]];
  throw new Error(`${source}: post_processor ${what} must be [token, id], got ${JSON.stringify(v)}`);
}

function numberList(v: JsonValue[] | undefined): number[] | undefined {
  return v?.every((x): x is number => typeof x === 'number') ? v : undefined;
}

function stringList(v: JsonValue[] | undefined): string[] | undefined {
  return v?.every((x): x is string => typeof x === 'string') ? v : undefined;
}

type TemplateItem = { ids: number[]; tokens: string[]; typeId: number } | { sequence: 0 | 1; typeId: number };

function templateProcessor(config: JsonObject, source: string): Processor {
  const specials = objectAt(config, 'special_tokens');
  const parse = (key: string): TemplateItem[] => {
    if (!Array.isArray(config[key])) {
      throw new Error(`${source}: post_processor TemplateProcessing ${key} must be an array of template items, got ${JSON.stringify(config[key])?.slice(0, 60)}`);
    }
    return (arrayAt(config, key) ?? []).map((item): TemplateItem => {
      const special = objectAt(isJsonObject(item) ? item : undefined, 'SpecialToken');
      const sequence = objectAt(isJsonObject(item) ? item : undefined, 'Sequence');
      const typeId = numberAt(special ?? sequence, 'type_id') ?? 0;
      if (special) {
        const name = stringAt(special, 'id') ?? '';
        const entry = objectAt(specials, name);
        const ids = numberList(arrayAt(entry, 'ids'));
        const tokens = stringList(arrayAt(entry, 'tokens'));
        if (!ids || !tokens || ids.length !== tokens.length) {
          throw new Error(`${source}: post_processor TemplateProcessing uses special token "${name}", which its special_tokens does not define`);
        }
        return { ids, tokens, typeId };
      }
      if (sequence) return { sequence: stringAt(sequence, 'id') === 'B' ? 1 : 0, typeId };
      throw new Error(`${source}: post_processor TemplateProcessing has an unreadable ${key} template item ${JSON.stringify(item)}`);
    });
  };
  const single = parse('single');
  const pair = parse('pair');
  return (parts, addSpecialTokens) => {
    const out: Part[] = [];
    for (const item of parts.length > 1 ? pair : single) {
      if ('ids' in item) {
        if (addSpecialTokens) out.push(specialPart(item.ids, item.tokens, item.typeId));
      } else {
        const p = parts[item.sequence];
        if (p) out.push(withTypeId(p, item.typeId));
      }
    }
    return out;
  };
}

function buildProcessor(config: JsonValue | undefined, source: string): Processor {
  if (!isJsonObject(config)) return (parts) => parts;
  switch (config.type) {
    case 'TemplateProcessing':
      return templateProcessor(config, source);
    case 'BertProcessing': {
      const [cls, clsId] = tokenAndId(config.cls, 'cls', source);
      const [sep, sepId] = tokenAndId(config.sep, 'sep', source);
      return (parts, add) => {
        if (!add) return parts;
        const [a, b] = parts;
        const out = [specialPart([clsId], [cls], 0), a!, specialPart([sepId], [sep], 0)];
        if (b) out.push(b, specialPart([sepId], [sep], 1));
        return out;
      };
    }
    case 'RobertaProcessing': {
      const [cls, clsId] = tokenAndId(config.cls, 'cls', source);
      const [sep, sepId] = tokenAndId(config.sep, 'sep', source);
      const trim = boolAt(config, 'trim_offsets') ?? true;
      const prefixSpace = boolAt(config, 'add_prefix_space') ?? true;
      return (parts, add) => {
        const seqs = parts.map((p) => withTypeId(trim ? trimOffsets(p, prefixSpace) : p, 0));
        if (!add) return seqs;
        const [a, b] = seqs;
        const out = [specialPart([clsId], [cls], 0), a!, specialPart([sepId], [sep], 0)];
        if (b) out.push(specialPart([sepId], [sep], 0), b, specialPart([sepId], [sep], 0));
        return out;
      };
    }
    case 'ByteLevel': {
      if (!(boolAt(config, 'trim_offsets') ?? true)) return (parts) => parts;
      const prefixSpace = boolAt(config, 'add_prefix_space') ?? true;
      return (parts) => parts.map((p) => trimOffsets(p, prefixSpace));
    }
    case 'Sequence': {
      const steps = (arrayAt(config, 'processors') ?? []).map((c) => buildProcessor(c, source));
      return (parts, add) => steps.reduce((acc, step) => step(acc, add), parts);
    }
    default:
      throw new Error(`${source}: unknown post_processor type ${JSON.stringify(config.type)}`);
  }
}

/** Turns the tokens of one or two texts into a model input, as the tokenizer.json post_processor describes. */
export class PostProcessor {
  private readonly processor: Processor;

  constructor(config: JsonValue | undefined, source: string) {
    this.processor = buildProcessor(config, source);
  }

  process(a: TokenSequence, b: TokenSequence | null, addSpecialTokens: boolean): Encoding {
    const seq = (s: TokenSequence, typeId: number): Part => ({ ...s, typeIds: s.ids.map(() => typeId), special: s.ids.map(() => 0) });
    const parts = this.processor(b ? [seq(a, 0), seq(b, 1)] : [seq(a, 0)], addSpecialTokens);
    const out: Encoding = { ids: [], tokens: [], offsets: [], attentionMask: [], typeIds: [], specialTokensMask: [] };
    // Plain loops: flatMap is slow on long encodings.
    for (const p of parts) {
      for (let i = 0; i < p.ids.length; i++) {
        out.ids.push(p.ids[i]!);
        out.tokens.push(p.tokens[i]!);
        out.offsets.push(p.offsets[i]!);
        out.attentionMask.push(1);
        out.typeIds.push(p.typeIds[i]!);
        out.specialTokensMask.push(p.special[i]!);
      }
    }
    return out;
  }

  /** How many special tokens `process` adds to a single text or to a pair. */
  numSpecialTokens(pair: boolean): number {
    const empty: TokenSequence = { ids: [], tokens: [], offsets: [] };
    return this.process(empty, pair ? empty : null, true).ids.length;
  }
}

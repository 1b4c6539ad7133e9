// token-classification (ner): per-token labels and entity grouping, as transformers' TokenClassificationPipeline.

import type { PreTrainedModel } from '../models/base.js';
import type { Offset } from '../tokenizers/offsets.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { checkTexts, labelName, oneOrMany, run, softmax, tokensToString } from './common.js';

/** HF's aggregation_strategy: 'none' one result per token; the others group tokens into entities. */
export type AggregationStrategy = 'none' | 'simple' | 'first' | 'average' | 'max';
export const AGGREGATION_STRATEGIES: readonly AggregationStrategy[] = ['none', 'simple', 'first', 'average', 'max'];

export interface TokenClassificationOptions {
  /**
   * HF's aggregation_strategy. 'none' (default): every token with its best label. 'simple': adjacent tokens with the
   * same entity (B-X then I-X ...) grouped. 'first' / 'average' / 'max': first the tokens of each word get one label
   * (the first token's, the best of the averaged scores, the token with the highest score), then words are grouped.
   */
  aggregationStrategy?: AggregationStrategy;
  /** HF's ignore_labels: entities (or groups) with these labels are left out. Default ['O']. */
  ignoreLabels?: readonly string[];
}

/** One token (aggregationStrategy 'none'), with HF's keys in HF's order. */
export interface TokenEntity { entity: string; score: number; index: number; word: string; start: number; end: number }
/** A group of tokens or words (the other strategies). */
export interface EntityGroup { entity_group: string; score: number; word: string; start: number; end: number }

export type TokenClassificationPipeline = (input: string | string[], opts?: TokenClassificationOptions) => Promise<(TokenEntity | EntityGroup)[] | (TokenEntity | EntityGroup)[][]>;

/** One encoded text and its per-token probabilities: what the entity rules need. */
export interface TokenScores {
  text: string;
  ids: readonly number[];
  /** The vocabulary's token strings (convert_ids_to_tokens). */
  tokens: readonly string[];
  /** [start, end) in code points of `text`. */
  offsets: readonly Offset[];
  /** 1 for special tokens ([CLS], [SEP]), which never become entities. */
  specialTokensMask: readonly number[];
  /** [T][labels]: softmax of the logits. */
  scores: readonly (readonly number[])[];
}

export interface EntityRules {
  /** id2label as a function of the class index. */
  label: (i: number) => string;
  /** The tokenizer model's continuing_subword_prefix ('##' for WordPiece): words are then told apart exactly. */
  subwordPrefix: string | null;
  unkTokenId: number | null;
  /** transformers' convert_tokens_to_string. */
  tokensToString: (tokens: string[]) => string;
}

interface PreEntity { word: string; scores: readonly number[]; start: number; end: number; index: number; isSubword: boolean }
type Labelled = { entity: string; score: number; word: string; start: number; end: number; index?: number };

/** numpy's argmax: the first index of the largest value. */
function argmax(x: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** transformers' gather_pre_entities: the non-special tokens with their words, offsets and whether they continue a word. */
function gatherPreEntities(s: TokenScores, rules: EntityRules): PreEntity[] {
  const chars = Array.from(s.text);
  const out: PreEntity[] = [];
  s.ids.forEach((id, idx) => {
    if (s.specialTokensMask[idx]) return;
    let word = s.tokens[idx]!;
    const [start, end] = s.offsets[idx]!;
    const wordRef = chars.slice(start, end).join('');
    // A word-aware tokenizer marks continuations (WordPiece's '##'); otherwise HF's heuristic: no space before the token.
    let isSubword = rules.subwordPrefix
      ? Array.from(word).length !== Array.from(wordRef).length
      : start > 0 && !chars.slice(start - 1, start + 1).join('').includes(' ');
    if (id === rules.unkTokenId) {
      word = wordRef;
      isSubword = false;
    }
    out.push({ word, scores: s.scores[idx]!, start, end, index: idx, isSubword });
  });
  return out;
}

/** transformers' aggregate_word: one label for the tokens of a word. */
function aggregateWord(tokens: PreEntity[], strategy: 'first' | 'average' | 'max', rules: EntityRules): Labelled {
  let scores: readonly number[];
  if (strategy === 'first') scores = tokens[0]!.scores;
  else if (strategy === 'max') scores = tokens.reduce((best, t) => (Math.max(...t.scores) > Math.max(...best.scores) ? t : best)).scores;
  else scores = tokens[0]!.scores.map((_, c) => tokens.reduce((a, t) => a + t.scores[c]!, 0) / tokens.length);
  const idx = argmax(scores);
  return { entity: rules.label(idx), score: scores[idx]!, word: rules.tokensToString(tokens.map((t) => t.word)), start: tokens[0]!.start, end: tokens[tokens.length - 1]!.end };
}

/** 'B-PER' -> ['B', 'PER']; a label without a B-/I- prefix continues ('I'). */
function tag(entity: string): [string, string] {
  if (entity.startsWith('B-')) return ['B', entity.slice(2)];
  if (entity.startsWith('I-')) return ['I', entity.slice(2)];
  return ['I', entity];
}

/** transformers' group_sub_entities: the first entity's type (after 'B-'/'I-'), the mean score, the joined words. */
function groupSubEntities(entities: Labelled[], rules: EntityRules): EntityGroup {
  const first = entities[0]!.entity;
  const dash = first.indexOf('-');
  return {
    entity_group: dash >= 0 ? first.slice(dash + 1) : first,
    score: entities.reduce((a, e) => a + e.score, 0) / entities.length,
    word: rules.tokensToString(entities.map((e) => e.word)),
    start: entities[0]!.start,
    end: entities[entities.length - 1]!.end,
  };
}

/** transformers' group_entities: adjacent entities of one type merge unless the next one begins ('B-') a new entity. */
function groupEntities(entities: Labelled[], rules: EntityRules): EntityGroup[] {
  const groups: EntityGroup[] = [];
  let current: Labelled[] = [];
  for (const e of entities) {
    if (current.length > 0) {
      const [bi, t] = tag(e.entity);
      const [, lastTag] = tag(current[current.length - 1]!.entity);
      if (t !== lastTag || bi === 'B') {
        groups.push(groupSubEntities(current, rules));
        current = [];
      }
    }
    current.push(e);
  }
  if (current.length > 0) groups.push(groupSubEntities(current, rules));
  return groups;
}

/**
 * transformers' TokenClassificationPipeline.postprocess for one text: per-token labels, or entities grouped by
 * `aggregationStrategy`, without those labelled `ignoreLabels` (default ['O']).
 */
export function entitiesFromScores(s: TokenScores, rules: EntityRules, opts: TokenClassificationOptions = {}): (TokenEntity | EntityGroup)[] {
  const strategy = opts.aggregationStrategy ?? 'none';
  const ignore = opts.ignoreLabels ?? ['O'];
  const pre = gatherPreEntities(s, rules);
  if (strategy === 'none' || strategy === 'simple') {
    const tokens: TokenEntity[] = pre.map((p) => {
      const idx = argmax(p.scores);
      return { entity: rules.label(idx), score: p.scores[idx]!, index: p.index, word: p.word, start: p.start, end: p.end };
    });
    if (strategy === 'none') return tokens.filter((e) => !ignore.includes(e.entity));
    return groupEntities(tokens, rules).filter((g) => !ignore.includes(g.entity_group));
  }
  // Words: a token that does not continue a word starts the next one.
  const words: PreEntity[][] = [];
  for (const p of pre) {
    if (words.length === 0 || !p.isSubword) words.push([p]);
    else words[words.length - 1]!.push(p);
  }
  return groupEntities(words.map((w) => aggregateWord(w, strategy, rules)), rules).filter((g) => !ignore.includes(g.entity_group));
}

export function checkTokenClassificationOptions(opts: TokenClassificationOptions): void {
  const s = opts.aggregationStrategy;
  if (s !== undefined && !AGGREGATION_STRATEGIES.includes(s)) {
    throw new Error(`pipeline('token-classification'): aggregationStrategy must be one of ${AGGREGATION_STRATEGIES.join(', ')}, got ${JSON.stringify(s)}`);
  }
  const ig = opts.ignoreLabels;
  if (ig !== undefined && (!Array.isArray(ig) || ig.some((l) => typeof l !== 'string'))) {
    throw new Error(`pipeline('token-classification'): ignoreLabels must be an array of label names, got ${JSON.stringify(ig)}`);
  }
}

/** The pipeline over a token-classification model (BertForTokenClassification, ...) and its tokenizer. */
export function tokenClassification(model: PreTrainedModel, tok: Tokenizer, config: Record<string, unknown>): TokenClassificationPipeline {
  const json = tok.toJSON() as { model?: { continuing_subword_prefix?: unknown } };
  const prefix = json.model?.continuing_subword_prefix;
  const rules: EntityRules = {
    label: (i) => labelName(config, i),
    subwordPrefix: typeof prefix === 'string' && prefix !== '' ? prefix : null,
    unkTokenId: tok.unkTokenId,
    tokensToString: (tokens) => tokensToString(tok, tokens),
  };
  return async (input, opts = {}) => {
    checkTokenClassificationOptions(opts);
    const results: (TokenEntity | EntityGroup)[][] = [];
    for (const text of checkTexts(input, 'token-classification')) {
      const enc = tok.encode(text);
      const { logits, shape } = await run(model, enc.ids, enc.typeIds);
      const L = shape[2]!;
      const scores = enc.ids.map((_, t) => softmax(logits.subarray(t * L, (t + 1) * L)));
      const tokens = enc.ids.map((id) => tok.idToToken(id) ?? '');
      results.push(entitiesFromScores({ text, ids: enc.ids, tokens, offsets: enc.offsets, specialTokensMask: enc.specialTokensMask, scores }, rules, opts));
    }
    return oneOrMany(input, results) as (TokenEntity | EntityGroup)[] | (TokenEntity | EntityGroup)[][];
  };
}

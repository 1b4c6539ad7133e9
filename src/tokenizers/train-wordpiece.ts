// A BERT-style WordPiece trainer writing tokenizer.json: BPE merges with a '##' continuation prefix, as Hugging Face's WordPieceTrainer learns them.
//
// Hugging Face trains WordPiece vocabularies with its BPE trainer (merge counts, not the likelihood score of the original
// paper) and keeps the resulting vocabulary; so does this. Text is normalised by BertNormalizer (optionally lowercased
// and accent-stripped) and split on whitespace and punctuation before counting.

import { hf } from './hf-lib.js';
import type { TokenizerJson } from './json.js';
import { addedTokens, countWords, learnBpe, vocabObject } from './train-bpe.js';

export interface WordPieceTrainerOptions {
  /** Target vocabulary size, special tokens included. */
  vocabSize: number;
  /** Default 2. */
  minFrequency?: number;
  /** Lowercase (and, unless stripAccents says otherwise, strip accents). Default true (bert-base-uncased). */
  lowercase?: boolean;
  /** Strip accents; default: follow `lowercase`, as BERT does. */
  stripAccents?: boolean;
  /** Default ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'], taking ids 0 to 4; '[UNK]', '[CLS]' and '[SEP]' are required. */
  specialTokens?: readonly string[];
  /** At most this many distinct characters (the most frequent). Default 1000, as Hugging Face's BertWordPieceTokenizer. */
  limitAlphabet?: number;
}

const PREFIX = '##';

/**
 * Trains a WordPiece tokenizer and returns its tokenizer.json (load with `Tokenizer.fromJSON`): BertNormalizer,
 * BertPreTokenizer, '##' continuation pieces, and the [CLS] A [SEP] / [CLS] A [SEP] B [SEP] template.
 */
export function trainWordPiece(texts: Iterable<string>, opts: WordPieceTrainerOptions): TokenizerJson {
  // A string is iterable too, as its characters: one text must come as [text].
  if (typeof texts === 'string') throw new Error('trainWordPiece: texts must be an array (or iterable) of strings, got one string; pass [text]');
  const specials = [...new Set(opts.specialTokens ?? ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'])];
  for (const required of ['[UNK]', '[CLS]', '[SEP]']) {
    if (!specials.includes(required)) throw new Error(`trainWordPiece: specialTokens must include ${required} (got ${specials.join(', ')})`);
  }
  const normalizerConfig = {
    type: 'BertNormalizer',
    clean_text: true,
    handle_chinese_chars: true,
    strip_accents: opts.stripAccents ?? null,
    lowercase: opts.lowercase ?? true,
  } as const;
  const normalizer = new hf.BertNormalizer(normalizerConfig);
  const preTokenizer = new hf.BertPreTokenizer({ type: 'BertPreTokenizer' });
  const words = countWords(texts, (t) => preTokenizer.pre_tokenize_text(normalizer.normalize(t)));
  const { vocab } = learnBpe(words, {
    vocabSize: opts.vocabSize,
    minFrequency: opts.minFrequency ?? 2,
    specialTokens: specials,
    limitAlphabet: opts.limitAlphabet ?? 1000,
    continuingSubwordPrefix: PREFIX,
  });
  const id = (t: string): number => specials.indexOf(t);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens(specials),
    normalizer: { ...normalizerConfig },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [id('[CLS]')], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [id('[SEP]')], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: PREFIX, cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: PREFIX, max_input_chars_per_word: 100, vocab: vocabObject(vocab) },
  };
}

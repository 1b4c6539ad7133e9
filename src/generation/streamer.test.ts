// TextStreamer: a character split across byte-level tokens is handed out once its last byte arrives; pieces add up to
// the decoded text; special tokens are skipped.

import { expect, test } from 'vitest';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { trainByteLevelBpe } from '../tokenizers/train-bpe.js';
import { TextStreamer } from './streamer.js';

test('pieces: nothing while a character is incomplete, then the whole of it; the sum is the decoded text', () => {
  const tok = Tokenizer.fromJSON(trainByteLevelBpe(['plain words'], { vocabSize: 262, specialTokens: ['<eos>'] }));
  const text = 'a é ☃ b';
  const ids = tok.encode(text, { addSpecialTokens: false }).ids;
  const s = new TextStreamer(tok);
  const pieces = [...ids, tok.tokenToId('<eos>')!].map((id) => s.put(id));
  // '☃' is three bytes, one token each here: two empty pieces, then the character.
  expect(pieces.filter((p) => p === '').length).toBeGreaterThanOrEqual(2 + 1); // and '<eos>' adds no text
  expect(pieces.join('')).toBe(text);
  expect(s.text).toBe(text);
  expect(s.tokens.length).toBe(ids.length + 1);
});

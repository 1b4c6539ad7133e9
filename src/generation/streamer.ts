// Generated token ids to text as they arrive (transformers' TextStreamer): the CLI's generate, chat and transcribe print
// with it.

import type { Tokenizer } from '../tokenizers/tokenizer.js';

/** Decodes every token so far and hands out what is new; a character split across tokens waits for its last one. */
export class TextStreamer {
  private readonly ids: number[] = [];
  private shown = '';

  constructor(private readonly tokenizer: Pick<Tokenizer, 'decode'>) {}

  /** Adds a token; returns the text it completes ('' while the text ends inside a character). */
  put(id: number): string {
    this.ids.push(id);
    const text = this.tokenizer.decode(this.ids, { skipSpecialTokens: true });
    if (text.endsWith('\uFFFD')) return '';
    const piece = text.slice(this.shown.length);
    this.shown = text;
    return piece;
  }

  /** The tokens put so far. */
  get tokens(): readonly number[] {
    return this.ids;
  }

  /** The text handed out so far. */
  get text(): string {
    return this.shown;
  }
}

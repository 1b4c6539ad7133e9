// Truncation of one or two token sequences to a length budget, with Hugging Face's strategies and its longest_first split.

import type { TokenSequence } from './post-process.js';

export type TruncationStrategy = 'longest_first' | 'only_first' | 'only_second';
export type Side = 'left' | 'right';

/**
 * The lengths to keep of sequences of `n1` and (for a pair) `n2` tokens so that together they fit `budget`.
 * longest_first follows Hugging Face's Rust tokenizers (what its fast tokenizers do): the shorter sequence keeps
 * everything it can, and when both must shrink the budget is halved, the odd token going to the longer one (to the
 * second when they are as long).
 */
export function truncationLengths(n1: number, n2: number | null, budget: number, strategy: TruncationStrategy): [number, number | null] {
  if (n2 === null) {
    if (strategy === 'only_second') throw new Error("truncation 'only_second' needs a pair of texts");
    return [Math.min(n1, budget), null];
  }
  if (n1 + n2 <= budget) return [n1, n2];
  if (strategy === 'longest_first') {
    const swap = n1 > n2;
    let short = swap ? n2 : n1;
    let long = short > budget ? short : Math.max(short, budget - short);
    if (short + long > budget) {
      short = Math.floor(budget / 2);
      long = short + (budget % 2);
    }
    return swap ? [long, short] : [short, long];
  }
  const excess = n1 + n2 - budget;
  const [target, other] = strategy === 'only_first' ? [n1, n2] : [n2, n1];
  if (target <= excess) {
    throw new Error(`truncation '${strategy}': the ${strategy === 'only_first' ? 'first' : 'second'} text has ${target} tokens, too few to remove ${excess} (the other has ${other})`);
  }
  return strategy === 'only_first' ? [n1 - excess, n2] : [n1, n2 - excess];
}

/** The first `n` tokens (side 'right' drops the end) or the last `n` (side 'left'). */
export function truncateSequence(s: TokenSequence, n: number, side: Side): TokenSequence {
  if (n >= s.ids.length) return s;
  const [from, to] = side === 'right' ? [0, n] : [s.ids.length - n, s.ids.length];
  return { ids: s.ids.slice(from, to), tokens: s.tokens.slice(from, to), offsets: s.offsets.slice(from, to) };
}

// Word and character error rates by Levenshtein alignment, summed over a corpus as NIST's sclite scores them.

/** Unit-cost edits (substitution, insertion, deletion) turning `hyp` into `ref`, with the counts of each kind. */
export interface Alignment {
  substitutions: number;
  deletions: number;
  insertions: number;
  /** substitutions + deletions + insertions: the edit distance. */
  errors: number;
}

/**
 * The minimum-cost alignment of a hypothesis with its reference. Among alignments of equal cost the one with more
 * substitutions is kept ("one two" vs "two one": 2 substitutions, not a deletion + an insertion); the total is the
 * edit distance either way.
 */
export function align<T>(ref: readonly T[], hyp: readonly T[]): Alignment {
  // cost[i][j] over ref[:i] and hyp[:j]; ties broken toward substitutions, then deletions.
  type Cell = { cost: number; s: number; d: number; i: number };
  let prev: Cell[] = Array.from({ length: hyp.length + 1 }, (_, j) => ({ cost: j, s: 0, d: 0, i: j }));
  for (let i = 1; i <= ref.length; i++) {
    const cur: Cell[] = [{ cost: i, s: 0, d: i, i: 0 }];
    for (let j = 1; j <= hyp.length; j++) {
      const same = ref[i - 1] === hyp[j - 1];
      const diag = prev[j - 1]!, up = prev[j]!, left = cur[j - 1]!;
      const options: Cell[] = [
        { cost: diag.cost + (same ? 0 : 1), s: diag.s + (same ? 0 : 1), d: diag.d, i: diag.i },
        { cost: up.cost + 1, s: up.s, d: up.d + 1, i: up.i },
        { cost: left.cost + 1, s: left.s, d: left.d, i: left.i + 1 },
      ];
      cur.push(options.reduce((a, b) => (b.cost < a.cost || (b.cost === a.cost && b.s > a.s) ? b : a)));
    }
    prev = cur;
  }
  const last = prev[hyp.length]!;
  return { substitutions: last.s, deletions: last.d, insertions: last.i, errors: last.cost };
}

export interface ErrorRate extends Alignment {
  /** Tokens in the references, summed: the denominator. */
  referenceLength: number;
  /** errors / referenceLength (can exceed 1 with many insertions). */
  rate: number;
  /** Utterances scored. */
  utterances: number;
  /** Utterances whose hypothesis equals the reference exactly. */
  correctUtterances: number;
}

/** Words of a transcript: lower-cased, split on white space. */
export function words(text: string): string[] {
  const t = text.trim().toLowerCase();
  return t === '' ? [] : t.split(/\s+/);
}

/** Characters of a transcript with runs of white space made one space, ends trimmed (spaces count as characters). */
export function chars(text: string): string[] {
  return Array.from(text.trim().toLowerCase().replace(/\s+/g, ' '));
}

function corpusRate<T>(pairs: readonly (readonly [readonly T[], readonly T[]])[], what: string): ErrorRate {
  if (pairs.length === 0) throw new Error(`${what}: nothing to score`);
  const total: ErrorRate = { substitutions: 0, deletions: 0, insertions: 0, errors: 0, referenceLength: 0, rate: 0, utterances: pairs.length, correctUtterances: 0 };
  for (const [ref, hyp] of pairs) {
    const a = align(ref, hyp);
    total.substitutions += a.substitutions;
    total.deletions += a.deletions;
    total.insertions += a.insertions;
    total.errors += a.errors;
    total.referenceLength += ref.length;
    if (a.errors === 0) total.correctUtterances++;
  }
  if (total.referenceLength === 0) throw new Error(`${what}: the references are all empty`);
  total.rate = total.errors / total.referenceLength;
  return total;
}

function checkLengths(refs: readonly string[], hyps: readonly string[], what: string): void {
  if (refs.length !== hyps.length) throw new Error(`${what}: ${hyps.length} hypotheses for ${refs.length} references`);
}

/** Corpus word error rate: edits summed over utterances over reference words summed (not a mean of per-utterance rates). */
export function wordErrorRate(refs: readonly string[], hyps: readonly string[]): ErrorRate {
  checkLengths(refs, hyps, 'wordErrorRate');
  return corpusRate(refs.map((r, i) => [words(r), words(hyps[i]!)] as const), 'wordErrorRate');
}

/** Corpus character error rate over the transcripts' characters, spaces included. */
export function charErrorRate(refs: readonly string[], hyps: readonly string[]): ErrorRate {
  checkLengths(refs, hyps, 'charErrorRate');
  return corpusRate(refs.map((r, i) => [chars(r), chars(hyps[i]!)] as const), 'charErrorRate');
}

// Logits processing for one row of scores, in Hugging Face's order: repetition penalty, minimum length,
// then the sampling warpers temperature, top-k, top-p, min-p. Rows are plain arrays: decoding runs on the host.

export interface LogitsOptions {
  repetitionPenalty?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
}

/** Divides positive (multiplies negative) scores of tokens already in the sequence, as HF does. */
export function applyRepetitionPenalty(scores: Float64Array, seen: readonly number[], penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const s = scores[t];
    if (s !== undefined) scores[t] = s < 0 ? s * penalty : s / penalty;
  }
}

/** Forbids end-of-sequence tokens (before the minimum number of new tokens). */
export function suppress(scores: Float64Array, tokens: readonly number[]): void {
  for (const t of tokens) if (t >= 0 && t < scores.length) scores[t] = -Infinity;
}

/** Temperature, top-k, top-p and min-p on a row of logits; removed tokens become -Infinity. */
export function warp(scores: Float64Array, o: LogitsOptions): void {
  const temperature = o.temperature ?? 1;
  if (!(temperature > 0)) throw new Error(`generate: temperature must be > 0, got ${temperature}`);
  if (temperature !== 1) for (let i = 0; i < scores.length; i++) scores[i] /= temperature;
  if (o.topK !== undefined && o.topK > 0 && o.topK < scores.length) {
    // Keep scores >= the k-th largest (ties at the threshold stay, as in HF).
    const kth = Float64Array.from(scores).sort().reverse()[o.topK - 1];
    for (let i = 0; i < scores.length; i++) if (scores[i] < kth) scores[i] = -Infinity;
  }
  if (o.topP !== undefined && o.topP < 1) {
    const probs = softmax(scores);
    const order = [...probs.keys()].sort((a, b) => probs[a] - probs[b]); // ascending, like HF
    let cum = 0;
    for (let r = 0; r < order.length - 1; r++) { // the most likely token always stays
      cum += probs[order[r]];
      if (cum <= 1 - o.topP) scores[order[r]] = -Infinity;
    }
  }
  if (o.minP !== undefined && o.minP > 0) {
    const probs = softmax(scores);
    const limit = o.minP * Math.max(...probs);
    for (let i = 0; i < scores.length; i++) if (probs[i] < limit) scores[i] = -Infinity;
  }
}

/** Why a row of scores is unusable, or null: a NaN, a +Infinity, or every token at -Infinity (nothing left to choose). */
export function badScores(scores: Float64Array): string | null {
  let allMasked = true;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (Number.isNaN(s)) return `NaN at token ${i}`;
    if (s === Infinity) return `+Infinity at token ${i}`;
    if (s !== -Infinity) allMasked = false;
  }
  return allMasked ? 'every token at -Infinity' : null;
}

/** The first NaN in a row of logits, or -1. */
export function firstNaN(scores: Float64Array): number {
  return scores.findIndex((s) => Number.isNaN(s));
}

/**
 * torch.multinomial's check before drawing: probabilities must be finite and non-negative (softmax of a row with a
 * NaN, a +Infinity or only -Infinity gives NaN). `where` names the row and step; `scores` explains the cause.
 */
export function checkProbabilities(probs: Float64Array, scores: Float64Array, where: string): void {
  for (const p of probs) {
    if (!(p >= 0 && p < Infinity)) throw new Error(`generate: probability tensor contains either inf, nan or element < 0 (${where}: the scores hold ${badScores(scores) ?? 'non-finite values'})`);
  }
}

export function softmax(scores: Float64Array): Float64Array {
  let m = -Infinity;
  for (const s of scores) m = Math.max(m, s);
  const out = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += out[i] = Math.exp(scores[i] - m);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

export function logSoftmax(scores: Float64Array): Float64Array {
  let m = -Infinity;
  for (const s of scores) m = Math.max(m, s);
  let sum = 0;
  for (const s of scores) sum += Math.exp(s - m);
  const lse = m + Math.log(sum);
  return scores.map((s) => s - lse);
}

export function argmax(scores: Float64Array): number {
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
  return best;
}

/** Draws an index from probabilities with a uniform u in [0, 1). */
export function sampleIndex(probs: Float64Array, u: number): number {
  let acc = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue;
    last = i;
    acc += probs[i];
    if (u < acc) return i;
  }
  return last;
}

/**
 * HF's NoRepeatNGramLogitsProcessor: the tokens that would complete an n-gram already in `seq` (the decoder's tokens,
 * start token included), i.e. every token that followed an earlier occurrence of the last n - 1 tokens.
 */
export function noRepeatNgramTokens(seq: readonly number[], n: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new Error(`generate: noRepeatNgramSize must be a positive integer, got ${n}`);
  if (seq.length + 1 < n) return [];
  const prefix = seq.slice(seq.length - n + 1);
  const banned = new Set<number>();
  for (let i = 0; i + n <= seq.length; i++) {
    if (prefix.every((t, j) => seq[i + j] === t)) banned.add(seq[i + n - 1]!);
  }
  return [...banned];
}

/** HF's ForcedBOSTokenLogitsProcessor / ForcedEOSTokenLogitsProcessor: every score to -Infinity but `token`'s, which becomes 0. */
export function forceToken(scores: Float64Array, token: number): void {
  if (!(token >= 0 && token < scores.length)) throw new Error(`generate: forced token ${token} is outside the vocabulary (${scores.length})`);
  scores.fill(-Infinity);
  scores[token] = 0;
}

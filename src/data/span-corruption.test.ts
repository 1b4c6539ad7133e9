// T5 span corruption and BART text infilling: known answers from HF's / fairseq's algorithms, lengths, and statistics over many draws.

import { describe, expect, test } from 'vitest';
import { Generator } from '../tensor/random.js';
import {
  applyInfilling, applySpanCorruption, bartDenoisingPair, computeInputAndTargetLengths, numNoiseSpans, permuteSentences,
  randomSpansNoiseMask, roundHalfEven, sampleInfillingPlan, samplePoisson, sentinelId, spanCorrupt, textInfilling,
} from './span-corruption.js';

const T5 = { noiseDensity: 0.15, meanNoiseSpanLength: 3 };

describe('T5 span corruption', () => {
  test('rounding is Python\'s (halves to even), as HF\'s int(round(...)) and np.round', () => {
    expect([0.5, 1.5, 2.5, 4.5, 1.4999, 2.6, 10 * 0.15, 30 * 0.15].map(roundHalfEven)).toEqual([0, 2, 2, 4, 1, 3, 2, 4]);
  });

  test('lengths equal compute_input_and_target_lengths (values from HF\'s function in Python)', () => {
    const cases: [number, number, number, number, number][] = [
      // inputs_length, noise_density, mean_noise_span_length -> tokens_length, targets_length
      [512, 0.15, 3, 568, 114], [128, 0.15, 3, 141, 29], [64, 0.15, 3, 70, 14], [48, 0.15, 3, 52, 12], [16, 0.15, 3, 17, 5],
      [10, 0.15, 3, 10, 4], [100, 0.5, 3, 148, 100], [256, 0.5, 3, 382, 256], [20, 0.3, 2, 22, 12], [32, 0.25, 1, 32, 17],
    ];
    for (const [L, d, s, tokens, targets] of cases) {
      expect(computeInputAndTargetLengths(L, { noiseDensity: d, meanNoiseSpanLength: s })).toEqual({ tokensLength: tokens, targetsLength: targets });
    }
  });

  test('applying a fixed mask gives HF\'s inputs and labels exactly (create_sentinel_ids + filter_input_ids, run in Python)', () => {
    const seq = (a: number, n: number) => Array.from({ length: n }, (_, i) => a + i);
    expect(applySpanCorruption(seq(10, 10), [0, 0, 1, 1, 0, 0, 0, 1, 0, 1], { vocabSize: 100, eosId: 1 })).toEqual({
      inputIds: [10, 11, 99, 14, 15, 16, 98, 18, 97, 1],
      labels: [99, 12, 13, 98, 17, 97, 19, 1],
    });
    // A mask that starts with noise (HF's generator never makes one, but the application handles it the same way).
    expect(applySpanCorruption([5, 6, 7, 8], [1, 1, 0, 0], { vocabSize: 50, eosId: 1 })).toEqual({ inputIds: [49, 7, 8, 1], labels: [5, 6, 49, 1] });
    // T5's vocabulary: <extra_id_0> = 32099, <extra_id_1> = 32098, ...
    expect(applySpanCorruption(seq(20, 12), [0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1], { vocabSize: 32100, eosId: 1 })).toEqual({
      inputIds: [20, 32099, 24, 25, 26, 27, 32098, 30, 32097, 1],
      labels: [32099, 21, 22, 23, 32098, 28, 29, 32097, 31, 1],
    });
    expect([0, 1, 99].map((k) => sentinelId(32100, k))).toEqual([32099, 32098, 32000]); // <extra_id_99> is 32000 in t5-small;
    expect(() => applySpanCorruption([1, 2, 3], [0, 1], { vocabSize: 10, eosId: 1 })).toThrow(/2 entries for 3 tokens/);
  });

  test('masks: round(0.15 L) noise tokens in round(noise / 3) spans, non-noise first, noise last', () => {
    const gen = new Generator(3);
    for (const L of [10, 17, 52, 70, 141, 568]) {
      const noise = roundHalfEven(L * 0.15), spans = Math.max(roundHalfEven(noise / 3), 1);
      expect(numNoiseSpans(L, T5)).toBe(spans);
      for (let r = 0; r < 50; r++) {
        const m = randomSpansNoiseMask(L, gen, T5);
        expect(m.reduce((a, b) => a + b, 0)).toBe(noise);
        expect(m[0]).toBe(0);
        expect(m[L - 1]).toBe(1);
        let runs = 0;
        for (let i = 0; i < L; i++) if (m[i] && !m[i - 1]) runs++;
        expect(runs).toBe(spans);
      }
    }
    // Degenerate lengths keep one noise and one non-noise token, as HF's clamps do.
    expect(Array.from(randomSpansNoiseMask(2, gen, T5))).toEqual([0, 1]);
    expect(() => randomSpansNoiseMask(1, gen, T5)).toThrow(/length must be an integer >= 2/);
    expect(() => randomSpansNoiseMask(10, gen, { noiseDensity: 0, meanNoiseSpanLength: 3 })).toThrow(/noiseDensity must be in \(0, 1\)/);
  });

  test('every mask the constraints allow is equally likely (length 8, density 0.5, mean span 2: 9 masks)', () => {
    // 4 noise tokens in 2 spans (3 ways) and 4 non-noise tokens in 2 spans (3 ways): each mask has probability 1/9.
    const gen = new Generator(11);
    const counts = new Map<string, number>();
    const draws = 9000;
    for (let r = 0; r < draws; r++) {
      const key = Array.from(randomSpansNoiseMask(8, gen, { noiseDensity: 0.5, meanNoiseSpanLength: 2 })).join('');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(9);
    expect(counts.has('00110011')).toBe(true);
    expect(counts.has('01000111')).toBe(true);
    // Binomial(9000, 1/9): sd 29.8; 5 sd is 149.
    for (const c of counts.values()) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });

  test('noise proportion and span lengths over many draws; every position can be noise', () => {
    const gen = new Generator(5);
    const L = 141, draws = 400;
    let noise = 0, spans = 0;
    const perPosition = new Float64Array(L);
    for (let r = 0; r < draws; r++) {
      const m = randomSpansNoiseMask(L, gen, T5);
      for (let i = 0; i < L; i++) {
        noise += m[i]!;
        perPosition[i]! += m[i]!;
        if (m[i] && !m[i - 1]) spans++;
      }
    }
    expect(noise / (L * draws)).toBeCloseTo(21 / 141, 10); // round(0.15 * 141) = 21 tokens each draw
    expect(noise / spans).toBeCloseTo(3, 10); // 21 noise tokens in 7 spans
    // Apart from the last tokens (the final noise span) and the first (never noise), positions are noise at ~15%.
    const middle = Array.from(perPosition.subarray(10, L - 10)).reduce((a, b) => a + b, 0) / ((L - 20) * draws);
    expect(middle).toBeGreaterThan(0.12);
    expect(middle).toBeLessThan(0.17);
    expect(perPosition[0]).toBe(0);
    expect(perPosition[L - 1]).toBe(draws);
  });

  test('chunks of tokensLength give inputs and labels of HF\'s lengths; the pieces put back give the chunk', () => {
    const gen = new Generator(9);
    for (const inputsLength of [16, 48, 64, 128]) {
      const { tokensLength, targetsLength } = computeInputAndTargetLengths(inputsLength, T5);
      const V = 500, EOS = 1;
      for (let r = 0; r < 20; r++) {
        const chunk = Array.from(gen.integers(5, V - 50, tokensLength));
        const { inputIds, labels } = spanCorrupt(chunk, gen, { ...T5, vocabSize: V, eosId: EOS });
        expect(inputIds.length).toBe(inputsLength);
        expect(labels.length).toBe(targetsLength);
        // Reconstruction: each input sentinel stands for the label tokens after the same sentinel.
        const fill = new Map<number, number[]>();
        let cur: number[] = [];
        for (const id of labels.slice(0, -1)) {
          if (id >= V - 50) fill.set(id, (cur = []));
          else cur.push(id);
        }
        expect(inputIds.slice(0, -1).flatMap((id) => (id >= V - 50 ? fill.get(id)! : [id]))).toEqual(chunk);
        expect(inputIds.at(-1)).toBe(EOS);
        expect(labels.at(-1)).toBe(EOS);
      }
    }
  });

  test('the same seed gives the same masks', () => {
    const a = randomSpansNoiseMask(100, new Generator(42), T5), b = randomSpansNoiseMask(100, new Generator(42), T5);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(randomSpansNoiseMask(100, new Generator(43), T5))).not.toEqual(Array.from(a));
  });
});

describe('BART text infilling and sentence permutation', () => {
  const M = 4; // the mask id
  const doc = (n: number) => [0, ...Array.from({ length: n }, (_, i) => 10 + i), 2]; // <s> 10 11 ... </s>

  test('applying a fixed plan: one mask per span, overlapping spans merge, inserted masks, known answer', () => {
    // Positions: 0 <s>, 1..10 = tokens 10..19, 11 </s>. A span at 2 of length 3 (11 12 13), at 7 of length 1 (16);
    // then masks inserted at positions 1 and 5 of the 12-token result.
    expect(applyInfilling(doc(10), { starts: [2, 7], lengths: [3, 1], insertAt: [1, 5] }, M)).toEqual({
      source: [0, M, 10, M, 14, M, 15, M, 17, 18, 19, 2],
      replaced: [[], [11, 12, 13], [], [16]],
    });
    // A span whose start lies inside an earlier span merges into it; a span never runs over </s>.
    expect(applyInfilling(doc(10), { starts: [2, 3, 10], lengths: [3, 4, 5], insertAt: [] }, M)).toEqual({
      source: [0, 10, M, 16, 17, 18, M, 2],
      replaced: [[11, 12, 13, 14, 15], [19]],
    });
    expect(() => applyInfilling(doc(3), { starts: [0], lengths: [1], insertAt: [] }, M)).toThrow(/span start 0 is outside 1\.\.3/);
    expect(() => applyInfilling(doc(3), { starts: [], lengths: [], insertAt: [5] }, M)).toThrow(/insertion position 5 is outside 1\.\.4/);
  });

  test('Poisson(3) span lengths: mean, variance and P(0) over many draws', () => {
    const xs = samplePoisson(40000, 3, new Generator(1));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    expect(mean).toBeGreaterThan(2.97); // sd of the mean: sqrt(3 / 40000) = 0.0087
    expect(mean).toBeLessThan(3.03);
    expect(variance).toBeGreaterThan(2.9);
    expect(variance).toBeLessThan(3.1);
    expect(xs.filter((x) => x === 0).length / xs.length).toBeCloseTo(Math.exp(-3), 2);
  });

  test('plans spend exactly ceil(0.3 n) of the budget; mask ratio, span lengths and inserts over many draws', () => {
    const gen = new Generator(7);
    const n = 202, content = 200, budget = 60, draws = 300;
    let spans = 0, spanTokens = 0, inserts = 0, masked = 0;
    for (let r = 0; r < draws; r++) {
      const plan = sampleInfillingPlan(n, gen, { maskRatio: 0.3, poissonLambda: 3 });
      expect(plan.lengths.reduce((a, b) => a + b, 0)).toBe(budget);
      expect(new Set(plan.starts).size).toBe(plan.starts.length);
      spans += plan.lengths.length;
      spanTokens += plan.lengths.reduce((a, b) => a + b, 0);
      inserts += plan.insertAt.length;
      const out = applyInfilling(doc(content), plan, M);
      const lost = out.replaced.reduce((a, b) => a + b.length, 0);
      expect(lost).toBeLessThanOrEqual(budget); // overlaps and the end of the sequence only lose budget
      expect(out.source.filter((id) => id === M).length).toBe(out.replaced.length);
      masked += lost;
    }
    // Non-empty Poisson(3) spans have mean 3 / (1 - e^-3) = 3.16; trimming the last span to the budget lowers it a little.
    expect(spanTokens / spans).toBeGreaterThan(2.9);
    expect(spanTokens / spans).toBeLessThan(3.25);
    // About e^-3 / (1 - e^-3) = 5.2% as many inserted masks as spans.
    expect(inserts / spans).toBeGreaterThan(0.03);
    expect(inserts / spans).toBeLessThan(0.075);
    // Tokens actually masked: the 30% budget less the overlaps between spans (about 19 spans in 200 tokens; 26.8% here).
    expect(masked / (content * draws)).toBeGreaterThan(0.25);
    expect(masked / (content * draws)).toBeLessThanOrEqual(0.3);
  });

  test('reconstruction: putting each mask\'s tokens back gives the original; <s> and </s> stay', () => {
    const gen = new Generator(8);
    for (let r = 0; r < 200; r++) {
      const tokens = doc(1 + (r % 60));
      const { source, replaced } = textInfilling(tokens, gen, { maskRatio: 0.3, poissonLambda: 3, maskId: M });
      let k = 0;
      expect(source.flatMap((id) => (id === M ? replaced[k++]! : [id]))).toEqual(tokens);
      expect(k).toBe(replaced.length);
      expect(source[0]).toBe(0);
      expect(source.at(-1)).toBe(2);
    }
    expect(textInfilling([0, 2], gen, { maskRatio: 0.3, poissonLambda: 3, maskId: M }).source).toEqual([0, 2]);
    expect(() => textInfilling([0], gen, { maskRatio: 0.3, poissonLambda: 3, maskId: M })).toThrow(/at least its first and last tokens/);
  });

  test('sentence permutation: a full shuffle at ratio 1 (uniform positions), only ceil(ratio n) sentences move otherwise', () => {
    const gen = new Generator(2);
    const sents = ['a', 'b', 'c', 'd'];
    const firstCounts = new Map<string, number>();
    for (let r = 0; r < 4000; r++) {
      const p = permuteSentences(sents, gen, 1);
      expect([...p].sort()).toEqual(sents);
      firstCounts.set(p[0]!, (firstCounts.get(p[0]!) ?? 0) + 1);
    }
    for (const s of sents) expect(Math.abs(firstCounts.get(s)! - 1000)).toBeLessThan(140); // sd 27
    for (let r = 0; r < 200; r++) {
      const p = permuteSentences(sents, gen, 0.5); // 2 of 4 chosen: at least 2 stay in place
      expect([...p].sort()).toEqual(sents);
      expect(p.filter((s, i) => s === sents[i]).length).toBeGreaterThanOrEqual(2);
    }
    expect(permuteSentences(sents, gen, 0)).toEqual(sents);
    expect(() => permuteSentences(sents, gen, 1.5)).toThrow(/ratio must be in \[0, 1\]/);
  });

  test('a BART denoising pair: the target is the document, the source its permuted, infilled version', () => {
    const gen = new Generator(4);
    const sentences = [[10, 11, 12], [20, 21], [30, 31, 32, 33]];
    const { source, target } = bartDenoisingPair(sentences, gen, { maskRatio: 0.3, poissonLambda: 3, maskId: M, bosId: 0, eosId: 2 });
    expect(target).toEqual([0, 10, 11, 12, 20, 21, 30, 31, 32, 33, 2]);
    expect(source[0]).toBe(0);
    expect(source.at(-1)).toBe(2);
    expect(source).toContain(M);
    // ceil(0.3 * 9) = 3 tokens masked at most: at least 6 of the 9 survive.
    expect(source.filter((id) => id !== M).length).toBeGreaterThanOrEqual(2 + 6);
  });
});

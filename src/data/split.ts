// Deterministic train / validation / test splits from a seed (the project's Philox generator: the same split on every machine).

import { Generator } from '../tensor/random.js';

export interface SplitOptions {
  /** One fraction per split, each in [0, 1], summing to 1, e.g. [0.8, 0.1, 0.1]. */
  fractions: readonly number[];
  /** Seed of the shuffle (a non-negative integer). */
  seed: number;
}

/**
 * Split sizes for n items, like torch.utils.data.random_split with fractions: floor(n * f) each, then the items left
 * over go one each to the first splits.
 */
export function splitSizes(n: number, fractions: readonly number[]): number[] {
  if (!Array.isArray(fractions) || fractions.length === 0) throw new Error('splitDataset: fractions must be a non-empty array, e.g. [0.8, 0.1, 0.1]');
  for (const f of fractions) {
    if (typeof f !== 'number' || !(f >= 0 && f <= 1)) throw new Error(`splitDataset: every fraction must be a number in [0, 1], got ${String(f)}`);
  }
  const total = fractions.reduce((a, b) => a + b, 0);
  if (Math.abs(total - 1) > 1e-9) throw new Error(`splitDataset: fractions must sum to 1, got ${fractions.join(' + ')} = ${total}`);
  const sizes = fractions.map((f) => Math.floor(n * f));
  let left = n - sizes.reduce((a, b) => a + b, 0);
  for (let i = 0; left > 0; i = (i + 1) % sizes.length, left--) sizes[i]!++;
  return sizes;
}

/**
 * Shuffles the items with Generator(seed).permutation and cuts the result into consecutive splits of splitSizes.
 * The same items, fractions and seed give the same splits everywhere; every item lands in exactly one split.
 */
export function splitDataset<T>(items: readonly T[], opts: SplitOptions): T[][] {
  if (!Array.isArray(items)) throw new Error('splitDataset: expected an array of items');
  if (items.length === 0) throw new Error('splitDataset: the dataset is empty');
  if (typeof opts !== 'object' || opts === null) throw new Error('splitDataset: expected options { fractions, seed }');
  const sizes = splitSizes(items.length, opts.fractions);
  const perm = new Generator(opts.seed).permutation(items.length);
  let at = 0;
  return sizes.map((size) => {
    const part = Array.from(perm.subarray(at, at + size), (i) => items[i]!);
    at += size;
    return part;
  });
}

/**
 * Splits by group: the distinct keys (in order of first appearance) are split with splitDataset, and every item
 * follows its key, so that related items never straddle two splits (e.g. all pronunciations of a word). Fractions
 * apply to the number of keys.
 */
export function splitByKey<T>(items: readonly T[], key: (item: T) => string, opts: SplitOptions): T[][] {
  if (!Array.isArray(items)) throw new Error('splitByKey: expected an array of items');
  const keys = [...new Set(items.map(key))];
  if (keys.length === 0) throw new Error('splitByKey: the dataset is empty');
  const splitOf = new Map<string, number>();
  splitDataset(keys, opts).forEach((part, s) => { for (const k of part) splitOf.set(k, s); });
  const out: T[][] = opts.fractions.map(() => []);
  for (const item of items) out[splitOf.get(key(item))!]!.push(item);
  return out;
}

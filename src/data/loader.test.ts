// Splits and batching: split sizes as torch's random_split computes them, determinism and disjointness, DataLoader
// order, shuffling and position restore, and padding with attention masks.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { Generator } from '../tensor/random.js';
import { DataLoader, padSequences } from './loader.js';
import { splitByKey, splitDataset, splitSizes } from './split.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('splitDataset', () => {
  test('sizes: floor(n * f), the rest one each to the first splits (torch.utils.data.random_split)', () => {
    expect(splitSizes(10, [0.7, 0.2, 0.1])).toEqual([7, 2, 1]);
    expect(splitSizes(7, [0.5, 0.5])).toEqual([4, 3]);
    expect(splitSizes(5, [1 / 3, 1 / 3, 1 / 3])).toEqual([2, 2, 1]);
    expect(splitSizes(3, [0.8, 0.1, 0.1])).toEqual([3, 0, 0]);
  });

  test('the same seed gives the same split; splits are disjoint and cover every item', () => {
    const items = range(1000).map((i) => `item${i}`);
    const a = splitDataset(items, { fractions: [0.8, 0.1, 0.1], seed: 42 });
    const b = splitDataset([...items], { fractions: [0.8, 0.1, 0.1], seed: 42 });
    expect(a).toEqual(b);
    expect(a.map((s) => s.length)).toEqual([800, 100, 100]);
    const all = a.flat();
    expect(new Set(all).size).toBe(1000);
    expect([...all].sort()).toEqual([...items].sort());
    const c = splitDataset(items, { fractions: [0.8, 0.1, 0.1], seed: 43 });
    expect(c[1]).not.toEqual(a[1]);
  });

  test('the order is Generator(seed).permutation cut into consecutive pieces', () => {
    const perm = [...new Generator(5).permutation(10)];
    expect(splitDataset(range(10), { fractions: [0.6, 0.4], seed: 5 })).toEqual([perm.slice(0, 6), perm.slice(6)]);
  });

  test('splitByKey keeps each key in one split', () => {
    const items = range(300).map((i) => ({ key: `k${i % 50}`, i }));
    const parts = splitByKey(items, (x) => x.key, { fractions: [0.5, 0.5], seed: 1 });
    const keys = parts.map((p) => new Set(p.map((x) => x.key)));
    expect(keys.map((k) => k.size)).toEqual([25, 25]);
    for (const k of keys[0]!) expect(keys[1]!.has(k)).toBe(false);
    expect(parts[0]!.length + parts[1]!.length).toBe(300);
  });

  test('bad input', () => {
    expect(() => splitDataset([], { fractions: [1], seed: 0 })).toThrow(/splitDataset: the dataset is empty/);
    expect(() => splitDataset([1, 2], { fractions: [0.5, 0.4], seed: 0 })).toThrow(/fractions must sum to 1, got 0.5 \+ 0.4 = 0.9/);
    expect(() => splitDataset([1, 2], { fractions: [1.5, -0.5], seed: 0 })).toThrow(/every fraction must be a number in \[0, 1\], got 1.5/);
    expect(() => splitDataset([1, 2], { fractions: [1], seed: -1 })).toThrow(/seed must be a non-negative integer/);
  });
});

describe('DataLoader', () => {
  test('without shuffling: items in order, a smaller last batch unless dropLast', () => {
    expect([...new DataLoader(range(7), { batchSize: 3 }).batches(0)]).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    const dl = new DataLoader(range(7), { batchSize: 3, dropLast: true });
    expect(dl.length).toBe(2);
    expect([...dl.batches(4)]).toEqual([[0, 1, 2], [3, 4, 5]]);
  });

  test('shuffling: epoch e uses the (e+1)-th permutation drawn from Generator(seed)', () => {
    const dl = new DataLoader(range(10), { batchSize: 4, shuffle: true, seed: 3 });
    const gen = new Generator(3);
    for (let e = 0; e < 3; e++) {
      const perm = [...gen.permutation(10)];
      expect([...dl.batches(e)]).toEqual([perm.slice(0, 4), perm.slice(4, 8), perm.slice(8)]);
    }
    expect([...dl.batches(0)].flat()).not.toEqual([...dl.batches(1)].flat());
  });

  test('batches(epoch, start) is the tail of the epoch; the position survives a save and restore', () => {
    const dl = new DataLoader(range(20), { batchSize: 3, shuffle: true, seed: 9, collate: (xs) => xs.reduce((a, b) => a + b, 0) });
    const epoch1 = [...dl.batches(1)];
    expect([...dl.batches(1, 4)]).toEqual(epoch1.slice(4));

    const seen: number[] = [];
    for (const b of dl) seen.push(b); // epoch 0, then the position moves to epoch 1
    const it = dl[Symbol.iterator]();
    seen.push(it.next().value as number, it.next().value as number);
    const state = dl.getState();
    expect(state).toEqual({ epoch: 1, batch: 2 });

    const other = new DataLoader(range(20), { batchSize: 3, shuffle: true, seed: 9, collate: (xs) => xs.reduce((a, b) => a + b, 0) });
    other.setState(state);
    expect([...other]).toEqual(epoch1.slice(2));
    expect(other.getState()).toEqual({ epoch: 2, batch: 0 });
  });

  test('bad input', () => {
    expect(() => new DataLoader([], { batchSize: 2 })).toThrow(/DataLoader: the dataset is empty/);
    expect(() => new DataLoader([1], { batchSize: 0 })).toThrow(/batchSize must be a positive integer, got 0/);
    expect(() => new DataLoader([1], { batchSize: 2, dropLast: true })).toThrow(/1 items make no full batch of 2 with dropLast/);
    const dl = new DataLoader(range(4), { batchSize: 2 });
    expect(() => dl.setState({ epoch: 0, batch: 3 })).toThrow(/batch 3 is past the end of an epoch of 2 batches/);
    expect(() => dl.setState({ epoch: -1, batch: 0 })).toThrow(/non-negative integers/);
  });
});

describe('padSequences', () => {
  test('pads to the longest with an attention mask, as int32', async () => {
    const { inputIds, attentionMask } = padSequences([[5, 6, 7], [8], []], { padId: -1 });
    expect(inputIds.dtype).toBe('int32');
    expect(attentionMask.dtype).toBe('int32');
    expect(await inputIds.tolist()).toEqual([[5, 6, 7], [8, -1, -1], [-1, -1, -1]]);
    expect(await attentionMask.tolist()).toEqual([[1, 1, 1], [1, 0, 0], [0, 0, 0]]);
  });

  test('left padding, a fixed length, truncation', async () => {
    const left = padSequences([[1, 2], [3]], { side: 'left', length: 4 });
    expect(await left.inputIds.tolist()).toEqual([[0, 0, 1, 2], [0, 0, 0, 3]]);
    expect(await left.attentionMask.tolist()).toEqual([[0, 0, 1, 1], [0, 0, 0, 1]]);
    const cut = padSequences([Int32Array.from([1, 2, 3, 4]), [9]], { length: 2, truncate: true });
    expect(await cut.inputIds.tolist()).toEqual([[1, 2], [9, 0]]);
  });

  test('bad input', () => {
    expect(() => padSequences([])).toThrow(/expected a non-empty array of sequences/);
    expect(() => padSequences([[1, 2, 3]], { length: 2 })).toThrow(/sequence 0 has 3 tokens, more than length 2 \(pass truncate: true/);
    expect(() => padSequences([[1, 2.5]])).toThrow(/sequence 0 has a non-int32 id 2.5 at position 1/);
  });
});

// Batching: a DataLoader with seeded per-epoch shuffling and a resumable position, and padding of token id sequences.

import { tensor } from '../tensor/create.js';
import { Generator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';

/** Where a loader stands: the epoch, and the number of batches of it already handed out. */
export interface LoaderPosition {
  epoch: number;
  batch: number;
}

/**
 * What the Trainer reads batches from: any epoch's batches from any batch on, the same every time it is asked
 * (so that a resumed run sees exactly the batches the interrupted one would have).
 */
export interface BatchSource<B> {
  batches(epoch: number, start: number): Iterable<B> | AsyncIterable<B>;
  /** Batches per epoch, when known. */
  readonly length?: number;
}

export interface DataLoaderOptions<T, B> {
  batchSize: number;
  /** Shuffle the items every epoch (default false). */
  shuffle?: boolean;
  /** Seed of the shuffle (default 0). */
  seed?: number;
  /** Leave out a last batch smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Turns a batch's items into what the loader yields (default: the array of items). */
  collate?: (items: T[]) => B;
}

function checkPosition(p: LoaderPosition, where: string): void {
  if (typeof p !== 'object' || p === null || !Number.isSafeInteger(p.epoch) || p.epoch < 0 || !Number.isSafeInteger(p.batch) || p.batch < 0) {
    throw new Error(`${where}: a position is { epoch, batch } with non-negative integers, got ${JSON.stringify(p)}`);
  }
}

/**
 * Batches over an array of items, like torch.utils.data.DataLoader. With shuffle, epoch e visits the items in the
 * order of the (e+1)-th permutation drawn from Generator(seed): any epoch can be produced directly, which is what
 * makes the position (getState / setState) cheap to restore.
 */
export class DataLoader<T, B = T[]> implements BatchSource<B> {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  private readonly collate: (items: T[]) => B;
  private position: LoaderPosition = { epoch: 0, batch: 0 };

  constructor(readonly dataset: readonly T[], opts: DataLoaderOptions<T, B>) {
    if (!Array.isArray(dataset)) throw new Error('DataLoader: expected an array of items');
    if (dataset.length === 0) throw new Error('DataLoader: the dataset is empty');
    if (typeof opts !== 'object' || opts === null) throw new Error('DataLoader: expected options { batchSize, ... }');
    if (!Number.isSafeInteger(opts.batchSize) || opts.batchSize < 1) throw new Error(`DataLoader: batchSize must be a positive integer, got ${String(opts.batchSize)}`);
    this.batchSize = opts.batchSize;
    this.shuffle = opts.shuffle ?? false;
    this.seed = opts.seed ?? 0;
    this.dropLast = opts.dropLast ?? false;
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new Error(`DataLoader: seed must be a non-negative integer, got ${String(this.seed)}`);
    this.collate = opts.collate ?? ((items) => items as unknown as B);
    if (this.length === 0) throw new Error(`DataLoader: ${dataset.length} items make no full batch of ${this.batchSize} with dropLast`);
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The item indices of an epoch in visiting order. */
  order(epoch: number): Int32Array {
    const n = this.dataset.length;
    if (!this.shuffle) return Int32Array.from({ length: n }, (_, i) => i);
    const gen = new Generator(this.seed);
    // permutation(n) draws ceil(n / 4) Philox blocks: skip the blocks of the epochs before.
    gen.setState({ seed: this.seed, offset: epoch * Math.ceil(n / 4) });
    return gen.permutation(n);
  }

  /** The batches of an epoch from batch `start` on (a pure function of epoch and start). */
  *batches(epoch: number, start = 0): IterableIterator<B> {
    checkPosition({ epoch, batch: start }, 'DataLoader.batches');
    const order = this.order(epoch);
    for (let b = start; b < this.length; b++) {
      const idx = order.subarray(b * this.batchSize, (b + 1) * this.batchSize);
      yield this.collate(Array.from(idx, (i) => this.dataset[i]!));
    }
  }

  /** The position the next iteration starts from. */
  getState(): LoaderPosition {
    return { ...this.position };
  }

  setState(p: LoaderPosition): void {
    checkPosition(p, 'DataLoader.setState');
    if (p.batch > this.length) throw new Error(`DataLoader.setState: batch ${p.batch} is past the end of an epoch of ${this.length} batches`);
    this.position = { epoch: p.epoch, batch: p.batch };
  }

  /** The rest of the current epoch; the position follows each batch handed out and moves to the next epoch at its end. */
  *[Symbol.iterator](): IterableIterator<B> {
    const { epoch, batch } = this.position;
    let b = batch;
    for (const out of this.batches(epoch, batch)) {
      this.position = { epoch, batch: ++b };
      yield out;
    }
    this.position = { epoch: epoch + 1, batch: 0 };
  }
}

export interface PadOptions {
  /** The id of padding positions (default 0). */
  padId?: number;
  /** Pad (and with truncate, cut) to this length instead of the longest sequence's. */
  length?: number;
  /** Cut sequences longer than `length` instead of failing (default false). */
  truncate?: boolean;
  /** Where padding goes (default 'right'; 'left' for batched generation). */
  side?: 'left' | 'right';
  device?: string;
}

export interface PaddedBatch {
  /** [batch, length] int32. */
  inputIds: Tensor;
  /** [batch, length] int32: 1 at tokens, 0 at padding. */
  attentionMask: Tensor;
}

/** Pads token id sequences into one int32 tensor with its attention mask. */
export function padSequences(seqs: readonly (readonly number[] | Int32Array)[], opts: PadOptions = {}): PaddedBatch {
  if (!Array.isArray(seqs) || seqs.length === 0) throw new Error('padSequences: expected a non-empty array of sequences');
  const padId = opts.padId ?? 0;
  if (!Number.isInteger(padId)) throw new Error(`padSequences: padId must be an integer, got ${String(padId)}`);
  if (opts.length !== undefined && (!Number.isSafeInteger(opts.length) || opts.length < 0)) throw new Error(`padSequences: length must be a non-negative integer, got ${String(opts.length)}`);
  const longest = Math.max(...seqs.map((s) => s.length));
  const len = opts.length ?? longest;
  const B = seqs.length;
  const ids = new Int32Array(B * len).fill(padId);
  const mask = new Int32Array(B * len);
  seqs.forEach((s, b) => {
    if (s.length > len && !opts.truncate) throw new Error(`padSequences: sequence ${b} has ${s.length} tokens, more than length ${len} (pass truncate: true to cut it)`);
    const n = Math.min(s.length, len);
    const offset = opts.side === 'left' ? len - n : 0;
    for (let t = 0; t < n; t++) {
      const id = s[t]!;
      if (!Number.isInteger(id) || id < -(2 ** 31) || id >= 2 ** 31) throw new Error(`padSequences: sequence ${b} has a non-int32 id ${String(id)} at position ${t}`);
      ids[b * len + offset + t] = id;
      mask[b * len + offset + t] = 1;
    }
  });
  return {
    inputIds: tensor(ids, { shape: [B, len], dtype: 'int32', device: opts.device }),
    attentionMask: tensor(mask, { shape: [B, len], dtype: 'int32', device: opts.device }),
  };
}

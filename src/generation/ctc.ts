// Greedy CTC decoding: the best class per frame, repeats collapsed, then blanks dropped (what wav2vec2's processor does
// before mapping ids to characters).

import { argmax } from '../autograd/ops/reduce.js';
import { noGrad } from '../autograd/engine.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TypedArray } from '../tensor/dtype.js';

export interface CtcGreedyOptions {
  /** The blank id (default 0; wav2vec2 checkpoints use their pad token's id). */
  blank?: number;
  /** Valid frames per sequence (frames past them are padding); all T by default. */
  lengths?: readonly number[];
}

function checkArgs(logits: Tensor, opts: CtcGreedyOptions): [number, number, number] {
  if (logits.ndim !== 3) throw new Error(`ctcGreedyDecode: logits must be [B, T, V], got ${fmtShape(logits.shape)}`);
  const [batch, frames, vocab] = logits.shape as [number, number, number];
  const blank = opts.blank ?? 0;
  if (!Number.isInteger(blank) || blank < 0 || blank >= vocab) throw new Error(`ctcGreedyDecode: blank ${blank} is out of range [0, ${vocab}) for logits ${fmtShape(logits.shape)}`);
  const { lengths } = opts;
  if (lengths) {
    if (lengths.length !== batch) throw new Error(`ctcGreedyDecode: lengths has ${lengths.length} entries for logits ${fmtShape(logits.shape)} (B = ${batch})`);
    lengths.forEach((n, b) => {
      if (!Number.isInteger(n) || n < 0 || n > frames) throw new Error(`ctcGreedyDecode: lengths[${b}] = ${n} is out of range [0, ${frames}] (T of logits ${fmtShape(logits.shape)})`);
    });
  }
  return [batch, frames, blank];
}

/** Collapses repeats, then drops blanks, in each row of best ids [B, T]. */
export function collapseCtc(best: ArrayLike<number>, batch: number, frames: number, blank: number, lengths?: readonly number[]): number[][] {
  const out: number[][] = [];
  for (let b = 0; b < batch; b++) {
    const ids: number[] = [];
    let prev = -1;
    for (let t = 0; t < (lengths?.[b] ?? frames); t++) {
      const id = best[b * frames + t]!;
      if (id !== prev && id !== blank) ids.push(id);
      prev = id;
    }
    out.push(ids);
  }
  return out;
}

/** Greedy CTC decoding of logits (or log-probabilities) [B, T, V] into id sequences; reads synchronously. */
export function ctcGreedyDecode(logits: Tensor, opts: CtcGreedyOptions = {}): number[][] {
  const [batch, frames, blank] = checkArgs(logits, opts);
  if (!logits.backend.readSync) throw new Error(`ctcGreedyDecode: device '${logits.device}' cannot be read synchronously; use await ctcGreedyDecodeAsync(logits)`);
  const best = noGrad(() => argmax(logits, -1));
  const ids: TypedArray = best.backend.readSync!(best.buffer);
  return collapseCtc(ids, batch, frames, blank, opts.lengths);
}

/** ctcGreedyDecode for any device (the best ids are read with await). */
export async function ctcGreedyDecodeAsync(logits: Tensor, opts: CtcGreedyOptions = {}): Promise<number[][]> {
  const [batch, frames, blank] = checkArgs(logits, opts);
  const best = noGrad(() => argmax(logits, -1));
  return collapseCtc(await best.data(), batch, frames, blank, opts.lengths);
}

// Connectionist temporal classification loss (Graves et al., 2006), as torch.nn.functional.ctc_loss.
//
// The forward (alpha) recursion runs in log space over the 2S+1 extended states (blank, l1, blank, l2, ..., blank), one
// step per frame; the backward pass is the beta recursion, giving each state's posterior occupancy
// gamma_t(s) = exp(alpha_t(s) + beta_t(s) - log p), and the gradient w.r.t. a frame's class is minus the occupancy of
// the states carrying it. Two implementations of the same recursions:
// - 'host' (used wherever the device reads synchronously: cpu, wasm): plain float64 loops over the log-probabilities
//   read from the device. A tensor op per state and frame would cost far more in dispatch than the arithmetic.
// - 'tensor' (any other device): the recursions as tensor ops vectorised over the batch and the states, with a
//   finite "log zero" (-1e30) for unreachable states so that logsumexp and its gradient never meet -inf - -inf.
//
// The gradient is the exact derivative with respect to logProbs. PyTorch's ctc_loss returns exp(logProbs) - gamma
// instead (the gradient with respect to the logits of a log_softmax before it); through log_softmax the two agree.

import { noGrad, record } from '../engine.js';
import { tensor } from '../../tensor/create.js';
import { isFloat, type TypedArray } from '../../tensor/dtype.js';
import { fmtShape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { add, cast, div, exp, ge, logicalAnd, lt, maximum, mul, neg, sub, where } from './elementwise.js';
import { gather } from './indexing.js';
import { narrow, pad, reshape, stack, squeeze, unsqueeze } from './movement.js';
import { logsumexp, mean, sum } from './reduce.js';

export interface CtcLossOptions {
  /** The blank label (default 0). */
  blank?: number;
  /** 'mean' (default: each loss divided by its target length, then averaged over the batch), 'sum' or 'none' ([B]). */
  reduction?: 'mean' | 'sum' | 'none';
  /** Infinite losses (no alignment fits in the input) become 0, with zero gradient (default false). */
  zeroInfinity?: boolean;
  /** Where the recursions run: 'auto' (default: 'host' on devices that read synchronously, else 'tensor'). */
  recursion?: 'auto' | 'host' | 'tensor';
}

/** Log of zero for unreachable states: finite, so that logsumexp and its gradient never see -inf - -inf. */
const LOG_ZERO = -1e30;
/** A log-likelihood below this went through an unreachable state: the loss is infinite. */
const IMPOSSIBLE = -1e29;

const OP = 'ctcLoss';

/** Integer values of a tensor, array or number, read on the host (targets and lengths are small). */
function hostInts(x: Tensor | readonly number[] | number, name: string): Int32Array | number[] {
  if (typeof x === 'number') return [x];
  if (Array.isArray(x)) return x as number[];
  const t = x as Tensor;
  if (isFloat(t.dtype) || t.dtype === 'bool') throw new Error(`${OP}: ${name} must be an integer tensor, got ${t.dtype} ${fmtShape(t.shape)}`);
  if (t.ndim > 1) throw new Error(`${OP}: ${name} must be 1-D, got ${fmtShape(t.shape)}`);
  if (!t.backend.readSync) throw new Error(`${OP}: ${name} on device '${t.device}' cannot be read synchronously; pass it as a number array or a cpu tensor`);
  const v: TypedArray = t.backend.readSync(t.buffer);
  return Int32Array.from(v as ArrayLike<number>);
}

function checkLengths(v: ArrayLike<number>, name: string, batch: number, max: number, maxName: string): void {
  if (v.length !== batch) throw new Error(`${OP}: ${name} has ${v.length} entries for a batch of ${batch}`);
  for (let b = 0; b < batch; b++) {
    const n = v[b]!;
    if (!Number.isInteger(n) || n < 0 || n > max) throw new Error(`${OP}: ${name}[${b}] = ${n} is out of range [0, ${max}] (${maxName})`);
  }
}

interface Plan {
  /** Frames the recursion runs: the longest input. */
  frames: number;
  /** Extended states: 2 * (longest target) + 1. */
  states: number;
  inputLengths: number[];
  /** [B, states]: the class of each extended state. */
  ext: Int32Array;
  /** [B, states]: 0 where the skip s-2 -> s is allowed (a label differing from the one two back), else LOG_ZERO. */
  skip: Float64Array;
  /** [B, states]: alpha before the first frame (the empty prefix in state 0). */
  alphaStart: Float64Array;
  /** [B, 2]: the final states 2S and 2S-1 (S = target length; 0 twice when S = 0). */
  finalIndex: Int32Array;
  /** [B, 2]: LOG_ZERO for the second final state when S = 0. */
  finalPenalty: Float64Array;
}

function plan(targets: ArrayLike<number>, offsets: number[], targetLengths: number[], inputLengths: number[], blank: number, classes: number, targetShape: string): Plan {
  const batch = targetLengths.length;
  const frames = Math.max(0, ...inputLengths);
  const states = 2 * Math.max(0, ...targetLengths) + 1;
  const ext = new Int32Array(batch * states).fill(blank);
  const skip = new Float64Array(batch * states).fill(LOG_ZERO);
  const alphaStart = new Float64Array(batch * states).fill(LOG_ZERO);
  const finalIndex = new Int32Array(batch * 2);
  const finalPenalty = new Float64Array(batch * 2);
  for (let b = 0; b < batch; b++) {
    const n = targetLengths[b]!;
    for (let k = 0; k < n; k++) {
      const c = targets[offsets[b]! + k]!;
      if (!Number.isInteger(c) || c < 0 || c >= classes) throw new Error(`${OP}: target ${c} (sequence ${b}, position ${k}) is out of range [0, ${classes}) for ${classes} classes; targets ${targetShape}`);
      if (c === blank) throw new Error(`${OP}: target ${c} (sequence ${b}, position ${k}) is the blank label; targets ${targetShape}`);
      const s = 2 * k + 1;
      ext[b * states + s] = c;
      if (k > 0 && c !== targets[offsets[b]! + k - 1]) skip[b * states + s] = 0;
    }
    alphaStart[b * states] = 0;
    finalIndex[2 * b] = 2 * n;
    finalIndex[2 * b + 1] = Math.max(0, 2 * n - 1);
    finalPenalty[2 * b + 1] = n === 0 ? LOG_ZERO : 0;
  }
  return { frames, states, inputLengths, ext, skip, alphaStart, finalIndex, finalPenalty };
}

function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

/**
 * log p(target | input) per sequence, from log-probabilities lp [T, B, C] read on the host (float64 arithmetic), recorded
 * with the beta recursion as its backward. Unreachable states hold -inf.
 */
function hostLogLikelihood(lp: Tensor, p: Plan): Tensor {
  const [, batch, classes] = lp.shape as [number, number, number];
  const x = lp.backend.readSync!(lp.buffer);
  const L = p.states;
  const { ext, skip, finalIndex, finalPenalty } = p;
  const at = (t: number, b: number, s: number): number => x[(t * batch + b) * classes + ext[b * L + s]!]!;
  const alpha = new Float64Array(p.frames * batch * L).fill(-Infinity); // [T, B, L]
  const ll = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    const n = p.inputLengths[b]!;
    const twoS = finalIndex[2 * b]!;
    if (n === 0) {
      ll[b] = twoS === 0 ? 0 : -Infinity;
      continue;
    }
    alpha[b * L] = at(0, b, 0);
    if (twoS > 0) alpha[b * L + 1] = at(0, b, 1);
    for (let t = 1; t < n; t++) {
      const prev = ((t - 1) * batch + b) * L, cur = (t * batch + b) * L;
      for (let s = 0; s <= twoS; s++) {
        let a = alpha[prev + s]!;
        if (s >= 1) a = logAddExp(a, alpha[prev + s - 1]!);
        if (skip[b * L + s] === 0) a = logAddExp(a, alpha[prev + s - 2]!);
        alpha[cur + s] = a + at(t, b, s);
      }
    }
    const last = ((n - 1) * batch + b) * L;
    ll[b] = logAddExp(alpha[last + twoS]!, finalPenalty[2 * b + 1] === 0 ? alpha[last + twoS - 1]! : -Infinity);
  }
  const out = tensor(lp.dtype === 'float64' ? ll : Float32Array.from(ll), { device: lp.device, dtype: lp.dtype });

  return record('ctcLoss', out, [lp], [], (g) => {
    const gb = g.backend.readSync!(g.buffer);
    const grad = new Float64Array(lp.numel());
    let beta = new Float64Array(L), next = new Float64Array(L);
    for (let b = 0; b < batch; b++) {
      const n = p.inputLengths[b]!;
      const twoS = finalIndex[2 * b]!;
      if (n === 0 || !Number.isFinite(ll[b]!)) continue; // no alignment: zero gradient (the loss is inf, or 0 by zeroInfinity)
      const scale = gb[b]!;
      beta.fill(-Infinity);
      // beta_t(s): log-probability of the frames after t given state s at t; it starts at 0 in the two final states.
      beta[twoS] = 0;
      if (twoS > 0) beta[twoS - 1] = 0;
      for (let t = n - 1; t >= 0; t--) {
        if (t < n - 1) {
          next.fill(-Infinity);
          for (let s = 0; s <= twoS; s++) {
            let v = beta[s]! + at(t + 1, b, s);
            if (s + 1 <= twoS) v = logAddExp(v, beta[s + 1]! + at(t + 1, b, s + 1));
            if (s + 2 <= twoS && skip[b * L + s + 2] === 0) v = logAddExp(v, beta[s + 2]! + at(t + 1, b, s + 2));
            next[s] = v;
          }
          [beta, next] = [next, beta];
        }
        const row = (t * batch + b) * classes, a = (t * batch + b) * L;
        for (let s = 0; s <= twoS; s++) {
          const occ = alpha[a + s]! + beta[s]! - ll[b]!;
          if (occ > -Infinity) grad[row + ext[b * L + s]!] += scale * Math.exp(occ);
        }
      }
    }
    return [tensor(lp.dtype === 'float64' ? grad : Float32Array.from(grad), { device: lp.device, dtype: lp.dtype, shape: lp.shape })];
  });
}

/** log(exp(a) + exp(b) + exp(c)) elementwise, for finite inputs (unrecorded). */
function logAddExp3(a: Tensor, b: Tensor, c: Tensor): Tensor {
  return logsumexp(stack([a, b, c], -1), -1);
}

/**
 * Per-sequence log-likelihood log p(target | input) from emissions em [T, B, L] (the log-probability of each extended
 * state's class at each frame), recorded with the beta recursion as its backward.
 */
function ctcLogLikelihood(em: Tensor, p: Plan): Tensor {
  const [frames, batch, states] = em.shape as [number, number, number];
  const opts = { device: em.device, dtype: em.dtype };
  const skip = tensor(Float32Array.from(p.skip), { ...opts, shape: [batch, states] });
  const lengths = p.inputLengths;
  const activeAt = (t: number): Tensor | null =>
    lengths.every((n) => t < n) ? null : tensor(lengths.map((n) => t < n), { device: em.device, shape: [batch, 1] });
  const frameOf = (x: Tensor, t: number): Tensor => reshape(narrow(x, 0, t, 1), [batch, states]);

  const { alphas, ll } = noGrad(() => {
    let alpha = tensor(Float32Array.from(p.alphaStart), { ...opts, shape: [batch, states] });
    const alphas: Tensor[] = [];
    for (let t = 0; t < frames; t++) {
      const prev = pad(alpha, [2, 0], LOG_ZERO); // [B, 2 + L]: states s-2 and s-1 of state 0 are unreachable
      const next = add(logAddExp3(alpha, narrow(prev, 1, 1, states), add(narrow(prev, 1, 0, states), skip)), frameOf(em, t));
      const active = activeAt(t);
      alpha = active ? where(active, next, alpha) : next; // finished sequences keep their last alpha
      alphas.push(alpha);
    }
    const ends = gather(alpha, 1, tensor(p.finalIndex, { device: em.device, shape: [batch, 2] }));
    const ll = logsumexp(add(ends, tensor(Float32Array.from(p.finalPenalty), { ...opts, shape: [batch, 2] })), 1);
    return { alphas, ll };
  });

  return record('ctcLoss', ll, [em], [em, ll], (g, [e, l]) => noGrad(() => {
    // beta_t(s): log-probability of the rest of the path after frame t, given state s at t (emission at t excluded).
    const betaEnd = new Float64Array(batch * states).fill(LOG_ZERO);
    for (let b = 0; b < batch; b++) {
      betaEnd[b * states + p.finalIndex[2 * b]!] = 0;
      if (p.finalPenalty[2 * b + 1] === 0) betaEnd[b * states + p.finalIndex[2 * b + 1]!] = 0;
    }
    const end = tensor(Float32Array.from(betaEnd), { ...opts, shape: [batch, states] });
    // skipInto[s] allows s -> s + 2 when the skip into s + 2 is allowed.
    const skipInto = narrow(pad(skip, [0, 2], LOG_ZERO), 1, 2, states);
    const gammas: Tensor[] = new Array<Tensor>(frames);
    let beta = end;
    for (let t = frames - 1; t >= 0; t--) {
      if (t < frames - 1) {
        const u = add(beta, frameOf(e!, t + 1));
        const after = pad(u, [0, 2], LOG_ZERO);
        const next = logAddExp3(u, narrow(after, 1, 1, states), add(narrow(after, 1, 2, states), skipInto));
        const last = lengths.every((n) => t !== n - 1 && t < n) ? null : tensor(lengths.map((n) => t >= n - 1), { device: e!.device, shape: [batch, 1] });
        beta = last ? where(last, end, next) : next; // frame n-1 of a sequence starts its recursion
      }
      gammas[t] = add(alphas[t]!, beta);
    }
    // gamma = exp(alpha + beta - log p), zero after each sequence's end and for sequences with no alignment.
    const possible = reshape(ge(l!, IMPOSSIBLE), [1, batch, 1]);
    const inside = tensor(Array.from({ length: frames * batch }, (_, i) => Math.floor(i / batch) < lengths[i % batch]!), { device: e!.device, shape: [frames, batch, 1] });
    const occupancy = exp(sub(stack(gammas, 0), reshape(l!, [1, batch, 1]))); // [T, B, L]
    return [where(logicalAnd(inside, possible), mul(occupancy, reshape(g, [1, batch, 1])), 0)];
  }));
}

/**
 * CTC loss of log-probabilities [T, B, C] (or [T, C] unbatched) against targets: [B, S] padded or 1-D concatenated
 * (as PyTorch). Lengths are tensors or number arrays. A target that no alignment fits gives an infinite loss (0 with
 * zeroInfinity), not an error.
 */
export function ctcLoss(
  logProbs: Tensor,
  targets: Tensor,
  inputLengths: Tensor | readonly number[] | number,
  targetLengths: Tensor | readonly number[] | number,
  opts: CtcLossOptions = {},
): Tensor {
  const { blank = 0, reduction = 'mean', zeroInfinity = false, recursion = 'auto' } = opts;
  if (!isFloat(logProbs.dtype)) throw new Error(`${OP}: logProbs must be floating point, got ${logProbs.dtype} ${fmtShape(logProbs.shape)}`);
  if (logProbs.ndim !== 3 && logProbs.ndim !== 2) throw new Error(`${OP}: logProbs must be [T, B, C] (or [T, C] unbatched), got ${fmtShape(logProbs.shape)}`);
  if (reduction !== 'mean' && reduction !== 'sum' && reduction !== 'none') throw new Error(`${OP}: reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(reduction)}`);
  if (recursion !== 'auto' && recursion !== 'host' && recursion !== 'tensor') throw new Error(`${OP}: recursion must be 'auto', 'host' or 'tensor', got ${JSON.stringify(recursion)}`);
  if (recursion === 'host' && !logProbs.backend.readSync) throw new Error(`${OP}: recursion 'host' needs a device that reads synchronously, not '${logProbs.device}'`);
  if (isFloat(targets.dtype) || targets.dtype === 'bool') throw new Error(`${OP}: targets must be an integer tensor, got ${targets.dtype} ${fmtShape(targets.shape)}`);
  const unbatched = logProbs.ndim === 2;
  const lp3 = unbatched ? unsqueeze(logProbs, 1) : logProbs;
  const [frames, batch, classes] = lp3.shape as [number, number, number];
  if (!Number.isInteger(blank) || blank < 0 || blank >= classes) throw new Error(`${OP}: blank ${blank} is out of range [0, ${classes}) for logProbs ${fmtShape(logProbs.shape)}`);
  if (unbatched && targets.ndim !== 1) throw new Error(`${OP}: unbatched logProbs ${fmtShape(logProbs.shape)} need 1-D targets, got ${fmtShape(targets.shape)}`);
  if (targets.ndim !== 1 && targets.ndim !== 2) throw new Error(`${OP}: targets must be [B, S] padded or 1-D concatenated, got ${fmtShape(targets.shape)}`);
  if (targets.ndim === 2 && targets.shape[0] !== batch) throw new Error(`${OP}: targets ${fmtShape(targets.shape)} do not match the batch of logProbs ${fmtShape(logProbs.shape)} ([T, B, C])`);

  const il = Array.from(hostInts(inputLengths, 'inputLengths'));
  const tl = Array.from(hostInts(targetLengths, 'targetLengths'));
  checkLengths(il, 'inputLengths', batch, frames, `T of logProbs ${fmtShape(logProbs.shape)}`);
  const padded = targets.ndim === 2 && !unbatched;
  const width = padded ? targets.shape[1]! : targets.numel();
  checkLengths(tl, 'targetLengths', batch, width, padded ? `S of targets ${fmtShape(targets.shape)}` : `targets ${fmtShape(targets.shape)}`);
  const offsets: number[] = [];
  let total = 0;
  for (let b = 0; b < batch; b++) {
    offsets.push(padded ? b * width : total);
    total += tl[b]!;
  }
  if (!padded && total !== width) throw new Error(`${OP}: 1-D targets ${fmtShape(targets.shape)} hold ${width} labels but targetLengths add up to ${total}`);
  const targetValues = hostInts(reshape(targets, [targets.numel()]), 'targets');

  const p = plan(targetValues, offsets, tl, il, blank, classes, fmtShape(targets.shape));
  // Half-precision inputs are computed in float32 (as every op here).
  const lp = logProbs.dtype === 'float64' ? lp3 : cast(lp3, 'float32');
  let ll: Tensor;
  if (p.frames === 0) {
    ll = tensor(Array.from({ length: batch }, (_, b) => (tl[b] === 0 ? 0 : 2 * LOG_ZERO)), { device: lp.device, dtype: lp.dtype });
  } else if (recursion === 'host' || (recursion === 'auto' && lp.backend.readSync)) {
    ll = hostLogLikelihood(lp, p);
  } else {
    const index = tensor(p.ext, { device: lp.device, shape: [1, batch, p.states] }).expand([p.frames, batch, p.states]);
    // Emissions of each extended state, [T, B, L]; -inf log-probabilities become LOG_ZERO (an unreachable path).
    const em = maximum(gather(narrow(lp, 0, 0, p.frames), 2, index), LOG_ZERO);
    ll = ctcLogLikelihood(em, p);
  }
  const impossible = lt(ll, IMPOSSIBLE);
  let loss = where(impossible, zeroInfinity ? 0 : Infinity, neg(ll)); // [B]
  if (reduction === 'none') return unbatched ? squeeze(loss, 0) : loss;
  if (reduction === 'sum') return sum(loss);
  loss = div(loss, tensor(tl.map((n) => Math.max(n, 1)), { device: lp.device, dtype: lp.dtype }));
  return mean(loss);
}

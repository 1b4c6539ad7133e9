// Recurrent layers as torch.nn: RNN (tanh / relu), LSTM and GRU stacks and their one-step cells, with torch's parameter names.

import { add, gt, mul, relu, sigmoid, sub, tanh, where } from '../autograd/ops/elementwise.js';
import { linear } from '../autograd/ops/matmul.js';
import { cat, narrow, reshape, select, split, squeeze, stack, transpose, unsqueeze } from '../autograd/ops/movement.js';
import { zeros } from '../tensor/create.js';
import { isFloat } from '../tensor/dtype.js';
import { fmtShape, shapeEq, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { dropout } from './functional.js';
import { uniform_ } from './init.js';
import { Module, Parameter } from './module.js';

type Mode = 'rnn_tanh' | 'rnn_relu' | 'lstm' | 'gru';

/** Rows of W_ih per hidden unit: one block per gate (LSTM i, f, g, o; GRU r, z, n). */
const GATES: Record<Mode, number> = { rnn_tanh: 1, rnn_relu: 1, lstm: 4, gru: 3 };

interface CellWeights {
  wIh: Parameter;
  wHh: Parameter;
  bIh: Parameter | null;
  bHh: Parameter | null;
}

/**
 * One time step from xp = x W_ih^T + b_ih [B, G*H] (computed for all steps at once by the caller) and the
 * previous state h, c [B, H]; returns the new h and, for the LSTM, the new c.
 */
function step(mode: Mode, xp: Tensor, h: Tensor, c: Tensor | null, w: CellWeights): [Tensor, Tensor | null] {
  const H = h.shape[1]!;
  const hp = linear(h, w.wHh, w.bHh); // [B, G*H]
  switch (mode) {
    case 'rnn_tanh':
      return [tanh(add(xp, hp)), null];
    case 'rnn_relu':
      return [relu(add(xp, hp)), null];
    case 'lstm': {
      const g = add(xp, hp);
      const s = sigmoid(g); // one kernel for the i, f and o gates (the g block of it goes unused)
      const c2 = add(mul(narrow(s, 1, H, H), c!), mul(narrow(s, 1, 0, H), tanh(narrow(g, 1, 2 * H, H))));
      return [mul(narrow(s, 1, 3 * H, H), tanh(c2)), c2];
    }
    case 'gru': {
      const rz = sigmoid(add(narrow(xp, 1, 0, 2 * H), narrow(hp, 1, 0, 2 * H))); // [B, 2H]: r then z
      const n = tanh(add(narrow(xp, 1, 2 * H, H), mul(narrow(rz, 1, 0, H), narrow(hp, 1, 2 * H, H))));
      return [add(n, mul(narrow(rz, 1, H, H), sub(h, n))), null]; // (1 - z) * n + z * h
    }
  }
}

/**
 * The T time steps of x [T, ...] as separate tensors. A slice's backward writes a zero tensor the size of its
 * source, so slicing chunks of about sqrt(T) steps first keeps the backward at O(T^1.5) copies instead of O(T^2).
 */
function timeSteps(x: Tensor): Tensor[] {
  const chunk = Math.ceil(Math.sqrt(x.shape[0]!));
  return split(x, chunk, 0).flatMap((piece) => Array.from({ length: piece.shape[0]! }, (_, i) => select(piece, 0, i)));
}

/** U(-1/sqrt(H), 1/sqrt(H)), torch's init for every recurrent weight and bias. */
function recurrentParam(shape: Shape, hiddenSize: number, device: string | undefined): Parameter {
  const k = 1 / Math.sqrt(hiddenSize);
  return new Parameter(uniform_(zeros(shape, { device }), -k, k));
}

function checkSizes(layer: string, inputSize: number, hiddenSize: number): void {
  if (!Number.isInteger(inputSize) || inputSize <= 0 || !Number.isInteger(hiddenSize) || hiddenSize <= 0) {
    throw new Error(`${layer}: inputSize and hiddenSize must be positive integers, got ${inputSize} and ${hiddenSize}`);
  }
}

function checkState(layer: string, what: string, t: Tensor | null | undefined, expected: Shape, input: Tensor): void {
  if (t && !shapeEq(t.shape, expected)) {
    throw new Error(`${layer}: ${what} must be ${fmtShape(expected)} for input ${fmtShape(input.shape)}, got ${fmtShape(t.shape)}`);
  }
}

export interface RNNOptions {
  numLayers?: number;
  /** Learn bias_ih and bias_hh (default true). */
  bias?: boolean;
  /** Input and output are [B, T, C] instead of [T, B, C]; the states stay [numLayers * D, B, H]. */
  batchFirst?: boolean;
  /** Dropout on the outputs of every layer but the last, while training. */
  dropout?: number;
  bidirectional?: boolean;
  device?: string;
}

export interface RNNCallOptions {
  /**
   * Valid length of each sequence of a padded batch, an integer tensor [B] with values in 1..T. Steps past a
   * sequence's end leave its state unchanged and output zeros, so hN and cN are the states at its last valid step
   * (the reverse direction starts there), as with torch's packed sequences.
   */
  lengths?: Tensor | null;
}

export interface RNNResult {
  /** [T, B, D * H] ([B, T, D * H] with batchFirst; [T, D * H] for an unbatched input). */
  output: Tensor;
  /** Final hidden state of every layer and direction: [numLayers * D, B, H] ([numLayers * D, H] unbatched). */
  hN: Tensor;
}

export interface LSTMResult extends RNNResult {
  /** Final cell state, shaped like hN. */
  cN: Tensor;
}

/** The stacked, optionally bidirectional recurrence shared by RNN, LSTM and GRU. */
abstract class RNNBase extends Module {
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly dropout: number;
  readonly bidirectional: boolean;
  /** Weights per layer and direction, index layer * D + direction (the same Parameters as the named properties). */
  readonly #cells: CellWeights[] = [];

  protected constructor(protected readonly layerName: string, protected readonly mode: Mode, readonly inputSize: number, readonly hiddenSize: number, opts: RNNOptions) {
    super();
    checkSizes(layerName, inputSize, hiddenSize);
    this.numLayers = opts.numLayers ?? 1;
    this.bias = opts.bias ?? true;
    this.batchFirst = opts.batchFirst ?? false;
    this.dropout = opts.dropout ?? 0;
    this.bidirectional = opts.bidirectional ?? false;
    if (!Number.isInteger(this.numLayers) || this.numLayers < 1) throw new Error(`${layerName}: numLayers must be a positive integer, got ${this.numLayers}`);
    if (!(this.dropout >= 0 && this.dropout <= 1)) throw new Error(`${layerName}: dropout must be in [0, 1], got ${this.dropout}`);
    const G = GATES[mode], H = hiddenSize, D = this.numDirections;
    const param = (name: string, shape: Shape): Parameter => {
      const p = recurrentParam(shape, H, opts.device);
      Reflect.set(this, name, p); // torch's names are built from the layer index, so the properties are made here
      return p;
    };
    for (let l = 0; l < this.numLayers; l++) {
      for (let d = 0; d < D; d++) {
        const sfx = `_l${l}${d === 1 ? '_reverse' : ''}`;
        const wIh = param(`weight_ih${sfx}`, [G * H, l === 0 ? inputSize : D * H]);
        const wHh = param(`weight_hh${sfx}`, [G * H, H]);
        const bIh = this.bias ? param(`bias_ih${sfx}`, [G * H]) : null;
        const bHh = this.bias ? param(`bias_hh${sfx}`, [G * H]) : null;
        this.#cells.push({ wIh, wHh, bIh, bHh });
      }
    }
  }

  get numDirections(): number {
    return this.bidirectional ? 2 : 1;
  }

  /** Runs every layer and direction over the sequence; c0 and cN only for the LSTM. */
  protected run(input: Tensor, h0: Tensor | null, c0: Tensor | null, opts: RNNCallOptions): { output: Tensor; hN: Tensor; cN: Tensor | null } {
    const name = this.layerName, H = this.hiddenSize, D = this.numDirections, L = this.numLayers;
    const lstm = this.mode === 'lstm';
    if ((input.ndim !== 2 && input.ndim !== 3) || input.shape[input.ndim - 1] !== this.inputSize || !isFloat(input.dtype)) {
      const layout = this.batchFirst ? '[B, T, C]' : '[T, B, C]';
      throw new Error(`${name}: expected a float input ${layout} or [T, C] with C = inputSize ${this.inputSize}, got ${fmtShape(input.shape)} ${input.dtype}`);
    }
    const batched = input.ndim === 3;
    // [T, C] -> [T, 1, C]; [B, T, C] -> [T, B, C]
    let x = !batched ? unsqueeze(input, 1) : this.batchFirst ? transpose(input, 0, 1) : input;
    const T = x.shape[0]!, B = x.shape[1]!;
    const stateShape = batched ? [L * D, B, H] : [L * D, H];
    checkState(name, lstm ? 'h0' : 'hx', h0, stateShape, input);
    checkState(name, 'c0', c0, stateShape, input);
    const lengths = opts.lengths ?? null;
    if (lengths && (lengths.ndim !== 1 || lengths.shape[0] !== B || isFloat(lengths.dtype) || lengths.dtype === 'bool')) {
      throw new Error(`${name}: lengths must be an integer tensor [B] = [${B}] for input ${fmtShape(input.shape)}, got ${fmtShape(lengths.shape)} ${lengths.dtype}`);
    }
    // [B, 1] per step: true while step t is inside the sequence.
    const masks = lengths ? Array.from({ length: T }, (_, t) => reshape(gt(lengths, t), [B, 1])) : null;
    // [L*D, B, H] (or [L*D, H] unbatched) -> [B, H] of layer-direction k; zeros when no state is given
    const initial = (s: Tensor | null, k: number) => (s ? select(batched ? s : unsqueeze(s, 1), 0, k) : zeros([B, H], { dtype: x.dtype, device: x.device }));
    const hs: Tensor[] = [], cs: Tensor[] = [];
    for (let l = 0; l < L; l++) {
      const dirs: Tensor[] = [];
      for (let d = 0; d < D; d++) {
        const w = this.#cells[l * D + d]!;
        const xp = timeSteps(linear(x, w.wIh, w.bIh)); // T x [B, G*H]: the input projection of every step in one product
        let h = initial(h0, l * D + d);
        let c = lstm ? initial(c0, l * D + d) : null;
        const outs: Tensor[] = new Array<Tensor>(T);
        for (let i = 0; i < T; i++) {
          const t = d === 1 ? T - 1 - i : i;
          let [hNext, cNext] = step(this.mode, xp[t]!, h, c, w);
          const m = masks?.[t];
          if (m) {
            hNext = where(m, hNext, h);
            if (cNext && c) cNext = where(m, cNext, c);
          }
          outs[t] = m ? where(m, hNext, 0) : hNext;
          h = hNext;
          c = cNext;
        }
        dirs.push(stack(outs, 0)); // [T, B, H]
        hs.push(h);
        if (c) cs.push(c);
      }
      x = D === 2 ? cat(dirs, 2) : dirs[0]!; // [T, B, D*H]
      if (l < L - 1 && this.training && this.dropout > 0) x = dropout(x, this.dropout, true);
    }
    const finish = (s: Tensor) => (batched ? s : squeeze(s, 1)); // [L*D, B, H], or [L*D, H] unbatched
    // [T, B, D*H] -> [B, T, D*H] with batchFirst, [T, D*H] unbatched
    const output = !batched ? squeeze(x, 1) : this.batchFirst ? transpose(x, 0, 1) : x;
    return { output, hN: finish(stack(hs, 0)), cN: lstm ? finish(stack(cs, 0)) : null };
  }
}

export interface RNNLayerOptions extends RNNOptions {
  nonlinearity?: 'tanh' | 'relu';
}

/** Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh (default) or relu. */
export class RNN extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNLayerOptions = {}) {
    const nl = opts.nonlinearity ?? 'tanh';
    if (nl !== 'tanh' && nl !== 'relu') throw new Error(`RNN: nonlinearity must be 'tanh' or 'relu', got '${String(nl)}'`);
    super('RNN', nl === 'tanh' ? 'rnn_tanh' : 'rnn_relu', inputSize, hiddenSize, opts);
  }

  /** input [T, B, C] ([B, T, C] with batchFirst, or [T, C]); hx [numLayers * D, B, H], zeros if omitted. */
  forward(input: Tensor, hx: Tensor | null = null, opts: RNNCallOptions = {}): RNNResult {
    const { output, hN } = this.run(input, hx, null, opts);
    return { output, hN };
  }
}

/** LSTM with torch's gate order i, f, g, o in weight_ih_l{k} [4H, C] and weight_hh_l{k} [4H, H]. */
export class LSTM extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNOptions = {}) {
    super('LSTM', 'lstm', inputSize, hiddenSize, opts);
  }

  /** input [T, B, C] ([B, T, C] with batchFirst, or [T, C]); hx = [h0, c0], each [numLayers * D, B, H], zeros if omitted. */
  forward(input: Tensor, hx: readonly [Tensor, Tensor] | null = null, opts: RNNCallOptions = {}): LSTMResult {
    const { output, hN, cN } = this.run(input, hx?.[0] ?? null, hx?.[1] ?? null, opts);
    return { output, hN, cN: cN! };
  }
}

/** GRU with torch's gate order r, z, n and n = tanh(W_in x + b_in + r * (W_hn h + b_hn)). */
export class GRU extends RNNBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNOptions = {}) {
    super('GRU', 'gru', inputSize, hiddenSize, opts);
  }

  /** input [T, B, C] ([B, T, C] with batchFirst, or [T, C]); hx [numLayers * D, B, H], zeros if omitted. */
  forward(input: Tensor, hx: Tensor | null = null, opts: RNNCallOptions = {}): RNNResult {
    const { output, hN } = this.run(input, hx, null, opts);
    return { output, hN };
  }
}

export interface RNNCellOptions {
  bias?: boolean;
  device?: string;
}

/** One step of a recurrence, for loops written by hand: weight_ih [G*H, C], weight_hh [G*H, H], bias_ih, bias_hh [G*H]. */
abstract class CellBase extends Module {
  weight_ih: Parameter;
  weight_hh: Parameter;
  bias_ih: Parameter | null;
  bias_hh: Parameter | null;

  protected constructor(protected readonly layerName: string, protected readonly mode: Mode, readonly inputSize: number, readonly hiddenSize: number, opts: RNNCellOptions) {
    super();
    checkSizes(layerName, inputSize, hiddenSize);
    const G = GATES[mode], H = hiddenSize;
    this.weight_ih = recurrentParam([G * H, inputSize], H, opts.device);
    this.weight_hh = recurrentParam([G * H, H], H, opts.device);
    this.bias_ih = opts.bias === false ? null : recurrentParam([G * H], H, opts.device);
    this.bias_hh = opts.bias === false ? null : recurrentParam([G * H], H, opts.device);
  }

  /** input [B, C] or [C]; h and c [B, H] or [H] (zeros if omitted). Returns the new h and, for the LSTM, c. */
  protected cell(input: Tensor, h: Tensor | null, c: Tensor | null): [Tensor, Tensor | null] {
    const name = this.layerName, H = this.hiddenSize;
    if ((input.ndim !== 1 && input.ndim !== 2) || input.shape[input.ndim - 1] !== this.inputSize || !isFloat(input.dtype)) {
      throw new Error(`${name}: expected a float input [B, C] or [C] with C = inputSize ${this.inputSize}, got ${fmtShape(input.shape)} ${input.dtype}`);
    }
    const batched = input.ndim === 2;
    const x = batched ? input : unsqueeze(input, 0); // [B, C]
    const B = x.shape[0]!;
    const stateShape = batched ? [B, H] : [H];
    checkState(name, 'h', h, stateShape, input);
    checkState(name, 'c', c, stateShape, input);
    const state = (s: Tensor | null) => (s ? (batched ? s : unsqueeze(s, 0)) : zeros([B, H], { dtype: x.dtype, device: x.device })); // [B, H]
    const w: CellWeights = { wIh: this.weight_ih, wHh: this.weight_hh, bIh: this.bias_ih, bHh: this.bias_hh };
    const [h2, c2] = step(this.mode, linear(x, w.wIh, w.bIh), state(h), this.mode === 'lstm' ? state(c) : null, w);
    const finish = (s: Tensor) => (batched ? s : squeeze(s, 0));
    return [finish(h2), c2 && finish(c2)];
  }
}

export class RNNCell extends CellBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNCellOptions & { nonlinearity?: 'tanh' | 'relu' } = {}) {
    const nl = opts.nonlinearity ?? 'tanh';
    if (nl !== 'tanh' && nl !== 'relu') throw new Error(`RNNCell: nonlinearity must be 'tanh' or 'relu', got '${String(nl)}'`);
    super('RNNCell', nl === 'tanh' ? 'rnn_tanh' : 'rnn_relu', inputSize, hiddenSize, opts);
  }

  /** The next hidden state [B, H] from input [B, C] and hx [B, H] (or unbatched [C], [H]). */
  forward(input: Tensor, hx: Tensor | null = null): Tensor {
    return this.cell(input, hx, null)[0];
  }
}

export class LSTMCell extends CellBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNCellOptions = {}) {
    super('LSTMCell', 'lstm', inputSize, hiddenSize, opts);
  }

  /** The next [h, c], each [B, H], from input [B, C] and hx = [h, c] (or unbatched [C], [H]). */
  forward(input: Tensor, hx: readonly [Tensor, Tensor] | null = null): [Tensor, Tensor] {
    const [h, c] = this.cell(input, hx?.[0] ?? null, hx?.[1] ?? null);
    return [h, c!];
  }
}

export class GRUCell extends CellBase {
  constructor(inputSize: number, hiddenSize: number, opts: RNNCellOptions = {}) {
    super('GRUCell', 'gru', inputSize, hiddenSize, opts);
  }

  /** The next hidden state [B, H] from input [B, C] and hx [B, H] (or unbatched [C], [H]). */
  forward(input: Tensor, hx: Tensor | null = null): Tensor {
    return this.cell(input, hx, null)[0];
  }
}

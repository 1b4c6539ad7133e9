// Toy tasks that an MLP, an LSTM and a 2-layer causal transformer must learn, each to a stated loss bound (CPU, fixed seeds).

import { describe, expect, test } from 'vitest';
import '../index.js';
import { add } from '../autograd/ops/elementwise.js';
import { cat, flip, reshape, select, slice } from '../autograd/ops/movement.js';
import { argmax } from '../autograd/ops/reduce.js';
import { Adam } from '../optim/adam.js';
import { clipGradNorm } from '../optim/clip.js';
import { arange, full, randint, tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { ReLU } from './activation.js';
import { Sequential } from './container.js';
import { Embedding } from './embedding.js';
import { crossEntropy } from './functional.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import { LayerNorm } from './normalization.js';
import { LSTM } from './rnn.js';
import { TransformerEncoder, TransformerEncoderLayer } from './transformer.js';

/** Runs `steps` Adam steps (gradient norm clipped to 1) on `loss`, each in its own tidy scope; returns every step's loss. */
function train(model: Module, steps: number, lr: number, loss: () => Tensor): number[] {
  const params = model.parameters();
  const opt = new Adam(params, { lr });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    losses.push(tidy(() => {
      const l = loss();
      l.backward();
      clipGradNorm(params, 1);
      opt.step();
      opt.zeroGrad();
      return l.dataSync()[0]!;
    }));
  }
  return losses;
}

/** Loss and the fraction of rows whose argmax over the last dimension equals the target, for logits [N, C], targets [N]. */
function evaluate(logits: Tensor, target: Tensor): { loss: number; accuracy: number } {
  const pred = argmax(logits, -1).dataSync(), t = target.dataSync();
  let ok = 0;
  for (let i = 0; i < t.length; i++) if (pred[i] === t[i]) ok++;
  return { loss: crossEntropy(logits, target).dataSync()[0]!, accuracy: ok / t.length };
}

/** Embedding -> LSTM -> Linear on the last hidden state: [B, T] token ids -> [B, V] logits. */
class RecallFirst extends Module {
  embed: Embedding;
  lstm: LSTM;
  head: Linear;
  constructor(vocab: number, embedDim: number, hidden: number) {
    super();
    this.embed = new Embedding(vocab, embedDim);
    this.lstm = new LSTM(embedDim, hidden, { batchFirst: true });
    this.head = new Linear(hidden, vocab);
  }
  forward(ids: Tensor): Tensor {
    return this.head.forward(select(this.lstm.forward(this.embed.forward(ids)).hN, 0, 0)); // hN [1, B, H] -> [B, H]
  }
}

/** A 2-layer pre-norm causal transformer language model: token + learned position embeddings, [B, T] ids -> [B, T, V] logits. */
class TinyLM extends Module {
  tok: Embedding;
  pos: Embedding;
  encoder: TransformerEncoder;
  norm: LayerNorm;
  head: Linear;
  constructor(vocab: number, context: number, dModel: number, heads: number) {
    super();
    this.tok = new Embedding(vocab, dModel);
    this.pos = new Embedding(context, dModel);
    this.encoder = new TransformerEncoder(() => new TransformerEncoderLayer(dModel, heads, { dimFeedforward: 2 * dModel, dropout: 0, normFirst: true }), 2);
    this.norm = new LayerNorm(dModel);
    this.head = new Linear(dModel, vocab);
  }
  forward(ids: Tensor): Tensor {
    const h = add(this.tok.forward(ids), this.pos.forward(arange(ids.shape[1]!, undefined, 1, { dtype: 'int32' }))); // [B, T, C]
    return this.head.forward(this.norm.forward(this.encoder.forward(h, { isCausal: true })));
  }
}

describe('toy tasks learned on the CPU', () => {
  test('an MLP separates two interleaved spirals: loss < 0.05 and 100% accuracy within 200 steps', () => {
    manualSeed(0);
    const N = 100, xy: number[] = [], labels: number[] = [];
    for (let c = 0; c < 2; c++) {
      for (let i = 0; i < N; i++) {
        const r = 0.1 + (i / N) * 0.9, a = 3 * Math.PI * (i / N) + c * Math.PI; // 1.5 turns each, the second rotated by pi
        xy.push(r * Math.cos(a), r * Math.sin(a));
        labels.push(c);
      }
    }
    const x = tensor(xy, { shape: [2 * N, 2] }), y = tensor(labels, { dtype: 'int32' });
    const mlp = new Sequential(new Linear(2, 64), new ReLU(), new Linear(64, 64), new ReLU(), new Linear(64, 2));
    const losses = train(mlp, 200, 0.01, () => crossEntropy(mlp.forward(x), y));
    expect(losses[0]).toBeGreaterThan(0.6); // starts at chance (ln 2)
    const r = tidy(() => evaluate(mlp.forward(x), y));
    expect(r.loss).toBeLessThan(0.05);
    expect(r.accuracy).toBe(1);
  });

  test('an LSTM recalls the first of 8 tokens: held-out loss < 0.05 and 100% accuracy within 300 steps', () => {
    manualSeed(1);
    const data = new Generator(11);
    const V = 4, T = 8;
    const model = new RecallFirst(V, 8, 16);
    const batch = (B: number) => {
      const ids = randint(0, V, [B, T], { generator: data, dtype: 'int32' });
      return { ids, first: reshape(slice(ids, 1, 0, 1), [B]) }; // [B, 1] -> [B]
    };
    const losses = train(model, 300, 0.005, () => { const { ids, first } = batch(32); return crossEntropy(model.forward(ids), first); });
    expect(losses[0]).toBeGreaterThan(1.2); // chance is ln 4 = 1.39
    const r = tidy(() => { const { ids, first } = batch(512); return evaluate(model.forward(ids), first); });
    expect(r.loss).toBeLessThan(0.05);
    expect(r.accuracy).toBe(1);
  });

  test('a 2-layer causal transformer reverses 5 digits after a separator: held-out loss < 0.05 and token accuracy >= 99% within 120 steps', () => {
    manualSeed(0);
    const data = new Generator(10);
    const N = 5, SEP = 10, V = 11, L = 2 * N + 1; // digits 0..9 and the separator; x, SEP, reversed x
    const model = new TinyLM(V, L - 1, 32, 2);
    const batch = (B: number) => {
      const x = randint(0, 10, [B, N], { generator: data, dtype: 'int32' });
      const seq = cat([x, full([B, 1], SEP, { dtype: 'int32' }), flip(x, [1])], 1); // [B, L]
      return { input: slice(seq, 1, 0, L - 1), target: reshape(slice(seq, 1, N + 1, L), [-1]) }; // [B, L-1]; [B*N] reversed digits
    };
    // Only the reversed half is predictable: the logits at positions N..L-2 (SEP and after) predict it.
    const logits = (input: Tensor) => reshape(slice(model.forward(input), 1, N, L - 1), [-1, V]); // [B, N, V] -> [B*N, V]
    const losses = train(model, 120, 0.005, () => { const { input, target } = batch(16); return crossEntropy(logits(input), target); });
    expect(losses[0]).toBeGreaterThan(2); // chance is ln 11 = 2.4
    const r = tidy(() => { const { input, target } = batch(512); return evaluate(logits(input), target); });
    expect(r.loss).toBeLessThan(0.05);
    expect(r.accuracy).toBeGreaterThanOrEqual(0.99);
  });
});

// RNN, LSTM, GRU and their cells against torch.nn (same state dict -> same outputs, final states and gradients).

import { describe, expect, test } from 'vitest';
import '../index.js';
import { cat, reshape } from '../autograd/ops/movement.js';
import { listDevices } from '../tensor/backend.js';
import { randn, tensor } from '../tensor/create.js';
import { checkLayer } from '../test-util/nn-fixtures.js';
import { GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell } from './rnn.js';
import type { Tensor } from '../tensor/tensor.js';

const I = 3, H = 4;
/** Output and final states in one vector, as the fixture script concatenates them. */
const flat = (...ts: Tensor[]) => cat(ts.map((t) => reshape(t, [-1])), 0);
const F = 'rnn_conv.json';

for (const device of listDevices()) {
  describe(`recurrent layers on ${device} match torch.nn`, () => {
    test('RNN, tanh, 2 layers, with h0', async () => {
      const m = new RNN(I, H, { numLayers: 2 });
      await checkLayer(F, 'rnn_tanh_2layer', m, (x, h) => { const r = m.forward(x!, h); return flat(r.output, r.hN); }, device);
    });
    test('RNN, relu, batchFirst, no bias', async () => {
      const m = new RNN(I, H, { nonlinearity: 'relu', bias: false, batchFirst: true });
      await checkLayer(F, 'rnn_relu_batch_first_nobias', m, (x) => { const r = m.forward(x!); return flat(r.output, r.hN); }, device);
    });
    test('LSTM, 1 layer, batchFirst', async () => {
      const m = new LSTM(I, H, { batchFirst: true });
      await checkLayer(F, 'lstm_batch_first', m, (x) => { const r = m.forward(x!); return flat(r.output, r.hN, r.cN); }, device);
    });
    test('LSTM, 2 layers, bidirectional, with (h0, c0)', async () => {
      const m = new LSTM(I, H, { numLayers: 2, bidirectional: true });
      await checkLayer(F, 'lstm_2layer_bidir_h0c0', m, (x, h, c) => { const r = m.forward(x!, [h!, c!]); return flat(r.output, r.hN, r.cN); }, device);
    });
    test('LSTM, unbatched input [T, C]', async () => {
      const m = new LSTM(I, H);
      await checkLayer(F, 'lstm_unbatched', m, (x) => { const r = m.forward(x!); return flat(r.output, r.hN, r.cN); }, device);
    });
    test('GRU, bidirectional, with h0', async () => {
      const m = new GRU(I, H, { bidirectional: true });
      await checkLayer(F, 'gru_bidir', m, (x, h) => { const r = m.forward(x!, h); return flat(r.output, r.hN); }, device);
    });
    test('LSTM, bidirectional, padded batch with lengths = packed sequence', async () => {
      const m = new LSTM(I, H, { bidirectional: true });
      await checkLayer(F, 'lstm_bidir_lengths', m, (x, len) => { const r = m.forward(x!, null, { lengths: len }); return flat(r.output, r.hN, r.cN); }, device);
    });
    test('GRU, 2 layers, batchFirst, padded batch with lengths = packed sequence', async () => {
      const m = new GRU(I, H, { numLayers: 2, batchFirst: true });
      await checkLayer(F, 'gru_2layer_batch_first_lengths', m, (x, len) => { const r = m.forward(x!, null, { lengths: len }); return flat(r.output, r.hN); }, device);
    });
    test('RNNCell, relu', async () => {
      const m = new RNNCell(I, H, { nonlinearity: 'relu' });
      await checkLayer(F, 'rnn_cell_relu', m, (x, h) => m.forward(x!, h), device);
    });
    test('LSTMCell', async () => {
      const m = new LSTMCell(I, H);
      await checkLayer(F, 'lstm_cell', m, (x, h, c) => flat(...m.forward(x!, [h!, c!])), device);
    });
    test('GRUCell', async () => {
      const m = new GRUCell(I, H);
      await checkLayer(F, 'gru_cell', m, (x, h) => m.forward(x!, h), device);
    });
    test('GRUCell, unbatched, zero initial state', async () => {
      const m = new GRUCell(I, H);
      await checkLayer(F, 'gru_cell_unbatched_no_state', m, (x) => m.forward(x!), device);
    });
  });
}

describe('recurrent layer details', () => {
  test('parameter names, shapes and order are torch\'s', () => {
    const m = new LSTM(3, 4, { numLayers: 2, bidirectional: true });
    expect(m.namedParameters().map(([n, p]) => `${n} ${p.shape.join('x')}`)).toEqual([
      'weight_ih_l0 16x3', 'weight_hh_l0 16x4', 'bias_ih_l0 16', 'bias_hh_l0 16',
      'weight_ih_l0_reverse 16x3', 'weight_hh_l0_reverse 16x4', 'bias_ih_l0_reverse 16', 'bias_hh_l0_reverse 16',
      'weight_ih_l1 16x8', 'weight_hh_l1 16x4', 'bias_ih_l1 16', 'bias_hh_l1 16',
      'weight_ih_l1_reverse 16x8', 'weight_hh_l1_reverse 16x4', 'bias_ih_l1_reverse 16', 'bias_hh_l1_reverse 16',
    ]);
    expect(Object.keys(new GRU(3, 5, { bias: false }).stateDict())).toEqual(['weight_ih_l0', 'weight_hh_l0']);
    expect(new GRUCell(3, 5).namedParameters().map(([n, p]) => `${n} ${p.shape.join('x')}`)).toEqual(['weight_ih 15x3', 'weight_hh 15x5', 'bias_ih 15', 'bias_hh 15']);
  });
  test('init is U(-1/sqrt(H), 1/sqrt(H))', async () => {
    const m = new RNN(8, 16);
    for (const p of m.parameters()) {
      const v = await p.data();
      expect(Math.max(...v.map(Math.abs))).toBeLessThanOrEqual(0.25);
      expect(Math.max(...v.map(Math.abs))).toBeGreaterThan(0.2);
    }
  });
  test('output and state shapes', () => {
    const m = new GRU(3, 4, { numLayers: 3, bidirectional: true, batchFirst: true });
    const r = m.forward(randn([2, 7, 3]));
    expect(r.output.shape).toEqual([2, 7, 8]);
    expect(r.hN.shape).toEqual([6, 2, 4]);
  });
  test('dropout between layers only acts in training mode', async () => {
    const m = new LSTM(3, 4, { numLayers: 2, dropout: 0.5 });
    const x = randn([5, 2, 3]);
    const a = await m.eval().forward(x).output.data(), b = await m.eval().forward(x).output.data();
    expect(Array.from(a)).toEqual(Array.from(b));
    const c = await m.train().forward(x).output.data();
    expect(Array.from(c)).not.toEqual(Array.from(a));
  });
  test('bad input names the layer and the shapes', () => {
    const lstm = new LSTM(3, 4, { numLayers: 2 });
    expect(() => lstm.forward(randn([5, 2, 6]))).toThrow(/LSTM: expected a float input \[T, B, C\] or \[T, C\] with C = inputSize 3, got \[5, 2, 6\]/);
    expect(() => lstm.forward(randn([5, 2, 3]), [randn([1, 2, 4]), randn([2, 2, 4])])).toThrow(/LSTM: h0 must be \[2, 2, 4\] for input \[5, 2, 3\], got \[1, 2, 4\]/);
    expect(() => lstm.forward(randn([5, 2, 3]), [randn([2, 2, 4]), randn([2, 3, 4])])).toThrow(/LSTM: c0 must be \[2, 2, 4\]/);
    expect(() => new GRU(3, 4).forward(randn([5, 2, 3]), null, { lengths: tensor([5, 5, 5], { dtype: 'int32' }) })).toThrow(/GRU: lengths must be an integer tensor \[B\] = \[2\]/);
    expect(() => new GRU(3, 4).forward(randn([5, 2, 3]), null, { lengths: tensor([5, 5], { dtype: 'float32' }) })).toThrow(/GRU: lengths must be an integer tensor/);
    expect(() => new RNN(3, 4, { batchFirst: true }).forward(randn([2, 5]))).toThrow(/RNN: expected a float input \[B, T, C\]/);
    expect(() => new GRUCell(3, 4).forward(randn([2, 3]), randn([3, 4]))).toThrow(/GRUCell: h must be \[2, 4\] for input \[2, 3\], got \[3, 4\]/);
    expect(() => new LSTMCell(3, 4).forward(randn([2, 2, 3]))).toThrow(/LSTMCell: expected a float input \[B, C\] or \[C\]/);
  });
  test('bad options are rejected', () => {
    expect(() => new LSTM(3, 0)).toThrow(/LSTM: inputSize and hiddenSize must be positive integers/);
    expect(() => new GRU(3, 4, { numLayers: 0 })).toThrow(/GRU: numLayers must be a positive integer/);
    expect(() => new LSTM(3, 4, { dropout: 1.5 })).toThrow(/LSTM: dropout must be in \[0, 1\]/);
    expect(() => new RNN(3, 4, { nonlinearity: 'gelu' as 'relu' })).toThrow(/RNN: nonlinearity must be 'tanh' or 'relu', got 'gelu'/);
  });
});

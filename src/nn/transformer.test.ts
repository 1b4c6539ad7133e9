// MultiheadAttention and Transformer layers against torch.nn (same state dict -> same outputs and gradients).

import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { cat } from '../autograd/ops/movement.js';
import { listDevices } from '../tensor/backend.js';
import { randn } from '../tensor/create.js';
import { manualSeed } from '../tensor/random.js';
import { checkLayer } from '../test-util/nn-fixtures.js';
import { expectClose } from '../test-util/fixtures.js';
import { KVCache, MultiheadAttention } from './attention.js';
import { TransformerDecoderLayer, TransformerEncoderLayer } from './transformer.js';

const D = 8, H = 2;
const opts = { dimFeedforward: 16, dropout: 0 };

for (const device of listDevices()) {
  describe(`transformer layers on ${device} match torch.nn`, () => {
    test('MultiheadAttention, cross-attention with key padding', async () => {
      const m = new MultiheadAttention(D, H);
      await checkLayer('nn.json', 'mha_cross_padding', m, (q, kv, p) => m.forward(q!, kv!, kv!, { keyPaddingMask: p, needWeights: false })[0], device);
    });
    test('MultiheadAttention, self-attention with a bool attn_mask', async () => {
      const m = new MultiheadAttention(D, H);
      await checkLayer('nn.json', 'mha_self_causal', m, (x, c) => m.forward(x!, x!, x!, { attnMask: c, needWeights: false })[0], device);
    });
    test('TransformerEncoderLayer, post-norm, padding mask', async () => {
      const layer = new TransformerEncoderLayer(D, H, opts);
      await checkLayer('nn.json', 'encoder_post_norm', layer, (x, p) => layer.forward(x!, { srcKeyPaddingMask: p }), device);
    });
    test('TransformerEncoderLayer, pre-norm, GELU, causal mask', async () => {
      const layer = new TransformerEncoderLayer(D, H, { ...opts, normFirst: true, activation: 'gelu' });
      await checkLayer('nn.json', 'encoder_pre_norm_gelu_causal', layer, (x, c) => layer.forward(x!, { srcMask: c }), device);
    });
    test('TransformerDecoderLayer, post-norm, causal and memory padding masks', async () => {
      const layer = new TransformerDecoderLayer(D, H, opts);
      await checkLayer('nn.json', 'decoder_post_norm', layer, (x, m, c, p) => layer.forward(x!, m!, { tgtMask: c, memoryKeyPaddingMask: p }), device);
    });
    test('TransformerDecoderLayer, pre-norm', async () => {
      const layer = new TransformerDecoderLayer(D, H, { ...opts, normFirst: true });
      await checkLayer('nn.json', 'decoder_pre_norm', layer, (x, m, c) => layer.forward(x!, m!, { tgtMask: c }), device);
    });
  });
}

describe('attention details', () => {
  test('self-attention with a KV cache, one step at a time, equals the full causal pass', async () => {
    manualSeed(3);
    const attn = new MultiheadAttention(D, H).eval();
    const x = randn([2, 6, D]);
    const full = noGrad(() => attn.forward(x, x, x, { isCausal: true })[0]);
    const cache = new KVCache();
    const steps = noGrad(() => [0, 1, 2, 3, 4, 5].map((t) => {
      const xt = x.narrow(1, t, 1);
      return attn.forward(xt, xt, xt, { cache, isCausal: true })[0];
    }));
    expect(cache.length).toBe(6);
    expectClose(await cat(steps, 1).data(), Array.from(await full.data()), 1e-5, 1e-4, 'cached vs full');
  });
  test('MultiheadAttention rejects a head count that does not divide the width', () => {
    expect(() => new MultiheadAttention(10, 3)).toThrow(/embedDim 10 is not divisible by numHeads 3/);
  });
});

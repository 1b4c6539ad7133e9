// quantizeGpt2 on GPT-2's Conv1D projections: outputs against the float32 layer on the dequantized weight, and the
// perplexity gaps of the targets (Q8_0 within 0.5% of float32, Q4_0 within 5%) on a small GPT-2 trained here
// on Brown text (bytes) and scored on held-out Brown text.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { loadBrown } from '../data/brown.js';
import { Conv1D, GPT2LMHeadModel, type GPT2Config } from '../models/gpt2.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { getDefaultDevice, listDevices } from '../tensor/backend.js';
import { randn, tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import { dequantizeValues } from './formats.js';
import { QuantLinear } from './quant-linear.js';
import { quantizeGpt2 } from './quantize-gpt2.js';

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

const CONFIG: GPT2Config = {
  vocab_size: 256, n_positions: 64, n_embd: 64, n_layer: 2, n_head: 4, n_inner: null, activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5, embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0, initializer_range: 0.02, tie_word_embeddings: true, scale_attn_weights: true,
};
const T = CONFIG.n_positions;

/** Brown's first documents as UTF-8 bytes: the first 60 to train on, the next 4 held out. */
async function brownBytes(): Promise<{ train: Uint8Array; heldOut: Uint8Array }> {
  const docs = await loadBrown();
  const bytes = (from: number, to: number): Uint8Array => new TextEncoder().encode(docs.slice(from, to).map((d) => d.sentences.join(' ')).join('\n'));
  return { train: bytes(0, 60), heldOut: bytes(60, 64) };
}

/** Log-softmax of a row of logits, in place. */
function logSoftmax(row: Float32Array): Float32Array {
  const max = row.reduce((m, v) => Math.max(m, v), -Infinity);
  const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
  return row.map((v) => v - lse);
}

/** exp(mean next-byte loss) over consecutive windows of T bytes (T - 1 predictions each), and every log-distribution. */
async function evaluate(model: GPT2LMHeadModel, ids: Uint8Array, windows: number, device: string): Promise<{ perplexity: number; logProbs: Float32Array[] }> {
  let total = 0;
  const logProbs: Float32Array[] = [];
  for (let w = 0; w < windows; w += 8) {
    const n = Math.min(8, windows - w);
    const batch = tensor(Int32Array.from(ids.subarray(w * T, (w + n) * T)), { shape: [n, T], dtype: 'int32', device });
    const out = noGrad(() => model.forward({ inputIds: batch, labels: batch }));
    total += n * (await out.loss!.item());
    const logits = await out.logits.data(), V = CONFIG.vocab_size;
    for (let r = 0; r < n * T; r++) logProbs.push(logSoftmax(Float32Array.from(logits.subarray(r * V, (r + 1) * V))));
    batch.dispose();
  }
  return { perplexity: Math.exp(total / windows), logProbs };
}

/** Mean KL(p || q) over positions: how far quantization moved the predicted distributions. */
const meanKl = (p: Float32Array[], q: Float32Array[]): number =>
  p.reduce((s, lp, i) => s + lp.reduce((k, v, j) => k + Math.exp(v) * (v - q[i]![j]!), 0), 0) / p.length;

/** A 2-layer GPT-2 (n_embd 64) trained for 150 AdamW steps of 16 x 64 bytes: the weights of a trained model, in seconds. */
async function trainSmallGpt2(train: Uint8Array, device: string): Promise<GPT2LMHeadModel> {
  manualSeed(0);
  const model = new GPT2LMHeadModel(CONFIG);
  model.to(device).train();
  const opt = new AdamW(model.parameters(), { lr: 3e-3, betas: [0.9, 0.95], weightDecay: 0.01 });
  const gen = new Generator(1);
  for (let step = 0; step < 150; step++) {
    const rows = new Int32Array(16 * T);
    gen.integers(0, train.length - T, 16).forEach((start, b) => rows.set(train.subarray(start, start + T), b * T));
    tidy(() => {
      const batch = tensor(rows, { shape: [16, T], dtype: 'int32', device });
      model.forward({ inputIds: batch, labels: batch }).loss!.backward();
    });
    clipGradNorm(model.parameters(), 1).dispose();
    opt.step();
    opt.zeroGrad();
  }
  return model.eval();
}

for (const device of listDevices()) {
  describe(`quantizeGpt2 on ${device}`, () => {
    test.each(['q8_0', 'q4_0', 'nf4'] as const)('%s: a Conv1D becomes a QuantLinear whose output is the Conv1D on the dequantized weight', async (type) => {
      const model = new GPT2LMHeadModel({ ...CONFIG, vocab_size: 96 });
      model.to(device).eval();
      const attn = model.transformer.h[1]!.attn;
      const conv = attn.c_attn;
      // A bias that is not zero, so that its place in the swap is checked.
      conv.bias.replaceStorage(randn([3 * CONFIG.n_embd], { device }));
      // Integer inputs with 127 in every block of 32: exact in int8 with scale 1, so the integer kernels (which quantize
      // x per block, as llama.cpp) and the float reference see the same x, and only float rounding separates them.
      const xv = Float32Array.from(new Generator(3).integers(-127, 128, 2 * 5 * CONFIG.n_embd), (v, i) => (i % 32 === 0 ? 127 : v));
      const x = tensor(xv, { shape: [2, 5, CONFIG.n_embd], device });
      const report = await quantizeGpt2(model, type, { conv1d: Conv1D });
      expect(report.quantized).toEqual(expect.arrayContaining(['transformer.h.1.attn.c_attn', 'transformer.h.0.mlp.c_proj']));
      expect(report.quantized).toHaveLength(2 * 4); // c_attn, attn.c_proj, c_fc, mlp.c_proj per block
      expect(report.skipped).toEqual([{ name: 'lm_head', reason: 'its weight is tied to an embedding that stays unquantized' }]);
      const q = attn.c_attn as unknown as QuantLinear;
      expect(q).toBeInstanceOf(QuantLinear);
      expect(q.weight.shape).toEqual([3 * CONFIG.n_embd, CONFIG.n_embd]); // [out, in]: transposed from the Conv1D's [in, out]
      // The reference: the Conv1D itself with its weight replaced by the dequantized [out, in] matrix transposed back.
      const deq = dequantizeValues(q.weight), [nf, nx] = q.weight.shape as [number, number];
      const back = new Float32Array(nx * nf);
      for (let o = 0; o < nf; o++) for (let i = 0; i < nx; i++) back[i * nf + o] = deq[o * nx + i]!;
      conv.weight.replaceStorage(tensor(back, { shape: [nx, nf], device }));
      const want = await noGrad(() => conv.forward(x)).data();
      const got = await noGrad(() => q.forward(x)).data();
      const scale = maxDiff(want, new Float32Array(want.length)); // max |y|
      expect(maxDiff(got, want)).toBeLessThan(1e-5 * scale);
      expect(report.bytesAfter).toBeLessThan(report.bytesBefore);
    });
  });
}

describe('quantizeGpt2: bad input', () => {
  test('an unknown type names it; rows that are not whole blocks are skipped with the reason', async () => {
    const model = new GPT2LMHeadModel({ ...CONFIG, n_embd: 48, n_head: 4, vocab_size: 50 });
    await expect(quantizeGpt2(model, 'q5_k' as 'q8_0', { conv1d: Conv1D })).rejects.toThrow('quantizeGpt2: unknown type "q5_k" (known: q8_0, q4_0, nf4)');
    const report = await quantizeGpt2(model, 'q8_0', { conv1d: Conv1D });
    // n_embd 48 is not a multiple of 32; the MLP's c_proj reads 4 * 48 = 192 = 6 blocks and is quantized.
    expect(report.quantized).toEqual(['transformer.h.0.mlp.c_proj', 'transformer.h.1.mlp.c_proj']);
    expect(report.skipped.map((s) => s.name)).toContain('transformer.h.0.attn.c_attn');
    expect(report.skipped.find((s) => s.name === 'transformer.h.0.attn.c_attn')!.reason).toBe('rows of 48 values are not whole blocks of 32');
  });
});

describe('perplexity of a small GPT-2 trained on Brown text, held-out text', () => {
  test('Q8_0 within 0.5% of float32, Q4_0 within 5%, on every device', async () => {
    const { train, heldOut } = await brownBytes();
    // Trained once, on wasm where there is one (the cpu reference backend is some 50 times slower at this).
    const trained = await trainSmallGpt2(train, listDevices().includes('wasm') ? 'wasm' : getDefaultDevice());
    const state = trained.stateDict();
    const windows = 32; // 32 x 63 = 2016 predictions
    expect(heldOut.length).toBeGreaterThan(windows * T);
    for (const device of listDevices()) {
      const fresh = (): GPT2LMHeadModel => {
        const m = new GPT2LMHeadModel(CONFIG);
        m.loadStateDict(state, { strict: false });
        return m.to(device).eval();
      };
      const ref = await evaluate(fresh(), heldOut, windows, device), f32 = ref.perplexity;
      // Trained: far below the 256 of a uniform guess over bytes (an untrained model scores about that).
      expect(f32).toBeLessThan(20);
      const gaps: Record<string, number> = {}, kl: Record<string, number> = {};
      for (const type of ['q8_0', 'q4_0'] as const) {
        const m = fresh();
        await quantizeGpt2(m, type, { conv1d: Conv1D });
        const got = await evaluate(m, heldOut, windows, device);
        gaps[type] = got.perplexity / f32 - 1;
        kl[type] = meanKl(ref.logProbs, got.logProbs);
      }
      console.log(`${device}: float32 perplexity ${f32.toFixed(3)} (${windows * (T - 1)} predictions); Q8_0 ${(100 * gaps['q8_0']!).toFixed(3)}% (KL ${kl['q8_0']!.toExponential(2)}), Q4_0 ${(100 * gaps['q4_0']!).toFixed(3)}% (KL ${kl['q4_0']!.toExponential(2)})`);
      expect(Math.abs(gaps['q8_0']!)).toBeLessThan(0.005);
      expect(Math.abs(gaps['q4_0']!)).toBeLessThan(0.05);
      // The measurement sees quantization, and Q4_0 moves the predictions more than Q8_0 (the perplexity gaps of a
      // small model are too close to zero to order; the KL divergence is not).
      expect(kl['q8_0']!).toBeGreaterThan(0);
      expect(kl['q4_0']!).toBeGreaterThan(4 * kl['q8_0']!);
    }
  }, 60_000);
});

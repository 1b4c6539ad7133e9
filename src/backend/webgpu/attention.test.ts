// The webgpu fused attention kernels (forward and backward) against the cpu backend: causal and not, T != S, broadcast
// bias with -Infinity, strided layouts with q, k and v in one buffer, fully masked rows, head sizes 1..64, sizes 0.

import { beforeAll, describe, expect, test } from 'vitest';
import { rng, testGpu } from '../../test-util/webgpu.js';
import { CpuBackend } from '../cpu/index.js';
import type { AttentionLayout, AttentionParams, BackendBuffer } from '../../tensor/backend.js';
import { expectClose } from '../../test-util/fixtures.js';
import type { WebGPUBackend } from './backend.js';

const cpu = new CpuBackend();
let gpu: WebGPUBackend;
beforeAll(async () => {
  gpu = await testGpu();
});

const random = (n: number, seed: number, scale = 2): Float32Array => {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
};

interface Case {
  p: AttentionParams;
  /** Sizes of the q, k, v buffers (one buffer when q, k and v share it: all three the same index). */
  buffers: { q: number; k: number; v: number; size: number[] };
  bias?: Float32Array;
}

/** Contiguous operands [B, H, rows, cols], one buffer each. */
function contiguous(p: AttentionParams): Case['buffers'] {
  const n = p.batch * p.heads;
  return { q: 0, k: 1, v: 2, size: [n * p.t * p.hs, n * p.s * p.hs, n * p.s * p.hv] };
}

/**
 * Runs forward and backward on both backends with the same inputs and compares out, lse and the gradients
 * (whole buffers: regions and the zeros outside them). Returns the webgpu results.
 */
async function check(c: Case, label: string) {
  const { p } = c;
  const data = c.buffers.size.map((n, i) => random(n, 11 + i));
  const dOut = random(p.batch * p.heads * p.t * p.hv, 99);
  const run = async (be: CpuBackend | WebGPUBackend) => {
    const bufs = data.map((d) => be.upload(d, 'float32'));
    const [q, k, v] = [bufs[c.buffers.q]!, bufs[c.buffers.k]!, bufs[c.buffers.v]!];
    const bias = c.bias ? be.upload(c.bias, 'float32') : null;
    const { out, lse } = be.attention(q, k, v, bias, p);
    const g = be.upload(dOut, 'float32');
    const { dq, dk, dv } = be.attentionGrad(q, k, v, bias, out, lse, g, p);
    const read = (b: BackendBuffer) => be.read(b).then((x) => Array.from(x));
    const shared = [dq === dk, dq === dv, dk === dv];
    return { out: await read(out), lse: await read(lse), dq: await read(dq), dk: await read(dk), dv: await read(dv), shared };
  };
  const want = await run(cpu), got = await run(gpu);
  expect(got.shared, `${label}: gradient buffer sharing`).toEqual(want.shared);
  // float32 sums in another order than the float64 reference: tolerances grow with the head size and the keys.
  const tol = 5e-7 * Math.sqrt(Math.max(p.hs, p.hv) * Math.max(1, p.s));
  expectClose(got.out, want.out, tol, 1e-5, `${label}: out`);
  expectClose(got.lse, want.lse, tol, 1e-5, `${label}: lse`);
  expectClose(got.dq, want.dq, 4 * tol, 1e-5, `${label}: dq`);
  expectClose(got.dk, want.dk, 4 * tol, 1e-5, `${label}: dk`);
  expectClose(got.dv, want.dv, 4 * tol, 1e-5, `${label}: dv`);
  return got;
}

const params = (o: Partial<AttentionParams> & Pick<AttentionParams, 't' | 's' | 'hs' | 'hv'>): AttentionParams => ({
  batch: 2, heads: 2, scale: 1 / Math.sqrt(o.hs), causal: false, biasStrides: null, ...o,
});

describe('webgpu attention kernels against the cpu backend', () => {
  test('plain and causal, T = S, T < S (queries are the last positions), vector and scalar head sizes', async () => {
    for (const causal of [false, true]) {
      for (const [t, s, hs, hv] of [[5, 5, 8, 8], [3, 7, 12, 4], [9, 20, 6, 5], [1, 13, 4, 4]] as const) {
        const p = params({ t, s, hs, hv, causal });
        await check({ p, buffers: contiguous(p) }, `T=${t} S=${s} hs=${hs} hv=${hv} causal=${causal}`);
      }
    }
  });

  test('causal with T > S: the first T - S rows see no key (out 0, lse -Infinity, no gradient)', async () => {
    const p = params({ t: 7, s: 3, hs: 8, hv: 4, causal: true });
    const got = await check({ p, buffers: contiguous(p) }, 'T > S');
    expect(got.lse.slice(0, 4)).toEqual([-Infinity, -Infinity, -Infinity, -Infinity]);
    expect(got.lse[4]).toBeGreaterThan(-Infinity);
    expect(got.out.slice(0, 16).every((x) => x === 0)).toBe(true);
    expect(got.dq.slice(0, 32).every((x) => x === 0)).toBe(true);
  });

  test('head sizes 8..128 over several query blocks and key tiles (T = 70, S = 75)', async () => {
    for (const hs of [8, 16, 32, 64, 128]) {
      for (const causal of [false, true]) {
        const p = params({ batch: 1, heads: 1, t: 70, s: 75, hs, hv: hs, causal });
        await check({ p, buffers: contiguous(p) }, `hs=${hs} causal=${causal}`);
      }
    }
  });

  test('additive bias with broadcast strides and -Infinity: padding masks, an empty row, a full [B, H, T, S] bias', async () => {
    const t = 4, s = 6;
    // [B, 1, 1, S] padding mask: batch 0 hides keys 4, 5; batch 1 hides every key (all its rows are empty).
    const pad = Float32Array.from({ length: 2 * s }, (_, i) => (i >= 4 && i < s) || i >= s ? -Infinity : 0);
    let p = params({ t, s, hs: 8, hv: 8, biasStrides: [s, 0, 0, 1] });
    const got = await check({ p, buffers: contiguous(p), bias: pad }, 'padding mask [B, 1, 1, S]');
    expect(got.lse.slice(8).every((x) => x === -Infinity)).toBe(true);
    // Per-head [1, H, T, S] bias with a -Infinity entry, causal on top.
    const alibi = random(2 * t * s, 7);
    alibi[3] = -Infinity;
    p = params({ t, s, hs: 5, hv: 3, causal: true, biasStrides: [0, t * s, s, 1] });
    await check({ p, buffers: contiguous(p), bias: alibi }, 'bias [1, H, T, S], causal');
    // A full bias [B, H, T, S], and a query-only bias [T, 1] broadcast over keys.
    p = params({ t, s, hs: 8, hv: 4, biasStrides: [2 * t * s, t * s, s, 1] });
    await check({ p, buffers: contiguous(p), bias: random(4 * t * s, 8) }, 'bias [B, H, T, S]');
    p = params({ t, s, hs: 8, hv: 4, biasStrides: [0, 0, 1, 0] });
    await check({ p, buffers: contiguous(p), bias: random(t, 9) }, 'bias [T, 1]');
  });

  test('strided layouts: q, k, v read from one packed [B, T, 3, H, hs] projection, out as [B, T, H, hv]', async () => {
    for (const [hs, causal] of [[8, true], [6, false], [16, false]] as const) {
      const B = 2, H = 3, T = 5, C = H * hs;
      const operand = (offset: number): AttentionLayout => ({ offset, batch: T * 3 * C, head: hs, row: 3 * C });
      const p = params({
        batch: B, heads: H, t: T, s: T, hs, hv: hs, causal,
        layout: { q: operand(0), k: operand(C), v: operand(2 * C), out: { offset: 0, batch: T * C, head: hs, row: C } },
      });
      const got = await check({ p, buffers: { q: 0, k: 0, v: 0, size: [B * T * 3 * C] } }, `packed hs=${hs}`);
      expect(got.shared).toEqual([true, true, true]);
    }
  });

  test('strided layouts with gaps: q and k share a padded buffer (zeros between the regions), v alone, misaligned offset', async () => {
    const B = 2, H = 2, T = 3, S = 4, hs = 5, hv = 7;
    // qk buffer rows of 16 words: q's 5 at 1, k's 5 at 8; q has T rows, k S rows per (b, h).
    const rowsPer = S, per = rowsPer * 16;
    const p = params({
      batch: B, heads: H, t: T, s: S, hs, hv,
      layout: {
        q: { offset: 1, batch: H * per, head: per, row: 16 },
        k: { offset: 8, batch: H * per, head: per, row: 16 },
        v: { offset: 3, batch: H * S * hv, head: S * hv, row: hv },
        out: { offset: 0, batch: T * H * hv, head: hv, row: H * hv },
      },
    });
    const got = await check({ p, buffers: { q: 0, k: 0, v: 1, size: [B * H * per, 3 + B * H * S * hv] } }, 'gaps');
    expect(got.shared).toEqual([true, false, false]);
    expect(got.dq[0]).toBe(0);
    expect(got.dv.slice(0, 3)).toEqual([0, 0, 0]);
  });

  test('the kernels as compiled for hardware adapters (constant loop bounds; lavapipe gets bounds it cannot unroll)', async () => {
    const hw = await testGpu();
    Object.defineProperty(hw.ctx, 'isFallback', { value: false });
    const saved = gpu;
    gpu = hw;
    try {
      for (const [t, s, causal] of [[5, 7, true], [70, 9, false]] as const) {
        const p = params({ t, s, hs: 8, hv: 4, causal, biasStrides: [0, 0, s, 1] });
        await check({ p, buffers: contiguous(p), bias: random(t * s, 3) }, `hardware variant T=${t} S=${s}`);
      }
    } finally {
      gpu = saved;
    }
  });

  test('empty sizes: no queries, no keys (every row empty), no batch', async () => {
    let p = params({ t: 0, s: 4, hs: 4, hv: 4 });
    await check({ p, buffers: contiguous(p) }, 'T = 0');
    p = params({ t: 3, s: 0, hs: 4, hv: 4 });
    const got = await check({ p, buffers: contiguous(p) }, 'S = 0');
    expect(got.lse.every((x) => x === -Infinity)).toBe(true);
    p = params({ batch: 0, t: 3, s: 3, hs: 4, hv: 4 });
    await check({ p, buffers: contiguous(p) }, 'batch = 0');
  });

  test('a head size beyond workgroup memory is a clear error', () => {
    const p = params({ batch: 1, heads: 1, t: 1, s: 1, hs: 8192, hv: 8192 });
    const [q, k, v] = [8192, 8192, 8192].map((n) => gpu.upload(new Float32Array(n), 'float32'));
    expect(() => gpu.attention(q!, k!, v!, null, p)).toThrow(/webgpu attention: head sizes hs=8192, hv=8192 need .* bytes of workgroup memory/);
  });
});

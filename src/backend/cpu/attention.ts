// Reference fused attention: scores, masked softmax and weighted values row by row, and the backward pass.

import type { AttentionLayout, AttentionParams } from '../../tensor/backend.js';
import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';

/** The scores of query row i against every key (-Infinity where masked), for batch*head index bh. */
function scoreRow(q: TypedArray, k: TypedArray, bias: TypedArray | null, p: AttentionParams, bh: number, i: number, out: Float64Array): void {
  const { t, s, hs, heads, scale, causal, biasStrides } = p;
  const qo = (bh * t + i) * hs;
  const last = causal ? i + s - t : s - 1;
  const b = Math.floor(bh / heads), h = bh % heads;
  for (let j = 0; j < s; j++) {
    if (j > last) { out[j] = -Infinity; continue; }
    let dot = 0;
    const ko = (bh * s + j) * hs;
    for (let d = 0; d < hs; d++) dot += q[qo + d] * k[ko + d];
    out[j] = dot * scale + (bias && biasStrides ? bias[b * biasStrides[0] + h * biasStrides[1] + i * biasStrides[2] + j * biasStrides[3]] : 0);
  }
}

// ---- strided layouts: gathered into contiguous copies, computed as above, scattered back ----

/** The contiguous [B * H, rows, cols] copy of an operand stored with layout l. */
function gather(x: TypedArray, l: AttentionLayout, p: AttentionParams, rows: number, cols: number): Float64Array {
  const out = new Float64Array(p.batch * p.heads * rows * cols);
  let o = 0;
  for (let b = 0; b < p.batch; b++) {
    for (let h = 0; h < p.heads; h++) {
      for (let i = 0; i < rows; i++) {
        const at = l.offset + b * l.batch + h * l.head + i * l.row;
        for (let d = 0; d < cols; d++) out[o++] = x[at + d];
      }
    }
  }
  return out;
}

/** Writes a contiguous [B * H, rows, cols] array into dst with layout l. */
function scatter(dst: TypedArray, src: TypedArray, l: AttentionLayout, p: AttentionParams, rows: number, cols: number): void {
  let o = 0;
  for (let b = 0; b < p.batch; b++) {
    for (let h = 0; h < p.heads; h++) {
      for (let i = 0; i < rows; i++) {
        const at = l.offset + b * l.batch + h * l.head + i * l.row;
        for (let d = 0; d < cols; d++) dst[at + d] = src[o++];
      }
    }
  }
}

/** Whether two typed arrays are views of the same memory (wasm views are new objects at each call). */
function sameArray(a: TypedArray, b: TypedArray): boolean {
  return a === b || (a.buffer === b.buffer && a.byteOffset === b.byteOffset);
}

export function attention(q: TypedArray, k: TypedArray, v: TypedArray, bias: TypedArray | null, p: AttentionParams, dtype: DType) {
  const L = p.layout;
  if (!L) return attentionContiguous(q, k, v, bias, p, dtype);
  const r = attentionContiguous(gather(q, L.q, p, p.t, p.hs), gather(k, L.k, p, p.s, p.hs), gather(v, L.v, p, p.s, p.hv), bias, p, dtype);
  const out = allocArray(dtype, r.out.length);
  scatter(out, r.out, L.out, p, p.t, p.hv);
  return { out, lse: r.lse };
}

export function attentionGrad(q: TypedArray, k: TypedArray, v: TypedArray, bias: TypedArray | null, out: TypedArray, lse: TypedArray, dOut: TypedArray, p: AttentionParams, dtype: DType) {
  const L = p.layout;
  if (!L) return attentionGradContiguous(q, k, v, bias, out, lse, dOut, p, dtype);
  const { t, s, hs, hv } = p;
  const r = attentionGradContiguous(gather(q, L.q, p, t, hs), gather(k, L.k, p, s, hs), gather(v, L.v, p, s, hv), bias,
    gather(out, L.out, p, t, hv), lse, gather(dOut, L.out, p, t, hv), p, dtype);
  // One gradient buffer per distinct input buffer, each region written in its input's layout.
  const dq = allocArray(dtype, q.length);
  const dk = sameArray(k, q) ? dq : allocArray(dtype, k.length);
  const dv = sameArray(v, q) ? dq : sameArray(v, k) ? dk : allocArray(dtype, v.length);
  scatter(dq, r.dq, L.q, p, t, hs);
  scatter(dk, r.dk, L.k, p, s, hs);
  scatter(dv, r.dv, L.v, p, s, hv);
  return { dq, dk, dv };
}

// ---- contiguous operands ----

function attentionContiguous(q: TypedArray, k: TypedArray, v: TypedArray, bias: TypedArray | null, p: AttentionParams, dtype: DType) {
  const { batch, heads, t, s, hv } = p;
  const out = allocArray(dtype, batch * heads * t * hv), lse = allocArray(dtype, batch * heads * t);
  const row = new Float64Array(s), acc = new Float64Array(hv);
  for (let bh = 0; bh < batch * heads; bh++) {
    for (let i = 0; i < t; i++) {
      scoreRow(q, k, bias, p, bh, i, row);
      let m = -Infinity;
      for (let j = 0; j < s; j++) m = Math.max(m, row[j]);
      const r = bh * t + i;
      if (m === -Infinity) { lse[r] = -Infinity; continue; } // nothing to attend: output stays 0
      let l = 0;
      acc.fill(0);
      for (let j = 0; j < s; j++) {
        const e = Math.exp(row[j] - m);
        if (e === 0) continue;
        l += e;
        for (let d = 0; d < hv; d++) acc[d] += e * v[(bh * s + j) * hv + d];
      }
      for (let d = 0; d < hv; d++) out[r * hv + d] = acc[d] / l;
      lse[r] = m + Math.log(l);
    }
  }
  return { out, lse };
}

function attentionGradContiguous(q: TypedArray, k: TypedArray, v: TypedArray, bias: TypedArray | null, out: TypedArray, lse: TypedArray, dOut: TypedArray, p: AttentionParams, dtype: DType) {
  const { batch, heads, t, s, hs, hv, scale } = p;
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  const row = new Float64Array(s);
  for (let bh = 0; bh < batch * heads; bh++) {
    for (let i = 0; i < t; i++) {
      const r = bh * t + i;
      if (lse[r] === -Infinity) continue;
      scoreRow(q, k, bias, p, bh, i, row);
      // D = dO_i . O_i, so that dS = P * (dP - D).
      let D = 0;
      for (let d = 0; d < hv; d++) D += dOut[r * hv + d] * out[r * hv + d];
      for (let j = 0; j < s; j++) {
        const pij = Math.exp(row[j] - lse[r]);
        if (pij === 0) continue;
        const vo = (bh * s + j) * hv, ko = (bh * s + j) * hs;
        let dp = 0;
        for (let d = 0; d < hv; d++) {
          dp += dOut[r * hv + d] * v[vo + d];
          dv[vo + d] += pij * dOut[r * hv + d];
        }
        const ds = pij * (dp - D) * scale;
        for (let d = 0; d < hs; d++) {
          dq[r * hs + d] += ds * k[ko + d];
          dk[ko + d] += ds * q[r * hs + d];
        }
      }
    }
  }
  const cast = (a: Float64Array) => { const o = allocArray(dtype, a.length); o.set(a); return o; };
  return { dq: cast(dq), dk: cast(dk), dv: cast(dv) };
}

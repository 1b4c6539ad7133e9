// Reference fused row kernels: (log-)softmax, layer norm and RMS norm, each with its backward.

import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';

export function softmax(x: TypedArray, rows: number, cols: number, log: boolean, dtype: DType): TypedArray {
  const out = allocArray(dtype, rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[o + c]);
    if (max === -Infinity) max = 0; // a fully masked row: softmax gives NaN (0/0) as in PyTorch, log gives -inf
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[o + c] - max);
    if (log) {
      const lse = Math.log(sum);
      for (let c = 0; c < cols; c++) out[o + c] = x[o + c] - max - lse;
    } else {
      for (let c = 0; c < cols; c++) out[o + c] = Math.exp(x[o + c] - max) / sum;
    }
  }
  return out;
}

export function softmaxGrad(y: TypedArray, dy: TypedArray, rows: number, cols: number, log: boolean, dtype: DType): TypedArray {
  const dx = allocArray(dtype, rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    if (log) {
      // y = log softmax: dx = dy - softmax * sum(dy)
      for (let c = 0; c < cols; c++) dot += dy[o + c];
      for (let c = 0; c < cols; c++) dx[o + c] = dy[o + c] - Math.exp(y[o + c]) * dot;
    } else {
      // y = softmax: dx = y * (dy - sum(dy * y))
      for (let c = 0; c < cols; c++) dot += dy[o + c] * y[o + c];
      for (let c = 0; c < cols; c++) dx[o + c] = y[o + c] * (dy[o + c] - dot);
    }
  }
  return dx;
}

export function layerNorm(x: TypedArray, w: TypedArray | null, b: TypedArray | null, rows: number, cols: number, eps: number, dtype: DType) {
  const y = allocArray(dtype, rows * cols), mean = allocArray(dtype, rows), rstd = allocArray(dtype, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s = 0;
    for (let c = 0; c < cols; c++) s += x[o + c];
    const mu = s / cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[o + c] - mu) ** 2;
    const rs = 1 / Math.sqrt(v / cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) y[o + c] = (x[o + c] - mu) * rs * (w ? w[c] : 1) + (b ? b[c] : 0);
  }
  return { y, mean, rstd };
}

export function layerNormGrad(x: TypedArray, w: TypedArray | null, mean: TypedArray, rstd: TypedArray, dy: TypedArray, rows: number, cols: number, dtype: DType) {
  const dx = allocArray(dtype, rows * cols);
  const dw = new Float64Array(cols), db = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols, mu = mean[r], rs = rstd[r];
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w
    let sg = 0, sgx = 0;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[o + c] - mu) * rs, g = dy[o + c] * (w ? w[c] : 1);
      sg += g;
      sgx += g * xhat;
      dw[c] += dy[o + c] * xhat;
      db[c] += dy[o + c];
    }
    sg /= cols;
    sgx /= cols;
    for (let c = 0; c < cols; c++) {
      const xhat = (x[o + c] - mu) * rs, g = dy[o + c] * (w ? w[c] : 1);
      dx[o + c] = rs * (g - sg - xhat * sgx);
    }
  }
  const dweight = allocArray(dtype, cols), dbias = allocArray(dtype, cols);
  dweight.set(dw);
  dbias.set(db);
  return { dx, dweight, dbias };
}

export function rmsNorm(x: TypedArray, w: TypedArray | null, rows: number, cols: number, eps: number, dtype: DType) {
  const y = allocArray(dtype, rows * cols), rstd = allocArray(dtype, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[o + c] * x[o + c];
    const rs = 1 / Math.sqrt(ss / cols + eps);
    rstd[r] = rs;
    for (let c = 0; c < cols; c++) y[o + c] = x[o + c] * rs * (w ? w[c] : 1);
  }
  return { y, rstd };
}

export function rmsNormGrad(x: TypedArray, w: TypedArray | null, rstd: TypedArray, dy: TypedArray, rows: number, cols: number, dtype: DType) {
  const dx = allocArray(dtype, rows * cols);
  const dw = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols, rs = rstd[r];
    // dx = rstd * (g - xhat * mean(g * xhat)), xhat = x * rstd, g = dy * w
    let sgx = 0;
    for (let c = 0; c < cols; c++) {
      const xhat = x[o + c] * rs;
      sgx += dy[o + c] * (w ? w[c] : 1) * xhat;
      dw[c] += dy[o + c] * xhat;
    }
    sgx /= cols;
    for (let c = 0; c < cols; c++) dx[o + c] = rs * (dy[o + c] * (w ? w[c] : 1) - x[o + c] * rs * sgx);
  }
  const dweight = allocArray(dtype, cols);
  dweight.set(dw);
  return { dx, dweight };
}

/** Cross-entropy rows against class indices (see Backend.crossEntropy); checks every target first. */
export function crossEntropy(x: TypedArray, target: TypedArray, rows: number, cols: number, ignoreIndex: number, op: string, dtype: DType) {
  for (let r = 0; r < rows; r++) {
    const t = target[r];
    if (t !== ignoreIndex && !(t >= 0 && t < cols)) throw new Error(`${op}: index ${t} is out of range for a dimension of size ${cols}`);
  }
  const loss = allocArray(dtype, rows), lse = allocArray(dtype, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, x[o + c]);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(x[o + c] - max);
    const l = max + Math.log(sum);
    lse[r] = l;
    loss[r] = target[r] === ignoreIndex ? 0 : l - x[o + target[r]];
  }
  return { loss, lse };
}

export function crossEntropyGrad(x: TypedArray, target: TypedArray, lse: TypedArray, dloss: TypedArray, rows: number, cols: number, ignoreIndex: number, dtype: DType): TypedArray {
  const dx = allocArray(dtype, rows * cols);
  for (let r = 0; r < rows; r++) {
    const t = target[r];
    const o = r * cols, l = lse[r];
    // An ignored row gets 0 * softmax, as PyTorch's log-softmax backward gives it: NaN where the row's logits are NaN.
    if (t === ignoreIndex) {
      for (let c = 0; c < cols; c++) dx[o + c] = 0 * Math.exp(x[o + c] - l);
      continue;
    }
    const g = dloss[r];
    for (let c = 0; c < cols; c++) dx[o + c] = g * (Math.exp(x[o + c] - l) - (c === t ? 1 : 0));
  }
  return dx;
}

// WGSL sliding windows: im2col and its adjoint col2im (convolution and pooling are built on them).
//
// cols is [B, C, kH, kW, outH, outW] (row-major), as on the CPU backends. im2col: one thread per column entry.
// col2im: one thread per input pixel, gathering its taps in (ki, kj) order — no atomics, the same summation order
// as the CPU backend's scatter, so float results agree bit for bit.

import type { WindowParams } from '../../tensor/backend.js';
import type { DType } from '../../tensor/dtype.js';
import type { GpuBuffer, GpuContext } from './context.js';

/** The geometry as kernel parameters, slots 1..14 (slot 0 is the element count). */
function geometry(p: WindowParams): number[] {
  return [p.batch, p.channels, p.height, p.width, p.kernelH, p.kernelW, p.strideH, p.strideW, p.padH, p.padW, p.dilationH, p.dilationW, p.outH, p.outW];
}

const GEOMETRY_WGSL = /* wgsl */ `
  let C = pu(2u); let H = pu(3u); let W = pu(4u); let KH = pu(5u); let KW = pu(6u);
  let SH = i32(pu(7u)); let SW = i32(pu(8u)); let PH = i32(pu(9u)); let PW = i32(pu(10u));
  let DH = i32(pu(11u)); let DW = i32(pu(12u)); let OH = pu(13u); let OW = pu(14u);`;

function wordType(dtype: DType): 'f32' | 'i32' | 'u32' {
  if (dtype === 'float32') return 'f32';
  if (dtype === 'int32') return 'i32';
  if (dtype === 'bool' || dtype === 'uint8') return 'u32';
  throw new Error(`webgpu: im2col / col2im of ${dtype} tensors is not supported`);
}

/** padValue as the 32-bit word stored for `dtype` (as the CPU backends' typed arrays convert it). */
function padWord(dtype: DType, padValue: number): number | { f32: number } {
  if (dtype === 'float32') return { f32: padValue };
  if (dtype === 'int32') return padValue | 0;
  if (dtype === 'bool') return padValue !== 0 ? 1 : 0;
  return padValue & 255;
}

/** cols[b, c, ki, kj, oy, ox] = x[b, c, oy*sH - pH + ki*dH, ox*sW - pW + kj*dW], or padValue outside x. */
export function im2col(ctx: GpuContext, x: GpuBuffer, p: WindowParams, padValue: number): GpuBuffer {
  const t = wordType(x.dtype);
  const n = p.batch * p.channels * p.kernelH * p.kernelW * p.outH * p.outW;
  const out = ctx.alloc(x.dtype, n);
  const src = /* wgsl */ `
@group(0) @binding(1) var<storage, read> X: array<${t}>;
@group(0) @binding(2) var<storage, read_write> cols: array<${t}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= pu(0u)) { return; }
  ${GEOMETRY_WGSL}
  let ox = i % OW; let oy = (i / OW) % OH;
  let tap = i / (OW * OH);
  let kj = tap % KW; let ki = (tap / KW) % KH;
  let plane = tap / (KW * KH);
  let y = i32(oy) * SH - PH + i32(ki) * DH;
  let x = i32(ox) * SW - PW + i32(kj) * DW;
  var v = bitcast<${t}>(pu(15u));
  if (y >= 0 && y < i32(H) && x >= 0 && x < i32(W)) { v = X[(plane * H + u32(y)) * W + u32(x)]; }
  cols[i] = v;
}`;
  const pad = padWord(x.dtype, padValue);
  ctx.run(src, [n, ...geometry(p), pad], [x, out], ctx.groups1d(n));
  return out;
}

/** out[b, c, y, x] = the sum of cols over the taps that read (y, x): the adjoint of im2col with padValue 0. */
export function col2im(ctx: GpuContext, cols: GpuBuffer, p: WindowParams): GpuBuffer {
  const t = wordType(cols.dtype);
  const n = p.batch * p.channels * p.height * p.width;
  const out = ctx.alloc(cols.dtype, n);
  // uint8 sums wrap at 256 (a Uint8Array on the CPU); a bool sum is whether any tap is set.
  const result = cols.dtype === 'uint8' ? 'acc & 255u' : cols.dtype === 'bool' ? 'select(0u, 1u, acc != 0u)' : 'acc';
  const src = /* wgsl */ `
@group(0) @binding(1) var<storage, read> cols: array<${t}>;
@group(0) @binding(2) var<storage, read_write> X: array<${t}>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= pu(0u)) { return; }
  ${GEOMETRY_WGSL}
  let x = i32(i % W); let y = i32((i / W) % H);
  let plane = i / (W * H);
  var acc = ${t}(0);
  for (var ki = 0u; ki < KH; ki++) {
    // oy * SH = y + PH - ki * DH must hold for a whole oy in [0, OH).
    let ty = y + PH - i32(ki) * DH;
    if (ty < 0 || ty % SH != 0 || ty / SH >= i32(OH)) { continue; }
    let oy = u32(ty / SH);
    for (var kj = 0u; kj < KW; kj++) {
      let tx = x + PW - i32(kj) * DW;
      if (tx < 0 || tx % SW != 0 || tx / SW >= i32(OW)) { continue; }
      let ox = u32(tx / SW);
      acc += cols[((plane * KH + ki) * KW + kj) * OH * OW + oy * OW + ox];
    }
  }
  X[i] = ${result};
}`;
  ctx.run(src, [n, ...geometry(p)], [cols, out], ctx.groups1d(n));
  return out;
}

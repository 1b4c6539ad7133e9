// WGSL rotary position embedding (Backend.rope; the formulas of src/backend/cpu/rotary.ts): one thread per channel pair
// (d, d + hs/2) of a row, rows read and written through their strided layouts.

import type { RopeParams } from '../../tensor/backend.js';
import type { GpuBuffer, GpuContext } from './context.js';

type B = GpuBuffer;

export function rope(ctx: GpuContext, x: B, cos: B, sin: B, p: RopeParams): B {
  const h2 = p.hs / 2, rows = p.batch * p.heads * p.t, n = rows * h2;
  const out = ctx.alloc('float32', rows * p.hs);
  if (n === 0) return out;
  const { x: xl, out: ol, cosStrides: c } = p;
  const source = /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cs: array<f32>;
@group(0) @binding(3) var<storage, read> sn: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(WG_1D)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = flat(wid, nwg, lid);
  if (i >= pu(0u)) { return; }
  let h2 = pu(1u); let H = pu(2u); let T = pu(3u);
  let r = i / h2; let d = i % h2; let t = r % T; let bh = r / T; let h = bh % H; let b = bh / H;
  let xo = pu(4u) + b * pu(5u) + h * pu(6u) + t * pu(7u) + d;
  let oo = pu(8u) + b * pu(9u) + h * pu(10u) + t * pu(11u) + d;
  let co = b * pu(12u) + h * pu(13u) + t * pu(14u) + d;
  let x1 = x[xo]; let x2 = x[xo + h2];
  let c1 = cs[co]; let c2 = cs[co + h2]; let s1 = sn[co]; let s2 = sn[co + h2];
  if (pu(15u) == 0u) {
    y[oo] = x1 * c1 - x2 * s1;
    y[oo + h2] = x2 * c2 + x1 * s2;
  } else {
    // the transposed rotation (the backward)
    y[oo] = x1 * c1 + x2 * s2;
    y[oo + h2] = x2 * c2 - x1 * s1;
  }
}
`;
  ctx.run(source, [n, h2, p.heads, p.t, xl.offset, xl.batch, xl.head, xl.row, ol.offset, ol.batch, ol.head, ol.row, c[0], c[1], c[2], p.inverse ? 1 : 0],
    [x, cos, sin, out], ctx.groups1d(n));
  return out;
}

// Fused optimizer updates over flat float32 buffers: Adam / AdamW and SGD, one pass per parameter. Plain
// multiply and add (never the fused multiply-add), in the order of the composed ops, so the result is the
// same bit for bit as the elementwise path and the reference (src/backend/cpu/optim.ts).

import { ARG, pf, pi, pu } from './common';
import { CHUNK } from './elementwise';

// Slots: param, grad, expAvg (0 = zeros), expAvgSq (0 = zeros), out param, out expAvg, out expAvgSq, n,
// decay mode (0 none, 1 decoupled, 2 L2), then f32 constants: decay, b1, 1 - b1, b2, 1 - b2, sqrt(bias
// correction 2), eps, -step size.
export function adamTile(p: usize, t: i32): void {
  const x = pu(p, ARG), g = pu(p, ARG + 1), m = pu(p, ARG + 2), v = pu(p, ARG + 3);
  const xo = pu(p, ARG + 4), mo = pu(p, ARG + 5), vo = pu(p, ARG + 6), n = pi(p, ARG + 7), mode = pi(p, ARG + 8);
  const decay = f32x4.splat(pf(p, ARG + 9)), b1 = f32x4.splat(pf(p, ARG + 10)), nb1 = f32x4.splat(pf(p, ARG + 11));
  const b2 = f32x4.splat(pf(p, ARG + 12)), nb2 = f32x4.splat(pf(p, ARG + 13)), bc2 = f32x4.splat(pf(p, ARG + 14));
  const eps = f32x4.splat(pf(p, ARG + 15)), step = f32x4.splat(pf(p, ARG + 16));
  const zero = f32x4.splat(0);
  const s = t * CHUNK, e = min(n, s + CHUNK);
  // Whole vectors: every buffer is padded to 64 bytes, so the last one stays inside its block.
  for (let i = s; i < e; i += 4) {
    const o = <usize>i << 2;
    let pv = v128.load(x + o), gv = v128.load(g + o);
    if (mode == 1) pv = f32x4.mul(pv, decay);
    else if (mode == 2) gv = f32x4.add(gv, f32x4.mul(pv, decay));
    const mv = f32x4.add(f32x4.mul(m != 0 ? v128.load(m + o) : zero, b1), f32x4.mul(gv, nb1));
    const vv = f32x4.add(f32x4.mul(v != 0 ? v128.load(v + o) : zero, b2), f32x4.mul(f32x4.mul(gv, nb2), gv));
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(vv), bc2), eps);
    v128.store(xo + o, f32x4.add(pv, f32x4.div(f32x4.mul(mv, step), denom)));
    v128.store(mo + o, mv);
    v128.store(vo + o, vv);
  }
}

// Slots: param, grad, momentum buffer (0 = first step), out param, out buffer (0 = no momentum), n,
// flags (1 weight decay, 2 nesterov), then f32 constants: wd, momentum, 1 - dampening, -lr.
export function sgdTile(p: usize, t: i32): void {
  const x = pu(p, ARG), g = pu(p, ARG + 1), b = pu(p, ARG + 2), xo = pu(p, ARG + 3), bo = pu(p, ARG + 4);
  const n = pi(p, ARG + 5), flags = pi(p, ARG + 6);
  const wd = f32x4.splat(pf(p, ARG + 7)), mom = f32x4.splat(pf(p, ARG + 8)), damp = f32x4.splat(pf(p, ARG + 9)), lr = f32x4.splat(pf(p, ARG + 10));
  const hasWd = (flags & 1) != 0, nesterov = (flags & 2) != 0;
  const s = t * CHUNK, e = min(n, s + CHUNK);
  for (let i = s; i < e; i += 4) {
    const o = <usize>i << 2;
    const pv = v128.load(x + o);
    let d = v128.load(g + o);
    if (hasWd) d = f32x4.add(d, f32x4.mul(pv, wd));
    if (bo != 0) {
      const bv = b != 0 ? f32x4.add(f32x4.mul(v128.load(b + o), mom), f32x4.mul(d, damp)) : d;
      v128.store(bo + o, bv);
      d = nesterov ? f32x4.add(d, f32x4.mul(bv, mom)) : bv;
    }
    v128.store(xo + o, f32x4.add(pv, f32x4.mul(d, lr)));
  }
}

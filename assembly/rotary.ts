// Rotary position embedding (src/backend/cpu/rotary.ts is the reference): each row of hs values has halves x1, x2;
// forward out = [x1 c1 - x2 s1, x2 c2 + x1 s2], inverse (the backward) out = [x1 c1 + x2 s2, x2 c2 - x1 s1]. Each
// product is rounded to float32 before the sum, as the composed mul / add round them (bit-equal).

import { ARG, pi, pu } from './common';

/**
 * Tile t: rows [t * rpt, ..) of the B * H * T rows. Strides (elements) of x, out and cos / sin over batch, head and
 * position; the pointers already include their layouts' offsets.
 */
export function ropeTile(p: usize, t: i32): void {
  const x = pu(p, ARG), cs = pu(p, ARG + 1), sn = pu(p, ARG + 2), out = pu(p, ARG + 3);
  const heads = pi(p, ARG + 4), T = pi(p, ARG + 5), hs = pi(p, ARG + 6), rows = pi(p, ARG + 7), rpt = pi(p, ARG + 8);
  const xb = pi(p, ARG + 9), xh = pi(p, ARG + 10), xt = pi(p, ARG + 11);
  const ob = pi(p, ARG + 12), oh = pi(p, ARG + 13), ot = pi(p, ARG + 14);
  const cb = pi(p, ARG + 15), ch = pi(p, ARG + 16), ct = pi(p, ARG + 17);
  const inverse = pi(p, ARG + 18) != 0;
  const h2 = hs >> 1, h2b = <usize>h2 << 2, vec = h2 & ~3;
  for (let r = t * rpt, e = min(rows, t * rpt + rpt); r < e; r++) {
    const b = r / (heads * T), h = (r / T) % heads, i = r % T;
    const xp = x + (<usize>(b * xb + h * xh + i * xt) << 2);
    const op = out + (<usize>(b * ob + h * oh + i * ot) << 2);
    const co = <usize>(b * cb + h * ch + i * ct) << 2;
    const cp = cs + co, sp = sn + co;
    let d = 0;
    for (; d < vec; d += 4) {
      const o = <usize>d << 2;
      const x1 = v128.load(xp + o), x2 = v128.load(xp + h2b + o);
      const c1 = v128.load(cp + o), c2 = v128.load(cp + h2b + o), s1 = v128.load(sp + o), s2 = v128.load(sp + h2b + o);
      if (inverse) {
        v128.store(op + o, f32x4.add(f32x4.mul(x1, c1), f32x4.mul(x2, s2)));
        v128.store(op + h2b + o, f32x4.sub(f32x4.mul(x2, c2), f32x4.mul(x1, s1)));
      } else {
        v128.store(op + o, f32x4.sub(f32x4.mul(x1, c1), f32x4.mul(x2, s1)));
        v128.store(op + h2b + o, f32x4.add(f32x4.mul(x2, c2), f32x4.mul(x1, s2)));
      }
    }
    for (; d < h2; d++) {
      const o = <usize>d << 2;
      const x1 = load<f32>(xp + o), x2 = load<f32>(xp + h2b + o);
      const c1 = load<f32>(cp + o), c2 = load<f32>(cp + h2b + o), s1 = load<f32>(sp + o), s2 = load<f32>(sp + h2b + o);
      store<f32>(op + o, inverse ? x1 * c1 + x2 * s2 : x1 * c1 - x2 * s1);
      store<f32>(op + h2b + o, inverse ? x2 * c2 - x1 * s1 : x2 * c2 + x1 * s2);
    }
  }
}

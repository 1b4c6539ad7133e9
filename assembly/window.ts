// Sliding windows: im2col (x [B, C, H, W] -> cols [B, C*kH*kW, outH*outW]) and its adjoint col2im.
// One tile per (batch, channel) plane: col2im tiles then never add into the same output element.

import { ARG, F32, ldi, pi, pu, sti } from './common';

// Slots (both): esize or dtype, src, dst, B, C, H, W, kH, kW, sH, sW, pH, pW, dH, dW, outH, outW, padBits.
export function im2colTile(p: usize, t: i32): void {
  const es = pi(p, ARG), x = pu(p, ARG + 1), out = pu(p, ARG + 2);
  const H = pi(p, ARG + 5), W = pi(p, ARG + 6), kH = pi(p, ARG + 7), kW = pi(p, ARG + 8);
  const sH = pi(p, ARG + 9), sW = pi(p, ARG + 10), pH = pi(p, ARG + 11), pW = pi(p, ARG + 12);
  const dH = pi(p, ARG + 13), dW = pi(p, ARG + 14), oH = pi(p, ARG + 15), oW = pi(p, ARG + 16), pad = pi(p, ARG + 17);
  const plane = <usize>t * <usize>H * <usize>W;
  let col = <usize>t * <usize>(kH * kW) * <usize>(oH * oW);
  for (let ki = 0; ki < kH; ki++) {
    for (let kj = 0; kj < kW; kj++) {
      for (let oy = 0; oy < oH; oy++) {
        const y = oy * sH - pH + ki * dH;
        for (let ox = 0; ox < oW; ox++, col++) {
          const xx = ox * sW - pW + kj * dW;
          const inside = y >= 0 && y < H && xx >= 0 && xx < W;
          const s = plane + <usize>(y * W + xx);
          if (es == 4) store<i32>(out + (col << 2), inside ? load<i32>(x + (s << 2)) : pad);
          else store<u8>(out + col, inside ? load<u8>(x + s) : <u8>pad);
        }
      }
    }
  }
}

export function col2imTile(p: usize, t: i32): void {
  const dt = pi(p, ARG), cols = pu(p, ARG + 1), out = pu(p, ARG + 2);
  const H = pi(p, ARG + 5), W = pi(p, ARG + 6), kH = pi(p, ARG + 7), kW = pi(p, ARG + 8);
  const sH = pi(p, ARG + 9), sW = pi(p, ARG + 10), pH = pi(p, ARG + 11), pW = pi(p, ARG + 12);
  const dH = pi(p, ARG + 13), dW = pi(p, ARG + 14), oH = pi(p, ARG + 15), oW = pi(p, ARG + 16);
  const plane = <usize>t * <usize>H * <usize>W;
  let col = <usize>t * <usize>(kH * kW) * <usize>(oH * oW);
  for (let ki = 0; ki < kH; ki++) {
    for (let kj = 0; kj < kW; kj++) {
      for (let oy = 0; oy < oH; oy++) {
        const y = oy * sH - pH + ki * dH;
        for (let ox = 0; ox < oW; ox++, col++) {
          const xx = ox * sW - pW + kj * dW;
          if (!(y >= 0 && y < H && xx >= 0 && xx < W)) continue;
          const d = plane + <usize>(y * W + xx);
          if (dt == F32) store<f32>(out + (d << 2), load<f32>(out + (d << 2)) + load<f32>(cols + (col << 2)));
          else sti(out, d, dt, ldi(out, d, dt) + ldi(cols, col, dt));
        }
      }
    }
  }
}

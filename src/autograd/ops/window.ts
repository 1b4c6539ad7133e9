// Sliding windows with their gradient: unfold (im2col), the primitive that convolution and pooling build on.

import type { WindowParams } from '../../tensor/backend.js';
import { fmtShape } from '../../tensor/shape.js';
import type { Tensor } from '../../tensor/tensor.js';
import { record } from '../engine.js';
import { wrap } from './base.js';

export interface Window2d {
  kernel: [number, number];
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
}

/** The window geometry for x [B, C, H, W], with an error naming `op` when the window does not fit. */
export function windowParams(op: string, x: Tensor, w: Window2d): WindowParams {
  if (x.ndim !== 4) throw new Error(`${op}: expected input [batch, channels, height, width], got ${fmtShape(x.shape)}`);
  const [batch, channels, height, width] = x.shape as [number, number, number, number];
  const [kernelH, kernelW] = w.kernel;
  const [strideH, strideW] = w.stride ?? [1, 1];
  const [padH, padW] = w.padding ?? [0, 0];
  const [dilationH, dilationW] = w.dilation ?? [1, 1];
  for (const v of [kernelH, kernelW, strideH, strideW, dilationH, dilationW]) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${op}: kernel, stride and dilation must be positive integers`);
  }
  if (!Number.isInteger(padH) || !Number.isInteger(padW) || padH < 0 || padW < 0) throw new Error(`${op}: padding must be non-negative integers`);
  const outH = Math.floor((height + 2 * padH - dilationH * (kernelH - 1) - 1) / strideH) + 1;
  const outW = Math.floor((width + 2 * padW - dilationW * (kernelW - 1) - 1) / strideW) + 1;
  if (outH < 1 || outW < 1) throw new Error(`${op}: kernel ${kernelH}x${kernelW} does not fit input ${fmtShape(x.shape)} with padding ${padH}x${padW}`);
  return { batch, channels, height, width, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW, outH, outW };
}

/**
 * x [B, C, H, W] -> [B, C * kH * kW, outH * outW], like torch.nn.functional.unfold; positions in the
 * padding read padValue (0 for convolution, -Infinity for max pooling).
 */
export function unfold(x: Tensor, w: Window2d, padValue = 0, op = 'unfold'): Tensor {
  const p = windowParams(op, x, w);
  const shape = [p.batch, p.channels * p.kernelH * p.kernelW, p.outH * p.outW];
  const out = wrap(x, x.backend.im2col(x.buffer, p, padValue), shape);
  return record('unfold', out, [x], [], (g) => [wrap(g, g.backend.col2im(g.buffer, p), x.shape)]);
}

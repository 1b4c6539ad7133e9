// Reference sliding-window kernels: im2col and its adjoint col2im (convolution and pooling build on them).

import type { WindowParams } from '../../tensor/backend.js';
import { allocArray, type DType, type TypedArray } from '../../tensor/dtype.js';

/** Calls fn(colIndex, inputIndex or -1 for padding) for every (b, c, ki, kj, oy, ox). */
function forEachTap(p: WindowParams, fn: (col: number, src: number) => void): void {
  const { batch, channels, height, width, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW, outH, outW } = p;
  let col = 0;
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      const plane = (b * channels + c) * height * width;
      for (let ki = 0; ki < kernelH; ki++) {
        for (let kj = 0; kj < kernelW; kj++) {
          for (let oy = 0; oy < outH; oy++) {
            const y = oy * strideH - padH + ki * dilationH;
            for (let ox = 0; ox < outW; ox++, col++) {
              const x = ox * strideW - padW + kj * dilationW;
              fn(col, y >= 0 && y < height && x >= 0 && x < width ? plane + y * width + x : -1);
            }
          }
        }
      }
    }
  }
}

export function im2col(x: TypedArray, p: WindowParams, padValue: number, dtype: DType): TypedArray {
  const out = allocArray(dtype, p.batch * p.channels * p.kernelH * p.kernelW * p.outH * p.outW);
  forEachTap(p, (col, src) => { out[col] = src < 0 ? padValue : x[src]; });
  return out;
}

export function col2im(cols: TypedArray, p: WindowParams, dtype: DType): TypedArray {
  const out = allocArray(dtype, p.batch * p.channels * p.height * p.width);
  forEachTap(p, (col, src) => { if (src >= 0) out[src] += cols[col]; });
  return out;
}

// The wasm backend's layout of Q8_0 / Q4_0 weights (what WasmBackend.uploadQuant writes, assembly/quant.ts reads):
// ggml's rows interleaved four by four, so that the kernel's four rows at a time read memory in order.
//
// Rows 4g .. 4g + 3 take the same bytes as in ggml's layout (4 * rowBytes from 4g * rowBytes), as blocks of the group:
// for block b, the four rows' f16 scales (8 bytes), then their quants (16 bytes each for Q4_0, 32 for Q8_0). The last
// n % 4 rows stay as ggml stores them.

import { QBLOCK, QBLOCK_BYTES } from '../cpu/quant.js';
import type { QuantWeightParams } from '../../tensor/backend.js';

/** Whether any block's f16 scale is an infinity or NaN (exponent 31), which the interleaved kernel does not convert. */
export function hasNonFiniteScale(blocks: Uint8Array, type: QuantWeightParams['type']): boolean {
  const rs = QBLOCK_BYTES[type];
  for (let o = 0; o < blocks.length; o += rs) if ((blocks[o + 1]! & 0x7c) === 0x7c) return true;
  return false;
}

/** Writes W [n, k]'s blocks (ggml's layout, src) into dst in the interleaved layout. */
export function interleaveQuantRows(src: Uint8Array, dst: Uint8Array, p: QuantWeightParams): void {
  const rs = QBLOCK_BYTES[p.type], qs = rs - 2, nb = p.k / QBLOCK, rowBytes = nb * rs, groups = p.n >> 2;
  for (let g = 0; g < groups; g++) {
    const base = 4 * g * rowBytes;
    for (let b = 0; b < nb; b++) {
      const o = base + 4 * b * rs;
      for (let r = 0; r < 4; r++) {
        const s = base + r * rowBytes + b * rs;
        dst[o + 2 * r] = src[s]!;
        dst[o + 2 * r + 1] = src[s + 1]!;
        dst.set(src.subarray(s + 2, s + rs), o + 8 + r * qs);
      }
    }
  }
  dst.set(src.subarray(4 * groups * rowBytes), 4 * groups * rowBytes);
}

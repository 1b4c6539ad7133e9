// Greedy CTC decoding: repeats collapse, a blank separates real repeats, padding frames are ignored.

import { describe, expect, it } from 'vitest';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { canReadSync } from '../test-util/devices.js';
import { ctcGreedyDecode, ctcGreedyDecodeAsync } from './ctc.js';

/** One-hot-ish logits [B, T, V] whose argmax per frame is the given id. */
const logitsOf = (rows: number[][], vocab: number, device: string) =>
  tensor(rows.map((r) => r.map((id) => Array.from({ length: vocab }, (_, v) => (v === id ? 2 : -1 + 0.1 * v)))), { dtype: 'float32', device });

for (const device of listDevices()) {
  describe(`ctcGreedyDecode on ${device}`, () => {
    it('collapses repeats, then drops blanks', async () => {
      // "h h _ e l l _ l o o" -> h e l l o; a blank between two l's keeps both.
      const x = logitsOf([[1, 1, 0, 2, 3, 3, 0, 3, 4, 4], [0, 0, 2, 2, 2, 0, 0, 0, 0, 0]], 5, device);
      if (canReadSync(device)) expect(ctcGreedyDecode(x)).toEqual([[1, 2, 3, 3, 4], [2]]);
      else expect(() => ctcGreedyDecode(x)).toThrow(`ctcGreedyDecode: device '${device}' cannot be read synchronously; use await ctcGreedyDecodeAsync(logits)`);
      expect(await ctcGreedyDecodeAsync(x)).toEqual([[1, 2, 3, 3, 4], [2]]);
    });

    it('honours a non-zero blank and per-sequence lengths', async () => {
      const x = logitsOf([[4, 1, 1, 4, 1, 2], [2, 2, 4, 3, 3, 1]], 5, device);
      // The sync form where the device reads synchronously, the async one everywhere.
      const decode = async (opts: Parameters<typeof ctcGreedyDecode>[1]) => {
        const got = await ctcGreedyDecodeAsync(x, opts);
        if (canReadSync(device)) expect(ctcGreedyDecode(x, opts)).toEqual(got);
        return got;
      };
      expect(await decode({ blank: 4 })).toEqual([[1, 1, 2], [2, 3, 1]]);
      expect(await decode({ blank: 4, lengths: [3, 0] })).toEqual([[1], []]);
    });
  });
}

describe('ctcGreedyDecode errors', () => {
  const x = logitsOf([[1, 2]], 3, 'cpu');
  it('names the shape', () => {
    expect(() => ctcGreedyDecode(tensor([[1, 2]], { dtype: 'float32' }))).toThrow('ctcGreedyDecode: logits must be [B, T, V], got [1, 2]');
    expect(() => ctcGreedyDecode(x, { blank: 3 })).toThrow('ctcGreedyDecode: blank 3 is out of range [0, 3) for logits [1, 2, 3]');
    expect(() => ctcGreedyDecode(x, { lengths: [1, 2] })).toThrow('ctcGreedyDecode: lengths has 2 entries for logits [1, 2, 3] (B = 1)');
    expect(() => ctcGreedyDecode(x, { lengths: [3] })).toThrow('ctcGreedyDecode: lengths[0] = 3 is out of range [0, 2] (T of logits [1, 2, 3])');
  });
});

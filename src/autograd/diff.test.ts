// The differential suite: thousands of seeded random op calls replayed on every backend against PyTorch 1.13's results.

import { writeFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { listDevices } from '../tensor/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import { canReadSync, hasFloat64 } from '../test-util/devices.js';
import * as E from './ops/elementwise.js';
import { decode, describeCall, familyTable, formatTable, inputValues, loadDiffFixtures, OPS, replay, specValues, type Outcome } from '../test-util/diff.js';

const fixtures = loadDiffFixtures();

/** The verdicts of calls replayed one after another on cpu with the 'tr' tolerance. */
async function verdicts(calls: typeof fixtures.calls): Promise<Outcome['verdict'][]> {
  const out: Outcome['verdict'][] = [];
  for (const c of calls) out.push((await replay(c, 'tr', 'cpu')).verdict);
  return out;
}

describe('differential suite (test/data/diff, scripts/gen_diff_fixtures.py)', () => {
  test('covers every recorded op, at least 5,000 calls, with the same input generator as the recorder', () => {
    expect(fixtures.calls.length).toBeGreaterThanOrEqual(5000);
    expect(Object.keys(fixtures.ops).filter((op) => !OPS[op])).toEqual([]);
    for (const c of fixtures.prng) expect(Array.from(specValues(c))).toEqual(Array.from(decode(c.v)));
  });

  test('judges a wrong value as silent and a one-sided error as raise (the harness can fail)', async () => {
    const exp = OPS.exp!, calls = fixtures.calls.filter((c) => c.op === 'exp' && c.out && c.out[0]!.s.length > 0).slice(0, 40);
    try {
      // 84 ulp too large: caught wherever the output has a finite non-zero element (most calls; some hold only 0 / inf / NaN).
      OPS.exp = (xs, p, device) => E.mul(exp(xs, p, device) as Tensor, 1 + 1e-5);
      expect((await verdicts(calls)).filter((v) => v === 'silent').length).toBeGreaterThan(calls.length / 2);
      OPS.exp = () => { throw new Error('exp: broken'); };
      expect((await verdicts(calls)).every((v) => v === 'raise')).toBe(true);
    } finally {
      OPS.exp = exp;
    }
    expect((await verdicts(calls)).every((v) => v === 'pass')).toBe(true);
  });

  for (const device of listDevices()) {
    test(`no silent mismatch on ${device}`, async () => {
      const outcomes: Outcome[] = [];
      // A device without float64 (webgpu) replays the calls whose inputs it can hold.
      const calls = hasFloat64(device) ? fixtures.calls : fixtures.calls.filter((c) => c.in.every((s) => s.d !== 'float64'));
      for (const c of calls) outcomes.push(await replay(c, fixtures.ops[c.op]!.tol, device));
      console.log(formatTable(device, familyTable(outcomes, fixtures.ops)));
      const silent = outcomes.filter((o) => o.verdict === 'silent');
      // DIFF_REPORT=path writes every mismatch (silent and one-sided raises) with its repro, for whoever fixes them.
      const report = process.env.DIFF_REPORT;
      if (report) {
        const lines = outcomes.filter((o) => o.verdict !== 'pass').map((o) => `${o.verdict}\t${device}\t${o.call.op}\t${describeCall(o.call)}\t${o.detail}\t${inputValues(o.call)}`);
        writeFileSync(`${report}.${device}.tsv`, lines.join('\n') + '\n');
      }
      expect(silent.map((o) => `${describeCall(o.call)}: ${o.detail}`)).toEqual([]);
    }, canReadSync(device) ? undefined : 900_000); // webgpu on software Vulkan reads back once per call: 40 s idle, over 300 s on a loaded machine
  }
});

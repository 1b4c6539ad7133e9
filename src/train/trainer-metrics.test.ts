// The Trainer's per-step statistics (LossOutput.metrics): averages over batches and logging intervals worked out by
// hand, in metrics.jsonl, StepInfo, the progress line and the metric pictures; bad metrics are refused by name.

import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { mul } from '../autograd/ops/elementwise.js';
import { sum } from '../autograd/ops/reduce.js';
import { Linear } from '../nn/linear.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import type { MetricRecord } from './checkpoint.js';
import { Trainer, type LossOutput, type StepInfo, type TrainerConfig } from './trainer.js';

/** Batch k = 0, 1, 2, ...: its index. */
const batches = () => Array.from({ length: 8 }, (_, k) => ({ k }));

/**
 * Batch k reports a = k (a number), b = k² (a tensor), c = 10k on even batches only, d = 7 on batch 7 only; the loss
 * is NaN on the batches in `nanAt`.
 */
const lossFn = (device: string, nanAt: readonly number[] = []) => (m: Linear, { k }: { k: number }): LossOutput => {
  const out = sum(m.forward(tensor([[1]], { dtype: 'float32', device })));
  return {
    loss: nanAt.includes(k) ? mul(out, NaN) : out,
    metrics: { a: k, b: tensor(k * k, { dtype: 'float32', device }), ...(k % 2 === 0 ? { c: 10 * k } : {}), ...(k === 7 ? { d: 7 } : {}) },
  };
};

const trainer = (device: string, extra: Partial<TrainerConfig<Linear, { k: number }>> = {}) => new Trainer<Linear, { k: number }>({
  model: new Linear(1, 1, { device }), data: batches, loss: lossFn(device), maxSteps: 4, gradAccumSteps: 2, logEvery: 2, progress: false, ...extra,
});

const trainRecords = (metrics: readonly MetricRecord[]) => metrics.filter((r) => r.kind === 'train');

describe('Trainer metrics', () => {
  for (const device of listDevices()) {
    test(`averaged over a step's batches, then over the logging interval (${device})`, async () => {
      const outDir = await mkdtemp(join(tmpdir(), 'attend-metrics-'));
      const steps: StepInfo[] = [];
      const lines: string[] = [];
      const result = await trainer(device, {
        outDir, onStep: (info) => { steps.push(info); }, progressMetrics: ['b', 'c'],
        progress: { write: (s: string) => lines.push(s), isTTY: false },
        plots: [{ file: 'ab.svg', metrics: ['a', 'b'], title: 'a and b' }, { file: 'none.svg', metrics: ['never'] }],
      }).train();
      // Step 1 = batches 0, 1; step 2 = 2, 3; step 3 = 4, 5; step 4 = 6, 7 (c only on even batches, d only on 7).
      expect(steps.map((s) => s.metrics)).toEqual([
        { a: 0.5, b: 0.5, c: 0 },
        { a: 2.5, b: 6.5, c: 20 },
        { a: 4.5, b: 20.5, c: 40 },
        { a: 6.5, b: 42.5, c: 60, d: 7 },
      ]);
      // Intervals: steps 1-2 and 3-4.
      const want = [{ step: 2, a: 1.5, b: 3.5, c: 10 }, { step: 4, a: 5.5, b: 31.5, c: 50, d: 7 }];
      expect(trainRecords(result.metrics)).toMatchObject(want);
      expect(trainRecords(result.metrics)[0]).not.toHaveProperty('d');
      const onDisk = (await readFile(join(outDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as MetricRecord);
      expect(trainRecords(onDisk)).toMatchObject(want);
      expect(lines[0]).toMatch(/^step 2\/4 \| loss -?\d\.\d{4} \| b 3\.5 \| c 10 \| lr /);
      const svg = await readFile(join(outDir, 'ab.svg'), 'utf8');
      expect(svg).toContain('a and b');
      expect(svg.match(/<polyline /g)).toHaveLength(2);
      await expect(readFile(join(outDir, 'none.svg'))).rejects.toThrow(/ENOENT/);
    });
  }

  test('a skipped step (non-finite loss) is left out of the interval, as its loss is; up to 3 metrics show by default', async () => {
    const device = listDevices()[0]!;
    const steps: StepInfo[] = [];
    const lines: string[] = [];
    const result = await trainer(device, {
      loss: lossFn(device, [5]), skipNonfinite: true, onStep: (info) => { steps.push(info); },
      progress: { write: (s: string) => lines.push(s), isTTY: false },
    }).train();
    expect(result.skipped).toBe(1);
    expect(steps[2]).toMatchObject({ skipped: true, metrics: { a: 4.5 } }); // the step itself still reports its batches
    expect(trainRecords(result.metrics)[1]).toMatchObject({ step: 4, a: 6.5, b: 42.5, c: 60, d: 7, skipped: 1 });
    expect(lines[0]).toMatch(/\| a 1\.5 \| b 3\.5 \| c 10 \| lr/);
    expect(lines[1]).not.toMatch(/\| a /); // four metrics by then: none on the line unless progressMetrics names them
  });

  test('bad metrics are refused with the metric name', async () => {
    const device = listDevices()[0]!;
    const base = (metrics: Record<string, unknown>) => trainer(device, { loss: (m: Linear) => ({ loss: sum(m.weight), metrics: metrics as LossOutput['metrics'] }) }).train();
    await expect(base({ loss: 1 })).rejects.toThrow("the loss function's metric 'loss' has the name of a field of metrics.jsonl");
    await expect(base({ kl: tensor([1, 2], { dtype: 'float32', device }) })).rejects.toThrow("the loss function's metric 'kl' must be a number or a single-value tensor, got");
    await expect(base({ kl: '0.5' })).rejects.toThrow("metric 'kl' must be a number or a single-value tensor, got string");
    expect(() => trainer(device, { plots: [{ file: '../x.svg', metrics: ['a'] }] })).toThrow('plots: file must be a file name ending in .svg');
  });
});

// attend's Trainer against PyTorch's first steps on a tiny GPT-2 (test/data/gpt-trace, from scripts/gen_gpt_trace.py
// running reference/gpt_brown.py): the same init and batches give train losses within 1e-4 relative at every step,
// the criterion that a doubled learning rate fails (a final loss within 2% cannot tell the two apart).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { reshape } from '../autograd/ops/movement.js';
import { loadSafetensors } from '../io/safetensors.js';
import { GPT2LMHeadModel, type GPT2Config } from '../models/gpt2.js';
import { crossEntropy } from '../nn/functional.js';
import { listDevices } from '../tensor/backend.js';
import type { MetricRecord } from '../train/checkpoint.js';
import { noDecayParameterNames, Trainer } from '../train/trainer.js';
import { planSource, TRAIN_GAP_LIMIT, trainingOptions, trainLossGap, type ExportManifest, type LmBatch } from './gpt-brown.js';

const DIR = fileURLToPath(new URL('../../test/data/gpt-trace', import.meta.url));
const manifest = JSON.parse(readFileSync(join(DIR, 'reference.json'), 'utf8')) as ExportManifest;
const torchRecords = readFileSync(join(DIR, 'torch-metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricRecord);

const bytes = (file: string): Uint8Array => new Uint8Array(readFileSync(join(DIR, file)));
const u16 = (file: string): Uint16Array => { const b = bytes(file); const v = new DataView(b.buffer); return Uint16Array.from({ length: b.length / 2 }, (_, i) => v.getUint16(2 * i, true)); };
const i32 = (file: string): Int32Array => { const b = bytes(file); const v = new DataView(b.buffer); return Int32Array.from({ length: b.length / 4 }, (_, i) => v.getInt32(4 * i, true)); };

/** attend's run on the export, with the learning rates scaled by `lrScale`; returns its metric records. */
async function run(device: string, lrScale: number): Promise<MetricRecord[]> {
  const t = manifest.training;
  const model = new GPT2LMHeadModel(manifest.model as GPT2Config);
  const init = await loadSafetensors(join(DIR, manifest.init));
  const loaded = model.loadStateDict(init, { strict: false });
  for (const x of Object.values(init)) x.dispose();
  expect(loaded.missingKeys.filter((k) => k !== 'lm_head.weight')).toEqual([]); // lm_head is tied to wte
  // The reference's grouping (HF's rule, written in Python) is what attend's default gives.
  expect([...noDecayParameterNames(model)].sort()).toEqual(t.noDecay);
  const opts = trainingOptions({ ...t, lr: t.lr * lrScale, minLr: t.minLr * lrScale });
  const trainer = new Trainer<GPT2LMHeadModel, LmBatch>({
    model, device, seed: t.seed, progress: false,
    data: planSource(u16(manifest.arrays.train.file), i32(manifest.arrays.batches.file), t.seqLen, t.batchSize, device),
    loss: (m, b) => {
      const logits = m.forward({ inputIds: b.inputIds }).logits;
      return crossEntropy(reshape(logits, [-1, logits.shape[2]!]), reshape(b.targets, [-1]));
    },
    ...opts,
  });
  return (await trainer.train()).metrics;
}

for (const device of listDevices()) {
  describe(`attend's Trainer against PyTorch's loss trace on ${device}`, () => {
    test('every train loss of the 30 steps within 1e-4 relative; a doubled learning rate is caught', async () => {
      const ours = await run(device, 1);
      const gap = trainLossGap(ours, torchRecords);
      expect(gap.steps).toHaveLength(manifest.training.steps);
      expect(gap.maxRelativeGap).toBeLessThan(TRAIN_GAP_LIMIT);
      // Training moved the loss: the comparison is not of untrained models.
      const first = torchRecords[0]!['loss'] as number, last = torchRecords[manifest.training.steps - 1]!['loss'] as number;
      expect(first - last).toBeGreaterThan(0.1);

      const doubled = trainLossGap(await run(device, 2), torchRecords);
      expect(doubled.maxRelativeGap).toBeGreaterThan(10 * TRAIN_GAP_LIMIT);
    }, 60_000);
  });
}

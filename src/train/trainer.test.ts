// The Trainer: the same updates as a hand-written loop, bitwise-exact resume after a crash or a stop, atomic
// checkpoints, metrics.jsonl, progress output, the loss picture, and clear errors for bad resumes and configs.

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { add, mul, relu } from '../autograd/ops/elementwise.js';
import { DataLoader } from '../data/loader.js';
import { Dropout } from '../nn/activation.js';
import { crossEntropy } from '../nn/functional.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { cosineSchedule, setLr } from '../optim/schedule.js';
import { onesLike, randn, tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { PREV_STATE_FILE, STATE_FILE, type MetricRecord } from './checkpoint.js';
import { Trainer, type TrainerConfig } from './trainer.js';

class MLP extends Module {
  fc1: Linear;
  drop = new Dropout(0.2); // draws from the default generator: resume must restore it
  fc2: Linear;
  constructor(hidden = 16) {
    super();
    this.fc1 = new Linear(8, hidden);
    this.fc2 = new Linear(hidden, 3);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.drop.forward(relu(this.fc1.forward(x))));
  }
}

interface Item { x: number[]; y: number }
interface Batch { x: Tensor; y: Tensor }

// 40 items of a 3-class problem, from a fixed generator.
const data: Item[] = (() => {
  const g = new Generator(123);
  const xs = g.normal(40 * 8);
  return Array.from({ length: 40 }, (_, i) => {
    const x = Array.from(xs.subarray(i * 8, i * 8 + 8));
    return { x, y: (x[0]! + x[1]! > 0 ? 1 : 0) + (x[2]! > 0.5 ? 1 : 0) };
  });
})();

const collate = (items: Item[], device?: string): Batch => ({
  x: tensor(items.flatMap((it) => it.x), { shape: [items.length, 8], device }),
  y: tensor(items.map((it) => it.y), { dtype: 'int32', device }),
});
const loader = (device?: string): DataLoader<Item, Batch> => new DataLoader(data, { batchSize: 6, shuffle: true, seed: 5, collate: (items) => collate(items, device) });

/** The loss with input noise from a generator of the run's own (resume must restore it too). */
const lossWithNoise = (noise: Generator) => (m: MLP, b: Batch) => ({
  loss: crossEntropy(m.forward(add(b.x, mul(randn(b.x.shape, { generator: noise, device: b.x.device }), 0.05))), b.y),
  tokens: b.x.shape[0]!,
});

const evalLoss = async (m: MLP): Promise<Record<string, number>> => {
  const l = tidy(() => { const b = collate(data.slice(0, 12)); return crossEntropy(m.forward(b.x), b.y); });
  const v = await l.item();
  l.dispose();
  return { loss: v };
};

const tmpDirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'attend-trainer-'));
  tmpDirs.push(d);
  return d;
};
afterAll(() => { for (const d of tmpDirs) rmSync(d, { recursive: true, force: true }); });

type Overrides = Partial<TrainerConfig<MLP, Batch>>;

/** A run of the standard test setup; each call builds the same initial model from manualSeed(1). */
function makeTrainer(over: Overrides = {}, hidden = 16): Trainer<MLP, Batch> {
  manualSeed(1);
  const model = new MLP(hidden);
  const noise = new Generator(77);
  return new Trainer<MLP, Batch>({
    model,
    loss: lossWithNoise(noise),
    data: loader(),
    evaluate: evalLoss,
    optimizer: { lr: 0.05, weightDecay: 0.1 },
    schedule: { kind: 'cosine', warmupSteps: 3, minLr: 0.005 },
    clipGradNorm: 0.5,
    gradAccumSteps: 2, // 24 batches over 12 steps: 3.4 epochs of 7 batches, so shuffling crosses epochs
    maxSteps: 12,
    logEvery: 2,
    evalEvery: 5,
    seed: 3,
    generators: { noise },
    progress: false,
    ...over,
  });
}

async function weights(m: Module): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(m.stateDict())) out[k] = [...(await t.data())];
  return out;
}

const readMetrics = (dir: string): MetricRecord[] => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricRecord);
/** Records without their timing fields, which differ between runs. */
const stable = (rs: MetricRecord[]): MetricRecord[] => rs.map(({ tokensPerSecond: _t, ...r }) => r as MetricRecord);

// The reference run, uninterrupted, shared by the tests below.
const refDir = tmp();
const reference = (async () => {
  const t = makeTrainer({ outDir: refDir, checkpointEvery: 4 });
  const result = await t.train();
  return { result, weights: await weights(t.model) };
})();

describe('Trainer', () => {
  test('makes the same updates as a hand-written loop (schedule index, accumulation, clipping, AdamW)', async () => {
    const { result } = await reference;
    manualSeed(1);
    const model = new MLP();
    const noise = new Generator(77);
    const lossOf = lossWithNoise(noise);
    // Hugging Face's grouping: weight decay on the weights, none on the biases.
    const opt = new AdamW([{ params: [model.fc1.weight, model.fc2.weight], weightDecay: 0.1 }, { params: [model.fc1.bias!, model.fc2.bias!], weightDecay: 0 }], { lr: 0.05 });
    const lr = cosineSchedule({ maxLr: 0.05, minLr: 0.005, warmupSteps: 3, totalSteps: 12 });
    manualSeed(3);
    const dl = loader();
    const batches = [0, 1, 2, 3].flatMap((e) => [...dl.batches(e)]);
    const losses: number[] = [];
    for (let step = 0; step < 12; step++) {
      setLr(opt, lr(step));
      let sum = 0;
      for (let k = 0; k < 2; k++) {
        const b = batches[step * 2 + k]!;
        const l = tidy(() => { const loss = lossOf(model, b).loss; loss.div(2).backward(); return loss.detach(); });
        sum += await l.item();
        l.dispose();
      }
      tidy(() => { clipGradNorm(model.parameters(), 0.5); opt.step(); opt.zeroGrad(); });
      losses.push(sum / 2);
    }
    for (const b of batches) { b.x.dispose(); b.y.dispose(); }
    expect(result.losses.map((l) => l.loss)).toEqual(losses);
    expect(result.losses.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(losses[11]!).toBeLessThan(losses[0]!); // it learns
  });

  test('resuming after a crash repeats the uninterrupted run exactly (losses of every step and final weights)', async () => {
    const ref = await reference;
    const dir = tmp();
    const crash = makeTrainer({ outDir: dir, checkpointEvery: 4, onStep: ({ step }) => { if (step === 6) throw new Error('simulated crash'); } });
    await expect(crash.train()).rejects.toThrow('simulated crash');
    expect(JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')).step).toBe(4);
    // Metrics of steps 5 and 6 were appended before the crash; the resumed run must not keep them twice.
    expect(readMetrics(dir).some((r) => r.step === 6)).toBe(true);

    const resumed = makeTrainer({ outDir: dir, checkpointEvery: 4, resume: true });
    // A different initial model: everything must come from the checkpoint.
    noGrad(() => { for (const p of resumed.model.parameters()) p.replaceStorage(onesLike(p)); });
    const result = await resumed.train();
    expect(result.losses.map((l) => l.step)).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    expect(result.losses).toEqual(ref.result.losses.slice(4));
    expect(await weights(resumed.model)).toEqual(ref.weights);
    expect(stable(readMetrics(dir))).toEqual(stable(readMetrics(refDir)));
    expect(stable(result.metrics)).toEqual(stable(ref.result.metrics));
  });

  test('on the wasm device too: the model moves there and a resumed run repeats the uninterrupted one exactly', async () => {
    const onWasm = (over: Overrides): Trainer<MLP, Batch> => makeTrainer({ device: 'wasm', data: loader('wasm'), evaluate: undefined, ...over });
    const whole = onWasm({});
    expect(whole.model.fc1.weight.device).toBe('wasm');
    const ref = await whole.train();
    const dir = tmp();
    await expect(onWasm({ outDir: dir, checkpointEvery: 5, onStep: ({ step }) => { if (step === 8) throw new Error('crash'); } }).train()).rejects.toThrow('crash');
    const resumed = onWasm({ outDir: dir, resume: true });
    expect((await resumed.train()).losses).toEqual(ref.losses.slice(5));
    expect(await weights(resumed.model)).toEqual(await weights(whole.model));
  });

  test('stop() ends after the current step with a checkpoint there; resuming from it continues exactly', async () => {
    const ref = await reference;
    const dir = tmp();
    const first = makeTrainer({ outDir: dir, onStep: ({ step }) => { if (step === 7) first.stop(); } });
    const part = await first.train();
    expect(part.stopped).toBe(true);
    expect(part.step).toBe(7);
    expect(part.losses).toEqual(ref.result.losses.slice(0, 7));
    // Resume from that folder into a new one: new checkpoints go to outDir.
    const out = join(tmp(), 'continued');
    const rest = await makeTrainer({ outDir: out, resume: dir }).train();
    expect(rest.losses).toEqual(ref.result.losses.slice(7));
    expect(rest.stopped).toBe(false);
    expect(JSON.parse(readFileSync(join(out, STATE_FILE), 'utf8')).step).toBe(12);
  });

  test('a crash between writing the weights and the state resumes from the previous complete checkpoint', async () => {
    const ref = await reference;
    const dir = tmp();
    // A folder where the step-6 optimizer file must go makes its rename fail: the model file of step 6 is written,
    // the state still names step 3.
    mkdirSync(join(dir, 'optimizer-00000006.safetensors'));
    await expect(makeTrainer({ outDir: dir, checkpointEvery: 3 }).train()).rejects.toThrow(/optimizer-00000006\.safetensors/);
    expect(readdirSync(dir)).toContain('model-00000006.safetensors');
    expect(JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')).step).toBe(3);
    rmSync(join(dir, 'optimizer-00000006.safetensors'), { recursive: true });
    writeFileSync(join(dir, `${STATE_FILE}.tmp-999`), '{"half": '); // a state file cut off mid-write

    const result = await makeTrainer({ outDir: dir, checkpointEvery: 3, resume: true }).train();
    expect(result.losses).toEqual(ref.result.losses.slice(3));
    // The last two checkpoints stay: the latest and the one before it (the fallback when the latest is damaged).
    expect(readdirSync(dir).sort()).toEqual(['loss.svg', 'metrics.jsonl', 'model-00000009.safetensors', 'model-00000012.safetensors',
      'optimizer-00000009.safetensors', 'optimizer-00000012.safetensors', STATE_FILE, PREV_STATE_FILE]);
  });

  test('outDir holds metrics.jsonl (a record per log and eval) and loss.svg with both curves', async () => {
    const { result } = await reference;
    const records = readMetrics(refDir);
    expect(records.filter((r) => r.kind === 'train').map((r) => r.step)).toEqual([2, 4, 6, 8, 10, 12]);
    expect(records.filter((r) => r.kind === 'eval').map((r) => r.step)).toEqual([5, 10, 12]);
    const train2 = records.find((r) => r.kind === 'train' && r.step === 2)!;
    expect(train2['loss']).toBe((result.losses[0]!.loss + result.losses[1]!.loss) / 2);
    expect(train2['tokens']).toBe(24); // 4 batches of 6 items
    expect(typeof train2['gradNorm']).toBe('number');
    const svg = readFileSync(join(refDir, 'loss.svg'), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('>train loss</text>');
    expect(svg).toContain('>eval loss</text>');
    expect(svg.match(/<polyline /g)).toHaveLength(2);
  });

  test('progress: one line per log step when not a TTY, a line rewritten in place on a TTY', async () => {
    const lines: string[] = [];
    await makeTrainer({ maxSteps: 4, logEvery: 2, evaluate: undefined, progress: { write: (s: string) => lines.push(s), isTTY: false } }).train();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^step 2\/4 \| loss \d+\.\d{4} \| lr \d\.\d{2}e-\d \| [\d.]+[kM]? tok\/s \| ETA \d+s\n$/);
    const tty: string[] = [];
    await makeTrainer({ maxSteps: 3, progress: { write: (s: string) => tty.push(s), isTTY: true } }).train();
    expect(tty.filter((s) => s.startsWith('\r\x1b[K'))).toHaveLength(3);
    expect(tty.some((s) => /^eval at step 3: loss \d+\.\d{4}\n$/.test(s))).toBe(true);
  });

  test('bad resumes: a missing folder, a folder without a checkpoint, another model shape; nothing is written', async () => {
    await reference;
    const out = join(tmp(), 'out');
    await expect(makeTrainer({ outDir: out, resume: '/nonexistent/run' }).train()).rejects.toThrow(/cannot resume from \/nonexistent\/run: no such directory/);
    await expect(makeTrainer({ outDir: out, resume: true }).train()).rejects.toThrow(/cannot resume from .*: no such directory/);
    const empty = tmp();
    await expect(makeTrainer({ outDir: empty, resume: true }).train()).rejects.toThrow(/has no trainer_state\.json \(no complete checkpoint was written there\)/);
    await expect(makeTrainer({ outDir: out, resume: refDir }, 12).train()).rejects.toThrow(/size mismatch for fc1\.bias: the checkpoint has \[16\], the model \[12\]/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(empty)).toEqual([]);
    await expect(makeTrainer({ outDir: refDir }).train()).rejects.toThrow(/already holds a checkpoint; pass resume: true/);
    // Resuming from another folder into one that holds a checkpoint would mix the two runs' checkpoints.
    const other = tmp();
    await makeTrainer({ outDir: other }).train();
    await expect(makeTrainer({ outDir: other, resume: refDir }).train()).rejects.toThrow(/already holds a checkpoint; pass resume: true/);
    await expect(makeTrainer({ outDir: out, resume: refDir, seed: 4 }).train()).rejects.toThrow(/trained with seed 3, this run has seed 4/);
  });

  test('config errors', () => {
    expect(() => makeTrainer({ maxSteps: 0 })).toThrow(/maxSteps must be a positive integer, got 0/);
    expect(() => makeTrainer({ maxSteps: undefined })).toThrow(/give maxSteps or epochs/);
    expect(() => makeTrainer({ maxSteps: undefined, epochs: 1, data: () => [] })).toThrow(/epochs needs a data source of known length/);
    expect(() => makeTrainer({ checkpointEvery: 2 })).toThrow(/checkpointEvery and resume: true need an outDir/);
    expect(() => makeTrainer({ generators: { default: new Generator(1) } })).toThrow(/'default' is taken/);
    expect(() => makeTrainer({ schedule: { warmupSteps: 20 } })).toThrow(/warmupSteps \(20\) is more than the 12 training steps/);
  });

  test('epochs bound the run; a factory of batches works; an empty epoch is an error', async () => {
    // 40 items in batches of 6: 7 batches an epoch, 2 epochs = 14 batches = 5 steps of 3 (the last of 2).
    const t = makeTrainer({ maxSteps: undefined, epochs: 2, gradAccumSteps: 3, evaluate: undefined });
    expect(t.totalSteps).toBe(5);
    expect((await t.train()).step).toBe(5);
    const seeds: number[] = [];
    const factory = (epoch: number, seed: number): Batch[] => { seeds.push(seed); return [...loader().batches(epoch)]; };
    expect((await makeTrainer({ data: factory, maxSteps: 5 }).train()).step).toBe(5);
    expect(seeds).toEqual([3, 3]);
    await expect(makeTrainer({ data: () => [], maxSteps: 3 }).train()).rejects.toThrow(/epoch 0 of the training data has no batches/);
  });
});

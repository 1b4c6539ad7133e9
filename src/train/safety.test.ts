// The Trainer never mixes, corrupts or silently spoils a run: the output folder is locked (a second process is
// refused, a stale lock taken over), checkpoints are checksummed (a flipped bit falls back to the previous one), a
// non-finite loss or gradient stops the run naming the step and parameter (or is skipped and counted), and weight
// decay spares biases and normalization weights as Hugging Face's Trainer does.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import '../index.js';
import { detach } from '../autograd/ops/movement.js';
import { trainCommand } from '../cli/train.js';
import { add, mul, relu, sqrt, sub } from '../autograd/ops/elementwise.js';
import { sum } from '../autograd/ops/reduce.js';
import { crossEntropy } from '../nn/functional.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { LayerNorm, RMSNorm } from '../nn/normalization.js';
import { tensor, zeros } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { PREV_STATE_FILE, STATE_FILE } from './checkpoint.js';
import { LOCK_FILE } from './lock.js';
import { noDecayParameterNames, Trainer, type TrainerConfig } from './trainer.js';

class Net extends Module {
  fc1 = new Linear(4, 8);
  norm = new LayerNorm(8);
  fc2 = new Linear(8, 3);
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.norm.forward(relu(this.fc1.forward(x))));
  }
}

interface Batch { x: Tensor; y: Tensor }

// Batch i of every epoch: 6 items from a generator seeded by (epoch, i).
const batches = (epoch: number): Batch[] => Array.from({ length: 5 }, (_, i) => {
  const g = new Generator(1000 * epoch + i);
  const x = g.normal(24);
  return { x: tensor(Float32Array.from(x), { shape: [6, 4] }), y: tensor(Array.from({ length: 6 }, (_, k) => (x[4 * k]! > 0 ? 1 : 0) + (x[4 * k + 1]! > 0.5 ? 1 : 0)), { dtype: 'int32' }) };
});

const ce = (m: Net, b: Batch): Tensor => crossEntropy(m.forward(b.x), b.y);

const dirs: string[] = [];
const children: ChildProcess[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'attend-safety-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function makeTrainer(over: Partial<TrainerConfig<Net, Batch>> = {}): Trainer<Net, Batch> {
  manualSeed(1);
  return new Trainer<Net, Batch>({
    model: new Net(), loss: ce, data: batches, maxSteps: 12, logEvery: 1, seed: 2, progress: false,
    optimizer: { lr: 0.02, weightDecay: 0.1 }, schedule: { kind: 'constant' }, clipGradNorm: 1,
    ...over,
  });
}

const messages = (): { lines: string[]; progress: { write: (s: string) => void; isTTY: boolean } } => {
  const lines: string[] = [];
  return { lines, progress: { write: (s: string) => { lines.push(s); }, isTTY: false } };
};

const reference = (async () => (await makeTrainer().train()).losses)();

describe('the output folder is locked', () => {
  test('a run on a folder another process holds fails at once naming its PID; after kill -9 the lock is taken over', async () => {
    const dir = join(tmp(), 'run');
    const lockTs = fileURLToPath(new URL('./lock.ts', import.meta.url));
    const code = `const { lockDir } = await import(${JSON.stringify(lockTs)}); await lockDir(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('locked')) resolve(); }));
    await expect(makeTrainer({ outDir: dir }).train()).rejects.toThrow(new RegExp(`is in use by another run: PID ${child.pid} `));
    // attend train holds the folder for the whole recipe (its exports are written outside the Trainer).
    await expect(trainCommand.run(['gpt-brown', '--smoke', '--skip-nonfinite', '--out', dir], () => undefined)).rejects.toThrow(new RegExp(`is in use by another run: PID ${child.pid} `));
    expect(readdirSync(dir)).toEqual([LOCK_FILE]); // nothing of ours was written

    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const out = messages();
    const result = await makeTrainer({ outDir: dir, progress: out.progress }).train();
    expect(result.losses).toEqual(await reference);
    expect(out.lines.join('')).toMatch(new RegExp(`took over a stale lock \\(process ${child.pid} no longer exists`));
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  }, 30_000);
});

describe('checkpoints carry checksums', () => {
  const flip = (path: string, at = -1): void => {
    const b = readFileSync(path);
    b[at < 0 ? b.length + at : at]! ^= 0x10;
    writeFileSync(path, b);
  };
  /** A run stopped after step 8, with checkpoints at steps 4 and 8. */
  const stopped = async (): Promise<string> => {
    const dir = tmp();
    const t = makeTrainer({ outDir: dir, checkpointEvery: 4, onStep: ({ step }) => { if (step === 8) t.stop(); } });
    await t.train();
    return dir;
  };

  test('the state records a SHA-256 per file; the previous checkpoint is kept', async () => {
    const dir = await stopped();
    const state = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8'));
    expect(state.step).toBe(8);
    expect(state.model.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(state.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(readFileSync(join(dir, PREV_STATE_FILE), 'utf8')).step).toBe(4);
    expect(readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort()).toEqual(['model-00000004.safetensors', 'model-00000008.safetensors', 'optimizer-00000004.safetensors', 'optimizer-00000008.safetensors']);
  });

  test('a flipped bit in the weights: a clear error naming the file, and the previous checkpoint resumes exactly', async () => {
    const dir = await stopped();
    flip(join(dir, 'model-00000008.safetensors'));
    const out = messages();
    const result = await makeTrainer({ outDir: dir, resume: true, progress: out.progress }).train();
    expect(out.lines.join('')).toContain(`${join(dir, 'model-00000008.safetensors')} is corrupted: its SHA-256 differs from the one ${STATE_FILE} records; resuming from the previous checkpoint instead (step 4)`);
    expect(result.losses).toEqual((await reference).slice(4));
    expect(JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')).step).toBe(12);
    expect(readdirSync(dir)).not.toContain('model-00000008.safetensors'); // the damaged one is gone, not rotated in
  });

  test('resume given as a path to outDir spelled differently adopts the previous checkpoint as resume: true does', async () => {
    const dir = await stopped();
    flip(join(dir, 'model-00000008.safetensors'));
    const result = await makeTrainer({ outDir: dir, resume: `${dir}/`, progress: false }).train();
    expect(result.losses).toEqual((await reference).slice(4));
    expect(JSON.parse(readFileSync(join(dir, PREV_STATE_FILE), 'utf8')).step).toBe(4); // not the damaged step 8
    expect(readdirSync(dir)).not.toContain('model-00000008.safetensors');
  });

  test('a flipped bit in the optimizer state or in trainer_state.json is caught too; both checkpoints damaged is an error', async () => {
    const dir = await stopped();
    flip(join(dir, 'optimizer-00000008.safetensors'), 200);
    const out = messages();
    const other = join(tmp(), 'elsewhere');
    await makeTrainer({ outDir: other, resume: dir, progress: out.progress, maxSteps: 9 }).train();
    expect(out.lines.join('')).toContain('optimizer-00000008.safetensors is corrupted');
    expect(readFileSync(join(dir, STATE_FILE), 'utf8')).toContain('"step": 8'); // a folder resumed from is only read

    const state = join(dir, STATE_FILE);
    writeFileSync(state, readFileSync(state, 'utf8').replace('"tokens": 0', '"tokens": 1'));
    await expect(makeTrainer({ outDir: join(tmp(), 'x'), resume: dir }).train().then(() => 'ok')).resolves.toBe('ok');
    flip(join(dir, 'model-00000004.safetensors'));
    await expect(makeTrainer({ outDir: join(tmp(), 'y'), resume: dir }).train()).rejects.toThrow(
      new RegExp(`${state} is corrupted: its content does not match the checksum it records; the previous checkpoint is damaged too: .*model-00000004\\.safetensors is corrupted`));
  });
});

describe('non-finite losses and gradients', () => {
  /** A loss that goes wrong at the given steps (counted by calls: one batch per step). */
  const failing = (at: number[], how: (m: Net, b: Batch) => Tensor) => {
    let call = 0;
    return (m: Net, b: Batch): Tensor => (at.includes(++call) ? how(m, b) : ce(m, b));
  };
  const nanLoss = (m: Net, b: Batch): Tensor => mul(ce(m, b), NaN);
  // d sqrt(u)/du at u = 0 is infinite: only fc2.bias gets a non-finite gradient; the loss stays finite.
  const infGrad = (m: Net, b: Batch): Tensor => add(ce(m, b), sum(sqrt(sub(m.fc2.bias!, detach(m.fc2.bias!)))));

  test('stop with an error naming the step and the first non-finite gradient; the last checkpoint stays, nothing non-finite is written', async () => {
    const dir = tmp();
    await expect(makeTrainer({ outDir: dir, checkpointEvery: 4, loss: failing([6], nanLoss) }).train()).rejects.toThrow(
      `Trainer: step 6: the loss is NaN; the first parameter with a non-finite gradient is 'fc1.weight' (NaN). Training stopped before the update; the last checkpoint (step 4) in ${dir} is intact; lower the learning rate, or pass skipNonfinite (--skip-nonfinite) to skip such batches`);
    expect(JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')).step).toBe(4);
    const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8');
    expect(metrics).not.toMatch(/null|NaN|Infinity/);
    expect(metrics.trim().split('\n').map((l) => JSON.parse(l).step)).toEqual([1, 2, 3, 4, 5]);

    await expect(makeTrainer({ loss: failing([3], infGrad) }).train()).rejects.toThrow(/^Trainer: step 3: the loss is finite; the first parameter with a non-finite gradient is 'fc2\.bias' \(Infinity\)\. Training stopped before the update; lower/);
  });

  test('weights that overflow are not checkpointed', async () => {
    const dir = tmp();
    await expect(makeTrainer({ outDir: dir, checkpointEvery: 1, optimizer: { lr: 1e39 } }).train()).rejects.toThrow(/^Trainer: step 1: parameter 'fc1\.weight' holds (NaN|-?Infinity); no checkpoint was written/);
    expect(existsSync(join(dir, STATE_FILE))).toBe(false);
  });

  test('skipNonfinite skips those steps without an update and counts them in metrics.jsonl and the checkpoint', async () => {
    const dir = tmp();
    const out = messages();
    const snapshots: number[][] = [];
    const t = makeTrainer({
      outDir: dir, skipNonfinite: true, progress: out.progress, loss: failing([3, 7], nanLoss),
      onStep: async ({ step }) => { if (step === 2 || step === 3) snapshots.push([...(await t.model.fc1.weight.data())]); },
    });
    const result = await t.train();
    expect(result.skipped).toBe(2);
    expect(result.step).toBe(12);
    expect(result.losses.map((l) => l.step)).toEqual([1, 2, 4, 5, 6, 8, 9, 10, 11, 12]);
    expect(out.lines.join('')).toContain('step 3: skipped (the loss is NaN; the first parameter with a non-finite gradient is \'fc1.weight\' (NaN))');
    const records = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(records.map((r) => r['skipped'])).toEqual([0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
    expect(records[2]!['loss']).toBeUndefined(); // a log window of skipped steps only has no loss
    expect(JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')).skipped).toBe(2);
    // Step 3 made no update: the weights after it are those after step 2.
    expect(result.losses.slice(0, 2)).toEqual((await reference).slice(0, 2));
    expect(snapshots[1]).toEqual(snapshots[0]);
    expect(snapshots[0]!.every(Number.isFinite)).toBe(true);
  });
});

describe('weight decay as Hugging Face', () => {
  test('biases and normalization weights get none by default; noDecay: false or a function changes it', () => {
    class WithNorms extends Module {
      lin = new Linear(4, 4);
      ln = new LayerNorm(4);
      rms = new RMSNorm(4);
    }
    expect([...noDecayParameterNames(new WithNorms())].sort()).toEqual(['lin.bias', 'ln.bias', 'ln.weight', 'rms.weight']);
    // Names are matched lower-cased, as transformers' get_decay_parameter_names does.
    class Upper extends Module {
      proj = new Linear(4, 4);
      outBias = new Parameter(zeros([4]));
    }
    expect([...noDecayParameterNames(new Upper())].sort()).toEqual(['outBias', 'proj.bias']);
    const groups = (t: Trainer<Net, Batch>) => t.optimizer.paramGroups.map((g) => [g.weightDecay, g.params.length]);
    const names = (t: Trainer<Net, Batch>, i: number) => {
      const byTensor = new Map(t.model.namedParameters().map(([n, p]) => [p as Tensor, n]));
      return t.optimizer.paramGroups[i]!.params.map((p) => byTensor.get(p));
    };
    const hf = makeTrainer();
    expect(groups(hf)).toEqual([[0.1, 2], [0, 4]]);
    expect(names(hf, 0)).toEqual(['fc1.weight', 'fc2.weight']);
    expect(names(hf, 1)).toEqual(['fc1.bias', 'norm.weight', 'norm.bias', 'fc2.bias']);
    expect(groups(makeTrainer({ optimizer: { weightDecay: 0.1, noDecay: false } }))).toEqual([[0.1, 6]]);
    const custom = makeTrainer({ optimizer: { weightDecay: 0.1, noDecay: (n) => n.startsWith('fc2') } });
    expect(names(custom, 1)).toEqual(['fc2.weight', 'fc2.bias']);
    expect(() => makeTrainer({ optimizer: { noDecay: 'yes' as unknown as boolean } })).toThrow(/optimizer.noDecay must be true, false or a function/);
  });
});

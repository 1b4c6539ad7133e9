// Memory without a manual: a PyTorch-style training loop with no tidy() and no dispose() keeps flat memory on
// every backend, tensors the program still holds are never freed, and the memory API reports what is live.

import { describe, expect, test } from 'vitest';
import { AdamW, GPT2LMHeadModel, keep, listDevices, manualSeed, memory, randint, reclaimMemory, tensor, tidy, type Tensor } from '../src/index.js';

/** A tiny GPT-2 (about 15k parameters): the loop's shape matters here, not the model's size (bench/memory.ts runs 3M). */
function tinyGpt(device: string): GPT2LMHeadModel {
  manualSeed(0);
  return new GPT2LMHeadModel({ vocab_size: 64, n_positions: 16, n_embd: 32, n_layer: 1, n_head: 2, embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0 }).to(device);
}

describe.each(listDevices())('memory on %s', (device) => {
  test('2,000 steps of forward, backward, step, zeroGrad and await loss.item() with no tidy: live bytes flat', async () => {
    const model = tinyGpt(device);
    const opt = new AdamW(model.parameters(), { lr: 3e-3 });
    const ids = randint(0, 64, [2, 16], { device });
    let first: Tensor | null = null;
    let firstValue = 0;
    const live: number[] = [];
    const losses: number[] = [];
    for (let step = 0; step < 2000; step++) {
      const { loss } = model.forward({ inputIds: ids, labels: ids });
      loss!.backward();
      opt.step();
      opt.zeroGrad();
      losses.push(await loss!.item());
      if (step === 0) { first = loss!; firstValue = losses[0]!; }
      live.push(memory().devices[device]!.bytes);
    }
    // It trains (memorises one batch) ...
    expect(losses[1999]!).toBeLessThan(losses[0]! * 0.5);
    // ... the floor of live bytes over the last 1,000 steps (what is left after each reclamation) does not grow, and
    // neither does the peak (< 5% from their first half to their second). On webgpu a read resolves after the GPU's
    // work, in a later macrotask, so where the collector runs between reclamations varies more: its peaks may swing by
    // a few tens of percent while the floor stays put (a leak raises the floor).
    const peak = (a: number[]) => Math.max(...a), floor = (a: number[]) => Math.min(...a);
    const early = live.slice(1000, 1500), late = live.slice(1500);
    expect(floor(late)).toBeLessThan(floor(early) * 1.05);
    expect(peak(late)).toBeLessThan(peak(early) * (device === 'webgpu' ? 1.5 : 1.05));
    // ... because reclamation ran (the loop itself never disposes anything).
    expect(memory().reclaims).toBeGreaterThan(0);
    // A tensor still held from step 0 was never freed under us.
    expect(first!.isDisposed).toBe(false);
    expect(await first!.item()).toBe(firstValue);
  }, 120_000);
});

describe('memory API', () => {
  test('memory() counts tensors and bytes per device; dispose and reclaimMemory give them back', async () => {
    await reclaimMemory();
    const before = memory();
    const a = tensor([1, 2, 3, 4], { dtype: 'float32', device: 'cpu' });
    let b: Tensor | null = a.reshape([2, 2]); // a view: a second tensor on one buffer
    const m = memory();
    expect(m.tensors - before.tensors).toBe(2);
    expect(m.devices.cpu!.bytes - (before.devices.cpu?.bytes ?? 0)).toBe(16);
    expect(m.devices.cpu!.buffers - (before.devices.cpu?.buffers ?? 0)).toBe(1);
    a.dispose();
    expect(memory().devices.cpu!.bytes - (before.devices.cpu?.bytes ?? 0)).toBe(16); // b still holds the buffer
    expect(await b.sum().item()).toBe(10);
    b = null; // dropped without dispose(): reclaimed at the next reclamation
    const freed = await reclaimMemory();
    expect(freed).toBeGreaterThan(0);
    expect(memory().devices.cpu!.bytes).toBe(before.devices.cpu?.bytes ?? 0);
  });

  test('tensors that leave tidy() (its result at the top level, keep() inside it) are reclaimed once dropped', async () => {
    await reclaimMemory();
    const before = memory();
    let out: Tensor | null = tidy(() => tensor([1, 2, 3], { dtype: 'float32', device: 'cpu' }).mul(2));
    let kept: Tensor | null = null;
    tidy(() => {
      kept = keep(tensor([4, 5], { dtype: 'float32', device: 'cpu' }).add(1));
      tidy(() => tensor([6], { dtype: 'float32', device: 'cpu' }).neg()); // returned to the outer scope, disposed by it
    });
    expect(memory().tensors - before.tensors).toBe(2);
    expect(await out.tolist()).toEqual([2, 4, 6]);
    expect(await kept!.tolist()).toEqual([5, 6]);
    out = null; // dropped without dispose()
    kept = null;
    expect(await reclaimMemory()).toBeGreaterThanOrEqual(2);
    expect(memory().tensors).toBe(before.tensors);
    expect(memory().devices.cpu?.bytes ?? 0).toBe(before.devices.cpu?.bytes ?? 0);
  });

  test('tidy accepts async functions: what the function made is freed when it settles, its result kept', async () => {
    const before = memory().tensors;
    const kept = await tidy(async () => {
      const x = tensor([1, 2, 3], { dtype: 'float32' }).mul(2);
      const s = x.sum();
      expect(await s.item()).toBe(12);
      return x.add(1);
    });
    expect(memory().tensors - before).toBe(1);
    expect(await kept.tolist()).toEqual([3, 5, 7]);
    await expect(tidy(async () => {
      tensor([1], { dtype: 'float32' }).mul(3);
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(memory().tensors - before).toBe(1);
  });

  test('backward frees the graph it consumed: a second backward says so; retainGraph keeps it', () => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    const y = x.mul(x).sum();
    y.backward();
    expect(y.gradFn!.inputs).toEqual([]);
    expect(() => y.backward()).toThrow(/second time: the graph was freed by the first backward \(pass \{ retainGraph: true \}/);
    const z = x.mul(x).sum();
    z.backward(undefined, { retainGraph: true });
    z.backward();
    expect(x.grad!.dataSync()).toEqual(new Float32Array([6, 12, 18]));
  });

  test('shape answers negative indices like Python (x.shape[-1])', () => {
    const t = tensor([[1, 2, 3]], { dtype: 'float32' });
    expect(t.shape[-1]).toBe(3);
    expect(t.shape[-2]).toBe(1);
    expect(t.shape[-3]).toBeUndefined();
    expect([...t.shape]).toEqual([1, 3]);
    expect(JSON.stringify(t.shape)).toBe('[1,3]');
  });
});

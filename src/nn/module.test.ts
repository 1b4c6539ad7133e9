// Module mechanics: dotted parameter names, tied weights, buffers, state dicts and their errors, train/eval.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { listDevices } from '../tensor/backend.js';
import { hasFloat64 } from '../test-util/devices.js';
import { ones, tensor, zeros } from '../tensor/create.js';
import { memory, reclaimMemory } from '../tensor/memory.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { Dropout } from './activation.js';
import { ModuleList, Sequential } from './container.js';
import { Embedding } from './embedding.js';
import { Linear } from './linear.js';
import { Module, Parameter } from './module.js';
import { LayerNorm } from './normalization.js';

class Block extends Module {
  c_attn = new Linear(4, 12);
  ln_1 = new LayerNorm(4);
  drop = new Dropout(0.1);
}

class TinyLM extends Module {
  transformer: { wte: Embedding } & Module;
  h: Block[];
  lm_head: Linear;
  mask: Tensor;
  cache: Tensor;
  constructor() {
    super();
    const wte = new Embedding(10, 4);
    this.transformer = Object.assign(new Module(), { wte });
    this.h = [new Block(), new Block()];
    this.lm_head = new Linear(4, 10, { bias: false });
    this.lm_head.weight = wte.weight; // tied, as in GPT-2
    this.mask = this.registerBuffer('mask', ones([3, 3]));
    this.cache = this.registerBuffer('cache', zeros([2]), false);
  }
}

describe('Module', () => {
  test('parameters are named by property path, lists by index; tied weights are listed once', () => {
    const m = new TinyLM();
    expect(m.namedParameters().map(([n]) => n)).toEqual([
      'transformer.wte.weight',
      'h.0.c_attn.weight', 'h.0.c_attn.bias', 'h.0.ln_1.weight', 'h.0.ln_1.bias',
      'h.1.c_attn.weight', 'h.1.c_attn.bias', 'h.1.ln_1.weight', 'h.1.ln_1.bias',
    ]);
    expect(m.numParameters()).toBe(40 + 2 * (48 + 12 + 8));
  });
  test('the state dict has every name (tied weights under both) and persistent buffers only', () => {
    const sd = new TinyLM().stateDict();
    expect(Object.keys(sd)).toContain('lm_head.weight');
    expect(sd['lm_head.weight']).toBe(sd['transformer.wte.weight']);
    expect(Object.keys(sd)).toContain('mask');
    expect(Object.keys(sd)).not.toContain('cache');
  });
  test('loadStateDict copies values and keeps the parameter objects', async () => {
    const a = new Linear(3, 2), b = new Linear(3, 2);
    const w = b.weight;
    b.loadStateDict(a.stateDict());
    expect(b.weight).toBe(w);
    expect(await b.weight.tolist()).toEqual(await a.weight.tolist());
  });
  test('loadStateDict names the key of a shape mismatch and changes nothing', async () => {
    const m = new Linear(3, 2);
    const before = await m.bias!.tolist();
    expect(() => m.loadStateDict({ weight: zeros([2, 4]), bias: ones([2]) })).toThrow(/size mismatch for weight: the checkpoint has \[2, 4\], the model \[2, 3\]/);
    expect(await m.bias!.tolist()).toEqual(before);
  });
  test('strict loading lists missing and unexpected keys; non-strict reports them', () => {
    const m = new Linear(3, 2);
    expect(() => m.loadStateDict({ weight: zeros([2, 3]), extra: zeros([1]) })).toThrow(/missing keys: bias; unexpected keys: extra/);
    expect(m.loadStateDict({ weight: zeros([2, 3]) }, { strict: false })).toEqual({ missingKeys: ['bias'], unexpectedKeys: [] });
  });
  test('train() and eval() reach every submodule', () => {
    const m = new TinyLM().eval();
    expect(m.h[1]!.drop.training).toBe(false);
    expect(m.train().h[1]!.drop.training).toBe(true);
  });
  test('Sequential and ModuleList name children 0, 1, ...', () => {
    const s = new Sequential(new Linear(2, 3), new LayerNorm(3));
    expect(s.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias', '1.weight', '1.bias']);
    const l = new ModuleList([new Linear(2, 2, { bias: false })]);
    expect(l.namedParameters().map(([n]) => n)).toEqual(['0.weight']);
  });
  test('parameters made inside tidy survive it', () => {
    const m = tidy(() => new Linear(2, 2));
    expect(m.weight.isDisposed).toBe(false);
  });
  test('children() and modules() list each module once, modules() starting with this one (torch order)', () => {
    const m = new TinyLM();
    const names = new Map(m.namedModules().map(([n, x]) => [x, n]));
    expect(m.children().map((c) => names.get(c))).toEqual(['transformer', 'h.0', 'h.1', 'lm_head']);
    expect(m.namedChildren().map(([n]) => n)).toEqual(['transformer', 'h.0', 'h.1', 'lm_head']);
    expect(m.modules().map((c) => names.get(c))).toEqual([
      '', 'transformer', 'transformer.wte', 'h.0', 'h.0.c_attn', 'h.0.ln_1', 'h.0.drop', 'h.1', 'h.1.c_attn', 'h.1.ln_1', 'h.1.drop', 'lm_head',
    ]);
    expect(m.modules()[0]).toBe(m);
    const shared = new Linear(2, 2);
    const twice = Object.assign(new Module(), { a: shared, b: shared });
    expect(twice.children()).toEqual([shared]);
    expect(twice.modules()).toEqual([twice, shared]);
  });
  test('apply() visits children before their parent, each module once, and returns the module', async () => {
    const m = new TinyLM();
    const names = new Map(m.namedModules().map(([n, x]) => [x, n]));
    const order: (string | undefined)[] = [];
    expect(m.apply((x) => order.push(names.get(x)))).toBe(m);
    expect(order).toEqual([
      'transformer.wte', 'transformer', 'h.0.c_attn', 'h.0.ln_1', 'h.0.drop', 'h.0', 'h.1.c_attn', 'h.1.ln_1', 'h.1.drop', 'h.1', 'lm_head', '',
    ]);
    // the usual use: custom initialisation
    noGrad(() => m.apply((x) => { if (x instanceof LayerNorm) x.weight!.zero_(); }));
    expect(await m.h[1]!.ln_1.weight!.tolist()).toEqual([0, 0, 0, 0]);
  });
  test('a Parameter requires grad and shares its source buffer', () => {
    const t = zeros([2]);
    const p = new Parameter(t);
    expect(p.requiresGrad).toBe(true);
    expect(p.storage).toBe(t.storage);
  });
});

/** A layer with a float buffer, an integer buffer and a bool buffer next to its parameters (as BatchNorm's count). */
class Stats extends Module {
  lin = new Linear(2, 2);
  running: Tensor;
  count: Tensor;
  mask: Tensor;
  constructor(device: string) {
    super();
    this.lin.to(device);
    this.running = this.registerBuffer('running', tensor([0.1, 1 / 3], { device }));
    this.count = this.registerBuffer('count', tensor([3], { dtype: 'int32', device }));
    this.mask = this.registerBuffer('mask', tensor([true, false], { device }));
  }
}

// Known answers from torch 1.13: torch.tensor([0.1, 1/3, -2.5, 1e5]).half() / .bfloat16().
const F16 = [0.0999755859375, 0.333251953125, -2.5, Infinity];
const BF16 = [0.10009765625, 0.333984375, -2.5, 99840];

describe.each(listDevices())('Module dtype conversion on %s (torch module.to(dtype), half(), ...)', (device) => {
  const make = (): Stats => {
    const m = new Stats(device);
    m.loadStateDict({ 'lin.weight': tensor([[0.1, 1 / 3], [-2.5, 1e5]]), 'lin.bias': tensor([0.1, 1 / 3]), running: tensor([0.1, 1 / 3]), count: tensor([3], { dtype: 'int32' }), mask: tensor([true, false]) });
    return m;
  };
  test.each([['half', 'float16', F16], ['bfloat16', 'bfloat16', BF16]] as const)('%s() rounds floating parameters and buffers, keeps integer buffers, the same objects and requiresGrad', async (method, dtype, want) => {
    const m = make();
    const w = m.lin.weight, frozen = m.lin.bias!;
    frozen.requiresGrad = false;
    expect(m[method]()).toBe(m);
    expect(m.lin.weight).toBe(w); // an optimizer built now sees the same Parameter objects
    expect(m.parameters()).toEqual([w, frozen]);
    expect([w.dtype, frozen.dtype, m.running.dtype, m.count.dtype, m.mask.dtype]).toEqual([dtype, dtype, dtype, 'int32', 'bool']);
    expect([w.requiresGrad, frozen.requiresGrad, w.device]).toEqual([true, false, device]);
    expect(await w.tolist()).toEqual([[want[0], want[1]], [want[2], want[3]]]);
    expect(await m.running.tolist()).toEqual([want[0], want[1]]);
    expect(await m.count.tolist()).toEqual([3]);
    expect(await m.mask.tolist()).toEqual([true, false]);
    const y = m.lin.forward(tensor([[1, 0]], { device, dtype }));
    expect(y.dtype).toBe(dtype);
    expect(await y.tolist()).toEqual(dtype === 'float16' ? [[0.199951171875, NaN]] : [[0.2001953125, -2.171875]]); // torch: inf * 0 is NaN
  });
  test('to(dtype) converts gradients present too (torch 1.13), and float() / double() widen back', async () => {
    const m = make();
    m.lin.weight.grad = tensor([[0.1, 1 / 3], [1, 2]], { device });
    const g = m.lin.weight.grad;
    m.to('float16');
    expect(m.lin.weight.grad).toBe(g);
    expect(g.dtype).toBe('float16');
    expect(await g.tolist()).toEqual([[F16[0], F16[1]], [1, 2]]);
    m.float();
    expect([m.lin.weight.dtype, g.dtype, m.running.dtype, m.count.dtype]).toEqual(['float32', 'float32', 'float32', 'int32']);
    expect(await m.lin.weight.tolist()).toEqual([[F16[0], F16[1]], [F16[2], F16[3]]]); // widening is exact
    if (!hasFloat64(device)) { // webgpu: the backend refuses float64, with its message
      expect(() => m.double()).toThrow(/float64 is not supported/);
      return;
    }
    m.double();
    expect(m.lin.weight.dtype).toBe('float64');
    expect(await m.running.tolist()).toEqual([F16[0], F16[1]]);
  });
  test('to(device, dtype) does both; the bytes per parameter halve', async () => {
    const m = new Linear(64, 64).to(device);
    await reclaimMemory(); // the layer's construction temporaries
    const before = memory().devices[device]!.bytes;
    m.to(device, 'bfloat16');
    await reclaimMemory();
    expect(before - memory().devices[device]!.bytes).toBe(2 * m.numParameters());
    expect(m.weight.dtype).toBe('bfloat16');
  });
  test('bad arguments are clear errors and leave the module as it was', async () => {
    const m = make();
    expect(() => m.to('int32')).toThrow(/Module\.to: only floating dtypes are accepted \(float32, float64, float16, bfloat16\), got "int32"/);
    expect(() => m.to('int64')).toThrow(/got "int64"/);
    expect(() => m.to(device, 'fp16' as 'float16')).toThrow(/only floating dtypes are accepted .*got "fp16"/);
    expect(() => m.to('gpu0', 'float16')).toThrow(/Module\.to: unknown device or dtype "gpu0" \(devices: .*cpu.*; dtypes: float32/);
    expect(() => m.to('fp16')).toThrow(/unknown device or dtype "fp16"/);
    expect(m.parameters().map((p) => p.dtype)).toEqual(['float32', 'float32']);
    expect(await m.lin.bias!.tolist()).toEqual([Math.fround(0.1), Math.fround(1 / 3)]);
  });
});

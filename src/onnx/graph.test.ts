// The protobuf writer against the wire format's known encodings, and the graph builder's layers run by ONNX Runtime against known values.

import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { tensor } from '../tensor/create.js';
import { OnnxGraph } from './graph.js';
import { attributeProto, Msg } from './proto.js';

describe('protobuf writer', () => {
  test('varints as the protobuf docs encode them (150, and -1 in ten bytes)', () => {
    // protobuf.dev "Base 128 Varints": field 1 = 150 is 08 96 01.
    expect(Array.from(new Msg().int(1, 150).toBytes())).toEqual([0x08, 0x96, 0x01]);
    expect(Array.from(new Msg().int(1, -1).toBytes())).toEqual([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    // A string field: tag (2 << 3 | 2), length, bytes ("testing" is the docs' example: 12 07 74 65 73 74 69 6e 67).
    expect(Array.from(new Msg().ld(2, 'testing').toBytes())).toEqual([0x12, 0x07, 0x74, 0x65, 0x73, 0x74, 0x69, 0x6e, 0x67]);
    expect(() => new Msg().int(1, 1.5)).toThrow(/field 1 must be an integer, got 1.5/);
  });

  test('attributes: an integral number is INT unless asked to be FLOAT', () => {
    const intAttr = attributeProto('axis', 1).toBytes();
    const floatAttr = attributeProto('epsilon', { float: 1 }).toBytes();
    // type = 20 (varint tag a0 01): INT = 2, FLOAT = 1.
    expect(Array.from(intAttr.slice(-3))).toEqual([0xa0, 0x01, 2]);
    expect(Array.from(floatAttr.slice(-3))).toEqual([0xa0, 0x01, 1]);
    // f = 2 (fixed32, tag 0x15) holding 1.0f = 00 00 80 3f.
    expect(Array.from(floatAttr.slice(9, 14))).toEqual([0x15, 0x00, 0x00, 0x80, 0x3f]);
  });
});

describe('graph builder', () => {
  async function run(g: OnnxGraph, feeds: Record<string, ort.Tensor>): Promise<Record<string, number[]>> {
    const out = await (await ort.InferenceSession.create(await g.toBytes())).run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v.data as Float32Array)]));
  }
  const f32 = (v: number[], dims: number[]) => new ort.Tensor('float32', Float32Array.from(v), dims);

  test('linear, layerNorm and GELU against hand-computed values', async () => {
    const g = new OnnxGraph('t');
    const x = g.input('x', 'float32', ['batch_size', 3]);
    const y = g.linear(x, tensor([[1, 2, 3], [4, 5, 6]]), tensor([0.5, -1]), 'lin'); // [x.w0 + 0.5, x.w1 - 1]
    g.output(y, 'y', 'float32', ['batch_size', 2]);
    g.output(g.layerNorm(y, tensor([2, 2]), tensor([1, 1]), 1e-5, 'ln'), 'ln', 'float32', ['batch_size', 2]);
    g.output(g.gelu(x), 'gelu', 'float32', ['batch_size', 3]);
    g.output(g.gelu(x, 'tanh'), 'gelu_tanh', 'float32', ['batch_size', 3]);
    const out = await run(g, { x: f32([1, 0, -1], [1, 3]) });
    expect(out['y']).toEqual([-1.5, -3]);
    // Two values a > b normalise to 1, -1 (up to eps), times 2 plus 1.
    expect(out['ln']![0]).toBeCloseTo(3, 4);
    expect(out['ln']![1]).toBeCloseTo(-1, 4);
    // GELU(1) = Phi(1) = 0.8413447460685429; tanh form 0.8411919906082768 (PyTorch's values).
    expect(out['gelu']![0]).toBeCloseTo(0.8413447460685429, 6);
    expect(out['gelu']![2]).toBeCloseTo(-0.15865525393145707, 6);
    expect(out['gelu_tanh']![0]).toBeCloseTo(0.8411919906082768, 6);
  });

  test('a tied weight is stored once; names clash or dangle with an error', async () => {
    const w = tensor([[1, 2], [3, 4]]);
    const g = new OnnxGraph('t');
    expect(g.weight('a', w)).toBe('a');
    expect(g.weight('b', w)).toBe('a');
    expect(g.weight('c', w, { transpose: true })).toBe('c');
    expect(g.weightBytes()).toBe(2 * 16);
    expect(() => g.input('a', 'float32', [2])).toThrow(/the name 'a' is used twice/);
    expect(() => g.op('Relu', ['nowhere'])).toThrow(/Relu reads 'nowhere', which nothing defines/);
    await expect(g.toBytes()).rejects.toThrow(/no outputs/);
    expect(() => g.activation('a', 'mish', 'model.mlp')).toThrow(/activation 'mish' in model.mlp is not supported/);
  });
});

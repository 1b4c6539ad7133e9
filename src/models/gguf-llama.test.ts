// LLaMA <-> GGUF: the fixture model written as f32 / f16 / q8_0 / q4_0 and read back (logits, greedy tokens), the
// rotary row permutation against llama.cpp's pairing, the tokenizer in the metadata against Hugging Face's ids, bad files.

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { generate } from '../generation/generate.js';
import { gguf, parseGgufHeader, serializeGguf, type GgufKV, type GgufTensorData } from '../io/gguf.js';
import { dequantizeValues, quantizeValues } from '../quant/formats.js';
import { QuantEmbedding, QuantLinear, modelBytes } from '../quant/quant-linear.js';
import { randn, tensor } from '../tensor/create.js';
import { Generator } from '../tensor/random.js';
import { listDevices } from '../tensor/backend.js';
import { memory, reclaimMemory } from '../tensor/memory.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { mergesFromScores, tokenizerFromGguf, tokenizerToGguf } from '../tokenizers/gguf.js';
import type { JsonObject } from '../tokenizers/json.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { AutoModelForCausalLM } from './auto.js';
import { llamaToGguf, loadGgufLlama, permuteRotaryRows, saveGgufLlama, type GgufFileType } from './gguf-llama.js';
import { LlamaForCausalLM } from './llama.js';

const dir = await mkdtemp(join(tmpdir(), 'attend-gguf-'));
const fixture = async (device?: string): Promise<LlamaForCausalLM> => (await AutoModelForCausalLM.fromPretrained(hfDir('llama'), { device })) as LlamaForCausalLM;
const tokDir = new URL('../../test/data/tokenizers/', import.meta.url).pathname;
const tokJson = async (name: string): Promise<JsonObject> => JSON.parse(await readFile(join(tokDir, `${name}.json`), 'utf8')) as JsonObject;
const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/** The largest logit difference each type is allowed (measured on this fixture: see the README numbers). */
const TOLERANCE: Record<GgufFileType, number> = { f32: 0, f16: 1e-3, bf16: 1e-2, q8_0: 1e-2, q4_0: 0.15 };

/** The fixture with every matrix replaced by dequantize(quantize(W)): the error quantization alone causes. */
async function requantized(device: string, type: 'q8_0' | 'q4_0'): Promise<LlamaForCausalLM> {
  const model = await fixture(device);
  for (const [, p] of model.namedParameters()) {
    if (p.ndim !== 2) continue;
    const values = dequantizeValues(quantizeValues(Float32Array.from(await p.data()), p.shape, type));
    p.replaceStorage(tensor(values, { shape: p.shape, device }));
  }
  return model;
}

for (const device of listDevices()) {
  describe(`GGUF round trip on ${device}`, () => {
    test.each(['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const)('%s: the logits of the model read back', async (type) => {
      const ref = await loadRef('llama', device);
      const model = await fixture(device);
      const path = join(dir, `fixture-${type}-${device}.gguf`);
      await saveGgufLlama(path, model, { type });
      const { model: back, architecture } = await loadGgufLlama(path, { device });
      expect(architecture).toBe('llama');
      const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
      const want = await noGrad(() => model.forward(inputs).logits).data();
      const got = await noGrad(() => back.forward(inputs).logits).data();
      const diff = maxDiff(got as Float32Array, want as Float32Array);
      expect(diff).toBeLessThanOrEqual(TOLERANCE[type]);
      if (type !== 'f32') expect(diff).toBeGreaterThan(0); // the file really holds the narrower type
      if (type === 'q8_0' || type === 'q4_0') {
        // All of the difference is quantization's: the same weights quantized in memory give the same logits.
        const same = await noGrad(() => requantized(device, type).then((m) => m.forward(inputs).logits.data()));
        expect(maxDiff(got as Float32Array, same as Float32Array)).toBeLessThan(1e-5);
      }
      const quantized = back.modules().filter((m) => m instanceof QuantLinear || m instanceof QuantEmbedding).length;
      expect(quantized).toBe(type === 'q8_0' || type === 'q4_0' ? 2 * 7 + 2 : 0); // 7 projections per layer, embeddings, lm_head
      console.log(`${device} ${type}: max |logit difference| ${diff.toExponential(2)}, weights ${modelBytes(back)} bytes (f32 ${modelBytes(model)})`);
    });
    test('f32: greedy tokens equal transformers', async () => {
      const ref = await loadRef('llama', device);
      const path = join(dir, `greedy-${device}.gguf`);
      await saveGgufLlama(path, await fixture(device), { type: 'f32' });
      const { model } = await loadGgufLlama(path, { device });
      const out = await generate(model, ref['gen.input_ids']!.int(), { maxNewTokens: 12, minNewTokens: 12 });
      expect(await out.tolist()).toEqual(await ref['greedy.sequences']!.int().tolist());
    });
  });
}

describe('GGUF LLaMA details', () => {
  test('Q8_0 read as quantized layers and dequantized to float32 give the same logits; Q4_0 takes under 0.2x the bytes of f32 in its matrices', async () => {
    const ref = await loadRef('llama');
    const model = await fixture();
    for (const type of ['q8_0', 'q4_0'] as const) {
      const path = join(dir, `deq-${type}.gguf`);
      await saveGgufLlama(path, model, { type });
      const kept = (await loadGgufLlama(path)).model, deq = (await loadGgufLlama(path, { dequantize: true })).model;
      const inputs = { inputIds: ref['input_ids']! };
      expect(maxDiff(await kept.forward(inputs).logits.data() as Float32Array, await deq.forward(inputs).logits.data() as Float32Array)).toBeLessThan(1e-5);
      const ratio = modelBytes(kept) / modelBytes(deq);
      expect(ratio).toBeLessThan(type === 'q4_0' ? 0.2 : 0.3);
      // In float16: quantized blocks and float16 activations together (the embedding rows follow the model's dtype).
      const half = (await loadGgufLlama(path, { dtype: 'float16' })).model;
      const logits = half.forward(inputs).logits;
      expect(logits.dtype).toBe('float16');
      expect(maxDiff(await logits.data() as Float32Array, await kept.forward(inputs).logits.data() as Float32Array)).toBeLessThan(2e-2);
    }
  });
  test("q/k rows: rotating GGUF's adjacent pairs (llama.cpp) equals rotating Hugging Face's half-split pairs, then permuting", () => {
    const heads = 2, hs = 8, half = hs / 2, pos = 3, theta = 10000;
    const q = Float32Array.from({ length: heads * hs }, (_, i) => Math.cos(i * 1.7) + i / 10);
    const angle = (i: number): number => pos * theta ** (-(2 * i) / hs);
    const hfRotated = new Float32Array(q.length), ggRotated = new Float32Array(q.length);
    const gg = new Float32Array(permuteRotaryRows(new Uint8Array(q.slice().buffer), heads, 4, true).buffer);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const c = Math.cos(angle(i)), s = Math.sin(angle(i));
        const [a, b] = [q[h * hs + i]!, q[h * hs + i + half]!]; // transformers: (i, i + hs/2)
        hfRotated[h * hs + i] = a * c - b * s;
        hfRotated[h * hs + i + half] = b * c + a * s;
        const [x, y] = [gg[h * hs + 2 * i]!, gg[h * hs + 2 * i + 1]!]; // llama.cpp rope NORM: (2i, 2i + 1)
        ggRotated[h * hs + 2 * i] = x * c - y * s;
        ggRotated[h * hs + 2 * i + 1] = y * c + x * s;
      }
    }
    const want = new Float32Array(permuteRotaryRows(new Uint8Array(hfRotated.buffer), heads, 4, true).buffer);
    expect(maxDiff(ggRotated, want)).toBeLessThan(1e-6);
    // ... and the inverse undoes it.
    expect(Array.from(new Float32Array(permuteRotaryRows(new Uint8Array(gg.slice().buffer), heads, 4, false).buffer))).toEqual(Array.from(q));
  });
  test('qwen2 keeps rows in Hugging Face order (NEOX rope) and reads back to the same logits', async () => {
    const model = await fixture();
    const { tensors } = await llamaToGguf(model, { architecture: 'qwen2' });
    const q = tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
    expect(Array.from(new Float32Array(q.data.slice().buffer).subarray(0, 64))).toEqual(Array.from((await model.model.layers[0]!.self_attn.q_proj.weight.data()).subarray(0, 64)));
    const path = join(dir, 'qwen2.gguf');
    await saveGgufLlama(path, model, { architecture: 'qwen2' });
    const ref = await loadRef('llama');
    const back = await loadGgufLlama(path);
    expect(back.architecture).toBe('qwen2');
    expect(maxDiff(await back.model.forward({ inputIds: ref['input_ids']! }).logits.data() as Float32Array, await model.forward({ inputIds: ref['input_ids']! }).logits.data() as Float32Array)).toBe(0);
  });
});

describe('biases', () => {
  test('attention biases (q and k rows permuted like their weights) survive f32 exactly and q8_0 next to quantized weights', async () => {
    const base = await fixture();
    const model = new LlamaForCausalLM({ ...base.config, attention_bias: true });
    model.loadStateDict(base.stateDict(), { strict: false });
    for (const [name, p] of model.namedParameters()) {
      if (name.endsWith('.bias')) p.replaceStorage(randn(p.shape, { generator: new Generator(name.length) }));
    }
    const ids = (await loadRef('llama'))['input_ids']!;
    const want = await model.forward({ inputIds: ids }).logits.data();
    for (const type of ['f32', 'q8_0'] as const) {
      const path = join(dir, `bias-${type}.gguf`);
      await saveGgufLlama(path, model, { type });
      const back = (await loadGgufLlama(path)).model;
      expect(back.model.layers[1]!.self_attn.k_proj.bias).not.toBeNull();
      const got = await back.forward({ inputIds: ids }).logits.data();
      expect(maxDiff(got as Float32Array, want as Float32Array)).toBeLessThanOrEqual(type === 'f32' ? 0 : 1e-2);
      expect(Array.from(await back.model.layers[0]!.self_attn.q_proj.bias!.data())).toEqual(Array.from(await model.model.layers[0]!.self_attn.q_proj.bias!.data()));
    }
  });
});

describe('mistral', () => {
  test("'mistral' metadata (mistral.* keys, rows permuted as llama's) reads back to the same logits", async () => {
    const model = await fixture();
    const path = join(dir, 'mistral.gguf');
    await saveGgufLlama(path, model, { architecture: 'mistral' });
    const back = await loadGgufLlama(path);
    expect(back.architecture).toBe('mistral');
    expect(back.header.metadata['mistral.block_count']!.value).toBe(2);
    const ref = await loadRef('llama');
    expect(maxDiff(await back.model.forward({ inputIds: ref['input_ids']! }).logits.data() as Float32Array, await model.forward({ inputIds: ref['input_ids']! }).logits.data() as Float32Array)).toBe(0);
  });
});

interface Case { text: string | string[]; ids: number[] }
const expected = JSON.parse(await readFile(join(tokDir, 'expected.json'), 'utf8')) as Record<string, Case[]>;

describe('the tokenizer in GGUF metadata', () => {
  test.each(['bpe-bytefallback', 'bytelevel-bpe'])('%s: written with the model, read back, the ids of transformers on 16 strings', async (name) => {
    const path = join(dir, `tok-${name}.gguf`);
    await saveGgufLlama(path, await fixture(), { type: 'q8_0', tokenizer: await tokJson(name) });
    const { tokenizer, header } = await loadGgufLlama(path);
    expect(header.metadata['tokenizer.ggml.model']!.value).toBe(name === 'bpe-bytefallback' ? 'llama' : 'gpt2');
    const singles = expected[name]!.filter((c): c is Case & { text: string } => typeof c.text === 'string');
    expect(singles).toHaveLength(16);
    for (const c of singles) expect(tokenizer!.encode(c.text).ids).toEqual(c.ids);
  });
  test("a 'llama' vocabulary without merges: merges rebuilt from the scores (transformers' way) give the same ids", async () => {
    const { metadata } = await llamaToGguf(await fixture(), { tokenizer: await tokJson('bpe-bytefallback') });
    const meta = parseGgufHeader(serializeGguf(metadata, [])).metadata;
    delete meta['tokenizer.ggml.merges'];
    const { json, config } = tokenizerFromGguf(meta, 'm.gguf');
    const tok = Tokenizer.fromJSON(json, config);
    for (const c of expected['bpe-bytefallback']!) if (typeof c.text === 'string') expect(tok.encode(c.text).ids).toEqual(c.ids);
  });
  test('mergesFromScores on a hand example: every split into two tokens, best merged score first, then best pieces', () => {
    const tokens = ['a', 'b', 'c', 'ab', 'bc', 'abc'];
    const scores = [0, 0, 0, -1, -2, -3];
    // abc splits as (a, bc) and (ab, c), ordered by the left piece's score (a: 0 before ab: -1); all by the merged score.
    expect(mergesFromScores(tokens, scores)).toEqual([['a', 'b'], ['b', 'c'], ['a', 'bc'], ['ab', 'c']]);
  });
  test('missing or bad tokenizer keys name the key', () => {
    const base: Record<string, GgufKV> = { 'tokenizer.ggml.model': gguf.str('llama'), 'tokenizer.ggml.tokens': gguf.strs(['a', 'b']) };
    expect(() => tokenizerFromGguf(base, 'm.gguf')).toThrow('m.gguf: missing metadata key "tokenizer.ggml.scores"');
    expect(() => tokenizerFromGguf({ ...base, 'tokenizer.ggml.model': gguf.str('bert') }, 'm.gguf')).toThrow('"tokenizer.ggml.model" is "bert"');
    expect(() => tokenizerFromGguf({ ...base, 'tokenizer.ggml.model': gguf.str('gpt2'), 'tokenizer.ggml.merges': gguf.strs(['a b']), 'tokenizer.ggml.pre': gguf.str('deepseek') }, 'm.gguf')).toThrow('"tokenizer.ggml.pre" is "deepseek"');
    expect(() => tokenizerFromGguf({ ...base, 'tokenizer.ggml.scores': gguf.f32s([0]) }, 'm.gguf')).toThrow('"tokenizer.ggml.scores" must be an array of 2 numbers');
    expect(() => tokenizerFromGguf({ ...base, 'tokenizer.ggml.scores': gguf.f32s([0, 0]), 'tokenizer.ggml.bos_token_id': gguf.u32(7) }, 'm.gguf')).toThrow('"tokenizer.ggml.bos_token_id" must be a token id below 2, got 7');
  });
  test('a byte-level tokenizer.json without a pre_tokenizer is refused by name, not with a crash', () => {
    const json = { model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [] } } as unknown as JsonObject;
    expect(() => tokenizerToGguf(json, {}, 'tok.json')).toThrow("tok.json: this byte-level pre_tokenizer has no llama.cpp name (attend writes GPT-2's, llama-bpe's and qwen2's): null");
  });
});

describe('bad GGUF files: an error naming the key or tensor, before any tensor is allocated', () => {
  const good = llamaToGguf.bind(null);
  async function write(name: string, edit: (m: Record<string, GgufKV>, t: GgufTensorData[]) => void): Promise<string> {
    const { metadata, tensors } = await good(await fixture());
    edit(metadata, tensors);
    const path = join(dir, name);
    await writeFile(path, serializeGguf(metadata, tensors));
    return path;
  }
  async function rejects(path: string, message: string | RegExp): Promise<void> {
    await reclaimMemory(); // so that no reclamation inside the load hides a tensor it allocated
    const before = memory().tensors;
    await expect(loadGgufLlama(path)).rejects.toThrow(message);
    expect(memory().tensors).toBe(before);
  }
  test('unknown architecture, missing key, bad key value', async () => {
    await rejects(await write('arch.gguf', (m) => { m['general.architecture'] = gguf.str('falcon'); }), /arch\.gguf: unknown architecture "falcon" in "general.architecture" \(supported: llama, mistral, qwen2\)/);
    await rejects(await write('key.gguf', (m) => { delete m['llama.block_count']; }), /key\.gguf: missing metadata key "llama.block_count"/);
    await rejects(await write('val.gguf', (m) => { m['llama.attention.head_count'] = gguf.str('4'); }), /val\.gguf: metadata "llama.attention.head_count" must be a positive integer, got "4"/);
  });
  test('LLaMA variants whose differences GGUF export does not write are refused, not written as plain LLaMA', async () => {
    const mistral = await AutoModelForCausalLM.fromPretrained(hfDir('mistral'));
    await expect(llamaToGguf(mistral as LlamaForCausalLM)).rejects.toThrow(/GGUF export: writes LlamaForCausalLM models; MistralForCausalLM is not supported yet/);
  });
  test('a tensor shape that disagrees with the metadata, a missing tensor, an unexpected one', async () => {
    await rejects(await write('shape.gguf', (m) => { m['llama.feed_forward_length'] = gguf.u32(128); }), /shape\.gguf: tensor blk\.0\.ffn_gate\.weight has shape \[160, 64\], the metadata says \[128, 64\]/);
    await rejects(await write('gone.gguf', (_, t) => { t.splice(t.findIndex((x) => x.name === 'blk.1.ffn_down.weight'), 1); }), /gone\.gguf: missing tensor blk\.1\.ffn_down\.weight/);
    await rejects(await write('extra.gguf', (_, t) => { t.push({ name: 'rope_freqs.weight', shape: [8], type: 'F32', data: new Uint8Array(32) }); }), /extra\.gguf: unexpected tensors rope_freqs\.weight/);
  });
  test('an unknown and an unsupported tensor type, a truncated file', async () => {
    const path = await write('type.gguf', () => {});
    const bytes = new Uint8Array(await readFile(path));
    const h = parseGgufHeader(bytes);
    const norm = h.tensors.find((t) => t.name === 'output_norm.weight')!;
    // Find the tensor info of output_norm.weight (name, n_dims, ne, then the u32 type) and set its type.
    const nameBytes = new TextEncoder().encode('output_norm.weight');
    let at = -1;
    for (let i = 0; i < h.dataStart && at < 0; i++) if (nameBytes.every((b, j) => bytes[i + j] === b)) at = i + nameBytes.length + 4 + 8 * norm.shape.length;
    const withType = async (id: number, name: string): Promise<string> => {
      const b = Uint8Array.from(bytes);
      new DataView(b.buffer).setUint32(at, id, true);
      await writeFile(join(dir, name), b);
      return join(dir, name);
    };
    await rejects(await withType(77, 't77.gguf'), /t77\.gguf: tensor output_norm\.weight has unknown ggml type 77/);
    await rejects(await withType(24, 'ti8.gguf'), /ti8\.gguf: tensor output_norm\.weight has ggml type I8, which attend cannot read/);
    await writeFile(join(dir, 'cut.gguf'), bytes.subarray(0, bytes.length - 100));
    await rejects(join(dir, 'cut.gguf'), /cut\.gguf: truncated GGUF file: tensor output\.weight \(F32 \[512, 64\]\) needs bytes/);
  });
});

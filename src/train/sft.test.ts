// SFT on the Trainer: completion-only loss against a cross entropy computed here, LoRA training only the adapter, merged = unmerged, packing, a tiny model learning a toy task, saved folders.

import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { collateSft, packSft, tokenizeSft, type SftExample } from '../data/sft.js';
import { generate } from '../generation/generate.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { loadLoraAdapter, LoraLinear, mergeLora } from '../models/lora.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { expectClose } from '../test-util/fixtures.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { loadSafetensors } from '../io/safetensors.js';
import { chatTokenizer, colorRecords, COLORS, tinyLlama, VOCAB, writeTinyModelFolder } from '../test-util/tiny-chat.js';
import { sft } from './sft.js';

const tok = chatTokenizer();
const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'attend-sft-'));
const quiet = { progress: false as const, log: () => {} };

/** Mean cross entropy (float64, from the logits) over the given [row, position] targets: position t predicts ids[t]. */
async function crossEntropyAt(logits: ArrayLike<number>, V: number, T: number, rows: number[][], targets: [number, number][]): Promise<number> {
  let total = 0;
  for (const [b, t] of targets) {
    const at = (b * T + t - 1) * V; // the logits at t - 1 predict token t
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[at + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[at + v]! - max);
    total += Math.log(z) + max - logits[at + rows[b]![t]!]!;
  }
  return total / targets.length;
}

for (const device of listDevices()) {
  describe(`sft on ${device}`, () => {
    test('the first step\'s loss is the cross entropy over the completion tokens only', async () => {
      const model = tinyLlama(1);
      const ids = colorRecords().map((r) => tok.applyChatTemplate(r.messages));
      // Independently of tokenizeSft: the completion is what follows the last "assistant" token (the colour, <|im_end|>).
      const targets: [number, number][] = ids.flatMap((row, b) => {
        const start = row.lastIndexOf(VOCAB.assistant!) + 1;
        return [[b, start], [b, start + 1]] as [number, number][];
      });
      expect(targets.map(([b, t]) => ids[b]![t])).toEqual(COLORS.flatMap(([, c]) => [VOCAB[c], VOCAB['<|im_end|>']]));
      const T = ids[0]!.length;
      expect(ids.every((r) => r.length === T)).toBe(true);
      const logits = await noGrad(() => model.to(device).forward({ inputIds: tensor(ids, { dtype: 'int32', device }) }).logits).data();
      const V = LLAMA_V;
      const want = await crossEntropyAt(logits, V, T, ids, targets);
      const everyToken = await crossEntropyAt(logits, V, T, ids, ids.flatMap((row, b) => row.slice(1).map((_, t) => [b, t + 1] as [number, number])));
      expect(Math.abs(want - everyToken)).toBeGreaterThan(0.05); // the masking makes a difference this test can see
      const out = await sft(model, tok, colorRecords(), { ...quiet, batchSize: 6, maxSteps: 1, lr: 1e-9, device });
      expect(out.examples).toBe(6);
      expectClose([out.train.losses[0]!.loss], [want], 1e-5, 1e-5, 'first loss');
    });

    test('LoRA trains only the adapter (base weights bit-identical); merged and unmerged outputs agree', async () => {
      const model = tinyLlama(2).to(device);
      const before = new Map<string, Float32Array>();
      for (const [n, p] of model.namedParameters()) before.set(n, Float32Array.from(await p.data()));
      const out = await sft(model, tok, colorRecords(), { ...quiet, batchSize: 3, maxSteps: 4, lr: 1e-2, lora: { r: 4, alpha: 8, dropout: 0.1, targetModules: ['q_proj', 'v_proj', 'down_proj'] }, device });
      expect(out.adapterLayers).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.0.mlp.down_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj', 'model.layers.1.mlp.down_proj']);
      expect(out.trainableParameters).toBe(2 * (4 * (32 + 32) + 4 * (32 + 16) + 4 * (64 + 32)));
      for (const [n, p] of model.namedParameters()) {
        if (n.includes('lora_')) continue;
        expectClose(await p.data(), Array.from(before.get(n)!), 0, 0, n);
      }
      const b = await model.stateDict()['model.layers.1.mlp.down_proj.lora_B.weight']!.data();
      expect(Math.max(...b.map(Math.abs))).toBeGreaterThan(1e-3); // the adapter did train
      const ids = tensor(colorRecords().map((r) => tok.applyChatTemplate(r.messages)), { dtype: 'int32', device });
      const adapted = await noGrad(() => model.forward({ inputIds: ids }).logits).data();
      mergeLora(model);
      expect(model.namedModules().some(([, m]) => m instanceof LoraLinear)).toBe(false);
      expectClose(await noGrad(() => model.forward({ inputIds: ids }).logits).data(), Array.from(adapted), 1e-4, 1e-4, 'merged logits');
    });
  });
}

const LLAMA_V = Object.keys(VOCAB).length;

describe('sft', () => {
  test('a tiny LLaMA learns the toy task: the loss falls and greedy answers are right; the folder reloads', async () => {
    const model = tinyLlama(3);
    const dir = await tmp();
    const out = await sft(model, tok, colorRecords(), { ...quiet, batchSize: 6, maxSteps: 60, lr: 1e-2, schedule: 'constant', outDir: dir, logEvery: 20 });
    const first = out.train.losses[0]!.loss, last = out.train.losses.at(-1)!.loss;
    expect(first).toBeGreaterThan(2);
    expect(last).toBeLessThan(first / 10);
    const files = await readdir(dir);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'metrics.jsonl', 'loss.svg', 'trainer_state.json']) expect(files).toContain(f);
    const reloaded = await AutoModelForCausalLM.fromPretrained(dir);
    const eos = VOCAB['<|im_end|>']!;
    for (const m of [model, reloaded]) {
      for (const [thing, color] of COLORS) {
        const prompt = tok.applyChatTemplate([{ role: 'user', content: `color of ${thing} ?` }], { addGenerationPrompt: true });
        const seq = (await (await generate(m, tensor([prompt], { dtype: 'int32' }), { maxNewTokens: 3, eosTokenId: eos })).tolist()) as number[][];
        expect(tok.decode(seq[0]!.slice(prompt.length), { skipSpecialTokens: true }).trim(), thing).toBe(color);
      }
    }
  });

  test('LoRA with all-linear and rsLoRA: a PEFT adapter folder that loads onto the base model', async () => {
    const base = await writeTinyModelFolder(await tmp(), 4);
    const model = await AutoModelForCausalLM.fromPretrained(base);
    const dir = await tmp();
    const out = await sft(model, tok, colorRecords(), { ...quiet, batchSize: 6, maxSteps: 3, lr: 1e-2, lora: { r: 2, alpha: 4, useRslora: true }, outDir: dir, baseDir: base });
    expect(out.adapterLayers).toHaveLength(14); // q k v o gate up down in 2 layers; not lm_head
    expect(out.saved).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors', 'tokenizer.json', 'tokenizer_config.json']));
    const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 2, lora_alpha: 4, lora_dropout: 0.05, use_rslora: true, target_modules: 'all-linear', base_model_name_or_path: base });
    const ids = tensor([tok.applyChatTemplate(colorRecords()[0]!.messages)], { dtype: 'int32' });
    const want = await noGrad(() => model.forward({ inputIds: ids }).logits).data();
    const again = await AutoModelForCausalLM.fromPretrained(base);
    await loadLoraAdapter(again, dir);
    expectClose(await noGrad(() => again.forward({ inputIds: ids }).logits).data(), Array.from(want), 1e-5, 1e-5, 'reloaded adapter');
  });

  test('the seed fixes the adapter\'s initialization', async () => {
    const loraA = async (seed: number): Promise<number[]> => {
      const model = tinyLlama(0);
      await sft(model, tok, colorRecords(), { ...quiet, maxSteps: 1, lr: 1e-9, seed, lora: { targetModules: ['q_proj'] } });
      return Array.from(await model.stateDict()['model.layers.0.self_attn.q_proj.lora_A.weight']!.data());
    };
    const a = await loraA(1);
    expect(await loraA(1)).toEqual(a);
    expect(await loraA(2)).not.toEqual(a);
  });

  test('packing: positions and attention restart per example (each equals its logits alone)', async () => {
    const model = tinyLlama(5);
    const { examples } = tokenizeSft(tok, colorRecords());
    const two: SftExample[] = [examples[0]!, { inputIds: examples[1]!.inputIds.slice(0, 12), labels: examples[1]!.labels.slice(0, 12) }];
    const [packed] = packSft(two, 64);
    const L = two[0]!.inputIds.length; // 20 tokens: the default system turn, the question, the answer
    expect(packed!.sequenceStarts).toEqual([0, L]);
    expect(packed!.positionIds.slice(L - 2, L + 3)).toEqual([L - 2, L - 1, 0, 1, 2]);
    const batch = collateSft([packed!], 0);
    expect(batch.attentionMask.shape).toEqual([1, 1, L + 12, L + 12]);
    const logits = await noGrad(() => model.forward({ inputIds: batch.inputIds, positionIds: batch.positionIds, attentionMask: batch.attentionMask }).logits).data();
    const alone = async (ex: SftExample): Promise<ArrayLike<number>> => noGrad(() => model.forward({ inputIds: tensor([ex.inputIds], { dtype: 'int32' }) }).logits).data();
    const V = LLAMA_V;
    // The first example of a sequence is computed exactly as alone.
    expectClose(logits.subarray(0, L * V), Array.from(await alone(two[0]!)), 1e-5, 1e-5, 'first example');
    // The second restarts its positions and sees only itself: its logits are those it has alone.
    expectClose(logits.subarray(L * V), Array.from(await alone(two[1]!)), 1e-5, 1e-5, 'second example');
    // Without the block mask the second example would attend to the first (the check can fail).
    const leaky = await noGrad(() => model.forward({ inputIds: batch.inputIds, positionIds: batch.positionIds }).logits).data();
    const own = await alone(two[1]!);
    expect(Math.max(...Array.from(leaky.subarray(L * V), (v, i) => Math.abs(v - own[i]!)))).toBeGreaterThan(1e-3);
    const lines: string[] = [];
    await sft(tinyLlama(5), tok, colorRecords(), { progress: false, log: (l) => lines.push(l), packing: true, maxLength: 64, batchSize: 2, maxSteps: 1 });
    expect(lines).toContain('sft: packed 6 examples into 2 sequences of at most 64 tokens');
  });

  test('GPT-2 (Conv1D layers, tied lm_head): full fine-tuning saves a folder without a base folder, tied weights once', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const { examples } = tokenizeSft(tok, colorRecords()); // ids < 40 fit GPT-2's 512
    const dir = await tmp();
    const out = await sft(model, tok, examples, { ...quiet, batchSize: 6, maxSteps: 2, lr: 1e-3, outDir: dir });
    expect(out.train.losses).toHaveLength(2);
    expect(Object.keys(await loadSafetensors(join(dir, 'model.safetensors')))).not.toContain('lm_head.weight');
    expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))).toMatchObject({ model_type: 'gpt2', n_embd: 64, architectures: ['GPT2LMHeadModel'] });
    const ids = tensor([examples[0]!.inputIds], { dtype: 'int32' });
    const want = await noGrad(() => model.forward({ inputIds: ids }).logits).data();
    const again = await AutoModelForCausalLM.fromPretrained(dir);
    expectClose(await noGrad(() => again.forward({ inputIds: ids }).logits).data(), Array.from(want), 1e-5, 1e-5, 'reloaded');
    expect(chatTokenizer(JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>).chatTemplate).toBe(tok.chatTemplate);
  });

  test('bad options and data are refused with a clear error', async () => {
    const model = tinyLlama(6);
    await expect(sft(model, tok, [], quiet)).rejects.toThrow(/data must be a non-empty array/);
    await expect(sft(model, tok, colorRecords(), { ...quiet, batchSize: 0 })).rejects.toThrow(/batchSize must be a positive integer, got 0/);
    await expect(sft(model, tok, colorRecords(), { ...quiet, maxLength: 65 })).rejects.toThrow(/maxLength 65 is more than the model's max_position_embeddings = 64/);
    await expect(sft(model, tok, [{ inputIds: [1, 500], labels: [-100, 500] }], quiet)).rejects.toThrow(/example 0 has token id 500, outside the model's vocab_size/);
    await expect(sft(model, tok, [{ kind: 'messages', messages: [{ role: 'user', content: 'hi' }] }], quiet)).rejects.toThrow(/no example has a completion token/);
    await expect(sft(model, tok, colorRecords(), { ...quiet, lora: { targetModules: ['q_proj', 'v_porj'] } })).rejects.toThrow(/target_modules "v_porj" match no layer of the model \(its linear layers: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head\)/);
  });
});

// QLoRA: LoRA adapters over an NF4 base. Gradients equal LoRA's on the dequantized float model, only the adapter trains, the
// NF4 base stays bit-identical and small, a tiny LLaMA learns the toy SFT set, and the saved adapter reproduces the model.

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { mul } from '../autograd/ops/elementwise.js';
import { generate } from '../generation/generate.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import type { PreTrainedModel } from '../models/base.js';
import { addLora, LoraLinear, loadLoraAdapter, markOnlyLoraTrainable, mergeLora, qloraQuantize } from '../models/lora.js';
import { Linear } from '../nn/linear.js';
import { listDevices } from '../tensor/backend.js';
import { randn, tensor } from '../tensor/create.js';
import { manualSeed } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { expectClose } from '../test-util/fixtures.js';
import { chatTokenizer, colorRecords, COLORS, tinyLlama, VOCAB, writeTinyModelFolder } from '../test-util/tiny-chat.js';
import { sft } from '../train/sft.js';
import { dequantizeValues, type QuantizedTensor } from './formats.js';
import { modelBytes, QuantLinear } from './quant-linear.js';

const tok = chatTokenizer();
const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'attend-qlora-'));
const colorIds = (): number[][] => colorRecords().map((r) => tok.applyChatTemplate(r.messages));

/** Every NF4 layer's bytes (codes, absmax codes, scales, offset), by layer name. */
function nf4State(model: PreTrainedModel): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [name, m] of model.namedModules()) {
    const w: QuantizedTensor | null = m instanceof QuantLinear ? m.weight : m instanceof LoraLinear && m.base instanceof QuantLinear ? m.base.weight : null;
    if (w) out.set(name, [...w.data, ...w.absmax!.codes, ...w.absmax!.scales, w.absmax!.offset]);
  }
  return out;
}

const LORA = { r: 4, alpha: 8, targetModules: 'all-linear' as const };

for (const device of listDevices()) {
  describe(`QLoRA on ${device}`, () => {
    test('gradients through the NF4 base equal LoRA\'s on the dequantized float model; only the adapter gets gradients', async () => {
      const q = tinyLlama(1);
      const report = await qloraQuantize(q);
      expect(report.layers).toHaveLength(14); // q k v o gate up down in 2 layers; lm_head stays float
      expect(q.lm_head).toBeInstanceOf(Linear);
      // The same model in float32 with each quantized layer's weight replaced by its dequantized values.
      const f = tinyLlama(1);
      const state: Record<string, Tensor> = {};
      for (const [name, m] of q.namedModules()) if (m instanceof QuantLinear) state[`${name}.weight`] = tensor(dequantizeValues(m.weight), { shape: m.weight.shape });
      f.loadStateDict(state, { strict: false });
      const adapt = (model: PreTrainedModel): void => {
        manualSeed(7);
        expect(addLora(model, LORA)).toHaveLength(14); // all-linear counts QuantLinear layers
        // B = 0 would leave lora_A without a gradient: give every B the same random values in both models.
        noGrad(() => { for (const [, m] of model.namedModules()) if (m instanceof LoraLinear) m.lora_B.weight.replaceStorage(mul(randn(m.lora_B.weight.shape), 0.1)); });
        markOnlyLoraTrainable(model);
        model.to(device).train();
      };
      adapt(q);
      adapt(f);
      const before = nf4State(q);
      const ids = tensor(colorIds(), { dtype: 'int32', device });
      const grads = async (model: PreTrainedModel): Promise<{ loss: number; g: Map<string, Float32Array | null> }> => {
        const out = model.forward({ inputIds: ids, labels: ids });
        out.loss!.backward();
        const g = new Map<string, Float32Array | null>();
        for (const [n, p] of model.namedParameters()) g.set(n, p.grad ? Float32Array.from(await p.grad.data()) : null);
        return { loss: (await out.loss!.data())[0]!, g };
      };
      const gq = await grads(q), gf = await grads(f);
      expectClose([gq.loss], [gf.loss], 1e-5, 1e-5, 'loss');
      let adapters = 0;
      for (const [n, g] of gq.g) {
        if (!/\.lora_[AB]\.weight$/.test(n)) {
          expect(g, `${n} must get no gradient`).toBeNull();
          continue;
        }
        adapters++;
        expect(Math.max(...g!.map(Math.abs)), n).toBeGreaterThan(0);
        expectClose(g!, Array.from(gf.g.get(n)!), 1e-5, 1e-3, n);
      }
      expect(adapters).toBe(28);
      // Layer 0's adapters get their gradient through layer 1's NF4 layers too: without QuantLinear's gradient to x
      // they would differ from the float model's (checked above); the base itself did not change.
      expect(nf4State(q)).toEqual(before);
    });
  });
}

describe('QLoRA', () => {
  test('a tiny LLaMA in NF4 with LoRA learns the toy SFT set; the base stays bit-identical; the saved adapter on a fresh NF4 base gives the same logits', async () => {
    const base = await writeTinyModelFolder(await tmp(), 3);
    const model = await AutoModelForCausalLM.fromPretrained(base);
    const lines: string[] = [];
    const dir = await tmp();
    // lm_head (kept in float) gets an adapter too: with it frozen, this tiny model's logits are too bounded to fit the set.
    const targetModules = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'];
    const out = await sft(model, tok, colorRecords(), {
      progress: false, log: (l) => lines.push(l), qlora: true, lora: { r: 8, alpha: 16, dropout: 0, targetModules }, batchSize: 6, maxSteps: 40, lr: 1e-2,
      schedule: 'constant', outDir: dir, baseDir: base, logEvery: 10,
    });
    // NF4 bytes, from bitsandbytes' layout: 4 bits a weight, one absmax code per 64 weights, a float32 scale per 256
    // absmax values and a float32 offset, per tensor. Per layer: q, o [32, 32] 512 + 16 + 4 + 4 = 536; k, v [16, 32]
    // 256 + 8 + 4 + 4 = 272; gate, up [64, 32] and down [32, 64] 1024 + 32 + 4 + 4 = 1064.
    expect(out.qlora).toMatchObject({ nf4Bytes: 2 * (2 * 536 + 2 * 272 + 3 * 1064), float32Bytes: 2 * 4 * (2 * 1024 + 2 * 512 + 3 * 2048) });
    expect(out.qlora!.nf4Bytes / out.qlora!.float32Bytes).toBeLessThan(0.2); // 9616 / 73728 = 0.130
    // Model weights: embeddings and lm_head [30, 32], 5 RMSNorm weights [32], RoPE's inv_freq [4] and the 14 layers, in
    // float32 before (82,064 bytes); after, the layers take 9,616 bytes instead of 73,728.
    expect(lines).toEqual([
      'sft: QLoRA: 14 layers in NF4: 9,616 bytes against 73,728 in float32 (0.130x); model weights 82,064 -> 17,952 bytes',
      'sft: LoRA r 8 on 15 layers: trainable params 8,688 of 29,200 (29.753%)', // the NF4 weights count as frozen parameters
    ]);
    expect(out.trainableParameters).toBe(2 * 8 * (2 * (32 + 32) + 2 * (32 + 16) + 3 * (32 + 64)) + 8 * (32 + 30));
    const head = model.namedModules().find(([n]) => n === 'lm_head')![1];
    expect(head).toBeInstanceOf(LoraLinear);
    expect((head as LoraLinear).base).toBeInstanceOf(Linear);
    // With the adapters (float32): the NF4 model's bytes plus theirs.
    expect(modelBytes(model)).toBe(17952 + 4 * 8688);
    const first = out.train.losses[0]!.loss, last = out.train.losses.at(-1)!.loss;
    expect(first).toBeGreaterThan(2);
    expect(last).toBeLessThan(first / 10);
    const eos = VOCAB['<|im_end|>']!;
    for (const [thing, color] of COLORS) {
      const prompt = tok.applyChatTemplate([{ role: 'user', content: `color of ${thing} ?` }], { addGenerationPrompt: true });
      const seq = (await (await generate(model, tensor([prompt], { dtype: 'int32' }), { maxNewTokens: 3, eosTokenId: eos })).tolist()) as number[][];
      expect(tok.decode(seq[0]!.slice(prompt.length), { skipSpecialTokens: true }).trim(), thing).toBe(color);
    }
    // The NF4 base after training is byte for byte the base quantized afresh from the float folder.
    const fresh = await AutoModelForCausalLM.fromPretrained(base);
    await qloraQuantize(fresh);
    const trained = nf4State(model);
    expect(trained.size).toBe(14);
    expect(trained).toEqual(nf4State(fresh));
    // The PEFT adapter on that fresh NF4 base computes exactly the trained model.
    await loadLoraAdapter(fresh, dir);
    const ids = tensor(colorIds(), { dtype: 'int32' });
    const want = await noGrad(() => model.forward({ inputIds: ids }).logits).data();
    expectClose(await noGrad(() => fresh.forward({ inputIds: ids }).logits).data(), Array.from(want), 0, 0, 'logits');
    // The adapter trained on NF4 is not the same model over the float base (the check above could fail).
    const float = await AutoModelForCausalLM.fromPretrained(base);
    await loadLoraAdapter(float, dir);
    const onFloat = await noGrad(() => float.forward({ inputIds: ids }).logits).data();
    expect(Math.max(...Array.from(onFloat, (v, i) => Math.abs(v - want[i]!)))).toBeGreaterThan(1e-3);
    expect(() => mergeLora(model)).toThrow(/mergeLora: model\.layers\.0\.self_attn\.q_proj has a quantized base \(QLoRA\)/);
  });

  test('bad use is refused with a clear error', async () => {
    const model = tinyLlama(4);
    addLora(model, LORA);
    await expect(qloraQuantize(model)).rejects.toThrow(/already has a LoRA adapter; quantize the base first/);
    await expect(sft(tinyLlama(4), tok, colorRecords(), { progress: false, log: () => {}, qlora: true, lora: false })).rejects.toThrow(/qlora trains a LoRA adapter over an NF4 base; it cannot be combined with lora: false/);
    const q = tinyLlama(4);
    await qloraQuantize(q);
    expect(() => addLora(q, { ...LORA, targetModules: ['q_proj', 'nope'] })).toThrow(/"nope" match no layer of the model \(its linear layers: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head\)/);
  });
});

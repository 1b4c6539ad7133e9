// savePretrained on every Hugging Face fixture: the folder has the fixture's tensor names, shapes, dtypes and config, reloads to transformers' outputs, and loads in plain PyTorch.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../io/safetensors.js';
import { expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  AutoModel, AutoModelForCausalLM, AutoModelForCTC, AutoModelForImageClassification, AutoModelForMaskedLM, AutoModelForSeq2SeqLM,
  AutoModelForSequenceClassification, AutoModelForSpeechSeq2Seq,
} from './auto.js';
import { ConfigReader, type ModelInputs } from './base.js';
import { GPT2LMHeadModel, gpt2Config } from './gpt2.js';

type Loader = typeof AutoModel;

/**
 * Each fixture with its Auto class and the state-dict names transformers does not save because they are tied to a
 * saved tensor (save_pretrained keeps one name per shared tensor, the first). Apart from these, the saved file has
 * exactly the fixture's tensors: transformers 5 saves no buffers for these architectures (the causal-mask, position_ids
 * and rotary inv_freq buffers that auto.ts ignores come only from older checkpoints), and we write none.
 */
const FIXTURES: { name: string; auto: Loader; tied: string[] }[] = [
  { name: 'gpt2', auto: AutoModelForCausalLM, tied: ['lm_head.weight'] },
  { name: 'llama', auto: AutoModelForCausalLM, tied: [] }, // tie_word_embeddings false: lm_head.weight is saved
  { name: 'mistral', auto: AutoModelForCausalLM, tied: [] },
  { name: 'qwen2', auto: AutoModelForCausalLM, tied: ['lm_head.weight'] },
  { name: 'gemma', auto: AutoModelForCausalLM, tied: ['lm_head.weight'] },
  { name: 'bert-cls', auto: AutoModelForSequenceClassification, tied: [] },
  { name: 'bert-mlm', auto: AutoModelForMaskedLM, tied: ['cls.predictions.decoder.weight', 'cls.predictions.decoder.bias'] },
  { name: 'roberta-mlm', auto: AutoModelForMaskedLM, tied: ['lm_head.decoder.weight', 'lm_head.decoder.bias'] },
  { name: 'distilbert-cls', auto: AutoModelForSequenceClassification, tied: [] },
  { name: 't5', auto: AutoModelForSeq2SeqLM, tied: ['encoder.embed_tokens.weight', 'decoder.embed_tokens.weight', 'lm_head.weight'] },
  { name: 'bart', auto: AutoModelForSeq2SeqLM, tied: ['model.encoder.embed_tokens.weight', 'model.decoder.embed_tokens.weight', 'lm_head.weight'] },
  { name: 'vit', auto: AutoModelForImageClassification, tied: [] },
  { name: 'clip', auto: AutoModel, tied: [] },
  { name: 'whisper', auto: AutoModelForSpeechSeq2Seq, tied: ['proj_out.weight'] },
  { name: 'wav2vec2', auto: AutoModelForCTC, tied: [] },
];

/** ref.safetensors' input names -> forward's. */
const INPUTS: [string, keyof ModelInputs][] = [
  ['input_ids', 'inputIds'], ['attention_mask', 'attentionMask'], ['token_type_ids', 'tokenTypeIds'], ['decoder_input_ids', 'decoderInputIds'],
  ['pixel_values', 'pixelValues'], ['input_features', 'inputFeatures'], ['input_values', 'inputValues'],
];

const tempDir = (): Promise<string> => mkdtemp(join(tmpdir(), 'attend-save-pretrained-'));
const readJson = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));

describe('savePretrained writes what transformers wrote, on cpu', () => {
  for (const { name, auto, tied } of FIXTURES) {
    test(`${name}: tensors, config.json and generation_config.json, and the reloaded model's outputs`, async () => {
      const src = hfDir(name), dir = await tempDir();
      const model = await auto.fromPretrained(src, { device: 'cpu' });
      await model.savePretrained(dir);
      expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors', ...(existsSync(join(src, 'generation_config.json')) ? ['generation_config.json'] : [])].sort());

      // (a) Every tensor transformers saved, under its name, shape and dtype, with the same values; nothing else.
      const [want, got] = await Promise.all([readSafetensorsHeader(join(src, 'model.safetensors')), readSafetensorsHeader(join(dir, 'model.safetensors'))]);
      const layout = (h: typeof want) => Object.fromEntries(Object.entries(h.tensors).map(([k, e]) => [k, { dtype: e.dtype, shape: e.shape }]));
      expect(layout(got)).toEqual(layout(want));
      expect(got.metadata).toEqual({ format: 'pt' });
      const [wantT, gotT] = await Promise.all([loadSafetensors(join(src, 'model.safetensors')), loadSafetensors(join(dir, 'model.safetensors'))]);
      for (const [k, t] of Object.entries(wantT)) {
        const [a, b] = [await gotT[k]!.data(), await t.data()];
        expect(a.every((v, i) => v === b[i]), `${k}: values`).toBe(true);
      }
      // The names left out are exactly the tied ones, each the same tensor as one that was saved.
      const state = model.stateDict();
      expect(Object.keys(state).filter((k) => !(k in got.tensors))).toEqual(tied);
      const saved = new Set(Object.keys(got.tensors).map((k) => state[k]));
      for (const k of tied) expect(saved.has(state[k]), `${k} is tied to a saved tensor`).toBe(true);

      // (b) config.json as the fixture's: "architectures" is the class, "dtype" the parameters' (both unchanged here).
      expect(readJson(join(dir, 'config.json'))).toEqual(readJson(join(src, 'config.json')));
      if (existsSync(join(src, 'generation_config.json'))) expect(readJson(join(dir, 'generation_config.json'))).toEqual(readJson(join(src, 'generation_config.json')));

      // (c) The saved folder loads back through the same Auto class to transformers' outputs.
      const ref = await loadRef(name, 'cpu');
      const reloaded = await auto.fromPretrained(dir, { device: 'cpu' });
      const inputs: ModelInputs = {};
      for (const [file, field] of INPUTS) {
        const t = ref[file];
        if (t) (inputs as Record<string, Tensor>)[field] = t.dtype === 'float32' || t.dtype === 'int32' ? t : t.int();
      }
      await expectTensorClose(reloaded.forward(inputs).logits, ref['logits'] ?? ref['logits_per_image']!, 1e-4, `${name} logits`);
    });
  }
});

describe('savePretrained: dtypes, configs and errors', () => {
  test('a float16 model is saved as F16 with config "dtype" float16, and reloads (dtype auto) to the same logits', async () => {
    const dir = await tempDir();
    const half = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { dtype: 'float16', device: 'cpu' });
    await half.savePretrained(dir);
    const header = await readSafetensorsHeader(join(dir, 'model.safetensors'));
    expect(new Set(Object.values(header.tensors).map((e) => e.dtype))).toEqual(new Set(['F16']));
    expect(readJson(join(dir, 'config.json'))).toMatchObject({ dtype: 'float16' });
    const again = await AutoModelForCausalLM.fromPretrained(dir, { dtype: 'auto', device: 'cpu' });
    expect(again.dtype).toBe('float16');
    const ref = await loadRef('gpt2', 'cpu');
    const inputs = { inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! };
    await expectTensorClose(again.forward(inputs).logits, half.forward(inputs).logits, 0, 'reloaded float16 logits');
  });

  test('a model built in code needs { config }; transformers 4\'s "torch_dtype" is kept as the dtype field', async () => {
    const json = readJson(join(hfDir('gpt2'), 'config.json')) as Record<string, unknown>;
    const model = new GPT2LMHeadModel(gpt2Config(new ConfigReader(json, 'config.json')));
    const dir = join(await tempDir(), 'out');
    await expect(model.savePretrained(dir)).rejects.toThrow(/GPT2LMHeadModel\.savePretrained: no config\.json fields .*pass \{ config \}/);
    expect(existsSync(dir)).toBe(false);
    const { model_type: _, ...untyped } = json;
    await expect(model.savePretrained(dir, { config: untyped })).rejects.toThrow(/GPT2LMHeadModel\.savePretrained: the config has no "model_type"/);
    const { dtype: __, architectures: ___, ...v4 } = json;
    await model.savePretrained(dir, { config: { ...v4, torch_dtype: 'float32' } });
    const written = readJson(join(dir, 'config.json')) as Record<string, unknown>;
    expect(written).toEqual({ ...v4, torch_dtype: 'float32', architectures: ['GPT2LMHeadModel'] });
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'model.safetensors']); // no temporary files left
    const reloaded = await AutoModelForCausalLM.fromPretrained(dir, { device: 'cpu' });
    const w = 'transformer.h.1.mlp.c_fc.weight';
    await expectTensorClose(reloaded.stateDict()[w]!, model.stateDict()[w]!, 0, w);
  });
});

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../reference/load_gpt2.py', import.meta.url));
const hasTorch = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore' }).status === 0;

describe('our GPT-2 folder in plain PyTorch (reference/load_gpt2.py)', () => {
  test.skipIf(!hasTorch)('loads strictly and gives the fixture\'s logits (the left-padded row at its tokens)', async () => {
    const dir = await tempDir();
    await (await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device: 'cpu' })).savePretrained(dir);
    const ref = await loadRef('gpt2', 'cpu');
    const ids = await ref['input_ids']!.tolist() as number[][], mask = await ref['attention_mask']!.tolist() as number[][];
    const r = spawnSync(PYTHON, [SCRIPT, dir, '--input-ids', JSON.stringify(ids), '--attention-mask', JSON.stringify(mask)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.status, r.stderr).toBe(0);
    const logits = (JSON.parse(r.stdout) as { logits: (number[] | null)[][] }).logits;
    const want = await ref['logits']!.tolist() as number[][][];
    let worst = 0;
    mask.forEach((row, b) => row.forEach((m, t) => {
      const got = logits[b]![t]!;
      if (m === 0) return expect(got, `padded position [${b}, ${t}]`).toBeNull();
      expect(got).toHaveLength(want[b]![t]!.length);
      got!.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - want[b]![t]![i]!)); });
    }));
    expect(worst).toBeLessThan(1e-4);
  }, 60_000);

  test.skipIf(!hasTorch)('a folder with a weight missing fails, naming it', async () => {
    const dir = await tempDir();
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device: 'cpu' });
    await model.savePretrained(dir);
    const state = await loadSafetensors(join(dir, 'model.safetensors'));
    delete state['transformer.ln_f.bias'];
    await saveSafetensors(join(dir, 'model.safetensors'), state, { format: 'pt' });
    const r = spawnSync(PYTHON, [SCRIPT, dir, '--input-ids', '[[1, 2]]'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Missing key\(s\) in state_dict: "transformer\.ln_f\.bias"/);
  }, 60_000);
});

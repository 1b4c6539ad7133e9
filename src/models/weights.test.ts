// The config-only weight specs (checked against checkpoint headers before allocation) against the real models' state dicts.

import { readFileSync } from 'node:fs';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { memory } from '../tensor/memory.js';
import type { Tensor } from '../tensor/tensor.js';
import { AutoModelForCausalLM, AutoModelForSeq2SeqLM } from './auto.js';
import { ConfigReader, type PreTrainedModel, type WeightSpec } from './base.js';
import { BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, bertConfig, bertWeights } from './bert.js';
import { GPT2LMHeadModel, gpt2Config, gpt2Weights } from './gpt2.js';
import { LlamaForCausalLM, llamaConfig, llamaWeights } from './llama.js';
import { T5ForConditionalGeneration, t5Config, t5Weights } from './t5.js';

const fixtureConfig = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(hfDir(name), 'config.json'), 'utf8')) as Record<string, unknown>;

/** The spec's names and shapes must be the model's state dict, and its tied groups the state dict's shared tensors. */
function expectSpecMatches(spec: WeightSpec, model: PreTrainedModel): void {
  const sd = model.stateDict();
  expect(Object.fromEntries(Object.keys(spec.shapes).sort().map((k) => [k, spec.shapes[k]]))).toEqual(Object.fromEntries(Object.keys(sd).sort().map((k) => [k, sd[k]!.shape])));
  const groups = new Map<Tensor, string[]>();
  for (const [k, t] of Object.entries(sd)) groups.set(t, [...(groups.get(t) ?? []), k]);
  const shared = [...groups.values()].filter((g) => g.length > 1).map((g) => g.sort().join(' ')).sort();
  expect(spec.tied.map((g) => [...g].sort().join(' ')).sort()).toEqual(shared);
}

describe('weight specs equal the models they describe', () => {
  const small = { n_layer: 3, n_head: 2 };
  test.each([{}, { tie_word_embeddings: false }, { n_inner: 96, ...small }])('GPT-2 %j', (over) => {
    const cfg = gpt2Config(new ConfigReader({ ...fixtureConfig('gpt2'), ...over }, 'config.json'));
    expectSpecMatches(gpt2Weights(cfg), new GPT2LMHeadModel(cfg));
  });
  test.each([{}, { tie_word_embeddings: false }, { num_labels: 5, id2label: null, type_vocab_size: 1 }])('BERT heads %j', (over) => {
    const cfg = bertConfig(new ConfigReader({ ...fixtureConfig('bert-cls'), ...over }, 'config.json'));
    expectSpecMatches(bertWeights(cfg, 'maskedLM'), new BertForMaskedLM(cfg));
    expectSpecMatches(bertWeights(cfg, 'sequenceClassification'), new BertForSequenceClassification(cfg));
    expectSpecMatches(bertWeights(cfg, 'tokenClassification'), new BertForTokenClassification(cfg));
  });
  test.each([{}, { tie_word_embeddings: true, attention_bias: true, mlp_bias: true }, { num_key_value_heads: 1, head_dim: 8, num_hidden_layers: 1 }])('LLaMA %j', (over) => {
    const cfg = llamaConfig(new ConfigReader({ ...fixtureConfig('llama'), ...over }, 'config.json'));
    expectSpecMatches(llamaWeights(cfg), new LlamaForCausalLM(cfg));
  });
  test.each([{}, { tie_word_embeddings: false }, { feed_forward_proj: 'gated-gelu', num_decoder_layers: 3, num_heads: 2, d_kv: 8 }])('T5 %j', (over) => {
    const cfg = t5Config(new ConfigReader({ ...fixtureConfig('t5'), ...over }, 'config.json'));
    expectSpecMatches(t5Weights(cfg), new T5ForConditionalGeneration(cfg));
  });
});

describe('checks before work', () => {
  async function gpt2Folder(over: object): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'attend-weights-'));
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...fixtureConfig('gpt2'), ...over }));
    await copyFile(join(hfDir('gpt2'), 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  test('a GPT-2 XL config over a small checkpoint fails from the header, before allocating its 6.7 GB', async () => {
    const dir = await gpt2Folder({ vocab_size: 50257, n_positions: 1024, n_embd: 1600, n_layer: 48, n_head: 25 });
    const before = process.memoryUsage().arrayBuffers;
    const started = Date.now();
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(
      new RegExp(`${dir}/model.safetensors: weight transformer.wte.weight has shape \\[512, 64\\], the config says \\[50257, 1600\\] \\(${dir}/config.json\\)`),
    );
    expect(Date.now() - started).toBeLessThan(2000);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 2 ** 20);
  });
  test('missing and unexpected weights are found from the header and name the config', async () => {
    const dir = await gpt2Folder({ n_layer: 3 });
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(/model.safetensors: missing weights for transformer.h.2.ln_1.weight, .* \(expected from .*config.json\)/);
    const fewer = await gpt2Folder({ n_layer: 1 });
    await expect(AutoModelForCausalLM.fromPretrained(fewer)).rejects.toThrow(/unexpected weights transformer.h.1.attn.c_attn.bias, .* does .*config.json disagree with it/);
  });
  test.each([
    [{ n_head: 5 }, /"n_embd" \(64\) must be divisible by "n_head" \(5\)/],
    [{ n_embd: 0 }, /"n_embd" must be a positive integer, got 0/],
    [{ vocab_size: -3 }, /"vocab_size" must be a positive integer, got -3/],
    [{ vocab_size: 1e300 }, /"vocab_size" must be a positive integer, got 1e\+300/],
    [{ n_layer: '2' }, /"n_layer" must be a positive integer, got "2"/],
    [{ activation_function: 'swishy' }, /"activation_function" must be one of gelu_new, gelu, gelu_pytorch_tanh, relu, silu, got "swishy"/],
    [{ attn_pdrop: 1.5 }, /"attn_pdrop" must be a number in \[0, 1\], got 1.5/],
    [{ layer_norm_epsilon: 0 }, /"layer_norm_epsilon" must be a positive number, got 0/],
    [{ vocab_size: undefined }, /"vocab_size" must be a positive integer, got undefined/],
    // Counts the loader loops over before it reaches the checkpoint are bounded, so a corrupt one cannot hang it.
    [{ n_layer: 1e12 }, /"n_layer" must be a positive integer of at most 100000, got 1000000000000/],
  ])('GPT-2 config %j is refused at load, naming the file and key', async (over, re) => {
    const dir = await gpt2Folder(over);
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(new RegExp(`${dir}/config.json: ${re.source}`));
  });
  test('a generation_config.json that is not an object fails before the model is built', async () => {
    const dir = await gpt2Folder({});
    await writeFile(join(dir, 'generation_config.json'), '[1, 2]');
    const before = memory().tensors;
    await expect(AutoModelForCausalLM.fromPretrained(dir)).rejects.toThrow(`${dir}/generation_config.json: expected a JSON object`);
    expect(memory().tensors).toBe(before);
  });
  test('T5 and LLaMA widths and heads', async () => {
    const t5 = await mkdtemp(join(tmpdir(), 'attend-weights-'));
    await writeFile(join(t5, 'config.json'), JSON.stringify({ ...fixtureConfig('t5'), relative_attention_num_buckets: 2 }));
    await expect(AutoModelForSeq2SeqLM.fromPretrained(t5)).rejects.toThrow(/"relative_attention_num_buckets" must be at least 4, got 2/);
    const read = (over: object) => () => llamaConfig(new ConfigReader({ ...fixtureConfig('llama'), ...over }, 'llama/config.json'));
    expect(read({ num_key_value_heads: 0 })).toThrow(/llama\/config.json: "num_key_value_heads" must be a positive integer, got 0/);
    const bert = (over: object) => () => bertConfig(new ConfigReader({ ...fixtureConfig('bert-cls'), ...over }, 'bert/config.json'));
    expect(bert({ id2label: null, num_labels: 2 ** 31 })).toThrow(/bert\/config.json: "num_labels" must be a positive integer of at most 100000/);
    expect(bert({ id2label: {} })).toThrow(/bert\/config.json: "id2label" must name at least one label/);
    expect(bert({ num_hidden_layers: 2 ** 40 })).toThrow(/"num_hidden_layers" must be a positive integer of at most 100000/);
    expect(read({ hidden_act: 'tanh' })).toThrow(/"hidden_act" must be one of silu, gelu, gelu_new, gelu_pytorch_tanh, relu, got "tanh"/);
  });
});

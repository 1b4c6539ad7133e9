// Reward models as Hugging Face folders: transformers' names (trunk, score.weight, no LM head) and config fields for
// LLaMA and GPT-2, scores equal after save -> load, the score as w · h(last real token) by hand, and bad folders.

import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { readSafetensorsHeader, saveSafetensors } from '../io/safetensors.js';
import { ConfigReader } from '../models/base.js';
import { GPT2LMHeadModel, gpt2Config } from '../models/gpt2.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { manualSeed } from '../tensor/random.js';
import { chatTokenizer, LLAMA_CONFIG, tinyLlama, writeTinyModelFolder } from '../test-util/tiny-chat.js';
import { loadRewardModel, RewardModel, saveRewardModel, scoreSequences, sequenceClassificationName } from './reward.js';

const tmp = (): Promise<string> => mkdtemp(join(tmpdir(), 'attend-reward-io-'));
const tok = chatTokenizer();
/** Sequences of different lengths (scored with right padding). */
const SEQS = [[3, 10, 11, 12, 13], [4, 5], [14, 15, 16, 17, 18, 19, 20, 21], [7]];

const GPT2_CONFIG = { vocab_size: LLAMA_CONFIG.vocab_size, n_positions: 32, n_embd: 16, n_layer: 2, n_head: 2, embd_pdrop: 0, attn_pdrop: 0, resid_pdrop: 0 };

async function keys(dir: string): Promise<Record<string, readonly number[]>> {
  const { tensors } = await readSafetensorsHeader(join(dir, 'model.safetensors'));
  return Object.fromEntries(Object.entries(tensors).map(([k, e]) => [k, e.shape]));
}

describe('reward model folders', () => {
  for (const device of listDevices()) {
    test(`LLaMA: save -> load gives the same scores; transformers' names and config (${device})`, async () => {
      const base = await writeTinyModelFolder(await tmp(), 1);
      manualSeed(7);
      const rm = new RewardModel(tinyLlama(1));
      rm.to(device);
      const dir = join(await tmp(), 'rm');
      const saved = await saveRewardModel(rm, tok, dir, { baseDir: base });
      expect(saved).toEqual(expect.arrayContaining(['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json']));
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(config).toMatchObject({ architectures: ['LlamaForSequenceClassification'], model_type: 'llama', num_labels: 1, id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 }, pad_token_id: LLAMA_CONFIG.pad_token_id, hidden_size: 32 });
      const k = await keys(dir);
      expect(k['score.weight']).toEqual([1, 32]);
      expect(k['model.embed_tokens.weight']).toEqual([LLAMA_CONFIG.vocab_size, 32]);
      expect(k['model.norm.weight']).toEqual([32]);
      expect(Object.keys(k).filter((n) => !n.startsWith('model.') && n !== 'score.weight')).toEqual([]); // no lm_head, no "base." prefix

      const loaded = await loadRewardModel(dir, { device });
      const pad = tok.padTokenId!;
      const want = await scoreSequences(rm, SEQS, { padId: pad });
      expect(await scoreSequences(loaded, SEQS, { padId: pad })).toEqual(want);
      expect(await loaded.score.weight.data()).toEqual(await rm.score.weight.data());

      // By hand: the score is score.weight · the hidden state of the sequence's last token.
      const w = Array.from(await rm.score.weight.data());
      for (const [i, s] of SEQS.entries()) {
        const h = noGrad(() => rm.base.forward({ inputIds: tensor([s], { dtype: 'int32', device }) }).lastHiddenState!);
        const d = await h.data();
        const last = d.subarray((s.length - 1) * 32, s.length * 32);
        expect(want[i]).toBeCloseTo(w.reduce((a, x, c) => a + x * last[c]!, 0), 4);
      }
    });
  }

  test('GPT-2: transformer.* and score.weight, GPT2ForSequenceClassification; a config written without a base folder', async () => {
    manualSeed(3);
    const rm = new RewardModel(new GPT2LMHeadModel(gpt2Config(new ConfigReader(GPT2_CONFIG, 'config.json'))).eval());
    const dir = join(await tmp(), 'rm');
    await saveRewardModel(rm, tok, dir);
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ architectures: ['GPT2ForSequenceClassification'], model_type: 'gpt2', num_labels: 1, n_embd: 16, pad_token_id: tok.padTokenId });
    const k = await keys(dir);
    expect(k['score.weight']).toEqual([1, 16]);
    expect(k['transformer.wte.weight']).toEqual([LLAMA_CONFIG.vocab_size, 16]);
    expect(k['lm_head.weight']).toBeUndefined();
    const loaded = await loadRewardModel(dir);
    expect(await scoreSequences(loaded, SEQS)).toEqual(await scoreSequences(rm, SEQS));
    expect(sequenceClassificationName('Qwen2ForCausalLM')).toBe('Qwen2ForSequenceClassification');
    expect(() => sequenceClassificationName('BertForMaskedLM')).toThrow('BertForMaskedLM is not a causal LM class name');
  });

  test('bad folders: a causal LM, two labels, no score.weight, a wrong head shape', async () => {
    const base = await writeTinyModelFolder(await tmp(), 2);
    await expect(loadRewardModel(base)).rejects.toThrow(`${base}/config.json: architectures is ["LlamaForCausalLM"]; a reward model is an XxxForSequenceClassification with num_labels 1`);
    const dir = join(await tmp(), 'rm');
    const rm = new RewardModel(tinyLlama(2));
    await saveRewardModel(rm, tok, dir, { baseDir: base });
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, id2label: { 0: 'bad', 1: 'good' } }));
    await expect(loadRewardModel(dir)).rejects.toThrow('a reward model has one label (num_labels 1), this config has 2');
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const trunk = Object.fromEntries(Object.entries(rm.base.stateDict()).filter(([n]) => !n.startsWith('lm_head.')));
    await saveSafetensors(join(dir, 'model.safetensors'), trunk, { format: 'pt' });
    await expect(loadRewardModel(dir)).rejects.toThrow(`${dir}/model.safetensors: no score.weight (the reward head of a LlamaForSequenceClassification)`);
    await saveSafetensors(join(dir, 'model.safetensors'), { ...trunk, 'score.weight': tensor([[1, 2, 3]], { dtype: 'float32' }) }, { format: 'pt' });
    await expect(loadRewardModel(dir)).rejects.toThrow(/model\.safetensors \(score\.weight\): weight weight has shape \[1, 3\], the config says \[1, 32\]/);
  });
});

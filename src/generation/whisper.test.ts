// Whisper generation: the decoder prompt transformers builds (forced ids, language, task, no timestamps) from real
// openai/whisper generation configs; greedy and beam decoding from inputFeatures against an uncached reference loop.

import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { AutoModelForCausalLM, AutoModelForSpeechSeq2Seq } from '../models/auto.js';
import type { GenerationDefaults, PreTrainedModel } from '../models/base.js';
import { expectClose } from '../test-util/fixtures.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { generate, generateWithScores } from './generate.js';
import { whisperInitTokens } from './whisper.js';

// openai/whisper-tiny's generation_config.json (the fields that build the prompt; lang_to_id cut to a few languages).
const TINY: GenerationDefaults = {
  decoderStartTokenId: 50258, forcedDecoderIds: [[1, null], [2, 50359]], isMultilingual: true, noTimestampsTokenId: 50363,
  langToId: { '<|en|>': 50259, '<|zh|>': 50260, '<|de|>': 50261, '<|fr|>': 50265 }, taskToId: { transcribe: 50359, translate: 50358 },
};
// openai/whisper-tiny.en's.
const TINY_EN: GenerationDefaults = { decoderStartTokenId: 50257, forcedDecoderIds: [[1, 50362]], isMultilingual: false, noTimestampsTokenId: 50362 };

describe('the Whisper decoder prompt (transformers _retrieve_init_tokens)', () => {
  test('multilingual: the language is detected unless given; language names, codes and tokens all work', () => {
    expect(whisperInitTokens(TINY, 50258, {})).toEqual({ tokens: [50258, null, 50359, 50363], detectAt: 1 });
    for (const language of ['en', 'English', '<|en|>']) expect(whisperInitTokens(TINY, 50258, { language }).tokens).toEqual([50258, 50259, 50359, 50363]);
    expect(whisperInitTokens(TINY, 50258, { language: 'fr', task: 'translate' }).tokens).toEqual([50258, 50265, 50358, 50363]);
    expect(whisperInitTokens(TINY, 50258, { task: 'translate' })).toEqual({ tokens: [50258, null, 50358, 50363], detectAt: 1 });
    expect(whisperInitTokens(TINY, 50258, { language: 'german', task: 'transcribe' }).tokens).toEqual([50258, 50261, 50359, 50363]);
  });
  test('English-only: the forced no-timestamps token, no detection; a language is refused', () => {
    expect(whisperInitTokens(TINY_EN, 50257, {})).toEqual({ tokens: [50257, 50362], detectAt: -1 });
    expect(() => whisperInitTokens(TINY_EN, 50257, { language: 'en' })).toThrow(/English-only model/);
  });
  test('no Whisper fields (T5): the start token alone', () => {
    expect(whisperInitTokens({}, 0, {}).tokens).toEqual([0]);
    expect(() => whisperInitTokens({}, 0, { language: 'en' })).toThrow(/has no lang_to_id/);
  });
  test('bad language, task and forced ids are named', () => {
    expect(() => whisperInitTokens(TINY, 50258, { language: 'klingon' })).toThrow(/unsupported language 'klingon'; this model knows en, zh, de, fr/);
    expect(() => whisperInitTokens(TINY, 50258, { language: 'ja' })).toThrow(/unsupported language 'ja'/);
    expect(() => whisperInitTokens(TINY, 50258, { task: 'summarize' })).toThrow(/task must be 'transcribe' or 'translate'/);
    expect(() => whisperInitTokens({ ...TINY, forcedDecoderIds: [[1, 5], [3, 6]] }, 1, {})).toThrow(/every position from 1 on/);
  });
});

const folders: string[] = [];
afterAll(() => Promise.all(folders.map((d) => rm(d, { recursive: true, force: true }))));

/** The fixture model with a Whisper-style generation_config.json for its 512-token vocabulary. */
async function fixtureWithConfig(extra: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attend-whisper-gen-'));
  folders.push(dir);
  for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('whisper'), f), join(dir, f));
  await writeFile(join(dir, 'generation_config.json'), JSON.stringify({
    decoder_start_token_id: 1, bos_token_id: 1, eos_token_id: 2, pad_token_id: 0, is_multilingual: true,
    forced_decoder_ids: [[1, null], [2, 20]], lang_to_id: { '<|en|>': 10, '<|de|>': 11, '<|fr|>': 12 },
    task_to_id: { transcribe: 20, translate: 21 }, no_timestamps_token_id: 22, max_length: 64, ...extra,
  }));
  return dir;
}

/** Greedy decoding the slow way: the full decoder prefix every step, no cache, suppression by hand. */
async function referenceGreedy(model: PreTrainedModel, features: Tensor, prompt: number[], steps: number, suppress: number[], begin: number[]): Promise<number[]> {
  const seq = [...prompt];
  for (let n = 0; n < steps; n++) {
    const logits = noGrad(() => model.forward({ inputFeatures: features, decoderInputIds: tensor([seq], { device: features.device }) }).logits);
    const V = logits.shape[2]!;
    const row = Array.from((await logits.data()).subarray((seq.length - 1) * V));
    for (const t of [...suppress, ...(n === 0 ? begin : [])]) row[t] = -Infinity;
    seq.push(row.indexOf(Math.max(...row)));
    if (seq[seq.length - 1] === 2) break;
  }
  return seq;
}

/** Sum of log-probabilities of `seq` after `promptLen` tokens, over a full uncached pass. */
async function sequenceLogProb(model: PreTrainedModel, features: Tensor, seq: number[], promptLen: number): Promise<number> {
  const logits = noGrad(() => model.forward({ inputFeatures: features, decoderInputIds: tensor([seq.slice(0, -1)], { device: features.device }) }).logits);
  const V = logits.shape[2]!, data = await logits.data();
  let total = 0;
  for (let t = promptLen - 1; t < seq.length - 1; t++) {
    const row = Array.from(data.subarray(t * V, (t + 1) * V)), m = Math.max(...row);
    total += row[seq[t + 1]!]! - m - Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
  }
  return total;
}

for (const device of listDevices()) {
  describe(`Whisper generation on ${device}`, () => {
    test('greedy from inputFeatures: the prompt, then the tokens of an uncached reference loop; scores equal full passes', async () => {
      const ref = await loadRef('whisper', device);
      const model = await AutoModelForSpeechSeq2Seq.fromPretrained(await fixtureWithConfig(), { device });
      const features = ref['input_features']!;
      const out = await generateWithScores(model, { inputFeatures: features }, { language: 'de', maxNewTokens: 8 });
      const seq = (await out.sequences.tolist() as number[][])[0]!;
      expect(seq.slice(0, 4)).toEqual([1, 11, 20, 22]);
      expect(seq).toEqual(await referenceGreedy(model, features, [1, 11, 20, 22], 8, [], []));
      const full = noGrad(() => model.forward({ inputFeatures: features, decoderInputIds: out.sequences }).logits);
      const data = await full.data();
      out.scores.forEach((s, i) => expectClose(s, Array.from(data.subarray((3 + i) * 512, (4 + i) * 512)), 1e-4, 0, `step ${i}`));
    });

    test('suppress_tokens and begin_suppress_tokens from generation_config.json change the tokens as the reference does', async () => {
      const ref = await loadRef('whisper', device);
      const features = ref['input_features']!;
      const plain = await AutoModelForSpeechSeq2Seq.fromPretrained(await fixtureWithConfig(), { device });
      const free = (await (await generate(plain, { inputFeatures: features }, { language: 'en', maxNewTokens: 6 })).tolist() as number[][])[0]!;
      // Forbid the first token it chose at the start, and its second token everywhere: the output must change.
      const begin = [free[4]!], never = [free[5]!];
      const model = await AutoModelForSpeechSeq2Seq.fromPretrained(await fixtureWithConfig({ suppress_tokens: never, begin_suppress_tokens: begin }), { device });
      const seq = (await (await generate(model, { inputFeatures: features }, { language: 'en', maxNewTokens: 6 })).tolist() as number[][])[0]!;
      expect(seq[4]).not.toBe(free[4]);
      expect(seq.slice(4)).not.toContain(never[0]);
      expect(seq).toEqual(await referenceGreedy(model, features, [1, 10, 20, 22], 6, never, begin));
    });

    test('without a language, the detected one is the most likely language token after the start token', async () => {
      const ref = await loadRef('whisper', device);
      const features = ref['input_features']!;
      const model = await AutoModelForSpeechSeq2Seq.fromPretrained(await fixtureWithConfig(), { device });
      const seq = (await (await generate(model, { inputFeatures: features }, { maxNewTokens: 3 })).tolist() as number[][])[0]!;
      const logits = await noGrad(() => model.forward({ inputFeatures: features, decoderInputIds: tensor([[1]], { device }) }).logits).data();
      const detected = [10, 11, 12].reduce((a, b) => (logits[b]! > logits[a]! ? b : a));
      expect(seq.slice(0, 4)).toEqual([1, detected, 20, 22]);
    });

    test('beam search (3 beams, KV cache reordered): its score is the sequence\'s own log-probability and beats greedy\'s', async () => {
      const ref = await loadRef('whisper', device);
      const features = ref['input_features']!;
      const model = await AutoModelForSpeechSeq2Seq.fromPretrained(await fixtureWithConfig(), { device });
      const beam = await generateWithScores(model, { inputFeatures: features }, { language: 'en', numBeams: 3, maxNewTokens: 5 });
      const seq = (await beam.sequences.tolist() as number[][])[0]!;
      expect(seq.slice(0, 4)).toEqual([1, 10, 20, 22]);
      // An eos that ended the beam is part of the sequence and of its score.
      const lp = await sequenceLogProb(model, features, seq, 4);
      expect(beam.sequencesScores![0]).toBeCloseTo(lp / (seq.length - 4), 4);
      const greedy = (await (await generate(model, { inputFeatures: features }, { language: 'en', maxNewTokens: 5 })).tolist() as number[][])[0]!;
      const greedyLp = await sequenceLogProb(model, features, greedy, 4);
      expect(beam.sequencesScores![0]!).toBeGreaterThanOrEqual(greedyLp / (greedy.length - 4) - 1e-6);
    });
  });
}

describe('Whisper generation: bad input', () => {
  test('positions, inputs and options are checked before decoding', async () => {
    const ref = await loadRef('whisper');
    const features = ref['input_features']!;
    const model = await AutoModelForSpeechSeq2Seq.fromPretrained(await fixtureWithConfig());
    await expect(generate(model, { inputFeatures: features }, { language: 'en', maxNewTokens: 62 })).rejects.toThrow(/decoder prompt of 4 tokens plus maxNewTokens = 62 needs 65 positions, more than the model's max_target_positions = 64 \(use maxNewTokens <= 61\)/);
    await expect(generate(model, { inputFeatures: features }, { language: 'xx' })).rejects.toThrow(/unsupported language 'xx'; this model knows en, de, fr/);
    await expect(generate(model, { inputFeatures: tensor([[1, 2]]) })).rejects.toThrow(/inputFeatures must be a non-empty float tensor \[batch, mel bins, frames\], got \[1, 2\]/);
    await expect(generate(model, { inputFeatures: features }, { numBeams: 2, onToken: () => {} })).rejects.toThrow(/streaming works with greedy/);
    await expect(generate(model, { inputFeatures: features }, { attentionMask: tensor([[1]]) })).rejects.toThrow(/attentionMask is for token ids/);
    await expect(generate(model, { inputFeatures: features }, { suppressTokens: ['x'] as never })).rejects.toThrow(/suppressTokens must be an array of token ids/);
    await expect(generate(model, { inputFeatures: features }, { language: 5 as never })).rejects.toThrow(/language must be a string/);
    const gpt2 = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    await expect(generate(gpt2, { inputFeatures: features })).rejects.toThrow(/inputFeatures are for encoder-decoder models/);
    const bad = await fixtureWithConfig({ suppress_tokens: [1, 'x'] });
    await expect(AutoModelForSpeechSeq2Seq.fromPretrained(bad)).rejects.toThrow(/generation_config.json: "suppress_tokens" must be an array of token ids/);
  });
});

// pipeline(): HF task names and output shapes on the fixture models, each value checked against direct model calls.

import { copyFile, mkdtemp as makeTemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { generate } from '../generation/generate.js';
import { writePng, type RawImage } from '../io/image.js';
import { writeWav } from '../io/wav.js';
import { AutoModelForCausalLM, AutoModelForCTC, AutoModelForImageClassification, AutoModelForSpeechSeq2Seq, AutoModelForMaskedLM, AutoModelForSequenceClassification } from '../models/auto.js';
import { AutoImageProcessor } from '../processors/image.js';
import { Wav2Vec2FeatureExtractor } from '../processors/wav2vec2.js';
import { WhisperFeatureExtractor } from '../processors/whisper.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { trainByteLevelBpe } from '../tokenizers/train-bpe.js';
import { trainWordPiece } from '../tokenizers/train-wordpiece.js';
import { pipeline, type FillMaskResult, type LabelScore } from './pipeline.js';

const SYL = ['ka', 'to', 'ri', 'mu', 'se', 'la', 'no', 'pi', 'de', 'vo', 'zu', 'ghe'];
const corpus = (): string[] => {
  const texts = ['the cat sat on the mat', 'a dog ran in the park'];
  for (const a of SYL) for (const b of SYL) for (const c of SYL) texts.push(`${a}${b}${c} ${c}${a} ${b}`);
  return texts;
};

const temps: string[] = [];
/** A temporary folder, removed after the tests. */
async function mkdtemp(prefix: string): Promise<string> {
  const dir = await makeTemp(prefix);
  temps.push(dir);
  return dir;
}
afterAll(() => Promise.all(temps.map((d) => rm(d, { recursive: true, force: true }))));

/** The fixture's config and weights with a tokenizer trained here to the fixture's 512 ids. */
async function folder(name: string, tokJson: object, extra: Record<string, object> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `attend-pipeline-${name}-`));
  for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir(name), f), join(dir, f));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokJson));
  for (const [f, v] of Object.entries(extra)) await writeFile(join(dir, f), JSON.stringify(v));
  return dir;
}

const softmax = (x: number[]): number[] => {
  const m = Math.max(...x), e = x.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

let wordPiece: object, bpe: object, bertCls: string, bertMlm: string, gpt2: string;
beforeAll(async () => {
  wordPiece = trainWordPiece(corpus(), { vocabSize: 512, minFrequency: 1 });
  bpe = trainByteLevelBpe(corpus(), { vocabSize: 512, minFrequency: 1, specialTokens: ['<pad>', '<s>', '</s>'] });
  expect(Tokenizer.fromJSON(wordPiece).vocabSize).toBe(512);
  expect(Tokenizer.fromJSON(bpe).vocabSize).toBe(512);
  bertCls = await folder('bert-cls', wordPiece);
  bertMlm = await folder('bert-mlm', wordPiece);
  const chat = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}";
  gpt2 = await folder('gpt2', bpe, { 'tokenizer_config.json': { chat_template: chat, eos_token: '</s>', bos_token: '<s>', pad_token: '<pad>' } });
});

/** Direct call: the model's [1, T, ...] outputs for one text with special tokens. */
async function direct(kind: 'cls' | 'mlm', text: string): Promise<{ logits: number[]; hidden: number[]; shape: readonly number[]; ids: number[] }> {
  const tok = Tokenizer.fromJSON(wordPiece);
  const model = kind === 'cls' ? await AutoModelForSequenceClassification.fromPretrained(hfDir('bert-cls')) : await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm'));
  const ids = tok.encode(text).ids;
  const out = noGrad(() => model.forward({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length] }) }));
  return { logits: Array.from(await out.logits.data()), hidden: Array.from(await out.lastHiddenState!.data()), shape: out.lastHiddenState!.shape, ids };
}

describe('pipeline', () => {
  test('text-classification: softmax over the logits, labels from id2label, HF shapes for one text, a batch and topK', async () => {
    const classify = await pipeline('text-classification', bertCls);
    const ref = softmax((await direct('cls', 'the cat sat')).logits);
    const order = [0, 1, 2].sort((a, b) => ref[b]! - ref[a]!);
    const one = (await classify('the cat sat')) as LabelScore[];
    expect(one).toHaveLength(1);
    expect(one[0]!.label).toBe(`LABEL_${order[0]}`);
    expect(one[0]!.score).toBeCloseTo(ref[order[0]!]!, 5);
    const all = (await classify('the cat sat', { topK: null })) as LabelScore[];
    expect(all.map((r) => r.label)).toEqual(order.map((i) => `LABEL_${i}`));
    expect(all.reduce((s, r) => s + r.score, 0)).toBeCloseTo(1, 6);
    const batch = (await classify(['the cat sat', 'a dog ran'])) as LabelScore[];
    expect(batch).toHaveLength(2);
    expect(batch[0]).toEqual(one[0]);
    expect(Object.keys(batch[1]!).sort()).toEqual(['label', 'score']);
    const batchTop = (await classify(['the cat sat', 'a dog ran'], { topK: 2 })) as LabelScore[][];
    expect(batchTop.map((r) => r.length)).toEqual([2, 2]);
    expect(batchTop[0]).toEqual(all.slice(0, 2));
    const sig = (await classify('the cat sat', { topK: null, functionToApply: 'sigmoid' })) as LabelScore[];
    const logits = (await direct('cls', 'the cat sat')).logits;
    for (const r of sig) expect(r.score).toBeCloseTo(1 / (1 + Math.exp(-logits[Number(r.label.slice(6))]!)), 5);
  });

  test('fill-mask: top 5 tokens at the mask, scores the softmax of its logits, HF field names', async () => {
    const fill = await pipeline('fill-mask', bertMlm);
    const text = 'the cat [MASK] on the mat';
    const d = await direct('mlm', text);
    const V = 512, p = d.ids.indexOf(4);
    expect(p).toBeGreaterThan(0);
    const probs = softmax(d.logits.slice(p * V, (p + 1) * V));
    const best = probs.map((_, i) => i).sort((a, b) => probs[b]! - probs[a]!).slice(0, 5);
    const out = (await fill(text)) as FillMaskResult[];
    expect(out.map((r) => r.token)).toEqual(best);
    const tok = Tokenizer.fromJSON(wordPiece);
    out.forEach((r, i) => {
      expect(Object.keys(r).sort()).toEqual(['score', 'sequence', 'token', 'token_str']);
      expect(r.score).toBeCloseTo(probs[best[i]!]!, 6);
      expect(r.token_str).toBe(tok.decode([r.token]));
      const ids = d.ids.slice();
      ids[p] = r.token;
      expect(r.sequence).toBe(tok.decode(ids, { skipSpecialTokens: true }));
    });
    expect(await fill(text, { topK: 2 })).toHaveLength(2);
    const batch = (await fill([text, 'a [MASK] ran'], { topK: 3 })) as FillMaskResult[][];
    expect(batch.map((r) => r.length)).toEqual([3, 3]);
    expect(batch[0]).toEqual(out.slice(0, 3));
    await expect(fill('no mask here')).rejects.toThrow(/no mask_token \(\[MASK\]\)/);
  });

  test('text-generation: greedy continuation equal to generate(), prompt included; chat messages get the reply appended', async () => {
    const gen = await pipeline('text-generation', gpt2);
    const tok = Tokenizer.fromJSON(bpe);
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const prompt = 'the cat sat';
    const ids = tok.encode(prompt).ids;
    const seq = Array.from(await (await generate(model, tensor(Int32Array.from(ids), { shape: [1, ids.length] }), { maxNewTokens: 6 })).data());
    const reply = tok.decode(seq.slice(ids.length), { skipSpecialTokens: true });
    expect(await gen(prompt, { maxNewTokens: 6 })).toEqual([{ generated_text: prompt + reply }]);
    expect(await gen(prompt, { maxNewTokens: 6, returnFullText: false })).toEqual([{ generated_text: reply }]);
    expect(await gen([prompt, prompt], { maxNewTokens: 6 })).toEqual([[{ generated_text: prompt + reply }], [{ generated_text: prompt + reply }]]);

    const messages = [{ role: 'user', content: 'the cat sat' }];
    const chatIds = tok.encode('<s>user: the cat sat</s><s>assistant:', { addSpecialTokens: false }).ids;
    const chatSeq = Array.from(await (await generate(model, tensor(Int32Array.from(chatIds), { shape: [1, chatIds.length] }), { maxNewTokens: 4 })).data());
    const chatReply = tok.decode(chatSeq.slice(chatIds.length), { skipSpecialTokens: true });
    expect(await gen(messages, { maxNewTokens: 4 })).toEqual([{ generated_text: [...messages, { role: 'assistant', content: chatReply }] }]);
  });

  test('feature-extraction: the encoder states, mean / cls pooling and normalize', async () => {
    const extract = await pipeline('feature-extraction', bertMlm);
    const d = await direct('mlm', 'the cat sat');
    const [, T, H] = d.shape as [number, number, number];
    const full = (await extract('the cat sat')) as number[][][];
    expect([full.length, full[0]!.length, full[0]![0]!.length]).toEqual([1, T, H]);
    full[0]!.flat().forEach((v, i) => expect(v).toBeCloseTo(d.hidden[i]!, 5));
    const mean = Array.from({ length: H }, (_, h) => Array.from({ length: T }, (_, t) => d.hidden[t * H + h]!).reduce((a, b) => a + b, 0) / T);
    const pooled = (await extract('the cat sat', { pooling: 'mean' })) as number[][];
    expect([pooled.length, pooled[0]!.length]).toEqual([1, H]);
    pooled[0]!.forEach((v, h) => expect(v).toBeCloseTo(mean[h]!, 5));
    const norm = Math.hypot(...mean);
    const unit = (await extract('the cat sat', { pooling: 'mean', normalize: true })) as number[][];
    unit[0]!.forEach((v, h) => expect(v).toBeCloseTo(mean[h]! / norm, 6));
    const cls = (await extract('the cat sat', { pooling: 'cls' })) as number[][];
    cls[0]!.forEach((v, h) => expect(v).toBeCloseTo(d.hidden[h]!, 5));
    expect(((await extract(['the cat sat', 'a dog'], { pooling: 'cls' })) as number[][][]).map((r) => r.length)).toEqual([1, 1]);
  });

  test('image-classification: top 5 labels (named by id2label) from the softmax of the logits, for a path and pixels', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-pipeline-vit-'));
    await copyFile(join(hfDir('vit'), 'model.safetensors'), join(dir, 'model.safetensors'));
    const config = JSON.parse(await readFile(join(hfDir('vit'), 'config.json'), 'utf8')) as Record<string, unknown>;
    const names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
    config['id2label'] = Object.fromEntries(names.map((l, i) => [String(i), l]));
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ image_processor_type: 'ViTImageProcessor', size: { height: 32, width: 32 }, resample: 2 }));
    const image: RawImage = { width: 40, height: 36, channels: 3, data: Uint8Array.from({ length: 40 * 36 * 3 }, (_, i) => (i * 37 + (i % 7) * 11) % 256) };
    const png = join(dir, 'x.png');
    await writePng(png, image);

    const processor = await AutoImageProcessor.fromPretrained(dir);
    const model = await AutoModelForImageClassification.fromPretrained(dir);
    const logits = Array.from(await noGrad(() => model.forward({ pixelValues: processor.process(image).pixelValues })).logits.data());
    const probs = softmax(logits);
    const best = probs.map((_, i) => i).sort((a, b) => probs[b]! - probs[a]!);

    const classify = await pipeline('image-classification', dir);
    const out = (await classify(image)) as LabelScore[];
    expect(out.map((r) => r.label)).toEqual(best.slice(0, 5).map((i) => names[i]));
    out.forEach((r, i) => expect(r.score).toBeCloseTo(probs[best[i]!]!, 6));
    expect(await classify(png)).toEqual(out);
    const batch = (await classify([png, image], { topK: 2 })) as LabelScore[][];
    expect(batch).toEqual([out.slice(0, 2), out.slice(0, 2)]);
    await expect(classify(42 as unknown as string)).rejects.toThrow(/input 0 must be an image path or a RawImage/);
    await expect(pipeline('image-classification', bertCls)).rejects.toThrow(/needs the imageClassification head: .*model_type 'bert' has no imageClassification head/);
  });

  test('automatic-speech-recognition (Whisper): { text } equal to the decoded generate() output, for samples and a WAV path', async () => {
    const specials = ['<pad>', '<|startoftranscript|>', '<|endoftext|>', '<|en|>', '<|de|>', '<|transcribe|>', '<|translate|>', '<|notimestamps|>'];
    const dir = await folder('whisper', trainByteLevelBpe(corpus(), { vocabSize: 512, minFrequency: 1, specialTokens: specials }), {
      'generation_config.json': { decoder_start_token_id: 1, eos_token_id: 2, pad_token_id: 0, is_multilingual: true, forced_decoder_ids: [[1, null], [2, 5]],
        lang_to_id: { '<|en|>': 3, '<|de|>': 4 }, task_to_id: { transcribe: 5, translate: 6 }, no_timestamps_token_id: 7, suppress_tokens: [0, 1, 3, 4, 5, 6, 7], begin_suppress_tokens: [2] },
      // A 3 s chunk at hop 480: the fixture's 100 frames.
      'preprocessor_config.json': { feature_size: 80, sampling_rate: 16000, hop_length: 480, n_fft: 400, chunk_length: 3, padding_value: 0 },
    });
    const samples = Float32Array.from({ length: 16000 }, (_, i) => 0.3 * Math.sin(i * 0.05) + 0.1 * Math.sin(i * 0.31));
    const wav = join(dir, 'a.wav');
    await writeWav(wav, samples, 16000, { format: 'f32le' });
    const fe = await WhisperFeatureExtractor.fromPretrained(dir);
    const model = await AutoModelForSpeechSeq2Seq.fromPretrained(dir);
    const seq = await generate(model, fe.call(samples, { samplingRate: 16000 }), { language: 'de', maxNewTokens: 6 });
    const ids = Array.from(await seq.data());
    expect(ids.slice(0, 4)).toEqual([1, 4, 5, 7]);
    const text = Tokenizer.fromJSON(await readFile(join(dir, 'tokenizer.json'), 'utf8').then(JSON.parse)).decode(ids, { skipSpecialTokens: true });
    expect(text.length).toBeGreaterThan(0);
    const asr = await pipeline('automatic-speech-recognition', dir);
    expect(await asr(samples, { language: 'de', maxNewTokens: 6 })).toEqual({ text });
    expect(await asr([wav, samples], { language: 'de', maxNewTokens: 6 })).toEqual([{ text }, { text }]);
    await expect(asr(42 as unknown as string)).rejects.toThrow(/input 0 must be a WAV path or a Float32Array/);
  });

  test('automatic-speech-recognition (wav2vec2 CTC): the best token per frame, repeats collapsed and blanks dropped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-pipeline-ctc-'));
    for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('wav2vec2'), f), join(dir, f));
    const letters = 'abcdefghijklmnopqrstuvwxyz\'-.'.split('');
    await writeFile(join(dir, 'vocab.json'), JSON.stringify(Object.fromEntries([['<pad>', 0], ['<unk>', 1], ['|', 2], ...letters.map((c, i) => [c, i + 3])])));
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ feature_size: 1, sampling_rate: 16000, padding_value: 0, do_normalize: true, return_attention_mask: false }));
    const samples = Float32Array.from({ length: 8000 }, (_, i) => Math.sin(i * 0.07) * Math.cos(i * 0.003));
    const fe = await Wav2Vec2FeatureExtractor.fromPretrained(dir);
    const model = await AutoModelForCTC.fromPretrained(dir);
    const frames = Array.from(await noGrad(() => model.forward({ inputValues: fe.call(samples, { samplingRate: 16000 }).inputValues }).logits).argmax(-1).data());
    // By hand: collapse repeats, drop blanks (0), '|' is a space.
    const text = frames.filter((t, i) => i === 0 || t !== frames[i - 1]).filter((t) => t !== 0)
      .map((t) => (t === 2 ? ' ' : t === 1 ? '<unk>' : letters[t - 3]!)).join('').replace(/ +/g, ' ').trim();
    const asr = await pipeline('automatic-speech-recognition', dir);
    expect(text.length).toBeGreaterThan(0);
    expect(await asr(samples)).toEqual({ text });
    await expect(asr(samples, { numBeams: 2 })).rejects.toThrow(/CTC model .* decodes greedily/);
  });

  test('other encoders: DistilBERT text-classification and RoBERTa fill-mask equal their direct calls', async () => {
    const tok = Tokenizer.fromJSON(wordPiece);
    const ids = tok.encode('the cat [MASK]').ids;
    const input = tensor(Int32Array.from(ids), { shape: [1, ids.length] });
    const distil = await AutoModelForSequenceClassification.fromPretrained(hfDir('distilbert-cls'));
    const probs = softmax(Array.from(await noGrad(() => distil.forward({ inputIds: input })).logits.data()));
    const cls = (await (await pipeline('text-classification', await folder('distilbert-cls', wordPiece)))('the cat [MASK]', { topK: null })) as LabelScore[];
    expect(cls).toHaveLength(probs.length);
    cls.forEach((r) => expect(r.score).toBeCloseTo(probs[Number(r.label.replace(/\D+/g, ''))]!, 5));
    const roberta = await AutoModelForMaskedLM.fromPretrained(hfDir('roberta-mlm'));
    const logits = Array.from(await noGrad(() => roberta.forward({ inputIds: input })).logits.data());
    const p = ids.indexOf(4), mask = softmax(logits.slice(p * 512, (p + 1) * 512));
    const best = mask.map((_, i) => i).sort((a, b) => mask[b]! - mask[a]!).slice(0, 5);
    const fill = (await (await pipeline('fill-mask', await folder('roberta-mlm', wordPiece)))('the cat [MASK]')) as FillMaskResult[];
    expect(fill.map((r) => r.token)).toEqual(best);
    fill.forEach((r, i) => expect(r.score).toBeCloseTo(mask[best[i]!]!, 6));
  });

  test('every backend: the pipelines give the CPU\'s answers on each device (options.device)', async () => {
    const cpu = { cls: await (await pipeline('text-classification', bertCls))('the cat sat', { topK: null }) as LabelScore[],
      fill: await (await pipeline('fill-mask', bertMlm))('the [MASK] sat', { topK: 3 }) as FillMaskResult[],
      gen: await (await pipeline('text-generation', gpt2))('the cat', { maxNewTokens: 4 }) };
    expect(listDevices()).toContain('wasm');
    for (const device of listDevices().filter((d) => d !== 'cpu')) {
      const cls = await (await pipeline('text-classification', bertCls, { device }))('the cat sat', { topK: null }) as LabelScore[];
      expect(cls.map((r) => r.label)).toEqual(cpu.cls.map((r) => r.label));
      cls.forEach((r, i) => expect(r.score).toBeCloseTo(cpu.cls[i]!.score, 5));
      const fill = await (await pipeline('fill-mask', bertMlm, { device }))('the [MASK] sat', { topK: 3 }) as FillMaskResult[];
      expect(fill.map((r) => [r.token, r.sequence])).toEqual(cpu.fill.map((r) => [r.token, r.sequence]));
      fill.forEach((r, i) => expect(r.score).toBeCloseTo(cpu.fill[i]!.score, 5));
      expect(await (await pipeline('text-generation', gpt2, { device }))('the cat', { maxNewTokens: 4 })).toEqual(cpu.gen);
    }
  });

  test('bad input: an unknown task lists the supported ones; a model without the head names the head the task needs', async () => {
    await expect(pipeline('summarize-everything' as 'fill-mask', bertMlm)).rejects.toThrow(/unknown task "summarize-everything" \(supported: text-classification, fill-mask, text-generation, feature-extraction, image-classification, automatic-speech-recognition, token-classification, text2text-generation, summarization, translation, zero-shot-image-classification \(aliases: ner, translation_XX_to_YY\)\)/);
    await expect(pipeline('fill-mask', gpt2)).rejects.toThrow(/pipeline\('fill-mask'\) needs the maskedLM head: .*model_type 'gpt2' has no maskedLM head \(available: /);
    await expect(pipeline('text-generation', bertMlm)).rejects.toThrow(/needs the causalLM head/);
    const classify = await pipeline('text-classification', bertCls);
    await expect(classify([42 as unknown as string])).rejects.toThrow(/input 0 must be a string, got number/);
    await expect(classify('x', { topK: 0 })).rejects.toThrow(/topK must be a positive integer/);
  });
});

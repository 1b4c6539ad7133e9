// zero-shot-image-classification on the CLIP fixture: the scores equal a softmax over exp(logit_scale) * cosine of the
// image and text features computed here one label at a time (no padding), sorted as transformers sorts them.

import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { noGrad } from '../autograd/engine.js';
import { writePng, type RawImage } from '../io/image.js';
import { AutoModel } from '../models/auto.js';
import type { CLIPModel } from '../models/clip.js';
import { AutoImageProcessor, CLIPImageProcessor } from '../processors/image.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { trainWordPiece } from '../tokenizers/train-wordpiece.js';
import { pipeline } from './pipeline.js';
import type { ZeroShotScore } from './zero-shot-image.js';

const PROCESSOR = { image_processor_type: 'CLIPImageProcessor', size: { shortest_edge: 32 }, crop_size: { height: 32, width: 32 }, resample: 3 };
const LABELS = ['cat', 'dog on a mat', 'red car'];
const IMAGE: RawImage = { width: 48, height: 40, channels: 3, data: Uint8Array.from({ length: 48 * 40 * 3 }, (_, i) => (i * 29 + (i % 11) * 7) % 256) };

let dir = '';
let tok: Tokenizer;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'attend-pipeline-clip-'));
  await copyFile(join(hfDir('clip'), 'model.safetensors'), join(dir, 'model.safetensors'));
  const corpus = ['this is a photo of a cat', 'a dog on a mat', 'a red car', 'a picture of the sea', 'the cat sat on the mat'];
  const wordPiece = trainWordPiece(corpus, { vocabSize: 200, minFrequency: 1 });
  tok = Tokenizer.fromJSON(wordPiece);
  // Text pooled at the first [SEP] (the fixture's legacy eos id 2 pools at the largest id, often inside the shared
  // "this is a photo of", which would give several labels the same score).
  const config = JSON.parse(await readFile(join(hfDir('clip'), 'config.json'), 'utf8')) as { text_config: Record<string, unknown> };
  config.text_config['eos_token_id'] = tok.sepTokenId;
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(wordPiece));
  await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify(PROCESSOR));
  await writePng(join(dir, 'x.png'), IMAGE);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** softmax_j(exp(s) * cos(image, text_j)), each text encoded alone, from the model's two towers. */
async function reference(texts: string[], image: RawImage): Promise<number[]> {
  const model = (await AutoModel.fromPretrained(dir)) as CLIPModel;
  const unit = (v: number[]): number[] => { const n = Math.hypot(...v); return v.map((x) => x / n); };
  const { pixelValues } = new CLIPImageProcessor(PROCESSOR).process(image);
  const img = unit(Array.from(await noGrad(() => model.getImageFeatures({ pixelValues })).data()));
  const scale = Math.exp(await model.logit_scale.item());
  const logits: number[] = [];
  for (const t of texts) {
    const ids = tok.encode(t).ids;
    const txt = unit(Array.from(await noGrad(() => model.getTextFeatures({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length] }) })).data()));
    logits.push(scale * txt.reduce((a, v, i) => a + v * img[i]!, 0));
  }
  const m = Math.max(...logits), e = logits.map((v) => Math.exp(v - m)), z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

const expectScores = (got: ZeroShotScore[], labels: string[], probs: number[]): void => {
  const order = labels.map((_, i) => i).sort((a, b) => probs[b]! - probs[a]!);
  expect(got.map((r) => r.label)).toEqual(order.map((i) => labels[i]));
  got.forEach((r, k) => {
    expect(Object.keys(r)).toEqual(['score', 'label']);
    expect(r.score).toBeCloseTo(probs[order[k]!]!, 5);
  });
};

describe("pipeline('zero-shot-image-classification') with CLIP", () => {
  test('AutoImageProcessor picks CLIPImageProcessor from preprocessor_config.json: shortest-edge resize, centre crop, CLIP mean and std', async () => {
    const proc = await AutoImageProcessor.fromPretrained(dir);
    expect(proc).toBeInstanceOf(CLIPImageProcessor);
    const want = await new CLIPImageProcessor(PROCESSOR).process(IMAGE).pixelValues.data();
    expect(Array.from(await proc.process(IMAGE).pixelValues.data())).toEqual(Array.from(want));
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({ ...PROCESSOR, image_processor_type: 'CLIPImageProcessorFast' }));
    expect(await AutoImageProcessor.fromPretrained(dir)).toBeInstanceOf(CLIPImageProcessor);
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify(PROCESSOR));
  });

  test('"This is a photo of {}." for each label, softmax over the labels, sorted best first; a path, pixels and a batch', async () => {
    const probs = await reference(LABELS.map((l) => `This is a photo of ${l}.`), IMAGE);
    const classify = await pipeline('zero-shot-image-classification', dir);
    const out = (await classify(IMAGE, LABELS)) as ZeroShotScore[];
    expectScores(out, LABELS, probs);
    expect(new Set(out.map((r) => r.score)).size).toBe(3);
    expect(out.reduce((a, r) => a + r.score, 0)).toBeCloseTo(1, 6);
    expect(await classify(join(dir, 'x.png'), LABELS)).toEqual(out);
    expect(await classify([join(dir, 'x.png'), IMAGE], LABELS)).toEqual([out, out]);
    const custom = await classify(IMAGE, LABELS, { hypothesisTemplate: 'a {}' });
    expectScores(custom as ZeroShotScore[], LABELS, await reference(LABELS.map((l) => `a ${l}`), IMAGE));
  });

  test('every backend gives the CPU\'s scores', async () => {
    const cpu = (await (await pipeline('zero-shot-image-classification', dir))(IMAGE, LABELS)) as ZeroShotScore[];
    for (const device of listDevices().filter((d) => d !== 'cpu')) {
      const got = (await (await pipeline('zero-shot-image-classification', dir, { device }))(IMAGE, LABELS)) as ZeroShotScore[];
      expect(got.map((r) => r.label)).toEqual(cpu.map((r) => r.label));
      got.forEach((r, i) => expect(r.score).toBeCloseTo(cpu[i]!.score, 5));
    }
  });

  test('bad input: no labels, a template without {}, an input that is not an image, a model that is not CLIP', async () => {
    const classify = await pipeline('zero-shot-image-classification', dir);
    await expect(classify(IMAGE, [])).rejects.toThrow(/candidateLabels must be a non-empty array of strings, got \[\]/);
    await expect(classify(IMAGE, ['cat', 3 as unknown as string])).rejects.toThrow(/candidateLabels must be a non-empty array of strings/);
    await expect(classify(IMAGE, LABELS, { hypothesisTemplate: 'a photo' })).rejects.toThrow(/hypothesisTemplate must be a string with '\{\}' where the label goes, got "a photo"/);
    await expect(classify([IMAGE, 'nope' as unknown as RawImage, 4 as unknown as RawImage], LABELS)).rejects.toThrow(/nope/);
    await expect(classify(4 as unknown as RawImage, LABELS)).rejects.toThrow(/input 0 must be an image path or a RawImage/);
    await expect(classify(IMAGE, ['cat', Array(40).fill('cat').join(' ')])).rejects.toThrow(/"This is a photo of cat cat .*\." is 48 tokens, CLIP's text tower takes at most 32 \(max_position_embeddings\)/);
    await expect(pipeline('zero-shot-image-classification', hfDir('vit'))).rejects.toThrow(/pipeline\('zero-shot-image-classification'\) needs the model \(CLIPModel: image and text towers\) head: .*model_type 'vit' has no model head/);
  });
});

// attend pipeline: a task through the CLI prints what pipeline() returns (HF's field names), and bad input is named.

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { writePng } from '../io/image.js';
import { pipeline } from '../pipelines/pipeline.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { trainWordPiece } from '../tokenizers/train-wordpiece.js';
import { runCli } from './cli.js';

describe('attend pipeline', () => {
  let dir = '';
  let png = '';
  beforeAll(async () => {
    // The ViT fixture with label names and its reference run's preprocessor config; the fixture's image as a PNG.
    dir = await mkdtemp(join(tmpdir(), 'attend-pipeline-cli-'));
    await copyFile(join(hfDir('vit'), 'model.safetensors'), join(dir, 'model.safetensors'));
    const config = JSON.parse(await readFile(join(hfDir('vit'), 'config.json'), 'utf8')) as Record<string, unknown>;
    config['id2label'] = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [String(i), `class ${i}`]));
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({
      image_processor_type: 'ViTImageProcessor', do_resize: true, size: { height: 32, width: 32 }, resample: 2,
      do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5],
    }));
    const img = (await loadRef('vit', 'cpu'))['proc.image_uint8_hwc']!;
    const [height, width, channels] = img.shape as [number, number, number];
    png = join(dir, 'image.png');
    await writePng(png, { height, width, channels, data: Uint8Array.from(await img.data()) });
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test('image-classification: the printed JSON is what pipeline() returns, top-k labels with scores', async () => {
    let printed = '';
    expect(await runCli(['pipeline', 'image-classification', '--model', dir, '--top-k', '3', png], (t) => { printed += t; })).toBe(0);
    const got = JSON.parse(printed) as { label: string; score: number }[];
    const want = await (await pipeline('image-classification', dir))(png, { topK: 3 });
    expect(got).toEqual(want);
    expect(got).toHaveLength(3);
    expect(got[0]!.score).toBeGreaterThanOrEqual(got[1]!.score);
    // Two inputs: a list of results, one per input.
    printed = '';
    await runCli(['pipeline', 'image-classification', '--model', dir, png, png], (t) => { printed += t; });
    expect((JSON.parse(printed) as unknown[]).length).toBe(2);
  });

  test('token-classification (ner), summarization and zero-shot-image-classification: their options reach the pipeline', async () => {
    const wordPiece = trainWordPiece(['the cat sat on the mat', 'a dog ran in the park', 'this is a photo of a cat', 'katorimu lives in the parkzu'], { vocabSize: 120, minFrequency: 1 });
    const print = async (args: string[]): Promise<unknown> => {
      let printed = '';
      expect(await runCli(['pipeline', ...args], (t) => { printed += t; })).toBe(0);
      return JSON.parse(printed);
    };
    // NER: the fixture BERT with B-/I- labels.
    const ner = join(dir, 'ner');
    await mkdir(ner);
    const bert = JSON.parse(await readFile(join(hfDir('bert-cls'), 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(ner, 'config.json'), JSON.stringify({ ...bert, id2label: { 0: 'O', 1: 'B-X', 2: 'I-X' }, label2id: { O: 0, 'B-X': 1, 'I-X': 2 } }));
    await copyFile(join(hfDir('bert-cls'), 'model.safetensors'), join(ner, 'model.safetensors'));
    await writeFile(join(ner, 'tokenizer.json'), JSON.stringify(wordPiece));
    const text = 'katorimu lives in the parkzu';
    expect(await print(['ner', '--model', ner, '--aggregation-strategy', 'first', '--ignore-labels', 'O,I-X', text]))
      .toEqual(await (await pipeline('token-classification', ner))(text, { aggregationStrategy: 'first', ignoreLabels: ['O', 'I-X'] }));
    // Summarization: T5 with a word-level tokenizer (id i is "t<i>").
    const t5 = join(dir, 't5');
    await mkdir(t5);
    for (const f of ['config.json', 'model.safetensors', 'generation_config.json']) await copyFile(join(hfDir('t5'), f), join(t5, f));
    const vocab = Object.fromEntries(Array.from({ length: 512 }, (_, i) => [['<pad>', '</s>', '<unk>'][i] ?? `t${i}`, i]));
    await writeFile(join(t5, 'tokenizer.json'), JSON.stringify({ version: '1.0', truncation: null, padding: null, normalizer: null, post_processor: null, decoder: null,
      added_tokens: ['<pad>', '</s>', '<unk>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      pre_tokenizer: { type: 'WhitespaceSplit' }, model: { type: 'WordLevel', vocab, unk_token: '<unk>' } }));
    const words = 't158 t15 t305 t116 t211 t103 t237 t33 t210 t447 t297 t372 t369 t7';
    // transformers' beam search on these ids (test/data/hf/t5/ref.json): 78 ten times; 3 tokens asked here.
    expect(await print(['summarization', '--model', t5, '--num-beams', '3', '--max-new-tokens', '3', words])).toEqual([{ summary_text: 't78 t78 t78' }]);
    // Zero-shot: CLIP with a CLIP image processor.
    const clip = join(dir, 'clip');
    await mkdir(clip);
    for (const f of ['config.json', 'model.safetensors']) await copyFile(join(hfDir('clip'), f), join(clip, f));
    await writeFile(join(clip, 'tokenizer.json'), JSON.stringify(wordPiece));
    await writeFile(join(clip, 'preprocessor_config.json'), JSON.stringify({ image_processor_type: 'CLIPImageProcessor', size: { shortest_edge: 32 }, crop_size: 32 }));
    const got = await print(['zero-shot-image-classification', '--model', clip, '--candidate-labels', 'cat, dog,car', '--hypothesis-template', 'a {}', png]) as { label: string; score: number }[];
    expect(got).toEqual(await (await pipeline('zero-shot-image-classification', clip))(png, ['cat', 'dog', 'car'], { hypothesisTemplate: 'a {}' }));
    expect(got.map((r) => r.label).sort()).toEqual(['car', 'cat', 'dog']);
    await expect(runCli(['pipeline', 'zero-shot-image-classification', '--model', clip, png], () => {})).rejects.toThrow(/--candidate-labels A,B,... is required/);
  });

  test('--help lists every task and the options of each', async () => {
    let printed = '';
    await runCli(['pipeline', '--help'], (t) => { printed += t; });
    for (const task of ['text-classification', 'token-classification', 'fill-mask', 'text-generation', 'text2text-generation', 'summarization', 'translation', 'feature-extraction',
      'image-classification', 'zero-shot-image-classification', 'automatic-speech-recognition', 'ner', 'translation_XX_to_YY', '--aggregation-strategy', '--candidate-labels', '--num-beams']) {
      expect(printed).toContain(task);
    }
  });

  test('an unknown task lists the supported ones; a missing model or input is named; a task the model cannot do names the head', async () => {
    const run = (args: string[]) => runCli(['pipeline', ...args], () => {});
    await expect(run(['summarize-everything', '--model', dir, 'x'])).rejects.toThrow(/unknown task 'summarize-everything' \(supported: text-classification, fill-mask/);
    await expect(run(['fill-mask', 'x'])).rejects.toThrow(/--model DIR is required/);
    await expect(run(['fill-mask', '--model', dir])).rejects.toThrow(/expected at least one input/);
    await expect(run(['image-classification', '--model', dir, '--top-k', '0', png])).rejects.toThrow(/top-k/);
    await expect(run(['fill-mask', '--model', dir, 'a [MASK]'])).rejects.toThrow(/needs the maskedLM head/);
    await expect(run(['ner', '--model', dir, '--aggregation-strategy', 'longest', 'x'])).rejects.toThrow(/--aggregation-strategy must be one of none, simple, first, average, max, got 'longest'/);
    await expect(run(['summarization', '--model', dir, '--num-beams', '0', 'x'])).rejects.toThrow(/--num-beams must be a positive integer, got '0'/);
    await expect(run(['summarization', '--model', dir, 'x'])).rejects.toThrow(/needs the seq2seqLM .* head/);
    await expect(run(['translation_en_to', '--model', dir, 'x'])).rejects.toThrow(/unknown task 'translation_en_to' \(supported: .*zero-shot-image-classification \(aliases: ner, translation_XX_to_YY\)\)/);
  });
});

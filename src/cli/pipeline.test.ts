// attend pipeline: a task through the CLI prints what pipeline() returns (HF's field names), and bad input is named.

import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { writePng } from '../io/image.js';
import { pipeline } from '../pipelines/pipeline.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
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

  test('an unknown task lists the supported ones; a missing model or input is named; a task the model cannot do names the head', async () => {
    const run = (args: string[]) => runCli(['pipeline', ...args], () => {});
    await expect(run(['summarize-everything', '--model', dir, 'x'])).rejects.toThrow(/unknown task 'summarize-everything' \(supported: text-classification, fill-mask/);
    await expect(run(['fill-mask', 'x'])).rejects.toThrow(/--model DIR is required/);
    await expect(run(['fill-mask', '--model', dir])).rejects.toThrow(/expected at least one input/);
    await expect(run(['image-classification', '--model', dir, '--top-k', '0', png])).rejects.toThrow(/top-k/);
    await expect(run(['fill-mask', '--model', dir, 'a [MASK]'])).rejects.toThrow(/needs the maskedLM head/);
  });
});

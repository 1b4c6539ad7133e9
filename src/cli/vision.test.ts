// attend classify-image: a PNG written here, classified through the CLI with the ViT fixture, and the bad files.

import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, test } from 'vitest';
import { noGrad } from '../autograd/engine.js';
import { softmax } from '../autograd/ops/nn.js';
import { encodePng, writePng, type RawImage } from '../io/image.js';
import { AutoModelForImageClassification } from '../models/auto.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { runCli } from './cli.js';

const LABELS = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/** The ViT fixture (32x32, patch 8, 10 labels) with real label names and the preprocessor config of its reference run. */
async function vitFolder(preprocessor: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'attend-vision-'));
  await copyFile(join(hfDir('vit'), 'model.safetensors'), join(dir, 'model.safetensors'));
  const config = JSON.parse(await readFile(join(hfDir('vit'), 'config.json'), 'utf8')) as Record<string, unknown>;
  config['id2label'] = Object.fromEntries(LABELS.map((l, i) => [String(i), l]));
  config['label2id'] = Object.fromEntries(LABELS.map((l, i) => [l, i]));
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeFile(join(dir, 'preprocessor_config.json'), JSON.stringify({
    image_processor_type: 'ViTImageProcessor', do_resize: true, size: { height: 32, width: 32 }, resample: 2,
    do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], ...preprocessor,
  }));
  return dir;
}

async function cli(args: string[]): Promise<string> {
  let s = '';
  await runCli(args, (t) => { s += t; });
  return s;
}

/** Blocks of `file\n  score  label\n...` back to data. */
function parse(printed: string): { file: string; top: { score: number; label: string }[] }[] {
  const blocks: { file: string; top: { score: number; label: string }[] }[] = [];
  for (const line of printed.trimEnd().split('\n')) {
    const m = /^ {2}(\d\.\d{4}) {2}(.+)$/.exec(line);
    if (m) blocks.at(-1)!.top.push({ score: Number(m[1]), label: m[2]! });
    else blocks.push({ file: line, top: [] });
  }
  return blocks;
}

let dir: string, work: string, fixtureImage: RawImage, expected: number[];

beforeAll(async () => {
  dir = await vitFolder();
  work = await mkdtemp(join(tmpdir(), 'attend-vision-img-'));
  const ref = await loadRef('vit', 'cpu');
  const img = ref['proc.image_uint8_hwc']!;
  fixtureImage = { data: Uint8Array.from(await img.data()), height: img.shape[0]!, width: img.shape[1]!, channels: img.shape[2]! };
  // The model on transformers' own preprocessing of the same image: independent of our decoder and processor.
  const model = await AutoModelForImageClassification.fromPretrained(dir);
  expected = Array.from(await noGrad(() => softmax(model.forward({ pixelValues: ref['proc.pixel_values']! }).logits, -1)).data());
});

describe('attend classify-image', () => {
  test('a PNG written by the test, classified through the CLI: the labels and scores the model gives on HF\'s preprocessing', async () => {
    const png = join(work, 'photo.png');
    await writePng(png, fixtureImage);
    const printed = await cli(['classify-image', '--model', dir, '--top-k', '3', png]);
    const [block, ...rest] = parse(printed);
    expect(rest).toEqual([]);
    expect(block!.file).toBe(png);
    const order = [...expected.keys()].sort((a, b) => expected[b]! - expected[a]!);
    expect(block!.top.map((t) => t.label)).toEqual(order.slice(0, 3).map((i) => LABELS[i]));
    block!.top.forEach((t, j) => expect(Math.abs(t.score - expected[order[j]!]!)).toBeLessThanOrEqual(6e-5));
    // Ten random-weight labels: the best one is above uniform, and the printed scores fall.
    expect(block!.top[0]!.score).toBeGreaterThan(0.1);
    expect(block!.top.map((t) => t.score)).toEqual([...block!.top.map((t) => t.score)].sort((a, b) => b - a));
  });

  test('several images give one block each, in order; all labels sum to 1', async () => {
    const a = join(work, 'a.png'), b = join(work, 'b.jpg');
    await writePng(a, fixtureImage);
    const other: RawImage = { width: 64, height: 48, channels: 3, data: Uint8Array.from({ length: 64 * 48 * 3 }, (_, i) => (i * 7 + (i >> 6)) % 256) };
    await writeFile(b, await sharp(other.data, { raw: { width: 64, height: 48, channels: 3 } }).jpeg().toBuffer());
    const blocks = parse(await cli(['classify-image', '--model', dir, '--top-k=10', a, b]));
    expect(blocks.map((x) => x.file)).toEqual([a, b]);
    for (const x of blocks) {
      expect(x.top.length).toBe(10);
      expect(new Set(x.top.map((t) => t.label)).size).toBe(10);
      expect(Math.abs(x.top.reduce((s, t) => s + t.score, 0) - 1)).toBeLessThan(1e-3);
    }
    expect(blocks[0]!.top.map((t) => t.score)).not.toEqual(blocks[1]!.top.map((t) => t.score));
  });

  test('--help, and the command is listed', async () => {
    expect(await cli(['classify-image', '--help'])).toContain('attend classify-image --model DIR [--top-k N] image.png');
    expect(await cli(['--help'])).toMatch(/classify-image +classify image files/);
  });
});

describe('attend classify-image: bad input names the file', () => {
  test('a corrupt PNG, a truncated JPEG, a text file named .png, an empty file', async () => {
    const png = Buffer.from(await encodePng(fixtureImage));
    png[png.length - 40]! ^= 0x5a;
    await writeFile(join(work, 'corrupt.png'), png);
    const jpg = await sharp(fixtureImage.data, { raw: { width: 52, height: 40, channels: 3 } }).jpeg().toBuffer();
    await writeFile(join(work, 'cut.jpg'), jpg.subarray(0, Math.floor(jpg.length / 2)));
    await writeFile(join(work, 'notes.png'), 'not an image at all\n');
    await writeFile(join(work, 'empty.png'), '');
    const run = (f: string) => cli(['classify-image', '--model', dir, join(work, f)]);
    await expect(run('corrupt.png')).rejects.toThrow(/corrupt\.png: corrupt or truncated image/);
    await expect(run('cut.jpg')).rejects.toThrow(/cut\.jpg: corrupt or truncated image \(VipsJpeg: premature end/);
    await expect(run('notes.png')).rejects.toThrow(/notes\.png: not an image in a format sharp reads/);
    await expect(run('empty.png')).rejects.toThrow(/empty\.png: the file is empty/);
    await expect(run('missing.png')).rejects.toThrow(/missing\.png: cannot read \(ENOENT\)/);
  });

  test('wrong channel count: a gray or RGBA PNG for an RGB model; accepted with do_convert_rgb', async () => {
    const gray: RawImage = { width: 20, height: 20, channels: 1, data: Uint8Array.from({ length: 400 }, (_, i) => i % 256) };
    const rgba: RawImage = { width: 20, height: 20, channels: 4, data: Uint8Array.from({ length: 1600 }, (_, i) => (i * 3) % 256) };
    await writePng(join(work, 'gray.png'), gray);
    await writePng(join(work, 'rgba.png'), rgba);
    await expect(cli(['classify-image', '--model', dir, join(work, 'a.png'), join(work, 'gray.png')])).rejects.toThrow(/gray\.png: the image has 1 channel \(gray\), the model takes 3 \(RGB\)/);
    await expect(cli(['classify-image', '--model', dir, join(work, 'rgba.png')])).rejects.toThrow(/rgba\.png: the image has 4 channels \(RGBA\), the model takes 3/);
    const convert = await vitFolder({ do_convert_rgb: true });
    const blocks = parse(await cli(['classify-image', '--model', convert, join(work, 'gray.png'), join(work, 'rgba.png')]));
    expect(blocks.map((b) => b.top.length)).toEqual([5, 5]);
  });

  test('options and folders: no image, no model, --top-k 0, a size the model does not take, a bad preprocessor config', async () => {
    const png = join(work, 'photo.png');
    await writePng(png, fixtureImage);
    await expect(cli(['classify-image', '--model', dir])).rejects.toThrow(/give at least one image file/);
    await expect(cli(['classify-image', png])).rejects.toThrow(/--model DIR is required/);
    await expect(cli(['classify-image', '--model', dir, '--top-k', '0', png])).rejects.toThrow(/--top-k must be a positive integer, got '0'/);
    await expect(cli(['classify-image', '--model', await vitFolder({ size: { height: 48, width: 48 } }), png])).rejects.toThrow(/preprocessor_config\.json: "size" 48x48 differs from the model's "image_size" 32/);
    await expect(cli(['classify-image', '--model', await vitFolder({ image_std: [0.5, 0.5] }), png])).rejects.toThrow(/preprocessor_config\.json: "image_std" has 2 values, the model takes 3 channels/);
    await expect(cli(['classify-image', '--model', hfDir('vit'), png])).rejects.toThrow(/preprocessor_config\.json: not found/);
  });
});

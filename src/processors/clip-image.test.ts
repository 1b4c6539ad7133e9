// CLIPImageProcessor against transformers 4's Pillow/numpy path (test/data/image/clip_processor.json, made with
// Pillow 9.4 by scripts/gen_clip_processor.py), its geometry by hand for both backends, and its config errors.

import { readFile } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import type { RawImage } from '../io/image.js';
import { expectClose } from '../test-util/fixtures.js';
import { CLIPImageProcessor, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, type CLIPImageProcessorConfig } from './image.js';

interface Case { width: number; height: number; config: CLIPImageProcessorConfig; input: number[]; shape: number[]; pixel_values: number[] }

const fixture = new URL('../../test/data/image/clip_processor.json', import.meta.url);

/** An RGB image whose red channel is its pixel index (row-major), green 100 + that, blue 0. */
function indexImage(width: number, height: number): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let p = 0; p < width * height; p++) data.set([p, 100 + p, 0], 3 * p);
  return { data, width, height, channels: 3 };
}

describe('CLIPImageProcessor', () => {
  test('equals transformers 4 (Pillow resize, numpy crop, float32 normalize) on shrink, enlarge, bilinear and padding cases', async () => {
    const { cases } = JSON.parse(await readFile(fixture, 'utf8')) as { cases: Case[] };
    expect(cases.length).toBe(4);
    for (const c of cases) {
      const proc = new CLIPImageProcessor(c.config, { backend: 'pil' });
      const { pixelValues } = proc.process({ data: Uint8Array.from(c.input), width: c.width, height: c.height, channels: 3 });
      expect(pixelValues.shape).toEqual([1, ...c.shape]);
      expectClose(await pixelValues.data(), c.pixel_values, 0, 0, `${c.width}x${c.height} ${JSON.stringify(c.config)}`);
    }
  });
  test('shortest-edge sizes: the other edge is int(size * long / short); {height, width} is exact', () => {
    const proc = new CLIPImageProcessor();
    expect(proc.outputSize(480, 640)).toEqual([224, 298]); // 224 * 640 / 480 = 298.67
    expect(proc.outputSize(640, 480)).toEqual([298, 224]);
    expect(proc.outputSize(100, 100)).toEqual([224, 224]);
    expect(new CLIPImageProcessor({ size: 7 }).outputSize(3, 10)).toEqual([7, 23]); // legacy integer: the shortest edge
    expect(new CLIPImageProcessor({ size: { height: 5, width: 9 } }).outputSize(3, 10)).toEqual([5, 9]);
  });
  test('centre crop: (n - crop) // 2 inside the image; padding goes first for \'pil\' (ceil), last for \'torchvision\' (floor)', async () => {
    const raw = { do_resize: false, do_rescale: false, do_normalize: false };
    // The green plane: 100 + the source pixel's index, 0 for padding.
    const green = async (proc: CLIPImageProcessor, img: RawImage) => {
      const v = await proc.process(img).pixelValues.data();
      return Array.from(v.subarray(v.length / 3, (2 * v.length) / 3));
    };
    // 6 wide, 1 high, cropped to 3: offset (6 - 3) // 2 = 1 for both.
    for (const backend of ['pil', 'torchvision'] as const) {
      expect(await green(new CLIPImageProcessor({ ...raw, crop_size: { height: 1, width: 3 } }, { backend }), indexImage(6, 1))).toEqual([101, 102, 103]);
    }
    // 2 wide cropped to 5: 3 zeros of padding, 2 before and 1 after (numpy) or 1 before and 2 after (torchvision).
    const wide = { ...raw, crop_size: { height: 1, width: 5 } };
    expect(await green(new CLIPImageProcessor(wide, { backend: 'pil' }), indexImage(2, 1))).toEqual([0, 0, 100, 101, 0]);
    expect(await green(new CLIPImageProcessor(wide, { backend: 'torchvision' }), indexImage(2, 1))).toEqual([0, 100, 101, 0, 0]);
  });
  test('defaults are transformers\': OpenAI\'s mean and std, bicubic, 224, RGB conversion of gray images', async () => {
    const proc = new CLIPImageProcessor({ size: { shortest_edge: 2 }, crop_size: 2 });
    expect(proc).toMatchObject({ resample: 'bicubic', doCenterCrop: true, backend: 'torchvision' });
    expect(new CLIPImageProcessor().cropSize).toEqual({ height: 224, width: 224 });
    expect(proc.normalizer.imageMean).toEqual(OPENAI_CLIP_MEAN);
    expect(proc.normalizer.imageStd).toEqual(OPENAI_CLIP_STD);
    const gray = { data: Uint8Array.from([255, 255, 255, 255]), width: 2, height: 2, channels: 1 };
    const v = await proc.process(gray).pixelValues.data();
    expectClose(v, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2].map((i) => (1 - OPENAI_CLIP_MEAN[i]!) / OPENAI_CLIP_STD[i]!), 1e-6, 0, 'white');
  });
  test('bad configs and images name the key or the image', () => {
    const src = { source: 'm/preprocessor_config.json' };
    expect(() => new CLIPImageProcessor({ size: { longest_edge: 5 } as unknown as { shortest_edge: number } }, src)).toThrow(/m\/preprocessor_config.json: "size" must be \{"shortest_edge": N\}/);
    expect(() => new CLIPImageProcessor({ size: { shortest_edge: 0 } }, src)).toThrow(/"size.shortest_edge" must be a positive integer, got 0/);
    expect(() => new CLIPImageProcessor({ crop_size: 'big' as unknown as number }, src)).toThrow(/"crop_size" must be \{"height": H, "width": W\} or a positive integer, got "big"/);
    expect(() => new CLIPImageProcessor({ do_center_crop: 1 as unknown as boolean }, src)).toThrow(/"do_center_crop" must be true or false, got 1/);
    expect(() => new CLIPImageProcessor({ image_std: [0.2, 0, 0.3] }, src)).toThrow(/"image_std" must not contain 0/);
    expect(() => new CLIPImageProcessor({ resample: 1 }, src)).toThrow(/"resample" 1 \(lanczos\) is a Pillow filter that torchvision does not have/);
    const proc = new CLIPImageProcessor({ do_convert_rgb: false });
    expect(() => proc.process({ data: new Uint8Array(4), width: 2, height: 2, channels: 1 }, { names: ['cat.png'] })).toThrow(/cat.png: the image has 1 channel \(gray\), the model takes 3/);
    expect(() => proc.process([])).toThrow(/CLIPImageProcessor: no images to process/);
  });
});

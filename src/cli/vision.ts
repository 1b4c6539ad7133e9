// CLI command over Hugging Face image models: classify-image (top-k labels with softmax scores for each image file).

import { noGrad } from '../autograd/engine.js';
import { softmax } from '../autograd/ops/nn.js';
import { readConfig } from '../io/hf.js';
import { readImage } from '../io/image.js';
import { AutoModelForImageClassification } from '../models/auto.js';
import { AutoImageProcessor, CLIPImageProcessor, stackImages, type PreprocessedImage } from '../processors/image.js';
import { intOption, parseOptions, stringOption } from './args.js';
import type { CliCommand, Out } from './hf.js';

const stdout: Out = (t) => { process.stdout.write(t); };

/** Images per forward pass: bounds memory when many files are given (224x224 RGB float32 is 0.6 MB each). */
const BATCH = 16;

/** One image's best labels, best first. */
export interface ImageClassification {
  file: string;
  top: { label: string; score: number }[];
}

export const classifyImageCommand: CliCommand = {
  summary: 'classify image files (PNG, JPEG, ...) with an image-classification model (ViT): top-k labels',
  usage: `attend classify-image --model DIR [--top-k N] image.png [more images]

DIR is a Hugging Face folder: config.json (with id2label), model.safetensors and preprocessor_config.json
(ViTImageProcessor: size, resample, rescale, mean/std). Prints, for every image, the N most likely labels
with their softmax probabilities, best first.
  --top-k N   labels per image (default 5; at most the number of labels)`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseOptions(args, { model: 'string', 'top-k': 'string', help: 'boolean' }, 'classify-image');
    if (values['help']) return out(`${this.usage}\n`);
    const k = intOption(values, 'top-k', 1) ?? 5;
    const dir = stringOption(values, 'model');
    if (!dir) throw new Error(`--model DIR is required\n\n${this.usage}`);
    if (positionals.length === 0) throw new Error(`give at least one image file\n\n${this.usage}`);
    for (const r of await classifyImages(dir, positionals, k)) {
      out(`${r.file}\n`);
      for (const { label, score } of r.top) out(`  ${score.toFixed(4)}  ${label}\n`);
    }
  },
};

/**
 * Classifies image files with the model in `dir`: the processor and every image are read and checked before the model
 * loads, so a bad file or config fails at once, naming the file.
 */
export async function classifyImages(dir: string, files: readonly string[], topK = 5): Promise<ImageClassification[]> {
  const { path: configPath, json } = await readConfig(dir);
  const processor = await AutoImageProcessor.fromPretrained(dir);
  const imageSize = json['image_size'];
  // CLIP's output is its centre crop; ViT's is its resize.
  const { height, width } = processor instanceof CLIPImageProcessor ? processor.cropSize : processor.size;
  if (processor.doResize && typeof imageSize === 'number' && (imageSize !== height || imageSize !== width)) {
    throw new Error(`${dir.replace(/\/$/, '')}/preprocessor_config.json: "size" ${height}x${width} differs from the model's "image_size" ${imageSize} in ${configPath}`);
  }
  const items: PreprocessedImage[] = [];
  for (const f of files) items.push(processor.preprocess(await readImage(f), f));
  const model = await AutoModelForImageClassification.fromPretrained(dir);
  const id2label = (json['id2label'] ?? {}) as Record<string, unknown>;
  const results: ImageClassification[] = [];
  for (let start = 0; start < items.length; start += BATCH) {
    const names = files.slice(start, start + BATCH);
    const { pixelValues } = stackImages(items.slice(start, start + BATCH), { names });
    const probs = noGrad(() => softmax(model.forward({ pixelValues }).logits, -1));
    const data = await probs.data();
    const L = probs.shape[1]!;
    names.forEach((file, b) => {
      const row = data.subarray(b * L, (b + 1) * L);
      const order = [...row.keys()].sort((i, j) => row[j]! - row[i]!).slice(0, topK);
      results.push({ file, top: order.map((i) => ({ label: typeof id2label[String(i)] === 'string' ? (id2label[String(i)] as string) : `LABEL_${i}`, score: row[i]! })) });
    });
  }
  return results;
}

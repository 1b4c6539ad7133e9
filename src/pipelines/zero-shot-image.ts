// zero-shot-image-classification: CLIP scores an image against "This is a photo of {label}." for each candidate label.

import { noGrad } from '../autograd/engine.js';
import type { PreTrainedModel } from '../models/base.js';
import { CLIPModel } from '../models/clip.js';
import type { ImageProcessor } from '../processors/image.js';
import { tensor } from '../tensor/create.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { imageFrom, oneOrMany, softmax, type ImageInput } from './common.js';

const TASK = 'zero-shot-image-classification';

export interface ZeroShotImageClassificationOptions {
  /** HF's hypothesis_template: '{}' is replaced by each label. Default 'This is a photo of {}.' */
  hypothesisTemplate?: string;
}
/** HF's keys in HF's order: score, then label. */
export interface ZeroShotScore { score: number; label: string }
/** As transformers.js: `classifier(image, ['cat', 'dog'])`; per image the labels by descending softmax probability. */
export type ZeroShotImageClassificationPipeline = (input: ImageInput | ImageInput[], candidateLabels: string[], opts?: ZeroShotImageClassificationOptions) => Promise<ZeroShotScore[] | ZeroShotScore[][]>;

function checkLabels(labels: unknown, template: unknown): asserts labels is string[] {
  if (!Array.isArray(labels) || labels.length === 0 || labels.some((l) => typeof l !== 'string')) {
    throw new Error(`pipeline('${TASK}'): candidateLabels must be a non-empty array of strings, got ${JSON.stringify(labels)}`);
  }
  if (typeof template !== 'string' || !template.includes('{}')) {
    throw new Error(`pipeline('${TASK}'): hypothesisTemplate must be a string with '{}' where the label goes, got ${JSON.stringify(template)}`);
  }
}

/**
 * The pipeline over a CLIP model: the hypotheses are tokenized together (padded to the longest, with the attention
 * mask), each image is preprocessed, and softmax(logits_per_image) over the labels is sorted, best first.
 */
export function zeroShotImageClassification(model: PreTrainedModel, tok: Tokenizer, processor: ImageProcessor): ZeroShotImageClassificationPipeline {
  if (!(model instanceof CLIPModel)) throw new Error(`pipeline('${TASK}') needs a CLIPModel (image and text towers), got ${model.constructor.name}`);
  const clip: CLIPModel = model;
  const device = clip.parameters()[0]?.device;
  return async (input, candidateLabels, opts = {}) => {
    const template = opts.hypothesisTemplate ?? 'This is a photo of {}.';
    checkLabels(candidateLabels, template);
    const hypotheses = candidateLabels.map((l) => template.replace('{}', l));
    const enc = tok.encodeBatch(hypotheses, { padding: true, returnTensors: false });
    const maxLen = clip.config.text_config.max_position_embeddings;
    enc.attentionMask.forEach((m, j) => {
      const n = m.reduce((a, b) => a + b, 0);
      if (n > maxLen) throw new Error(`pipeline('${TASK}'): ${JSON.stringify(hypotheses[j])} is ${n} tokens, CLIP's text tower takes at most ${maxLen} (max_position_embeddings)`);
    });
    const shape = [candidateLabels.length, enc.inputIds[0]!.length];
    const inputIds = tensor(Int32Array.from(enc.inputIds.flat()), { shape, device });
    const attentionMask = tensor(Int32Array.from(enc.attentionMask.flat()), { shape, device });
    const images = Array.isArray(input) ? input : [input];
    const results: ZeroShotScore[][] = [];
    for (const [i, image] of images.entries()) {
      const { raw, name } = await imageFrom(image, i, TASK);
      const { pixelValues } = processor.process(raw, { names: [name], device });
      const logits = noGrad(() => clip.forward({ inputIds, attentionMask, pixelValues }).logitsPerImage); // [1, labels]
      const probs = softmax(await logits.data());
      pixelValues.dispose();
      logits.dispose();
      // Stable sort: equal scores keep the candidates' order, as Python's sorted.
      results.push(candidateLabels.map((label, j) => ({ score: probs[j]!, label })).sort((a, b) => b.score - a.score));
    }
    inputIds.dispose();
    attentionMask.dispose();
    return oneOrMany(input, results);
  };
}

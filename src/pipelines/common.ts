// Helpers shared by the pipeline tasks: loading a head with a clear error, input checks, softmax, labels, one forward pass.

import { noGrad } from '../autograd/engine.js';
import { readImage, type RawImage } from '../io/image.js';
import type { PreTrainedModel } from '../models/base.js';
import { tensor } from '../tensor/create.js';
import { hf, type HfTokenizer } from '../tokenizers/hf-lib.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

/** Loads a model folder's head for a task, saying which head the task needs when the model has none. */
export async function loadHead(task: string, head: string, load: () => Promise<PreTrainedModel>): Promise<PreTrainedModel> {
  try {
    return await load();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg.includes(' head (available:')) throw new Error(`pipeline('${task}') needs the ${head} head: ${msg}`);
    throw e;
  }
}

/** The input as a list of strings, or an error naming the first one that is not a string. */
export function checkTexts(input: unknown, task: string): string[] {
  const list = Array.isArray(input) ? input : [input];
  list.forEach((s, i) => { if (typeof s !== 'string') throw new Error(`pipeline('${task}'): input ${i} must be a string, got ${typeof s}`); });
  return list as string[];
}

/** One text through the model: [1, T] ids (special tokens added) -> the outputs' arrays, without a graph. */
export async function run(model: PreTrainedModel, ids: number[], typeIds: number[]): Promise<{ logits: Float32Array; hidden: Float32Array | null; shape: readonly number[]; hiddenShape: readonly number[] | null }> {
  const device = model.parameters()[0]?.device;
  const inputIds = tensor(Int32Array.from(ids), { shape: [1, ids.length], device });
  const tokenTypeIds = tensor(Int32Array.from(typeIds), { shape: [1, ids.length], device });
  const out = noGrad(() => model.forward({ inputIds, tokenTypeIds }));
  const logits = Float32Array.from(await out.logits.data());
  const hidden = out.lastHiddenState ? Float32Array.from(await out.lastHiddenState.data()) : null;
  const res = { logits, hidden, shape: out.logits.shape, hiddenShape: out.lastHiddenState?.shape ?? null };
  for (const t of [inputIds, tokenTypeIds, out.logits, out.lastHiddenState]) t?.dispose();
  return res;
}

export function softmax(x: ArrayLike<number>): number[] {
  const m = Math.max(...Array.from(x));
  const e = Array.from(x, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topIndices(x: readonly number[], k: number): number[] {
  return x.map((_, i) => i).sort((a, b) => x[b]! - x[a]! || a - b).slice(0, k);
}

/** config.json's id2label name for class i (transformers' LABEL_i when absent). */
export function labelName(config: Record<string, unknown>, i: number): string {
  const names = config['id2label'];
  const name = names !== null && typeof names === 'object' ? (names as Record<string, unknown>)[String(i)] : undefined;
  return typeof name === 'string' ? name : `LABEL_${i}`;
}

type LibWithDecoder = HfTokenizer & { decoder: ((tokens: string[]) => string) | null };
const decoders = new WeakMap<Tokenizer, (tokens: string[]) => string>();

/**
 * transformers' `convert_tokens_to_string` for a fast tokenizer: the tokenizer.json decoder applied to token strings
 * (WordPiece joins '##' pieces, byte-level maps bytes back), or the tokens joined by spaces when it has no decoder.
 * Unlike `decode`, it takes any strings, such as words already joined from tokens.
 */
export function tokensToString(tok: Tokenizer, tokens: string[]): string {
  let fn = decoders.get(tok);
  if (!fn) {
    const json = tok.toJSON() as Record<string, unknown>;
    const lib = new hf.Tokenizer({ normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json, added_tokens: json['added_tokens'] ?? [] }, {}) as LibWithDecoder;
    const decoder = lib.decoder;
    fn = decoder ? (t) => (t.length === 0 ? '' : decoder(t)) : (t) => t.join(' ');
    decoders.set(tok, fn);
  }
  return fn(tokens);
}

/** Per-input results as HF returns them: the one result for a single input, the list for a list. */
export function oneOrMany<T>(input: unknown, results: T[]): T | T[] {
  return Array.isArray(input) ? results : results[0]!;
}

/** An image file path or decoded pixels. */
export type ImageInput = string | RawImage;

/** The decoded image and a name for errors: a path is read, pixels are checked to be a RawImage. */
export async function imageFrom(image: unknown, i: number, task: string): Promise<{ raw: RawImage; name: string }> {
  if (typeof image === 'string') return { raw: await readImage(image), name: image };
  if (image === null || typeof image !== 'object' || !((image as RawImage).data instanceof Uint8Array)) {
    throw new Error(`pipeline('${task}'): input ${i} must be an image path or a RawImage ({ data, width, height, channels })`);
  }
  return { raw: image as RawImage, name: `input ${i}` };
}

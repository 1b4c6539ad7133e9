// Linear and Embedding layers over quantized weights (Q8_0, Q4_0, NF4), and quantize(model) that swaps them in.
//
// This is the reference path in TypeScript: y = x W^T is computed one panel of output rows at a time, each panel
// dequantized into a small float32 tensor and multiplied by the backend's matmul, so a whole dequantized matrix never
// exists. Gradients reach the input (the weights are frozen, as in QLoRA). With QuantLinear.int8Activations, Q8_0 / Q4_0
// on float32 inputs take the backend's integer kernel instead (Backend.quantMatmul: int8 activations, as llama.cpp).

import { add } from '../autograd/ops/elementwise.js';
import { record } from '../autograd/engine.js';
import { linear, matmul } from '../autograd/ops/matmul.js';
import { indexSelect } from '../autograd/ops/indexing.js';
import { cat, narrow, reshape } from '../autograd/ops/movement.js';
import { tensor, zeros } from '../tensor/create.js';
import { keep } from '../tensor/scope.js';
import { getBackend } from '../tensor/backend.js';
import { bytesPerElement } from '../tensor/dtype.js';
import { fmtShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Module, Parameter } from '../nn/module.js';
import { dequantizeValues, quantizedBytes, quantizeValues, QUANT_TYPES, type QuantizedTensor, type QuantType } from './formats.js';

/** Floats per dequantized panel (64 K values, 256 KB): small next to any weight matrix worth quantizing. */
const PANEL_VALUES = 1 << 16;

/** y = x W^T + b with W [out, in] stored quantized; W is dequantized one panel of output rows at a time. */
export class QuantLinear extends Module {
  /**
   * Q8_0 / Q4_0 layers on float32 inputs multiply with the backend's integer kernel (Backend.quantMatmul: x quantized
   * per block of 32 to int8, as llama.cpp does; the weights are read once, never dequantized) instead of the dequantizing
   * panels, which compute exactly linear() on the dequantized weights. The int8 activations add an error of at most
   * max|x_block| / 254 * sum|w_block| per block. Off by default (results then equal the dequantized model's).
   */
  static int8Activations = false;

  readonly inFeatures: number;
  readonly outFeatures: number;
  bias: Parameter | null;

  constructor(readonly weight: QuantizedTensor, bias: Tensor | null = null) {
    super();
    if (weight.shape.length !== 2) throw new Error(`QuantLinear: the weight must be [out_features, in_features], got ${fmtShape(weight.shape)}`);
    [this.outFeatures, this.inFeatures] = weight.shape as [number, number];
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== this.outFeatures)) throw new Error(`QuantLinear: bias must be [${this.outFeatures}], got ${fmtShape(bias.shape)}`);
    this.bias = bias ? new Parameter(bias, false) : null;
  }

  /** Rows of W per panel (ggml types: whole blocks, which rows are since in_features is a multiple of 32). */
  get panelRows(): number {
    return Math.max(1, Math.floor(PANEL_VALUES / this.inFeatures));
  }

  forward(x: Tensor): Tensor {
    this.checkInput(x);
    return this.usesKernel(x) ? QuantLinear.forwardBlocks(x, [this])[0]! : this.forwardPanels(x);
  }

  /**
   * Layers applied to the same x (a layer's q, k and v projections; gate and up): Q8_0 / Q4_0 layers of one type on
   * the integer kernel run as one Backend.quantMatmuls job where the backend has it, x quantized once (outputs equal to
   * each layer's forward); any other mix, one by one.
   */
  static forwardShared(x: Tensor, layers: readonly Module[]): Tensor[] {
    const q = layers.filter((l): l is QuantLinear => l instanceof QuantLinear);
    const shared = q.length === layers.length && q.length > 1
      && q.every((l) => l.usesKernel(x) && l.weight.type === q[0]!.weight.type && l.inFeatures === q[0]!.inFeatures);
    if (!shared) return layers.map((l) => (l as Module & { forward(x: Tensor): Tensor }).forward(x));
    q[0]!.checkInput(x);
    return QuantLinear.forwardBlocks(x, q);
  }

  private checkInput(x: Tensor): void {
    if (x.shape[x.ndim - 1] !== this.inFeatures) throw new Error(`QuantLinear: input ${fmtShape(x.shape)} does not fit weight ${fmtShape(this.weight.shape)} (expected last dimension ${this.inFeatures})`);
  }

  /** Whether forward(x) takes the backend's integer kernel. */
  private usesKernel(x: Tensor): boolean {
    return QuantLinear.int8Activations && this.weight.type !== 'nf4' && x.dtype === 'float32' && x.backend.quantMatmul !== undefined && x.backend.uploadQuant !== undefined;
  }

  /** The quantized blocks on `device` in its kernel's layout (Backend.uploadQuant), uploaded once per device. */
  private blocksOn(device: string): Tensor {
    let t = this.deviceBlocks.get(device);
    if (!t) {
      const be = getBackend(device), p = { type: this.weight.type as 'q8_0' | 'q4_0', n: this.outFeatures, k: this.inFeatures };
      // kept: a tidy() around the first forward must not free the layer's copy.
      t = keep(Tensor.fromBuffer(be, be.uploadQuant!(this.weight.data, p), [this.weight.data.length]));
      this.deviceBlocks.set(device, t);
    }
    return t;
  }
  private readonly deviceBlocks = new Map<string, Tensor>();

  /**
   * The backend's integer kernel for layers of one type sharing x (x quantized per block to int8, as llama.cpp does;
   * see Backend.quantMatmul / quantMatmuls): W is never dequantized. The gradient to x is g W, with W dequantized panel
   * by panel (a straight-through estimate).
   */
  private static forwardBlocks(x: Tensor, layers: readonly QuantLinear[]): Tensor[] {
    const K = layers[0]!.inFeatures, M = x.numel() / K, be = x.backend;
    const type = layers[0]!.weight.type as 'q8_0' | 'q4_0';
    const ops = layers.map((l) => {
      const b = l.bias, fuse = b !== null && b.dtype === 'float32' && b.device === x.device && !b.requiresGrad;
      return { w: l.blocksOn(x.device).buffer, n: l.outFeatures, bias: fuse ? b.buffer : null, fuse };
    });
    const bufs = be.quantMatmuls?.(x.buffer, ops, { type, m: M, k: K }) ?? ops.map((o) => be.quantMatmul!(x.buffer, o.w, { type, m: M, n: o.n, k: K }, o.bias));
    return layers.map((l, i) => {
      const N = l.outFeatures;
      const y = record('quantLinear', Tensor.fromBuffer(be, bufs[i]!, [...x.shape.slice(0, -1), N]), [x], [], (g) => {
        const g2 = reshape(g, [M, N]), rows = l.panelRows; // [M, N]
        let gx: Tensor | null = null;
        for (let r = 0; r < N; r += rows) {
          const n = Math.min(rows, N - r);
          const panel = tensor(dequantizeValues(l.weight, r * K, n * K), { shape: [n, K], dtype: g.dtype, device: g.device }); // [n, K]
          const part = matmul(narrow(g2, 1, r, n), panel); // [M, K]
          gx = gx ? add(gx, part) : part;
        }
        return [reshape(gx!, x.shape)];
      });
      return l.bias && !ops[i]!.fuse ? add(y, l.bias) : y;
    });
  }

  /** The reference path: W dequantized one panel of output rows at a time into the backend's float matmul. */
  private forwardPanels(x: Tensor): Tensor {
    const K = this.inFeatures, rows = this.panelRows;
    const parts: Tensor[] = [];
    for (let r = 0; r < this.outFeatures; r += rows) {
      const n = Math.min(rows, this.outFeatures - r);
      // [n, K] float32 rows r .. r + n of W; the matmul's autograd node keeps its own reference if it needs one.
      const panel = tensor(dequantizeValues(this.weight, r * K, n * K), { shape: [n, K], dtype: x.dtype, device: x.device });
      parts.push(linear(x, panel)); // [..., n]
      panel.dispose();
    }
    const y = parts.length === 1 ? parts[0]! : cat(parts, -1); // [..., out]
    return this.bias ? add(y, this.bias) : y;
  }

  /** Bytes of the quantized weight and the bias. */
  get nbytes(): number {
    return quantizedBytes(this.weight) + (this.bias ? this.bias.numel() * bytesPerElement(this.bias.dtype) : 0);
  }
}

/** An embedding table stored quantized: only the rows that are looked up are dequantized. No gradient to the table. */
export class QuantEmbedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  /** A 0-d buffer that module.to() converts like the rest of the model: the output's dtype follows it. */
  readonly reference: Tensor;

  constructor(readonly weight: QuantizedTensor) {
    super();
    if (weight.shape.length !== 2) throw new Error(`QuantEmbedding: the weight must be [num_embeddings, embedding_dim], got ${fmtShape(weight.shape)}`);
    [this.numEmbeddings, this.embeddingDim] = weight.shape as [number, number];
    this.reference = this.registerBuffer('reference', zeros([]), false);
  }

  /** The whole table dequantized on a device that reads ids only asynchronously (webgpu), per device and dtype. */
  private deviceTable: Tensor | null = null;

  forward(ids: Tensor): Tensor {
    if (!ids.backend.readSync) {
      // A GPU cannot hand the ids to the host within forward(): the table is dequantized once onto the device and
      // looked up there (full-size on the device; the int8 saving stays on the CPU backends).
      const t = this.deviceTable;
      if (!t || t.isDisposed || t.device !== ids.device || t.dtype !== this.reference.dtype) {
        t?.dispose();
        const all = new Float32Array(this.numEmbeddings * this.embeddingDim);
        dequantizeValues(this.weight, 0, all.length, all, 0);
        this.deviceTable = keep(tensor(all, { shape: [this.numEmbeddings, this.embeddingDim], dtype: this.reference.dtype, device: ids.device }));
      }
      return reshape(indexSelect(this.deviceTable!, 0, reshape(ids, [ids.numel()])), [...ids.shape, this.embeddingDim]);
    }
    // The ids are read on the host to pick the rows (CPU-side backends read synchronously).
    const idx = ids.dataSync();
    const D = this.embeddingDim, out = new Float32Array(idx.length * D);
    idx.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.numEmbeddings) throw new Error(`QuantEmbedding: index ${id} is out of range for ${this.numEmbeddings} embeddings`);
      dequantizeValues(this.weight, id * D, D, out, i * D);
    });
    return tensor(out, { shape: [...ids.shape, D], dtype: this.reference.dtype, device: ids.device });
  }

  get nbytes(): number {
    return quantizedBytes(this.weight);
  }
}

const isQuantized = (w: unknown): w is QuantizedTensor =>
  typeof w === 'object' && w !== null && !(w instanceof Tensor) && (w as QuantizedTensor).data instanceof Uint8Array && (QUANT_TYPES as readonly unknown[]).includes((w as QuantizedTensor).type);

/** Bytes a model holds in weights: parameters and buffers (each tensor once) plus quantized weights (each once). */
export function modelBytes(model: Module): number {
  const seen = new Set<unknown>();
  let total = 0;
  for (const m of model.modules()) {
    if (m instanceof QuantEmbedding) seen.add(m.reference); // not a weight
    // Any module holding a quantized weight: QuantLinear, QuantEmbedding, and a LoRA layer over a QuantLinear (QLoRA),
    // whose base is not a child module.
    const w = (m as { weight?: unknown }).weight;
    if (isQuantized(w) && !seen.has(w)) {
      seen.add(w);
      total += quantizedBytes(w);
    }
  }
  for (const t of [...model.parameters(), ...model.namedBuffers().map(([, b]) => b)]) {
    if (seen.has(t)) continue;
    seen.add(t);
    total += t.numel() * bytesPerElement(t.dtype);
  }
  return total;
}

export interface QuantizeOptions {
  /** Quantize Embedding tables too (rows are dequantized on lookup). Default false. */
  embeddings?: boolean;
  /** Layers left in float: a dotted name, or its last part (e.g. 'lm_head', as transformers keeps it for bitsandbytes). */
  skip?: readonly string[];
}

export interface QuantizeReport {
  type: QuantType;
  /** Weight bytes before and after (modelBytes). */
  bytesBefore: number;
  bytesAfter: number;
  /** Dotted names of the layers swapped. */
  quantized: string[];
  /** Layers left as they were, with the reason (a row not a whole number of blocks, a weight tied to a kept embedding). */
  skipped: { name: string; reason: string }[];
}

/** Every (owner, property, child) slot holding a module, arrays included, with the child's dotted name. */
function slots(model: Module): { owner: Record<string, unknown> | Module[]; key: string | number; child: Module; name: string }[] {
  const out: { owner: Record<string, unknown> | Module[]; key: string | number; child: Module; name: string }[] = [];
  for (const [prefix, m] of model.namedModules()) {
    for (const [key, v] of Object.entries(m)) {
      const name = (k: string): string => (prefix ? `${prefix}.${k}` : k);
      if (v instanceof Module) out.push({ owner: m as unknown as Record<string, unknown>, key, child: v, name: name(key) });
      else if (Array.isArray(v)) v.forEach((c: unknown, i) => { if (c instanceof Module) out.push({ owner: v as Module[], key: i, child: c, name: name(`${key}.${i}`) }); });
    }
  }
  return out;
}

/**
 * Swaps every Linear layer (and with `embeddings`, every Embedding) of `model` for its quantized form, in place;
 * returns the bytes before and after. Weights shared between an embedding and a Linear (tied lm_head) are quantized
 * once and shared, or, when embeddings are kept, the Linear is kept too.
 */
export async function quantize(model: Module, type: QuantType, opts: QuantizeOptions = {}): Promise<QuantizeReport> {
  if (!(QUANT_TYPES as readonly string[]).includes(type)) throw new Error(`quantize: unknown type ${JSON.stringify(type)} (known: ${QUANT_TYPES.join(', ')})`);
  const bytesBefore = modelBytes(model);
  const all = slots(model);
  const embeddingWeights = new Set(all.filter((s) => s.child instanceof Embedding).map((s) => (s.child as Embedding).weight));
  const done = new Map<Tensor, QuantizedTensor>();
  const quantized: string[] = [], skipped: { name: string; reason: string }[] = [];
  const q = async (w: Tensor, name: string): Promise<QuantizedTensor> => {
    let out = done.get(w);
    if (!out) {
      const values = Float32Array.from(await w.data());
      out = quantizeValues(values, w.shape, type, name);
      done.set(w, out);
    }
    return out;
  };
  // Embeddings first, so that a Linear tied to one reuses its blocks.
  const ordered = [...all.filter((s) => s.child instanceof Embedding), ...all.filter((s) => s.child instanceof Linear)];
  for (const { owner, key, child, name } of ordered) {
    const isEmbedding = child instanceof Embedding;
    if (isEmbedding && !opts.embeddings) continue;
    if (opts.skip?.some((k) => name === k || name.endsWith(`.${k}`))) {
      skipped.push({ name, reason: 'left in float (skip)' });
      continue;
    }
    const weight = (child as Linear | Embedding).weight;
    const row = weight.shape[1]!;
    if (type !== 'nf4' && row % 32 !== 0) {
      skipped.push({ name, reason: `rows of ${row} values are not whole blocks of 32` });
      continue;
    }
    if (!isEmbedding && embeddingWeights.has(weight) && !opts.embeddings) {
      skipped.push({ name, reason: 'its weight is tied to an embedding that stays unquantized' });
      continue;
    }
    const qw = await q(weight, `${name}.weight`);
    const bias = child instanceof Linear ? child.bias : null;
    const replacement = isEmbedding ? new QuantEmbedding(qw) : new QuantLinear(qw, bias);
    replacement.training = child.training;
    if (Array.isArray(owner)) owner[key as number] = replacement;
    else owner[key as string] = replacement;
    quantized.push(name);
  }
  return { type, bytesBefore, bytesAfter: modelBytes(model), quantized, skipped };
}

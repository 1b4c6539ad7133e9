// Embedding: a lookup table [num_embeddings, embedding_dim], as torch.nn.Embedding (N(0, 1) init, optional padding row).

import { embedding } from '../autograd/ops/indexing.js';
import { tensor } from '../tensor/create.js';
import { defaultGenerator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module, Parameter } from './module.js';

export interface EmbeddingOptions {
  /** This row starts at zero and receives no gradient. */
  paddingIdx?: number;
  device?: string;
}

export class Embedding extends Module {
  weight: Parameter;
  readonly paddingIdx: number | undefined;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, opts: EmbeddingOptions = {}) {
    super();
    const p = opts.paddingIdx;
    this.paddingIdx = p === undefined ? undefined : p < 0 ? p + numEmbeddings : p;
    if (this.paddingIdx !== undefined && (this.paddingIdx < 0 || this.paddingIdx >= numEmbeddings)) {
      throw new Error(`Embedding: paddingIdx ${p} is out of range for ${numEmbeddings} embeddings`);
    }
    const w = new Float32Array(defaultGenerator.normal(numEmbeddings * embeddingDim));
    if (this.paddingIdx !== undefined) w.fill(0, this.paddingIdx * embeddingDim, (this.paddingIdx + 1) * embeddingDim);
    this.weight = new Parameter(tensor(w, { shape: [numEmbeddings, embeddingDim], device: opts.device }));
  }

  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight, this.paddingIdx);
  }
}

// The package root: registers the backends and exports the public API.

import './autograd/methods.js';
import { CpuBackend } from './backend/cpu/index.js';
import { registerBackend } from './tensor/backend.js';

registerBackend(new CpuBackend());

export { Tensor, Storage, isTensor, type NestedArray } from './tensor/tensor.js';
export type { DType, TypedArray } from './tensor/dtype.js';
export type { Shape } from './tensor/shape.js';
export { getBackend, listDevices, registerBackend, setDefaultDevice, getDefaultDevice, type Backend, type BackendBuffer } from './tensor/backend.js';
export { tensor, zeros, ones, full, zerosLike, onesLike, fullLike, arange, linspace, eye, randn, rand, randint, randperm, type TensorOptions, type RandomOptions } from './tensor/create.js';
export { Generator, manualSeed, defaultGenerator, type GeneratorState } from './tensor/random.js';
export { tidy, keep } from './tensor/scope.js';
export { noGrad, setGradEnabled, isGradEnabled, type BackwardOptions } from './autograd/engine.js';
export * from './autograd/ops/elementwise.js';
export * from './autograd/ops/movement.js';
export * from './autograd/ops/reduce.js';
export * from './autograd/ops/matmul.js';
export * from './autograd/ops/indexing.js';
export * from './autograd/ops/nn.js';
export * from './autograd/ops/window.js';
export type { TensorLike } from './autograd/ops/base.js';
export * as F from './nn/functional.js';
export { crossEntropy, nllLoss, mseLoss, l1Loss, binaryCrossEntropyWithLogits, dropout, conv1d, conv2d, maxPool1d, maxPool2d, avgPool1d, avgPool2d, scaledDotProductAttention, oneHot } from './nn/functional.js';
export type { Reduction, NllOptions, ConvOptions, Conv1dOptions, PoolOptions, AttentionOptions } from './nn/functional.js';
export { Module, Parameter, type LoadResult } from './nn/module.js';
export * as init from './nn/init.js';
export { Linear, Identity, type LinearOptions } from './nn/linear.js';
export { Embedding, type EmbeddingOptions } from './nn/embedding.js';
export { LayerNorm, RMSNorm, type NormOptions } from './nn/normalization.js';
export { ReLU, GELU, SiLU, Tanh, Sigmoid, Softmax, Dropout, type ActivationName } from './nn/activation.js';
export { Sequential, ModuleList, type TensorModule } from './nn/container.js';
export { MultiheadAttention, KVCache, type MultiheadAttentionOptions, type AttentionCallOptions } from './nn/attention.js';
export { FeedForward, TransformerEncoderLayer, TransformerDecoderLayer, TransformerEncoder, TransformerDecoder, type TransformerLayerOptions, type EncoderLayerCall, type DecoderLayerCall } from './nn/transformer.js';
export { gradcheck, type GradcheckOptions } from './autograd/gradcheck.js';

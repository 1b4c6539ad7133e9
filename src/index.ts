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

// The package root: registers the backends and exports the public API.

import './autograd/methods.js';
import { CpuBackend } from './backend/cpu/index.js';
import { initWasm } from './backend/wasm/index.js';
import { registerBackend } from './tensor/backend.js';

registerBackend(new CpuBackend());

/** Starts the fast CPU backend ('wasm': WebAssembly SIMD kernels on a worker pool) and makes it the default device. */
export async function ready(): Promise<void> {
  await initWasm();
}
export { createWasmBackend, initWasm, WasmBackend, type WasmInitOptions, type WasmMemoryStats } from './backend/wasm/index.js';

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
export * from './optim/index.js';
export { loadSafetensors, parseSafetensors, readSafetensorsHeader, saveSafetensors, serializeSafetensors, type SafetensorsDType, type SafetensorsEntry, type SafetensorsHeader, type LoadSafetensorsOptions, type SaveSafetensorsOptions } from './io/safetensors.js';
export { RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell, type RNNOptions, type RNNLayerOptions, type RNNCallOptions, type RNNResult, type LSTMResult, type RNNCellOptions } from './nn/rnn.js';
export { Conv1d, Conv2d, type ConvLayerOptions, type IntPair } from './nn/conv.js';
export { MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, AdaptiveAvgPool1d, AdaptiveAvgPool2d, type Pool1dOptions, type Pool2dOptions } from './nn/pooling.js';
export { Flatten, Unflatten } from './nn/flatten.js';
export { Tokenizer, AutoTokenizer, type EncodeOptions, type DecodeOptions, type BatchEncodeOptions, type BatchEncodingTensors, type BatchEncodingArrays, type BatchInput } from './tokenizers/tokenizer.js';
export type { Encoding } from './tokenizers/post-process.js';
export type { Offset } from './tokenizers/offsets.js';
export type { TruncationStrategy } from './tokenizers/truncation.js';
export type { TokenizerJson } from './tokenizers/json.js';
export { TiktokenTokenizer, gpt2Encoding, type TiktokenEncodingName, type TiktokenEncodeOptions } from './tokenizers/tiktoken.js';
export { trainByteLevelBpe, learnBpe, type ByteLevelBpeOptions, type LearnBpeOptions, type LearnedBpe } from './tokenizers/train-bpe.js';
export { trainWordPiece, type WordPieceTrainerOptions } from './tokenizers/train-wordpiece.js';
export { AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoModelForSeq2SeqLM, registerArchitecture, type Task, type FromPretrainedOptions } from './models/auto.js';
export { PreTrainedModel, ConfigReader, loadPretrainedWeights, type ModelInputs, type ModelOutput, type GenerationDefaults } from './models/base.js';
export { GPT2LMHeadModel, GPT2Model, gpt2Config, type GPT2Config } from './models/gpt2.js';
export { loadCheckpoint, readConfig } from './io/hf.js';
export { generate, generateWithScores, streamGenerate, type GenerateOptions, type GenerateOutput } from './generation/generate.js';
export { parseEmail, decodeHeaderValue, decodeCharset, decodeQuotedPrintable, decodeBase64, type ParsedEmail, type EmailHeader } from './data/email.js';
export { htmlToText, decodeEntities } from './data/html.js';
export { loadSpamAssassin, spamAssassinDir, SPAM_ASSASSIN_GROUPS, type SpamEmail, type SpamGroup, type SpamLabel, type LoadSpamAssassinOptions } from './data/spam.js';
export { loadCmudict, parseCmudict, cmudictDir, stripStress, type CmudictEntry, type LoadCmudictOptions } from './data/cmudict.js';
export { loadText, loadTextLines, loadJsonl, parseJsonl, loadCsv, parseCsv, type CsvOptions } from './data/files.js';
export { splitDataset, splitByKey, splitSizes, type SplitOptions } from './data/split.js';
export { DataLoader, padSequences, type DataLoaderOptions, type LoaderPosition, type BatchSource, type PadOptions, type PaddedBatch } from './data/loader.js';
export { Trainer, METRICS_FILE, LOSS_PLOT_FILE, type TrainerConfig, type TrainResult, type LossFn, type LossOutput, type EvalFn, type Metrics, type BatchFactory, type OptimizerConfig, type ScheduleConfig, type StepInfo } from './train/trainer.js';
export { STATE_FILE, type MetricRecord, type TrainerState } from './train/checkpoint.js';
export { lineChart, niceTicks, type Series, type ChartOptions } from './train/plot.js';
export { formatDuration, type ProgressStream } from './train/progress.js';
export { BertModel, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, bertConfig, type BertConfig } from './models/bert.js';
export { T5ForConditionalGeneration, t5Config, relativePositionBucket, type T5Config } from './models/t5.js';
export { loadBrown, untagSentence, brownDir, type BrownDocument } from './data/brown.js';
export { LlamaForCausalLM, LlamaModel, LlamaRotaryEmbedding, llamaConfig, ropeInverseFrequencies, ROPE_TYPES, type LlamaConfig, type RopeParameters, type RopeType } from './models/llama.js';
export { addLora, loadLoraAdapter, saveLoraAdapter, mergeLora, markOnlyLoraTrainable, LoraLinear, type LoraOptions } from './models/lora.js';

// exportOnnx(model, path, { opset, dynamicAxes, withPast }): writes an ONNX file for ONNX Runtime / Triton, dispatching on the model's class.
//
//   await exportOnnx(gpt2, 'gpt2.onnx', { withPast: true });   // inputs input_ids, attention_mask, position_ids, past_key_values.*
//   const bytes = await toOnnx(llama);                          // the same file in memory (ort.InferenceSession.create(bytes))
// The names are HF Optimum's (see decoder.ts). An unsupported model lists the supported ones; an unsupported module
// inside a supported model names the module and what it is. Weights over 2 GB (protobuf's limit for one file) go to
// a second file, `<file>_data` next to the model (ONNX external data), as Optimum does.

import type { Module } from '../nn/module.js';
import { GPT2LMHeadModel } from '../models/gpt2.js';
import { LlamaForCausalLM } from '../models/llama.js';
import { gpt2Graph, llamaGraph, type DecoderExportOptions } from './decoder.js';
import { ENCODER_MODELS, encoderGraph, isEncoderModel } from './encoder.js';
import { exportSeq2SeqOnnx, isSeq2SeqModel, SEQ2SEQ_MODELS } from './seq2seq.js';
import type { OnnxGraph } from './graph.js';

export interface OnnxExportOptions extends DecoderExportOptions {
  /** Key / value strings stored in the file's metadata_props. */
  metadata?: Readonly<Record<string, string>>;
  /**
   * Weights in `<file>_data` next to the model file (ONNX external data) rather than inline. Default: when they
   * pass 1.8 GB (one protobuf file holds at most 2 GB).
   */
  externalData?: boolean;
}

export interface OnnxExportResult {
  path: string;
  /** The model file's size (without the external data file). */
  bytes: number;
  /** The external data file, when the weights went there. */
  dataPath?: string;
  dataBytes?: number;
  inputs: string[];
  outputs: string[];
  /** A model written as several files (seq2seq: a folder): each file's report. */
  files?: OnnxExportResult[];
}

/**
 * One exporter per model family: `matches` picks it; `graph` builds the single-file graph, or `write` writes what a
 * model needs more than one file for (an encoder and a decoder) and reports it.
 */
export interface OnnxExporter {
  name: string;
  matches: (model: Module) => boolean;
  graph?: (model: Module, opts: OnnxExportOptions) => OnnxGraph | Promise<OnnxGraph>;
  write?: (model: Module, path: string, opts: OnnxExportOptions) => Promise<OnnxExportResult>;
}

/** The exporters, tried in order. */
export const ONNX_EXPORTERS: OnnxExporter[] = [
  { name: 'GPT2LMHeadModel', matches: (m) => m instanceof GPT2LMHeadModel, graph: (m, o) => gpt2Graph(m as GPT2LMHeadModel, o) },
  {
    name: 'LlamaForCausalLM (and MistralForCausalLM, Qwen2ForCausalLM, GemmaForCausalLM)',
    matches: (m) => m instanceof LlamaForCausalLM,
    graph: (m, o) => llamaGraph(m as LlamaForCausalLM, o),
  },
  { name: ENCODER_MODELS.join(', '), matches: isEncoderModel, graph: (m, o) => encoderGraph(m, o) },
  {
    name: `${SEQ2SEQ_MODELS.join(', ')} (path: a folder for encoder_model.onnx, decoder_model.onnx, decoder_with_past_model.onnx)`,
    matches: isSeq2SeqModel,
    write: (m, dir, o) => exportSeq2SeqOnnx(m, dir, o, (g, path) => writeOnnxGraph(g, path, o)),
  },
];

function exporterFor(model: Module): OnnxExporter {
  const exporter = ONNX_EXPORTERS.find((e) => e.matches(model));
  if (!exporter) {
    throw new Error(`ONNX export: model ${model.constructor.name} is not supported (supported: ${ONNX_EXPORTERS.map((e) => e.name).join('; ')})`);
  }
  return exporter;
}

/** The model's graph; an unsupported model names its class and the supported ones. */
export async function onnxGraph(model: Module, opts: OnnxExportOptions = {}): Promise<OnnxGraph> {
  const exporter = exporterFor(model);
  if (!exporter.graph) throw new Error(`ONNX export: ${model.constructor.name} is written as several files; use exportOnnx(model, path)`);
  return exporter.graph(model, opts);
}

/** The ONNX file's bytes, in memory (weights inline). */
export async function toOnnx(model: Module, opts: OnnxExportOptions = {}): Promise<Uint8Array> {
  return (await onnxGraph(model, opts)).toBytes({ metadata: opts.metadata });
}

/** Writes chunks in order to a file, small ones gathered into 1 MB writes (the weights are never copied into one buffer). */
export async function writeChunks(path: string, chunks: readonly Uint8Array[]): Promise<number> {
  const { open } = await import('node:fs/promises');
  const f = await open(path, 'w');
  let total = 0;
  try {
    const stage = new Uint8Array(1 << 20);
    let used = 0;
    for (const c of chunks) {
      total += c.length;
      if (used + c.length > stage.length) {
        if (used) await f.write(stage, 0, used);
        used = 0;
      }
      if (c.length >= stage.length) await f.write(c);
      else {
        stage.set(c, used);
        used += c.length;
      }
    }
    if (used) await f.write(stage, 0, used);
  } finally {
    await f.close();
  }
  return total;
}

/** Writes an exported graph to `path` (and its weights to `<path>_data` when external). */
export async function writeOnnxGraph(g: OnnxGraph, path: string, opts: Pick<OnnxExportOptions, 'externalData' | 'metadata'> = {}): Promise<OnnxExportResult> {
  const external = opts.externalData ?? g.weightBytes() > 1.8e9;
  const io = { inputs: g.inputNames(), outputs: g.outputNames() };
  if (!external) {
    const msg = await g.build({ metadata: opts.metadata });
    if (msg.length >= 2 ** 31) throw new Error(`ONNX export: ${path} would be ${msg.length} bytes, over protobuf's 2 GB; pass { externalData: true }`);
    return { path, bytes: await writeChunks(path, msg.chunks), ...io };
  }
  const { basename } = await import('node:path');
  const location = `${basename(path)}_data`, dataPath = `${path}_data`;
  const { model, data } = await g.buildWithExternalData(location, { metadata: opts.metadata });
  const dataBytes = await writeChunks(dataPath, data);
  return { path, bytes: await writeChunks(path, model.chunks), dataPath, dataBytes, ...io };
}

/** Writes the model's ONNX file to `path`. */
export async function exportOnnx(model: Module, path: string, opts: OnnxExportOptions = {}): Promise<OnnxExportResult> {
  const exporter = exporterFor(model);
  if (exporter.write) return exporter.write(model, path, opts);
  return writeOnnxGraph(await exporter.graph!(model, opts), path, opts);
}

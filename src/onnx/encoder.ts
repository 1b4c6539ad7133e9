// ONNX graphs of our BERT-family encoders (BERT, RoBERTa, DistilBERT, their heads and base models), with HF Optimum's names.
//
// Inputs: input_ids and attention_mask [batch_size, sequence_length] int64 (1 = token, 0 = padding), and for BERT
// token_type_ids [batch_size, sequence_length] int64 (RoBERTa and DistilBERT take none, as Optimum exports them).
// Outputs: logits ([batch_size, sequence_length, vocab] for masked LM, [batch_size, num_labels] for sequence
// classification, [batch_size, sequence_length, num_labels] for token classification), or last_hidden_state
// [batch_size, sequence_length, hidden] for the base models (BertModel, DistilBertModel). The graph computes what
// the model's forward does in eval mode, in float32; attention is spelled out in primitives (MatMul, Softmax).
// The helpers below (heads, attention, padding masks) are shared with seq2seq.ts.

import { writeFile } from 'node:fs/promises';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import { LayerNorm } from '../nn/normalization.js';
import {
  BertEmbeddings, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, BertModel, type BertConfig,
} from '../models/bert.js';
import {
  DistilBertForMaskedLM, DistilBertForSequenceClassification, DistilBertForTokenClassification, DistilBertModel, type DistilBertConfig,
} from '../models/distilbert.js';
import { RobertaEmbeddings, RobertaForMaskedLM, RobertaForSequenceClassification, RobertaForTokenClassification } from '../models/roberta.js';
import { OnnxGraph, type Dim } from './graph.js';

export interface EncoderExportOptions {
  opset?: number;
  /**
   * true (default): every batch and length axis is dynamic (named as Optimum names it). An object fixes the ones it
   * names ({ batch_size: 1 }); the others stay dynamic.
   */
  dynamicAxes?: boolean | Readonly<Record<string, number>>;
}

/** The most negative float32: what masked scores become (transformers' torch.finfo(float32).min). */
export const MASKED = -3.4028234663852886e38;

// ---- helpers shared with seq2seq.ts ----

/** Fails unless `m` is exactly `cls`: the exporter spells out only the modules it knows (not LoRA, not quantized). */
export function expectModule<T extends Module>(m: Module, cls: abstract new (...args: never[]) => T, path: string, what: string): T {
  if (m.constructor !== cls) {
    throw new Error(`ONNX export: unsupported op in module ${path}: a ${m.constructor.name} where the exporter expects ${what} (${cls.name}); ` +
      'merge LoRA adapters and dequantize before exporting');
  }
  return m as T;
}

/** The dims of the graph's inputs and outputs: named (dynamic) unless `dynamicAxes` fixes them; `known` lists the axis names. */
export function axisDims(opts: EncoderExportOptions, known: readonly string[]): (name: string) => Dim {
  if (opts.dynamicAxes === false) throw new Error(`ONNX export: dynamicAxes false needs fixed sizes: pass { ${known.map((k) => `${k}: ...`).join(', ')} } instead`);
  const fixed = typeof opts.dynamicAxes === 'object' ? opts.dynamicAxes : {};
  for (const [k, v] of Object.entries(fixed)) {
    if (!known.includes(k)) throw new Error(`ONNX export: dynamicAxes names an unknown axis '${k}' (${known.join(', ')})`);
    if (!Number.isInteger(v) || v < 0) throw new Error(`ONNX export: dynamicAxes.${k} must be a non-negative integer, got ${v}`);
  }
  return (name) => {
    const parts = name.split(' + ');
    const values = parts.map((p) => fixed[p]);
    return values.every((v) => v !== undefined) ? values.reduce((a, b) => a! + b!, 0)! : name;
  };
}

/** A Linear (checked) as x W^T + b. */
export function linear(g: OnnxGraph, mod: Module, path: string, x: string): string {
  const l = expectModule(mod, Linear, path, 'a Linear');
  return g.linear(x, l.weight, l.bias, path);
}

/** A LayerNorm (checked) over the last axis. */
export function layerNorm(g: OnnxGraph, mod: Module, path: string, x: string): string {
  const n = expectModule(mod, LayerNorm, path, 'a LayerNorm');
  if (!n.weight) throw new Error(`ONNX export: LayerNorm ${path} without elementwise affine weights is not supported`);
  return g.layerNorm(x, n.weight, n.bias, n.eps, path);
}

/** An embedding table's rows (checked) for the int64 indices `ids`. */
export function embedding(g: OnnxGraph, mod: Module, path: string, ids: string): string {
  const e = expectModule(mod, Embedding, path, 'an embedding table');
  return g.op('Gather', [g.weight(`${path}.weight`, e.weight), ids], { axis: 0 });
}

/** Dimension `axis` of `x` as an int64 scalar. */
export function dimOf(g: OnnxGraph, x: string, axis: number): string {
  return g.op('Gather', [g.op('Shape', [x]), g.constInt64(axis)], { axis: 0 });
}

/** [B, L, n * hs] -> [B, n, L, hs] */
export function heads(g: OnnxGraph, x: string, n: number, hs: number): string {
  return g.op('Transpose', [g.op('Reshape', [x, g.constInt64([0, 0, n, hs])])], { perm: [0, 2, 1, 3] });
}

/** A padding mask [B, S] int64 (1 = token) as bool [B, 1, 1, S] (true = may attend). */
export function keyMask(g: OnnxGraph, mask: string): string {
  return g.op('Unsqueeze', [g.op('Cast', [mask], { to: 9 /* BOOL */ }), g.constInt64([1, 2])]);
}

/**
 * softmax(q k^T * scale + bias, masked) v for q [B, nh, T, hs], k / v [B, nh, S, hs]: [B, T, nh * hs]. bias is
 * additive (T5's position bias, a causal -inf), mask bool "may attend"; a masked score becomes finfo.min, as in
 * transformers, so that a fully masked row is uniform rather than NaN.
 */
export function attention(g: OnnxGraph, q: string, k: string, v: string, o: { nh: number; hs: number; scale: number; bias?: string | null; mask?: string | null }): string {
  let scores = g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]); // [B, nh, T, S]
  if (o.scale !== 1) scores = g.op('Mul', [scores, g.constFloat(o.scale)]);
  if (o.bias) scores = g.op('Add', [scores, o.bias]);
  if (o.mask) scores = g.op('Where', [o.mask, scores, g.constFloat(MASKED)]);
  const y = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), v]); // [B, nh, T, hs]
  // [B, nh, T, hs] -> [B, T, nh, hs] -> [B, T, nh * hs]
  return g.op('Reshape', [g.op('Transpose', [y], { perm: [0, 2, 1, 3] }), g.constInt64([0, 0, o.nh * o.hs])]);
}

/** Writes a graph's file: what exportEncoderOnnx and exportSeq2SeqOnnx return per file. */
export async function writeGraph(g: OnnxGraph, path: string): Promise<{ path: string; bytes: number; inputs: string[]; outputs: string[] }> {
  const bytes = await g.toBytes();
  await writeFile(path, bytes);
  return { path, bytes: bytes.length, inputs: g.inputNames(), outputs: g.outputNames() };
}

// ---- the BERT family ----

/** The models this file exports, for error messages and export.ts's dispatch. */
export const ENCODER_MODELS = [
  'BertModel', 'BertForMaskedLM', 'BertForSequenceClassification', 'BertForTokenClassification', 'RobertaForMaskedLM',
  'RobertaForSequenceClassification', 'RobertaForTokenClassification', 'DistilBertModel', 'DistilBertForMaskedLM',
  'DistilBertForSequenceClassification', 'DistilBertForTokenClassification',
] as const;

const ENCODER_CLASSES = [
  BertModel, BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, RobertaForMaskedLM, RobertaForSequenceClassification,
  RobertaForTokenClassification, DistilBertModel, DistilBertForMaskedLM, DistilBertForSequenceClassification, DistilBertForTokenClassification,
];

/** True for a model encoderGraph exports. */
export function isEncoderModel(model: Module): boolean {
  return ENCODER_CLASSES.some((cls) => model instanceof cls);
}

interface EncoderIo {
  ids: string;
  mask: string;
  types: string | null;
  dim: (name: string) => Dim;
}

function encoderInputs(g: OnnxGraph, opts: EncoderExportOptions, tokenTypes: boolean): EncoderIo {
  const dim = axisDims(opts, ['batch_size', 'sequence_length']);
  const bt = [dim('batch_size'), dim('sequence_length')];
  const ids = g.input('input_ids', 'int64', bt);
  const mask = g.input('attention_mask', 'int64', bt);
  const types = tokenTypes ? g.input('token_type_ids', 'int64', bt) : null;
  return { ids, mask, types, dim };
}

/** Word + position + token type embeddings, LayerNorm: [B, T, C]. RoBERTa's positions count tokens from pad + 1. */
function bertEmbeddings(g: OnnxGraph, emb: BertEmbeddings, p: string, io: EncoderIo): string {
  let pos: string;
  if (emb instanceof RobertaEmbeddings) {
    // create_position_ids_from_input_ids: cumsum(ids != pad) * (ids != pad) + pad, [B, T]
    const pad = emb.config.pad_token_id;
    const isToken = g.op('Cast', [g.op('Not', [g.op('Equal', [io.ids, g.constInt64(pad)])])], { to: 7 /* INT64 */ });
    pos = g.op('Add', [g.op('Mul', [g.op('CumSum', [isToken, g.constInt64(1)]), isToken]), g.constInt64(pad)]);
  } else {
    if (emb.constructor !== BertEmbeddings) throw new Error(`ONNX export: unsupported op in module ${p}embeddings: a ${emb.constructor.name} (BertEmbeddings or RobertaEmbeddings)`);
    pos = g.op('Range', [g.constInt64(0), dimOf(g, io.ids, 1), g.constInt64(1)]); // [T]
  }
  // Absent token types are all 0: row 0 of the table, broadcast.
  const types = embedding(g, emb.token_type_embeddings, `${p}embeddings.token_type_embeddings`, io.types ?? g.constInt64(0));
  const x = g.op('Add', [g.op('Add', [embedding(g, emb.word_embeddings, `${p}embeddings.word_embeddings`, io.ids), embedding(g, emb.position_embeddings, `${p}embeddings.position_embeddings`, pos)]), types]);
  return layerNorm(g, emb.LayerNorm, `${p}embeddings.LayerNorm`, x);
}

/** BertModel's encoder: the hidden states [B, T, C] (the pooler is the heads' business). */
function bertModel(g: OnnxGraph, m: BertModel, p: string, io: EncoderIo): string {
  const cfg: BertConfig = m.config, C = cfg.hidden_size, nh = cfg.num_attention_heads, hs = C / nh;
  let x = bertEmbeddings(g, m.embeddings, p, io);
  const mask = keyMask(g, io.mask);
  m.encoder.layer.forEach((layer, i) => {
    const l = `${p}encoder.layer.${i}.`, a = `${l}attention.`, sa = layer.attention.self;
    const proj = (mod: Module, n: string) => heads(g, linear(g, mod, `${a}self.${n}`, x), nh, hs);
    const y = attention(g, proj(sa.query, 'query'), proj(sa.key, 'key'), proj(sa.value, 'value'), { nh, hs, scale: 1 / Math.sqrt(hs), mask });
    const h = layerNorm(g, layer.attention.output.LayerNorm, `${a}output.LayerNorm`, g.op('Add', [linear(g, layer.attention.output.dense, `${a}output.dense`, y), x]));
    const f = g.activation(linear(g, layer.intermediate.dense, `${l}intermediate.dense`, h), cfg.hidden_act, `${l}intermediate`);
    x = layerNorm(g, layer.output.LayerNorm, `${l}output.LayerNorm`, g.op('Add', [linear(g, layer.output.dense, `${l}output.dense`, f), h]));
  });
  return x;
}

/** DistilBERT's transformer: the hidden states [B, T, C]. */
function distilBertModel(g: OnnxGraph, m: DistilBertModel, io: EncoderIo): string {
  const cfg: DistilBertConfig = m.config, C = cfg.dim, nh = cfg.n_heads, hs = C / nh, e = 'distilbert.embeddings.';
  const pos = g.op('Range', [g.constInt64(0), dimOf(g, io.ids, 1), g.constInt64(1)]); // [T]
  const words = embedding(g, m.embeddings.word_embeddings, `${e}word_embeddings`, io.ids);
  let x = layerNorm(g, m.embeddings.LayerNorm, `${e}LayerNorm`, g.op('Add', [words, embedding(g, m.embeddings.position_embeddings, `${e}position_embeddings`, pos)]));
  const mask = keyMask(g, io.mask);
  m.transformer.layer.forEach((layer, i) => {
    const l = `distilbert.transformer.layer.${i}.`, at = layer.attention;
    const proj = (mod: Module, n: string) => heads(g, linear(g, mod, `${l}attention.${n}`, x), nh, hs);
    const y = attention(g, proj(at.q_lin, 'q_lin'), proj(at.k_lin, 'k_lin'), proj(at.v_lin, 'v_lin'), { nh, hs, scale: 1 / Math.sqrt(hs), mask });
    const h = layerNorm(g, layer.sa_layer_norm, `${l}sa_layer_norm`, g.op('Add', [linear(g, at.out_lin, `${l}attention.out_lin`, y), x]));
    const f = g.activation(linear(g, layer.ffn.lin1, `${l}ffn.lin1`, h), cfg.activation, `${l}ffn`);
    x = layerNorm(g, layer.output_layer_norm, `${l}output_layer_norm`, g.op('Add', [linear(g, layer.ffn.lin2, `${l}ffn.lin2`, f), h]));
  });
  return x;
}

/** The hidden state of the first token: [B, T, C] -> [B, C]. */
const first = (g: OnnxGraph, x: string): string => g.op('Gather', [x, g.constInt64(0)], { axis: 1 });

/** The ONNX graph of a BERT-family model (see the header for its inputs and outputs). */
export function encoderGraph(model: Module, opts: EncoderExportOptions = {}): OnnxGraph {
  const name = model.constructor.name;
  if (!isEncoderModel(model)) throw new Error(`ONNX export: model ${name} is not a BERT-family encoder (supported: ${ENCODER_MODELS.join(', ')})`);
  const g = new OnnxGraph(name, { opset: opts.opset });
  const distil = model instanceof DistilBertModel || model instanceof DistilBertForMaskedLM || model instanceof DistilBertForSequenceClassification ||
    model instanceof DistilBertForTokenClassification;
  const roberta = model instanceof RobertaForMaskedLM || model instanceof RobertaForSequenceClassification || model instanceof RobertaForTokenClassification ||
    (model instanceof BertModel && model.embeddings instanceof RobertaEmbeddings);
  const io = encoderInputs(g, opts, !distil && !roberta);
  const B = io.dim('batch_size'), T = io.dim('sequence_length');
  const out = (value: string, outName: string, dims: Dim[]): void => { g.output(value, outName, 'float32', dims); };

  if (model instanceof BertModel) {
    out(bertModel(g, model, '', io), 'last_hidden_state', [B, T, model.config.hidden_size]);
  } else if (model instanceof DistilBertModel) {
    out(distilBertModel(g, model, io), 'last_hidden_state', [B, T, model.config.dim]);
  } else if (model instanceof BertForMaskedLM) {
    const cfg = model.config, h = model.cls.predictions, t = 'cls.predictions.transform.';
    const x = bertModel(g, model.bert, 'bert.', io);
    const tr = layerNorm(g, h.transform.LayerNorm, `${t}LayerNorm`, g.activation(linear(g, h.transform.dense, `${t}dense`, x), cfg.hidden_act, 'cls.predictions.transform'));
    out(g.linear(tr, expectModule(h.decoder, Linear, 'cls.predictions.decoder', 'a Linear').weight, h.bias, 'cls.predictions.decoder'), 'logits', [B, T, cfg.vocab_size]);
  } else if (model instanceof BertForSequenceClassification) {
    const x = bertModel(g, model.bert, 'bert.', io);
    const pooled = g.op('Tanh', [linear(g, model.bert.pooler!.dense, 'bert.pooler.dense', first(g, x))]);
    out(linear(g, model.classifier, 'classifier', pooled), 'logits', [B, model.numLabels]);
  } else if (model instanceof BertForTokenClassification) {
    out(linear(g, model.classifier, 'classifier', bertModel(g, model.bert, 'bert.', io)), 'logits', [B, T, model.numLabels]);
  } else if (model instanceof RobertaForMaskedLM) {
    const h = model.lm_head;
    const x = bertModel(g, model.roberta, 'roberta.', io);
    // RobertaLMHead: exact gelu whatever hidden_act says.
    const tr = layerNorm(g, h.layer_norm, 'lm_head.layer_norm', g.gelu(linear(g, h.dense, 'lm_head.dense', x)));
    out(g.linear(tr, expectModule(h.decoder, Linear, 'lm_head.decoder', 'a Linear').weight, h.bias, 'lm_head.decoder'), 'logits', [B, T, model.config.vocab_size]);
  } else if (model instanceof RobertaForSequenceClassification) {
    const c = model.classifier;
    const x = g.op('Tanh', [linear(g, c.dense, 'classifier.dense', first(g, bertModel(g, model.roberta, 'roberta.', io)))]);
    out(linear(g, c.out_proj, 'classifier.out_proj', x), 'logits', [B, model.config.id2label.length]);
  } else if (model instanceof RobertaForTokenClassification) {
    out(linear(g, model.classifier, 'classifier', bertModel(g, model.roberta, 'roberta.', io)), 'logits', [B, T, model.config.id2label.length]);
  } else if (model instanceof DistilBertForTokenClassification) {
    out(linear(g, model.classifier, 'classifier', distilBertModel(g, model.distilbert, io)), 'logits', [B, T, model.config.id2label.length]);
  } else if (model instanceof DistilBertForSequenceClassification) {
    const x = g.op('Relu', [linear(g, model.pre_classifier, 'pre_classifier', first(g, distilBertModel(g, model.distilbert, io)))]);
    out(linear(g, model.classifier, 'classifier', x), 'logits', [B, model.numLabels]);
  } else {
    const m = model as DistilBertForMaskedLM, cfg = m.config;
    const x = distilBertModel(g, m.distilbert, io);
    const tr = layerNorm(g, m.vocab_layer_norm, 'vocab_layer_norm', g.activation(linear(g, m.vocab_transform, 'vocab_transform', x), cfg.activation, 'vocab_transform'));
    out(linear(g, m.vocab_projector, 'vocab_projector', tr), 'logits', [B, T, cfg.vocab_size]);
  }
  return g;
}

/** Writes a BERT-family model's ONNX file (Optimum's model.onnx) to `path`. */
export function exportEncoderOnnx(model: Module, path: string, opts: EncoderExportOptions = {}): Promise<{ path: string; bytes: number; inputs: string[]; outputs: string[] }> {
  return writeGraph(encoderGraph(model, opts), path);
}

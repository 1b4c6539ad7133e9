// ONNX graphs of our encoder-decoders (T5, BART: ForConditionalGeneration) in HF Optimum's three-file layout.
//
// encoder_model.onnx: input_ids, attention_mask [batch_size, encoder_sequence_length] int64 -> last_hidden_state
// [batch_size, encoder_sequence_length, d_model].
// decoder_model.onnx (the first step): input_ids [batch_size, decoder_sequence_length], encoder_attention_mask
// [batch_size, encoder_sequence_length], encoder_hidden_states -> logits [batch_size, decoder_sequence_length, vocab]
// and per layer i present.{i}.decoder.key / .value [batch_size, heads, decoder_sequence_length, head_dim] (self-attention)
// and present.{i}.encoder.key / .value [batch_size, heads, encoder_sequence_length_out, head_dim] (cross-attention).
// decoder_with_past_model.onnx (every later step): input_ids, encoder_attention_mask and past_key_values.{i}.decoder.key
// / .value, .encoder.key / .value (the presents of the step before; the encoder ones never change) -> logits and
// present.{i}.decoder.key / .value grown by the new tokens. As Optimum's, it takes no encoder_hidden_states (the
// cross-attention keys and values come from the past) and returns no encoder presents.
// The graphs compute what the model's forward does in eval mode, in float32.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Module } from '../nn/module.js';
import { RMSNorm } from '../nn/normalization.js';
import { BART_POSITION_OFFSET, BartForConditionalGeneration, type BartConfig } from '../models/bart.js';
import { T5DenseActDense, T5DenseGatedActDense, T5ForConditionalGeneration, relativePositionBucket, type T5Attention, type T5Config } from '../models/t5.js';
import { OnnxGraph, type Dim } from './graph.js';
import { MASKED, attention, axisDims, dimOf, embedding, expectModule, heads, keyMask, layerNorm, linear, writeGraph, type EncoderExportOptions } from './encoder.js';

export interface Seq2SeqExportOptions extends EncoderExportOptions {
  /** Also write decoder_with_past_model.onnx (default true): a generation loop needs it. */
  withPast?: boolean;
}

const AXES = ['batch_size', 'encoder_sequence_length', 'decoder_sequence_length', 'past_decoder_sequence_length', 'encoder_sequence_length_out'] as const;

/** The models this file exports. */
export const SEQ2SEQ_MODELS = ['T5ForConditionalGeneration', 'BartForConditionalGeneration'] as const;

export function isSeq2SeqModel(model: Module): model is T5ForConditionalGeneration | BartForConditionalGeneration {
  return model instanceof T5ForConditionalGeneration || model instanceof BartForConditionalGeneration;
}

/** The sizes every graph needs, per family. */
interface Shape {
  C: number;
  V: number;
  nh: number;
  hs: number;
  layers: number;
}

function shapeOf(model: T5ForConditionalGeneration | BartForConditionalGeneration): Shape {
  if (model instanceof T5ForConditionalGeneration) {
    const c: T5Config = model.config;
    return { C: c.d_model, V: c.vocab_size, nh: c.num_heads, hs: c.d_kv, layers: c.num_decoder_layers };
  }
  const c: BartConfig = model.config;
  if (c.encoder_attention_heads !== c.decoder_attention_heads) {
    throw new Error(`ONNX export: BART with ${c.encoder_attention_heads} encoder and ${c.decoder_attention_heads} decoder attention heads is not supported (the cross-attention cache has the decoder's heads)`);
  }
  return { C: c.d_model, V: c.vocab_size, nh: c.decoder_attention_heads, hs: c.d_model / c.decoder_attention_heads, layers: c.decoder_layers };
}

// ---- T5's pieces ----

/** T5's RMSNorm (checked): x / sqrt(mean(x^2) + eps) * w. */
function rmsNorm(g: OnnxGraph, mod: Module, path: string, x: string): string {
  const n = expectModule(mod, RMSNorm, path, 'an RMSNorm');
  const ms = g.reduceMean(g.op('Mul', [x, x]), [-1]);
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constFloat(n.eps ?? 1.1920928955078125e-7)])])]);
  return g.op('Mul', [g.op('Mul', [x, inv]), g.weight(`${path}.weight`, n.weight!)]);
}

/**
 * The relative positions key - query [T, S] for queries at past .. past + T - 1 over keys 0 .. S - 1 (S = past + T),
 * int64, and T5's learned bias for them [1, nh, T, S]. A bucket depends on the distance only up to max_distance (one
 * bucket beyond), so the buckets come from a table over -max .. max computed here with the model's own function:
 * the same float32 truncation, any length.
 */
function t5PositionBias(g: OnnxGraph, att: T5Attention, path: string, cfg: T5Config, past: string, T: string, bidirectional: boolean): { rel: string; bias: string } {
  const M = cfg.relative_attention_max_distance;
  const table = BigInt64Array.from({ length: 2 * M + 1 }, (_, i) => BigInt(relativePositionBucket(i - M, bidirectional, cfg.relative_attention_num_buckets, M)));
  const buckets = g.initializer(`${path}.relative_attention_buckets`, 'int64', [2 * M + 1], table);
  const one = g.constInt64(1);
  const S = g.op('Add', [past, T]);
  const queries = g.op('Unsqueeze', [g.op('Range', [past, S, one]), g.constInt64([1])]); // [T, 1]
  const keys = g.op('Unsqueeze', [g.op('Range', [g.constInt64(0), S, one]), g.constInt64([0])]); // [1, S]
  const rel = g.op('Sub', [keys, queries]); // [T, S]
  const index = g.op('Add', [g.op('Max', [g.op('Min', [rel, g.constInt64(M)]), g.constInt64(-M)]), g.constInt64(M)]);
  const values = embedding(g, att.relative_attention_bias!, `${path}.relative_attention_bias`, g.op('Gather', [buckets, index], { axis: 0 })); // [T, S, nh]
  // [T, S, nh] -> [nh, T, S] -> [1, nh, T, S]
  return { rel, bias: g.op('Unsqueeze', [g.op('Transpose', [values], { perm: [2, 0, 1] }), g.constInt64([0])]) };
}

function t5FeedForward(g: OnnxGraph, cfg: T5Config, ff: Module, path: string, x: string): string {
  const act = cfg.feed_forward_proj === 'gated-gelu' ? 'gelu_new' : cfg.feed_forward_proj.replace(/^gated-/, '');
  if (ff instanceof T5DenseGatedActDense) {
    const gate = g.activation(linear(g, ff.wi_0, `${path}.wi_0`, x), act, path);
    return linear(g, ff.wo, `${path}.wo`, g.op('Mul', [gate, linear(g, ff.wi_1, `${path}.wi_1`, x)]));
  }
  const f = expectModule(ff, T5DenseActDense, path, 'a feed-forward');
  return linear(g, f.wo, `${path}.wo`, g.activation(linear(g, f.wi, `${path}.wi`, x), act, path));
}

// ---- encoder ----

function encoderGraph(model: T5ForConditionalGeneration | BartForConditionalGeneration, opts: Seq2SeqExportOptions): OnnxGraph {
  const g = new OnnxGraph(`${model.constructor.name}.encoder`, { opset: opts.opset });
  const dim = axisDims(opts, AXES);
  const B = dim('batch_size'), S = dim('encoder_sequence_length');
  const ids = g.input('input_ids', 'int64', [B, S]);
  const mask = keyMask(g, g.input('attention_mask', 'int64', [B, S]));
  const { C, nh, hs } = shapeOf(model);
  let x: string;
  if (model instanceof T5ForConditionalGeneration) {
    const cfg = model.config, enc = model.encoder;
    x = embedding(g, enc.embed_tokens, 'shared', ids);
    const { bias } = t5PositionBias(g, enc.block[0]!.layer[0].SelfAttention, 'encoder.block.0.layer.0.SelfAttention', cfg, g.constInt64(0), dimOf(g, ids, 1), true);
    enc.block.forEach((block, i) => {
      const p = `encoder.block.${i}.layer.`, sa = block.layer[0].SelfAttention, a = `${p}0.SelfAttention`;
      const h = rmsNorm(g, block.layer[0].layer_norm, `${p}0.layer_norm`, x);
      const proj = (m: Module, n: string) => heads(g, linear(g, m, `${a}.${n}`, h), nh, hs);
      const y = attention(g, proj(sa.q, 'q'), proj(sa.k, 'k'), proj(sa.v, 'v'), { nh, hs, scale: 1, bias, mask });
      x = g.op('Add', [x, linear(g, sa.o, `${a}.o`, y)]);
      x = g.op('Add', [x, t5FeedForward(g, cfg, block.layer[1].DenseReluDense, `${p}1.DenseReluDense`, rmsNorm(g, block.layer[1].layer_norm, `${p}1.layer_norm`, x))]);
    });
    x = rmsNorm(g, enc.final_layer_norm, 'encoder.final_layer_norm', x);
  } else {
    const cfg = model.config, enc = model.model.encoder;
    x = bartEmbed(g, cfg, enc, 'model.encoder', ids, g.constInt64(0));
    enc.layers.forEach((layer, i) => {
      const p = `model.encoder.layers.${i}`, sa = layer.self_attn, a = `${p}.self_attn`;
      const proj = (m: Module, n: string) => heads(g, linear(g, m, `${a}.${n}`, x), nh, hs);
      const y = attention(g, proj(sa.q_proj, 'q_proj'), proj(sa.k_proj, 'k_proj'), proj(sa.v_proj, 'v_proj'), { nh, hs, scale: 1 / Math.sqrt(hs), mask });
      const h = layerNorm(g, layer.self_attn_layer_norm, `${p}.self_attn_layer_norm`, g.op('Add', [x, linear(g, sa.out_proj, `${a}.out_proj`, y)]));
      const f = linear(g, layer.fc2, `${p}.fc2`, g.activation(linear(g, layer.fc1, `${p}.fc1`, h), cfg.activation_function, p));
      x = layerNorm(g, layer.final_layer_norm, `${p}.final_layer_norm`, g.op('Add', [h, f]));
    });
  }
  g.output(x, 'last_hidden_state', 'float32', [B, S, C]);
  return g;
}

/** BART's embeddings: tokens (times sqrt(d_model) when scale_embedding) + the position rows past + 2 .. past + T + 1, LayerNorm. */
function bartEmbed(g: OnnxGraph, cfg: BartConfig, stack: { embed_tokens: Module; embed_positions: Module; layernorm_embedding: Module }, p: string, ids: string, past: string): string {
  let x = embedding(g, stack.embed_tokens, 'model.shared', ids);
  if (cfg.scale_embedding) x = g.op('Mul', [x, g.constFloat(Math.sqrt(cfg.d_model))]);
  const start = g.op('Add', [past, g.constInt64(BART_POSITION_OFFSET)]);
  const end = g.op('Add', [start, dimOf(g, ids, 1)]);
  const table = embedding(g, stack.embed_positions, `${p}.embed_positions`, g.op('Range', [start, end, g.constInt64(1)])); // [T, C]
  return layerNorm(g, stack.layernorm_embedding, `${p}.layernorm_embedding`, g.op('Add', [x, table]));
}

// ---- decoder ----

/** The decoder: without past (decoder_model.onnx) or with it (decoder_with_past_model.onnx). */
function decoderGraph(model: T5ForConditionalGeneration | BartForConditionalGeneration, opts: Seq2SeqExportOptions, withPast: boolean): OnnxGraph {
  const g = new OnnxGraph(`${model.constructor.name}.${withPast ? 'decoder_with_past' : 'decoder'}`, { opset: opts.opset });
  const dim = axisDims(opts, AXES);
  const { C, V, nh, hs, layers } = shapeOf(model);
  const B = dim('batch_size'), T = dim('decoder_sequence_length'), Senc = dim('encoder_sequence_length'), Sout = dim('encoder_sequence_length_out');
  const ids = g.input('input_ids', 'int64', [B, T]);
  const encMask = keyMask(g, g.input('encoder_attention_mask', 'int64', [B, Senc]));
  const encStates = withPast ? null : g.input('encoder_hidden_states', 'float32', [B, Senc, C]);
  const pastDims = [B, nh, dim('past_decoder_sequence_length'), hs], encDims = [B, nh, Sout, hs];
  const past = withPast
    ? Array.from({ length: layers }, (_, i) => ({
        key: g.input(`past_key_values.${i}.decoder.key`, 'float32', pastDims),
        value: g.input(`past_key_values.${i}.decoder.value`, 'float32', pastDims),
        encKey: g.input(`past_key_values.${i}.encoder.key`, 'float32', encDims),
        encValue: g.input(`past_key_values.${i}.encoder.value`, 'float32', encDims),
      }))
    : null;
  const pastLen = past ? dimOf(g, past[0]!.key, 2) : g.constInt64(0);
  const presentDims = [B, nh, dim(withPast ? 'past_decoder_sequence_length + decoder_sequence_length' : 'decoder_sequence_length'), hs];
  const presents: [string, string, Dim[]][] = []; // value, name, dims: declared after logits, in Optimum's order

  /** Self-attention keys / values with the past prepended, recorded as present.{i}.decoder.*. */
  const selfKv = (i: number, k0: string, v0: string): [string, string] => {
    const k = past ? g.op('Concat', [past[i]!.key, k0], { axis: 2 }) : k0;
    const v = past ? g.op('Concat', [past[i]!.value, v0], { axis: 2 }) : v0;
    presents.push([k, `present.${i}.decoder.key`, presentDims], [v, `present.${i}.decoder.value`, presentDims]);
    return [k, v];
  };
  /** Cross-attention keys / values: from the past, or projected from the encoder states and recorded as present.{i}.encoder.*. */
  const crossKv = (i: number, kProj: Module, kPath: string, vProj: Module, vPath: string): [string, string] => {
    if (past) return [past[i]!.encKey, past[i]!.encValue];
    const k = heads(g, linear(g, kProj, kPath, encStates!), nh, hs), v = heads(g, linear(g, vProj, vPath, encStates!), nh, hs);
    presents.push([k, `present.${i}.encoder.key`, encDims], [v, `present.${i}.encoder.value`, encDims]);
    return [k, v];
  };

  let logits: string;
  if (model instanceof T5ForConditionalGeneration) {
    const cfg = model.config, dec = model.decoder;
    let x = embedding(g, dec.embed_tokens, 'shared', ids);
    const { rel, bias } = t5PositionBias(g, dec.block[0]!.layer[0].SelfAttention, 'decoder.block.0.layer.0.SelfAttention', cfg, pastLen, dimOf(g, ids, 1), false);
    // Causal: a query sees the keys at or before its position (rel <= 0); the others get finfo.min.
    const selfBias = g.op('Where', [g.op('LessOrEqual', [rel, g.constInt64(0)]), bias, g.constFloat(MASKED)]);
    dec.block.forEach((block, i) => {
      const p = `decoder.block.${i}.layer.`, sa = block.layer[0].SelfAttention, ca = block.layer[1].EncDecAttention;
      const h = rmsNorm(g, block.layer[0].layer_norm, `${p}0.layer_norm`, x);
      const proj = (m: Module, path: string, from: string) => heads(g, linear(g, m, path, from), nh, hs);
      const [k, v] = selfKv(i, proj(sa.k, `${p}0.SelfAttention.k`, h), proj(sa.v, `${p}0.SelfAttention.v`, h));
      x = g.op('Add', [x, linear(g, sa.o, `${p}0.SelfAttention.o`, attention(g, proj(sa.q, `${p}0.SelfAttention.q`, h), k, v, { nh, hs, scale: 1, bias: selfBias }))]);
      const h1 = rmsNorm(g, block.layer[1].layer_norm, `${p}1.layer_norm`, x);
      const [ck, cv] = crossKv(i, ca.k, `${p}1.EncDecAttention.k`, ca.v, `${p}1.EncDecAttention.v`);
      x = g.op('Add', [x, linear(g, ca.o, `${p}1.EncDecAttention.o`, attention(g, proj(ca.q, `${p}1.EncDecAttention.q`, h1), ck, cv, { nh, hs, scale: 1, mask: encMask }))]);
      x = g.op('Add', [x, t5FeedForward(g, cfg, block.layer[2].DenseReluDense, `${p}2.DenseReluDense`, rmsNorm(g, block.layer[2].layer_norm, `${p}2.layer_norm`, x))]);
    });
    x = rmsNorm(g, dec.final_layer_norm, 'decoder.final_layer_norm', x);
    // Tied embeddings are N(0, 1)-scale: the decoder output is rescaled before the head (see t5.ts).
    if (cfg.scale_decoder_outputs) x = g.op('Mul', [x, g.constFloat(C ** -0.5)]);
    logits = linear(g, model.lm_head, 'lm_head', x);
  } else {
    const cfg = model.config, dec = model.model.decoder;
    let x = bartEmbed(g, cfg, dec, 'model.decoder', ids, pastLen);
    // Causal: query t (position past + t) sees keys 0 .. past + t. [T, S] bool
    const S = g.op('Add', [pastLen, dimOf(g, ids, 1)]), one = g.constInt64(1);
    const queries = g.op('Unsqueeze', [g.op('Range', [pastLen, S, one]), g.constInt64([1])]);
    const keys = g.op('Unsqueeze', [g.op('Range', [g.constInt64(0), S, one]), g.constInt64([0])]);
    const causal = g.op('LessOrEqual', [keys, queries]);
    const scale = 1 / Math.sqrt(hs);
    dec.layers.forEach((layer, i) => {
      const p = `model.decoder.layers.${i}`, sa = layer.self_attn, ca = layer.encoder_attn;
      const proj = (m: Module, path: string, from: string) => heads(g, linear(g, m, path, from), nh, hs);
      const [k, v] = selfKv(i, proj(sa.k_proj, `${p}.self_attn.k_proj`, x), proj(sa.v_proj, `${p}.self_attn.v_proj`, x));
      const y = attention(g, proj(sa.q_proj, `${p}.self_attn.q_proj`, x), k, v, { nh, hs, scale, mask: causal });
      let h = layerNorm(g, layer.self_attn_layer_norm, `${p}.self_attn_layer_norm`, g.op('Add', [x, linear(g, sa.out_proj, `${p}.self_attn.out_proj`, y)]));
      const [ck, cv] = crossKv(i, ca.k_proj, `${p}.encoder_attn.k_proj`, ca.v_proj, `${p}.encoder_attn.v_proj`);
      const c = attention(g, proj(ca.q_proj, `${p}.encoder_attn.q_proj`, h), ck, cv, { nh, hs, scale, mask: encMask });
      h = layerNorm(g, layer.encoder_attn_layer_norm, `${p}.encoder_attn_layer_norm`, g.op('Add', [h, linear(g, ca.out_proj, `${p}.encoder_attn.out_proj`, c)]));
      const f = linear(g, layer.fc2, `${p}.fc2`, g.activation(linear(g, layer.fc1, `${p}.fc1`, h), cfg.activation_function, p));
      x = layerNorm(g, layer.final_layer_norm, `${p}.final_layer_norm`, g.op('Add', [h, f]));
    });
    logits = g.op('Add', [linear(g, model.lm_head, 'lm_head', x), g.weight('final_logits_bias', model.final_logits_bias)]);
  }
  g.output(logits, 'logits', 'float32', [B, T, V]);
  for (const [value, name, dims] of presents) g.output(value, name, 'float32', dims);
  return g;
}

// ---- files ----

/** The graphs of Optimum's layout, by file name (decoder_with_past_model.onnx unless withPast is false). */
export function seq2seqGraphs(model: Module, opts: Seq2SeqExportOptions = {}): Record<string, OnnxGraph> {
  if (!isSeq2SeqModel(model)) throw new Error(`ONNX export: model ${model.constructor.name} is not an encoder-decoder (supported: ${SEQ2SEQ_MODELS.join(', ')})`);
  const graphs: Record<string, OnnxGraph> = { 'encoder_model.onnx': encoderGraph(model, opts), 'decoder_model.onnx': decoderGraph(model, opts, false) };
  if (opts.withPast !== false) graphs['decoder_with_past_model.onnx'] = decoderGraph(model, opts, true);
  return graphs;
}

/** One written file, as writeGraph (or export.ts's writer, with external data) reports it. */
export interface WrittenFile { path: string; bytes: number; inputs: string[]; outputs: string[] }

/**
 * Writes encoder_model.onnx, decoder_model.onnx and decoder_with_past_model.onnx into the folder `dir` (made if
 * missing). Returns the folder as `path`, the bytes of all files, every file's input and output names (each once, in
 * file order), and each file's report in `files`. `write` writes one graph (default: inline weights).
 */
export async function exportSeq2SeqOnnx(model: Module, dir: string, opts: Seq2SeqExportOptions = {}, write: (g: OnnxGraph, path: string) => Promise<WrittenFile> = writeGraph): Promise<WrittenFile & { files: WrittenFile[] }> {
  const graphs = seq2seqGraphs(model, opts);
  await mkdir(dir, { recursive: true });
  const files: WrittenFile[] = [];
  for (const [name, g] of Object.entries(graphs)) files.push(await write(g, join(dir, name)));
  const names = (pick: (f: WrittenFile) => string[]): string[] => [...new Set(files.flatMap(pick))];
  return { path: dir, bytes: files.reduce((a, f) => a + f.bytes, 0), inputs: names((f) => f.inputs), outputs: names((f) => f.outputs), files };
}

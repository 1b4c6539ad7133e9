// ONNX graphs of our decoder-only language models (GPT-2; LLaMA, Mistral, Qwen2, Gemma), with HF Optimum's input / output names.
//
// Inputs: input_ids [batch_size, sequence_length] int64, attention_mask [batch_size, past_sequence_length +
// sequence_length] int64 (1 = attend), position_ids [batch_size, sequence_length] int64, and withPast:
// past_key_values.{i}.key / .value [batch_size, num_kv_heads, past_sequence_length, head_dim] float32 (empty on the
// first step). Outputs: logits [batch_size, sequence_length, vocab], and withPast present.{i}.key / .value (past and
// the new keys / values: feed them back as the next step's past). The graph computes what the model's forward does
// in eval mode (no dropout), in float32; attention is spelled out in primitives (MatMul, Softmax) so that any ONNX
// runtime runs it. Fully masked rows (left padding) get a uniform distribution, as transformers' finfo.min mask does.

import { Embedding } from '../nn/embedding.js';
import { LayerNorm, RMSNorm } from '../nn/normalization.js';
import { Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { GemmaForCausalLM, GemmaRMSNorm } from '../models/gemma.js';
import { Conv1D, GPT2LMHeadModel } from '../models/gpt2.js';
import { LlamaForCausalLM, ropeInverseFrequencies } from '../models/llama.js';
import { MistralForCausalLM } from '../models/mistral.js';
import { Qwen2ForCausalLM } from '../models/qwen2.js';
import { OnnxGraph, type Dim } from './graph.js';

export interface DecoderExportOptions {
  opset?: number;
  /**
   * true (default): batch_size, sequence_length and past_sequence_length are dynamic (named) dims. An object fixes
   * the ones it names ({ batch_size: 1 }); the others stay dynamic.
   */
  dynamicAxes?: boolean | Readonly<Record<string, number>>;
  /** Past key / value inputs and present outputs (a decoder for a generation loop). Default false. */
  withPast?: boolean;
}

/** The most negative float32: what masked scores become (transformers' torch.finfo(float32).min). */
const MASKED = -3.4028234663852886e38;

// ---- checks: only the modules the graph spells out are exported; anything else names itself ----

function expectModule<T extends Module>(m: Module, cls: abstract new (...args: never[]) => T, path: string, what: string): T {
  if (m.constructor !== cls) {
    throw new Error(`ONNX export: unsupported op in module ${path}: a ${m.constructor.name} where the exporter expects ${what} (${cls.name}); ` +
      'merge LoRA adapters and dequantize before exporting');
  }
  return m as T;
}

// ---- the parts every decoder shares ----

interface Io {
  ids: string;
  mask: string;
  pos: string;
  /** Per layer, the past key and value inputs (withPast). */
  past: [string, string][] | null;
  dim: (name: string) => Dim;
}

function dims(opts: DecoderExportOptions): (name: string) => Dim {
  const fixed = typeof opts.dynamicAxes === 'object' ? opts.dynamicAxes : null;
  if (opts.dynamicAxes === false) throw new Error('ONNX export: dynamicAxes false needs fixed sizes: pass { batch_size: 1, sequence_length: 8, ... } instead');
  for (const [k, v] of Object.entries(fixed ?? {})) {
    if (!['batch_size', 'sequence_length', 'past_sequence_length'].includes(k)) throw new Error(`ONNX export: dynamicAxes names an unknown axis '${k}' (batch_size, sequence_length, past_sequence_length)`);
    if (!Number.isInteger(v) || v < 0) throw new Error(`ONNX export: dynamicAxes.${k} must be a non-negative integer, got ${v}`);
  }
  return (name) => {
    if (name.includes(' + ')) {
      const parts = name.split(' + ').map((p) => fixed?.[p]);
      return parts.every((p) => p !== undefined) ? parts.reduce((a, b) => a! + b!, 0)! : name;
    }
    return fixed?.[name] ?? name;
  };
}

function inputs(g: OnnxGraph, opts: DecoderExportOptions, layers: number, nKv: number, hs: number): Io {
  const dim = dims(opts);
  const B = dim('batch_size'), T = dim('sequence_length');
  const ids = g.input('input_ids', 'int64', [B, T]);
  const mask = g.input('attention_mask', 'int64', [B, dim(opts.withPast ? 'past_sequence_length + sequence_length' : 'sequence_length')]);
  const pos = g.input('position_ids', 'int64', [B, T]);
  const past = opts.withPast
    ? Array.from({ length: layers }, (_, i): [string, string] => [
        g.input(`past_key_values.${i}.key`, 'float32', [B, nKv, dim('past_sequence_length'), hs]),
        g.input(`past_key_values.${i}.value`, 'float32', [B, nKv, dim('past_sequence_length'), hs]),
      ])
    : null;
  return { ids, mask, pos, past, dim };
}

/**
 * The boolean attention mask [B, 1, T, S] (true = may attend): the padding mask and-ed with the causal one (query t
 * sits at position past + t, past = S - T) and, with a window w, with past + t - s < w.
 */
function attendMask(g: OnnxGraph, io: Io, window: number | null, cache: Map<number | null, string>): string {
  const have = cache.get(window);
  if (have) return have;
  const T = g.op('Gather', [g.op('Shape', [io.ids]), g.constInt64(1)], { axis: 0 });
  const S = g.op('Gather', [g.op('Shape', [io.mask]), g.constInt64(1)], { axis: 0 });
  const one = g.constInt64(1), zero = g.constInt64(0);
  const rows = g.op('Unsqueeze', [g.op('Range', [g.op('Sub', [S, T]), S, one]), g.constInt64([1])]); // [T, 1]: query positions
  const cols = g.op('Unsqueeze', [g.op('Range', [zero, S, one]), g.constInt64([0])]); // [1, S]: key positions
  let allowed = g.op('LessOrEqual', [cols, rows]); // [T, S]
  if (window !== null) allowed = g.op('And', [allowed, g.op('Less', [g.op('Sub', [rows, cols]), g.constInt64(window)])]);
  const pad = g.op('Unsqueeze', [g.op('Cast', [io.mask], { to: 9 /* BOOL */ }), g.constInt64([1, 2])]); // [B, 1, 1, S]
  const m = g.op('And', [pad, allowed]); // [B, 1, T, S]
  cache.set(window, m);
  return m;
}

/** [B, T, n * hs] -> [B, n, T, hs] */
function heads(g: OnnxGraph, x: string, n: number, hs: number): string {
  return g.op('Transpose', [g.op('Reshape', [x, g.constInt64([0, 0, n, hs])])], { perm: [0, 2, 1, 3] });
}

/**
 * softmax(q k^T * scale, masked) v for q [B, nh, T, hs], k / v [B, nkv, S, hs]; returns [B, T, nh * hs]. With fewer
 * kv heads, q is viewed as [B, nkv, nh / nkv, T, hs] and k / v broadcast over the middle axis: no copies of k / v.
 */
function attention(g: OnnxGraph, q: string, k: string, v: string, mask: string, nh: number, nKv: number, hs: number, scale: number): string {
  const rep = nh / nKv;
  const core = (qq: string, kk: string, vv: string, mm: string, transposePerm: number[]): string => {
    const scores = g.op('Mul', [g.op('MatMul', [qq, g.op('Transpose', [kk], { perm: transposePerm })]), g.constFloat(scale)]);
    const probs = g.op('Softmax', [g.op('Where', [mm, scores, g.constFloat(MASKED)])], { axis: -1 });
    return g.op('MatMul', [probs, vv]);
  };
  const grouped = (): string => {
    const q5 = g.op('Reshape', [q, g.constInt64([0, nKv, rep, -1, hs])]); // [B, nkv, rep, T, hs]
    const ax = g.constInt64([2]);
    const k5 = g.op('Unsqueeze', [k, ax]), v5 = g.op('Unsqueeze', [v, ax]); // [B, nkv, 1, S, hs]
    const m5 = g.op('Unsqueeze', [mask, g.constInt64([1])]); // [B, 1, 1, T, S]
    return g.op('Reshape', [core(q5, k5, v5, m5, [0, 1, 2, 4, 3]), g.constInt64([0, nh, -1, hs])]); // [B, nh, T, hs]
  };
  const y = rep === 1 ? core(q, k, v, mask, [0, 1, 3, 2]) : grouped(); // [B, nh, T, hs]
  // [B, nh, T, hs] -> [B, T, nh * hs]
  return g.op('Reshape', [g.op('Transpose', [y], { perm: [0, 2, 1, 3] }), g.constInt64([0, 0, nh * hs])]);
}

/** k, v with the past prepended (withPast), declared as present.{i}.key / .value. */
function withCache(g: OnnxGraph, io: Io, i: number, k: string, v: string, nKv: number, hs: number): [string, string] {
  if (!io.past) return [k, v];
  const [pk, pv] = io.past[i]!;
  const S = io.dim('past_sequence_length + sequence_length'), B = io.dim('batch_size');
  const kk = g.op('Concat', [pk, k], { axis: 2 }, { output: `present.${i}.key` });
  const vv = g.op('Concat', [pv, v], { axis: 2 }, { output: `present.${i}.value` });
  g.output(kk, kk, 'float32', [B, nKv, S, hs]);
  g.output(vv, vv, 'float32', [B, nKv, S, hs]);
  return [kk, vv];
}

/** logits = x W^T for the head's W [V, C] as stored (the tied embedding is not copied): Gemm on [B * T, C]. */
function lmHead(g: OnnxGraph, io: Io, x: string, w: Tensor, C: number, V: number): void {
  const flat = g.op('Reshape', [x, g.constInt64([-1, C])]);
  const logits2d = g.op('Gemm', [flat, g.weight('lm_head.weight', w)], { transB: 1 });
  const bt = g.op('Shape', [io.ids]); // [B, T]
  const logits = g.op('Reshape', [logits2d, g.op('Concat', [bt, g.constInt64([V])], { axis: 0 })], {}, { output: 'logits' });
  g.output(logits, 'logits', 'float32', [io.dim('batch_size'), io.dim('sequence_length'), V]);
}

// ---- GPT-2 ----

export function gpt2Graph(model: GPT2LMHeadModel, opts: DecoderExportOptions = {}): OnnxGraph {
  const cfg = model.config, C = cfg.n_embd, nh = cfg.n_head, hs = C / nh;
  const g = new OnnxGraph('gpt2', { opset: opts.opset });
  const io = inputs(g, opts, cfg.n_layer, nh, hs);
  const tr = model.transformer;
  const wte = expectModule(tr.wte, Embedding, 'transformer.wte', 'an embedding table');
  const wpe = expectModule(tr.wpe, Embedding, 'transformer.wpe', 'an embedding table');
  let x = g.op('Add', [g.op('Gather', [g.weight('transformer.wte.weight', wte.weight), io.ids], { axis: 0 }), g.op('Gather', [g.weight('transformer.wpe.weight', wpe.weight), io.pos], { axis: 0 })]);
  const masks = new Map<number | null, string>();
  const eps = cfg.layer_norm_epsilon ?? 1e-5;
  const ln = (m: LayerNorm, path: string, h: string): string => g.layerNorm(h, expectModule(m, LayerNorm, path, 'a LayerNorm').weight!, m.bias, eps, path);
  const conv = (m: Conv1D, path: string, h: string): string => g.matmulAdd(h, expectModule(m, Conv1D, path, 'a Conv1D').weight, m.bias, path);
  tr.h.forEach((block, i) => {
    const p = `transformer.h.${i}`;
    const qkv = conv(block.attn.c_attn, `${p}.attn.c_attn`, ln(block.ln_1, `${p}.ln_1`, x)); // [B, T, 3C]
    const [q, k0, v0] = g.node('Split', [qkv, g.constInt64([C, C, C])], { axis: 2 }, { outputs: 3 }).map((t) => heads(g, t, nh, hs)) as [string, string, string];
    const [k, v] = withCache(g, io, i, k0, v0, nh, hs);
    const scale = cfg.scale_attn_weights ?? true ? 1 / Math.sqrt(hs) : 1;
    const a = conv(block.attn.c_proj, `${p}.attn.c_proj`, attention(g, q, k, v, attendMask(g, io, null, masks), nh, nh, hs, scale));
    const h = g.op('Add', [x, a]);
    const act = g.activation(conv(block.mlp.c_fc, `${p}.mlp.c_fc`, ln(block.ln_2, `${p}.ln_2`, h)), cfg.activation_function ?? 'gelu_new', `${p}.mlp`);
    x = g.op('Add', [h, conv(block.mlp.c_proj, `${p}.mlp.c_proj`, act)]);
  });
  x = ln(tr.ln_f, 'transformer.ln_f', x);
  lmHead(g, io, x, expectModule(model.lm_head, Linear, 'lm_head', 'a Linear').weight, C, cfg.vocab_size);
  return g;
}

// ---- LLaMA, Mistral, Qwen2, Gemma ----

/** The decoder's name and what its variant changes, read from the class and its config. */
function llamaFamily(model: LlamaForCausalLM): { name: string; windows: (number | null)[]; gemma: boolean } {
  const L = model.config.num_hidden_layers;
  if (model instanceof MistralForCausalLM) return { name: 'mistral', windows: Array<number | null>(L).fill(model.config.sliding_window), gemma: false };
  if (model instanceof Qwen2ForCausalLM) {
    const c = model.config;
    return { name: 'qwen2', windows: c.layer_types.map((t) => (t === 'sliding_attention' ? c.sliding_window : null)), gemma: false };
  }
  if (model instanceof GemmaForCausalLM) return { name: 'gemma', windows: Array<number | null>(L).fill(null), gemma: true };
  if (model.constructor !== LlamaForCausalLM) throw new Error(`ONNX export: unsupported model ${model.constructor.name} (a LlamaForCausalLM subclass the exporter does not know)`);
  return { name: 'llama', windows: Array<number | null>(L).fill(null), gemma: false };
}

export async function llamaGraph(model: LlamaForCausalLM, opts: DecoderExportOptions = {}): Promise<OnnxGraph> {
  const cfg = model.config, C = cfg.hidden_size, nh = cfg.num_attention_heads, nKv = cfg.num_key_value_heads, hs = cfg.head_dim;
  const fam = llamaFamily(model);
  const g = new OnnxGraph(fam.name, { opset: opts.opset });
  const io = inputs(g, opts, cfg.num_hidden_layers, nKv, hs);
  const m = model.model;

  // RMSNorm: x / sqrt(mean(x^2) + eps) * w; Gemma's scale is (1 + w), folded into the stored weight.
  const rms = async (norm: RMSNorm, path: string, x: string): Promise<string> => {
    expectModule(norm, fam.gemma ? GemmaRMSNorm : RMSNorm, path, 'an RMSNorm');
    let w: string;
    if (fam.gemma) {
      const data = Float32Array.from(await norm.weight!.data(), (v) => v + 1);
      w = g.initializer(`${path}.weight_plus_1`, 'float32', [...norm.weight!.shape], data);
    } else {
      w = g.weight(`${path}.weight`, norm.weight!);
    }
    const ms = g.reduceMean(g.op('Mul', [x, x]), [-1]);
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constFloat(norm.eps ?? 1.1920928955078125e-7)])])]);
    return g.op('Mul', [g.op('Mul', [x, inv]), w]);
  };
  const lin = (mod: Linear, path: string, x: string): string => {
    const l = expectModule(mod, Linear, path, 'a Linear');
    return g.linear(x, l.weight, l.bias, path);
  };

  const embed = expectModule(m.embed_tokens, Embedding, 'model.embed_tokens', 'an embedding table');
  let x = g.op('Gather', [g.weight('model.embed_tokens.weight', embed.weight), io.ids], { axis: 0 });
  if (fam.gemma) x = g.op('Mul', [x, g.constFloat(Math.fround(Math.sqrt(C)))]);

  // Rotary embedding: angles [B, T, hs / 2] = positions * inverse frequencies; both halves of a head share them.
  const inv = g.initializer('rotary_emb.inv_freq', 'float32', [hs / 2], ropeInverseFrequencies(cfg.rope_parameters, hs));
  const freqs = g.op('Mul', [g.op('Unsqueeze', [g.op('Cast', [io.pos], { to: 1 /* FLOAT */ }), g.constInt64([2])]), inv]);
  const emb = g.op('Concat', [freqs, freqs], { axis: -1 }); // [B, T, hs]
  const cosT = g.op('Unsqueeze', [g.op('Cos', [emb]), g.constInt64([1])]); // [B, 1, T, hs]
  const sinT = g.op('Unsqueeze', [g.op('Sin', [emb]), g.constInt64([1])]);
  const half = hs / 2, ax3 = g.constInt64([3]);
  const rotary = (t: string): string => {
    // x cos + rotate_half(x) sin, rotate_half([x1, x2]) = [-x2, x1]
    const x1 = g.op('Slice', [t, g.constInt64([0]), g.constInt64([half]), ax3]);
    const x2 = g.op('Slice', [t, g.constInt64([half]), g.constInt64([hs]), ax3]);
    const rot = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: -1 });
    return g.op('Add', [g.op('Mul', [t, cosT]), g.op('Mul', [rot, sinT])]);
  };

  const masks = new Map<number | null, string>();
  for (let i = 0; i < m.layers.length; i++) {
    const layer = m.layers[i]!, p = `model.layers.${i}`, att = layer.self_attn;
    const h0 = await rms(layer.input_layernorm, `${p}.input_layernorm`, x);
    const q = rotary(heads(g, lin(att.q_proj, `${p}.self_attn.q_proj`, h0), nh, hs));
    const k0 = rotary(heads(g, lin(att.k_proj, `${p}.self_attn.k_proj`, h0), nKv, hs));
    const v0 = heads(g, lin(att.v_proj, `${p}.self_attn.v_proj`, h0), nKv, hs);
    const [k, v] = withCache(g, io, i, k0, v0, nKv, hs);
    const y = attention(g, q, k, v, attendMask(g, io, fam.windows[i] ?? null, masks), nh, nKv, hs, 1 / Math.sqrt(hs));
    const h = g.op('Add', [x, lin(att.o_proj, `${p}.self_attn.o_proj`, y)]);
    const h1 = await rms(layer.post_attention_layernorm, `${p}.post_attention_layernorm`, h);
    const gate = g.activation(lin(layer.mlp.gate_proj, `${p}.mlp.gate_proj`, h1), cfg.hidden_act, `${p}.mlp`);
    x = g.op('Add', [h, lin(layer.mlp.down_proj, `${p}.mlp.down_proj`, g.op('Mul', [gate, lin(layer.mlp.up_proj, `${p}.mlp.up_proj`, h1)]))]);
  }
  x = await rms(m.norm, 'model.norm', x);
  lmHead(g, io, x, expectModule(model.lm_head, Linear, 'lm_head', 'a Linear').weight, C, cfg.vocab_size);
  return g;
}

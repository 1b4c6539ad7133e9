// LLaMA-family GGUF files (llama, mistral, qwen2) to our LlamaForCausalLM and back, the tokenizer in the metadata included.
//
// References: llama.cpp convert_hf_to_gguf.py (LlamaModel: tensor names, metadata keys, the q/k row permutation;
// Qwen2Model) and gguf-py constants.py (MODEL_TENSOR names, LlamaFileType). llama.cpp rotates adjacent channel pairs
// (2i, 2i + 1) where transformers rotates (i, i + hs/2), so its converter reorders the rows of q_proj and k_proj within
// each head: GGUF row 2j + t of a head is Hugging Face row t * hs/2 + j. qwen2 keeps Hugging Face's order (NEOX rope).

import { readGgufHeader, readGgufTensorBytes, checkReadableType, decodeGgufTensor, encodeGgufTensor, gguf, serializeGguf, saveGguf, type GgufHeader, type GgufKV, type GgufTensorData, type GgufTensorType } from '../io/gguf.js';
import { dequantizeValues, type QuantType } from '../quant/formats.js';
import { QuantEmbedding, QuantLinear } from '../quant/quant-linear.js';
import { tensor } from '../tensor/create.js';
import type { FloatDType } from '../tensor/dtype.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { tokenizerFromGguf, tokenizerToGguf } from '../tokenizers/gguf.js';
import type { JsonObject } from '../tokenizers/json.js';
import { ConfigReader } from './base.js';
import { LlamaForCausalLM, llamaConfig, llamaWeights, type LlamaConfig } from './llama.js';

export const GGUF_ARCHITECTURES = ['llama', 'mistral', 'qwen2'] as const;
export type GgufArchitecture = (typeof GGUF_ARCHITECTURES)[number];
export type GgufFileType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0';

/** llama.cpp's LlamaFileType ("general.file_type") and the tensor type of the 2-d weights for each. */
const FILE_TYPES: Record<GgufFileType, [number, GgufTensorType]> = { f32: [0, 'F32'], f16: [1, 'F16'], q4_0: [2, 'Q4_0'], q8_0: [7, 'Q8_0'], bf16: [32, 'BF16'] };

/** Hugging Face parameter name -> GGUF tensor name (null: not a LLaMA weight). */
export function ggufTensorName(hf: string): string | null {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  if (!m) return null;
  const part: Record<string, string> = {
    'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
    'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down', input_layernorm: 'attn_norm', post_attention_layernorm: 'ffn_norm',
  };
  const p = part[m[2]!];
  return p ? `blk.${m[1]}.${p}.${m[3]}` : null;
}

/**
 * Reorders the rows of a q/k projection (weight or bias) between Hugging Face's and llama.cpp's rotary layouts, rows
 * of `rowBytes` bytes each (the whole quantized row for Q8_0 / Q4_0: blocks never cross rows). `toGguf` = forward.
 */
export function permuteRotaryRows(bytes: Uint8Array, heads: number, rowBytes: number, toGguf: boolean): Uint8Array {
  const rows = bytes.byteLength / rowBytes, hs = rows / heads, half = hs / 2;
  const out = new Uint8Array(bytes.byteLength);
  for (let h = 0; h < heads; h++) {
    for (let t = 0; t < 2; t++) {
      for (let j = 0; j < half; j++) {
        const hf = h * hs + t * half + j, gg = h * hs + 2 * j + t; // [nh, 2, hs/2] <-> [nh, hs/2, 2]
        const [from, to] = toGguf ? [hf, gg] : [gg, hf];
        out.set(bytes.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
      }
    }
  }
  return out;
}

/** The heads whose rows a tensor's rotary permutation groups (q: attention heads, k: kv heads), or null. */
function rotaryHeads(name: string, cfg: LlamaConfig, arch: GgufArchitecture): number | null {
  if (arch === 'qwen2') return null;
  if (/\.attn_q\.(weight|bias)$/.test(name)) return cfg.num_attention_heads;
  if (/\.attn_k\.(weight|bias)$/.test(name)) return cfg.num_key_value_heads;
  return null;
}

// ---- reading ----

/** A metadata value that must be a positive integer, by its GGUF key. */
function metaInt(h: GgufHeader, key: string, source: string, dflt?: number): number {
  const v = h.metadata[key]?.value ?? dflt;
  if (v === undefined) throw new Error(`${source}: missing metadata key "${key}"`);
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new Error(`${source}: metadata "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * A positive number by its GGUF key. float32 values come back as the shortest decimal that rounds to them (1e-6, not
 * 9.99999997e-7), the value the writer was given, so that a model read back computes exactly as the original.
 */
function metaNum(h: GgufHeader, key: string, source: string, dflt?: number): number {
  const kv = h.metadata[key];
  const v = kv?.value ?? dflt;
  if (v === undefined) throw new Error(`${source}: missing metadata key "${key}"`);
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`${source}: metadata "${key}" must be a positive number, got ${JSON.stringify(v)}`);
  if (kv?.type !== 'float32') return v;
  for (let digits = 1; digits < 10; digits++) {
    const d = Number(v.toPrecision(digits));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

export interface GgufLlamaPlan {
  architecture: GgufArchitecture;
  config: LlamaConfig;
  /** GGUF tensor name -> our parameter name. */
  names: Map<string, string>;
}

/**
 * Checks a GGUF header as a LLaMA-family model without reading any tensor data: architecture, metadata keys, every
 * expected tensor present with the shape the metadata implies and a type attend reads, nothing unexpected.
 */
export function planGgufLlama(h: GgufHeader, source: string): GgufLlamaPlan {
  const archKv = h.metadata['general.architecture'];
  if (archKv === undefined) throw new Error(`${source}: missing metadata key "general.architecture"`);
  const arch = archKv.value;
  if (typeof arch !== 'string' || !(GGUF_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new Error(`${source}: unknown architecture ${JSON.stringify(arch)} in "general.architecture" (supported: ${GGUF_ARCHITECTURES.join(', ')})`);
  }
  const a = arch as GgufArchitecture;
  const hidden = metaInt(h, `${a}.embedding_length`, source), heads = metaInt(h, `${a}.attention.head_count`, source);
  const embd = h.tensors.find((t) => t.name === 'token_embd.weight');
  const tokens = h.metadata['tokenizer.ggml.tokens']?.value;
  const vocab = h.metadata[`${a}.vocab_size`] ? metaInt(h, `${a}.vocab_size`, source) : Array.isArray(tokens) ? tokens.length : embd?.shape[0];
  if (vocab === undefined) throw new Error(`${source}: missing metadata key "${a}.vocab_size" (and no tokenizer.ggml.tokens or token_embd.weight to count)`);
  const keyLength = h.metadata[`${a}.attention.key_length`] ? metaInt(h, `${a}.attention.key_length`, source) : undefined;
  const hasBias = h.tensors.some((t) => /\.attn_[qkv]\.bias$/.test(t.name));
  const json: Record<string, unknown> = {
    vocab_size: vocab, hidden_size: hidden, intermediate_size: metaInt(h, `${a}.feed_forward_length`, source),
    num_hidden_layers: metaInt(h, `${a}.block_count`, source), num_attention_heads: heads,
    num_key_value_heads: metaInt(h, `${a}.attention.head_count_kv`, source, heads), head_dim: keyLength ?? hidden / heads,
    max_position_embeddings: metaInt(h, `${a}.context_length`, source), rms_norm_eps: metaNum(h, `${a}.attention.layer_norm_rms_epsilon`, source),
    rope_theta: metaNum(h, `${a}.rope.freq_base`, source, 10000), hidden_act: 'silu', attention_bias: hasBias,
    tie_word_embeddings: !h.tensors.some((t) => t.name === 'output.weight'),
  };
  const scaling = h.metadata[`${a}.rope.scaling.type`]?.value;
  if (scaling === 'linear') json['rope_scaling'] = { rope_type: 'linear', factor: metaNum(h, `${a}.rope.scaling.factor`, source) };
  else if (scaling !== undefined && scaling !== 'none') throw new Error(`${source}: metadata "${a}.rope.scaling.type" is ${JSON.stringify(scaling)}; attend reads 'none' and 'linear'`);
  const config = llamaConfig(new ConfigReader(json, `${source} (GGUF metadata as config)`));
  const spec = llamaWeights(config);
  const names = new Map<string, string>();
  for (const hf of Object.keys(spec.shapes)) {
    // qwen2 has biases on q, k and v only: o_proj's stays zero.
    if (a === 'qwen2' && hf.endsWith('o_proj.bias')) continue;
    if (config.tie_word_embeddings && hf === 'lm_head.weight') continue;
    names.set(ggufTensorName(hf)!, hf);
  }
  const found = new Map(h.tensors.map((t) => [t.name, t]));
  for (const [g, hf] of names) {
    const t = found.get(g);
    if (!t) throw new Error(`${source}: missing tensor ${g} (expected for ${hf} from the metadata)`);
    const want = spec.shapes[hf]!;
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new Error(`${source}: tensor ${g} has shape ${fmtShape(t.shape)}, the metadata says ${fmtShape(want)} (${a}.embedding_length, feed_forward_length, attention.head_count(_kv), vocab)`);
    }
    checkReadableType(t, source);
  }
  const unexpected = h.tensors.filter((t) => !names.has(t.name)).map((t) => t.name);
  if (unexpected.length) throw new Error(`${source}: unexpected tensors ${unexpected.slice(0, 8).join(', ')} (not part of a ${a} model attend builds)`);
  return { architecture: a, config, names };
}

export interface LoadGgufOptions {
  /** Keep Q8_0 / Q4_0 tensors quantized (QuantLinear / QuantEmbedding; default) or dequantize them to `dtype`. */
  dequantize?: boolean;
  /** dtype of the floating parameters (default float32). */
  dtype?: FloatDType;
  device?: string;
}

export interface GgufLlama {
  model: LlamaForCausalLM;
  /** The tokenizer from the metadata, or null when the file has none. */
  tokenizer: Tokenizer | null;
  header: GgufHeader;
  architecture: GgufArchitecture;
}

const QUANT_OF: Partial<Record<string, QuantType>> = { Q8_0: 'q8_0', Q4_0: 'q4_0' };

/** Reads a LLaMA-family GGUF file: every check on the header first, then the tensors one at a time. */
export async function loadGgufLlama(path: string, opts: LoadGgufOptions = {}): Promise<GgufLlama> {
  const header = await readGgufHeader(path);
  const plan = planGgufLlama(header, path);
  const tokenizer = header.metadata['tokenizer.ggml.model'] ? tokenizerOf(header, path) : null;
  const { config, names, architecture } = plan;
  const model = new LlamaForCausalLM(config);
  const infos = new Map(header.tensors.map((t) => [t.name, t]));
  const modules = new Map(model.namedModules());
  const state: Record<string, Tensor> = {};
  const sharedQuant = new Map<string, QuantLinear['weight']>();
  for (const [g, hf] of names) {
    const info = infos.get(g)!;
    let bytes = await readGgufTensorBytes(path, info);
    const heads = rotaryHeads(g, config, architecture);
    if (heads !== null) bytes = permuteRotaryRows(bytes, heads, info.nbytes / info.shape[0]!, false);
    const q = QUANT_OF[info.type];
    const owner = hf.slice(0, hf.lastIndexOf('.'));
    const mod = modules.get(owner);
    if (q && !opts.dequantize && (mod instanceof Linear || mod instanceof Embedding)) {
      const weight = { type: q, shape: info.shape, data: bytes };
      sharedQuant.set(hf, weight);
      replaceModule(model, owner, mod instanceof Embedding ? new QuantEmbedding(weight) : new QuantLinear(weight, mod.bias));
      continue;
    }
    state[hf] = tensor(decodeGgufTensor(info, bytes, path), { shape: info.shape });
  }
  // Tied output: a quantized token_embd serves lm_head too.
  const tiedQuant = config.tie_word_embeddings ? sharedQuant.get('model.embed_tokens.weight') : undefined;
  if (tiedQuant) replaceModule(model, 'lm_head', new QuantLinear(tiedQuant));
  if (opts.dtype && opts.dtype !== 'float32') model.to(opts.dtype);
  // Every tensor was matched by name and shape in planGgufLlama; what the file lacks is a zero bias or a tied lm_head.
  model.loadStateDict(state, { strict: false });
  for (const t of Object.values(state)) t.dispose();
  const id = (key: string): number | undefined => {
    const v = header.metadata[key]?.value;
    return typeof v === 'number' ? v : undefined;
  };
  model.generationConfig = { bosTokenId: id('tokenizer.ggml.bos_token_id'), eosTokenId: id('tokenizer.ggml.eos_token_id'), padTokenId: id('tokenizer.ggml.padding_token_id') };
  if (opts.device) model.to(opts.device);
  return { model: model.eval(), tokenizer, header, architecture };
}

function tokenizerOf(header: GgufHeader, source: string): Tokenizer {
  const { json, config } = tokenizerFromGguf(header.metadata, source);
  return Tokenizer.fromJSON(json, config, `${source} (tokenizer.ggml.*)`);
}

/** Puts `replacement` where the module named `name` (dotted) sits. */
function replaceModule(model: LlamaForCausalLM, name: string, replacement: QuantLinear | QuantEmbedding): void {
  const parts = name.split('.');
  let owner: Record<string, unknown> = model as unknown as Record<string, unknown>;
  for (const p of parts.slice(0, -1)) owner = owner[p] as Record<string, unknown>;
  owner[parts[parts.length - 1]!] = replacement;
}

// ---- writing ----

export interface LlamaToGgufOptions {
  type?: GgufFileType;
  /** general.architecture and the metadata key prefix (default 'llama'; qwen2 keeps rotary rows unpermuted). */
  architecture?: GgufArchitecture;
  name?: string;
  /** A tokenizer.json to store as tokenizer.ggml.* (BPE: SentencePiece-style or byte-level). */
  tokenizer?: JsonObject;
}

/** Values of a weight, whether a Linear / Embedding parameter or a quantized layer's blocks. */
async function weightValues(m: unknown, hf: string, state: Record<string, Tensor>): Promise<Float32Array> {
  if (m instanceof QuantLinear || m instanceof QuantEmbedding) return dequantizeValues(m.weight);
  const t = state[hf];
  if (!t) throw new Error(`GGUF export: the model has no ${hf}`);
  return Float32Array.from(await t.data());
}

/** The metadata and tensors of a GGUF file for `model` (llama.cpp's names, key types and q/k row order). */
export async function llamaToGguf(model: LlamaForCausalLM, opts: LlamaToGgufOptions = {}): Promise<{ metadata: Record<string, GgufKV>; tensors: GgufTensorData[] }> {
  const cfg = model.config, a = opts.architecture ?? 'llama', ftype = opts.type ?? 'f32';
  if (!FILE_TYPES[ftype]) throw new Error(`GGUF export: unknown type ${JSON.stringify(ftype)} (known: ${Object.keys(FILE_TYPES).join(', ')})`);
  if (cfg.hidden_act !== 'silu') throw new Error(`GGUF export: llama.cpp's ${a} uses silu; this model's hidden_act is ${cfg.hidden_act}`);
  // Mistral's window, Qwen2's biases and Gemma's norm are not written (yet): refuse rather than write a plain LLaMA.
  if (model.constructor !== LlamaForCausalLM) throw new Error(`GGUF export: writes LlamaForCausalLM models; ${model.constructor.name} is not supported yet`);
  const rope = cfg.rope_parameters;
  if (rope.rope_type === 'llama3') throw new Error("GGUF export: rope_type 'llama3' (a rope_freqs tensor in llama.cpp) is not written yet");
  const [fileType, matrixType] = FILE_TYPES[ftype];
  const metadata: Record<string, GgufKV> = {
    'general.architecture': gguf.str(a), 'general.name': gguf.str(opts.name ?? 'attend'),
    [`${a}.vocab_size`]: gguf.u32(cfg.vocab_size), [`${a}.context_length`]: gguf.u32(cfg.max_position_embeddings), [`${a}.embedding_length`]: gguf.u32(cfg.hidden_size),
    [`${a}.block_count`]: gguf.u32(cfg.num_hidden_layers), [`${a}.feed_forward_length`]: gguf.u32(cfg.intermediate_size),
    [`${a}.rope.dimension_count`]: gguf.u32(cfg.head_dim), [`${a}.attention.head_count`]: gguf.u32(cfg.num_attention_heads),
    [`${a}.attention.head_count_kv`]: gguf.u32(cfg.num_key_value_heads), [`${a}.rope.freq_base`]: gguf.f32(rope.rope_theta),
    [`${a}.attention.layer_norm_rms_epsilon`]: gguf.f32(cfg.rms_norm_eps),
  };
  if (cfg.head_dim * cfg.num_attention_heads !== cfg.hidden_size) {
    metadata[`${a}.attention.key_length`] = gguf.u32(cfg.head_dim);
    metadata[`${a}.attention.value_length`] = gguf.u32(cfg.head_dim);
  }
  if (rope.rope_type === 'linear') {
    metadata[`${a}.rope.scaling.type`] = gguf.str('linear');
    metadata[`${a}.rope.scaling.factor`] = gguf.f32(rope.factor!);
  }
  metadata['general.file_type'] = gguf.u32(fileType);
  if (ftype === 'q8_0' || ftype === 'q4_0') metadata['general.quantization_version'] = gguf.u32(2);
  if (opts.tokenizer) {
    const gen = model.generationConfig;
    const eos = Array.isArray(gen.eosTokenId) ? gen.eosTokenId[0] : gen.eosTokenId;
    Object.assign(metadata, tokenizerToGguf(opts.tokenizer, { bosTokenId: gen.bosTokenId, eosTokenId: eos, padTokenId: gen.padTokenId }));
  }
  const modules = new Map(model.namedModules());
  const state = model.stateDict();
  const tensors: GgufTensorData[] = [];
  for (const [hf, shape] of Object.entries(llamaWeights(cfg).shapes)) {
    if (hf === 'lm_head.weight' && cfg.tie_word_embeddings) continue;
    const name = ggufTensorName(hf)!;
    const owner = modules.get(hf.slice(0, hf.lastIndexOf('.')));
    // 1-d tensors (norms, biases) stay F32 as llama.cpp keeps them; rows that are not whole blocks fall back to F16.
    const type: GgufTensorType = shape.length === 1 ? 'F32' : (matrixType === 'Q8_0' || matrixType === 'Q4_0') && shape[1]! % 32 !== 0 ? 'F16' : matrixType;
    const reuse = owner instanceof QuantLinear || owner instanceof QuantEmbedding ? owner.weight : null;
    let data = reuse && hf.endsWith('.weight') && reuse.type.toUpperCase() === type ? reuse.data : encodeGgufTensor(await weightValues(hf.endsWith('.weight') ? owner : null, hf, state), type);
    const heads = rotaryHeads(name, cfg, a);
    if (heads !== null) data = permuteRotaryRows(data, heads, data.byteLength / shape[0]!, true);
    tensors.push({ name, shape, type, data });
  }
  return { metadata, tensors };
}

/** Writes `model` as a GGUF v3 file that llama.cpp reads (f32, f16, bf16, q8_0 or q4_0 matrices). */
export async function saveGgufLlama(path: string, model: LlamaForCausalLM, opts: LlamaToGgufOptions = {}): Promise<void> {
  const { metadata, tensors } = await llamaToGguf(model, opts);
  await saveGguf(path, metadata, tensors);
}

/** The GGUF bytes of `model` (browsers). */
export async function serializeGgufLlama(model: LlamaForCausalLM, opts: LlamaToGgufOptions = {}): Promise<Uint8Array> {
  const { metadata, tensors } = await llamaToGguf(model, opts);
  return serializeGguf(metadata, tensors);
}


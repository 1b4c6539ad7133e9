// Gemma: LLaMA with multi-query attention, a GeGLU MLP (tanh-approximated GELU), RMSNorm scaled by (1 + weight), embeddings times sqrt(hidden_size) and a tied lm_head.
//
// Paper: Gemma Team, "Gemma: Open Models Based on Gemini Research and Technology" (2024).
// Reference: transformers/models/gemma/modeling_gemma.py (GemmaForCausalLM, GemmaRMSNorm), configuration_gemma.py.
// Rotary positions, attention with its KV cache and the gated MLP are LLaMA's (llama.ts), configured here.

import { add, cast, mul } from '../autograd/ops/elementwise.js';
import { rmsNorm } from '../autograd/ops/nn.js';
import type { Tensor } from '../tensor/tensor.js';
import { zeros_ } from '../nn/init.js';
import { RMSNorm } from '../nn/normalization.js';
import { ConfigReader, type WeightSpec } from './base.js';
import { LLAMA_ACTIVATIONS, LlamaForCausalLM, llamaConfig, llamaWeights, type LlamaConfig, type LlamaVariant } from './llama.js';

// ---- config (Hugging Face's GemmaConfig field names) ----

export interface GemmaConfig extends LlamaConfig {
  /** The MLP's activation; `hidden_act` is the legacy field that transformers ignores for Gemma. */
  hidden_activation: LlamaConfig['hidden_act'];
}

/** Reads a Gemma config.json: LLaMA's fields with GemmaConfig's defaults (head_dim 256, tied embeddings). */
export function gemmaConfig(r: ConfigReader): GemmaConfig {
  // The first Gemma configs said "hidden_act": "gelu" though the models were trained with the tanh approximation;
  // transformers reads hidden_activation and falls back to gelu_pytorch_tanh, never to hidden_act.
  const act = r.optional('hidden_activation', (k) => r.str(k, LLAMA_ACTIVATIONS)) ?? 'gelu_pytorch_tanh';
  if (r.json['use_bidirectional_attention'] === true) throw new Error(`${r.path}: "use_bidirectional_attention" (non-causal Gemma) is not supported`);
  const base = llamaConfig(new ConfigReader({ ...r.json, hidden_act: act }, r.path), { head_dim: 256, tie_word_embeddings: true, max_position_embeddings: 8192 });
  return { ...base, hidden_activation: act, mlp_bias: false };
}

// ---- norm ----

/** RMSNorm times (1 + weight), computed in float32 and then rounded to x's dtype, as GemmaRMSNorm; the weight starts at 0. */
export class GemmaRMSNorm extends RMSNorm {
  constructor(dim: number, eps: number) {
    super(dim, { eps });
    zeros_(this.weight!);
  }

  override forward(x: Tensor): Tensor {
    const normed = rmsNorm(cast(x, 'float32'), this.normalizedShape, null, this.eps);
    return cast(mul(normed, add(cast(this.weight!, 'float32'), 1)), x.dtype);
  }
}

const VARIANT: LlamaVariant = { name: 'Gemma', rmsNorm: (dim, eps) => new GemmaRMSNorm(dim, eps), scaleEmbeddings: true };

export function gemmaWeights(cfg: GemmaConfig): WeightSpec {
  return llamaWeights(cfg, VARIANT);
}

// ---- model ----

/** LlamaForCausalLM with Gemma's norm and embedding scale (the MLP's activation and the tying come from the config). */
export class GemmaForCausalLM extends LlamaForCausalLM {
  declare readonly config: GemmaConfig;

  constructor(config: GemmaConfig) {
    super(config, VARIANT);
  }
}

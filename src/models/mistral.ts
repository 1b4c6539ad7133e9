// Mistral: LLaMA with sliding-window attention (each query sees only the last `sliding_window` positions, in the full pass and through the KV cache).
//
// Paper: Jiang et al., "Mistral 7B" (2023); Beltagy et al., "Longformer" (2020) for the sliding window.
// Reference: transformers/models/mistral/modeling_mistral.py (MistralForCausalLM), configuration_mistral.py;
// the mask is transformers' sliding_window_overlay: key j is visible from query i when i - j < sliding_window.
// Everything else (RoPE, grouped-query attention, SwiGLU, RMSNorm, parameter names) is LLaMA's: see llama.ts.

import type { ConfigReader, WeightSpec } from './base.js';
import { LlamaForCausalLM, llamaConfig, llamaWeights, type LlamaConfig, type LlamaVariant } from './llama.js';

// ---- config (Hugging Face's MistralConfig field names) ----

export interface MistralConfig extends LlamaConfig {
  /** How many positions each query sees, itself included; null: all of them (Mistral 7B v0.2 and later). */
  sliding_window: number | null;
}

/** Reads a Mistral config.json: LLaMA's fields with MistralConfig's defaults, and the sliding window. */
export function mistralConfig(r: ConfigReader): MistralConfig {
  // MistralConfig's default window is 4096 (Mistral 7B v0.1); an explicit null turns the window off.
  const window = r.json['sliding_window'] === null ? null : r.positive('sliding_window', 4096);
  // Mistral's projections never have biases (the fields do not exist in MistralConfig).
  return { ...llamaConfig(r, { max_position_embeddings: 4096 * 32 }), attention_bias: false, mlp_bias: false, sliding_window: window };
}

const variant = (cfg: MistralConfig): LlamaVariant => ({ name: 'Mistral', slidingWindows: Array<number | null>(cfg.num_hidden_layers).fill(cfg.sliding_window) });

export function mistralWeights(cfg: MistralConfig): WeightSpec {
  return llamaWeights(cfg, variant(cfg));
}

// ---- model ----

/** LlamaForCausalLM whose every layer attends within the sliding window (same parameters, same names). */
export class MistralForCausalLM extends LlamaForCausalLM {
  declare readonly config: MistralConfig;

  constructor(config: MistralConfig) {
    super(config, variant(config));
  }
}

// Qwen2: LLaMA with biases on the query, key and value projections (not on the output one), and optional sliding-window layers.
//
// Paper: Yang et al., "Qwen2 Technical Report" (2024).
// Reference: transformers/models/qwen2/modeling_qwen2.py (Qwen2ForCausalLM), configuration_qwen2.py.
// Everything else (RoPE, grouped-query attention, SwiGLU, RMSNorm, parameter names) is LLaMA's: see llama.ts.

import type { ConfigReader, WeightSpec } from './base.js';
import { LlamaForCausalLM, llamaConfig, llamaWeights, type LlamaConfig, type LlamaVariant } from './llama.js';

// ---- config (Hugging Face's Qwen2Config field names) ----

const LAYER_TYPES = ['full_attention', 'sliding_attention'] as const;
export type Qwen2LayerType = (typeof LAYER_TYPES)[number];

export interface Qwen2Config extends LlamaConfig {
  use_sliding_window: boolean;
  /** The window of the sliding layers; null unless use_sliding_window (as Qwen2Config sets it). */
  sliding_window: number | null;
  /** Without layer_types: layers from this index on slide (when use_sliding_window). */
  max_window_layers: number;
  layer_types: Qwen2LayerType[];
}

/** Reads a Qwen2 config.json: LLaMA's fields with Qwen2Config's defaults, and which layers slide. */
export function qwen2Config(r: ConfigReader): Qwen2Config {
  const base = llamaConfig(r, { max_position_embeddings: 32768 });
  const L = base.num_hidden_layers;
  const useSliding = r.bool('use_sliding_window', false);
  // Released configs carry a window even with use_sliding_window false; transformers then ignores it.
  const window = useSliding ? r.positive('sliding_window', 4096) : null;
  const maxWindowLayers = r.int('max_window_layers', 28);
  const given = r.json['layer_types'];
  let layerTypes: Qwen2LayerType[];
  if (given === undefined || given === null) {
    layerTypes = Array.from({ length: L }, (_, i) => (window !== null && i >= maxWindowLayers ? 'sliding_attention' : 'full_attention'));
  } else {
    if (!Array.isArray(given) || given.length !== L || !given.every((t) => (LAYER_TYPES as readonly unknown[]).includes(t))) {
      r.fail('layer_types', `an array of ${L} (num_hidden_layers) entries, each one of ${LAYER_TYPES.join(', ')}`);
    }
    layerTypes = given as Qwen2LayerType[];
  }
  if (window === null && layerTypes.includes('sliding_attention')) {
    throw new Error(`${r.path}: "layer_types" has sliding_attention layers but there is no window ("use_sliding_window" is false or "sliding_window" is null)`);
  }
  // Qwen2's q/k/v biases are unconditional and o_proj / the MLP never have one (no such config fields).
  return { ...base, attention_bias: false, mlp_bias: false, use_sliding_window: useSliding, sliding_window: window, max_window_layers: maxWindowLayers, layer_types: layerTypes };
}

const variant = (cfg: Qwen2Config): LlamaVariant => ({
  name: 'Qwen2', qkvBias: true, slidingWindows: cfg.layer_types.map((t) => (t === 'sliding_attention' ? cfg.sliding_window : null)),
});

export function qwen2Weights(cfg: Qwen2Config): WeightSpec {
  return llamaWeights(cfg, variant(cfg));
}

// ---- model ----

/** LlamaForCausalLM with q_proj / k_proj / v_proj biases and the configured sliding layers (same parameter names). */
export class Qwen2ForCausalLM extends LlamaForCausalLM {
  declare readonly config: Qwen2Config;

  constructor(config: Qwen2Config) {
    super(config, variant(config));
  }
}

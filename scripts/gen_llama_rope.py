# RoPE inverse frequencies for the 'default', 'linear' and 'llama3' rope types, computed as transformers'
# modeling_rope_utils.py does (_compute_default_rope_parameters, _compute_linear_scaling_rope_parameters,
# _compute_llama3_parameters: the formulas re-typed below in plain torch, float32 as there), so no transformers
# install is needed. Writes test/data/hf/llama/rope.json.
# Run: /usr/bin/python3 scripts/gen_llama_rope.py

import json
import math
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'data', 'hf', 'llama', 'rope.json')


def default_inv_freq(base, dim):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def linear_inv_freq(base, dim, factor):
    return default_inv_freq(base, dim) / factor


def llama3_inv_freq(base, dim, factor, low_freq_factor, high_freq_factor, old_context_len):
    inv_freq = default_inv_freq(base, dim)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


CASES = [
    ('default, the fixture model', {'rope_type': 'default', 'rope_theta': 10000.0}, 16),
    ('default, theta 500000', {'rope_type': 'default', 'rope_theta': 500000.0}, 128),
    ('linear x2', {'rope_type': 'linear', 'rope_theta': 10000.0, 'factor': 2.0}, 16),
    ('linear x4, head 128', {'rope_type': 'linear', 'rope_theta': 10000.0, 'factor': 4.0}, 128),
    ('llama3, Llama 3.1 settings', {'rope_type': 'llama3', 'rope_theta': 500000.0, 'factor': 8.0, 'low_freq_factor': 1.0,
                                    'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192}, 128),
    ('llama3, Llama 3.2 settings', {'rope_type': 'llama3', 'rope_theta': 500000.0, 'factor': 32.0, 'low_freq_factor': 1.0,
                                    'high_freq_factor': 4.0, 'original_max_position_embeddings': 8192}, 64),
    ('llama3, tiny (all three bands in 8 pairs)', {'rope_type': 'llama3', 'rope_theta': 10000.0, 'factor': 4.0, 'low_freq_factor': 1.0,
                                                   'high_freq_factor': 4.0, 'original_max_position_embeddings': 64}, 16),
]


def inv_freq(p, dim):
    if p['rope_type'] == 'default':
        return default_inv_freq(p['rope_theta'], dim)
    if p['rope_type'] == 'linear':
        return linear_inv_freq(p['rope_theta'], dim, p['factor'])
    return llama3_inv_freq(p['rope_theta'], dim, p['factor'], p['low_freq_factor'], p['high_freq_factor'],
                           p['original_max_position_embeddings'])


def main():
    cases = []
    for name, params, dim in CASES:
        v = inv_freq(params, dim)
        assert v.dtype == torch.float32
        cases.append({'name': name, 'rope_parameters': params, 'head_dim': dim, 'inv_freq': [float(x) for x in v]})
    with open(OUT, 'w') as f:
        json.dump({'generator': 'scripts/gen_llama_rope.py', 'torch': torch.__version__, 'cases': cases}, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()

# Writes test/data/gpt-trace/: a tiny gpt-brown export (same file layout as the recipe's) and PyTorch's per-step
# train losses on it from reference/gpt_brown.py, so that a test can hold attend's Trainer to PyTorch's first steps.
# Run: /usr/bin/python3 scripts/gen_gpt_trace.py   (Debian's python3-torch; checked in, CI does not run it)
# The initial weights are drawn here by torch (the reference's scheme), the data is a seeded Markov chain.
import json
import os
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'data', 'gpt-trace')
sys.path.insert(0, os.path.join(ROOT, 'reference'))
import gpt_brown as ref  # noqa: E402

V, T, B, STEPS = 97, 16, 4, 30
CONFIG = {
    'vocab_size': V, 'n_positions': T, 'n_embd': 32, 'n_layer': 2, 'n_head': 4, 'n_inner': None,
    'activation_function': 'gelu_new', 'layer_norm_epsilon': 1e-5, 'embd_pdrop': 0, 'attn_pdrop': 0, 'resid_pdrop': 0,
    'initializer_range': 0.02, 'tie_word_embeddings': True, 'scale_attn_weights': True,
}


def markov_stream(rng, n):
    """Tokens where each one has three likely successors: something to learn in a few steps."""
    succ = rng.integers(0, V, size=(V, 3))
    out = np.empty(n, dtype=np.uint16)
    out[0] = 0
    for i in range(1, n):
        out[i] = succ[out[i - 1], rng.integers(0, 3)] if rng.random() < 0.9 else rng.integers(0, V)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(0)
    train, val = markov_stream(rng, 6000), markov_stream(rng, 600)
    batches = rng.integers(0, len(train) - T - 1, size=(STEPS, B)).astype('<i4')
    val_windows = (np.arange(8) * T).astype('<i4')
    for name, a in [('train.bin', train.astype('<u2')), ('val.bin', val.astype('<u2')), ('batches.bin', batches), ('val_windows.bin', val_windows)]:
        a.tofile(os.path.join(OUT, name))
    torch.manual_seed(0)
    model = ref.GPT2LMHeadModel(CONFIG)
    ref.write_safetensors(os.path.join(OUT, 'init.safetensors'), model.state_dict())
    # Hugging Face's get_decay_parameter_names, inverted: LayerNorm parameters and biases get no weight decay.
    no_decay = sorted({f'{m}.{p}' if m else p for m, mod in model.named_modules() if isinstance(mod, torch.nn.LayerNorm) for p, _ in mod.named_parameters(recurse=False)}
                      | {n for n, _ in model.named_parameters() if 'bias' in n})
    manifest = {
        'format': 'attend-gpt-brown-export', 'version': 2,
        'arrays': {
            'train': {'file': 'train.bin', 'dtype': 'uint16', 'shape': [len(train)]},
            'val': {'file': 'val.bin', 'dtype': 'uint16', 'shape': [len(val)]},
            'batches': {'file': 'batches.bin', 'dtype': 'int32', 'shape': [STEPS, B]},
            'valWindows': {'file': 'val_windows.bin', 'dtype': 'int32', 'shape': [len(val_windows)]},
        },
        'init': 'init.safetensors', 'tokenizer': 'tokenizer.json', 'model': CONFIG,
        'training': {
            'seed': 0, 'steps': STEPS, 'batchSize': B, 'seqLen': T, 'batchesPerEpoch': (len(train) - T) // T // B,
            'lr': 3e-3, 'minLr': 3e-4, 'warmupSteps': 5, 'schedule': 'cosine',
            'weightDecay': 0.1, 'betas': [0.9, 0.95], 'eps': 1e-8, 'clipGradNorm': 1.0, 'noDecay': no_decay,
            'logEvery': 1, 'evalEvery': STEPS, 'evalBatchSize': 4,
        },
        'loss': 'mean next-token cross-entropy in nats over the B x T targets of a batch',
    }
    with open(os.path.join(OUT, 'reference.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    subprocess.run([sys.executable, os.path.join(ROOT, 'reference', 'gpt_brown.py'), OUT, '--threads', '1'], check=True, stdout=subprocess.DEVNULL)
    os.remove(os.path.join(OUT, 'torch-results.json'))  # timings only
    print(f'wrote {OUT}')


if __name__ == '__main__':
    main()

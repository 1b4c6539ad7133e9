# Loads a GPT-2 Hugging Face folder that attend wrote (config.json + model.safetensors, transformers' names) into the
# plain-PyTorch GPT-2 of gpt_brown.py and prints its logits as JSON: the check that our folders load in PyTorch.
#
# Usage: /usr/bin/python3 reference/load_gpt2.py DIR --input-ids '[[1, 2, 3]]' [--attention-mask '[[1, 1, 1]]']
#
# Prints {"logits": [B][T][vocab]}, with null at padded positions (attention_mask 0), whose outputs transformers does
# not define either. Positions are 0..T-1 whatever the padding, as transformers' GPT2Model without position_ids.
# Needs torch and numpy only (no transformers).

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_brown import GPT2LMHeadModel, read_safetensors  # noqa: E402

# Buffers older transformers versions saved (the causal mask); transformers ignores them on load.
LEGACY_SUFFIXES = ('.attn.bias', '.attn.masked_bias')


def load(folder):
    """The model of a Hugging Face GPT-2 folder, every parameter loaded (strict: a missing or unknown name is an error)."""
    with open(os.path.join(folder, 'config.json')) as f:
        cfg = json.load(f)
    if cfg.get('model_type') != 'gpt2':
        sys.exit(f'{folder}/config.json: model_type is {cfg.get("model_type")!r}, expected gpt2')
    if not cfg.get('scale_attn_weights', True) or cfg.get('scale_attn_by_inverse_layer_idx') or cfg.get('reorder_and_upcast_attn'):
        sys.exit(f'{folder}/config.json: only the default attention scaling (1/sqrt(head size)) is implemented here')
    model = GPT2LMHeadModel(cfg)
    state = read_safetensors(os.path.join(folder, 'model.safetensors'))
    state = {k: v for k, v in state.items() if not k.endswith(LEGACY_SUFFIXES)}
    # transformers saves a tied head once (transformer.wte.weight); a copy under lm_head.weight must equal it.
    head, wte = state.pop('lm_head.weight', None), state.get('transformer.wte.weight')
    if head is not None and wte is not None and not torch.equal(head, wte):
        sys.exit(f'{folder}/model.safetensors: lm_head.weight differs from transformer.wte.weight, but this model ties them')
    model.load_state_dict(state, strict=True)
    return model.eval()


@torch.no_grad()
def logits(model, ids, mask):
    """[B, T, vocab] logits; row b attends to its own non-padded keys only (one row at a time: the mask is per row)."""
    tr = model.transformer
    B, T = ids.shape
    x = tr.wte(ids) + tr.wpe(torch.arange(T))  # (B, T, C)
    rows = []
    for b in range(B):
        hidden_mask = model.causal[:T, :T] | (mask[b] == 0)[None, :]  # (T, T): True = may not attend
        # A padded query with no key left would be NaN and spread to every position through the values (0 * NaN); as
        # transformers' _unmask_unattended, it attends to every key instead (its output is never used).
        hidden_mask[hidden_mask.all(dim=-1)] = False
        h = x[b:b + 1]
        for block in tr.h:
            h = block(h, hidden_mask)
        rows.append(h)
    return F.linear(tr.ln_f(torch.cat(rows)), tr.wte.weight)


def main():
    ap = argparse.ArgumentParser(description='logits of a GPT-2 Hugging Face folder in plain PyTorch')
    ap.add_argument('folder')
    ap.add_argument('--input-ids', required=True, help='JSON [[id, ...], ...]')
    ap.add_argument('--attention-mask', help='JSON [[1 or 0, ...], ...] (default: all ones)')
    ap.add_argument('--threads', type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ids = torch.tensor(json.loads(args.input_ids), dtype=torch.long)
    mask = torch.tensor(json.loads(args.attention_mask), dtype=torch.long) if args.attention_mask else torch.ones_like(ids)
    if ids.ndim != 2 or mask.shape != ids.shape:
        sys.exit(f'--input-ids must be [B, T] and --attention-mask the same shape, got {list(ids.shape)} and {list(mask.shape)}')
    out = logits(load(args.folder), ids, mask).tolist()
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            if mask[b, t] == 0:
                out[b][t] = None
    print(json.dumps({'logits': out}, allow_nan=False))  # a NaN at a real token is an error, not output


if __name__ == '__main__':
    main()

# Writes test/data/mha_weights.json: torch.nn.MultiheadAttention with need_weights=True (outputs, attention weights,
# gradients through both) for src/nn/attention.test.ts.
# Run: /usr/bin/python3 scripts/gen_mha_weights.py   (Debian's python3-torch; checked in, CI does not run it)
import json
import torch
import torch.nn as nn

torch.manual_seed(0)


def t2j(t):
    return {'shape': list(t.shape), 'dtype': 'bool' if t.dtype == torch.bool else 'float32',
            'data': [bool(v) if t.dtype == torch.bool else float(v) for v in t.reshape(-1).tolist()]}


def case(inputs, call, average):
    m = nn.MultiheadAttention(D, H, batch_first=True).eval()
    with torch.no_grad():
        m.in_proj_bias.normal_()
        m.out_proj.bias.normal_()
    leaves = [x.clone().requires_grad_(x.is_floating_point() and x.dim() == 3) for x in inputs]
    y, w = call(m, *leaves, average)
    probe_y, probe_w = torch.randn(y.shape), torch.randn(w.shape)
    ((y * probe_y).sum() + (w * probe_w).sum()).backward()
    return {
        'average': average,
        'state': {k: t2j(v) for k, v in m.state_dict().items()},
        'inputs': [t2j(x) for x in inputs],
        'output': t2j(y.detach()), 'weights': t2j(w.detach()),
        'probe_output': t2j(probe_y), 'probe_weights': t2j(probe_w),
        'input_grads': [t2j(x.grad) if x.grad is not None else None for x in leaves],
        'param_grads': {k: t2j(p.grad) for k, p in m.named_parameters()},
    }


B, T, S, D, H = 2, 5, 4, 8, 2
pad = torch.tensor([[False] * S, [False, False, True, True]])
causal = torch.ones(T, T, dtype=torch.bool).triu(1)
additive = torch.randn(T, S)
cases = {
    'self_causal_averaged': case([torch.randn(B, T, D), causal],
                                 lambda m, x, c, a: m(x, x, x, attn_mask=c, need_weights=True, average_attn_weights=a), True),
    'cross_padding_per_head': case([torch.randn(B, T, D), torch.randn(B, S, D), pad],
                                   lambda m, q, kv, p, a: m(q, kv, kv, key_padding_mask=p, need_weights=True, average_attn_weights=a), False),
    'cross_additive_averaged': case([torch.randn(B, T, D), torch.randn(B, S, D), additive],
                                    lambda m, q, kv, am, a: m(q, kv, kv, attn_mask=am, need_weights=True, average_attn_weights=a), True),
}

with open('test/data/mha_weights.json', 'w') as f:
    json.dump({'source': 'scripts/gen_mha_weights.py with PyTorch ' + torch.__version__, 'cases': cases}, f)
print(len(cases), 'cases')

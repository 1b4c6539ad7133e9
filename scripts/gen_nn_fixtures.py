# Writes test/data/nn.json: torch.nn layers (state dicts, inputs, outputs, input gradients) for the layer tests.
# Run: /usr/bin/python3 scripts/gen_nn_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
import json
import torch
import torch.nn as nn

torch.manual_seed(0)


def t2j(t):
    return {'shape': list(t.shape), 'dtype': 'bool' if t.dtype == torch.bool else 'float32', 'data': [bool(v) if t.dtype == torch.bool else float(v) for v in t.reshape(-1).tolist()]}


def case(module, inputs, call):
    module.eval()
    leaves = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    y = call(module, *leaves)
    probe = torch.randn(y.shape)
    (y * probe).sum().backward()
    return {
        'state': {k: t2j(v) for k, v in module.state_dict().items()},
        'inputs': [t2j(x) for x in inputs],
        'output': t2j(y.detach()),
        'probe': t2j(probe),
        'input_grads': [t2j(x.grad) if x.grad is not None else None for x in leaves],
        'param_grads': {k: t2j(p.grad) for k, p in module.named_parameters()},
    }


B, T, S, D, H = 2, 5, 4, 8, 2
pad = torch.tensor([[False] * S, [False, False, True, True]])
causal = torch.ones(T, T, dtype=torch.bool).triu(1)
cases = {
    'mha_cross_padding': case(nn.MultiheadAttention(D, H, batch_first=True), [torch.randn(B, T, D), torch.randn(B, S, D), pad],
                              lambda m, q, kv, p: m(q, kv, kv, key_padding_mask=p, need_weights=False)[0]),
    'mha_self_causal': case(nn.MultiheadAttention(D, H, batch_first=True), [torch.randn(B, T, D), causal],
                            lambda m, x, c: m(x, x, x, attn_mask=c, need_weights=False)[0]),
    'encoder_post_norm': case(nn.TransformerEncoderLayer(D, H, 16, 0.0, batch_first=True), [torch.randn(B, S, D), pad],
                              lambda m, x, p: m(x, src_key_padding_mask=p)),
    'encoder_pre_norm_gelu_causal': case(nn.TransformerEncoderLayer(D, H, 16, 0.0, activation='gelu', batch_first=True, norm_first=True),
                                         [torch.randn(B, T, D), causal], lambda m, x, c: m(x, src_mask=c)),
    'decoder_post_norm': case(nn.TransformerDecoderLayer(D, H, 16, 0.0, batch_first=True), [torch.randn(B, T, D), torch.randn(B, S, D), causal, pad],
                              lambda m, x, mem, c, p: m(x, mem, tgt_mask=c, memory_key_padding_mask=p)),
    'decoder_pre_norm': case(nn.TransformerDecoderLayer(D, H, 16, 0.0, batch_first=True, norm_first=True), [torch.randn(B, T, D), torch.randn(B, S, D), causal],
                             lambda m, x, mem, c: m(x, mem, tgt_mask=c)),
}

with open('test/data/nn.json', 'w') as f:
    json.dump({'source': 'scripts/gen_nn_fixtures.py with PyTorch ' + torch.__version__, 'cases': cases}, f)
print(len(cases), 'cases')

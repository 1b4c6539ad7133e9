# Writes test/data/ops.json: PyTorch's outputs and gradients for every op the engine tests.
# Run: /usr/bin/python3 scripts/gen_op_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
# Each case: inputs (fixed seed), output, a random probe R, and d sum(output * R) / d input for float inputs.
import json
import math
import torch
import torch.nn.functional as F

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # compute the reference in double; the tests compare float32 with a tolerance


def rn(*s): return torch.randn(*s)
def pos(*s): return torch.rand(*s) + 0.5
def ids(high, *s): return torch.randint(0, high, s)
def mask(*s): return torch.rand(*s) > 0.5


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def attention(q, k, v, causal, mask=None, bias=None):
    # PyTorch >= 2.5 semantics ("safe softmax"): a query with no key left to attend outputs zeros.
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if bias is not None:
        s = s + bias
    if mask is not None:
        s = s.masked_fill(~mask, float('-inf'))
    if causal:
        t, n = s.shape[-2], s.shape[-1]
        s = s.masked_fill(torch.ones(t, n, dtype=torch.bool).triu(n - t + 1), float('-inf'))
    empty = (s == float('-inf')).all(-1, keepdim=True)
    p = torch.where(empty, torch.zeros(()), torch.where(empty, torch.zeros(()), s).softmax(-1))
    return p @ v


CASES = {
    # elementwise unary
    'neg': (lambda x: -x, [rn(2, 3)]),
    'abs': (lambda x: x.abs(), [rn(2, 3)]),
    'sign': (lambda x: x.sign(), [rn(2, 3)]),
    'exp': (lambda x: x.exp(), [rn(2, 3)]),
    'log': (lambda x: x.log(), [pos(2, 3)]),
    'sqrt': (lambda x: x.sqrt(), [pos(2, 3)]),
    'rsqrt': (lambda x: x.rsqrt(), [pos(2, 3)]),
    'sin': (lambda x: x.sin(), [rn(2, 3)]),
    'cos': (lambda x: x.cos(), [rn(2, 3)]),
    'tanh': (lambda x: x.tanh(), [rn(2, 3)]),
    'sigmoid': (lambda x: x.sigmoid(), [rn(2, 3) * 3]),
    'relu': (lambda x: x.relu(), [rn(2, 3)]),
    'erf': (lambda x: torch.erf(x), [rn(2, 3) * 2]),
    'gelu': (lambda x: F.gelu(x), [rn(2, 3) * 2]),
    'gelu_tanh': (lambda x: F.gelu(x, approximate='tanh'), [rn(2, 3) * 2]),
    'silu': (lambda x: F.silu(x), [rn(2, 3) * 2]),
    'floor': (lambda x: x.floor(), [rn(2, 3) * 3]),
    'ceil': (lambda x: x.ceil(), [rn(2, 3) * 3]),
    'round': (lambda x: x.round(), [torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.4, 1.6])]),
    'square': (lambda x: x.square(), [rn(2, 3)]),
    'reciprocal': (lambda x: x.reciprocal(), [pos(2, 3)]),
    'clamp': (lambda x: x.clamp(-0.5, 0.7), [rn(3, 4)]),
    # elementwise binary, broadcasting
    'add': (lambda a, b: a + b, [rn(2, 3), rn(3)]),
    'sub': (lambda a, b: a - b, [rn(2, 1, 3), rn(4, 1)]),
    'mul': (lambda a, b: a * b, [rn(2, 1, 3), rn(4, 1)]),
    'div': (lambda a, b: a / b, [rn(2, 3), pos(2, 1)]),
    'pow': (lambda a, b: a.pow(b), [pos(2, 3), rn(3)]),
    'pow_scalar': (lambda a: a.pow(3), [rn(2, 3)]),
    'maximum': (lambda a, b: torch.maximum(a, b), [rn(2, 3), rn(2, 3)]),
    'minimum': (lambda a, b: torch.minimum(a, b), [rn(3, 1), rn(1, 3)]),
    'add_scalar': (lambda a: a + 2.5, [rn(2, 3)]),
    'rsub_scalar': (lambda a: 1 - a, [rn(2, 3)]),
    'eq': (lambda a, b: a == b, [ids(3, 2, 4), ids(3, 2, 4)]),
    'lt': (lambda a, b: a < b, [rn(2, 3), rn(3)]),
    'ge': (lambda a, b: a >= b, [rn(2, 3), rn(2, 3)]),
    'logical_and': (lambda a, b: a & b, [mask(2, 3), mask(2, 3)]),
    'where': (lambda c, a, b: torch.where(c, a, b), [mask(2, 3), rn(2, 3), rn(3)]),
    'masked_fill': (lambda x, m: x.masked_fill(m, -1.5), [rn(2, 3), mask(2, 3)]),
    # reductions
    'sum_all': (lambda x: x.sum(), [rn(3, 4)]),
    'sum_dim': (lambda x: x.sum(1), [rn(2, 3, 4)]),
    'sum_dims_keepdim': (lambda x: x.sum((0, 2), keepdim=True), [rn(2, 3, 4)]),
    'sum_int': (lambda x: x.sum(0).int(), [ids(5, 3, 4)]),
    'mean': (lambda x: x.mean(-1), [rn(2, 3, 4)]),
    'mean_all': (lambda x: x.mean(), [rn(2, 3)]),
    'max_dim': (lambda x: x.amax(1), [rn(3, 5)]),
    'min_all': (lambda x: x.amin(), [rn(3, 5)]),
    'argmax': (lambda x: x.argmax(1).int(), [rn(3, 5)]),
    'argmin_all': (lambda x: x.argmin().int(), [rn(3, 5)]),
    'var': (lambda x: x.var(1), [rn(3, 5)]),
    'var_unbiased0': (lambda x: x.var(0, unbiased=False), [rn(3, 5)]),
    'std': (lambda x: x.std(), [rn(3, 5)]),
    'logsumexp': (lambda x: x.logsumexp(-1), [rn(3, 5) * 4]),
    'cumsum': (lambda x: x.cumsum(1), [rn(2, 4, 3)]),
    # movement
    'reshape': (lambda x: x.reshape(3, -1), [rn(2, 3, 2)]),
    'permute': (lambda x: x.permute(2, 0, 1), [rn(2, 3, 4)]),
    'transpose': (lambda x: x.transpose(0, 2), [rn(2, 3, 4)]),
    'expand': (lambda x: x.expand(2, 3, 4), [rn(3, 1)]),
    'squeeze_unsqueeze': (lambda x: x.squeeze(1).unsqueeze(0), [rn(2, 1, 3)]),
    'slice_step': (lambda x: x[:, 1:5:2], [rn(3, 6)]),
    'slice_negative': (lambda x: x[-2:], [rn(4, 3)]),
    'narrow': (lambda x: x.narrow(1, 1, 2), [rn(2, 4)]),
    'select': (lambda x: x[:, 2], [rn(3, 4, 2)]),
    'flip': (lambda x: x.flip(0, 2), [rn(2, 3, 4)]),
    'pad': (lambda x: F.pad(x, (1, 2, 0, 1), value=0.5), [rn(2, 3, 2)]),
    'cat': (lambda a, b: torch.cat([a, b], 1), [rn(2, 3), rn(2, 2)]),
    'stack': (lambda a, b: torch.stack([a, b], -1), [rn(2, 3), rn(2, 3)]),
    'split': (lambda x: torch.cat([p.reshape(-1) * (i + 1) for i, p in enumerate(x.split(2, 1))]), [rn(3, 5)]),
    'chunk': (lambda x: torch.cat([p.reshape(-1) * (i + 1) for i, p in enumerate(x.chunk(3, 0))]), [rn(7, 2)]),
    'repeat': (lambda x: x.repeat(2, 1, 3), [rn(2, 3)]),
    'tril': (lambda x: x.tril(), [rn(2, 4, 4)]),
    'triu': (lambda x: x.triu(1), [rn(3, 5)]),
    # matrix products
    'matmul_2d': (lambda a, b: a @ b, [rn(3, 4), rn(4, 5)]),
    'matmul_batched_broadcast': (lambda a, b: a @ b, [rn(2, 1, 3, 4), rn(3, 4, 2)]),
    'matmul_3d_2d': (lambda a, b: a @ b, [rn(2, 3, 4), rn(4, 5)]),
    'matmul_vec': (lambda a, b: a @ b, [rn(4), rn(2, 4, 3)]),
    'matmul_dot': (lambda a, b: a @ b, [rn(5), rn(5)]),
    'linear': (lambda x, w, b: F.linear(x, w, b), [rn(2, 3, 4), rn(5, 4), rn(5)]),
    # indexing
    'index_select': (lambda x, i: x.index_select(1, i), [rn(2, 4, 3), torch.tensor([3, 0, 3])]),
    'gather': (lambda x, i: x.gather(1, i), [rn(3, 4), ids(4, 3, 2)]),
    'scatter_add': (lambda x, i, s: x.scatter_add(0, i, s), [rn(3, 4), ids(3, 2, 4), rn(2, 4)]),
    'embedding': (lambda w, i: F.embedding(i, w), [rn(6, 3), torch.tensor([[1, 5, 1], [0, 2, 2]])]),
    'embedding_padding': (lambda w, i: F.embedding(i, w, padding_idx=2), [rn(6, 3), torch.tensor([[1, 2, 1], [2, 2, 0]])]),
    # fused nn primitives
    'softmax': (lambda x: x.softmax(-1), [rn(3, 5) * 2]),
    'softmax_dim0': (lambda x: x.softmax(0), [rn(3, 4, 2) * 2]),
    'log_softmax': (lambda x: x.log_softmax(-1), [rn(3, 5) * 2]),
    'layer_norm': (lambda x, w, b: F.layer_norm(x, (5,), w, b, 1e-5), [rn(2, 3, 5) * 2 + 1, rn(5), rn(5)]),
    'layer_norm_noaffine': (lambda x: F.layer_norm(x, (2, 3)), [rn(4, 2, 3)]),
    'rms_norm': (lambda x, w: rms_norm(x, w, 1e-6), [rn(2, 3, 5) * 2, rn(5)]),
    'unfold': (lambda x: F.unfold(x, (2, 3), dilation=(1, 2), padding=(1, 1), stride=(2, 1)), [rn(2, 2, 4, 5)]),
    # composites in nn.functional
    'cross_entropy': (lambda x, t: F.cross_entropy(x, t), [rn(4, 5), torch.tensor([1, 0, 4, 2])]),
    'cross_entropy_ignore_smooth': (lambda x, t: F.cross_entropy(x, t, ignore_index=-100, label_smoothing=0.1), [rn(4, 5), torch.tensor([1, -100, 4, 2])]),
    'cross_entropy_sum': (lambda x, t: F.cross_entropy(x, t, reduction='sum'), [rn(3, 4), torch.tensor([3, 0, 1])]),
    'cross_entropy_none_3d': (lambda x, t: F.cross_entropy(x, t, reduction='none'), [rn(2, 4, 3), torch.tensor([[1, 0, 3], [2, 2, 0]])]),
    'nll_loss': (lambda x, t: F.nll_loss(x, t), [rn(4, 5), torch.tensor([1, 0, 4, 2])]),
    'mse_loss': (lambda a, b: F.mse_loss(a, b), [rn(3, 4), rn(3, 4)]),
    'bce_with_logits': (lambda x, y: F.binary_cross_entropy_with_logits(x, y), [rn(3, 4) * 3, torch.rand(3, 4)]),
    'conv1d': (lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1), [rn(2, 3, 7), rn(4, 3, 3), rn(4)]),
    'conv1d_groups_dilation': (lambda x, w: F.conv1d(x, w, None, padding=2, dilation=2, groups=2), [rn(1, 4, 6), rn(4, 2, 3)]),
    'conv2d': (lambda x, w, b: F.conv2d(x, w, b, stride=(1, 2), padding=1), [rn(2, 3, 5, 6), rn(4, 3, 3, 2), rn(4)]),
    'conv2d_groups': (lambda x, w: F.conv2d(x, w, None, groups=3), [rn(1, 3, 4, 4), rn(6, 1, 2, 2)]),
    'max_pool2d': (lambda x: F.max_pool2d(x, 2), [rn(2, 3, 4, 6)]),
    'max_pool2d_pad_stride': (lambda x: F.max_pool2d(x, 3, stride=2, padding=1), [rn(1, 2, 5, 5)]),
    'avg_pool2d': (lambda x: F.avg_pool2d(x, (2, 3), stride=1, padding=(1, 1)), [rn(1, 2, 4, 5)]),
    'max_pool1d': (lambda x: F.max_pool1d(x, 3, stride=2), [rn(2, 3, 9)]),
    'avg_pool1d': (lambda x: F.avg_pool1d(x, 2), [rn(2, 3, 8)]),
    'attention': (lambda q, k, v: attention(q, k, v, False), [rn(2, 2, 4, 3), rn(2, 2, 5, 3), rn(2, 2, 5, 3)]),
    'attention_causal': (lambda q, k, v: attention(q, k, v, True), [rn(1, 2, 4, 3), rn(1, 2, 4, 3), rn(1, 2, 4, 3)]),
    'attention_causal_cached': (lambda q, k, v: attention(q, k, v, True), [rn(2, 2, 2, 4), rn(2, 2, 5, 4), rn(2, 2, 5, 3)]),
    'attention_padding_empty_row': (lambda q, k, v, m: attention(q, k, v, False, mask=m),
                                    [rn(2, 1, 3, 4), rn(2, 1, 3, 4), rn(2, 1, 3, 4), torch.tensor([[[[True, True, False]]], [[[False, True, True]]]]) & torch.tensor([True, True, False]).reshape(3, 1)]),
    'attention_bias_grad': (lambda q, k, v, b: attention(q, k, v, False, bias=b), [rn(2, 2, 3, 4), rn(2, 2, 4, 4), rn(2, 2, 4, 4), rn(1, 2, 3, 4)]),
}


def dtype_name(t):
    return {torch.float64: 'float32', torch.float32: 'float32', torch.int64: 'int32', torch.int32: 'int32', torch.bool: 'bool'}[t.dtype]


def flat(t):
    return [bool(v) if t.dtype == torch.bool else float(v) if t.is_floating_point() else int(v) for v in t.reshape(-1).tolist()]


def make_case(fn, inputs):
    leaves = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    y = fn(*leaves)
    case = {
        'inputs': [{'shape': list(x.shape), 'dtype': dtype_name(x), 'data': flat(x)} for x in inputs],
        'output': {'shape': list(y.shape), 'dtype': dtype_name(y), 'data': flat(y.detach())},
    }
    if y.is_floating_point() and y.requires_grad:
        probe = torch.randn(y.shape)
        (y * probe).sum().backward()
        case['probe'] = flat(probe)
        case['grads'] = [flat(x.grad) if x.grad is not None else None for x in leaves]
    return case


out = {}
for name, (fn, inputs) in CASES.items():
    out[name] = make_case(fn, inputs)


def attention_packed(qkv, heads, causal):
    # q, k, v side by side in the last dimension, heads side by side in each; the result with heads side by side.
    b, t, c3 = qkv.shape
    q, k, v = (x.reshape(b, t, heads, c3 // 3 // heads).transpose(1, 2) for x in qkv.split(c3 // 3, 2))
    return attention(q, k, v, causal).transpose(1, 2).reshape(b, t, c3 // 3)


def rotary(x, cos, sin):
    x1, x2 = x.chunk(2, -1)
    return x * cos + torch.cat((-x2, x1), -1) * sin


# Cases added later: built after the ones above and from their own seed, so that every earlier case (inputs
# and probes) stays exactly as it was.
torch.manual_seed(1)
EXTRA = {
    'matmul_add': (lambda x, w, b: x @ w + b, [rn(2, 3, 4), rn(4, 5), rn(5)]),
    'gelu_tanh_wide': (lambda x: F.gelu(x, approximate='tanh'), [torch.cat([rn(24) * 3, torch.tensor([-12.0, -6.0, -3.5, 0.0, 1e-4, 5.0, 9.0, 30.0])])]),
    'attention_packed_causal': (lambda qkv: attention_packed(qkv, 2, True), [rn(2, 5, 3 * 2 * 4)]),
    'cross_entropy_ignore': (lambda x, t: F.cross_entropy(x, t, ignore_index=-100), [rn(5, 7) * 3, torch.tensor([3, -100, 0, 6, -100])]),
}
for name, (fn, inputs) in EXTRA.items():
    out[name] = make_case(fn, inputs)

torch.manual_seed(2)
EXTRA2 = {
    # transformers' apply_rotary_pos_emb on one tensor; cos / sin are inputs without a gradient (as a model's are) and
    # of any values (the two halves differ, so the backward's transposed rotation is checked in full).
    'rotary': (lambda x, c, s: rotary(x, c.detach(), s.detach()), [rn(2, 3, 4, 6), rn(1, 1, 4, 6), rn(1, 1, 4, 6)]),
    # a projection [B, T, H * hs] split into heads first: the reshape and transpose before apply_rotary_pos_emb
    'rotary_heads': (lambda x, c, s: rotary(x.reshape(2, 4, 3, 6).transpose(1, 2), c.detach(), s.detach()), [rn(2, 4, 18), rn(2, 1, 4, 6), rn(2, 1, 4, 6)]),
}
for name, (fn, inputs) in EXTRA2.items():
    out[name] = make_case(fn, inputs)

with open('test/data/ops.json', 'w') as f:
    json.dump({'source': 'scripts/gen_op_fixtures.py with PyTorch ' + torch.__version__ + ' (float64)', 'cases': out}, f)
print(f'{len(out)} cases')

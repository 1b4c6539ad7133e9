# Writes test/data/dtype.json: float16/bfloat16 rounding, casts, promotion and op results from PyTorch 1.13 CPU.
# Values travel as bit patterns (int) so that the test compares bit-exact. Run: /usr/bin/python3 scripts/gen_dtype_fixtures.py
import json
import math
import os

import torch

HALF = {'float16': torch.float16, 'bfloat16': torch.bfloat16}
ALL = {'float32': torch.float32, 'float64': torch.float64, 'float16': torch.float16, 'bfloat16': torch.bfloat16,
       'int32': torch.int32, 'uint8': torch.uint8, 'bool': torch.bool}


def bits(t):
    return [int(v) & 0xFFFF for v in t.contiguous().view(torch.int16).flatten().tolist()]


def num(v):
    if math.isnan(v):
        return 'NaN'
    if math.isinf(v):
        return 'Infinity' if v > 0 else '-Infinity'
    return v


# float32 values -> half bits (round to nearest even: ties, overflow, subnormals, signed zero).
values = [0.1, -0.1, 1 / 3, 65504.0, 65519.0, 65520.0, 70000.0, -1e6, 6e-8, 5.9604645e-08, 2.98e-8, 2.99e-8, 1e-45,
          6.1035156e-05, 6.09e-05, -0.0, 0.0, 1.0, 1.00048828125, 1.00146484375, 2049.0, 2051.0, 3.3895314e38, 3.4e38,
          float('inf'), float('-inf'), 1.00390625, 1.01171875, 255.5, 1e-40, 9.2e-41]
f32 = torch.tensor(values, dtype=torch.float32)
rounding = {'values': [num(v) for v in f32.tolist()], **{d: bits(f32.to(t)) for d, t in HALF.items()}}

# Integers and float64 into half types: through float32, as PyTorch (double rounding included).
ints = [0, 1, -7, 2049, 2051, 65504, 65535, 16777217, 33685505, 2147483647, -2147483648]
f64 = [0.1, 1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -8 + 2 ** -30, 1e300, 5e-324]
from_other = {
    'int32': {'values': ints, **{d: bits(torch.tensor(ints, dtype=torch.int32).to(t)) for d, t in HALF.items()}},
    'float64': {'values': f64, **{d: bits(torch.tensor(f64, dtype=torch.float64).to(t)) for d, t in HALF.items()}},
}

# Half -> other dtypes (decoded values).
src = torch.tensor([0.1, -2.5, 3.75, 300.0, -0.0, 1e-6], dtype=torch.float32)
to_other = {}
for d, t in HALF.items():
    h = src.to(t)
    to_other[d] = {'bits': bits(h), **{o: [num(float(v)) for v in h.to(ot).tolist()] for o, ot in ALL.items() if o not in HALF}}

promotion = [[a, b, str(torch.promote_types(ta, tb)).replace('torch.', '')] for a, ta in ALL.items() for b, tb in ALL.items()]

# Ops on half tensors: inputs and outputs as bits.
g = torch.Generator().manual_seed(0)
a32 = torch.randn(4, 6, generator=g) * 3
b32 = torch.randn(4, 6, generator=g) + 0.5
p32 = torch.rand(4, 6, generator=g) * 4 + 0.1
ops = {}
for d, t in HALF.items():
    a, b, p = a32.to(t), b32.to(t), p32.to(t)
    fns = {
        'add': lambda a, b, p: a + b, 'sub': lambda a, b, p: a - b, 'mul': lambda a, b, p: a * b, 'div': lambda a, b, p: a / b,
        'mulScalar': lambda a, b, p: a * 2.5, 'addScalar': lambda a, b, p: a + 0.1,
        'maximum': lambda a, b, p: torch.maximum(a, b), 'neg': lambda a, b, p: -a, 'abs': lambda a, b, p: a.abs(),
        'exp': lambda a, b, p: a.exp(), 'log': lambda a, b, p: p.log(), 'sqrt': lambda a, b, p: p.sqrt(),
        'tanh': lambda a, b, p: a.tanh(), 'sigmoid': lambda a, b, p: a.sigmoid(), 'relu': lambda a, b, p: a.relu(),
        'gelu': lambda a, b, p: torch.nn.functional.gelu(a), 'silu': lambda a, b, p: torch.nn.functional.silu(a),
        'sum1': lambda a, b, p: a.sum(1), 'mean1': lambda a, b, p: a.mean(1), 'max1': lambda a, b, p: a.amax(1),
        'softmax': lambda a, b, p: a.softmax(-1), 'logSoftmax': lambda a, b, p: a.log_softmax(-1),
        'layerNorm': lambda a, b, p: torch.nn.functional.layer_norm(a, (6,)),
        'transpose': lambda a, b, p: a.t().contiguous(), 'gt': lambda a, b, p: (a > b).to(a.dtype),
        'matmul': lambda a, b, p: a @ b.t(),
    }
    out, widened = {}, []
    for k, fn in fns.items():
        try:
            out[k] = fn(a, b, p)
        except RuntimeError:
            # torch 1.13 lacks some half kernels on CPU: the float32 result rounded once, which is what newer
            # releases compute (and what attend does).
            out[k] = fn(a.float(), b.float(), p.float()).to(t)
            widened.append(k)
    # The float32 result of the half inputs rounded once: what attend computes (torch 1.13 rounds some intermediates in
    # its bfloat16 kernels, e.g. log_softmax).
    ref = {k: fn(a.float(), b.float(), p.float()).to(t) for k, fn in fns.items()}
    ops[d] = {'a': bits(a), 'b': bits(b), 'p': bits(p), 'shape': [4, 6],
              'out': {k: {'shape': list(v.shape), 'bits': bits(v), 'float32Rounded': bits(ref[k])} for k, v in out.items()},
              'computedInFloat32': widened}

# Gradients of a float16 leaf stay float16: d/dx sum(x * x * 3).
x = a32[0].to(torch.float16).requires_grad_()
(x * x * 3).sum().backward()
grad = {'x': bits(x.detach()), 'grad': bits(x.grad), 'dtype': str(x.grad.dtype).replace('torch.', '')}

out = {'torch': torch.__version__, 'rounding': rounding, 'fromOther': from_other, 'toOther': to_other,
       'promotion': promotion, 'ops': ops, 'grad': grad, 'fullInt': str(torch.full((2,), 3).dtype).replace('torch.', '')}
path = os.path.join(os.path.dirname(__file__), '..', 'test', 'data', 'dtype.json')
with open(path, 'w') as f:
    json.dump(out, f, separators=(',', ':'))
print('wrote', path)

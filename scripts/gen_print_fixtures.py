# Writes test/data/print.json: torch's printed form of tensors, rewritten into attend's spelling, for src/tensor/print.test.ts.
# Run: /usr/bin/python3 scripts/gen_print_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
# attend prints what torch prints, except: true/false for bools, dtype=float64 (no 'torch.'), size=[2, 0],
# requiresGrad=true, gradFn=<name of our op> and int32 (our int64) without a dtype suffix.
import json
import math
import random
import re
import struct
import torch

torch.manual_seed(0)


def shortest32(v):
    """The shortest decimal that rounds back to the same float32 (keeps the fixture small, the values exact)."""
    for digits in range(1, 10):
        d = float('%.*g' % (digits, v))
        if struct.unpack('f', struct.pack('f', d))[0] == v:
            return d
    return v


def enc(v, f32=False):
    if isinstance(v, bool):
        return v
    if math.isnan(v):
        return 'nan'
    if math.isinf(v):
        return 'inf' if v > 0 else '-inf'
    return shortest32(v) if f32 else v


OUR_DTYPE = {torch.float32: 'float32', torch.float64: 'float64', torch.int64: 'int32', torch.uint8: 'uint8', torch.bool: 'bool'}


def ours(t, grad_fn=None, device=None):
    """torch's own layout (_tensor_str, _add_suffixes, _str_intern's suffix order) with attend's suffix spelling,
    so that line wrapping is decided on the text attend prints."""
    ts = torch._tensor_str
    suffixes = [f"device='{device}'"] if device else []
    dtype = OUR_DTYPE[t.dtype]
    if t.numel() == 0:
        body = '[]'
        if t.dim() != 1:
            suffixes.append('size=[' + ', '.join(str(d) for d in t.shape) + ']')
        if dtype != 'float32':
            suffixes.append('dtype=' + dtype)
    else:
        body = re.sub(r'\bTrue\b', 'true', re.sub(r'\bFalse\b', 'false', ts._tensor_str(t.detach(), 7)))
        if dtype not in ('float32', 'int32', 'bool'):
            suffixes.append('dtype=' + dtype)
    if t.grad_fn is not None:
        suffixes.append('gradFn=<' + grad_fn + '>')
    elif t.requires_grad:
        suffixes.append('requiresGrad=true')
    out = ts._add_suffixes('tensor(' + body, suffixes, 7, force_newline=False)
    return 'Parameter containing:\n' + out if isinstance(t, torch.nn.Parameter) else out


def plain(s, grad_fn=None):
    """torch's repr in attend's spelling, to check ours() against where the suffixes have the same length."""
    s = s.replace('requires_grad=True', 'requiresGrad=true')
    s = re.sub(r'dtype=torch\.(\w+)', r'dtype=\1', s).replace('dtype=int64', 'dtype=int32')
    s = re.sub(r'size=\(([\d, ]*?),?\)', lambda m: 'size=[' + m.group(1) + ']', s)
    s = re.sub(r'\bTrue\b', 'true', re.sub(r'\bFalse\b', 'false', s))
    return re.sub(r'grad_fn=<\w+>', 'gradFn=<' + grad_fn + '>', s) if grad_fn else s


cases = {}


def case(name, t, dtype=None, grad_fn=None, requires_grad=False, parameter=False):
    """dtype: attend's dtype for the data (int64 torch tensors stand for our int32)."""
    shown = t
    if requires_grad:
        shown = t.clone().requires_grad_(True)
    if parameter:
        shown = torch.nn.Parameter(t.clone())
    if grad_fn is not None:
        shown = t.clone().requires_grad_(True) * 2
    expected = ours(shown, grad_fn)
    if 'dtype=' not in expected:
        assert expected == plain(repr(shown), grad_fn), name
    # the data attend builds the tensor from: for the gradFn case the product, as torch shows it
    data = shown.detach().reshape(-1).tolist()
    cases[name] = {
        'shape': list(t.shape), 'dtype': dtype or OUR_DTYPE[t.dtype], 'data': [enc(v, t.dtype == torch.float32) for v in data],
        'requiresGrad': requires_grad or parameter, 'parameter': parameter, 'gradFn': grad_fn,
        'expected': expected, 'expectedWasm': ours(shown, grad_fn, 'wasm'),
    }


case('scalar', torch.tensor(3.14159))
case('scalar_int_valued', torch.tensor(2.0))
case('scalar_int', torch.tensor(7))
case('scalar_bool', torch.tensor(True))
case('vector', torch.randn(5))
case('matrix', torch.randn(3, 4))
case('tensor3d', torch.randn(2, 3, 4))
case('tensor4d', torch.randn(2, 2, 2, 2))
case('empty', torch.zeros(0))
case('empty_2d', torch.zeros(2, 0))
case('empty_int', torch.zeros(0, dtype=torch.int64))
case('bool', torch.tensor([True, False, True]))
case('bool_matrix', torch.tensor([[True, False], [False, False]]))
case('int', torch.arange(-5, 5))
case('int_matrix', torch.tensor([[1, 200, -3], [40000, 5, 6]]))
case('uint8', torch.tensor([1, 2, 255], dtype=torch.uint8))
case('float64', torch.randn(3, dtype=torch.float64))
case('float64_int_valued', torch.tensor([1.0, 2.0], dtype=torch.float64))
case('int_valued', torch.tensor([1.0, 2.0, -3.0]))
case('zeros', torch.zeros(2, 3))
case('nan_inf', torch.tensor([1.5, float('nan'), float('inf'), float('-inf'), 0.0]))
case('int_valued_nan', torch.tensor([1.0, float('nan'), 3.0]))
case('all_nan', torch.tensor([float('nan'), float('inf')]))
case('sci_wide_range', torch.tensor([1e-5, 1.0, 12345.678]))
case('sci_large', torch.tensor([1e10, 1.5]))
case('sci_large_int_valued', torch.tensor([1e9, 2.0]))
case('sci_int_valued_range', torch.tensor([1.0, 5000.0]))
case('sci_small', torch.tensor([1e-5, 2e-5]))
case('sci_matrix_inf', torch.tensor([[1e-7, -3.5e6], [float('inf'), 0.0]]))
case('mixed_widths', torch.tensor([-1.0, 100.5, 0.001, -0.0]))
case('rounding_ties', torch.tensor([1.03125, 0.15625, -2.40625], dtype=torch.float64))
case('wrapped', torch.randn(30))
case('wrapped_matrix', torch.randn(3, 14) * 100)
case('summarised_vector', torch.randn(1001))  # just over threshold=1000
case('threshold_not_summarised', torch.randn(1000))
case('summarised_matrix', torch.randn(40, 30))
case('summarised_rows', torch.randn(7, 150))
case('summarised_3d', torch.randn(8, 3, 50))
case('summarised_int', torch.arange(0, 1200))
case('requires_grad', torch.randn(3), requires_grad=True)
case('requires_grad_scalar', torch.tensor(0.5), requires_grad=True)
case('grad_fn', torch.randn(2, 2), grad_fn='mul')
case('parameter', torch.randn(2, 3), parameter=True)

# Random tensors of every scale (normal, wide range, integer-valued, tiny, huge, eighths, with NaN/Inf/-0).
random.seed(1)
for n in range(60):
    shape = [random.choice([1, 2, 3, 5, 7, 9, 40]) for _ in range(random.choice([0, 1, 1, 2, 2, 3]))]
    while math.prod(shape) > 1200:
        shape = shape[1:]
    kind = random.choice(['normal', 'scaled', 'ints', 'mixed', 'tiny', 'huge', 'eighths'])
    dt = random.choice([torch.float32, torch.float64])
    t = torch.randn(shape, dtype=dt)
    if kind == 'scaled':
        t = t * 10.0 ** random.randint(-6, 9)
    elif kind == 'ints':
        t = torch.randint(-1000, 1000, tuple(shape)).to(dt)
    elif kind == 'mixed':
        t = t * torch.tensor([10.0 ** random.randint(-5, 5) for _ in range(t.numel())], dtype=dt).reshape(t.shape)
    elif kind == 'tiny':
        t = t * 1e-30
    elif kind == 'huge':
        t = t * 1e30
    elif kind == 'eighths':
        t = torch.round(t * 8) / 8
    if random.random() < 0.25:
        t.view(-1)[random.randrange(t.numel())] = random.choice([float('nan'), float('inf'), float('-inf'), 0.0, -0.0])
    case(f'random_{n}_{kind}', t)

with open('test/data/print.json', 'w') as f:
    json.dump({'source': 'scripts/gen_print_fixtures.py with PyTorch ' + torch.__version__, 'cases': cases}, f)
print(len(cases), 'cases')

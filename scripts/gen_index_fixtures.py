# Writes test/data/index.json: PyTorch's results and gradients for Python subscripts (x[...] reads and x[...] = v writes).
# Run: /usr/bin/python3 scripts/gen_index_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
# Each case: inputs (fixed seed), output, a random probe R, and d sum(output * R) / d input for float inputs.
# src/autograd/ops/subscript.test.ts holds the same subscript for each case name, in attend's form.
import json
import math
import torch

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # reference in double; the tests compare float32 with a tolerance


def rn(*s): return torch.randn(*s)
def ix(*v): return torch.tensor(v)
def mask(*v): return torch.tensor(v, dtype=torch.bool)


def put(spec):
    """y = x.clone(); y[spec(...)] = v: the functional form of assignment, differentiable in x and v."""
    def f(x, v, *idx):
        y = x.clone()
        y[spec(*idx)] = v
        return y
    return f


def put_scalar(spec, value):
    def f(x, *idx):
        y = x.clone()
        y[spec(*idx)] = value
        return y
    return f


CASES = {
    # reading: integers, slices, None, Ellipsis
    'int_neg': (lambda x: x[-1], [rn(3, 4)]),
    'int_pair': (lambda x: x[1, -2], [rn(3, 4, 5)]),
    'slice_step': (lambda x: x[:, 0::2], [rn(3, 5)]),
    'slice_neg': (lambda x: x[-3:-1, ::3], [rn(4, 7)]),
    'slice_clamp': (lambda x: x[1:100, -100:2], [rn(3, 4)]),
    'slice_empty': (lambda x: x[2:1], [rn(3, 4)]),
    'newaxis': (lambda x: x[:, None, 1:, None], [rn(2, 3)]),
    'ellipsis_last': (lambda x: x[..., 1], [rn(2, 3, 4)]),
    'ellipsis_newaxis': (lambda x: x[..., None, :], [rn(2, 3, 4)]),
    'ellipsis_mid': (lambda x: x[0, ..., 1:3], [rn(2, 3, 4)]),
    'mask_attention': (lambda x: x[:, None, None, :], [rn(2, 5)]),
    # reading: integer tensors (advanced indexing)
    'index_first': (lambda x, i: x[i], [rn(3, 4), ix([0, 2], [2, 1])]),
    'index_mid_negative': (lambda x, i: x[:, i], [rn(2, 5, 3), ix(-1, 0, 3, 0)]),
    'index_adjacent': (lambda x, i, j: x[:, i, j], [rn(2, 4, 5, 3), ix([3], [0]), ix(2, 1, 4)]),
    'index_separated': (lambda x, i, j: x[i, :, j], [rn(3, 4, 5), ix(0, 2, 2), ix(1, -1, 3)]),
    'index_int_then_tensor': (lambda x, i: x[1, :, i], [rn(3, 4, 5), ix(0, 4)]),
    'index_with_newaxis': (lambda x, i: x[1:, i, None], [rn(3, 4, 5), ix(0, 2)]),
    'index_0d': (lambda x, i, j: x[i, :, j], [rn(3, 4, 5), torch.tensor(1), ix(0, 1)]),
    # reading: boolean masks
    'mask_full': (lambda x, m: x[m], [rn(3, 4), rn(3, 4) > 0]),
    'mask_leading': (lambda x, m: x[m], [rn(3, 4), mask(True, False, True)]),
    'mask_mid': (lambda x, m: x[:, m], [rn(2, 4, 3), mask(False, True, True, False)]),
    'mask_2d_leading': (lambda x, m: x[m], [rn(2, 3, 4), mask([True, False, True], [False, False, True])]),
    'mask_and_int': (lambda x, m: x[m, 1], [rn(3, 4, 5), mask(True, False, True)]),
    # writing (functional: clone, then assign)
    'put_slice_step': (put(lambda: (slice(None), slice(0, None, 2))), [rn(3, 6), rn(3, 3)]),
    'put_broadcast': (put(lambda: (slice(1, None), slice(None))), [rn(3, 4), rn(4)]),
    'put_int_neg': (put(lambda: -1), [rn(3, 4), rn(4)]),
    'put_leading_ones': (put(lambda: 0), [rn(3, 4), rn(1, 4)]),
    'put_newaxis': (put(lambda: (None, 0, Ellipsis)), [rn(3, 4), rn(1, 4)]),
    'put_ellipsis': (put(lambda: (Ellipsis, 1)), [rn(2, 3, 4), rn(3)]),
    'put_scalar': (put_scalar(lambda: (Ellipsis, 0), 2.5), [rn(2, 3)]),
    'put_mask_scalar': (put_scalar(lambda m: m, 0.0), [rn(3, 4), rn(3, 4) > 0]),
    'put_mask_rows': (put(lambda m: m), [rn(3, 4), rn(4), mask(True, False, True)]),
    'put_mask_values': (put(lambda m: m), [rn(2, 3), rn(4), mask([True, False, True], [False, True, True])]),
    'put_index': (put(lambda i: i), [rn(4, 3), rn(2, 3), ix(2, 0)]),
    'put_index_mid': (put(lambda i: (slice(None), i)), [rn(2, 5), rn(2, 2), ix(-1, 1)]),
    'put_index_pair': (put(lambda i, j: (i, j)), [rn(3, 4), rn(3), ix(0, 2, 1), ix(3, 0, -1)]),
    'put_index_broadcast_value': (put(lambda i: (i, slice(1, 3))), [rn(4, 3), rn(1), ix(1, 3)]),
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
    probe = torch.randn(y.shape)
    (y * probe).sum().backward()
    case['probe'] = flat(probe)
    case['grads'] = [flat(x.grad) if x.grad is not None else None for x in leaves]
    return case


out = {name: make_case(fn, inputs) for name, (fn, inputs) in CASES.items()}


def positional_encoding(max_len, d_model):
    """The book's buffer, in float32 as the book builds it."""
    pe = torch.zeros(max_len, d_model, dtype=torch.float32)
    position = torch.arange(0, max_len, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.unsqueeze(0)


pe = positional_encoding(50, 16)
out['positional_encoding'] = {'inputs': [], 'output': {'shape': list(pe.shape), 'dtype': 'float32', 'data': flat(pe)}}

with open('test/data/index.json', 'w') as f:
    json.dump({'source': 'scripts/gen_index_fixtures.py with PyTorch ' + torch.__version__ + ' (float64)', 'cases': out}, f)
print(f'{len(out)} cases')

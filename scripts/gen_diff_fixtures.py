# Writes test/data/diff/calls.json: PyTorch 1.13's results for thousands of seeded random op calls (the differential suite).
# Run: /usr/bin/python3 scripts/gen_diff_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
# Exploring beyond the committed calls: --seed N --scale K --out FILE, then replay with DIFF_FIXTURES=FILE.
#
# Inputs are never stored: each input is a spec {s: shape, d: dtype, k: kind, seed, view} that src/test-util/diff.ts
# regenerates bit-for-bit with the same counter-based hash (lowbias32), so both sides see identical float32 values
# (only the REGRESSION calls, minimal repros of every mismatch class found so far, carry explicit values).
# Each call stores the output (or the fact that torch raised), and the gradients of sum(out * R) for float inputs,
# R regenerated from the call's seed. Outputs over SMALL elements are stored as summaries + sampled elements.
#
# Adding an op: one OPS entry below (name, family, tolerance kind, input/params generator, torch call) and one entry
# with the same name in the OPS table of src/test-util/diff.ts (the attend call); then rerun this script.
import json
import math
import random
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F

ARGS = dict(zip(sys.argv[1::2], sys.argv[2::2]))
OUT = ARGS.get('--out', 'test/data/diff/calls.json')
SCALE = float(ARGS.get('--scale', 1))
SMALL = 64          # outputs with more elements are stored as summaries
SAMPLES = 48        # sampled elements of a summarised tensor
INF, NAN = math.inf, math.nan
SPECIAL = [NAN, INF, -INF, 1e30, -1e30, 0.0, -0.0, 88.5]
EXTREME = [2147483647, -2147483648, 65536, 46341, -1, 0]
DT = {'float32': torch.float32, 'float64': torch.float64, 'float16': torch.float16, 'bfloat16': torch.bfloat16,
      'int32': torch.int32, 'bool': torch.bool}

# ---- the shared generator (mirrored in src/test-util/diff.ts) ----


def h32(x):
    x = np.asarray(x, dtype=np.uint32).copy()
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7feb352d)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846ca68b)
    x ^= x >> np.uint32(16)
    return x


def bits(seed, n):
    """n uint32 words for a seed: h32(h32(i ^ k1) + k2)."""
    k1 = h32(np.array([seed & 0xffffffff], dtype=np.uint32))[0]
    k2 = h32(np.array([(seed ^ 0x5bd1e995) & 0xffffffff], dtype=np.uint32))[0]
    i = np.arange(n, dtype=np.uint32)
    with np.errstate(over='ignore'):
        return h32(h32(i ^ k1) + k2)


def values(spec):
    """The float64 / int values of an input spec, exactly as diff.ts makes them."""
    if spec['k'] == 'v':  # explicit values (the regression calls)
        return np.array([float(v) for v in spec['vals']], dtype=np.float64).reshape(spec['s'])
    n = int(np.prod(spec['s'])) if spec['s'] else 1
    u = bits(spec['seed'], n).astype(np.int64)
    k = spec['k']
    normal = ((u >> 8) - 8388608) / 4194304.0  # [-2, 2), exact in float32
    if k == 'n':
        v = normal
    elif k == 'p':
        v = ((u >> 9) + 2097152) / 4194304.0  # [0.5, 2.5)
    elif k in ('q', 'i'):
        v = spec['lo'] + u % (spec['hi'] - spec['lo'])
    elif k == 'b':
        v = u >> 31
    elif k == 'x':
        sp = np.array(SPECIAL)[(u >> 2) % len(SPECIAL)]
        v = np.where((u & 3) == 0, sp, normal)
    elif k == 'I':
        v = np.where((u & 1) == 1, np.array(EXTREME)[(u >> 1) % len(EXTREME)], u % 7 - 3)
    else:
        raise ValueError(k)
    return v.reshape(spec['s'])


def make(spec, wide=False):
    """(leaf, viewed input) for a spec; the leaf requires grad when float. wide: float32 and halves become float64."""
    dt = torch.float64 if wide and spec['d'] in ('float32', 'float16', 'bfloat16') else DT[spec['d']]
    v = values(spec)
    leaf = torch.tensor(v, dtype=torch.float64).to(dt) if dt.is_floating_point else torch.tensor(v.astype(np.int64)).to(dt)
    if dt.is_floating_point and not spec.get('ng'):
        leaf.requires_grad_(True)
    x = leaf
    for op in spec.get('view', []):
        if op[0] == 't':
            x = x.transpose(op[1], op[2])
        elif op[0] == 'sl':
            x = x[(slice(None),) * op[1] + (slice(op[2], op[3], op[4]),)]
        elif op[0] == 'ex':
            x = x.expand(*op[1])
    return leaf, x


def probe(seed, shape):
    return values({'s': list(shape), 'k': 'n', 'seed': seed})

# ---- random shapes and inputs ----


R = random.Random(int(ARGS.get('--seed', 0)))
DIMS = [0, 1, 1, 2, 2, 3, 3, 4, 5]


def shape(rank=None, lo=0, hi=3, dims=DIMS):
    r = R.randint(lo, hi) if rank is None else rank
    return [R.choice(dims) for _ in range(r)]


def nz(rank=None, lo=1, hi=3):
    return shape(rank, lo, hi, [1, 2, 2, 3, 3, 4, 5])


SEED = [1]


def T(s, d='float32', k=None, lo=None, hi=None, view=True):
    """An input spec of final shape s; with view=True, sometimes reached through transpose/slice/expand."""
    if k is None or d == 'bool' or (d == 'int32' and k not in ('i', 'q', 'I')):
        k = {'int32': 'i', 'bool': 'b'}.get(d, 'n')  # integer tensors only take integer kinds
    if k in ('i', 'q') and lo is None:
        lo, hi = -3, 4
    SEED[0] += 1
    spec = {'s': list(s), 'd': d, 'k': k, 'seed': SEED[0]}
    if lo is not None:
        spec['lo'], spec['hi'] = lo, hi
    if view and len(s) > 0 and R.random() < 0.25:
        kind = R.choice(['t', 'sl', 'ex'])
        if kind == 't' and len(s) >= 2:
            a, b = R.sample(range(len(s)), 2)
            base = list(s)
            base[a], base[b] = base[b], base[a]
            spec['s'], spec['view'] = base, [['t', a, b]]
        elif kind == 'sl':
            d_ = R.randrange(len(s))
            step, start = R.choice([1, 2]), R.choice([0, 1])
            base = list(s)
            base[d_] = start + s[d_] * step + R.choice([0, 1])
            spec['s'], spec['view'] = base, [['sl', d_, start, start + s[d_] * step, step]]
        elif kind == 'ex':
            base = [1 if R.random() < 0.5 else v for v in s]
            if base != list(s):
                spec['s'], spec['view'] = base, [['ex', list(s)]]
    return spec


def fdt():
    return R.choice(['float32'] * 8 + ['float64'])


def anydt():
    return R.choice(['float32'] * 5 + ['int32', 'int32', 'bool', 'float64'])


def fkind():
    return R.choice(['n', 'n', 'n', 'q', 'x'])


def bcast_pair():
    a = shape()
    b = list(a)
    if R.random() < 0.5:
        b = [1 if R.random() < 0.3 else v for v in b]
        b = b[R.randint(0, len(b)):] if R.random() < 0.3 else b
        if R.random() < 0.5:
            a, b = b, a
    if R.random() < 0.05:
        b = shape()  # often not broadcastable: both should raise
    return a, b


def scalar():
    return R.choice([0, 1, 2, -1, 3, 0.5, -2.5, 1e30, 1e-3, math.inf, -math.inf, 7, -0.25])


def dim_of(s, allow_none=True):
    if allow_none and R.random() < 0.2:
        return None
    r = max(len(s), 1)
    if R.random() < 0.05:
        return r + 1  # out of range
    return R.randrange(-r, r)

# ---- op table ----


def g_unary(kinds):
    def g():
        d = anydt()
        k = R.choice(kinds) if d in ('float32', 'float64') else None
        return [T(shape(), d, k)], {}
    return g


def g_binary():
    def g():
        a, b = bcast_pair()
        da = anydt()
        db = da if R.random() < 0.7 else anydt()
        ka = fkind() if da.startswith('float') else None
        kb = fkind() if db.startswith('float') else None
        r = R.random()
        if r < 0.2:
            return [T(a, da, ka)], {'s': scalar(), 'side': 'r'}
        if r < 0.25:
            return [T(a, da, ka)], {'s': scalar(), 'side': 'l'}
        return [T(a, da, ka), T(b, db, kb)], {}
    return g


def pyscalar(v):
    return int(v) if float(v).is_integer() and abs(v) < 2 ** 31 else float(v)


def binop(f):
    def call(xs, p):
        if 's' in p:
            s = pyscalar(p['s'])
            return f(xs[0], s) if p['side'] == 'r' else f(s, xs[0])
        return f(xs[0], xs[1])
    return call


def t_max(x, y):
    return torch.maximum(x, y if isinstance(y, torch.Tensor) else torch.tensor(y, dtype=torch.result_type(x, y)))


def t_min(x, y):
    return torch.minimum(x, y if isinstance(y, torch.Tensor) else torch.tensor(y, dtype=torch.result_type(x, y)))


def lsc(f):
    # op(scalar, x) for ops whose torch form needs a tensor first (all of them are symmetric).
    def call(a, b):
        return f(b, a) if not isinstance(a, torch.Tensor) else f(a, b)
    return call


def g_red(kind):
    def g():
        d = anydt() if R.random() < 0.3 else fdt()
        s = shape(lo=0, hi=3)
        x = T(s, d, fkind() if d.startswith('float') else None)
        p = {}
        if kind in ('sum', 'mean', 'max', 'min', 'var', 'std', 'logsumexp'):
            if R.random() < 0.2 and len(s) >= 2:
                p['dim'] = R.sample(range(len(s)), 2)
            else:
                p['dim'] = dim_of(s, kind != 'logsumexp' or R.random() < 0.05)
            p['keepdim'] = R.random() < 0.4
        elif kind in ('argmax', 'argmin'):
            p['dim'] = dim_of(s)
            p['keepdim'] = R.random() < 0.4
        elif kind == 'cumsum':
            p['dim'] = dim_of(s, False)
        if kind in ('var', 'std'):
            p['correction'] = R.choice([0, 1, 1])
        return [x], p
    return g


def dimarg(p):
    d = p.get('dim')
    return tuple(d) if isinstance(d, list) else d


def t_red(name):
    def call(xs, p):
        x, d, k = xs[0], dimarg(p), p.get('keepdim', False)
        if d is None and k and name not in ('argmax', 'argmin'):
            d = tuple(range(x.dim()))  # sum(dim=None, keepdim=True) keeps every dimension, as in torch 2.x
        if name in ('sum', 'mean'):
            f = getattr(torch, name)
            return f(x) if d is None else f(x, d, keepdim=k)
        if name in ('max', 'min'):
            f = torch.amax if name == 'max' else torch.amin
            if d is None:
                if x.numel() == 0:
                    raise RuntimeError('empty')
                return f(x)
            return f(x, d, keepdim=k)
        if name in ('argmax', 'argmin'):
            return getattr(torch, name)(x, d, keepdim=k)
        if name in ('var', 'std'):
            return getattr(torch, name)(x, d, correction=p['correction'], keepdim=k)
        if name == 'logsumexp':
            return torch.logsumexp(x, d, keepdim=k)
        if name == 'cumsum':
            return torch.cumsum(x, d)
    return call


def g_matmul():
    m, k, n = R.choice([0, 1, 2, 3, 5]), R.choice([0, 1, 3, 4, 7]), R.choice([1, 2, 3, 6])
    ra, rb = R.choice([1, 2, 2, 3, 4]), R.choice([1, 2, 2, 3])
    batch = nz(R.randint(0, 2))
    a = ([] if ra <= 2 else [1 if R.random() < 0.3 else b for b in batch][-(ra - 2):]) + ([m, k] if ra >= 2 else [k])
    b = ([] if rb <= 2 else batch[-(rb - 2):]) + ([k, n] if rb >= 2 else [k])
    if R.random() < 0.05:
        b[0 if rb == 1 else -2] += 1
    d = 'float32' if R.random() < 0.9 else R.choice(['float64', 'int32'])
    return [T(a, d, R.choice(['n', 'n', 'q', 'x'] if R.random() < 0.1 else ['n'])), T(b, d)], {}


def g_bmm():
    B, m, k, n = R.choice([1, 2, 3]), R.choice([0, 1, 3, 4]), R.choice([0, 1, 2, 5]), R.choice([1, 2, 4])
    ta, tb = R.random() < 0.5, R.random() < 0.5
    Bb = B if R.random() < 0.8 else 1
    return [T([B, k, m] if ta else [B, m, k]), T([Bb, n, k] if tb else [Bb, k, n])], {'ta': ta, 'tb': tb}


def t_bmm(xs, p):
    a = xs[0].transpose(1, 2) if p['ta'] else xs[0]
    b = xs[1].transpose(1, 2) if p['tb'] else xs[1]
    return torch.matmul(a, b)  # attend's bmm broadcasts a batch of 1


def g_linear():
    lead, i, o = shape(lo=0, hi=2), R.choice([0, 1, 3, 4]), R.choice([1, 2, 5])
    ins = [T(lead + [i]), T([o, i])]
    if R.random() < 0.6:
        ins.append(T([o]))
    return ins, {}


def g_softmax():
    s = shape(lo=0, hi=3)
    d = fdt() if R.random() < 0.95 else 'int32'
    return [T(s, d, fkind() if d.startswith('float') else None)], {'dim': dim_of(s, False)}


def g_norm(bias):
    def g():
        s = nz(lo=1, hi=3)
        nd = R.randint(1, len(s))
        ns = s[len(s) - nd:]
        ins = [T(s, 'float32', R.choice(['n', 'n', 'n', 'q']))]
        if R.random() < 0.7:
            ins.append(T(ns))
            if bias and R.random() < 0.7:
                ins.append(T(ns))
        return ins, {'ns': ns, 'eps': R.choice([1e-5, 1e-6, 0.1])}
    return g


def t_rms(xs, p):
    x = xs[0]
    dims = tuple(range(-len(p['ns']), 0))
    y = x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + p['eps'])
    return y * xs[1] if len(xs) > 1 else y


def g_shape_op(name):
    def g():
        d = anydt()
        s = shape(lo=0, hi=4)
        x = T(s, d, fkind() if d.startswith('float') else None)
        r = len(s)
        p = {}
        if name == 'reshape':
            n = int(np.prod(s)) if s else 1
            opts = [[n], [-1], [1, n], [n, 1, 1], s[::-1], [-1, 1]]
            if n % 2 == 0 and n > 0:
                opts += [[2, -1], [n // 2, 2]]
            p['shape'] = R.choice(opts) if R.random() < 0.95 else [n + 1]
        elif name == 'permute':
            p['dims'] = R.sample(range(r), r)
            if R.random() < 0.1 and r > 0:
                p['dims'][0] -= r
        elif name == 'transpose':
            p['d0'], p['d1'] = dim_of(s, False), dim_of(s, False)
        elif name == 'expand':
            p['shape'] = [R.choice([1, 2, 3]) for _ in range(R.randint(0, 2))] + [(R.choice([2, 3, -1]) if v == 1 else R.choice([v, v, v, -1])) for v in s]
        elif name == 'squeeze':
            p['dim'] = dim_of(s)
        elif name == 'unsqueeze':
            p['dim'] = R.randrange(-r - 1, r + 1)
        elif name == 'flatten':
            p['start'], p['end'] = R.choice([(0, -1), (1, -1), (0, 1), (-2, -1), (1, 2)])
        elif name in ('slice',):
            p['dim'] = dim_of(s, False)
            n = s[p['dim']] if -r <= p['dim'] < r else 3
            p['start'], p['end'], p['step'] = R.choice([0, 1, -1, -2, n + 1]), R.choice([n, 2, -1, 100, 0]), R.choice([1, 1, 2, 3])
        elif name == 'narrow':
            p['dim'] = dim_of(s, False)
            n = s[p['dim']] if -r <= p['dim'] < r else 3
            p['start'] = R.randint(0, max(n, 0))
            p['length'] = R.randint(0, max(n - p['start'], 0)) if R.random() < 0.9 else n + 1
        elif name == 'select':
            p['dim'] = dim_of(s, False)
            n = s[p['dim']] if -r <= p['dim'] < r else 3
            p['index'] = R.randint(-n, n) if n > 0 else 0
        elif name == 'split':
            p['dim'] = dim_of(s, False)
            n = s[p['dim']] if -r <= p['dim'] < r else 3
            if R.random() < 0.5:
                p['sizes'] = R.choice([1, 2, 3])
            else:
                a = R.randint(0, n)
                p['sizes'] = [a, n - a] if R.random() < 0.9 else [a, n - a + 1]
        elif name == 'chunk':
            p['dim'] = dim_of(s, False)
            p['chunks'] = R.choice([1, 2, 3, 4])
        elif name == 'flip':
            p['dims'] = R.sample(range(r), R.randint(0, r))
        elif name == 'repeat':
            p['reps'] = [R.choice([0, 1, 1, 2, 3]) for _ in range(R.randint(r, r + 1))]
        elif name == 'pad':
            k = R.randint(1, max(r, 1))
            p['pads'] = [R.choice([0, 1, 2]) for _ in range(2 * k)]
            p['value'] = R.choice([0, 1.5, -1])
        elif name in ('tril', 'triu'):
            p['diagonal'] = R.choice([0, 0, 1, -1, 2])
        elif name == 'unflatten':
            p['dim'] = dim_of(s, False)
            n = s[p['dim']] if -r <= p['dim'] < r else 3
            p['sizes'] = R.choice([[n], [1, n], [n, 1], [-1, 1]] + ([[2, n // 2], [-1, 2]] if n % 2 == 0 and n > 0 else [])) if R.random() < 0.95 else [n + 1]
        elif name == 'movedim':
            p['src'], p['dst'] = dim_of(s, False), dim_of(s, False)
        elif name == 'cast':
            p['dtype'] = R.choice(['float32', 'int32', 'bool', 'float64'])
            if p['dtype'] == 'int32' and x['k'] == 'x':
                x['k'] = 'n'  # NaN / inf / 1e30 to int32 is undefined in C (torch gives INT_MIN on x86)
        return [x], p
    return g


def t_shape_op(name):
    def call(xs, p):
        x = xs[0]
        if name == 'reshape':
            return x.reshape(p['shape'])
        if name == 'permute':
            return x.permute(p['dims'])
        if name == 'transpose':
            return x.transpose(p['d0'], p['d1'])
        if name == 'expand':
            return x.expand(p['shape'])
        if name == 'squeeze':
            return x.squeeze() if p['dim'] is None else x.squeeze(p['dim'])
        if name == 'unsqueeze':
            return x.unsqueeze(p['dim'])
        if name == 'flatten':
            return x.flatten(p['start'], p['end'])
        if name == 'slice':
            d = p['dim'] % x.dim() if -x.dim() <= p['dim'] < x.dim() else p['dim']
            if d >= x.dim() or d < 0:
                raise IndexError('dim')
            return x[(slice(None),) * d + (slice(p['start'], p['end'], p['step']),)]
        if name == 'narrow':
            return x.narrow(p['dim'], p['start'], p['length'])
        if name == 'select':
            return x.select(p['dim'], p['index'])
        if name == 'split':
            return list(torch.split(x, p['sizes'], p['dim']))
        if name == 'chunk':
            return list(torch.chunk(x, p['chunks'], p['dim']))
        if name == 'flip':
            return x.flip(p['dims'])
        if name == 'repeat':
            return x.repeat(*p['reps']) if p['reps'] else x.repeat(())
        if name == 'pad':
            return F.pad(x, p['pads'], value=pyscalar(p['value']))
        if name == 'tril':
            return x.tril(p['diagonal'])
        if name == 'triu':
            return x.triu(p['diagonal'])
        if name == 'clone':
            return x.clone()
        if name == 'unflatten':
            return x.unflatten(p['dim'], p['sizes'])
        if name == 'movedim':
            return torch.movedim(x, p['src'], p['dst'])
        if name == 'cast':
            return x.to(DT[p['dtype']])
    return call


def g_cat(stack):
    def g():
        s = shape(lo=0 if stack else 1, hi=3)
        d = anydt()
        n = R.randint(1, 3)
        r = len(s)
        dim = R.randrange(-r - 1, r + 1) if stack else R.randrange(-r, r)
        ins = []
        for _ in range(n):
            t = list(s)
            if not stack and R.random() < 0.5:
                t[dim] = R.choice([0, 1, 2])
            ins.append(T(t, d if R.random() < 0.9 else anydt(), fkind() if d.startswith('float') else None))
        return ins, {'dim': dim}
    return g


def g_where():
    c, a = bcast_pair()
    d = anydt()
    b = list(a) if R.random() < 0.7 else c
    ins = [T(c, 'bool' if R.random() < 0.95 else 'float32')]
    p = {}
    if R.random() < 0.3:
        p['sa'] = scalar()
    else:
        ins.append(T(a, d, fkind() if d.startswith('float') else None))
    if R.random() < 0.3:
        p['sb'] = scalar()
    else:
        ins.append(T(b, d if R.random() < 0.8 else anydt()))
    return ins, p


def t_where(xs, p):
    # torch 1.13's where takes no Python scalars: a 0-d tensor stands for one, in the other operand's float dtype so
    # that the value is not rounded through float32 (a 0-d tensor never widens a dimensioned one of its category).
    other = xs[1] if len(xs) > 1 and xs[1].is_floating_point() else None

    def sc(v):
        v = pyscalar(v)
        return torch.tensor(v, dtype=other.dtype) if other is not None and isinstance(v, float) else torch.tensor(v)
    it = iter(xs[1:])
    a = sc(p['sa']) if 'sa' in p else next(it)
    b = sc(p['sb']) if 'sb' in p else next(it)
    return torch.where(xs[0], a, b)


def g_masked_fill():
    a, m = bcast_pair()
    d = anydt()
    return [T(a, d, fkind() if d.startswith('float') else None), T(m, 'bool' if R.random() < 0.95 else 'float32')], {'value': scalar()}


def g_clamp():
    d = anydt()
    lo, hi = R.choice([None, -1, -0.5, 0, 1]), R.choice([None, 0.5, 1, 2, -1])
    if lo is None and hi is None:
        lo = 0
    return [T(shape(), d, fkind() if d.startswith('float') else None)], {'min': lo, 'max': hi}


def t_clamp(xs, p):
    return torch.clamp(xs[0], None if p['min'] is None else pyscalar(p['min']), None if p['max'] is None else pyscalar(p['max']))


def g_index_select():
    s = shape(lo=1, hi=3)
    d = R.randrange(-len(s), len(s))
    n = s[d]
    idx = T([R.choice([0, 1, 2, 4])], 'int32', 'i', 0 if R.random() < 0.95 else -1, max(n, 1), view=False)
    dt = anydt()
    return [T(s, dt, fkind() if dt.startswith('float') else None), idx], {'dim': d}


def g_gather(scatter):
    def g():
        s = nz(lo=1, hi=3)
        d = R.randrange(-len(s), len(s))
        ish = [R.randint(0, v) for v in s] if R.random() < 0.3 else list(s)  # torch allows a smaller index
        ish[d] = R.choice([1, 2, 4])
        idx = T(ish, 'int32', 'i', 0, s[d], view=False)
        dt = anydt() if R.random() < 0.2 else 'float32'
        ins = [T(s, dt, fkind() if dt.startswith('float') else None), idx]
        if scatter:
            ins.append(T(ish, dt))
        return ins, {'dim': d}
    return g


def g_embedding():
    num, dim = R.choice([1, 3, 5]), R.choice([1, 2, 4])
    ids = T(shape(lo=0, hi=2), 'int32', 'i', 0 if R.random() < 0.95 else -1, num, view=False)
    p = {}
    if R.random() < 0.3:
        p['pad'] = R.randrange(num)
    return [ids, T([num, dim])], p


def g_one_hot():
    n = R.choice([1, 3, 5])
    return [T(shape(lo=0, hi=2), 'int32', 'i', 0 if R.random() < 0.9 else -1, n if R.random() < 0.95 else n + 1, view=False)], {'n': n}


def g_ce(nll):
    def g():
        N, C = R.choice([1, 2, 4]), R.choice([1, 2, 3, 5])
        form = R.choice(['2d', '2d', '2d', 'nd', '1d'])
        xs = [N, C] if form == '2d' else [N, C, R.choice([1, 2, 3])] if form == 'nd' else [C]
        ts = [N] if form == '2d' else [N, xs[2]] if form == 'nd' else []
        p = {'reduction': R.choice(['mean', 'mean', 'sum', 'none'])}
        if R.random() < 0.3:
            p['ignore'] = R.choice([-100, 0, 1])
        ignore = p.get('ignore', -100)
        tgt = T(ts, 'int32', 'i', 0, C, view=False)
        r = R.random()
        if r < 0.15:
            tgt = T(ts, 'int32', 'i', ignore, ignore + 1, view=False)  # every target ignored
        elif r < 0.3 and 'ignore' not in p:
            p['ignore'] = -1
            tgt = T(ts, 'int32', 'i', -1, C, view=False)  # some targets ignored
        ins = [T(xs, 'float32', R.choice(['n', 'n', 'x']) if R.random() < 0.1 else 'n'), tgt]
        if not nll and R.random() < 0.25:
            ins[1] = T(xs, 'float32', 'p')  # probability targets (not normalised, as torch allows)
            p.pop('ignore', None)
        if R.random() < 0.3:
            ins.append(dict(T([C], 'float32', 'p', view=False), ng=True))  # torch: no gradient for class weights
            p['weight'] = True
        if not nll and R.random() < 0.3:
            p['ls'] = R.choice([0.1, 0.5])
        return ins, p
    return g


def t_ce(nll):
    def call(xs, p):
        x = xs[0]
        if nll:
            x = x.log_softmax(0 if x.dim() == 1 else 1)
        t = xs[1] if xs[1].is_floating_point() else xs[1].long()
        kw = {'reduction': p['reduction'], 'weight': xs[2] if p.get('weight') else None}
        if 'ignore' in p:
            kw['ignore_index'] = p['ignore']
        if nll:
            return F.nll_loss(x, t, **kw)
        return F.cross_entropy(x, t, label_smoothing=p.get('ls', 0.0), **kw)
    return call


def g_loss():
    a, b = bcast_pair() if R.random() < 0.1 else (lambda s: (s, s))(shape())
    kb = 'b' if R.random() < 0.3 else 'n'
    tb = T(b, 'float32', 'q', 0, 2) if kb == 'b' else T(b, 'float32', R.choice(['n', 'n', 'q']))  # NaN/inf only in inputs
    return [T(a, 'float32', fkind()), tb], {'reduction': R.choice(['mean', 'sum', 'none'])}


def g_conv(nd):
    def g():
        B, C, O, groups = R.choice([1, 2]), R.choice([1, 2, 4]), R.choice([1, 2, 4]), 1
        if R.random() < 0.3 and C % 2 == 0 and O % 2 == 0:
            groups = 2
        k = [R.choice([1, 2, 3]) for _ in range(nd)]
        sp = [R.choice([3, 4, 6]) for _ in range(nd)]
        p = {'stride': R.choice([1, 1, 2]), 'padding': R.choice([0, 0, 1, 2]), 'dilation': R.choice([1, 1, 2]), 'groups': groups}
        ins = [T(([B] if R.random() < 0.8 else []) + [C] + sp), T([O, C // groups] + k)]
        if R.random() < 0.6:
            ins.append(T([O]))
        return ins, p
    return g


def t_conv(nd):
    def call(xs, p):
        f = F.conv1d if nd == 1 else F.conv2d
        x = xs[0]
        squeeze = x.dim() == nd + 1
        y = f(x.unsqueeze(0) if squeeze else x, xs[1], xs[2] if len(xs) > 2 else None, stride=p['stride'], padding=p['padding'], dilation=p['dilation'], groups=p['groups'])
        return y.squeeze(0) if squeeze else y
    return call


def g_pool(nd):
    def g():
        k = R.choice([1, 2, 3])
        sp = [R.choice([2, 3, 5, 6]) for _ in range(nd)]
        p = {'k': k, 'stride': R.choice([None, 1, 2]), 'padding': R.choice([0, 0, 1])}
        return [T(([R.choice([1, 2])] if R.random() < 0.8 else []) + [R.choice([1, 3])] + sp, 'float32', R.choice(['n', 'n', 'q']))], p
    return g


def t_pool(fn):
    def call(xs, p):
        return fn(xs[0], p['k'], p['stride'], p['padding'])
    return call


def g_unfold():
    p = {'k': [R.choice([1, 2, 3]), R.choice([1, 2])], 'stride': [R.choice([1, 2]), 1], 'padding': [R.choice([0, 1]), R.choice([0, 1])], 'dilation': [1, R.choice([1, 2])]}
    return [T([R.choice([1, 2]), R.choice([1, 3]), R.choice([2, 3, 5]), R.choice([2, 4])])], p


def g_create(name):
    def g():
        if name == 'arange':
            a, b = R.choice([0, 1, -3, 0.5, 2]), R.choice([5, 7, -2, 2.5, 0, 10])
            return [], {'start': a, 'end': b, 'step': R.choice([1, 2, -1, 0.5, 3, 0.25]) if R.random() < 0.8 else 1}
        if name == 'linspace':
            return [], {'start': R.choice([0, -1, 0.5, 3]), 'end': R.choice([1, 10, -2, 0.1]), 'steps': R.choice([0, 1, 2, 5, 7])}
        if name == 'eye':
            return [], {'n': R.choice([0, 1, 3]), 'm': R.choice([None, 2, 4])}
        return [], {'shape': shape(), 'value': R.choice([0, 1, 2.5, -3, True, False, INF])}
    return g



def t_create(name):
    def call(xs, p):
        if name == 'arange':
            return torch.arange(pyscalar(p['start']), pyscalar(p['end']), pyscalar(p['step']))
        if name == 'linspace':
            return torch.linspace(p['start'], p['end'], p['steps'])
        if name == 'eye':
            return torch.eye(p['n']) if p['m'] is None else torch.eye(p['n'], p['m'])
        v = p['value']
        return torch.full(p['shape'], v if isinstance(v, bool) else pyscalar(v))
    return call


def g_sdpa():
    nd = R.choice([2, 3, 4])
    lead = [R.choice([1, 2]) for _ in range(nd - 2)]
    Tq, S, d, dv = R.choice([1, 2, 3, 5]), R.choice([1, 2, 3, 5]), R.choice([1, 2, 4]), R.choice([1, 3])
    ins = [T(lead + [Tq, d]), T(lead + [S, d]), T(lead + [S, dv])]
    p = {'causal': R.random() < 0.3}
    if R.random() < 0.3:
        ins.append(T([Tq, S], 'bool', view=False) if R.random() < 0.6 else T([Tq, S]))
        p['mask'] = True
    if R.random() < 0.2:
        p['scale'] = R.choice([0.5, 1.0])
    return ins, p


def t_sdpa(xs, p):
    q, k, v = xs[:3]
    s = q @ k.transpose(-2, -1) * (p['scale'] if 'scale' in p else 1 / math.sqrt(q.shape[-1]))
    if p.get('mask'):
        m = xs[3]
        s = s.masked_fill(~m, -math.inf) if m.dtype == torch.bool else s + m
    if p['causal']:
        t, n = s.shape[-2], s.shape[-1]
        s = s.masked_fill(torch.ones(t, n, dtype=torch.bool).triu(n - t + 1), -math.inf)
    empty = (s == -math.inf).all(-1, keepdim=True)
    pr = torch.where(empty, torch.zeros((), dtype=s.dtype), torch.where(empty, torch.zeros((), dtype=s.dtype), s).softmax(-1))
    return pr @ v


def g_pow():
    a, b = bcast_pair()
    d = anydt() if R.random() < 0.3 else 'float32'
    ka = R.choice(['p', 'q', 'n', 'x']) if d.startswith('float') else None
    r = R.random()
    if r < 0.4:
        return [T(a, d, ka, *((-2, 3) if ka == 'q' else ()))], {'s': R.choice([0, 1, 2, 3, -1, 0.5, -0.5, 2.5]), 'side': 'r'}
    if r < 0.5:
        return [T(a, d, ka)], {'s': R.choice([2, 0.5, 0]), 'side': 'l'}
    return [T(a, d, ka, *((-2, 3) if ka == 'q' else ())), T(b, 'float32' if d != 'int32' or R.random() < 0.5 else 'int32', 'q', -1, 3)], {}


UNARY = {
    'neg': (lambda x: -x if x.dtype != torch.bool else torch.neg(x)), 'abs': torch.abs, 'sign': torch.sign,
    'exp': torch.exp, 'log': torch.log, 'sqrt': torch.sqrt, 'rsqrt': torch.rsqrt, 'sin': torch.sin, 'cos': torch.cos,
    'tanh': torch.tanh, 'sigmoid': torch.sigmoid, 'relu': torch.relu, 'erf': torch.erf, 'gelu': F.gelu,
    'geluTanh': lambda x: F.gelu(x, approximate='tanh'), 'silu': F.silu, 'floor': torch.floor, 'ceil': torch.ceil,
    'round': torch.round, 'square': torch.square, 'reciprocal': torch.reciprocal, 'logicalNot': torch.logical_not,
}
EXACT_UNARY = {'neg', 'abs', 'sign', 'floor', 'ceil', 'round', 'square', 'relu', 'logicalNot'}
BINARY = {
    'add': lambda a, b: a + b, 'sub': lambda a, b: a - b, 'mul': lambda a, b: a * b, 'div': lambda a, b: a / b,
    'maximum': lsc(t_max), 'minimum': lsc(t_min),
}
COMPARE = {
    'eq': lambda a, b: a == b, 'ne': lambda a, b: a != b, 'lt': lambda a, b: a < b, 'le': lambda a, b: a <= b,
    'gt': lambda a, b: a > b, 'ge': lambda a, b: a >= b,
}
LOGICAL = {
    'logicalAnd': lambda a, b: torch.logical_and(a, b if isinstance(b, torch.Tensor) else torch.tensor(b)),
    'logicalOr': lambda a, b: torch.logical_or(a, b if isinstance(b, torch.Tensor) else torch.tensor(b)),
}


# name -> (family, tolerance kind, calls, generator, torch call)
# tolerance kinds (see diff.ts): exact (bitwise / correctly rounded), tr (transcendental: relative),
# sum (sums of products: atol from the per-element sum of |terms|), nl (composite: relative to the tensor's scale),
# norm (as nl, and gradients at the output's scale: layerNorm's gradient is a cancellation of terms of that size)
OPS = {}
for n, f in UNARY.items():
    kinds = ('p', 'n', 'q', 'x') if n in ('log', 'sqrt', 'rsqrt', 'reciprocal') else ('n', 'q') if n == 'geluTanh' else ('n', 'q', 'x')
    # (torch's tanh-GELU gradient is NaN at |x| >= 1e30: its own overflow, not a reference)
    OPS[n] = ('unary', 'exact' if n in EXACT_UNARY else 'tr', 70, g_unary(kinds), (lambda f: lambda xs, p: f(xs[0]))(f))
for n, f in BINARY.items():
    OPS[n] = ('binary', 'exact', 90, g_binary(), binop(f))
OPS['pow'] = ('binary', 'tr', 110, g_pow, binop(lambda a, b: torch.pow(a, b)))
for n, f in COMPARE.items():
    OPS[n] = ('compare', 'exact', 60, g_binary(), binop(f))
for n, f in LOGICAL.items():
    OPS[n] = ('logical', 'exact', 50, g_binary(), binop(lsc(f)))
OPS['where'] = ('select', 'exact', 90, g_where, t_where)
OPS['maskedFill'] = ('select', 'exact', 90, g_masked_fill, lambda xs, p: xs[0].masked_fill(xs[1], pyscalar(p['value'])))
OPS['clamp'] = ('select', 'exact', 80, g_clamp, t_clamp)
for n in ['sum', 'mean', 'cumsum']:
    OPS[n] = ('reduce', 'sum', 90, g_red(n), t_red(n))
for n in ['max', 'min', 'argmax', 'argmin']:
    OPS[n] = ('reduce', 'exact', 80, g_red(n), t_red(n))
for n in ['var', 'std', 'logsumexp']:
    OPS[n] = ('reduce', 'nl', 90, g_red(n), t_red(n))
OPS['matmul'] = ('matmul', 'sum', 150, g_matmul, lambda xs, p: torch.matmul(xs[0], xs[1]))
OPS['bmm'] = ('matmul', 'sum', 80, g_bmm, t_bmm)
OPS['linear'] = ('matmul', 'sum', 80, g_linear, lambda xs, p: F.linear(xs[0], xs[1], xs[2] if len(xs) > 2 else None))
OPS['softmax'] = ('norm', 'nl', 90, g_softmax, lambda xs, p: torch.softmax(xs[0], p['dim']))
OPS['logSoftmax'] = ('norm', 'nl', 90, g_softmax, lambda xs, p: torch.log_softmax(xs[0], p['dim']))
OPS['layerNorm'] = ('norm', 'norm', 80, g_norm(True), lambda xs, p: F.layer_norm(xs[0], p['ns'], xs[1] if len(xs) > 1 else None, xs[2] if len(xs) > 2 else None, p['eps']))
OPS['rmsNorm'] = ('norm', 'norm', 80, g_norm(False), t_rms)
for n in ['reshape', 'permute', 'transpose', 'expand', 'squeeze', 'unsqueeze', 'flatten', 'slice', 'narrow', 'select',
          'split', 'chunk', 'flip', 'repeat', 'pad', 'tril', 'triu', 'clone', 'unflatten', 'movedim']:
    OPS[n] = ('movement', 'exact', 60, g_shape_op(n), t_shape_op(n))
OPS['cast'] = ('cast', 'exact', 120, g_shape_op('cast'), t_shape_op('cast'))
OPS['cat'] = ('movement', 'exact', 80, g_cat(False), lambda xs, p: torch.cat(xs, p['dim']))
OPS['stack'] = ('movement', 'exact', 60, g_cat(True), lambda xs, p: torch.stack(xs, p['dim']))
OPS['indexSelect'] = ('indexing', 'exact', 70, g_index_select, lambda xs, p: torch.index_select(xs[0], p['dim'], xs[1].long()))
OPS['gather'] = ('indexing', 'exact', 70, g_gather(False), lambda xs, p: torch.gather(xs[0], p['dim'], xs[1].long()))
OPS['scatterAdd'] = ('indexing', 'sum', 70, g_gather(True), lambda xs, p: xs[0].scatter_add(p['dim'], xs[1].long(), xs[2]))
OPS['embedding'] = ('indexing', 'exact', 60, g_embedding, lambda xs, p: F.embedding(xs[0].long(), xs[1], p.get('pad')))
OPS['oneHot'] = ('indexing', 'exact', 50, g_one_hot, lambda xs, p: F.one_hot(xs[0].long(), p['n']))
OPS['crossEntropy'] = ('loss', 'nl', 150, g_ce(False), t_ce(False))
OPS['nllLoss'] = ('loss', 'nl', 90, g_ce(True), t_ce(True))
OPS['mseLoss'] = ('loss', 'nl', 60, g_loss, lambda xs, p: F.mse_loss(xs[0], xs[1], reduction=p['reduction']))
OPS['l1Loss'] = ('loss', 'nl', 60, g_loss, lambda xs, p: F.l1_loss(xs[0], xs[1], reduction=p['reduction']))
OPS['binaryCrossEntropyWithLogits'] = ('loss', 'nl', 60, g_loss, lambda xs, p: F.binary_cross_entropy_with_logits(xs[0], xs[1], reduction=p['reduction']))
OPS['conv1d'] = ('conv', 'sum', 60, g_conv(1), t_conv(1))
OPS['conv2d'] = ('conv', 'sum', 60, g_conv(2), t_conv(2))
OPS['maxPool1d'] = ('conv', 'exact', 40, g_pool(1), t_pool(F.max_pool1d))
OPS['maxPool2d'] = ('conv', 'exact', 40, g_pool(2), t_pool(F.max_pool2d))
OPS['avgPool1d'] = ('conv', 'sum', 40, g_pool(1), t_pool(F.avg_pool1d))
OPS['avgPool2d'] = ('conv', 'sum', 40, g_pool(2), t_pool(F.avg_pool2d))
OPS['unfold'] = ('conv', 'exact', 40, g_unfold, lambda xs, p: F.unfold(xs[0], p['k'], p['dilation'], p['padding'], p['stride']))
for n in ['arange', 'linspace', 'eye', 'full']:
    OPS[n] = ('create', 'tr', 30, g_create(n), t_create(n))
OPS['scaledDotProductAttention'] = ('attention', 'nl', 100, g_sdpa, t_sdpa)

# float16 / bfloat16: the same calls on half inputs. torch 1.13's CPU lacks many float16 kernels: there the reference is
# the op in float32 rounded to float16 once (what GPU kernels do).
HALF = ['add', 'sub', 'mul', 'div', 'maximum', 'neg', 'abs', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'relu', 'gelu', 'silu',
        'sum', 'mean', 'max', 'softmax', 'logSoftmax', 'layerNorm', 'matmul', 'cast', 'lt', 'where', 'cat']


def g_half(name):
    def g():
        h = R.choice(['float16', 'bfloat16'])
        s = nz(lo=1, hi=3)
        k = R.choice(['n', 'n', 'p', 'x']) if name not in ('log', 'sqrt') else 'p'
        if name in ('add', 'sub', 'mul', 'div', 'maximum', 'lt'):
            if R.random() < 0.3:
                return [T(s, h, k)], {'s': R.choice([2, 0.5, -1.5]), 'side': 'r'}
            return [T(s, h, k), T(s[R.randint(0, len(s) - 1):], h, R.choice(['n', 'p']))], {}
        if name in ('sum', 'mean', 'max'):
            return [T(s, h, k)], {'dim': R.choice([None, -1, 0]), 'keepdim': False}
        if name in ('softmax', 'logSoftmax'):
            return [T(s, h, k)], {'dim': -1}
        if name == 'layerNorm':
            return [T(s, h), T(s[-1:], h), T(s[-1:], h)], {'ns': s[-1:], 'eps': 1e-5}
        if name == 'matmul':
            m, kk, n = R.choice([1, 3]), R.choice([2, 4, 8]), R.choice([1, 2, 3])
            return [T([m, kk], h), T([kk, n], h)], {}
        if name == 'cast':
            if R.random() < 0.5:
                return [T(s, 'float32', R.choice(['n', 'x']))], {'dtype': h}
            return [T(s, h, 'n')], {'dtype': R.choice(['float32', 'float16', 'bfloat16', 'bool'])}
        if name == 'where':
            return [T(s, 'bool'), T(s, h, k), T(s, h)], {}
        if name == 'cat':
            return [T(s, h, k), T(s, h)], {'dim': -1}
        return [T(s, h, k)], {}
    return g


def half_call(fn):
    def call(xs, p):
        try:
            return fn(xs, p)
        except RuntimeError as e:
            if "for 'Half'" not in str(e):
                raise
        ys = fn([x.float() if x.dtype == torch.float16 else x for x in xs], p)
        return [y.half() for y in ys] if isinstance(ys, list) else ys.half() if ys.is_floating_point() else ys
    return call


for n in HALF:
    family, tol, _, _, fn = OPS[n]
    OPS['half.' + n] = ('half', tol, 25, g_half(n), half_call(fn))

# Shapes over 2^17 elements, so that the wasm backend splits the work over its thread pool.
BIG = [
    ('exp', [[512, 300]], {}), ('gelu', [[400, 400]], {}), ('sigmoid', [[140000]], {}), ('relu', [[3, 50000]], {}),
    ('tanh', [[300, 500]], {}), ('log', [[200, 700]], {}), ('add', [[300, 500], [500]], {}), ('mul', [[400, 400], [400, 1]], {}),
    ('div', [[140000], [140000]], {}), ('maximum', [[300, 500], [300, 500]], {}), ('lt', [[300, 500], [300, 500]], {}),
    ('sum', [[600, 300]], {'dim': 1, 'keepdim': False}), ('sum', [[600, 300]], {'dim': None, 'keepdim': False}),
    ('mean', [[300, 600]], {'dim': 0, 'keepdim': True}), ('max', [[300, 600]], {'dim': -1, 'keepdim': False}),
    ('softmax', [[300, 600]], {'dim': -1}), ('logSoftmax', [[600, 300]], {'dim': 0}), ('cumsum', [[400, 400]], {'dim': 1}),
    ('matmul', [[256, 520], [520, 64]], {}), ('matmul', [[4, 128, 300], [300, 32]], {}),
    ('layerNorm', [[500, 384], [384], [384]], {'ns': [384], 'eps': 1e-5}), ('rmsNorm', [[500, 384], [384]], {'ns': [384], 'eps': 1e-6}),
    ('transpose', [[400, 500]], {'d0': 0, 'd1': 1}), ('cast', [[140000]], {'dtype': 'int32'}), ('where', [[300, 500], [300, 500], [300, 500]], {}),
    ('crossEntropy', [[3000, 50], [3000]], {'reduction': 'mean'}), ('argmax', [[500, 300]], {'dim': 1, 'keepdim': False}),
    ('var', [[500, 300]], {'dim': 1, 'keepdim': False, 'correction': 1}), ('logsumexp', [[300, 500]], {'dim': -1, 'keepdim': False}),
]

# ---- recording ----


def encode(v):
    v = float(v)
    if math.isnan(v):
        return 'nan'
    if math.isinf(v):
        return 'inf' if v > 0 else '-inf'
    return v


def enc_values(t):
    """Shortest round-trip decimals for float32 (the replay rounds back with Math.fround)."""
    a = t.detach().reshape(-1)
    if a.dtype == torch.bool:
        return [int(v) for v in a.tolist()]
    if not a.dtype.is_floating_point:
        return [int(v) for v in a.tolist()]
    if a.dtype in (torch.float16, torch.bfloat16):
        a = a.float()  # exact: both halves are float32 values
    if a.dtype == torch.float32:
        return [encode(str(np.float32(v))) if math.isfinite(v) else encode(v) for v in a.tolist()]
    return [encode(v) for v in a.tolist()]


def dtname(t):
    return {torch.float32: 'float32', torch.float64: 'float64', torch.float16: 'float16', torch.bfloat16: 'bfloat16', torch.int32: 'int32', torch.int64: 'int32',
            torch.bool: 'bool', torch.uint8: 'uint8'}[t.dtype]


def record_tensor(t, scale, seed):
    """A stored result: all elements when small, else a summary and sampled elements (with their tolerance scale)."""
    t = t.detach()
    out = {'s': list(t.shape), 'd': dtname(t)}
    n = t.numel()
    if n <= SMALL:
        out['v'] = enc_values(t)
        if scale is not None:
            out['sc'] = enc_values(scale.float())
        return out
    a = t.reshape(-1).double()
    fin = torch.isfinite(a)
    out['nan'] = int(torch.isnan(a).sum())
    out['inf'] = int(torch.isinf(a).sum())
    out['sum'] = float(a[fin].sum())
    out['asum'] = float(a[fin].abs().sum())
    idx = (bits(seed ^ 0x2545f491, SAMPLES).astype(np.int64) % n).tolist()
    out['i'] = idx
    out['v'] = enc_values(t.reshape(-1)[idx])
    if scale is not None:
        out['sc'] = enc_values(scale.reshape(-1)[idx].float())
    return out


def enc_params(p):
    # JSON has no inf / nan: they travel as strings, as in stored values.
    if isinstance(p, dict):
        return {k: enc_params(v) for k, v in p.items()}
    if isinstance(p, list):
        return [enc_params(v) for v in p]
    if isinstance(p, float) and not math.isfinite(p):
        return encode(p)
    return p


def as_list(y):
    return list(y) if isinstance(y, (list, tuple)) else [y]


def abs_scale(fn, specs, p):
    """The op applied to |inputs| in float64: per element, the sum of |terms| of a sum of products."""
    xs = []
    for s in specs:
        _, x = make(s)
        x = x.detach()
        xs.append(x.double().abs() if x.is_floating_point() else x)
    with torch.no_grad():
        return [y.abs() for y in as_list(fn(xs, p))]


def forward_backward(cid, fn, specs, p, wide):
    """Outputs, and gradients of sum(out * R) for the float leaves (None when nothing is differentiable)."""
    leaves, xs = zip(*[make(s, wide) for s in specs]) if specs else ((), ())
    ys = as_list(fn(list(xs), p))
    floats = [i for i, leaf in enumerate(leaves) if leaf.requires_grad]
    outs = [(i, y) for i, y in enumerate(ys) if y.is_floating_point() and y.requires_grad]
    if not floats or not outs:
        return ys, leaves, floats, None
    loss = sum((y * torch.tensor(probe(cid * 1000 + i, y.shape), dtype=y.dtype)).sum() for i, y in outs)
    views = [xs[i] for i in floats if xs[i] is not leaves[i]]
    return ys, leaves, floats, (loss, [leaves[i] for i in floats] + views)


def f32_error(a, b):
    """max |a - b| over elements finite in both: torch's own float32 (or half) error against float64."""
    if a is None or b is None or not a.is_floating_point() or a.shape != b.shape:
        return 0.0
    a, b = a.detach().double().reshape(-1), b.detach().double().reshape(-1)
    fin = torch.isfinite(a) & torch.isfinite(b)
    e = float((a[fin] - b[fin]).abs().max()) if fin.any() else 0.0
    return float(f'{e * 1.01:.3g}')  # 3 digits, rounded up


def wide_run(cid, fn, specs, p):
    """The call in float64: (outputs, gradients), or None when it does not run."""
    try:
        ys, _, floats, lg = forward_backward(cid, fn, specs, p, True)
        gs = None
        if lg is not None:
            gs = dict(zip(floats, torch.autograd.grad(lg[0], lg[1], allow_unused=True)))
        return ys, gs
    except Exception:
        return None


def norm_scale(name, specs, p):
    """Per element of a normalisation's output: the size of what its rounding errors are relative to, in float64:
    (|x| + |mean|) * rstd * |w| + |b| for layerNorm (x - mean cancels), |x| * rstd * |w| for rmsNorm."""
    xs = [make(s, True)[1].detach() for s in specs]
    x, dims = xs[0], tuple(range(-len(p['ns']), 0))
    w = xs[1].abs() if len(xs) > 1 else 1.0
    if name.endswith('layerNorm'):
        mean = x.mean(dims, keepdim=True)
        rstd = torch.rsqrt(x.var(dims, unbiased=False, keepdim=True) + p['eps'])
        return [(x.abs() + mean.abs()) * rstd * w + (xs[2].abs() if len(xs) > 2 else 0.0)]
    rstd = torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + p['eps'])
    return [x.abs() * rstd * w]


def run_call(cid, name, fn, tol, specs, p):
    rec = {'id': cid, 'op': name, 'in': specs, 'p': enc_params(p)}
    try:
        ys, leaves, floats, lg = forward_backward(cid, fn, specs, p, False)
    except Exception as e:  # torch rejects the call: attend must raise too
        rec['raise'] = str(e).split('\n')[0][:120]
        return rec
    wide = wide_run(cid, fn, specs, p)
    scales = None
    if tol == 'norm':
        scales = norm_scale(name, specs, p)
    if tol == 'sum':
        try:
            scales = abs_scale(fn, specs, p)
        except Exception:
            scales = None
    rec['out'] = [record_tensor(y, scales[i] if scales and i < len(scales) and scales[i].shape == y.shape and y.is_floating_point() else None, cid * 7 + i) for i, y in enumerate(ys)]
    if wide and len(wide[0]) == len(ys):
        for r, y, y64 in zip(rec['out'], ys, wide[0]):
            r['e'] = f32_error(y, y64)
    if lg is None:
        return rec
    try:
        gs = torch.autograd.grad(lg[0], lg[1], allow_unused=True)
    except Exception as e:
        rec['bwraise'] = str(e).split('\n')[0][:120]
        return rec
    grads = [None] * len(specs)
    # The scale gradients are judged at: the largest gradient reaching an input or the view the op saw.
    rec['gs'] = max([float(g.detach().abs()[torch.isfinite(g)].max()) for g in gs if g is not None and torch.isfinite(g).any()] + [0.0])
    for i, g in zip(floats, gs):
        g = torch.zeros_like(leaves[i]) if g is None else g
        grads[i] = record_tensor(g, None, cid * 7 + 5)
        if wide and wide[1] is not None:
            g64 = wide[1].get(i)
            grads[i]['e'] = f32_error(g, torch.zeros_like(g) if g64 is None else g64)
    rec['g'] = grads
    return rec


# Regression calls: the minimal repros of every mismatch class found so far (issue 15's 13 classes, then the suite's
# own findings), with explicit values, so that they stay covered whatever the random calls happen to hit.
def V(vals, shape=None, d='float32', ng=False):
    spec = {'s': [len(vals)] if shape is None else shape, 'd': d, 'k': 'v', 'seed': 0, 'vals': [encode(v) for v in vals]}
    if ng:
        spec['ng'] = True
    return spec


ALL_IGNORED = V([-100, -100], d='int32')
REGRESSION = [
    ('triu', [V([1, 1, 1, 1], [2, 2], 'bool')], {'diagonal': 0}), ('tril', [V([1, 1, 1, 1], [2, 2], 'bool')], {'diagonal': 0}),
    ('maskedFill', [V([1, 2, 3], d='int32'), V([1, 0, 0], d='bool')], {'value': 2.5}),
    ('mul', [V([1, 0, 1], d='bool'), V([1, 1, 0], d='bool')], {}), ('maximum', [V([1, 0], d='bool'), V([0, 0], d='bool')], {}),
    ('crossEntropy', [V([1, 2, 3, 4, 5, 6], [2, 3]), ALL_IGNORED], {'reduction': 'mean'}),
    ('crossEntropy', [V([1, 2, 3, 4, 5, 6], [2, 3]), ALL_IGNORED], {'reduction': 'mean', 'ls': 0.1}),
    ('crossEntropy', [V([1, 2, 3, 4, 5, 6], [2, 3]), ALL_IGNORED, V([1, 2, 3], ng=True)], {'reduction': 'mean', 'weight': True}),
    ('crossEntropy', [V([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]), V([-100, -100, -100, -100], [2, 2], 'int32')], {'reduction': 'mean'}),
    ('crossEntropy', [V([1, 2, 3]), V([-100], [], 'int32')], {'reduction': 'mean'}),
    ('nllLoss', [V([1, 2, 3, 4, 5, 6], [2, 3]), ALL_IGNORED], {'reduction': 'mean'}),
    ('std', [V([1, 1, 1, 1, 2, 3], [2, 3])], {'dim': 1, 'keepdim': False, 'correction': 1}),
    ('relu', [V([NAN, 1, -1])], {}),
    ('crossEntropy', [V([1, 2, 3], [1, 3]), V([0.2, 0.3, 0.5], [1, 3]), V([1, 2, 10], ng=True)], {'reduction': 'mean', 'weight': True}),
    ('pow', [V([0, 1, 2])], {'s': 0, 'side': 'r'}), ('pow', [V([0, 1, 2]), V([2, 0.5, 1])], {}),
    ('sum', [V([2], [])], {'dim': 0, 'keepdim': True}), ('mean', [V([2], [])], {'dim': 0, 'keepdim': True}),
    ('max', [V([2], [])], {'dim': 0, 'keepdim': True}), ('logsumexp', [V([2], [])], {'dim': 0, 'keepdim': True}),
    ('logsumexp', [V([1, INF])], {'dim': 0, 'keepdim': False}),
    ('neg', [V([1, 0], d='bool')], {}), ('oneHot', [V([-1, 0], d='int32')], {'n': 3}), ('pow', [V([1, 2, 3], d='int32')], {'s': -1, 'side': 'r'}),
    ('chunk', [V([], [0])], {'chunks': 3, 'dim': 0}),
    ('exp', [V([88.5, 88.7, 88.72, -104])], {}),
    ('matmul', [V([0, 1], [1, 2]), V([NAN, 1], [2, 1])], {}),
    ('mul', [V([2147483647, 46341], d='int32'), V([2147483647, 46341], d='int32')], {}),
    ('cast', [V([NAN, 0, -0.0])], {'dtype': 'bool'}), ('logicalNot', [V([NAN, 0])], {}), ('logicalAnd', [V([NAN]), V([1])], {}),
    ('sign', [V([NAN, -0.0, 2])], {}), ('abs', [V([NAN, -1])], {}), ('l1Loss', [V([NAN, 1, INF]), V([0, 0, INF])], {'reduction': 'sum'}),
    ('maximum', [V([NAN, 1]), V([0, 2])], {}), ('minimum', [V([NAN, 1]), V([0, 2])], {}),
    ('clamp', [V([NAN, 0.5, 2])], {'min': -1, 'max': 1}),
    ('maxPool1d', [V([1, 1, 0], [1, 1, 3])], {'k': 2, 'stride': 1, 'padding': 0}),
    ('maxPool2d', [V([1, 1, 1, 1], [1, 1, 2, 2])], {'k': 2, 'stride': None, 'padding': 0}),
    ('square', [V([1, 0], d='bool')], {}), ('std', [V([1e30, -1e30, 0])], {'dim': None, 'keepdim': False, 'correction': 1}),
    ('binaryCrossEntropyWithLogits', [V([INF, -INF, 3]), V([0.4476, 0.4476, 2])], {'reduction': 'none'}),
    ('logSoftmax', [V([1e30, 1e30, 0])], {'dim': 0}),
    ('crossEntropy', [V([1, NAN, INF, 2], [2, 2]), ALL_IGNORED], {'reduction': 'mean'}),
    ('mul', [V([2], [], 'float64'), V([1, 2, 3])], {}), ('div', [V([1, 2, 3]), V([2], [], 'float64')], {}),
    ('pow', [V([-INF, 4, 0])], {'s': 0.5, 'side': 'r'}), ('pow', [V([-INF, 4, 0])], {'s': -0.5, 'side': 'r'}),
    ('logsumexp', [V([INF, 0.79, 1e30], [1, 3])], {'dim': 1, 'keepdim': False}),
    ('nllLoss', [V([-INF, 1.68, 1e30, -INF, -1.54, -1.75, -1.0, -1.5], [2, 2, 2]), V([-1, 0, -1, 0], [2, 2], 'int32')], {'reduction': 'mean', 'ignore': -1}),
    ('crossEntropy', [V([88.5, NAN, -0.539, -0.372], [2, 2]), ALL_IGNORED, V([1.58, 0.99], ng=True)], {'reduction': 'sum', 'weight': True}),
    ('half.layerNorm', [V([-0.6629362106323242, -0.6391799449920654], d='float16'), V([-0.8722, 0.5393], d='float16'), V([0.6695, -1.2747], d='float16')], {'ns': [2], 'eps': 1e-5}),
]

def main():
    warnings.simplefilter('ignore')  # broadcasting warnings of the loss calls are part of the test
    calls = []
    meta = {}
    cid = 0
    for name, (family, tol, count, gen, fn) in OPS.items():
        meta[name] = {'family': family, 'tol': tol}
        for _ in range(round(count * SCALE)):
            specs, p = gen()
            calls.append(run_call(cid, name, fn, tol, specs, p))
            cid += 1
    for name, shapes, p in BIG:
        family, tol, _, _, fn = OPS[name]
        specs = []
        for j, s in enumerate(shapes):
            SEED[0] += 1
            k = 'p' if name in ('log', 'div') and j == len(shapes) - 1 else 'n'
            spec = {'s': s, 'd': 'float32', 'k': k, 'seed': SEED[0]}
            if name == 'where' and j == 0:
                spec.update(d='bool', k='b')
            if name == 'crossEntropy' and j == 1:
                spec.update(d='int32', k='i', lo=0, hi=50)
            specs.append(spec)
        calls.append(run_call(cid, name, fn, tol, specs, p))
        cid += 1
    for name, specs, p in REGRESSION:
        family, tol, _, _, fn = OPS[name]
        calls.append(run_call(cid, name, fn, tol, specs, p))
        cid += 1
    # A known-answer check of the shared generator, so that a drift between the two implementations reads clearly.
    check = [{'s': [9], 'k': 'x', 'seed': 7}, {'s': [5], 'k': 'I', 'seed': 8}, {'s': [4], 'k': 'q', 'seed': 9, 'lo': -3, 'hi': 4}]
    prng = [dict(c, v=[encode(v) for v in values(c).tolist()]) for c in check]
    doc = {'version': 1, 'torch': torch.__version__, 'prng': prng, 'ops': meta, 'calls': calls}
    with open(OUT, 'w') as f:
        json.dump(doc, f, separators=(',', ':'), allow_nan=False)
        f.write('\n')
    raised = sum('raise' in c for c in calls)
    print(f'{len(calls)} calls over {len(meta)} ops ({raised} raise in torch) -> {OUT}', file=sys.stderr)


if __name__ == '__main__':
    main()

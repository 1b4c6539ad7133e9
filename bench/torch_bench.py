# PyTorch CPU side of `npm run bench`: GEMM GFLOP/s for the cases given as JSON on stdin, and GPT-2-style
# training and forward (no-grad) tokens/s for the given configs, at each given thread count; prints one JSON object.
# Run with /usr/bin/python3.

import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def time_best(fn, min_time=0.3, min_reps=3):
    fn()
    best, total, reps = float('inf'), 0.0, 0
    while reps < min_reps or total < min_time:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, total, reps = min(best, dt), total + dt, reps + 1
    return best


def gemm(case):
    b, m, n, k = case['batch'], case['m'], case['n'], case['k']
    a = torch.randn(b if case['strideA'] else 1, *([k, m] if case['transA'] else [m, k]))
    bb = torch.randn(b if case['strideB'] else 1, *([n, k] if case['transB'] else [k, n]))
    a = a.transpose(1, 2) if case['transA'] else a
    bb = bb.transpose(1, 2) if case['transB'] else bb
    if b > 1:
        a, bb = a.expand(b, m, k), bb.expand(b, k, n)
        fn = lambda: torch.bmm(a, bb)
    else:
        a2, b2 = a[0], bb[0]
        fn = lambda: a2 @ b2
    return 2 * b * m * n * k / time_best(fn) / 1e9


class Block(nn.Module):
    def __init__(self, c, nh):
        super().__init__()
        self.nh = nh
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.c_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x, mask):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.nh)
        att = F.softmax(att.masked_fill(mask[:T, :T], float('-inf')), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh'))


class GPT(nn.Module):
    def __init__(self, vocab, t, c, layers, heads):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(t, c)
        self.h = nn.ModuleList(Block(c, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(c)
        self.register_buffer('mask', torch.triu(torch.ones(t, t, dtype=torch.bool), 1))

    def forward(self, ids):
        B, T = ids.shape
        x = self.wte(ids) + self.wpe(torch.arange(T))
        for blk in self.h:
            x = blk(x, self.mask)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def gpt(cfg):
    torch.manual_seed(0)
    model = GPT(cfg['vocab'], cfg['t'], cfg['d'], cfg['layers'], cfg['heads'])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, cfg['vocab'], (cfg['batch'], cfg['t']))

    def step():
        loss = model(ids)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad():
            model(ids)

    def rate(fn):
        for _ in range(cfg['warmup']):
            fn()
        t = time.perf_counter()
        for _ in range(cfg['steps']):
            fn()
        return cfg['batch'] * cfg['t'] * cfg['steps'] / (time.perf_counter() - t)

    return rate(step), rate(forward)


def main():
    # Each thread count in turn: PyTorch's OpenMP pool is not always faster with more threads on a
    # small, shared machine, so both are reported.
    spec = json.load(sys.stdin)
    out = {'version': torch.__version__, 'runs': []}
    for threads in spec['threads']:
        torch.set_num_threads(threads)
        run = {'threads': torch.get_num_threads(), 'gemm': {}, 'gpt': {}, 'gptForward': {}}
        for case in spec['gemm']:
            run['gemm'][case['name']] = gemm(case)
        for cfg in spec['gpt']:
            run['gpt'][cfg['name']], run['gptForward'][cfg['name']] = gpt(cfg)
        out['runs'].append(run)
    print(json.dumps(out))


main()

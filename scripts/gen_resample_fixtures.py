# Reference resampling for src/processors/resample.test.ts: torchaudio.functional.resample's sinc_interp_hann method
# (torchaudio 0.13's _get_sinc_resample_kernel / _apply_sinc_resample_kernel, reproduced here with torch ops since
# torchaudio is not installed), run in float64: full-length kernels applied by a strided conv1d.
# Run: /usr/bin/python3 scripts/gen_resample_fixtures.py  -> test/data/resample.json
import json
import math
import os

import torch


def sinc_resample_kernel(orig, new, gcd, lowpass_filter_width=6, rolloff=0.99):
    orig, new = orig // gcd, new // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx
    t *= base
    t = t.clamp_(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t *= math.pi
    scale = base / orig
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    return kernels, width


def resample(x, orig, new, **kw):
    if orig == new:
        return x
    gcd = math.gcd(orig, new)
    kernel, width = sinc_resample_kernel(orig, new, gcd, **kw)
    o, n = orig // gcd, new // gcd
    length = x.shape[-1]
    xp = torch.nn.functional.pad(x[None], (width, width + o))
    y = torch.nn.functional.conv1d(xp[:, None], kernel, stride=o)
    y = y.transpose(1, 2).reshape(1, -1)
    return y[0, : math.ceil(n * length / o)]


g = torch.Generator().manual_seed(0)
x = torch.randn(240, generator=g, dtype=torch.float64) * 0.3
x = x.float().double()  # the test feeds float32 input
cases = []
for orig, new, kw in [(22050, 16000, {}), (44100, 16000, {}), (48000, 16000, {}), (16000, 22050, {}), (8000, 16000, {}),
                      (16000, 8000, {}), (3, 2, {}), (16000, 12000, {'lowpass_filter_width': 3, 'rolloff': 0.9})]:
    y = resample(x, orig, new, **kw)
    opts = {}
    if 'lowpass_filter_width' in kw:
        opts['lowpassFilterWidth'] = kw['lowpass_filter_width']
    if 'rolloff' in kw:
        opts['rolloff'] = kw['rolloff']
    cases.append({'from': orig, 'to': new, 'options': opts, 'output': [round(float(v), 9) for v in y]})

out = os.path.join(os.path.dirname(__file__), '..', 'test', 'data', 'resample.json')
with open(out, 'w') as f:
    json.dump({'input': [float(v) for v in x.float()], 'cases': cases}, f)

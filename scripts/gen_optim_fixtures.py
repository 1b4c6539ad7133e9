# Writes test/data/optim.json: PyTorch reference runs for the optimizers, gradient clipping and learning-rate schedules.
# Run: /usr/bin/python3 scripts/gen_optim_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
# Optimizers run in float64 on fixed gradients (no model): the tests replay the same gradients and compare every step.
# Schedules: the lambdas of Hugging Face transformers' optimization.py, transcribed below, driven by torch's LambdaLR.
import json
import math
import os
from functools import partial

import torch
from torch.optim.lr_scheduler import LambdaLR

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'data', 'optim.json')
SHAPES = {'w': [3, 4], 'b': [4], 'c': [2]}
STEPS = 4
INIT = {k: torch.randn(*s) for k, s in SHAPES.items()}
# Gradients per step; None where a parameter has no gradient that step (the optimizer must skip it).
GRADS = [{k: (None if (k == 'c' and step == 1) else torch.randn(*s)) for k, s in SHAPES.items()} for step in range(STEPS)]
GRADS[2]['b'][1] = 0.0  # an exact zero gradient element


def flat(t):
    return t.reshape(-1).tolist()


def run(make, groups=None):
    params = {k: v.clone().requires_grad_(True) for k, v in INIT.items()}
    opt = make([params[k] for k in SHAPES] if groups is None else [{**g, 'params': [params[k] for k in g['params']]} for g in groups])
    out = []
    for step in range(STEPS):
        for k, p in params.items():
            g = GRADS[step][k]
            p.grad = None if g is None else g.clone()
        opt.step()
        out.append({k: flat(p.detach()) for k, p in params.items()})
    return out


OPTIMIZERS = {
    'sgd': ('SGD', {'lr': 0.1}, lambda ps: torch.optim.SGD(ps, lr=0.1)),
    'sgd_momentum': ('SGD', {'lr': 0.1, 'momentum': 0.9, 'dampening': 0.1, 'weightDecay': 0.01},
                     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    'sgd_nesterov': ('SGD', {'lr': 0.05, 'momentum': 0.8, 'nesterov': True, 'weightDecay': 0.1},
                     lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    'adam': ('Adam', {'lr': 1e-2}, lambda ps: torch.optim.Adam(ps, lr=1e-2)),
    'adam_l2': ('Adam', {'lr': 0.02, 'betas': [0.8, 0.99], 'eps': 1e-6, 'weightDecay': 0.1},
                lambda ps: torch.optim.Adam(ps, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    'adamw': ('AdamW', {'lr': 1e-2}, lambda ps: torch.optim.AdamW(ps, lr=1e-2)),
    'adamw_wd': ('AdamW', {'lr': 0.05, 'betas': [0.5, 0.9], 'eps': 1e-3, 'weightDecay': 0.2},
                 lambda ps: torch.optim.AdamW(ps, lr=0.05, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.2)),
}
GROUPS = [{'params': ['w'], 'lr': 0.01, 'weight_decay': 0.1}, {'params': ['b', 'c'], 'lr': 0.05}]


def clip_case(max_norm, norm_type):
    ps = [torch.zeros(*s, requires_grad=True) for s in SHAPES.values()]
    for p, k in zip(ps, SHAPES):
        p.grad = GRADS[0][k].clone()
    total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    return {'maxNorm': max_norm, 'normType': 'inf' if norm_type == math.inf else norm_type, 'total': total.item(),
            'grads': {k: flat(p.grad) for p, k in zip(ps, SHAPES)}}


def clip_value_case(clip):
    ps = [torch.zeros(*s, requires_grad=True) for s in SHAPES.values()]
    for p, k in zip(ps, SHAPES):
        p.grad = GRADS[0][k].clone()
    torch.nn.utils.clip_grad_value_(ps, clip)
    return {'clipValue': clip, 'grads': {k: flat(p.grad) for p, k in zip(ps, SHAPES)}}


# ---- Hugging Face schedule lambdas (transformers/optimization.py) ----

def hf_cosine(current_step, *, num_warmup_steps, num_training_steps, num_cycles=0.5, min_lr_rate=0.0):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
    factor = factor * (1 - min_lr_rate) + min_lr_rate
    return max(0, factor)


def hf_linear(current_step, *, num_warmup_steps, num_training_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))


def hf_constant(current_step, *, num_warmup_steps):
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1.0, num_warmup_steps))
    return 1.0


def schedule(kind, max_lr, steps, **kw):
    lam = {'cosine': hf_cosine, 'linear': hf_linear, 'constant': hf_constant}[kind]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=max_lr)
    sched = LambdaLR(opt, partial(lam, **kw))
    lrs = []
    for _ in range(steps + 1):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    return lrs


def main():
    out = {
        'source': 'scripts/gen_optim_fixtures.py with PyTorch %s' % torch.__version__,
        'init': {k: flat(v) for k, v in INIT.items()},
        'shapes': SHAPES,
        'grads': [{k: (None if g is None else flat(g)) for k, g in step.items()} for step in GRADS],
        'optimizers': {name: {'optimizer': cls, 'options': opts, 'params': run(make)} for name, (cls, opts, make) in OPTIMIZERS.items()},
        'adamw_groups': {'groups': [{'params': g['params'], 'lr': g['lr'], **({'weightDecay': g['weight_decay']} if 'weight_decay' in g else {})} for g in GROUPS],
                         'params': run(lambda gs: torch.optim.AdamW(gs, lr=1e-3), GROUPS)},
        'clip_norm': [clip_case(1.0, 2.0), clip_case(0.5, 1.0), clip_case(0.3, math.inf), clip_case(100.0, 2.0), clip_case(2.0, 3.0)],
        'clip_value': [clip_value_case(0.5)],
        'schedules': {
            'cosine': {'opts': {'maxLr': 3e-3, 'warmupSteps': 10, 'totalSteps': 100}, 'lrs': schedule('cosine', 3e-3, 100, num_warmup_steps=10, num_training_steps=100)},
            'cosine_min': {'opts': {'maxLr': 1e-3, 'minLr': 1e-4, 'warmupSteps': 5, 'totalSteps': 40}, 'lrs': schedule('cosine', 1e-3, 40, num_warmup_steps=5, num_training_steps=40, min_lr_rate=0.1)},
            'cosine_nowarmup': {'opts': {'maxLr': 0.5, 'warmupSteps': 0, 'totalSteps': 20}, 'lrs': schedule('cosine', 0.5, 20, num_warmup_steps=0, num_training_steps=20)},
            'linear': {'opts': {'maxLr': 2e-3, 'warmupSteps': 5, 'totalSteps': 50}, 'lrs': schedule('linear', 2e-3, 50, num_warmup_steps=5, num_training_steps=50)},
            'constant': {'opts': {'maxLr': 1e-2, 'warmupSteps': 7}, 'lrs': schedule('constant', 1e-2, 30, num_warmup_steps=7)},
        },
    }
    with open(OUT, 'w') as f:
        json.dump(out, f)
        f.write('\n')


if __name__ == '__main__':
    main()

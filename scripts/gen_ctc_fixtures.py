# Reference values for src/autograd/ops/ctc.test.ts: torch.nn.functional.ctc_loss (PyTorch 1.13 CPU, float64) on random
# log-softmaxed logits, with the loss and the gradient of sum(loss * probe) w.r.t. the logits (through log_softmax).
# The gradient w.r.t. log_probs itself is not stored: PyTorch's adds exp(log_probs) (it assumes log_softmax follows),
# which cancels through log_softmax; attend's is the exact derivative (checked by finite differences in the test).
# Run: /usr/bin/python3 scripts/gen_ctc_fixtures.py  -> test/data/ctc.json
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(0)


def r(v):
    return [round(float(x), 8) for x in v.flatten()]


def case(name, T, B, C, targets, input_lengths, target_lengths, blank=0, reduction='mean', zero_infinity=False, unbatched=False):
    logits = torch.randn(T, C, dtype=torch.float64) if unbatched else torch.randn(T, B, C, dtype=torch.float64)
    logits = logits.float().double().requires_grad_()  # values the test can hold exactly in float32
    lp = logits.log_softmax(-1)
    tg = torch.tensor(targets, dtype=torch.long)
    il = torch.tensor(input_lengths, dtype=torch.long)
    tl = torch.tensor(target_lengths, dtype=torch.long)
    loss = F.ctc_loss(lp, tg, il, tl, blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    probe = torch.rand(loss.shape, dtype=torch.float64) + 0.5 if reduction == 'none' else torch.ones(())
    finite = torch.isfinite(loss)
    if bool(finite.all()):
        (loss * probe).sum().backward()
        grad = r(logits.grad)
    else:
        grad = None  # PyTorch's gradient of an infinite loss is NaN
    return name, {
        'logits': {'shape': list(logits.shape), 'data': r(logits.detach())},
        'targets': {'shape': list(tg.shape), 'data': [int(x) for x in tg.flatten()]},
        'inputLengths': input_lengths, 'targetLengths': target_lengths,
        'options': {'blank': blank, 'reduction': reduction, 'zeroInfinity': zero_infinity},
        'loss': [float(x) if torch.isfinite(x) else 'inf' for x in loss.detach().flatten()],
        'lossShape': list(loss.shape),
        'probe': r(probe), 'grad': grad,
    }


padded = [[1, 2, 3, 1], [2, 2, 0, 0], [4, 0, 0, 0]]
cases = dict([
    case('mean', 12, 3, 5, padded, [12, 10, 7], [4, 2, 1]),
    case('sum', 12, 3, 5, padded, [12, 10, 7], [4, 2, 1], reduction='sum'),
    case('none', 12, 3, 5, padded, [12, 10, 7], [4, 2, 1], reduction='none'),
    # repeated labels need a blank between them: [1, 1] fits in 3 frames exactly, [3, 3, 3] in 5
    case('repeats_tight', 5, 2, 4, [[1, 1, 0], [3, 3, 3]], [3, 5], [2, 3], reduction='none'),
    case('target_length_0', 6, 2, 4, [[2, 1], [0, 0]], [6, 4], [2, 0], reduction='none'),
    case('target_length_0_mean', 6, 2, 4, [[2, 1], [0, 0]], [6, 4], [2, 0]),
    # [1, 1, 1] needs 5 frames; 4 are given: infinite loss
    case('impossible', 6, 2, 4, [[1, 1, 1], [2, 3, 0]], [4, 6], [3, 2], reduction='none'),
    case('impossible_zero_inf', 6, 2, 4, [[1, 1, 1], [2, 3, 0]], [4, 6], [3, 2], reduction='none', zero_infinity=True),
    case('impossible_zero_inf_mean', 6, 2, 4, [[1, 1, 1], [2, 3, 0]], [4, 6], [3, 2], zero_infinity=True),
    case('impossible_mean', 6, 2, 4, [[1, 1, 1], [2, 3, 0]], [4, 6], [3, 2]),
    case('concatenated', 9, 3, 6, [1, 2, 3, 5, 5, 4, 1], [9, 8, 9], [3, 1, 3], reduction='sum'),
    case('blank_last', 8, 2, 5, [[0, 1, 2], [3, 3, 0]], [8, 7], [3, 2], blank=4, reduction='none'),
    case('input_length_0', 4, 2, 3, [[1], [2]], [0, 4], [0, 1], reduction='none'),
    case('unbatched', 7, 1, 4, [1, 2, 2], 7, 3, reduction='sum', unbatched=True),
    case('larger', 30, 4, 8, torch.randint(1, 8, (4, 10)).tolist(), [30, 25, 28, 20], [10, 7, 9, 5]),
])

out = os.path.join(os.path.dirname(__file__), '..', 'test', 'data', 'ctc.json')
with open(out, 'w') as f:
    json.dump({'torch': torch.__version__, 'cases': cases}, f)

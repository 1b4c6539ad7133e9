# Writes test/data/losses.json: torch.nn loss modules (options, inputs, loss, input gradient) for src/nn/loss.test.ts.
# Run: /usr/bin/python3 scripts/gen_loss_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
import json
import torch
import torch.nn as nn

torch.manual_seed(0)


def t2j(t):
    kind = 'int32' if t.dtype == torch.int64 else 'float32'
    return {'shape': list(t.shape), 'dtype': kind, 'data': t.reshape(-1).tolist()}


def case(cls, opts, torch_opts, x, target):
    """opts: the attend constructor options (tensors as fixtures); torch_opts: the same for torch."""
    xl = x.clone().requires_grad_(True)
    y = cls(**torch_opts)(xl, target)
    probe = torch.randn(y.shape)
    (y * probe).sum().backward()
    return {'module': cls.__name__, 'options': opts, 'input': t2j(x), 'target': t2j(target),
            'output': t2j(y.detach()), 'probe': t2j(probe), 'grad': t2j(xl.grad)}


w5 = torch.rand(5) + 0.5
w4 = torch.rand(4) + 0.5
pw = torch.rand(4) * 3
logits = torch.randn(6, 5)
classes = torch.tensor([0, 3, 1, 4, 1, 2])
cases = {
    'ce_mean': case(nn.CrossEntropyLoss, {}, {}, logits, classes),
    'ce_weight_smoothing_ignore': case(nn.CrossEntropyLoss, {'weight': t2j(w5), 'labelSmoothing': 0.1, 'ignoreIndex': 1},
                                       {'weight': w5, 'label_smoothing': 0.1, 'ignore_index': 1}, logits, classes),
    'ce_spatial_sum': case(nn.CrossEntropyLoss, {'reduction': 'sum'}, {'reduction': 'sum'}, torch.randn(2, 3, 4), torch.randint(0, 3, (2, 4))),
    'ce_probabilities_none': case(nn.CrossEntropyLoss, {'reduction': 'none', 'labelSmoothing': 0.2}, {'reduction': 'none', 'label_smoothing': 0.2},
                                  logits, torch.softmax(torch.randn(6, 5), -1)),
    'ce_probabilities_weight_mean': case(nn.CrossEntropyLoss, {'weight': t2j(w5), 'labelSmoothing': 0.1}, {'weight': w5, 'label_smoothing': 0.1},
                                         logits, torch.softmax(torch.randn(6, 5), -1)),
    'ce_probabilities_spatial_weight': case(nn.CrossEntropyLoss, {'weight': t2j(w5[:3]), 'reduction': 'sum'}, {'weight': w5[:3], 'reduction': 'sum'},
                                            torch.randn(2, 3, 4), torch.softmax(torch.randn(2, 3, 4), 1)),
    'ce_unbatched': case(nn.CrossEntropyLoss, {}, {}, torch.randn(5), torch.tensor(2)),
    'nll_weight': case(nn.NLLLoss, {'weight': t2j(w5)}, {'weight': w5}, torch.log_softmax(logits, -1), classes),
    'nll_none_ignore': case(nn.NLLLoss, {'reduction': 'none', 'ignoreIndex': 4}, {'reduction': 'none', 'ignore_index': 4}, torch.log_softmax(logits, -1), classes),
    'mse_mean': case(nn.MSELoss, {}, {}, torch.randn(3, 4), torch.randn(3, 4)),
    'mse_sum': case(nn.MSELoss, {'reduction': 'sum'}, {'reduction': 'sum'}, torch.randn(3, 4), torch.randn(3, 4)),
    'l1_none': case(nn.L1Loss, {'reduction': 'none'}, {'reduction': 'none'}, torch.randn(3, 4), torch.randn(3, 4)),
    'l1_mean': case(nn.L1Loss, {}, {}, torch.randn(3, 4), torch.randn(3, 4)),
    'bce_mean': case(nn.BCEWithLogitsLoss, {}, {}, torch.randn(3, 4) * 3, torch.rand(3, 4)),
    'bce_weight_pos_weight': case(nn.BCEWithLogitsLoss, {'weight': t2j(w4), 'posWeight': t2j(pw)}, {'weight': w4, 'pos_weight': pw},
                                  torch.randn(3, 4) * 3, (torch.rand(3, 4) > 0.5).float()),
    'bce_pos_weight_sum': case(nn.BCEWithLogitsLoss, {'reduction': 'sum', 'posWeight': t2j(pw)}, {'reduction': 'sum', 'pos_weight': pw},
                               torch.randn(3, 4) * 3, torch.rand(3, 4)),
}

with open('test/data/losses.json', 'w') as f:
    json.dump({'source': 'scripts/gen_loss_fixtures.py with PyTorch ' + torch.__version__, 'cases': cases}, f)
print(len(cases), 'cases')

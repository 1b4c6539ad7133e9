# GroupNorm reference values and gradients from PyTorch (torch.nn.functional.group_norm) -> test/data/groupnorm.json.
import json
import torch

torch.manual_seed(0)
cases = []
# (shape, groups, affine, eps): wav2vec2's one-channel-per-group case, ordinary groups, a 2-d input, 4-d images.
for shape, groups, affine, eps in [([2, 6, 7], 6, True, 1e-5), ([2, 6, 7], 3, True, 1e-5), ([3, 4], 2, True, 1e-3),
                                   ([2, 4, 3, 5], 2, True, 1e-5), ([2, 4, 5], 1, False, 1e-5)]:
    x = (torch.randn(shape, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    w = (torch.randn(shape[1], dtype=torch.float64)).requires_grad_() if affine else None
    b = (torch.randn(shape[1], dtype=torch.float64)).requires_grad_() if affine else None
    y = torch.nn.functional.group_norm(x, groups, w, b, eps)
    probe = torch.randn(shape, dtype=torch.float64)
    (y * probe).sum().backward()
    r = lambda t: [round(v, 10) for v in t.detach().flatten().tolist()]
    cases.append({'shape': shape, 'groups': groups, 'eps': eps, 'x': r(x), 'weight': r(w) if affine else None,
                  'bias': r(b) if affine else None, 'out': r(y), 'probe': r(probe), 'grad_x': r(x.grad),
                  'grad_weight': r(w.grad) if affine else None, 'grad_bias': r(b.grad) if affine else None})
with open('test/data/groupnorm.json', 'w') as f:
    json.dump({'torch': torch.__version__, 'cases': cases}, f)

# Writes test/data/einsum.json: torch.einsum / dot / outer values and input gradients for src/autograd/ops/einsum.test.ts.
# Run: /usr/bin/python3 scripts/gen_einsum_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
import json
import torch

torch.manual_seed(0)


def t2j(t):
    return {'shape': list(t.shape), 'dtype': 'float32', 'data': t.reshape(-1).tolist()}


def case(fn, *shapes):
    leaves = [torch.randn(*s, requires_grad=True) for s in shapes]
    y = fn(*leaves)
    probe = torch.randn(y.shape)
    (y * probe).sum().backward()
    return {'inputs': [t2j(x.detach()) for x in leaves], 'output': t2j(y.detach()), 'probe': probe.reshape(-1).tolist(),
            'grads': [x.grad.reshape(-1).tolist() for x in leaves]}


EQUATIONS = [
    ('ij,jk->ik', [3, 4], [4, 5]),
    ('bij,bjk->bik', [2, 3, 4], [2, 4, 5]),
    ('bhqd,bhkd->bhqk', [2, 2, 3, 4], [2, 2, 5, 4]),
    ('bhqk,bhkd->bhqd', [2, 2, 3, 5], [2, 2, 5, 4]),
    ('i,i->', [5], [5]),
    ('i,j->ij', [3], [4]),
    ('ii->i', [4, 4]),
    ('ij->ji', [3, 4]),
    ('bi,bi->b', [3, 4], [3, 4]),
    ('ij,jk', [3, 4], [4, 5]),
    ('ba,ca', [3, 4], [2, 4]),
    ('ii', [3, 3]),
    ('ij,ij->ij', [3, 4], [3, 4]),
    ('bij->b', [2, 3, 4]),
    ('iij->ji', [3, 3, 2]),
    ('ij,jk,kl->il', [2, 3], [3, 4], [4, 5]),
    ('bn,anm,bm->ba', [2, 3], [4, 3, 5], [2, 5]),
    ('...ij,...jk->...ik', [2, 3, 4], [4, 5]),
    ('...i,...i->...', [2, 3, 4], [3, 4]),
    ('b...d,b...d', [2, 3, 4], [2, 3, 4]),
    ('i j , j k -> i k', [2, 3], [3, 2]),
    ('BIj,BjK->BKI', [2, 3, 4], [2, 4, 2]),
]
cases = {eq: case(lambda *xs, eq=eq: torch.einsum(eq, *xs), *shapes) for eq, *shapes in EQUATIONS}
cases['dot'] = case(torch.dot, [5], [5])
cases['outer'] = case(torch.outer, [3], [4])

with open('test/data/einsum.json', 'w') as f:
    json.dump({'source': 'scripts/gen_einsum_fixtures.py with PyTorch ' + torch.__version__, 'cases': cases}, f)
print(len(cases), 'cases')

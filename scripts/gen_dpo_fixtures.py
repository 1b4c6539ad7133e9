# Writes test/data/chat/dpo.json: TRL's DPO sigmoid loss on a random batch, computed with torch, for src/train/dpo.test.ts.
# Run: /usr/bin/python3 scripts/gen_dpo_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
#
# The log-probabilities follow TRL's DPOTrainer: chosen rows then rejected rows in one batch, labels shifted by one
# (logits at t predict label t + 1), -100 on prompt and padding, summed over the completion tokens.
import json
import torch
import torch.nn.functional as F

torch.manual_seed(0)
B, T, V = 3, 6, 7  # pairs, length, vocabulary


def batch_logps(logits, labels):
    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    mask = labels != -100
    labels[~mask] = 0
    per_token = torch.gather(logits.log_softmax(-1), 2, labels.unsqueeze(2)).squeeze(2)
    return (per_token * mask).sum(-1)


def dpo(policy_logits, ref_logits, labels, beta, label_smoothing):
    pol = batch_logps(policy_logits, labels)
    with torch.no_grad():
        ref = batch_logps(ref_logits, labels)
    pc, pr, rc, rr = pol[:B], pol[B:], ref[:B], ref[B:]
    z = beta * ((pc - rc) - (pr - rr))
    losses = -F.logsigmoid(z) * (1 - label_smoothing) - F.logsigmoid(-z) * label_smoothing
    chosen = beta * (pc - rc).detach()
    rejected = beta * (pr - rr).detach()
    return losses.mean(), pol, ref, chosen, rejected


policy = (torch.randn(2 * B, T, V, dtype=torch.float64) * 2).float().double()  # float32-representable inputs
reference = (policy + 0.5 * torch.randn(2 * B, T, V, dtype=torch.float64)).float().double()
labels = torch.randint(0, V, (2 * B, T))
prompt_len = [2, 1, 3, 2, 1, 3]  # chosen and rejected of a pair share a prompt
pad_from = [6, 5, 6, 4, 6, 5]
for i in range(2 * B):
    labels[i, :prompt_len[i]] = -100
    labels[i, pad_from[i]:] = -100

cases = []
for beta, ls in [(0.1, 0.0), (0.5, 0.2)]:
    x = policy.clone().requires_grad_(True)
    loss, pol, ref, chosen, rejected = dpo(x, reference, labels, beta, ls)
    loss.backward()
    cases.append({
        'beta': beta, 'labelSmoothing': ls, 'loss': loss.item(),
        'policyLogps': pol.tolist(), 'referenceLogps': ref.tolist(),
        'chosenRewards': chosen.tolist(), 'rejectedRewards': rejected.tolist(),
        'accuracy': (chosen > rejected).double().mean().item(),
        'gradPolicyLogits': x.grad.reshape(-1).tolist(),
    })

out = {
    'shape': [2 * B, T, V],
    'policyLogits': policy.reshape(-1).tolist(),
    'referenceLogits': reference.reshape(-1).tolist(),
    'labels': labels.reshape(-1).tolist(),
    'cases': cases,
}
with open('test/data/chat/dpo.json', 'w') as f:
    json.dump(out, f)
print('wrote test/data/chat/dpo.json', [c['loss'] for c in cases])

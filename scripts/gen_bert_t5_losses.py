# Losses for the BERT and T5 fixtures, computed in float64 from the reference logits (the fixtures carry none).
# Writes test/data/hf/{bert-mlm,bert-cls,t5}/loss.json. Run: /usr/bin/python3 scripts/gen_bert_t5_losses.py

import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

HF = os.path.join(os.path.dirname(__file__), '..', 'test', 'data', 'hf')
DTYPES = {'F32': np.float32, 'I64': np.int64}


def load(name):
    with open(os.path.join(HF, name, 'ref.safetensors'), 'rb') as f:
        raw = f.read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == '__metadata__' or v['dtype'] not in DTYPES:
            continue
        s, e = v['data_offsets']
        out[k] = torch.from_numpy(np.frombuffer(raw[8 + n + s:8 + n + e], dtype=DTYPES[v['dtype']]).reshape(v['shape']).copy())
    return out


def ce(logits, labels):
    return F.cross_entropy(logits.double().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100).item()


def save(name, obj):
    with open(os.path.join(HF, name, 'loss.json'), 'w') as f:
        json.dump(obj, f, indent=1)


# Masked LM: a few positions of each row carry their own token as the label; the rest (and padding) are -100.
ref = load('bert-mlm')
labels = torch.full((2, 12), -100, dtype=torch.long)
for r, c in [(0, 1), (0, 4), (0, 7), (0, 11), (1, 2), (1, 5), (1, 7)]:
    labels[r, c] = ref['input_ids'][r, c]
save('bert-mlm', {'note': 'loss = CE(ref logits, labels), ignore -100, float64', 'labels': labels.flatten().tolist(), 'loss': ce(ref['logits'], labels)})

# Sequence classification: single-label cross-entropy over 3 classes.
ref = load('bert-cls')
labels = torch.tensor([2, 0])
save('bert-cls', {'note': 'loss = CE(ref logits, labels), float64', 'labels': labels.tolist(), 'loss': ce(ref['logits'], labels)})

# T5: labels whose right shift (decoder_start_token_id 0 first) is the reference decoder_input_ids, so the reference
# logits are the logits of the labelled forward; the last label of row 1 is -100 (ignored, and never fed back).
ref = load('t5')
dec = ref['decoder_input_ids']
labels = torch.cat([dec[:, 1:], torch.tensor([[1], [-100]])], 1)
save('t5', {'note': 'labels shifted right = decoder_input_ids; loss = CE(ref logits, labels), ignore -100, float64', 'labels': labels.flatten().tolist(), 'loss': ce(ref['logits'], labels)})

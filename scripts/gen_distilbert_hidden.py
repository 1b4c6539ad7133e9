# DistilBERT's last hidden state, which the shared fixture test/data/hf/distilbert-cls lacks (it has the logits only), from a
# PyTorch transcription of transformers' DistilBertForSequenceClassification (modeling_distilbert.py) in eval mode. The
# transcription is first checked against the fixture's logits. Writes test/data/hf/distilbert-cls/hidden.safetensors.
# Run with /usr/bin/python3 (torch 1.13).
import json, math, os, struct
import torch
import torch.nn.functional as F

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'data', 'hf', 'distilbert-cls')


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    dtypes = {'F32': torch.float32, 'I64': torch.int64}
    return {k: torch.frombuffer(bytearray(body[v['data_offsets'][0]:v['data_offsets'][1]]), dtype=dtypes[v['dtype']]).reshape(v['shape']).clone()
            for k, v in header.items() if k != '__metadata__'}


def write_safetensors(path, tensors):
    header, chunks, off = {}, [], 0
    for k in sorted(tensors):
        b = tensors[k].detach().contiguous().numpy().tobytes()
        header[k] = {'dtype': 'F32', 'shape': list(tensors[k].shape), 'data_offsets': [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(chunks))


def forward(cfg, W, ids, mask):
    """Returns (last hidden state [B, T, dim], logits [B, num_labels])."""
    B, T = ids.shape
    D, H = cfg['dim'], cfg['n_heads']
    act = {'gelu': F.gelu, 'relu': F.relu}[cfg['activation']]
    e = 'distilbert.embeddings.'
    x = W[e + 'word_embeddings.weight'][ids] + W[e + 'position_embeddings.weight'][torch.arange(T)]
    x = F.layer_norm(x, (D,), W[e + 'LayerNorm.weight'], W[e + 'LayerNorm.bias'], 1e-12)
    lin = lambda t, n: F.linear(t, W[n + '.weight'], W[n + '.bias'])
    for i in range(cfg['n_layers']):
        p = f'distilbert.transformer.layer.{i}.'
        heads = lambda t: t.view(B, T, H, D // H).transpose(1, 2)
        q = heads(lin(x, p + 'attention.q_lin')) / math.sqrt(D // H)
        k, v = heads(lin(x, p + 'attention.k_lin')), heads(lin(x, p + 'attention.v_lin'))
        scores = (q @ k.transpose(2, 3)).masked_fill(mask[:, None, None, :] == 0, torch.finfo(torch.float32).min)
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        h = F.layer_norm(lin(ctx, p + 'attention.out_lin') + x, (D,), W[p + 'sa_layer_norm.weight'], W[p + 'sa_layer_norm.bias'], 1e-12)
        f = lin(act(lin(h, p + 'ffn.lin1')), p + 'ffn.lin2')
        x = F.layer_norm(f + h, (D,), W[p + 'output_layer_norm.weight'], W[p + 'output_layer_norm.bias'], 1e-12)
    logits = lin(F.relu(lin(x[:, 0], 'pre_classifier')), 'classifier')
    return x, logits


def main():
    cfg = json.load(open(os.path.join(DIR, 'config.json')))
    W = read_safetensors(os.path.join(DIR, 'model.safetensors'))
    ref = read_safetensors(os.path.join(DIR, 'ref.safetensors'))
    with torch.no_grad():
        hidden, logits = forward(cfg, W, ref['input_ids'], ref['attention_mask'])
    err = (logits - ref['logits']).abs().max().item()
    assert err < 1e-5, f'transcription disagrees with transformers: {err}'
    write_safetensors(os.path.join(DIR, 'hidden.safetensors'), {'last_hidden_state': hidden})
    print(f'logits within {err:.2e} of transformers; wrote hidden.safetensors {list(hidden.shape)}')


main()

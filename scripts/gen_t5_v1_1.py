# A T5 v1.1 reference (gated-GELU feed-forward, untied unscaled lm_head) that no transformers fixture covers, and
# T5's relative position buckets. A float64 re-implementation of transformers' T5ForConditionalGeneration forward
# (modeling_t5.py) in plain torch, on random float32 weights, so it needs no transformers install.
# Writes test/data/hf/t5/v1_1/{config.json, model.safetensors, ref.safetensors, ref.json} and test/data/hf/t5/buckets.json.
# Run: /usr/bin/python3 scripts/gen_t5_v1_1.py

import json
import math
import os
import struct

import torch

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'data', 'hf', 't5')


def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
    """transformers' T5Attention._relative_position_bucket, float32 log arithmetic included."""
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    relative_position_if_large = max_exact + (
        torch.log(relative_position.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    relative_position_if_large = torch.min(relative_position_if_large, torch.full_like(relative_position_if_large, num_buckets - 1))
    return relative_buckets + torch.where(is_small, relative_position, relative_position_if_large)


def write_safetensors(path, tensors):
    header, blobs, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        dtype = {torch.float32: 'F32', torch.int64: 'I64'}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {'dtype': dtype, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(',', ':')).encode()
    raw += b' ' * (-len(raw) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(raw)) + raw + b''.join(blobs))


# ---- the model ----

CONFIG = {
    'model_type': 't5', 'architectures': ['T5ForConditionalGeneration'], 'vocab_size': 96, 'd_model': 32, 'd_kv': 6, 'd_ff': 40,
    'num_layers': 2, 'num_decoder_layers': 3, 'num_heads': 4, 'relative_attention_num_buckets': 16, 'relative_attention_max_distance': 12,
    'dropout_rate': 0.0, 'layer_norm_epsilon': 1e-6, 'initializer_factor': 1.0, 'feed_forward_proj': 'gated-gelu',
    'tie_word_embeddings': False, 'is_encoder_decoder': True, 'pad_token_id': 0, 'eos_token_id': 1, 'decoder_start_token_id': 0,
}
C, DKV, NH, FF = CONFIG['d_model'], CONFIG['d_kv'], CONFIG['num_heads'], CONFIG['d_ff']
INNER = NH * DKV

torch.manual_seed(11)
shapes = {'shared.weight': [CONFIG['vocab_size'], C], 'lm_head.weight': [CONFIG['vocab_size'], C]}
for stack, n in [('encoder', CONFIG['num_layers']), ('decoder', CONFIG['num_decoder_layers'])]:
    for i in range(n):
        atts = ['SelfAttention'] + (['EncDecAttention'] if stack == 'decoder' else [])
        for j, att in enumerate(atts):
            p = f'{stack}.block.{i}.layer.{j}'
            shapes.update({f'{p}.{att}.q.weight': [INNER, C], f'{p}.{att}.k.weight': [INNER, C], f'{p}.{att}.v.weight': [INNER, C],
                           f'{p}.{att}.o.weight': [C, INNER], f'{p}.layer_norm.weight': [C]})
            if i == 0 and att == 'SelfAttention':
                shapes[f'{p}.{att}.relative_attention_bias.weight'] = [CONFIG['relative_attention_num_buckets'], NH]
        p = f'{stack}.block.{i}.layer.{len(atts)}'
        shapes.update({f'{p}.DenseReluDense.wi_0.weight': [FF, C], f'{p}.DenseReluDense.wi_1.weight': [FF, C],
                       f'{p}.DenseReluDense.wo.weight': [C, FF], f'{p}.layer_norm.weight': [C]})
    shapes[f'{stack}.final_layer_norm.weight'] = [C]


def init(name, shape):
    if name.endswith('layer_norm.weight'):
        return 1 + 0.2 * torch.randn(shape)
    if 'relative_attention_bias' in name or name == 'shared.weight':
        return torch.randn(shape)
    if name == 'lm_head.weight':  # keeps the unscaled logits O(1)
        return torch.randn(shape) * 0.25
    return torch.randn(shape) * shape[1] ** -0.5


weights = {k: init(k, s).float() for k, s in shapes.items()}
W = {k: v.double().requires_grad_() for k, v in weights.items()}


def rms(x, w):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + CONFIG['layer_norm_epsilon']))


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x.pow(3))))


def heads(x):
    return x.view(x.shape[0], x.shape[1], NH, DKV).transpose(1, 2)


def attention(p, x, kv, bias):
    q, k, v = heads(x @ W[p + '.q.weight'].T), heads(kv @ W[p + '.k.weight'].T), heads(kv @ W[p + '.v.weight'].T)
    scores = q @ k.transpose(-1, -2) + bias  # no 1/sqrt(d_kv): T5 folds it into the weights
    y = torch.softmax(scores, -1) @ v
    return y.transpose(1, 2).reshape(x.shape[0], x.shape[1], INNER) @ W[p + '.o.weight'].T


def ff(p, x):
    d = p + '.DenseReluDense'
    return (gelu_new(x @ W[d + '.wi_0.weight'].T) * (x @ W[d + '.wi_1.weight'].T)) @ W[d + '.wo.weight'].T


def position_bias(stack, T, S, bidirectional):
    rel = torch.arange(S)[None, :] - torch.arange(T)[:, None]
    b = relative_position_bucket(rel, bidirectional, CONFIG['relative_attention_num_buckets'], CONFIG['relative_attention_max_distance'])
    return W[f'{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight'][b].permute(2, 0, 1)[None]


def key_mask(mask):
    return torch.zeros(mask.shape, dtype=torch.float64).masked_fill(mask == 0, float('-inf'))[:, None, None, :]


def forward(input_ids, attention_mask, decoder_input_ids, scale=False):
    S, T = input_ids.shape[1], decoder_input_ids.shape[1]
    x = W['shared.weight'][input_ids]
    bias = position_bias('encoder', S, S, True) + key_mask(attention_mask)
    for i in range(CONFIG['num_layers']):
        p = f'encoder.block.{i}'
        x = x + attention(f'{p}.layer.0.SelfAttention', rms(x, W[f'{p}.layer.0.layer_norm.weight']), rms(x, W[f'{p}.layer.0.layer_norm.weight']), bias)
        x = x + ff(f'{p}.layer.1', rms(x, W[f'{p}.layer.1.layer_norm.weight']))
    enc = rms(x, W['encoder.final_layer_norm.weight'])
    y = W['shared.weight'][decoder_input_ids]
    causal = torch.zeros(T, T, dtype=torch.float64).masked_fill(torch.ones(T, T).triu(1) == 1, float('-inf'))
    self_bias = position_bias('decoder', T, T, False) + causal
    cross_bias = key_mask(attention_mask)
    for i in range(CONFIG['num_decoder_layers']):
        p = f'decoder.block.{i}'
        h = rms(y, W[f'{p}.layer.0.layer_norm.weight'])
        y = y + attention(f'{p}.layer.0.SelfAttention', h, h, self_bias)
        y = y + attention(f'{p}.layer.1.EncDecAttention', rms(y, W[f'{p}.layer.1.layer_norm.weight']), enc, cross_bias)
        y = y + ff(f'{p}.layer.2', rms(y, W[f'{p}.layer.2.layer_norm.weight']))
    dec = rms(y, W['decoder.final_layer_norm.weight'])
    logits = (dec * C ** -0.5 if scale else dec) @ W['lm_head.weight'].T
    return logits, enc, dec


g = torch.Generator().manual_seed(5)
input_ids = torch.randint(2, CONFIG['vocab_size'], (2, 20), generator=g)
attention_mask = torch.ones(2, 20, dtype=torch.long)
attention_mask[1, 13:] = 0
input_ids[1, 13:] = 0
decoder_input_ids = torch.randint(2, CONFIG['vocab_size'], (2, 15), generator=g)
decoder_input_ids[:, 0] = 0

logits, enc, dec = forward(input_ids, attention_mask, decoder_input_ids)
logits_scaled = forward(input_ids, attention_mask, decoder_input_ids, scale=True)[0]
labels = torch.cat([decoder_input_ids[:, 1:], torch.tensor([[1], [-100]])], 1)
loss = torch.nn.functional.cross_entropy(logits.reshape(-1, CONFIG['vocab_size']), labels.reshape(-1), ignore_index=-100)

# Gradients of sum(logits(row 0) * probe) for every parameter.
probe = torch.randn(1, 15, CONFIG['vocab_size'], generator=g, dtype=torch.float64)
(forward(input_ids[:1], attention_mask[:1], decoder_input_ids[:1])[0] * probe).sum().backward()

d = os.path.join(OUT, 'v1_1')
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, 'config.json'), 'w') as f:
    json.dump(CONFIG, f, indent=2)
write_safetensors(os.path.join(d, 'model.safetensors'), weights)
ref = {'input_ids': input_ids, 'attention_mask': attention_mask, 'decoder_input_ids': decoder_input_ids, 'labels': labels,
       'logits': logits.detach().float(), 'logits_scaled': logits_scaled.detach().float(), 'encoder_last_hidden_state': enc.detach().float(),
       'last_hidden_state': dec.detach().float(), 'grad_probe': probe.float()}
ref.update({f'grad.{k}': v.grad.float() for k, v in W.items()})
write_safetensors(os.path.join(d, 'ref.safetensors'), ref)
with open(os.path.join(d, 'ref.json'), 'w') as f:
    json.dump({'loss': loss.item(), 'note': 'float64 forward on the float32 weights; row 1 right-padded after 13; labels = decoder_input_ids shifted left, '
               'eos (1) last in row 0, -100 last in row 1; logits_scaled: the decoder output times d_model^-0.5 (scale_decoder_outputs); '
               'grad.*: d sum(logits(row 0) * grad_probe) / d param', 'torch': torch.__version__}, f, indent=1)

# Buckets of relative positions (key - query) -300..300 under the fixtures' and other settings.
rel = torch.arange(-300, 301)
buckets = [{'num_buckets': nb, 'max_distance': md, 'bidirectional': bi,
            'buckets': relative_position_bucket(rel, bi, nb, md).tolist()}
           for nb, md in [(32, 128), (16, 12), (64, 256), (32, 64), (128, 128), (48, 100)] for bi in (True, False)]
with open(os.path.join(OUT, 'buckets.json'), 'w') as f:
    json.dump({'from': -300, 'note': "transformers' _relative_position_bucket (float32 log) under torch " + torch.__version__, 'tables': buckets}, f)

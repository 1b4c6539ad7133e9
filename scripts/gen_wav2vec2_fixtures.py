# wav2vec2 variants the shared fixture lacks, from a PyTorch transcription of transformers' Wav2Vec2ForCTC
# (modeling_wav2vec2.py): LayerNorm feature encoder with conv bias, do_stable_layer_norm (pre-norm encoder, final
# LayerNorm), an odd positional kernel, a padded batch with an attention mask, and the CTC loss with -100 label padding.
# The transcription is first checked against transformers' own outputs in test/data/hf/wav2vec2 (group norm, post-norm).
# Writes test/data/hf/wav2vec2-stable/{config.json, model.safetensors, ref.safetensors}. Run with /usr/bin/python3.
import json, math, os, struct
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, '..', 'test', 'data', 'hf')


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        dtype = {'F32': torch.float32, 'I64': torch.int64}[v['dtype']]
        out[k] = torch.frombuffer(bytearray(body[a:b]), dtype=dtype).reshape(v['shape']).clone()
    return out


def write_safetensors(path, tensors):
    header, chunks, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous()
        b = t.numpy().tobytes()
        header[k] = {'dtype': {torch.float32: 'F32', torch.int64: 'I64'}[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(chunks))


def act(name):
    return {'gelu': F.gelu, 'relu': F.relu}[name]


def feat_lengths(cfg, n):
    for k, s in zip(cfg['conv_kernel'], cfg['conv_stride']):
        n = torch.div(n - k, s, rounding_mode='floor') + 1
    return n


def forward(cfg, W, x, mask=None):
    """Wav2Vec2ForCTC.forward in eval mode: returns logits and the encoder's last hidden state."""
    p = 'wav2vec2.'
    h = x[:, None]
    for i in range(len(cfg['conv_dim'])):
        c = f'{p}feature_extractor.conv_layers.{i}.'
        h = F.conv1d(h, W[c + 'conv.weight'], W.get(c + 'conv.bias'), stride=cfg['conv_stride'][i])
        if cfg['feat_extract_norm'] == 'layer':
            h = F.layer_norm(h.transpose(-2, -1), (h.shape[1],), W[c + 'layer_norm.weight'], W[c + 'layer_norm.bias']).transpose(-2, -1)
        elif i == 0:
            h = F.group_norm(h, h.shape[1], W[c + 'layer_norm.weight'], W[c + 'layer_norm.bias'])
        h = act(cfg['feat_extract_activation'])(h)
    h = h.transpose(1, 2)
    eps = cfg['layer_norm_eps']
    frames = None
    if mask is not None:
        lengths = feat_lengths(cfg, mask.sum(-1))
        frames = torch.arange(h.shape[1])[None] < lengths[:, None]
    h = F.layer_norm(h, (h.shape[-1],), W[p + 'feature_projection.layer_norm.weight'], W[p + 'feature_projection.layer_norm.bias'], eps)
    h = F.linear(h, W[p + 'feature_projection.projection.weight'], W[p + 'feature_projection.projection.bias'])
    e = p + 'encoder.'
    bias = None
    if frames is not None:
        h = h.masked_fill(~frames[..., None], 0.0)
        bias = (~frames[:, None, None, :]).float() * torch.finfo(torch.float32).min
    k = cfg['num_conv_pos_embeddings']
    wn = torch._weight_norm(W[e + 'pos_conv_embed.conv.parametrizations.weight.original1'], W[e + 'pos_conv_embed.conv.parametrizations.weight.original0'], 2)
    pos = F.conv1d(h.transpose(1, 2), wn, W[e + 'pos_conv_embed.conv.bias'], padding=k // 2, groups=cfg['num_conv_pos_embedding_groups'])
    if k % 2 == 0:
        pos = pos[:, :, :-1]
    h = h + act(cfg['feat_extract_activation'])(pos).transpose(1, 2)
    ln = lambda t, n: F.layer_norm(t, (t.shape[-1],), W[n + '.weight'], W[n + '.bias'], eps)
    stable = cfg['do_stable_layer_norm']
    if not stable:
        h = ln(h, e + 'layer_norm')
    B, T, H = h.shape
    nh = cfg['num_attention_heads']
    hs = H // nh
    for i in range(cfg['num_hidden_layers']):
        l = f'{e}layers.{i}.'
        lin = lambda t, n: F.linear(t, W[l + n + '.weight'], W[l + n + '.bias'])

        def attention(t):
            q = (lin(t, 'attention.q_proj') * hs ** -0.5).view(B, T, nh, hs).transpose(1, 2)
            kk = lin(t, 'attention.k_proj').view(B, T, nh, hs).transpose(1, 2)
            v = lin(t, 'attention.v_proj').view(B, T, nh, hs).transpose(1, 2)
            s = q @ kk.transpose(-1, -2)
            if bias is not None:
                s = s + bias
            o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H)
            return lin(o, 'attention.out_proj')

        ff = lambda t: lin(act(cfg['hidden_act'])(lin(t, 'feed_forward.intermediate_dense')), 'feed_forward.output_dense')
        if stable:
            h = h + attention(ln(h, l + 'layer_norm'))
            h = h + ff(ln(h, l + 'final_layer_norm'))
        else:
            h = ln(h + attention(h), l + 'layer_norm')
            h = ln(h + ff(h), l + 'final_layer_norm')
    if stable:
        h = ln(h, e + 'layer_norm')
    return F.linear(h, W['lm_head.weight'], W['lm_head.bias']), h


def ctc(cfg, logits, labels, mask):
    lengths = feat_lengths(cfg, mask.sum(-1))
    keep = labels >= 0
    lp = F.log_softmax(logits, -1, dtype=torch.float32).transpose(0, 1)
    return F.ctc_loss(lp, labels.masked_select(keep), lengths, keep.sum(-1), blank=cfg['pad_token_id'], reduction=cfg['ctc_loss_reduction'], zero_infinity=cfg['ctc_zero_infinity'])


# 1. The transcription against transformers' outputs.
base = os.path.join(DATA, 'wav2vec2')
cfg0 = json.load(open(os.path.join(base, 'config.json')))
W0 = read_safetensors(os.path.join(base, 'model.safetensors'))
R0 = read_safetensors(os.path.join(base, 'ref.safetensors'))
logits0, hidden0 = forward(cfg0, W0, R0['input_values'])
err = max((logits0 - R0['logits']).abs().max().item(), (hidden0 - R0['last_hidden_state']).abs().max().item())
loss0 = ctc(cfg0, logits0, R0['ctc_labels'], torch.ones_like(R0['input_values'], dtype=torch.long))
assert err < 1e-4 and abs(loss0.item() - R0['ctc_loss'].item()) < 1e-4, (err, loss0.item(), R0['ctc_loss'].item())
print(f'transcription vs transformers: max |diff| {err:.2e}, ctc loss {loss0.item():.6f} vs {R0["ctc_loss"].item():.6f}')

# 2. The stable-layer-norm variant, random weights (norm weights and biases random too, so that each one matters).
torch.manual_seed(0)
cfg = {
    'model_type': 'wav2vec2', 'architectures': ['Wav2Vec2ForCTC'], 'vocab_size': 12, 'hidden_size': 32, 'num_hidden_layers': 2,
    'num_attention_heads': 2, 'intermediate_size': 48, 'hidden_act': 'gelu', 'feat_extract_activation': 'gelu',
    'feat_extract_norm': 'layer', 'do_stable_layer_norm': True, 'conv_dim': [16, 16], 'conv_kernel': [6, 3], 'conv_stride': [3, 2],
    'conv_bias': True, 'num_conv_pos_embeddings': 5, 'num_conv_pos_embedding_groups': 2, 'layer_norm_eps': 1e-5,
    'hidden_dropout': 0.0, 'activation_dropout': 0.0, 'attention_dropout': 0.0, 'feat_proj_dropout': 0.0, 'final_dropout': 0.0,
    'layerdrop': 0.0, 'mask_time_prob': 0.0, 'pad_token_id': 0, 'ctc_loss_reduction': 'mean', 'ctc_zero_infinity': True,
}
W = {}
def param(name, *shape, scale=None):
    W[name] = (torch.randn(*shape) * (scale if scale is not None else 1 / math.sqrt(shape[-1]))).requires_grad_()
def norm(name, C):
    W[name + '.weight'] = (1 + 0.2 * torch.randn(C)).requires_grad_()
    W[name + '.bias'] = (0.1 * torch.randn(C)).requires_grad_()
H, I, V = cfg['hidden_size'], cfg['intermediate_size'], cfg['vocab_size']
for i, C in enumerate(cfg['conv_dim']):
    c = f'wav2vec2.feature_extractor.conv_layers.{i}.'
    cin = 1 if i == 0 else cfg['conv_dim'][i - 1]
    param(c + 'conv.weight', C, cin, cfg['conv_kernel'][i], scale=1 / math.sqrt(cin * cfg['conv_kernel'][i]))
    param(c + 'conv.bias', C, scale=0.1)
    norm(c + 'layer_norm', C)
norm('wav2vec2.feature_projection.layer_norm', 16)
param('wav2vec2.feature_projection.projection.weight', H, 16)
param('wav2vec2.feature_projection.projection.bias', H, scale=0.1)
k = cfg['num_conv_pos_embeddings']
pe = 'wav2vec2.encoder.pos_conv_embed.conv.'
param(pe + 'parametrizations.weight.original1', H, H // 2, k, scale=1 / math.sqrt(H // 2 * k))
W[pe + 'parametrizations.weight.original0'] = (0.5 + torch.rand(1, 1, k)).requires_grad_()
param(pe + 'bias', H, scale=0.1)
norm('wav2vec2.encoder.layer_norm', H)
for i in range(cfg['num_hidden_layers']):
    l = f'wav2vec2.encoder.layers.{i}.'
    for n in ['k_proj', 'v_proj', 'q_proj', 'out_proj']:
        param(f'{l}attention.{n}.weight', H, H)
        param(f'{l}attention.{n}.bias', H, scale=0.1)
    norm(l + 'layer_norm', H)
    param(l + 'feed_forward.intermediate_dense.weight', I, H)
    param(l + 'feed_forward.intermediate_dense.bias', I, scale=0.1)
    param(l + 'feed_forward.output_dense.weight', H, I)
    param(l + 'feed_forward.output_dense.bias', H, scale=0.1)
    norm(l + 'final_layer_norm', H)
param('lm_head.weight', V, H)
param('lm_head.bias', V, scale=0.1)

x = torch.randn(2, 1000)
mask = torch.ones(2, 1000, dtype=torch.long)
mask[1, 700:] = 0
x[1, 700:] = 0.0
labels = torch.tensor([[3, 5, 5, 2, 7, 1], [4, 4, 9, -100, -100, -100]])
# The reference runs in float64 (the float32 weights and inputs exactly): torch 1.13's float32 CPU backward through the
# finfo.min key mask returned gradients of 6.7e19 on this batch, where float64 agrees with finite differences.
W64 = {n: t.detach().double().requires_grad_() for n, t in W.items()}
logits, hidden = forward(cfg, W64, x.double(), mask)
probe = torch.randn(logits.shape)
(logits * probe.double()).sum().backward()
ref = {'input_values': x, 'attention_mask': mask, 'logits': logits, 'last_hidden_state': hidden, 'grad_probe': probe, 'ctc_labels': labels}
ref.update({f'grad.{n}': t.grad for n, t in W64.items()})
with torch.no_grad():
    ref['ctc_loss'] = ctc(cfg, logits, labels, mask).reshape(1)
    # The unpadded second row alone: what the padded row's real frames must equal (layer norm has no cross-time statistics).
    ref['row1_alone_logits'] = forward(cfg, W64, x[1:, :700].double())[0]
ref = {n: t.float() if t.is_floating_point() else t for n, t in ref.items()}
out = os.path.join(DATA, 'wav2vec2-stable')
os.makedirs(out, exist_ok=True)
json.dump(cfg, open(os.path.join(out, 'config.json'), 'w'), indent=1)
write_safetensors(os.path.join(out, 'model.safetensors'), {n: t.detach() for n, t in W.items()})
write_safetensors(os.path.join(out, 'ref.safetensors'), ref)
json.dump({'task': 'ctc', 'made_by': 'scripts/gen_wav2vec2_fixtures.py (a PyTorch transcription of transformers Wav2Vec2ForCTC, checked against ../wav2vec2)', 'torch': torch.__version__,
           'note': 'row 1 padded after 700 samples (attention_mask); frames per row: ' + str(feat_lengths(cfg, mask.sum(-1)).tolist())}, open(os.path.join(out, 'ref.json'), 'w'), indent=1)
print('frames', logits.shape, 'ctc loss', ref['ctc_loss'].item(), 'frame lengths', feat_lengths(cfg, mask.sum(-1)).tolist())

# The PyTorch reference of `attend train gpt-brown`: the same GPT-2 in plain torch, trained on the batches the recipe exported.
#
# Usage: /usr/bin/python3 reference/gpt_brown.py [RUN_DIR] [--threads N] [--init exported|torch] [--prefix P] [--save-model DIR] [--stop-after N]
#
# RUN_DIR (default runs/gpt-brown) is the recipe's output folder. It reads reference.json there and the arrays it
# names (token streams, the window starts of every batch, the validation windows) and, by default, the initial
# weights init.safetensors, so that both runs start from the same weights and see the same batches in the same order.
# It writes torch-metrics.jsonl (records like the Trainer's metrics.jsonl) and torch-results.json to RUN_DIR
# (P-metrics.jsonl and P-results.json with --prefix P).
# Needs torch (>= 1.12, for GELU's tanh approximation) and numpy; nothing else.

import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NUMPY_DTYPES = {'uint16': '<u2', 'int32': '<i4'}


def read_array(run_dir, spec):
    """A raw little-endian array described by { file, dtype, shape }, with its size checked."""
    path = os.path.join(run_dir, spec['file'])
    if spec['dtype'] not in NUMPY_DTYPES:
        sys.exit(f'{path}: unknown dtype {spec["dtype"]!r}')
    a = np.fromfile(path, dtype=NUMPY_DTYPES[spec['dtype']])
    if a.size != math.prod(spec['shape']):
        sys.exit(f'{path}: {a.size} values, reference.json says shape {spec["shape"]}')
    return a.reshape(spec['shape'])


def read_safetensors(path):
    """The float32 tensors of a safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == '__metadata__':
            continue
        if info['dtype'] != 'F32':
            sys.exit(f'{path}: {key} is {info["dtype"]}, expected F32')
        begin, end = info['data_offsets']
        out[key] = torch.from_numpy(np.frombuffer(data[begin:end], dtype='<f4').copy()).reshape(info['shape'])
    return out


def write_safetensors(path, tensors):
    """float32 tensors as safetensors (keys sorted, header padded to 8 bytes), written to a temp file then renamed."""
    header, offset, blobs = {}, 0, []
    for key in sorted(tensors):
        b = tensors[key].detach().contiguous().numpy().astype('<f4').tobytes()
        header[key] = {'dtype': 'F32', 'shape': list(tensors[key].shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    head = json.dumps({'__metadata__': {'format': 'pt'}, **header}).encode()
    head += b' ' * (-len(head) % 8)
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(head)) + head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ---- the model: Hugging Face's GPT-2 (pre-norm, learned positions, GELU tanh, tied head), attend's parameter names ----

class Conv1D(nn.Module):
    """GPT-2's linear layer with its weight stored [in, out]."""

    def __init__(self, nx, nf, std):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(nx, nf).normal_(0, std))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c, std = cfg['n_embd'], cfg['initializer_range']
        self.n_head = cfg['n_head']
        self.c_attn = Conv1D(c, 3 * c, std)
        self.c_proj = Conv1D(c, c, std / math.sqrt(2 * cfg['n_layer']))  # GPT-2's scaled residual init

    def forward(self, x, causal):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = (t.reshape(B, T, self.n_head, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(causal[:T, :T], float('-inf')).softmax(dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c, std = cfg['n_embd'], cfg['initializer_range']
        inner = cfg.get('n_inner') or 4 * c
        self.c_fc = Conv1D(c, inner, std)
        self.c_proj = Conv1D(inner, c, std / math.sqrt(2 * cfg['n_layer']))

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate='tanh'))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg['layer_norm_epsilon']
        self.ln_1 = nn.LayerNorm(cfg['n_embd'], eps=eps)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg['n_embd'], eps=eps)
        self.mlp = MLP(cfg)

    def forward(self, x, causal):
        x = x + self.attn(self.ln_1(x), causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.wte = nn.Embedding(cfg['vocab_size'], cfg['n_embd'])
        self.wpe = nn.Embedding(cfg['n_positions'], cfg['n_embd'])
        nn.init.normal_(self.wte.weight, 0, cfg['initializer_range'])
        nn.init.normal_(self.wpe.weight, 0, cfg['initializer_range'])
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg['n_layer']))
        self.ln_f = nn.LayerNorm(cfg['n_embd'], eps=cfg['layer_norm_epsilon'])


class GPT2LMHeadModel(nn.Module):
    """Parameters named as transformers' GPT2LMHeadModel; the output layer is the token embedding (tied)."""

    def __init__(self, cfg):
        super().__init__()
        if cfg.get('embd_pdrop', 0) or cfg.get('attn_pdrop', 0) or cfg.get('resid_pdrop', 0):
            sys.exit('reference: the export has dropout; this reference trains without (dropout masks could not match anyway)')
        if cfg.get('activation_function') not in ('gelu_new', 'gelu_pytorch_tanh') or not cfg.get('tie_word_embeddings', True):
            sys.exit('reference: expects GELU tanh and tied embeddings, as the recipe writes')
        self.transformer = Transformer(cfg)
        t = cfg['n_positions']
        self.register_buffer('causal', torch.triu(torch.ones(t, t, dtype=torch.bool), 1), persistent=False)

    def forward(self, ids):
        tr = self.transformer
        x = tr.wte(ids) + tr.wpe(torch.arange(ids.shape[1]))
        for block in tr.h:
            x = block(x, self.causal)
        return F.linear(tr.ln_f(x), tr.wte.weight)


def cosine_lr(step, t):
    """attend's cosineSchedule (Hugging Face's get_cosine_schedule_with_warmup down to minLr) at 0-based update `step`."""
    if step < t['warmupSteps']:
        return t['lr'] * step / t['warmupSteps']
    if step >= t['steps']:
        return t['minLr']
    p = (step - t['warmupSteps']) / (t['steps'] - t['warmupSteps'])
    return t['minLr'] + (t['lr'] - t['minLr']) * 0.5 * (1 + math.cos(math.pi * p))


def windows(stream, starts, T):
    """Inputs [B, T] and next-token targets [B, T] of the windows stream[s : s + T + 1]."""
    w = torch.from_numpy(stream[starts[:, None] + np.arange(T + 1)].astype(np.int64))
    return w[:, :-1], w[:, 1:]


@torch.no_grad()
def validation_loss(model, val, starts, T, batch_size):
    total = 0.0
    for at in range(0, len(starts), batch_size):
        x, y = windows(val, starts[at:at + batch_size], T)
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction='sum').item()
    return total / (len(starts) * T)


def main():
    ap = argparse.ArgumentParser(description='PyTorch reference for attend train gpt-brown')
    ap.add_argument('run_dir', nargs='?', default='runs/gpt-brown')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--init', choices=['exported', 'torch'], default='exported',
                    help="'exported': start from the recipe's initial weights; 'torch': draw them here (same scheme, torch's RNG)")
    ap.add_argument('--seed', type=int, default=0, help='torch seed for --init torch')
    ap.add_argument('--prefix', default='torch', help='names of the output files: PREFIX-metrics.jsonl, PREFIX-results.json')
    ap.add_argument('--save-model', metavar='DIR', help='also write the trained model as a Hugging Face folder')
    ap.add_argument('--stop-after', type=int, default=0, metavar='N',
                    help='stop after update N (the schedule still spans all steps), like the recipe\'s --stop-after; 0 = run to the end')
    args = ap.parse_args()

    run = args.run_dir
    manifest_path = os.path.join(run, 'reference.json')
    try:
        with open(manifest_path) as f:
            m = json.load(f)
    except FileNotFoundError:
        sys.exit(f'{manifest_path}: not found; run `attend train gpt-brown --out {run}` first')
    if m.get('format') != 'attend-gpt-brown-export' or m.get('version') != 2:
        sys.exit(f'{manifest_path}: not a gpt-brown export of version 2 (re-run the recipe to export it again)')
    cfg, t = m['model'], m['training']
    T, B, steps = t['seqLen'], t['batchSize'], t['steps']
    train = read_array(run, m['arrays']['train'])
    val = read_array(run, m['arrays']['val'])
    batches = read_array(run, m['arrays']['batches'])
    val_starts = read_array(run, m['arrays']['valWindows'])
    if batches.shape != (steps, B):
        sys.exit(f'{run}: batches has shape {batches.shape}, expected ({steps}, {B})')

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = GPT2LMHeadModel(cfg)
    if args.init == 'exported':
        init = read_safetensors(os.path.join(run, m['init']))
        model.load_state_dict(init, strict=True)  # the same names and shapes, or an error naming them
    params = list(model.parameters())
    # Hugging Face's Trainer grouping, as the recipe exports it: no weight decay on biases and layer norms.
    named = dict(model.named_parameters())
    unknown = sorted(set(t['noDecay']) - set(named))
    if unknown:
        sys.exit(f'{manifest_path}: noDecay names parameters the model does not have: {unknown}')
    groups = [{'params': [p for n, p in named.items() if n not in t['noDecay']], 'weight_decay': t['weightDecay']},
              {'params': [p for n, p in named.items() if n in t['noDecay']], 'weight_decay': 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g['params']], lr=t['lr'], betas=tuple(t['betas']), eps=t['eps'])

    metrics_path = os.path.join(run, f'{args.prefix}-metrics.jsonl')
    out = open(metrics_path, 'w')

    def record(r):
        out.write(json.dumps(r) + '\n')
        out.flush()

    print(f'reference: torch {torch.__version__}, {torch.get_num_threads()} threads, {sum(p.numel() for p in params):,} parameters, '
          f'{steps} steps of {B} x {T} tokens, init {args.init}', file=sys.stderr)
    started = time.perf_counter()
    eval_seconds = 0.0
    log_loss, log_steps, log_start = 0.0, 0, started
    final = None
    model.train()
    stop = args.stop_after if 0 < args.stop_after < steps else steps
    for step in range(stop):
        lr = cosine_lr(step, t)
        for g in opt.param_groups:
            g['lr'] = lr
        x, y = windows(train, batches[step], T)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, t['clipGradNorm']).item()
        opt.step()
        log_loss += loss.item()
        log_steps += 1
        s = step + 1
        last = s == stop
        # The Trainer's records: a train record every logEvery steps and at the last, an eval every evalEvery and at the last.
        if s % t['logEvery'] == 0 or last:
            now = time.perf_counter()
            record({'kind': 'train', 'step': s, 'epoch': (s - 1) // t['batchesPerEpoch'], 'loss': log_loss / log_steps, 'lr': lr,
                    'gradNorm': grad_norm, 'tokens': s * B * T, 'tokensPerSecond': log_steps * B * T / (now - log_start)})
            log_loss, log_steps, log_start = 0.0, 0, now
        if last or (t['evalEvery'] and s % t['evalEvery'] == 0):
            e0 = time.perf_counter()
            model.eval()
            v = validation_loss(model, val, val_starts, T, t['evalBatchSize'])
            model.train()
            eval_seconds += time.perf_counter() - e0
            record({'kind': 'eval', 'step': s, 'loss': v, 'perplexity': math.exp(v)})
            print(f'step {s}/{steps}: validation loss {v:.4f}, perplexity {math.exp(v):.1f} ({time.perf_counter() - started:.0f} s)', file=sys.stderr)
            final = {'step': s, 'loss': v, 'perplexity': math.exp(v)}
    train_seconds = time.perf_counter() - started
    out.close()

    results = {
        'reference': 'reference/gpt_brown.py', 'torch': torch.__version__, 'threads': torch.get_num_threads(), 'init': args.init,
        'parameters': sum(p.numel() for p in params), 'steps': stop, 'tokensTrained': stop * B * T,
        'validation': final,
        'seconds': {'train': round(train_seconds), 'evaluate': round(eval_seconds)},
        'tokensPerSecond': round(stop * B * T / (train_seconds - eval_seconds)),
    }
    if args.save_model:
        os.makedirs(args.save_model, exist_ok=True)
        write_safetensors(os.path.join(args.save_model, 'model.safetensors'), model.state_dict())
        for name in ('config.json', m['tokenizer']):
            with open(os.path.join(run, name), 'rb') as src, open(os.path.join(args.save_model, name), 'wb') as dst:
                dst.write(src.read())
        results['savedModel'] = args.save_model
    with open(os.path.join(run, f'{args.prefix}-results.json'), 'w') as f:
        json.dump(results, f, indent=2)
        f.write('\n')
    print(json.dumps(results, indent=2))


if __name__ == '__main__':
    main()

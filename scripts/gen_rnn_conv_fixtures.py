# Writes test/data/rnn_conv.json: torch.nn recurrent, convolution and pooling layers (state dicts, inputs, outputs, gradients).
# Run: /usr/bin/python3 scripts/gen_rnn_conv_fixtures.py   (Debian's python3-torch; checked in, CI does not run it)
import json
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch.manual_seed(0)


def t2j(t):
    kind = 'bool' if t.dtype == torch.bool else 'float32' if t.is_floating_point() else 'int32'
    conv = bool if kind == 'bool' else float if kind == 'float32' else int
    return {'shape': list(t.shape), 'dtype': kind, 'data': [conv(v) for v in t.reshape(-1).tolist()]}


def case(module, inputs, call):
    module.eval()
    leaves = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    y = call(module, *leaves)
    probe = torch.randn(y.shape)
    (y * probe).sum().backward()
    return {
        'state': {k: t2j(v) for k, v in module.state_dict().items()},
        'inputs': [t2j(x) for x in inputs],
        'output': t2j(y.detach()),
        'probe': t2j(probe),
        'input_grads': [t2j(x.grad) if x.grad is not None else None for x in leaves],
        'param_grads': {k: t2j(p.grad) for k, p in module.named_parameters()},
    }


def flat(*ts):
    """Output and final states in one vector, so that one comparison (and one probe) covers them all."""
    return torch.cat([t.reshape(-1) for t in ts])


def rnn_out(m, x, *hx):
    out, hn = m(x, hx[0] if hx else None)
    return flat(out, hn)


def lstm_out(m, x, *hx):
    out, (hn, cn) = m(x, (hx[0], hx[1]) if hx else None)
    return flat(out, hn, cn)


def packed(m, x, lengths):
    """Padded batch with per-sequence lengths, run as a packed sequence; padded output steps are zeros."""
    p = pack_padded_sequence(x, lengths, batch_first=m.batch_first, enforce_sorted=False)
    out, state = m(p)
    out, _ = pad_packed_sequence(out, batch_first=m.batch_first, total_length=x.shape[1 if m.batch_first else 0])
    return flat(out, *(state if isinstance(state, tuple) else (state,)))


T, B, I, H = 5, 2, 3, 4
cases = {
    'rnn_tanh_2layer': case(nn.RNN(I, H, num_layers=2), [torch.randn(T, B, I), torch.randn(2, B, H)], rnn_out),
    'rnn_relu_batch_first_nobias': case(nn.RNN(I, H, nonlinearity='relu', bias=False, batch_first=True), [torch.randn(B, T, I)], rnn_out),
    'lstm_batch_first': case(nn.LSTM(I, H, batch_first=True), [torch.randn(B, T, I)], lstm_out),
    'lstm_2layer_bidir_h0c0': case(nn.LSTM(I, H, num_layers=2, bidirectional=True), [torch.randn(T, B, I), torch.randn(4, B, H), torch.randn(4, B, H)], lstm_out),
    'lstm_unbatched': case(nn.LSTM(I, H), [torch.randn(T, I)], lstm_out),
    'gru_bidir': case(nn.GRU(I, H, bidirectional=True), [torch.randn(T, B, I), torch.randn(2, B, H)], rnn_out),
    'lstm_bidir_lengths': case(nn.LSTM(I, H, bidirectional=True), [torch.randn(T, 3, I), torch.tensor([3, 5, 1])], packed),
    'gru_2layer_batch_first_lengths': case(nn.GRU(I, H, num_layers=2, batch_first=True), [torch.randn(3, T, I), torch.tensor([5, 2, 4])], packed),
    'rnn_cell_relu': case(nn.RNNCell(I, H, nonlinearity='relu'), [torch.randn(B, I), torch.randn(B, H)], lambda m, x, h: m(x, h)),
    'lstm_cell': case(nn.LSTMCell(I, H), [torch.randn(B, I), torch.randn(B, H), torch.randn(B, H)], lambda m, x, h, c: flat(*m(x, (h, c)))),
    'gru_cell': case(nn.GRUCell(I, H), [torch.randn(B, I), torch.randn(B, H)], lambda m, x, h: m(x, h)),
    'gru_cell_unbatched_no_state': case(nn.GRUCell(I, H), [torch.randn(I)], lambda m, x: m(x)),
    'conv1d_stride_padding': case(nn.Conv1d(4, 6, 3, stride=2, padding=1), [torch.randn(2, 4, 9)], lambda m, x: m(x)),
    'conv1d_same': case(nn.Conv1d(2, 3, 4, padding='same'), [torch.randn(2, 2, 7)], lambda m, x: m(x)),
    'conv2d_groups_dilation': case(nn.Conv2d(4, 6, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2), [torch.randn(2, 4, 7, 8)], lambda m, x: m(x)),
    'conv2d_same_nobias': case(nn.Conv2d(2, 2, (2, 3), padding='same', dilation=(1, 2), bias=False), [torch.randn(2, 2, 5, 6)], lambda m, x: m(x)),
    'maxpool2d': case(nn.MaxPool2d(3, stride=2, padding=1), [torch.randn(2, 3, 7, 6)], lambda m, x: m(x)),
    'avgpool1d': case(nn.AvgPool1d(3, stride=2, padding=1), [torch.randn(2, 3, 8)], lambda m, x: m(x)),
    'maxpool1d': case(nn.MaxPool1d(2), [torch.randn(2, 3, 7)], lambda m, x: m(x)),
    'avgpool2d': case(nn.AvgPool2d((2, 3), stride=(2, 1)), [torch.randn(2, 3, 6, 7)], lambda m, x: m(x)),
    'adaptive_avgpool1d': case(nn.AdaptiveAvgPool1d(3), [torch.randn(2, 3, 7)], lambda m, x: m(x)),
    'adaptive_avgpool2d': case(nn.AdaptiveAvgPool2d((3, None)), [torch.randn(2, 2, 7, 5)], lambda m, x: m(x)),
}

with open('test/data/rnn_conv.json', 'w') as f:
    json.dump({'source': 'scripts/gen_rnn_conv_fixtures.py with PyTorch ' + torch.__version__, 'cases': cases}, f)
print(len(cases), 'cases')

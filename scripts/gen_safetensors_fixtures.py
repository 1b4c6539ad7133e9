# Writes test/data/safetensors/: reference values for src/io/safetensors.test.ts, independent of our reader.
# Run: /usr/bin/python3 scripts/gen_safetensors_fixtures.py   (numpy + Debian's python3-torch; checked in, CI does not run it)
# - expected.json: values of test/data/hf/gpt2/{model,ref}.safetensors read with plain Python (struct + json + numpy),
#   the tensors of the two files below (F16 widened by numpy, BF16 by torch), and float32 -> F16 / BF16 rounding tables.
# - dtypes.safetensors: every dtype we load, laid out as the reference library does (dtype alignment, then name).
# - unaligned.safetensors: the same format with tensors in name order, so F64 / I64 / F32 data sit at odd offsets.
# Floats are stored as their IEEE bit patterns (uint32 of the float32 or pairs for float64) so NaN, inf and -0 survive JSON.
import json
import os
import struct

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'data', 'safetensors')
GPT2 = os.path.join(ROOT, 'test', 'data', 'hf', 'gpt2')

NP = {'F32': np.float32, 'F64': np.float64, 'F16': np.float16, 'I64': np.int64, 'I32': np.int32, 'U8': np.uint8, 'BOOL': np.bool_}
# The reference library sorts tensors by descending dtype (its enum order), then by name.
DTYPE_RANK = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64']


def read_file(path):
    """Plain-Python safetensors reader: {name: (dtype, shape, raw bytes)} and the metadata."""
    with open(path, 'rb') as f:
        b = f.read()
    n = struct.unpack('<Q', b[:8])[0]
    header = json.loads(b[8:8 + n])
    meta = header.pop('__metadata__', None)
    out = {}
    for k, v in header.items():
        s, e = v['data_offsets']
        out[k] = (v['dtype'], v['shape'], b[8 + n + s:8 + n + e])
    return out, meta


def values(dtype, raw):
    if dtype == 'BF16':
        return torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float().numpy()
    return np.frombuffer(raw, dtype=NP[dtype])


def f32_bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32).tolist()


def f64_bits(a):
    # [low word, high word] pairs: JSON numbers cannot hold all 64-bit patterns.
    return np.asarray(a, dtype=np.float64).view(np.uint32).tolist()


def expected_of(dtype, raw):
    v = values(dtype, raw)
    if dtype in ('F32', 'F16', 'BF16'):
        return {'f32bits': f32_bits(v)}
    if dtype == 'F64':
        return {'f64bits': f64_bits(v)}
    return {'ints': [int(x) for x in v]}


def write_file(path, tensors, metadata, order):
    """tensors: {name: (dtype, shape, raw bytes)}; order: 'reference' (dtype, then name) or 'name'."""
    names = sorted(tensors)
    if order == 'reference':
        names.sort(key=lambda k: -DTYPE_RANK.index(tensors[k][0]))
    parts = []
    if metadata is not None:
        parts.append('"__metadata__":' + json.dumps(metadata, separators=(',', ':')))
    data = b''
    for k in names:
        dtype, shape, raw = tensors[k]
        parts.append(json.dumps(k) + ':' + json.dumps({'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}, separators=(',', ':')))
        data += raw
    header = ('{' + ','.join(parts) + '}').encode()
    header += b' ' * ((8 - len(header) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(header)) + header + data)


def bf16_raw(bits):
    return np.asarray(bits, dtype=np.uint16).tobytes()


# float16 bit patterns: zeros, smallest / largest subnormals, smallest normal, one, max, inf, nan, and random ones.
rng = np.random.default_rng(0)
F16_BITS = [0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x3555, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe00] + rng.integers(0, 0x10000, 16).tolist()
# bfloat16 bit patterns: the same kinds of values.
BF16_BITS = [0x0000, 0x8000, 0x0001, 0x8001, 0x007f, 0x0080, 0x3f80, 0xbf80, 0x3eab, 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffc0] + rng.integers(0, 0x10000, 16).tolist()

# float32 inputs for float32 -> float16 / bfloat16 rounding: ties (to even), overflow, subnormal results, underflow.
ROUND_IN = np.array([
    0.0, -0.0, 1.0, -2.5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -10 + 2 ** -12, 65504.0, 65519.99, 65520.0, 1e10, -1e10,
    2 ** -14, 2 ** -24, 2 ** -25, 1.5 * 2 ** -25, 3 * 2 ** -25, 2 ** -26, 6e-8, 1e-30, -1e-30,
    1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 3.4028234663852886e38, 1.1754943508222875e-38, 1e-45, -1e-45,
    float('inf'), float('-inf'), float('nan'),
], dtype=np.float32)
ROUND_IN = np.concatenate([ROUND_IN, rng.standard_normal(16).astype(np.float32) * 100, rng.standard_normal(8).astype(np.float32) * 1e-6])


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {'source': 'scripts/gen_safetensors_fixtures.py with numpy %s, torch %s' % (np.__version__, torch.__version__)}

    model, meta = read_file(os.path.join(GPT2, 'model.safetensors'))
    expected['gpt2_model'] = {
        'metadata': meta,
        'tensors': {k: {'dtype': d, 'shape': s, 'head_f32bits': f32_bits(values(d, raw)[:5]), 'tail_f32bits': f32_bits(values(d, raw)[-3:]),
                        'sum': float(values(d, raw).astype(np.float64).sum())} for k, (d, s, raw) in model.items()},
    }
    ref, _ = read_file(os.path.join(GPT2, 'ref.safetensors'))
    expected['gpt2_ref'] = {k: {'dtype': ref[k][0], 'shape': ref[k][1], **expected_of(ref[k][0], ref[k][2])}
                            for k in ['input_ids', 'attention_mask', 'gen.input_ids', 'loss', 'grad_loss']}
    expected['gpt2_ref']['grad_probe_head'] = f32_bits(values('F32', ref['grad_probe'][2])[:8])

    tensors = {
        'f32': ('F32', [2, 3], np.array([1.5, -0.0, 1e-45, 3.4028234663852886e38, -7.25, 0.1], np.float32).tobytes()),
        'f64': ('F64', [3], np.array([0.1, -1e300, 5e-324], np.float64).tobytes()),
        'f16': ('F16', [len(F16_BITS)], np.asarray(F16_BITS, np.uint16).tobytes()),
        'bf16': ('BF16', [2, len(BF16_BITS) // 2], bf16_raw(BF16_BITS)),
        'i64': ('I64', [2, 2], np.array([-2 ** 31, 2 ** 31 - 1, 0, -5], np.int64).tobytes()),
        'i32': ('I32', [3], np.array([-2 ** 31, 7, 2 ** 31 - 1], np.int32).tobytes()),
        'u8': ('U8', [4], np.array([0, 1, 128, 255], np.uint8).tobytes()),
        'bool': ('BOOL', [5], np.array([True, False, True, True, False]).tobytes()),
        'empty': ('F32', [0, 3], b''),
        'scalar': ('F32', [], np.array([2.5], np.float32).tobytes()),
    }
    meta = {'format': 'pt', 'note': 'all dtypes'}
    write_file(os.path.join(OUT, 'dtypes.safetensors'), tensors, meta, 'reference')
    unaligned = {f'{i}_{k}': tensors[k] for i, k in enumerate(['bool', 'f64', 'i64', 'f16', 'f32', 'bf16', 'u8', 'i32'])}
    write_file(os.path.join(OUT, 'unaligned.safetensors'), unaligned, None, 'name')
    expected['dtypes'] = {'metadata': meta, 'tensors': {k: {'dtype': d, 'shape': s, **expected_of(d, raw)} for k, (d, s, raw) in tensors.items()}}
    expected['unaligned'] = {k: {'dtype': d, 'shape': s, **expected_of(d, raw)} for k, (d, s, raw) in unaligned.items()}

    # float32 -> half rounding: numpy for float16, torch for bfloat16 (numpy has none). Loading F16 / BF16 is
    # checked through the f16 / bf16 tensors above, whose expected values come from the same libraries.
    with np.errstate(over='ignore'):  # 65520 and 1e10 overflow to inf on purpose
        expected['f32_to_f16'] = {'f32bits': f32_bits(ROUND_IN), 'bits': ROUND_IN.astype(np.float16).view(np.uint16).tolist()}
    expected['f32_to_bf16'] = {'f32bits': f32_bits(ROUND_IN), 'bits': (torch.from_numpy(ROUND_IN).to(torch.bfloat16).view(torch.int16).numpy().astype(np.int64) & 0xffff).tolist()}

    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(expected, f)
        f.write('\n')


if __name__ == '__main__':
    main()

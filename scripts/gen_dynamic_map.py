# Prints bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) as float32 hex bits, the
# constant DYNAMIC_MAP in src/quant/formats.ts (bitsandbytes/functional.py's formula, evaluated with torch on CPU).
import struct

import torch


def create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
    data = []
    non_sign_bits = total_bits - 1
    for i in range(max_exponent_bits):
        fraction_items = int(2 ** (i + non_sign_bits - max_exponent_bits) + 1 if signed else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1)
        boundaries = torch.linspace(0.1, 1, fraction_items, dtype=torch.float32)
        means = (boundaries[:-1] + boundaries[1:]) / 2.0
        data += ((10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
        if signed:
            data += (-(10 ** (-(max_exponent_bits - 1) + i)) * means).tolist()
    data.append(0)
    data.append(1.0)
    assert len(data) == 2 ** total_bits
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


print(''.join('%08x' % struct.unpack('<I', struct.pack('<f', x))[0] for x in create_dynamic_map().tolist()))

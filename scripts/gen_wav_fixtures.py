# Writes small WAV files with Python's wave module and hand-packed headers (float, WAVE_FORMAT_EXTENSIBLE, odd-sized
# extra chunks) to test/data/wav/, and expected.json with the mono samples numpy computes from the stored integers.
# Run: /usr/bin/python3 scripts/gen_wav_fixtures.py
import json
import os
import struct
import wave

import numpy as np

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'data', 'wav')
rng = np.random.RandomState(0)
N = 40  # frames per file: small on purpose
expected = {}

INT = {1: ('u8', np.uint8), 2: ('s16le', np.int16), 3: ('s24le', None), 4: ('s32le', np.int32)}


def ints(width, channels):
    """Random full-range sample values (plus the extremes) for a sample width in bytes."""
    if width == 1:
        v = rng.randint(0, 256, size=(N, channels))
        v[0, 0], v[1, 0] = 0, 255
        return v
    bits = 8 * width
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    v = rng.randint(lo, hi, size=(N, channels), dtype=np.int64)
    v[0, 0], v[1, 0] = lo, hi
    return v


def pack_ints(v, width):
    if width == 1:
        return v.astype(np.uint8).tobytes()
    if width == 3:
        b = v.astype('<i4').view(np.uint8).reshape(-1, 4)[:, :3]
        return b.tobytes()
    return v.astype({2: '<i2', 4: '<i4'}[width]).tobytes()


def mono_of_ints(v, width):
    x = v.astype(np.float64)
    x = (x - 128) / 128 if width == 1 else x / float(1 << (8 * width - 1))
    return x.mean(axis=1)


def record(name, rate, channels, fmt, mono):
    expected[name] = {'sampleRate': rate, 'channels': channels, 'format': fmt, 'samples': [float(s) for s in mono]}


def write_wave(name, width, channels, rate):
    """PCM written by Python's own wave module."""
    v = ints(width, channels)
    with wave.open(os.path.join(OUT, name), 'wb') as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pack_ints(v, width))
    record(name, rate, channels, INT[width][0], mono_of_ints(v, width))


def chunk(cid, body):
    pad = b'\0' if len(body) % 2 else b''
    return cid + struct.pack('<I', len(body)) + body + pad


def write_raw(name, fmt_body, data, extra=b''):
    body = b'WAVE' + chunk(b'fmt ', fmt_body) + extra + chunk(b'data', data)
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(b'RIFF' + struct.pack('<I', len(body)) + body)


def fmt16(tag, channels, rate, bits):
    align = channels * bits // 8
    return struct.pack('<HHIIHH', tag, channels, rate, rate * align, align, bits)


def extensible(channels, rate, bits, sub_tag):
    guid_tail = bytes.fromhex('000000001000800000aa00389b71')  # KSDATAFORMAT_SUBTYPE_* after the 2-byte tag
    return fmt16(0xFFFE, channels, rate, bits) + struct.pack('<HHI', 22, bits, (1 << channels) - 1) + struct.pack('<H', sub_tag) + guid_tail


def write_float(name, bits, channels, rate, ext=False):
    x = rng.uniform(-1, 1, size=(N, channels)).astype(np.float32 if bits == 32 else np.float64)
    data = x.astype('<f4' if bits == 32 else '<f8').tobytes()
    fmt = extensible(channels, rate, bits, 3) if ext else fmt16(3, channels, rate, bits) + struct.pack('<H', 0)
    write_raw(name, fmt, data, chunk(b'fact', struct.pack('<I', N)))
    record(name, rate, channels, 'f32le' if bits == 32 else 'f64le', x.astype(np.float64).mean(axis=1))


os.makedirs(OUT, exist_ok=True)
write_wave('mono_s16.wav', 2, 1, 16000)
write_wave('stereo_s16.wav', 2, 2, 22050)
write_wave('mono_u8.wav', 1, 1, 8000)
write_wave('stereo_s24.wav', 3, 2, 44100)
write_wave('mono_s32.wav', 4, 1, 48000)
write_float('mono_f32.wav', 32, 1, 16000)
write_float('stereo_f64.wav', 64, 2, 16000)
write_float('ext_f32_stereo.wav', 32, 2, 48000, ext=True)

# WAVE_FORMAT_EXTENSIBLE 24-bit stereo, with an odd-sized LIST chunk (padded) and an unknown chunk before the data.
v = ints(3, 2)
info = chunk(b'LIST', b'INFOISFT' + struct.pack('<I', 5) + b'attd\0')  # 17 bytes: one pad byte follows
write_raw('ext_s24_stereo_chunks.wav', extensible(2, 44100, 24, 1), pack_ints(v, 3), info + chunk(b'junk', b'\x01\x02\x03'))
record('ext_s24_stereo_chunks.wav', 44100, 2, 's24le', mono_of_ints(v, 3))

# Raw PCM (no header): 3 channels of s16le, as readPcm must take it.
v = ints(2, 3)
with open(os.path.join(OUT, 'three_channels_s16.raw'), 'wb') as f:
    f.write(pack_ints(v, 2))
record('three_channels_s16.raw', 16000, 3, 's16le', mono_of_ints(v, 2))

with open(os.path.join(OUT, 'expected.json'), 'w') as f:
    json.dump(expected, f, indent=0)

# Reference resizes for src/processors/image.test.ts: Pillow's Image.resize (what Hugging Face's ViTImageProcessor
# calls) on small deterministic images, every filter, up and down, gray and RGB; plus PIL's bilinear resize of the
# ViT fixture's 40x52 image (test/data/hf/vit/ref.safetensors, proc.image_uint8_hwc) to 32x32; and torch's
# nearest-exact interpolation (what transformers' torchvision processors use for PIL's NEAREST) on uint8 images;
# and a JPEG (4:2:0, quality 90) with the pixels Pillow decodes from it (transformers' load_image decodes with Pillow).
# Run: /usr/bin/python3 scripts/gen_image_fixtures.py  -> test/data/image/{resize.json, photo.jpg, photo.json}
import json
import os
import struct

import numpy as np
import PIL
import torch
from PIL import Image

ROOT = os.path.join(os.path.dirname(__file__), '..')
FILTERS = {'nearest': Image.NEAREST, 'box': Image.BOX, 'bilinear': Image.BILINEAR, 'hamming': Image.HAMMING,
           'bicubic': Image.BICUBIC, 'lanczos': Image.LANCZOS}


def pattern(h, w, c):
    # Hard edges and ramps so that every filter's overshoot and rounding show.
    i = np.arange(h * w * c, dtype=np.int64)
    return ((i * 73 + (i // c) * 29 + 17) % 256).astype(np.uint8).reshape(h, w, c)


def load_safetensors(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        s, e = v['data_offsets']
        dt = {'F32': np.float32, 'U8': np.uint8, 'I64': np.int64}[v['dtype']]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=dt).reshape(v['shape'])
    return out


def resize(arr, w, h, f):
    mode = {1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA'}[arr.shape[2]]
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode=mode)
    out = np.asarray(img.resize((w, h), resample=FILTERS[f], reducing_gap=None))
    return out.reshape(h, w, arr.shape[2])


cases = []
# (input h, w, c) -> (output w, h): a 2x2 upscale, a downscale by a non-integer factor, mixed up/down, a 1-pixel row.
shapes = [((2, 2, 3), (5, 3)), ((2, 2, 1), (4, 4)), ((7, 9, 1), (4, 3)), ((6, 5, 3), (11, 2)), ((1, 8, 3), (3, 1)), ((13, 17, 3), (6, 5))]
# Images with alpha: Pillow premultiplies them (RGBa, La) around the filter.
alpha_shapes = [((9, 7, 4), (4, 13)), ((5, 6, 2), (9, 3))]
for (h, w, c), (ow, oh) in shapes + alpha_shapes:
    src = pattern(h, w, c)
    for f in FILTERS:
        cases.append({'filter': f, 'width': w, 'height': h, 'channels': c, 'out_width': ow, 'out_height': oh,
                      'input': src.flatten().tolist(), 'output': resize(src, ow, oh, f).flatten().tolist()})

nearest_exact = []
for (h, w, c), (ow, oh) in shapes + [((7, 3, 3), (9, 14)), ((50, 30, 1), (17, 13))]:
    src = pattern(h, w, c)
    t = torch.from_numpy(src.copy()).permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(t, size=(oh, ow), mode='nearest-exact')[0].permute(1, 2, 0).numpy()
    nearest_exact.append({'width': w, 'height': h, 'channels': c, 'out_width': ow, 'out_height': oh,
                          'input': src.flatten().tolist(), 'output': out.flatten().tolist()})

ref = load_safetensors(os.path.join(ROOT, 'test/data/hf/vit/ref.safetensors'))
vit = resize(ref['proc.image_uint8_hwc'].copy(), 32, 32, 'bilinear')

out = {'pillow': PIL.__version__, 'torch': torch.__version__, 'cases': cases, 'torch_nearest_exact': nearest_exact,
       'vit_bilinear_32x32': vit.flatten().tolist()}
os.makedirs(os.path.join(ROOT, 'test/data/image'), exist_ok=True)
with open(os.path.join(ROOT, 'test/data/image/resize.json'), 'w') as fh:
    json.dump(out, fh, separators=(',', ':'))
print(len(cases), 'Pillow cases,', len(nearest_exact), 'torch cases; Pillow', PIL.__version__, 'torch', torch.__version__)

# A JPEG with smooth ramps and noise, and Pillow's decoding of it.
rng = np.random.default_rng(0)
photo = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
photo[:12] = np.linspace(0, 255, 32).astype(np.uint8)[None, :, None]
jpg = os.path.join(ROOT, 'test/data/image/photo.jpg')
Image.fromarray(photo).save(jpg, quality=90)
decoded = np.asarray(Image.open(jpg).convert('RGB'))
with open(os.path.join(ROOT, 'test/data/image/photo.json'), 'w') as fh:
    json.dump({'width': 32, 'height': 24, 'channels': 3, 'pixels': decoded.flatten().tolist()}, fh, separators=(',', ':'))

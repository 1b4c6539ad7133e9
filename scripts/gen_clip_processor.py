# Reference outputs for CLIPImageProcessor (src/processors/image.test.ts): transformers 4's Pillow/numpy path
# (CLIPImageProcessor with use_fast=False) transcribed step by step: PIL resize so the shortest edge is `size`
# (the long edge int(size * long / short)), numpy center crop (offsets (n - crop) // 2, zero padding with ceil offsets
# when the crop is larger), rescale in float64 stored as float32, normalize in float32 with OpenAI's mean and std.
# Run: /usr/bin/python3 scripts/gen_clip_processor.py  -> test/data/image/clip_processor.json
import json
import math
import os

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(__file__), '..')
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
FILTERS = {2: Image.BILINEAR, 3: Image.BICUBIC}


def pattern(h, w, c, seed):
    i = np.arange(h * w * c, dtype=np.int64)
    return ((i * 73 + (i // c) * 29 + 17 + seed * 41) % 256).astype(np.uint8).reshape(h, w, c)


def shortest_edge_size(h, w, size):
    # transformers.image_transforms.get_resize_output_image_size(default_to_square=False)
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def center_crop(arr, ch, cw):
    # transformers.image_transforms.center_crop on HWC
    h, w = arr.shape[:2]
    top, left = (h - ch) // 2, (w - cw) // 2
    if top >= 0 and left >= 0 and top + ch <= h and left + cw <= w:
        return arr[top:top + ch, left:left + cw]
    nh, nw = max(ch, h), max(cw, w)
    out = np.zeros((nh, nw) + arr.shape[2:], dtype=arr.dtype)
    tp, lp = math.ceil((nh - h) / 2), math.ceil((nw - w) / 2)
    out[tp:tp + h, lp:lp + w] = arr
    top, left = top + tp, left + lp
    return out[max(0, top):min(nh, top + ch), max(0, left):min(nw, left + cw)]


def process(arr, size, crop, resample, do_resize=True):
    if do_resize:
        oh, ow = shortest_edge_size(arr.shape[0], arr.shape[1], size)
        arr = np.asarray(Image.fromarray(arr, mode='RGB').resize((ow, oh), resample=FILTERS[resample], reducing_gap=None))
    arr = center_crop(arr, *crop)
    x = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    return x.transpose(2, 0, 1)  # CHW


cases = []
# (h, w), config: a downscale that crops the long edge, an upscale of a tall image with a rectangular crop, a bilinear
# resize, and a crop larger than the image (zero padding) without resizing.
for (h, w), cfg in [((7, 11), {'size': {'shortest_edge': 5}, 'crop_size': {'height': 4, 'width': 4}}),
                    ((13, 6), {'size': {'shortest_edge': 8}, 'crop_size': {'height': 5, 'width': 7}}),
                    ((9, 14), {'size': 6, 'crop_size': 5, 'resample': 2}),
                    ((4, 5), {'do_resize': False, 'crop_size': {'height': 7, 'width': 6}})]:
    src = pattern(h, w, 3, len(cases))
    size = cfg.get('size', 0)
    size = size['shortest_edge'] if isinstance(size, dict) else size
    crop = cfg['crop_size']
    crop = (crop['height'], crop['width']) if isinstance(crop, dict) else (crop, crop)
    out = process(src, size, crop, cfg.get('resample', 3), cfg.get('do_resize', True))
    cases.append({'width': w, 'height': h, 'config': cfg, 'input': src.flatten().tolist(),
                  'shape': list(out.shape), 'pixel_values': [float(v) for v in out.flatten()]})

path = os.path.join(ROOT, 'test/data/image/clip_processor.json')
with open(path, 'w') as f:
    json.dump({'cases': cases}, f)
print(path, os.path.getsize(path))

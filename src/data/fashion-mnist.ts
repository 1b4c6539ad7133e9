// Fashion-MNIST (Debian package dataset-fashion-mnist): 70,000 28x28 grey images of clothing in 10 classes, read
// from the gzip-compressed IDX files.

import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Where the Debian package installs the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
const PACKAGE = 'dataset-fashion-mnist';

/** The class names by label, as Zalando's README gives them. */
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;

export const FASHION_MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte.gz', trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz', testLabels: 't10k-labels-idx1-ubyte.gz',
} as const;

/** One split: n images of rows x cols bytes each (0 = background, 255 = ink), row-major, and their labels 0..9. */
export interface ImageSet {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

export interface FashionMnist {
  /** The 60,000 training images. */
  train: ImageSet;
  /** The 10,000 test images. */
  test: ImageSet;
}

/**
 * Parses an IDX file (already decompressed): a big-endian header of magic 0x0000 08 <dims>, then each dimension's
 * size, then unsigned bytes. `file` labels the errors.
 */
export function parseIdx(bytes: Uint8Array, file: string): { dims: number[]; data: Uint8Array } {
  if (bytes.length < 4) throw new Error(`${file}: not an IDX file (${bytes.length} bytes, no header)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  const type = (magic >> 8) & 0xff, nd = magic & 0xff;
  if (magic >>> 16 !== 0 || type !== 0x08 || nd < 1 || nd > 4) throw new Error(`${file}: not an IDX file of unsigned bytes (magic 0x${magic.toString(16).padStart(8, '0')})`);
  if (bytes.length < 4 + 4 * nd) throw new Error(`${file}: truncated IDX header`);
  const dims = Array.from({ length: nd }, (_, i) => view.getUint32(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1), start = 4 + 4 * nd;
  if (bytes.length !== start + size) throw new Error(`${file}: the header says ${dims.join(' x ')} = ${size} bytes of data, the file holds ${bytes.length - start}`);
  return { dims, data: bytes.subarray(start) };
}

async function readIdx(path: string): Promise<{ dims: number[]; data: Uint8Array }> {
  let raw: Buffer;
  try {
    raw = gunzipSync(await readFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read the gzip file (${(e as Error).message})`);
  }
  return parseIdx(raw, path);
}

async function readSplit(dir: string, images: string, labels: string): Promise<ImageSet> {
  const img = await readIdx(join(dir, images));
  const lab = await readIdx(join(dir, labels));
  if (img.dims.length !== 3) throw new Error(`${join(dir, images)}: expected images [n, rows, cols], got ${img.dims.length} dimensions`);
  if (lab.dims.length !== 1 || lab.dims[0] !== img.dims[0]) throw new Error(`${join(dir, labels)}: ${lab.dims.join(' x ')} labels for ${img.dims[0]} images in ${images}`);
  const bad = lab.data.findIndex((y) => y >= FASHION_MNIST_CLASSES.length);
  if (bad >= 0) throw new Error(`${join(dir, labels)}: label ${lab.data[bad]} at index ${bad} is not a class 0..9`);
  const [count, rows, cols] = img.dims as [number, number, number];
  return { images: img.data, labels: lab.data, count, rows, cols };
}

/** Loads both splits; a missing folder or file names the Debian package and how to install it. */
export async function loadFashionMnist(opts: { dir?: string } = {}): Promise<FashionMnist> {
  const dir = opts.dir ?? FASHION_MNIST_DIR;
  for (const f of Object.values(FASHION_MNIST_FILES)) {
    const path = join(dir, f);
    if (!(await access(path).then(() => true, () => false))) {
      throw new Error(`Fashion-MNIST not found: ${path} is missing. It comes with the Debian package '${PACKAGE}' (sudo apt-get install ${PACKAGE})${opts.dir ? ', or pass the folder that holds the four .gz files' : ''}`);
    }
  }
  const F = FASHION_MNIST_FILES;
  return { train: await readSplit(dir, F.trainImages, F.trainLabels), test: await readSplit(dir, F.testImages, F.testLabels) };
}

// Fashion-MNIST: the IDX format by hand, bad and missing files, and the Debian package's files (sizes, balanced classes).

import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { FASHION_MNIST_DIR, FASHION_MNIST_FILES, loadFashionMnist, parseIdx } from './fashion-mnist.js';

/** An IDX file of unsigned bytes: magic 0x0000 08 nd, the sizes big-endian, then the data. */
function idx(dims: number[], data: number[]): Uint8Array {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.writeUInt32BE(0x0800 + dims.length, 0);
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

describe('IDX files', () => {
  test('dimensions and data, read by hand', () => {
    const r = parseIdx(idx([2, 1, 3], [1, 2, 3, 4, 5, 6]), 'x');
    expect(r.dims).toEqual([2, 1, 3]);
    expect(Array.from(r.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });
  test('a wrong magic, a short header or missing data name the file', () => {
    expect(() => parseIdx(Buffer.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]), 'f.idx')).toThrow(/f.idx: not an IDX file of unsigned bytes \(magic 0x00000d01\)/);
    expect(() => parseIdx(Buffer.from([0, 0]), 'f.idx')).toThrow(/f.idx: not an IDX file \(2 bytes, no header\)/);
    expect(() => parseIdx(Buffer.from([0, 0, 8, 3, 0, 0, 0, 2]), 'f.idx')).toThrow(/f.idx: truncated IDX header/);
    expect(() => parseIdx(idx([2, 2, 2], [1, 2, 3]), 'f.idx')).toThrow(/f.idx: the header says 2 x 2 x 2 = 8 bytes of data, the file holds 3/);
  });
  test('a missing file names the Debian package; corrupt gzip and mismatched labels name the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-fashion-'));
    await expect(loadFashionMnist({ dir })).rejects.toThrow(/train-images-idx3-ubyte.gz is missing\. It comes with the Debian package 'dataset-fashion-mnist' \(sudo apt-get install dataset-fashion-mnist\)/);
    const F = FASHION_MNIST_FILES;
    await writeFile(join(dir, F.trainImages), gzipSync(idx([2, 28, 28], new Array<number>(2 * 784).fill(7))));
    await writeFile(join(dir, F.trainLabels), gzipSync(idx([3], [1, 2, 3])));
    await writeFile(join(dir, F.testImages), Buffer.from('not gzip'));
    await writeFile(join(dir, F.testLabels), gzipSync(idx([1], [12])));
    await expect(loadFashionMnist({ dir })).rejects.toThrow(/train-labels-idx1-ubyte.gz: 3 labels for 2 images/);
    await writeFile(join(dir, F.trainLabels), gzipSync(idx([2], [1, 2])));
    await expect(loadFashionMnist({ dir })).rejects.toThrow(/t10k-images-idx3-ubyte.gz: cannot read the gzip file/);
  });
});

describe.skipIf(!existsSync(FASHION_MNIST_DIR))('the Debian package dataset-fashion-mnist', () => {
  test('60,000 training and 10,000 test images of 28x28, every class 6,000 and 1,000 times', async () => {
    const { train, test } = await loadFashionMnist();
    expect([train.count, train.rows, train.cols, train.images.length]).toEqual([60000, 28, 28, 60000 * 784]);
    expect([test.count, test.images.length]).toEqual([10000, 10000 * 784]);
    const counts = (labels: Uint8Array) => Array.from({ length: 10 }, (_, c) => labels.filter((y) => y === c).length);
    expect(counts(train.labels)).toEqual(new Array<number>(10).fill(6000));
    expect(counts(test.labels)).toEqual(new Array<number>(10).fill(1000));
    // The first test image is an ankle boot (label 9), as in Zalando's repository.
    expect(test.labels[0]).toBe(9);
  });
  test('a label out of range names the file and index', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-fashion-'));
    const F = FASHION_MNIST_FILES;
    for (const f of [F.trainImages, F.trainLabels, F.testImages]) await copyFile(join(FASHION_MNIST_DIR, f), join(dir, f));
    await writeFile(join(dir, F.testLabels), gzipSync(idx([10000], Array.from({ length: 10000 }, (_, i) => (i === 17 ? 10 : 0)))));
    await expect(loadFashionMnist({ dir })).rejects.toThrow(/t10k-labels-idx1-ubyte.gz: label 10 at index 17 is not a class 0..9/);
  });
});

// Errors that name what went wrong: safetensors paths that are folders or missing, duplicate header keys, sharded checkpoints.

import { copyFile, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { tensor } from '../tensor/create.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { loadCheckpoint, readCheckpointHeader } from './hf.js';
import { loadSafetensors, parseSafetensors, readSafetensorsHeader, saveSafetensors } from './safetensors.js';

/** A safetensors file from a header text and data bytes. */
function file(header: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors errors name the path and the problem', () => {
  test('a folder, a missing file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-io-'));
    await expect(loadSafetensors(dir)).rejects.toThrow(`safetensors: ${dir}: is a directory, not a safetensors file`);
    await expect(readSafetensorsHeader(dir)).rejects.toThrow(`safetensors: ${dir}: is a directory`);
    await expect(loadSafetensors(join(dir, 'nope.safetensors'))).rejects.toThrow(`safetensors: ${join(dir, 'nope.safetensors')}: no such file`);
  });
  test('a duplicate key is reported as such (JSON.parse would keep the last one silently)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-io-'));
    const f32 = (begin: number, end: number) => `{"dtype":"F32","shape":[1],"data_offsets":[${begin},${end}]}`;
    const bytes = file(`{"a":${f32(0, 4)}, "b" : ${f32(4, 8)},"a":${f32(4, 8)}}`, new Uint8Array(8));
    await writeFile(join(dir, 'dup.safetensors'), bytes);
    await expect(loadSafetensors(join(dir, 'dup.safetensors'))).rejects.toThrow(`safetensors: ${join(dir, 'dup.safetensors')}: duplicate key 'a' in the header`);
    expect(() => parseSafetensors(bytes, 'dup.bin')).toThrow("dup.bin: duplicate key 'a'");
    // Keys repeated inside entries or metadata, escaped quotes and a key-like string value are not duplicates.
    const fine = file(`{"__metadata__":{"x":"\\"a\\":","a":"b"},"a\\"":${f32(0, 4)},"a":${f32(4, 8)}}`, new Uint8Array(8));
    expect(Object.keys(parseSafetensors(fine, 'fine.bin')).sort()).toEqual(['a', 'a"']);
  });
});

describe('checkpoint folders', () => {
  async function sharded(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'attend-shards-'));
    await saveSafetensors(join(dir, 'a.safetensors'), { x: tensor([1, 2]), y: tensor([[3]]) });
    await saveSafetensors(join(dir, 'b.safetensors'), { z: tensor([4, 5, 6]) });
    return dir;
  }
  const index = (map: object) => JSON.stringify({ weight_map: map });
  test('readCheckpointHeader reads names and shapes of every shard without the data', async () => {
    const dir = await sharded();
    await writeFile(join(dir, 'model.safetensors.index.json'), index({ x: 'a.safetensors', y: 'a.safetensors', z: 'b.safetensors' }));
    const { entries, source } = await readCheckpointHeader(dir);
    expect(source).toBe(join(dir, 'model.safetensors.index.json'));
    expect(Object.fromEntries(Object.entries(entries).map(([k, e]) => [k, e.shape]))).toEqual({ x: [2], y: [1, 1], z: [3] });
    const { tensors } = await loadCheckpoint(dir);
    expect(await tensors['z']!.tolist()).toEqual([4, 5, 6]);
  });
  test.each([
    [{ x: 'a.safetensors', z: 'b.safetensors' }, /a.safetensors: tensor 'y' is not listed for this shard in .*index.json/],
    [{ x: 'a.safetensors', y: 'a.safetensors', z: 'b.safetensors', w: 'b.safetensors' }, /index.json: tensors listed but not found in their shards: w/],
    [{ x: 'a.safetensors', y: 'a.safetensors', z: 7 }, /index.json: "weight_map" entry 'z' must name a shard file in the folder, got 7/],
    [{ x: '../a.safetensors' }, /"weight_map" entry 'x' must name a shard file in the folder/],
  ])('a bad index %j names the file and key', async (map, re) => {
    const dir = await sharded();
    await writeFile(join(dir, 'model.safetensors.index.json'), index(map));
    await expect(readCheckpointHeader(dir)).rejects.toThrow(re);
    await expect(loadCheckpoint(dir)).rejects.toThrow(re);
  });
  test('no weights, a non-object index, a folder named model.safetensors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attend-shards-'));
    await expect(readCheckpointHeader(dir)).rejects.toThrow(`${dir}: no model.safetensors or model.safetensors.index.json`);
    await writeFile(join(dir, 'model.safetensors.index.json'), '[1]');
    await expect(loadCheckpoint(dir)).rejects.toThrow(/index.json: missing "weight_map"/);
    const other = await mkdtemp(join(tmpdir(), 'attend-shards-'));
    await mkdir(join(other, 'model.safetensors'));
    await copyFile(join(hfDir('gpt2'), 'config.json'), join(other, 'config.json'));
    await expect(readCheckpointHeader(other)).rejects.toThrow(`${other}: no model.safetensors`);
  });
});

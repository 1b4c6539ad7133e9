// Loading from a URL (a static server holding a Hugging Face folder) and from files in memory (Map / record of
// File, Blob or bytes), against loading the same folder from disk and against the PyTorch fixtures.

import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import '../index.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { addLora, loadLoraAdapter, saveLoraAdapter } from '../models/lora.js';
import type { Tensor } from '../tensor/tensor.js';
import { AutoTokenizer, Tokenizer } from '../tokenizers/tokenizer.js';
import { Wav2Vec2CTCTokenizer } from '../tokenizers/ctc.js';
import { Wav2Vec2FeatureExtractor } from '../processors/wav2vec2.js';
import { WhisperFeatureExtractor } from '../processors/whisper.js';
import { expectTensorClose, hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { loadSafetensors, readSafetensorsHeader } from './safetensors.js';

const TOKENIZERS = new URL('../../test/data/tokenizers/', import.meta.url).pathname;
const requests: string[] = [];

/** Serves test/data at /; `ranges: false` ignores Range headers (sends whole files, as some servers do). */
function serve(ranges: boolean): Promise<{ server: Server; url: string }> {
  const root = new URL('../../test/data/', import.meta.url).pathname;
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(`${req.method} ${path} ${req.headers.range ?? ''}`);
    let body: Buffer;
    try {
      body = await readFile(join(root, path.replace(/\.\./g, '')));
    } catch {
      res.writeHead(404).end('not found');
      return;
    }
    const m = ranges ? /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '') : null;
    if (m) {
      const start = Number(m[1]), end = Math.min(Number(m[2]), body.length - 1);
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${body.length}`, 'Content-Length': end - start + 1 });
      res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const addr = server.address();
    resolve({ server, url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` });
  }));
}

let withRanges: { server: Server; url: string };
let noRanges: { server: Server; url: string };
beforeAll(async () => {
  withRanges = await serve(true);
  noRanges = await serve(false);
});
afterAll(() => {
  withRanges.server.close();
  noRanges.server.close();
});

async function logitsOf(src: Parameters<typeof AutoModelForCausalLM.fromPretrained>[0]): Promise<Tensor> {
  const ref = await loadRef('gpt2', 'cpu');
  const model = await AutoModelForCausalLM.fromPretrained(src, { device: 'cpu' });
  return model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits;
}

/** The fixture folder's files, as bytes by name. */
async function folderBytes(name: string): Promise<Map<string, Uint8Array>> {
  const dir = hfDir(name);
  const files = (await readdir(dir)).filter((f) => !f.startsWith('ref'));
  return new Map(await Promise.all(files.map(async (f) => [f, new Uint8Array(await readFile(join(dir, f)))] as const)));
}

describe('fromPretrained from a URL', () => {
  test('over HTTP with Range requests: the logits of transformers; the header is read without the whole file', async () => {
    const ref = await loadRef('gpt2', 'cpu');
    requests.length = 0;
    await expectTensorClose(await logitsOf(`${withRanges.url}/hf/gpt2`), ref['logits']!, 1e-4, 'logits over HTTP');
    await expectTensorClose(await logitsOf(new URL(`${withRanges.url}/hf/gpt2/`)), ref['logits']!, 1e-4, 'logits from a URL object');
    expect(requests.some((r) => r.startsWith('GET /hf/gpt2/model.safetensors bytes=0-'))).toBe(true);
  });

  test('from a server that ignores Range', async () => {
    const header = await readSafetensorsHeader(`${noRanges.url}/hf/gpt2/model.safetensors`);
    expect(header).toEqual(await readSafetensorsHeader(join(hfDir('gpt2'), 'model.safetensors')));
    await expectTensorClose(await logitsOf(`${noRanges.url}/hf/gpt2`), (await loadRef('gpt2', 'cpu'))['logits']!, 1e-4, 'logits');
  });

  test('a missing folder or file names the URL; an unreachable server says so', async () => {
    await expect(AutoModelForCausalLM.fromPretrained(`${withRanges.url}/hf/nothing`)).rejects.toThrow(`${withRanges.url}/hf/nothing/config.json: not found (HTTP 404)`);
    await expect(loadSafetensors(`${withRanges.url}/hf/gpt2/none.safetensors`)).rejects.toThrow(/safetensors: http:.*none.safetensors: no such file/);
    await expect(AutoModelForCausalLM.fromPretrained('http://127.0.0.1:9/gpt2')).rejects.toThrow(/http:\/\/127.0.0.1:9\/gpt2\/config.json: cannot fetch/);
  });

  test('tokenizers: tokenizer.json and tokenizer_config.json over HTTP', async () => {
    const tok = await Tokenizer.fromFile(`${withRanges.url}/tokenizers/wordpiece.json`);
    expect(tok.encode('London is a beautiful city').ids).toEqual((await Tokenizer.fromFile(join(TOKENIZERS, 'wordpiece.json'))).encode('London is a beautiful city').ids);
    await expect(AutoTokenizer.fromPretrained(`${withRanges.url}/hf/gpt2`)).rejects.toThrow(/gpt2\/tokenizer.json: not found; AutoTokenizer needs/);
  });
});

describe('fromPretrained from files in memory', () => {
  test('a Map of bytes, a record of Blobs and an array of Files give the logits of transformers', async () => {
    const ref = (await loadRef('gpt2', 'cpu'))['logits']!;
    const bytes = await folderBytes('gpt2');
    await expectTensorClose(await logitsOf(bytes), ref, 1e-4, 'Map of bytes');
    await expectTensorClose(await logitsOf(Object.fromEntries([...bytes].map(([k, v]) => [k, new Blob([v as Uint8Array<ArrayBuffer>])]))), ref, 1e-4, 'record of Blobs');
    await expectTensorClose(await logitsOf([...bytes].map(([k, v]) => new File([v as Uint8Array<ArrayBuffer>], k))), ref, 1e-4, 'File[]');
  });

  test('a missing weights file, and a truncated one, are named', async () => {
    const bytes = await folderBytes('gpt2');
    const noWeights = new Map(bytes);
    noWeights.delete('model.safetensors');
    await expect(AutoModelForCausalLM.fromPretrained(noWeights)).rejects.toThrow(/memory:\d+: no model.safetensors or model.safetensors.index.json/);
    const cut = new Map(bytes).set('model.safetensors', bytes.get('model.safetensors')!.subarray(0, 1000));
    await expect(AutoModelForCausalLM.fromPretrained(cut)).rejects.toThrow(/memory:\d+\/model.safetensors: .*(past the end|end of file|exceeds)/);
    await expect(AutoModelForCausalLM.fromPretrained(new Map())).rejects.toThrow(/memory:\d+\/config.json: not among the files given/);
  });

  test('a tokenizer from a Map: the same ids; a folder without tokenizer.json lists what it has', async () => {
    const json = await readFile(join(TOKENIZERS, 'bytelevel-bpe.json'));
    const tok = await AutoTokenizer.fromPretrained(new Map<string, Blob | string>([['tokenizer.json', new Blob([json])], ['tokenizer_config.json', '{"model_max_length": 8}']]));
    expect(tok.modelMaxLength).toBe(8);
    expect(tok.encode('London is a beautiful city').ids).toEqual((await Tokenizer.fromFile(join(TOKENIZERS, 'bytelevel-bpe.json'))).encode('London is a beautiful city').ids);
    await expect(AutoTokenizer.fromPretrained({ 'vocab.txt': 'a' })).rejects.toThrow(/tokenizer.json: not found; .*the folder has: vocab.txt/);
  });

  test('feature extractors and the CTC tokenizer read the same settings from a record of strings as from a folder', async () => {
    const files = {
      'preprocessor_config.json': JSON.stringify({ feature_size: 1, sampling_rate: 8000, padding_value: 0.5, do_normalize: false, n_fft: 200, hop_length: 80, chunk_length: 10 }),
      'vocab.json': JSON.stringify({ '<pad>': 0, '<s>': 1, '</s>': 2, '<unk>': 3, '|': 4, A: 5, B: 6 }),
      'tokenizer_config.json': JSON.stringify({ pad_token: '<pad>', unk_token: '<unk>', word_delimiter_token: '|', do_lower_case: true }),
    };
    const dir = await mkdtemp(join(tmpdir(), 'attend-source-'));
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    expect(await Wav2Vec2FeatureExtractor.fromPretrained(files)).toEqual(await Wav2Vec2FeatureExtractor.fromPretrained(dir));
    expect(await WhisperFeatureExtractor.fromPretrained(files)).toEqual(await WhisperFeatureExtractor.fromPretrained(dir));
    expect((await Wav2Vec2FeatureExtractor.fromPretrained(files)).config.sampling_rate).toBe(8000);
    const tok = await Wav2Vec2CTCTokenizer.fromPretrained(files);
    expect(tok.encode('ab ba')).toEqual((await Wav2Vec2CTCTokenizer.fromPretrained(dir)).encode('ab ba'));
    expect(tok.encode('ab ba')).toEqual([5, 6, 4, 6, 5]);
  });

  test('a LoRA adapter from a URL and from a Map; saved without a folder it comes back as bytes that load', async () => {
    const ref = await loadRef('gpt2-lora', 'cpu');
    const run = (m: { forward(x: object): { logits: Tensor } }) => m.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']! }).logits;
    const fromUrl = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device: 'cpu' });
    expect(await loadLoraAdapter(fromUrl, `${withRanges.url}/hf/gpt2-lora`)).toHaveLength(6);
    await expectTensorClose(run(fromUrl), ref['logits']!, 1e-4, 'adapter over HTTP');
    const fromMap = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device: 'cpu' });
    await loadLoraAdapter(fromMap, await folderBytes('gpt2-lora'));
    await expectTensorClose(run(fromMap), ref['logits']!, 1e-4, 'adapter from a Map');

    const files = await saveLoraAdapter(fromMap);
    expect([...files.keys()]).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const again = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device: 'cpu' });
    await loadLoraAdapter(again, files);
    await expectTensorClose(run(again), ref['logits']!, 1e-4, 'adapter saved as bytes and loaded');
    // A new adapter (B = 0) saved as bytes: the files PEFT writes.
    const fresh = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'), { device: 'cpu' });
    addLora(fresh, { r: 2, alpha: 4, targetModules: ['c_attn'] });
    const config = JSON.parse(new TextDecoder().decode((await saveLoraAdapter(fresh)).get('adapter_config.json'))) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['c_attn'] });
  });
});

// Interop with llama.cpp (node-llama-cpp 3.21.1, a dev dependency for tests and the bench): the GGUF files attend writes
// from the LLaMA fixture, f32 and Q8_0, give in llama.cpp the same first 32 greedy tokens as in attend.
// Skipped, with a message saying so, where node-llama-cpp is not installed (npm i -D -E node-llama-cpp@3.21.1).

import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { generate } from '../generation/generate.js';
import { listDevices } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import type { JsonObject } from '../tokenizers/json.js';
import { AutoModelForCausalLM } from './auto.js';
import { loadGgufLlama, saveGgufLlama } from './gguf-llama.js';
import type { LlamaForCausalLM } from './llama.js';

/** The part of node-llama-cpp's API used here (its own types come with the package, which may be absent). */
interface LlamaCpp {
  getLlama(opts: { gpu: false; build: 'never'; logLevel?: string }): Promise<{
    loadModel(opts: { modelPath: string }): Promise<{
      createContext(opts: { contextSize: number; threads?: number }): Promise<{
        getSequence(): { evaluate(tokens: number[], opts?: { temperature?: number }): AsyncGenerator<number> };
        dispose(): Promise<void>;
      }>;
      dispose(): Promise<void>;
    }>;
  }>;
}

const PACKAGE = 'node-llama-cpp';
let llamaCpp: LlamaCpp | null = null;
try {
  // A variable specifier: vite must not try to resolve the package when the test file is transformed.
  llamaCpp = (await import(/* @vite-ignore */ PACKAGE)) as LlamaCpp;
} catch (e) {
  console.warn(`gguf-llamacpp.test.ts: SKIPPED, ${PACKAGE} is not installed (npm i -D -E node-llama-cpp@3.21.1): ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
}

const N = 32;
let llama: Awaited<ReturnType<LlamaCpp['getLlama']>> | undefined;

/**
 * The fixture's vocabulary is 512 tokens and llama.cpp needs a tokenizer in the file: the SentencePiece-style BPE of
 * test/data/tokenizers cut to its first 512 tokens (3 specials, 256 bytes, merges), keeping the merges inside them.
 */
async function tokenizer512(): Promise<JsonObject> {
  const json = JSON.parse(await readFile(new URL('../../test/data/tokenizers/bpe-bytefallback.json', import.meta.url), 'utf8')) as JsonObject;
  const model = json['model'] as JsonObject;
  const vocab = Object.fromEntries(Object.entries(model['vocab'] as Record<string, number>).filter(([, id]) => id < 512));
  model['vocab'] = vocab;
  model['merges'] = (model['merges'] as [string, string][]).filter(([a, b]) => a in vocab && b in vocab && `${a}${b}` in vocab);
  return json;
}

describe.skipIf(!llamaCpp)('llama.cpp reads the GGUF attend writes', () => {
  test.each(['f32', 'q8_0', 'q4_0'] as const)(`%s: llama.cpp's first ${N} greedy tokens equal attend's, on every device`, async (type) => {
    const path = join(await mkdtemp(join(tmpdir(), 'attend-llamacpp-')), `fixture-${type}.gguf`);
    const source = (await AutoModelForCausalLM.fromPretrained(hfDir('llama'))) as LlamaForCausalLM;
    await saveGgufLlama(path, source, { type, tokenizer: await tokenizer512() });
    const prompt = ((await (await loadRef('llama'))['gen.input_ids']!.tolist()) as number[][])[0]!;

    llama ??= await llamaCpp!.getLlama({ gpu: false, build: 'never', logLevel: 'error' }); // loads the native library once
    const model = await llama.loadModel({ modelPath: path });
    const ctx = await model.createContext({ contextSize: 256, threads: 2 });
    const theirs: number[] = [];
    for await (const t of ctx.getSequence().evaluate(prompt, { temperature: 0 })) {
      theirs.push(t);
      if (theirs.length === N) break;
    }
    await ctx.dispose();
    await model.dispose();

    for (const device of listDevices()) {
      const { model: ours } = await loadGgufLlama(path, { device });
      const input = tensor(Int32Array.from(prompt), { shape: [1, prompt.length], dtype: 'int32', device });
      const out = ((await (await generate(ours, input, { maxNewTokens: N, minNewTokens: N })).tolist()) as number[][])[0]!.slice(prompt.length);
      console.log(`${type} on ${device}: llama.cpp ${JSON.stringify(theirs)}; attend ${JSON.stringify(out)}`);
      expect(out).toEqual(theirs);
    }
    // Not a degenerate run: the continuation is not one token repeated.
    expect(new Set(theirs).size).toBeGreaterThan(3);
  }, 60_000);
});

// generate() checks its options (Hugging Face's ranges), the prompt and the model's positions before any work.

import { describe, expect, test } from 'vitest';
import '../index.js';
import { tensor } from '../tensor/create.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { AutoModelForCausalLM, AutoModelForSeq2SeqLM } from '../models/auto.js';
import { generate, streamGenerate, type GenerateOptions } from './generate.js';

const ids = (rows: number[][]) => tensor(rows, { dtype: 'int32' });

describe('generate checks before working', () => {
  test.each([
    [{ topP: 2 }, 'generate: topP must be in (0, 1], got 2'],
    [{ topP: 0 }, 'generate: topP must be in (0, 1], got 0'],
    [{ minP: 5 }, 'generate: minP must be in [0, 1], got 5'],
    [{ topK: -1 }, 'generate: topK must be a non-negative integer, got -1'],
    [{ topK: 1.5 }, 'generate: topK must be a non-negative integer, got 1.5'],
    [{ temperature: 0 }, 'generate: temperature must be > 0, got 0'],
    [{ temperature: Number.NaN }, 'generate: temperature must be > 0, got NaN'],
    [{ repetitionPenalty: 0 }, 'generate: repetitionPenalty must be > 0, got 0'],
    [{ numBeams: 0 }, 'generate: numBeams must be a positive integer, got 0'],
    [{ maxNewTokens: -5 }, 'generate: maxNewTokens must be a positive integer, got -5'],
    [{ maxNewTokens: '5' }, 'generate: maxNewTokens must be a positive integer, got "5"'],
    [{ minNewTokens: -1 }, 'generate: minNewTokens must be a non-negative integer, got -1'],
    [{ lengthPenalty: Number.POSITIVE_INFINITY }, 'generate: lengthPenalty must be a finite number, got Infinity'],
    [{ seed: -1 }, 'generate: seed must be a non-negative integer, got -1'],
    [{ doSample: 'yes' }, 'generate: doSample must be true or false, got "yes"'],
    [{ earlyStopping: 'sometimes' }, 'generate: earlyStopping must be true, false or \'never\', got "sometimes"'],
    [{ eosTokenId: [2, -1] }, 'generate: eosTokenId[1] must be a non-negative integer token id, got -1'],
    [{ padTokenId: 0.5 }, 'generate: padTokenId must be a non-negative integer token id, got 0.5'],
  ])('%j', async (opts, message) => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    await expect(generate(model, ids([[1, 2]]), opts as unknown as GenerateOptions)).rejects.toThrow(message);
  });
  test('inputIds and attentionMask must be tensors', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    await expect(generate(model, [[1, 2]] as never)).rejects.toThrow("generate: inputIds must be an int32 tensor [batch, length], got an array (tensor(ids, { dtype: 'int32' }) makes one)");
    await expect(generate(model, ids([[1, 2]]), { attentionMask: [[1, 1]] as never })).rejects.toThrow('generate: attentionMask must be a tensor [batch, length] or null, got an array');
  });
  test('an empty prompt is named, not `select: index -1`', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    await expect(generate(model, tensor(new Int32Array(0), { shape: [1, 0] }))).rejects.toThrow('generate: the prompt is empty (inputIds is [1, 0])');
  });
  test('prompt + maxNewTokens past n_positions fails before streaming any token; exactly the limit works', async () => {
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2')); // n_positions = 128
    const prompt = ids([Array.from({ length: 123 }, (_, i) => (i * 7) % 512)]);
    const seen: number[][] = [];
    const run = async () => { for await (const t of streamGenerate(model, prompt, { maxNewTokens: 10 })) seen.push(t); };
    await expect(run()).rejects.toThrow("generate: a prompt of 123 tokens plus maxNewTokens = 10 needs 132 positions, more than the model's n_positions = 128 (use maxNewTokens <= 6)");
    expect(seen).toEqual([]);
    // The last new token is never fed back: 123 + 6 - 1 = 128 positions fit.
    expect((await generate(model, prompt, { maxNewTokens: 6 })).shape).toEqual([1, 129]);
    await expect(generate(model, prompt, { maxNewTokens: 7, numBeams: 2 })).rejects.toThrow(/needs 129 positions, more than the model's n_positions = 128/);
  });
  test('LLaMA names max_position_embeddings; T5 (relative positions) has no limit', async () => {
    const llama = await AutoModelForCausalLM.fromPretrained(hfDir('llama')); // 256
    await expect(generate(llama, ids([[1, 2, 3]]), { maxNewTokens: 300 })).rejects.toThrow(/more than the model's max_position_embeddings = 256 \(use maxNewTokens <= 254\)/);
    const t5 = await AutoModelForSeq2SeqLM.fromPretrained(hfDir('t5'));
    expect((await generate(t5, ids([[5, 6, 7]]), { maxNewTokens: 2 })).shape[0]).toBe(1);
  });
});

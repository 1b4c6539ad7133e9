// `attend export-onnx` on the fixture folders: GPT-2's file loads in ONNX Runtime and gives our logits, BERT and T5 pick their heads; bad options are refused before loading.

import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { tensor } from '../tensor/create.js';
import { hfDir } from '../test-util/hf-fixtures.js';
import { COMMANDS } from './cli.js';

const work = await mkdtemp(join(tmpdir(), 'attend-onnx-cli-'));

async function run(args: string[]): Promise<string> {
  let s = '';
  await COMMANDS['export-onnx']!.run(args, (t) => { s += t; });
  return s;
}

describe('attend export-onnx', () => {
  test('writes a file that ONNX Runtime runs to our logits (with past: the Optimum names)', async () => {
    const file = join(work, 'gpt2.onnx');
    const printed = await run(['--model', hfDir('gpt2'), '--out', file, '--with-past']);
    expect(printed).toMatch(/gpt2\.onnx: GPT2LMHeadModel, opset 17\n.*gpt2\.onnx: [\d,]+ bytes/);
    expect(printed).toMatch(/inputs: input_ids, attention_mask, position_ids, past_key_values\.0\.key, past_key_values\.0\.value, past_key_values\.1\.key/);
    expect(printed).toMatch(/outputs: present\.0\.key, present\.0\.value, present\.1\.key, present\.1\.value, logits/);
    expect((await stat(file)).size).toBeGreaterThan(4 * 512 * 64); // the embedding table at least

    const ids = [[5, 17, 300, 42, 9]];
    const session = await ort.InferenceSession.create(file);
    const i64 = (rows: number[][]) => new ort.Tensor('int64', BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);
    const empty = () => new ort.Tensor('float32', new Float32Array(0), [1, 4, 0, 16]);
    const out = await session.run({
      input_ids: i64(ids), attention_mask: i64([[1, 1, 1, 1, 1]]), position_ids: i64([[0, 1, 2, 3, 4]]),
      'past_key_values.0.key': empty(), 'past_key_values.0.value': empty(), 'past_key_values.1.key': empty(), 'past_key_values.1.value': empty(),
    });
    const model = await AutoModelForCausalLM.fromPretrained(hfDir('gpt2'));
    const ours = await model.forward({ inputIds: tensor(ids, { dtype: 'int32' }) }).logits.data();
    const theirs = out['logits']!.data as Float32Array;
    expect(theirs.length).toBe(ours.length);
    expect(Math.max(...Array.from(theirs, (v, i) => Math.abs(v - ours[i]!)))).toBeLessThan(1e-4);
    expect(out['present.1.value']!.dims).toEqual([1, 4, 5, 16]);
  });

  test('--help, and bad options fail before the model loads', async () => {
    expect(await run(['--help'])).toMatch(/attend export-onnx --model DIR --out FILE.onnx \[--with-past\]/);
    await expect(run(['--out', join(work, 'x.onnx')])).rejects.toThrow(/--model DIR is required/);
    await expect(run(['--model', hfDir('gpt2')])).rejects.toThrow(/--out FILE.onnx is required/);
    await expect(run(['--model', hfDir('gpt2'), '--out', join(work, 'x.gguf')])).rejects.toThrow(/the file name must end in .onnx/);
    await expect(run(['--model', hfDir('gpt2'), '--out', join(work, 'nope', 'x.onnx')])).rejects.toThrow(/the folder .*nope does not exist/);
    await expect(run(['--model', hfDir('gpt2'), '--out', join(work, 'x.onnx'), '--opset', '11'])).rejects.toThrow(/--opset/);
    await expect(run(['--model', hfDir('vit'), '--out', join(work, 'x.onnx')])).rejects.toThrow(/config.json: architecture ViTForImageClassification has no ONNX export/);
    await writeFile(join(work, 'a-file'), '');
    await expect(run(['--model', hfDir('t5'), '--out', join(work, 'a-file')])).rejects.toThrow(/is a file; an encoder-decoder is written as a folder/);
  });

  test('the head comes from config.json: a BERT masked LM and a T5 folder of three files', async () => {
    const bert = await run(['--model', hfDir('bert-mlm'), '--out', join(work, 'bert.onnx')]);
    expect(bert).toMatch(/bert\.onnx: BertForMaskedLM, opset 17/);
    expect(bert).toMatch(/inputs: input_ids, attention_mask, token_type_ids\n    outputs: logits/);
    const t5 = await run(['--model', hfDir('t5'), '--out', join(work, 't5')]);
    for (const f of ['encoder_model.onnx', 'decoder_model.onnx', 'decoder_with_past_model.onnx']) {
      expect(t5).toContain(join(work, 't5', f));
      expect((await stat(join(work, 't5', f))).size).toBeGreaterThan(0);
    }
  });
});

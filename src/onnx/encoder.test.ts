// ONNX export of the BERT-family encoders, run by ONNX Runtime: logits and hidden states equal ours and transformers'.

import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { describe, expect, test } from 'vitest';
import '../index.js';
import { manualSeed } from '../tensor/random.js';
import { listDevices } from '../tensor/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { hfDir, loadRef } from '../test-util/hf-fixtures.js';
import { AutoModelForMaskedLM, AutoModelForSequenceClassification } from '../models/auto.js';
import { ConfigReader } from '../models/base.js';
import { BertForMaskedLM, BertForTokenClassification, bertConfig } from '../models/bert.js';
import { DistilBertForMaskedLM, DistilBertForTokenClassification, distilBertConfig } from '../models/distilbert.js';
import { RobertaForSequenceClassification, RobertaForTokenClassification, robertaConfig } from '../models/roberta.js';
import { encoderGraph } from './encoder.js';
import { toOnnx } from './export.js';

const i64 = (t: number[][]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(t.flat(), (v) => BigInt(v)), [t.length, t[0]!.length]);
const rows = async (t: Tensor): Promise<number[][]> => (await t.tolist()) as number[][];
const config = (name: string): Record<string, unknown> => JSON.parse(readFileSync(`${hfDir(name)}/config.json`, 'utf8')) as Record<string, unknown>;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Runs the exported graph on the fixture's inputs (those the graph takes): its outputs by name. */
async function runOnnx(model: Module, ref: Record<string, Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(await encoderGraph(model).toBytes());
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) feeds[name] = i64(await rows(ref[name]!));
  return session.run(feeds);
}

const FIXTURES = [
  { name: 'bert-mlm', load: AutoModelForMaskedLM, inputs: ['input_ids', 'attention_mask', 'token_type_ids'] }, // right padding, token types
  { name: 'bert-cls', load: AutoModelForSequenceClassification, inputs: ['input_ids', 'attention_mask', 'token_type_ids'] }, // pooler
  { name: 'roberta-mlm', load: AutoModelForMaskedLM, inputs: ['input_ids', 'attention_mask'] }, // positions from pad + 1, skipping padding
  { name: 'distilbert-cls', load: AutoModelForSequenceClassification, inputs: ['input_ids', 'attention_mask'] }, // pre-classifier
];

for (const device of listDevices()) {
  describe(`ONNX export of encoders from ${device}`, () => {
    for (const { name, load, inputs } of FIXTURES) {
      test(`${name}: ONNX Runtime's logits equal ours and transformers' within 1e-4 (a padded row included)`, async () => {
        const ref = await loadRef(name, device);
        const model = await load.fromPretrained(hfDir(name), { device });
        const ours = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, tokenTypeIds: ref['token_type_ids'] ?? null }).logits;
        const session = await ort.InferenceSession.create(await encoderGraph(model).toBytes());
        expect(session.inputNames).toEqual(inputs);
        expect(session.outputNames).toEqual(['logits']);
        const out = (await runOnnx(model, ref))['logits']!;
        expect(out.dims).toEqual(ours.shape);
        expect(maxAbsDiff(out.data as Float32Array, await ours.data())).toBeLessThan(1e-4);
        expect(maxAbsDiff(out.data as Float32Array, await ref['logits']!.data())).toBeLessThan(1e-4);
      });
    }

    test('BertModel (no head): last_hidden_state equals transformers\' within 1e-4', async () => {
      const ref = await loadRef('bert-mlm', device);
      const model = (await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm'), { device })) as BertForMaskedLM;
      const out = await runOnnx(model.bert, ref);
      expect(Object.keys(out)).toEqual(['last_hidden_state']);
      expect(maxAbsDiff(out['last_hidden_state']!.data as Float32Array, await ref['last_hidden_state']!.data())).toBeLessThan(1e-4);
    });

    test('heads without a fixture (token classification, RoBERTa classification, DistilBERT masked LM) equal ours (random weights)', async () => {
      manualSeed(3);
      const models: Module[] = [
        new BertForTokenClassification(bertConfig(new ConfigReader({ ...config('bert-cls'), hidden_act: 'gelu_new' }, 'bert-cls'))),
        new RobertaForSequenceClassification(robertaConfig(new ConfigReader(config('roberta-mlm'), 'roberta-mlm'))),
        new RobertaForTokenClassification(robertaConfig(new ConfigReader(config('roberta-mlm'), 'roberta-mlm'))),
        new DistilBertForMaskedLM(distilBertConfig(new ConfigReader({ ...config('distilbert-cls'), activation: 'relu' }, 'distilbert-cls'))),
        new DistilBertForTokenClassification(distilBertConfig(new ConfigReader(config('distilbert-cls'), 'distilbert-cls'))),
      ];
      const ref = await loadRef('bert-cls', device);
      for (const m of models) {
        const model = m.to(device).eval() as BertForTokenClassification;
        // Only BERT has token types (RoBERTa's table has one row; DistilBERT has none).
        const tokenTypeIds = m instanceof BertForTokenClassification ? ref['token_type_ids']! : null;
        const ours = model.forward({ inputIds: ref['input_ids']!, attentionMask: ref['attention_mask']!, tokenTypeIds }).logits;
        const got = (await runOnnx(model, ref))['logits']!;
        expect(got.dims).toEqual(ours.shape);
        expect(maxAbsDiff(got.data as Float32Array, await ours.data()), m.constructor.name).toBeLessThan(1e-4);
      }
    });
  });
}

describe('ONNX export of encoders: the file and bad cases', () => {
  test('exportOnnx dispatches here; dynamic axes carry Optimum\'s names; dynamicAxes fixes the ones it names', async () => {
    const model = await AutoModelForMaskedLM.fromPretrained(hfDir('bert-mlm'));
    let session = await ort.InferenceSession.create(await toOnnx(model)); // exportOnnx's dispatch
    const shape = (s: ort.InferenceSession, n: string) => s.inputMetadata.concat(s.outputMetadata).map((m) => (m.name === n && m.isTensor ? m.shape : null)).find((x) => x);
    expect(shape(session, 'input_ids')).toEqual(['batch_size', 'sequence_length']);
    expect(shape(session, 'logits')).toEqual(['batch_size', 'sequence_length', 512]);
    session = await ort.InferenceSession.create(await encoderGraph(model, { dynamicAxes: { batch_size: 1 } }).toBytes());
    expect(shape(session, 'token_type_ids')).toEqual([1, 'sequence_length']);
    expect(() => encoderGraph(model, { dynamicAxes: { seq: 8 } })).toThrow(/dynamicAxes names an unknown axis 'seq' \(batch_size, sequence_length\)/);
  });

  test('a quantized layer names its module; a model of another kind lists the supported ones', async () => {
    const model = await AutoModelForSequenceClassification.fromPretrained(hfDir('bert-cls'));
    const { quantize } = await import('../quant/quant-linear.js');
    await quantize(model, 'q8_0');
    expect(() => encoderGraph(model)).toThrow(/unsupported op in module bert\.encoder\.layer\.0\.attention\.self\.query: a QuantLinear where the exporter expects a Linear/);
    const { Linear } = await import('../nn/linear.js');
    expect(() => encoderGraph(new Linear(2, 2))).toThrow(/model Linear is not a BERT-family encoder \(supported: BertModel, BertForMaskedLM/);
  });
});

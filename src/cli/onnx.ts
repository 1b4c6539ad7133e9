// `attend export-onnx`: a Hugging Face model folder written as ONNX (HF Optimum's names and layout) for ONNX Runtime / Triton.

import { access, constants, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readConfig } from '../io/hf.js';
import {
  AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoModelForTokenClassification,
} from '../models/auto.js';
import type { PreTrainedModel } from '../models/base.js';
import { exportOnnx } from '../onnx/export.js';
import { intOption, parseOptions, stringOption } from './args.js';
import type { CliCommand, Out } from './hf.js';

const stdout: Out = (t) => { process.stdout.write(t); };

type Loader = (dir: string) => Promise<PreTrainedModel>;

/** The head to load, from the class name in config.json's "architectures" (as transformers' from_pretrained picks it). */
const HEADS: [RegExp, Loader, boolean][] = [
  [/(ForCausalLM|LMHeadModel)$/, (d) => AutoModelForCausalLM.fromPretrained(d), false],
  [/ForMaskedLM$/, (d) => AutoModelForMaskedLM.fromPretrained(d), false],
  [/ForSequenceClassification$/, (d) => AutoModelForSequenceClassification.fromPretrained(d), false],
  [/ForTokenClassification$/, (d) => AutoModelForTokenClassification.fromPretrained(d), false],
  // Encoder-decoders are three files: --out names a folder.
  [/ForConditionalGeneration$/, (d) => AutoModelForSeq2SeqLM.fromPretrained(d), true],
];

async function headOf(dir: string): Promise<{ arch: string; load: Loader; folder: boolean }> {
  const { path, json } = await readConfig(dir);
  const archs = json['architectures'];
  const arch = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : null;
  if (!arch) throw new Error(`${path}: no "architectures" entry, so the head to export is unknown`);
  const head = HEADS.find(([re]) => re.test(arch));
  if (!head) throw new Error(`${path}: architecture ${arch} has no ONNX export (*ForCausalLM, *LMHeadModel, *ForMaskedLM, *ForSequenceClassification, *ForTokenClassification, *ForConditionalGeneration)`);
  return { arch, load: head[1], folder: head[2] };
}

/** --out must name a .onnx file (a folder for encoder-decoders) where we may write: checked before the model loads. */
async function checkWritable(out: string, folder: boolean): Promise<void> {
  if (!folder && !out.endsWith('.onnx')) throw new Error(`--out ${out}: the file name must end in .onnx`);
  const dir = dirname(out);
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new Error(`--out ${out}: the folder ${dir} does not exist`);
  await access(dir, constants.W_OK).catch(() => { throw new Error(`--out ${out}: the folder ${dir} is not writable`); });
  const existing = await stat(out).catch(() => null);
  if (!folder && existing?.isDirectory()) throw new Error(`--out ${out}: is a folder`);
  if (folder && existing && !existing.isDirectory()) throw new Error(`--out ${out}: is a file; an encoder-decoder is written as a folder`);
}

export const exportOnnxCommand: CliCommand = {
  summary: 'write a model folder as ONNX (HF Optimum\'s names) for ONNX Runtime',
  usage: `attend export-onnx --model DIR --out FILE.onnx [--with-past] [--opset N] [--external-data]

DIR is a Hugging Face folder; config.json's "architectures" picks the head. Decoders (gpt2, llama, mistral, qwen2,
gemma) take input_ids, attention_mask and position_ids (int64, dynamic batch_size and sequence_length) and give
logits; --with-past adds past_key_values.{i}.key / .value inputs and present.{i}.key / .value outputs for a
generation loop (the first step passes empty past tensors). Encoders (bert, roberta, distilbert) take input_ids,
attention_mask (and BERT's token_type_ids). Encoder-decoders (t5, bart): --out is a folder that receives
encoder_model.onnx, decoder_model.onnx and decoder_with_past_model.onnx. Weights are float32.
  --opset N          the ONNX opset (17 to 21, default 17)
  --external-data    weights in FILE.onnx_data next to the model (automatic over 1.8 GB)`,
  async run(args, out: Out = stdout) {
    const { values } = parseOptions(args, { model: 'string', out: 'string', 'with-past': 'boolean', opset: 'string', 'external-data': 'boolean', help: 'boolean' }, 'export-onnx', false);
    if (values['help']) return out(`${this.usage}\n`);
    const dir = stringOption(values, 'model'), file = stringOption(values, 'out');
    if (!dir) throw new Error(`--model DIR is required\n\n${this.usage}`);
    if (!file) throw new Error(`--out FILE.onnx is required\n\n${this.usage}`);
    const opset = intOption(values, 'opset', 17) ?? 17;
    if (opset > 21) throw new Error(`--opset must be 17 to 21, got ${opset}`);
    const head = await headOf(dir);
    await checkWritable(file, head.folder);
    const model = await head.load(dir);
    // Decoders default to no past; encoder-decoders to Optimum's three files (their with-past decoder included).
    const withPast = values['with-past'] === true ? true : head.folder ? undefined : false;
    const r = await exportOnnx(model, file, { opset, withPast, externalData: values['external-data'] === true ? true : undefined });
    const files = r.files ?? [r];
    out(`${file}: ${head.arch}, opset ${opset}\n`);
    for (const f of files) {
      out(`  ${f.path}: ${f.bytes.toLocaleString('en-US')} bytes${f.dataPath ? ` + ${f.dataPath}: ${f.dataBytes!.toLocaleString('en-US')} bytes` : ''}\n`);
      out(`    inputs: ${f.inputs.join(', ')}\n    outputs: ${f.outputs.join(', ')}\n`);
    }
  },
};

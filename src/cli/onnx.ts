// `attend export-onnx`: a Hugging Face model folder written as an ONNX file (HF Optimum's names) for ONNX Runtime / Triton.

import { access, constants, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AutoModelForCausalLM } from '../models/auto.js';
import { exportOnnx } from '../onnx/export.js';
import { intOption, parseOptions, stringOption } from './args.js';
import type { CliCommand, Out } from './hf.js';

const stdout: Out = (t) => { process.stdout.write(t); };

/** --out must name a .onnx file in a folder we may write to: checked before the model loads. */
async function checkWritable(out: string): Promise<void> {
  if (!out.endsWith('.onnx')) throw new Error(`--out ${out}: the file name must end in .onnx`);
  const dir = dirname(out);
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new Error(`--out ${out}: the folder ${dir} does not exist`);
  await access(dir, constants.W_OK).catch(() => { throw new Error(`--out ${out}: the folder ${dir} is not writable`); });
  if ((await stat(out).catch(() => null))?.isDirectory()) throw new Error(`--out ${out}: is a folder`);
}

export const exportOnnxCommand: CliCommand = {
  summary: 'write a model folder (gpt2, llama, mistral, qwen2, gemma) as an ONNX file for ONNX Runtime',
  usage: `attend export-onnx --model DIR --out FILE.onnx [--with-past] [--opset N]

DIR is a Hugging Face folder of a causal language model (gpt2, llama, mistral, qwen2, gemma). The file takes
input_ids, attention_mask and position_ids (int64, dynamic batch_size and sequence_length) and gives logits;
--with-past adds past_key_values.{i}.key / .value inputs and present.{i}.key / .value outputs (HF Optimum's names)
for a generation loop (the first step passes empty past tensors). Weights are stored inline as float32.
  --opset N     the ONNX opset (17 to 21, default 17)`,
  async run(args, out: Out = stdout) {
    const { values } = parseOptions(args, { model: 'string', out: 'string', 'with-past': 'boolean', opset: 'string', help: 'boolean' }, 'export-onnx', false);
    if (values['help']) return out(`${this.usage}\n`);
    const dir = stringOption(values, 'model'), file = stringOption(values, 'out');
    if (!dir) throw new Error(`--model DIR is required\n\n${this.usage}`);
    if (!file) throw new Error(`--out FILE.onnx is required\n\n${this.usage}`);
    const opset = intOption(values, 'opset', 17) ?? 17;
    if (opset > 21) throw new Error(`--opset must be 17 to 21, got ${opset}`);
    await checkWritable(file);
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    const r = await exportOnnx(model, file, { opset, withPast: values['with-past'] === true });
    out(`${file}: ${model.constructor.name}, opset ${opset}, ${r.bytes.toLocaleString('en-US')} bytes\n  inputs: ${r.inputs.join(', ')}\n  outputs: ${r.outputs.join(', ')}\n`);
  },
};

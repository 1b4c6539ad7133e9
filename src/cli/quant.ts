// `attend quantize`: a LLaMA-family Hugging Face folder written as a GGUF file (f32, f16, bf16, q8_0, q4_0) with its tokenizer.

import { access, constants, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { readGgufHeader } from '../io/gguf.js';
import { readConfig } from '../io/hf.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import { GGUF_ARCHITECTURES, loadGgufLlama, saveGgufLlama, type GgufArchitecture, type GgufFileType } from '../models/gguf-llama.js';
import { LlamaForCausalLM } from '../models/llama.js';
import { modelBytes } from '../quant/quant-linear.js';
import type { JsonObject } from '../tokenizers/json.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { parseOptions, stringOption } from './args.js';
import type { CliCommand, Out } from './hf.js';

const TYPES: readonly GgufFileType[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];

const stdout: Out = (t) => { process.stdout.write(t); };

/** The folder's model_type, refused unless it is one the GGUF writer knows (before any weight is read). */
async function llamaFamily(dir: string): Promise<GgufArchitecture> {
  const { path, json } = await readConfig(dir);
  const type = json['model_type'];
  if (typeof type !== 'string' || !(GGUF_ARCHITECTURES as readonly string[]).includes(type)) {
    throw new Error(`${path}: model_type ${JSON.stringify(type)} is not a LLaMA-family model; attend quantize writes ${GGUF_ARCHITECTURES.join(', ')}`);
  }
  return type as GgufArchitecture;
}

/** --out must name a file in a folder we may write to: checked before the model loads. */
async function checkWritable(out: string): Promise<void> {
  if (!out.endsWith('.gguf')) throw new Error(`--out ${out}: the file name must end in .gguf`);
  const dir = dirname(out);
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new Error(`--out ${out}: the folder ${dir} does not exist`);
  await access(dir, constants.W_OK).catch(() => { throw new Error(`--out ${out}: the folder ${dir} is not writable`); });
  const existing = await stat(out).catch(() => null);
  if (existing?.isDirectory()) throw new Error(`--out ${out}: is a folder`);
}

/** `attend generate --model FILE.gguf`: the model (quantized weights stay quantized) and the tokenizer in its metadata. */
export async function loadGgufForGenerate(path: string): Promise<{ model: LlamaForCausalLM; tokenizer: Tokenizer }> {
  const info = await stat(path).catch(() => null);
  if (!info?.isFile()) throw new Error(`${path}: no such file`);
  // The header alone tells whether there is a tokenizer: checked before any weight is read.
  if (!(await readGgufHeader(path)).metadata['tokenizer.ggml.model']) throw new Error(`${path}: the file holds no tokenizer (no metadata key "tokenizer.ggml.model"); generate needs one to read the prompt`);
  const { model, tokenizer } = await loadGgufLlama(path);
  return { model, tokenizer: tokenizer! };
}

export const quantizeCommand: CliCommand = {
  summary: 'write a LLaMA-family model folder as a GGUF file (f32, f16, q8_0, q4_0) that llama.cpp and attend generate load',
  usage: `attend quantize --model DIR --type q8_0|q4_0|f16|bf16|f32 --out FILE.gguf

DIR is a Hugging Face folder of a llama, mistral or qwen2 model (config.json, model.safetensors, and tokenizer.json,
which is stored in the file as tokenizer.ggml.*). Matrices take the type (Q8_0 / Q4_0: ggml's blocks of 32 weights
with one float16 scale; a matrix whose rows are not whole blocks stays f16); norms stay f32. Prints the bytes of the
weights before (float32) and of the file after.`,
  async run(args, out: Out = stdout) {
    const { values } = parseOptions(args, { model: 'string', type: 'string', out: 'string', help: 'boolean' }, 'quantize', false);
    if (values['help']) return out(`${this.usage}\n`);
    const dir = stringOption(values, 'model'), type = stringOption(values, 'type'), file = stringOption(values, 'out');
    if (!dir) throw new Error(`--model DIR is required\n\n${this.usage}`);
    if (!type) throw new Error(`--type is required (${TYPES.join(', ')})\n\n${this.usage}`);
    if (!(TYPES as readonly string[]).includes(type)) throw new Error(`--type must be one of ${TYPES.join(', ')}, got '${type}'`);
    if (!file) throw new Error(`--out FILE.gguf is required\n\n${this.usage}`);
    // Every check that needs no weights comes first: a bad command allocates nothing.
    const architecture = await llamaFamily(dir);
    await checkWritable(file);
    const tokFile = join(dir, 'tokenizer.json');
    const tokenizer = (await stat(tokFile).catch(() => null)) ? (JSON.parse(await readFile(tokFile, 'utf8')) as JsonObject) : undefined;
    const model = await AutoModelForCausalLM.fromPretrained(dir);
    if (!(model instanceof LlamaForCausalLM)) throw new Error(`${dir}: loaded a ${model.constructor.name}, not a LLaMA-family model`);
    const before = modelBytes(model);
    await saveGgufLlama(file, model, { type: type as GgufFileType, architecture, tokenizer }).catch((e: unknown) => {
      throw new Error(`--out ${file}: cannot write the GGUF file (${e instanceof Error ? e.message : String(e)})`);
    });
    const after = (await stat(file)).size;
    out(`${file}: ${architecture} ${type}, ${after.toLocaleString('en-US')} bytes (weights before: ${before.toLocaleString('en-US')} bytes float32; ${(after / before).toFixed(3)}x)${tokenizer ? '' : '; no tokenizer.json in the folder, so the file holds no tokenizer (llama.cpp needs one)'}\n`);
  },
};

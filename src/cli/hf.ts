// CLI commands over Hugging Face model folders: generate (streams text), fill-mask, classify, tokenize.

import { parseArgs } from 'node:util';
import { noGrad } from '../autograd/engine.js';
import { softmax } from '../autograd/ops/nn.js';
import { readConfig } from '../io/hf.js';
import { generate, streamGenerate, type GenerateOptions } from '../generation/generate.js';
import { AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification } from '../models/auto.js';
import { AutoTokenizer, Tokenizer, type BatchEncodingTensors } from '../tokenizers/tokenizer.js';

/** Where a command writes its output (stdout, or a test's collector). */
export type Out = (text: string) => void;

export interface CliCommand {
  summary: string;
  usage: string;
  run(args: string[], out?: Out): Promise<void>;
}

const stdout: Out = (t) => { process.stdout.write(t); };

function num(name: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

function oneText(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new Error(`expected one quoted text argument\n\n${usage}`);
  return positionals[0]!;
}

function modelDir(dir: string | undefined, usage: string): string {
  if (!dir) throw new Error(`--model DIR is required\n\n${usage}`);
  return dir;
}

export const generateCommand: CliCommand = {
  summary: 'continue a prompt with a causal or seq2seq model, streaming the text',
  usage: `attend generate --model DIR [options] "prompt"

DIR is a Hugging Face folder (config.json, model.safetensors, tokenizer.json).
  --max-new-tokens N   tokens to add (default 50)
  --sample             sample instead of greedy decoding (with --temperature, --top-k, --top-p, --min-p, --seed)
  --num-beams N        beam search (prints the best sequence at the end)
  --repetition-penalty X`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseArgs({
      args, allowPositionals: true,
      options: {
        model: { type: 'string' }, 'max-new-tokens': { type: 'string' }, sample: { type: 'boolean' }, temperature: { type: 'string' },
        'top-k': { type: 'string' }, 'top-p': { type: 'string' }, 'min-p': { type: 'string' }, seed: { type: 'string' },
        'num-beams': { type: 'string' }, 'repetition-penalty': { type: 'string' }, help: { type: 'boolean' },
      },
    });
    if (values.help) return out(`${this.usage}\n`);
    const dir = modelDir(values.model, this.usage);
    const prompt = oneText(positionals, this.usage);
    const opts: GenerateOptions = {
      maxNewTokens: num('max-new-tokens', values['max-new-tokens'], true) ?? 50, doSample: values.sample ?? false,
      temperature: num('temperature', values.temperature, false), topK: num('top-k', values['top-k'], true), topP: num('top-p', values['top-p'], false),
      minP: num('min-p', values['min-p'], false), seed: num('seed', values.seed, true), numBeams: num('num-beams', values['num-beams'], true),
      repetitionPenalty: num('repetition-penalty', values['repetition-penalty'], false),
    };
    const tok = await AutoTokenizer.fromPretrained(dir);
    const { json } = await readConfig(dir);
    const seq2seq = json['is_encoder_decoder'] === true;
    const model = await (seq2seq ? AutoModelForSeq2SeqLM : AutoModelForCausalLM).fromPretrained(dir);
    const ids = tok.encodeBatch([prompt]) as BatchEncodingTensors;
    if ((opts.numBeams ?? 1) > 1) {
      const seq = (await (await generate(model, ids.inputIds, opts)).tolist()) as number[][];
      const generated = seq2seq ? seq[0]! : seq[0]!.slice(ids.inputIds.shape[1]);
      return out(`${seq2seq ? '' : prompt}${tok.decode(generated, { skipSpecialTokens: true })}\n`);
    }
    if (!seq2seq) out(prompt);
    // Decode everything generated so far and print what is new: tokens can end inside a character.
    const generated: number[] = [];
    let shown = '';
    for await (const [t] of streamGenerate(model, ids.inputIds, opts)) {
      generated.push(t!);
      const text = tok.decode(generated, { skipSpecialTokens: true });
      if (!text.endsWith('\uFFFD')) {
        out(text.slice(shown.length));
        shown = text;
      }
    }
    out('\n');
  },
};

export const fillMaskCommand: CliCommand = {
  summary: 'predict the masked word(s) with a masked language model (BERT)',
  usage: `attend fill-mask --model DIR [--top-k N] "text with [MASK]"

Prints the top predictions and their probabilities for every mask token.`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { model: { type: 'string' }, 'top-k': { type: 'string' }, help: { type: 'boolean' } } });
    if (values.help) return out(`${this.usage}\n`);
    const dir = modelDir(values.model, this.usage);
    const text = oneText(positionals, this.usage);
    const k = num('top-k', values['top-k'], true) ?? 5;
    const tok = await AutoTokenizer.fromPretrained(dir);
    const maskId = tok.maskTokenId;
    if (maskId === null) throw new Error(`${dir}: the tokenizer defines no mask token`);
    const enc = tok.encode(text);
    const positions = enc.ids.flatMap((id, i) => (id === maskId ? [i] : []));
    if (positions.length === 0) throw new Error(`the text has no ${tok.maskToken} token`);
    const model = await AutoModelForMaskedLM.fromPretrained(dir);
    const batch = tok.encodeBatch([text]) as BatchEncodingTensors;
    const probs = noGrad(() => softmax(model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, tokenTypeIds: batch.tokenTypeIds }).logits, -1));
    const data = await probs.data();
    const V = probs.shape[2]!;
    const known = Math.min(V, tok.vocabSize); // ids the tokenizer can print
    for (const p of positions) {
      const row = Array.from(data.subarray(p * V, p * V + known));
      const best = [...row.keys()].sort((a, b) => row[b]! - row[a]!).slice(0, k);
      out(`${tok.maskToken} at token ${p}:\n`);
      for (const id of best) out(`  ${row[id]!.toFixed(4)}  ${tok.decode([id]).trim() || tok.idToToken(id)}\n`);
    }
  },
};

export const classifyCommand: CliCommand = {
  summary: 'classify a text with a sequence-classification model (labels from config id2label)',
  usage: `attend classify --model DIR "text"

Prints each label with its probability, best first.`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { model: { type: 'string' }, help: { type: 'boolean' } } });
    if (values.help) return out(`${this.usage}\n`);
    const dir = modelDir(values.model, this.usage);
    const text = oneText(positionals, this.usage);
    const tok = await AutoTokenizer.fromPretrained(dir);
    const { json } = await readConfig(dir);
    const model = await AutoModelForSequenceClassification.fromPretrained(dir);
    const limit = json['max_position_embeddings'];
    const batch = tok.encodeBatch([text], { truncation: true, maxLength: typeof limit === 'number' ? limit : undefined }) as BatchEncodingTensors;
    const probs = await noGrad(() => softmax(model.forward({ inputIds: batch.inputIds, attentionMask: batch.attentionMask, tokenTypeIds: batch.tokenTypeIds }).logits, -1)).data();
    const id2label = (json['id2label'] ?? {}) as Record<string, string>;
    const order = [...Array(probs.length).keys()].sort((a, b) => probs[b]! - probs[a]!);
    for (const i of order) out(`${probs[i]!.toFixed(4)}  ${id2label[String(i)] ?? `LABEL_${i}`}\n`);
  },
};

export const tokenizeCommand: CliCommand = {
  summary: 'show the tokens, ids and character offsets of a text',
  usage: `attend tokenize (--model DIR | --tokenizer FILE | --gpt2) "text"

--gpt2 uses the GPT-2 byte-level encoding (tiktoken).`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { model: { type: 'string' }, tokenizer: { type: 'string' }, gpt2: { type: 'boolean' }, help: { type: 'boolean' } } });
    if (values.help) return out(`${this.usage}\n`);
    const text = oneText(positionals, this.usage);
    if (values.gpt2) {
      const { gpt2Encoding } = await import('../tokenizers/tiktoken.js');
      const enc = await gpt2Encoding();
      const ids = enc.encode(text);
      out(`ids     ${JSON.stringify(ids)}\ntokens  ${JSON.stringify(ids.map((i) => enc.decode([i])))}\n`);
      return;
    }
    if (!values.model && !values.tokenizer) throw new Error(`give --model DIR, --tokenizer FILE or --gpt2\n\n${this.usage}`);
    const tok = values.tokenizer ? await Tokenizer.fromFile(values.tokenizer) : await AutoTokenizer.fromPretrained(values.model!);
    const enc = tok.encode(text);
    out(`ids      ${JSON.stringify(enc.ids)}\ntokens   ${JSON.stringify(enc.tokens)}\noffsets  ${JSON.stringify(enc.offsets)}\n`);
  },
};

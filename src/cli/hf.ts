// CLI commands over Hugging Face model folders: generate (streams text), fill-mask, classify, tokenize.

import { noGrad } from '../autograd/engine.js';
import { softmax } from '../autograd/ops/nn.js';
import { readConfig } from '../io/hf.js';
import { generate, streamGenerate, type GenerateOptions } from '../generation/generate.js';
import { TextStreamer } from '../generation/streamer.js';
import { AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification } from '../models/auto.js';
import { AutoTokenizer, Tokenizer, type BatchEncodingTensors } from '../tokenizers/tokenizer.js';
import { generationOption, intOption, parseOptions, stringOption } from './args.js';
import { QuantLinear } from '../quant/quant-linear.js';
import { loadGgufForGenerate } from './quant.js';

/** Where a command writes its output (stdout, or a test's collector). */
export type Out = (text: string) => void;

export interface CliCommand {
  summary: string;
  usage: string;
  run(args: string[], out?: Out): Promise<void>;
}

const stdout: Out = (t) => { process.stdout.write(t); };

function oneText(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new Error(`expected one quoted text argument\n\n${usage}`);
  return positionals[0]!;
}

function modelDir(dir: string | undefined, usage: string): string {
  if (!dir) throw new Error(`--model DIR is required\n\n${usage}`);
  return dir;
}

/** A text argument must hold something to work on (an empty prompt has no token to start from). */
function nonEmpty(text: string, what: string): string {
  if (text.trim() === '') throw new Error(`the ${what} is empty`);
  return text;
}

export const generateCommand: CliCommand = {
  summary: 'continue a prompt with a causal or seq2seq model, streaming the text',
  usage: `attend generate --model DIR [options] "prompt"

DIR is a Hugging Face folder (config.json, model.safetensors, tokenizer.json), or a .gguf file of a llama, mistral
or qwen2 model with its tokenizer (attend quantize writes one; Q8_0 / Q4_0 weights stay quantized and multiply
as llama.cpp does, with x quantized to int8 per block).
  --max-new-tokens N   tokens to add (default 50)
  --sample             sample instead of greedy decoding (with --temperature, --top-k, --top-p, --min-p, --seed)
  --num-beams N        beam search (prints the best sequence at the end)
  --repetition-penalty X`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseOptions(args, {
      model: 'string', 'max-new-tokens': 'string', sample: 'boolean', temperature: 'string', 'top-k': 'string', 'top-p': 'string',
      'min-p': 'string', seed: 'string', 'num-beams': 'string', 'repetition-penalty': 'string', help: 'boolean',
    }, 'generate');
    if (values['help']) return out(`${this.usage}\n`);
    // Every number is checked before the model loads, with the ranges generate() enforces.
    const opts: GenerateOptions = {
      maxNewTokens: generationOption(values, 'max-new-tokens', 'maxNewTokens') ?? 50, doSample: values['sample'] === true,
      temperature: generationOption(values, 'temperature', 'temperature'), topK: generationOption(values, 'top-k', 'topK'),
      topP: generationOption(values, 'top-p', 'topP'), minP: generationOption(values, 'min-p', 'minP'), seed: generationOption(values, 'seed', 'seed'),
      numBeams: generationOption(values, 'num-beams', 'numBeams'), repetitionPenalty: generationOption(values, 'repetition-penalty', 'repetitionPenalty'),
    };
    const dir = modelDir(stringOption(values, 'model'), this.usage);
    const prompt = nonEmpty(oneText(positionals, this.usage), 'prompt');
    if ((opts.numBeams ?? 1) > 1 && opts.doSample) throw new Error('--num-beams and --sample cannot be combined (beam sampling is not supported)');
    // A .gguf file (attend quantize, llama.cpp) holds a LLaMA-family model and its tokenizer.
    const gguf = dir.endsWith('.gguf') ? await loadGgufForGenerate(dir) : null;
    const tok = gguf ? gguf.tokenizer : await AutoTokenizer.fromPretrained(dir);
    const seq2seq = gguf ? false : (await readConfig(dir)).json['is_encoder_decoder'] === true;
    const model = gguf ? gguf.model : await (seq2seq ? AutoModelForSeq2SeqLM : AutoModelForCausalLM).fromPretrained(dir);
    const ids = tok.encodeBatch([prompt]) as BatchEncodingTensors;
    // A GGUF's Q8_0 / Q4_0 weights multiply as llama.cpp runs them: x quantized to int8 per block (int8Activations).
    const was = QuantLinear.int8Activations;
    QuantLinear.int8Activations = was || gguf !== null;
    try {
      if ((opts.numBeams ?? 1) > 1) {
        const seq = (await (await generate(model, ids.inputIds, opts)).tolist()) as number[][];
        const generated = seq2seq ? seq[0]! : seq[0]!.slice(ids.inputIds.shape[1]);
        return out(`${seq2seq ? '' : prompt}${tok.decode(generated, { skipSpecialTokens: true })}\n`);
      }
      // The prompt is printed with the first token, so that an error from generate's checks comes before any output.
      const stream = new TextStreamer(tok);
      for await (const [t] of streamGenerate(model, ids.inputIds, opts)) {
        if (stream.tokens.length === 0 && !seq2seq) out(prompt);
        out(stream.put(t!));
      }
      out('\n');
    } finally {
      QuantLinear.int8Activations = was;
    }
  },
};

export const fillMaskCommand: CliCommand = {
  summary: 'predict the masked word(s) with a masked language model (BERT)',
  usage: `attend fill-mask --model DIR [--top-k N] "text with [MASK]"

Prints the top predictions and their probabilities for every mask token.`,
  async run(args, out: Out = stdout) {
    const { values, positionals } = parseOptions(args, { model: 'string', 'top-k': 'string', help: 'boolean' }, 'fill-mask');
    if (values['help']) return out(`${this.usage}\n`);
    const k = intOption(values, 'top-k', 1) ?? 5;
    const dir = modelDir(stringOption(values, 'model'), this.usage);
    const text = nonEmpty(oneText(positionals, this.usage), 'text');
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
    const { values, positionals } = parseOptions(args, { model: 'string', help: 'boolean' }, 'classify');
    if (values['help']) return out(`${this.usage}\n`);
    const dir = modelDir(stringOption(values, 'model'), this.usage);
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
    const { values, positionals } = parseOptions(args, { model: 'string', tokenizer: 'string', gpt2: 'boolean', help: 'boolean' }, 'tokenize');
    if (values['help']) return out(`${this.usage}\n`);
    const text = oneText(positionals, this.usage);
    const model = stringOption(values, 'model'), tokenizer = stringOption(values, 'tokenizer');
    if (values['gpt2']) {
      const { gpt2Encoding } = await import('../tokenizers/tiktoken.js');
      const enc = await gpt2Encoding();
      const ids = enc.encode(text);
      out(`ids     ${JSON.stringify(ids)}\ntokens  ${JSON.stringify(ids.map((i) => enc.decode([i])))}\n`);
      return;
    }
    if (!model && !tokenizer) throw new Error(`give --model DIR, --tokenizer FILE or --gpt2\n\n${this.usage}`);
    const tok = tokenizer ? await Tokenizer.fromFile(tokenizer) : await AutoTokenizer.fromPretrained(model!);
    const enc = tok.encode(text);
    out(`ids      ${JSON.stringify(enc.ids)}\ntokens   ${JSON.stringify(enc.tokens)}\noffsets  ${JSON.stringify(enc.offsets)}\n`);
  },
};

// `attend sft` (supervised fine-tuning, full or LoRA, on the Trainer) and `attend chat` (a multi-turn REPL over a chat template, streaming).

import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { readJsonFile } from '../io/hf.js';
import { loadText } from '../data/files.js';
import { parseSftJsonl, tokenizeSft, type SftExample, type SftTokenizeStats } from '../data/sft.js';
import { streamGenerate, type GenerateOptions } from '../generation/generate.js';
import { TextStreamer } from '../generation/streamer.js';
import { AutoModelForCausalLM } from '../models/auto.js';
import type { PreTrainedModel } from '../models/base.js';
import { loadLoraAdapter, mergeLora, qloraQuantize } from '../models/lora.js';
import { saveResults } from '../recipes/recipe.js';
import { tensor } from '../tensor/create.js';
import type { ChatMessage } from '../tokenizers/chat-template.js';
import { AutoTokenizer, type Tokenizer } from '../tokenizers/tokenizer.js';
import { lockDir } from '../train/lock.js';
import { SFT_MAX_LENGTH, sft, type SftLoraOptions } from '../train/sft.js';
import { generationOption, intOption, numberOption, parseOptions, stringOption, type ParsedArgs } from './args.js';
import type { CliCommand, Out } from './hf.js';

const stdout: Out = (t) => { process.stdout.write(t); };
const stderr: Out = (t) => { process.stderr.write(t); };

const positiveNumber = { want: 'a positive number', integer: false, ok: (v: number) => v > 0 && Number.isFinite(v) };
const probability = { want: 'in [0, 1)', integer: false, ok: (v: number) => v >= 0 && v < 1 };
const nonNegative = { want: 'a number >= 0', integer: false, ok: (v: number) => v >= 0 && Number.isFinite(v) };

function required(values: ParsedArgs['values'], name: string, usage: string): string {
  const v = stringOption(values, name);
  if (v === undefined || v === '') throw new Error(`--${name} is required\n\n${usage}`);
  return v;
}

/** --target-modules: 'all-linear', a regular expression over the whole module name, or a comma-separated list of names. */
export function parseTargetModules(v: string): string[] | string {
  if (v === 'all-linear') return v;
  if (/[*+?|()[\]^$\\]/.test(v)) {
    try {
      new RegExp(v);
    } catch (e) {
      throw new Error(`--target-modules: ${JSON.stringify(v)} is not a regular expression (${e instanceof Error ? e.message : String(e)})`);
    }
    return v;
  }
  const names = v.split(',').map((s) => s.trim());
  if (names.some((n) => n === '')) throw new Error(`--target-modules must be all-linear, a regular expression or names separated by commas (q_proj,v_proj), got '${v}'`);
  return names;
}

/**
 * An SFT JSONL file tokenized line by line: errors name the file and line (and, for a chat template that fails, the
 * message index); with skipBadLines such lines are counted instead.
 */
export async function loadSftExamples(
  file: string, tokenizer: Tokenizer, opts: { skipBadLines: boolean; maxLength: number; completionOnlyLoss: boolean; limit?: number },
): Promise<{ examples: SftExample[]; stats: SftTokenizeStats; skipped: { line: number; reason: string }[] }> {
  const text = await loadText(file);
  const { records, skipped } = parseSftJsonl(text, file, { skipBadLines: opts.skipBadLines });
  // The line of each record: the non-blank lines that were not skipped, in order.
  const bad = new Set(skipped.map((s) => s.line));
  const lines = text.split('\n').flatMap((l, i) => (l.trim() === '' || bad.has(i + 1) ? [] : [i + 1]));
  const stats: SftTokenizeStats = { truncated: 0, dropped: 0, promptMismatch: 0 };
  const examples: SftExample[] = [];
  const take = opts.limit === undefined ? records : records.slice(0, opts.limit);
  take.forEach((record, i) => {
    let out: ReturnType<typeof tokenizeSft>;
    try {
      out = tokenizeSft(tokenizer, [record], { maxLength: opts.maxLength, completionOnlyLoss: opts.completionOnlyLoss });
    } catch (e) {
      const reason = (e instanceof Error ? e.message : String(e)).replace(/^tokenizeSft: example 0: /, '');
      if (!opts.skipBadLines) throw new Error(`${file}:${lines[i]}: ${reason}`);
      skipped.push({ line: lines[i]!, reason });
      return;
    }
    stats.truncated += out.stats.truncated;
    stats.dropped += out.stats.dropped;
    stats.promptMismatch += out.stats.promptMismatch;
    examples.push(...out.examples);
  });
  if (examples.length === 0) throw new Error(`${file}: no example to train on${skipped.length ? ` (${skipped.length} bad lines; the first: line ${skipped[0]!.line}: ${skipped[0]!.reason})` : ''}${stats.dropped ? ` (${stats.dropped} without a completion token)` : ''}`);
  return { examples, stats, skipped: skipped.sort((a, b) => a.line - b.line) };
}

const SFT_USAGE = `attend sft --model DIR --data FILE.jsonl --out DIR [options]

Supervised fine-tuning of a causal LM (TRL's SFTTrainer) on JSON Lines in TRL's formats, one example a line:
  {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
  {"prompt": "...", "completion": "..."}          (strings, or lists of messages)
The loss is taken on the completions only (assistant turns; the completion of prompt/completion lines).
Conversations are rendered with the tokenizer's chat_template (tokenizer_config.json).
Writes checkpoints, metrics.jsonl, loss.svg and results.json to --out, and at the end the model as a Hugging Face
folder (config.json, model.safetensors) or, with --lora, a PEFT adapter (adapter_config.json,
adapter_model.safetensors), with the tokenizer files: attend chat --model DIR (or --model BASE --adapter OUT).
With --qlora the adapter is the same PEFT folder and the base stays the float folder: it is quantized again at load
(attend chat --adapter OUT --qlora), as bitsandbytes' load_in_4bit does.

  --model DIR            Hugging Face folder: config.json, model.safetensors, tokenizer.json   (required)
  --data FILE            the JSONL training data   (required)
  --out DIR              output folder   (required)
  --lora                 train a LoRA adapter instead of every weight
  --qlora                QLoRA: quantize the base's Linear layers (not the output head) to NF4 at load, frozen
                         (block 64, double quantization, as bitsandbytes' load_in_4bit), and train a LoRA adapter
                         on them (implies --lora; the --lora-* options apply). Logs the NF4 bytes against float32
  --lora-r N             adapter rank (default 8)
  --lora-alpha X         the update is scaled by alpha / r (default 16)
  --lora-dropout P       dropout on the adapter's input (default 0.05)
  --target-modules M     all-linear (default: every Linear but the output head), names (q_proj,v_proj),
                         or a regular expression over the whole module name
  --rslora               rank-stabilized LoRA: scale by alpha / sqrt(r)
  --packing              pack examples into sequences of --max-length tokens (positions and attention restart
                         at each example)
  --max-length N         tokens per example or packed sequence; longer ones are cut (default ${SFT_MAX_LENGTH}, at most
                         the model's context)
  --all-tokens           take the loss on every token, not only the completions
  --epochs N             passes over the data (default 3)
  --max-steps N          stop after N updates (default: the epochs' worth)
  --lr X                 peak learning rate, linear decay to 0 (default 2e-5; 2e-4 with --lora)
  --warmup-steps N       linear warm-up (default 0)
  --batch-size N         examples per batch (default 8)
  --grad-accum N         batches per update (default 1)
  --weight-decay X       AdamW weight decay (default 0)
  --seed N               shuffle, adapter init and dropout (default 0)
  --log-every N          steps between log lines (default 10)
  --checkpoint-every N   steps between checkpoints (default: at the end)
  --device D             backend (default: the fastest registered)
  --resume               continue the checkpoint in --out
  --skip-bad-lines       skip (and count) lines that are not JSON, lack the fields or fail the chat template,
                         instead of stopping at the first
  --smoke                a tiny run in seconds: the first 16 examples, 2 steps, batch <= 4, max length <= 128`;

const SFT_OPTIONS = {
  model: 'string', data: 'string', out: 'string', lora: 'boolean', qlora: 'boolean', 'lora-r': 'string', 'lora-alpha': 'string', 'lora-dropout': 'string',
  'target-modules': 'string', rslora: 'boolean', packing: 'boolean', 'max-length': 'string', 'all-tokens': 'boolean', epochs: 'string',
  'max-steps': 'string', lr: 'string', 'warmup-steps': 'string', 'batch-size': 'string', 'grad-accum': 'string', 'weight-decay': 'string',
  seed: 'string', 'log-every': 'string', 'checkpoint-every': 'string', device: 'string', resume: 'boolean', 'skip-bad-lines': 'boolean',
  smoke: 'boolean', help: 'boolean',
} as const;

export const sftCommand: CliCommand = {
  summary: 'supervised fine-tuning of a causal LM on chat or prompt/completion JSONL (full or LoRA)',
  usage: SFT_USAGE,
  async run(args, out: Out = stdout) {
    const { values } = parseOptions(args, SFT_OPTIONS, 'sft', false);
    if (values['help']) return out(`${this.usage}\n`);
    // Every option is checked before anything loads.
    const smoke = values['smoke'] === true;
    const useQlora = values['qlora'] === true;
    const useLora = values['lora'] === true || useQlora;
    for (const k of ['lora-r', 'lora-alpha', 'lora-dropout', 'target-modules', 'rslora'] as const) {
      if (values[k] !== undefined && !useLora) throw new Error(`sft: --${k} needs --lora or --qlora`);
    }
    const lora: SftLoraOptions | false = useLora
      ? {
        r: intOption(values, 'lora-r', 1) ?? 8, alpha: numberOption(values, 'lora-alpha', positiveNumber) ?? 16,
        dropout: numberOption(values, 'lora-dropout', probability) ?? 0.05,
        targetModules: parseTargetModules(stringOption(values, 'target-modules') ?? 'all-linear'), useRslora: values['rslora'] === true,
      }
      : false;
    const maxLength = intOption(values, 'max-length', 1);
    const epochs = intOption(values, 'epochs', 1), maxSteps = intOption(values, 'max-steps', 1);
    const lr = numberOption(values, 'lr', positiveNumber), warmupSteps = intOption(values, 'warmup-steps', 0);
    let batchSize = intOption(values, 'batch-size', 1) ?? 8;
    const gradAccum = intOption(values, 'grad-accum', 1), weightDecay = numberOption(values, 'weight-decay', nonNegative);
    const seed = intOption(values, 'seed', 0) ?? 0, logEvery = intOption(values, 'log-every', 1), checkpointEvery = intOption(values, 'checkpoint-every', 1);
    const device = stringOption(values, 'device');
    const modelDir = required(values, 'model', this.usage), dataFile = required(values, 'data', this.usage), outDir = required(values, 'out', this.usage);
    if (smoke) batchSize = Math.min(batchSize, 4);
    const log = (l: string): void => stderr(`${l}\n`);
    const started = Date.now();
    // The whole command holds --out: a second run on it stops at once (the Trainer's lock inside is re-entrant).
    const lock = await lockDir(outDir, { log });
    try {
      const tokenizer = await AutoTokenizer.fromPretrained(modelDir);
      const model = await AutoModelForCausalLM.fromPretrained(modelDir, device !== undefined ? { device } : {});
      const limit = model.positionLimit();
      if (maxLength !== undefined && limit !== null && maxLength > limit.value) throw new Error(`sft: --max-length ${maxLength} is more than the model's ${limit.key} = ${limit.value}`);
      const length = Math.min(maxLength ?? Math.min(SFT_MAX_LENGTH, limit?.value ?? SFT_MAX_LENGTH), smoke ? 128 : Infinity);
      const data = await loadSftExamples(dataFile, tokenizer, {
        skipBadLines: values['skip-bad-lines'] === true, maxLength: length, completionOnlyLoss: values['all-tokens'] !== true, ...(smoke ? { limit: 16 } : {}),
      });
      if (data.skipped.length) log(`sft: skipped ${data.skipped.length} bad line(s): ${data.skipped.slice(0, 3).map((s) => `line ${s.line}: ${s.reason}`).join('; ')}${data.skipped.length > 3 ? '; ...' : ''}`);
      if (data.stats.truncated) log(`sft: ${data.stats.truncated} example(s) cut to ${length} tokens`);
      if (data.stats.dropped) log(`sft: ${data.stats.dropped} example(s) left out: no completion token left to train on`);
      const result = await sft(model, tokenizer, data.examples, {
        lora, qlora: useQlora, packing: values['packing'] === true, maxLength: length, batchSize, seed, outDir, baseDir: modelDir, log,
        resume: values['resume'] === true,
        ...(smoke ? { maxSteps: Math.min(maxSteps ?? 2, 2) } : maxSteps !== undefined ? { maxSteps } : {}),
        ...(epochs !== undefined ? { epochs } : {}), ...(lr !== undefined ? { lr } : {}), ...(warmupSteps !== undefined ? { warmupSteps } : {}),
        ...(gradAccum !== undefined ? { gradAccumSteps: gradAccum } : {}), ...(weightDecay !== undefined ? { weightDecay } : {}),
        ...(logEvery !== undefined ? { logEvery } : {}), ...(checkpointEvery !== undefined ? { checkpointEvery } : {}),
        ...(device !== undefined ? { device } : {}),
      });
      const losses = result.train.losses;
      const results = {
        command: 'sft', model: modelDir, data: dataFile, smoke,
        options: { lora, qlora: useQlora, packing: values['packing'] === true, maxLength: length, batchSize, epochs: epochs ?? null, maxSteps: maxSteps ?? null, lr: lr ?? null, seed },
        examples: result.examples, sequences: result.sequences, skippedLines: data.skipped.length, truncated: data.stats.truncated, dropped: data.stats.dropped,
        trainableParameters: result.trainableParameters, totalParameters: result.totalParameters, steps: result.train.step,
        ...(result.qlora ? { nf4: { layers: result.qlora.layers.length, nf4Bytes: result.qlora.nf4Bytes, float32Bytes: result.qlora.float32Bytes, modelBytesBefore: result.qlora.modelBytesBefore, modelBytesAfter: result.qlora.modelBytesAfter } } : {}),
        firstLoss: losses[0]?.loss ?? null, finalLoss: losses.at(-1)?.loss ?? null, saved: result.saved,
        wallSeconds: Math.round((Date.now() - started) / 1000),
      };
      const path = await saveResults(outDir, results);
      out(`${JSON.stringify(results, null, 2)}\nsaved ${path}\n`);
    } finally {
      await lock.release();
    }
  },
};

// ---- chat ----

export interface ChatOptions {
  system?: string;
  maxNewTokens?: number;
  /** Sample at this temperature; absent: greedy decoding. */
  temperature?: number;
  topP?: number;
  seed?: number;
}

/** The index of the first message of the oldest turn that can be dropped (after a leading system message), or -1. */
function oldestTurn(messages: readonly ChatMessage[]): number {
  const first = messages[0]?.role === 'system' ? 1 : 0;
  // The newest message (the user's, being answered) always stays.
  return messages.length - first > 1 ? first : -1;
}

/**
 * A multi-turn chat over lines of `input`: each line is a user message, answered with the chat template and streamed
 * to `out` as it is generated. `/reset` clears the history, `/exit` (or the end of input) ends. A conversation too
 * long for the model's context loses whole turns from the start (the system message stays), with a warning on
 * `err`; a single message too long even alone is refused with a message, and the chat goes on. A chat template that
 * fails prints its error (with the message index) and the message is dropped.
 */
export async function chatRepl(model: PreTrainedModel, tokenizer: Tokenizer, input: Readable, out: Out, err: Out, opts: ChatOptions = {}): Promise<void> {
  const maxNewTokens = opts.maxNewTokens ?? 256;
  const limit = model.positionLimit()?.value ?? Infinity;
  const eos = new Set<number>([model.generationConfig.eosTokenId ?? []].flat());
  if (tokenizer.eosTokenId !== null) eos.add(tokenizer.eosTokenId);
  const gen: GenerateOptions = {
    maxNewTokens, ...(eos.size ? { eosTokenId: [...eos] } : {}),
    ...(opts.temperature !== undefined ? { doSample: true, temperature: opts.temperature, ...(opts.topP !== undefined ? { topP: opts.topP } : {}), ...(opts.seed !== undefined ? { seed: opts.seed } : {}) } : {}),
  };
  const start = (): ChatMessage[] => (opts.system ? [{ role: 'system', content: opts.system }] : []);
  let messages = start();
  const interactive = (input as { isTTY?: boolean }).isTTY === true;
  const lines = createInterface({ input, crlfDelay: Infinity, terminal: false });
  if (interactive) out('> ');
  for await (const raw of lines) {
    const line = raw.trim();
    if (line === '/exit' || line === '/quit') break;
    if (line === '/reset') {
      messages = start();
      err('(history cleared)\n');
    } else if (line !== '') {
      messages.push({ role: 'user', content: line });
      await answer();
    }
    if (interactive) out('> ');
  }
  lines.close();

  async function answer(): Promise<void> {
    const render = (msgs: ChatMessage[]): number[] | null => {
      try {
        return tokenizer.applyChatTemplate(msgs, { addGenerationPrompt: true });
      } catch (e) {
        err(`chat: ${e instanceof Error ? e.message : String(e)}; the message was not sent\n`);
        messages.pop();
        return null;
      }
    };
    // A message too long even as the whole conversation is refused before any turn is dropped for it.
    const alone = render([...start(), messages.at(-1)!]);
    if (alone === null) return;
    if (alone.length >= limit) {
      err(`chat: the message is ${alone.length} tokens with the template, the model's context is ${limit} positions; it was not sent\n`);
      messages.pop();
      return;
    }
    let ids: number[] | null;
    let dropped = 0;
    for (;;) {
      ids = render(messages);
      if (ids === null) return;
      if (ids.length + maxNewTokens <= limit) break;
      const at = oldestTurn(messages);
      if (at < 0) break;
      // A whole turn: the message and every following one up to the next user message.
      let end = at + 1;
      while (end < messages.length - 1 && messages[end]!.role !== 'user') end++;
      dropped += end - at;
      messages.splice(at, end - at);
    }
    if (dropped) err(`chat: the conversation no longer fits the model's context of ${limit} positions with ${maxNewTokens} new tokens; dropped the oldest ${dropped} message(s)\n`);
    const room = Math.min(maxNewTokens, limit - ids.length);
    if (room < maxNewTokens) err(`chat: only ${room} new tokens fit the context after this message\n`);
    const stream = new TextStreamer(tokenizer);
    for await (const [t] of streamGenerate(model, tensor([ids], { dtype: 'int32', device: model.parameters()[0]?.device }), { ...gen, maxNewTokens: room })) {
      if (eos.has(t!)) continue; // generation stops there by itself
      out(stream.put(t!));
    }
    out('\n');
    messages.push({ role: 'assistant', content: tokenizer.decode(stream.tokens, { skipSpecialTokens: true }).trim() });
  }
}

const CHAT_USAGE = `attend chat --model DIR [--adapter DIR] [options]

A multi-turn chat on stdin: each line is a message, the reply streams as it is generated. The conversation is
rendered with the tokenizer's chat_template. /reset clears the history, /exit ends. When the conversation outgrows
the model's context, the oldest whole turns are dropped (the system message stays), with a warning.
  --model DIR            Hugging Face folder of a causal LM with a chat template (may be left out when the adapter's
                         adapter_config.json names its base_model_name_or_path)
  --adapter DIR          a PEFT LoRA adapter to apply (merged into the weights in memory)
  --qlora                quantize the model's Linear layers (not the output head) to NF4 at load, as attend sft
                         --qlora trained the adapter on them; the adapter stays unmerged
  --system TEXT          a system message that starts the conversation (default: none; the template may add its own)
  --max-new-tokens N     longest reply in tokens (default 256)
  --temperature T        sample at this temperature (default: greedy decoding)
  --top-p P              nucleus sampling, with --temperature
  --seed N               seed of the sampling
  --device D             backend (default: the fastest registered)`;

/** `attend chat` with explicit streams (tests feed scripted lines). */
export async function runChat(args: readonly string[], io: { input: Readable; out: Out; err: Out }): Promise<void> {
  const { values } = parseOptions(args, {
    model: 'string', adapter: 'string', qlora: 'boolean', system: 'string', 'max-new-tokens': 'string', temperature: 'string', 'top-p': 'string', seed: 'string', device: 'string', help: 'boolean',
  }, 'chat', false);
  if (values['help']) return io.out(`${CHAT_USAGE}\n`);
  const opts: ChatOptions = {};
  const maxNewTokens = generationOption(values, 'max-new-tokens', 'maxNewTokens');
  const temperature = generationOption(values, 'temperature', 'temperature'), topP = generationOption(values, 'top-p', 'topP'), seed = generationOption(values, 'seed', 'seed');
  if (topP !== undefined && temperature === undefined) throw new Error('chat: --top-p needs --temperature (sampling)');
  if (maxNewTokens !== undefined) opts.maxNewTokens = maxNewTokens;
  if (temperature !== undefined) opts.temperature = temperature;
  if (topP !== undefined) opts.topP = topP;
  if (seed !== undefined) opts.seed = seed;
  const system = stringOption(values, 'system');
  if (system !== undefined) opts.system = system;
  const adapter = stringOption(values, 'adapter');
  let dir = stringOption(values, 'model');
  if (dir === undefined && adapter !== undefined) {
    const config = await readJsonFile(`${adapter.replace(/\/$/, '')}/adapter_config.json`);
    const base = (config as Record<string, unknown> | null)?.['base_model_name_or_path'];
    if (typeof base === 'string' && base !== '') dir = base;
  }
  if (dir === undefined) throw new Error(`--model DIR is required\n\n${CHAT_USAGE}`);
  const device = stringOption(values, 'device');
  const tokenizer = await AutoTokenizer.fromPretrained(dir);
  const model = await AutoModelForCausalLM.fromPretrained(dir, device !== undefined ? { device } : {});
  const qlora = values['qlora'] === true;
  if (qlora) await qloraQuantize(model);
  if (adapter !== undefined) {
    await loadLoraAdapter(model, adapter);
    if (!qlora) mergeLora(model); // NF4 cannot take the update without requantizing it away
  }
  model.eval();
  // Before the first line: a tokenizer without a template cannot chat at all.
  if (tokenizer.chatTemplateNames.length === 0) throw new Error(`${dir}: the tokenizer has no chat_template (tokenizer_config.json), so it cannot format a chat`);
  await chatRepl(model, tokenizer, io.input, io.out, io.err, opts);
}

export const chatCommand: CliCommand = {
  summary: 'chat with a causal LM on stdin (chat template, streaming, /reset, /exit)',
  usage: CHAT_USAGE,
  run(args, out: Out = stdout) {
    return runChat(args, { input: process.stdin, out, err: stderr });
  },
};

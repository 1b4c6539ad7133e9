// Recipe `instruct`: a small character-level LLaMA pretrained on Brown and a synthetic task corpus, then SFT, DPO and GRPO (or PPO with a learned reward model) on checkable instruction tasks, with held-out accuracy after every stage.

import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { reshape } from '../autograd/ops/movement.js';
import { loadBrown } from '../data/brown.js';
import { carelessAnswers, checkAnswer, InstructTasks, taskPartialReward, taskReward, type InstructTask } from '../data/instruct-tasks.js';
import type { PreferenceRecord, SftRecord } from '../data/sft.js';
import { generate } from '../generation/generate.js';
import { loadSafetensors } from '../io/safetensors.js';
import { ConfigReader } from '../models/base.js';
import { LlamaForCausalLM, llamaConfig } from '../models/llama.js';
import { crossEntropy } from '../nn/functional.js';
import { getDefaultDevice } from '../tensor/backend.js';
import { tensor } from '../tensor/create.js';
import { Generator, manualSeed } from '../tensor/random.js';
import type { ChatMessage } from '../tokenizers/chat-template.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { trainByteLevelBpe } from '../tokenizers/train-bpe.js';
import { STATE_FILE } from '../train/checkpoint.js';
import { dpoTrain } from '../train/dpo.js';
import { grpoTrain, type PromptRecord } from '../train/grpo.js';
import { lineChart, type Series } from '../train/plot.js';
import { ppoTrain } from '../train/ppo.js';
import { RewardModel, trainRewardModel } from '../train/reward.js';
import { saveSftModel, sft } from '../train/sft.js';
import { isScheduleKind, Trainer, type ScheduleKind } from '../train/trainer.js';
import { documentText, planSource, trainPlan, type LmBatch } from './gpt-brown.js';
import { optionError, type Recipe, type RecipeContext } from './recipe.js';
import { writeFileAtomic } from '../io/atomic.js';

// ---- tokenizer and chat template ----

export const EOT = '<|endoftext|>';
export const CHAT_SPECIALS = [EOT, '<|system|>', '<|user|>', '<|assistant|>', '<|end|>'] as const;
export const EOT_ID = 0;
export const END_ID = 4;
/** Each turn is <|role|>content<|end|>; the generation prompt is <|assistant|>. */
export const CHAT_TEMPLATE = "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

/**
 * The tokenizer: byte-level BPE with `vocabSize` - 261 merges learned on `texts` (0 merges, the default, is one token
 * per character: digits stay digits), the chat markers as special tokens, <|end|> as eos.
 */
export function instructTokenizer(texts: readonly string[], vocabSize: number): Tokenizer {
  const json = trainByteLevelBpe(texts, { vocabSize, specialTokens: CHAT_SPECIALS });
  return Tokenizer.fromJSON(json, { chat_template: CHAT_TEMPLATE, eos_token: '<|end|>', pad_token: EOT });
}

const userTurn = (t: InstructTask): ChatMessage[] => [{ role: 'user', content: t.prompt }];

/** A task as the base model's corpus shows it: the prompt, a new line, the answer. */
export const plainText = (t: InstructTask): string => `${t.prompt}\n${t.answer}`;

// ---- pretraining corpus ----

/**
 * One token stream of Brown documents and synthetic task documents (each `plainText`), every document followed by
 * <|endoftext|>, in a seeded random order.
 */
export function pretrainStream(tok: Tokenizer, brown: readonly string[], tasks: readonly InstructTask[], seed: number): Uint16Array {
  const docs = [...brown, ...tasks.map(plainText)];
  const order = new Generator(seed).permutation(docs.length);
  const ids: number[] = [];
  for (const i of order) {
    for (const id of tok.encode(docs[i]!, { addSpecialTokens: false }).ids) ids.push(id);
    ids.push(EOT_ID);
  }
  return Uint16Array.from(ids);
}

// ---- evaluation ----

export interface StageAccuracy {
  stage: string;
  /** Held-out accuracy (greedy), all prompts. */
  accuracy: number;
  /** On held-out instances in the training phrasings, and in the held-out phrasings. */
  seenPhrasing: number;
  heldOutPhrasing: number;
  byFamily: Record<string, number>;
  examples: { prompt: string; answer: string; output: string }[];
}

/**
 * Greedy answers to `tasks`, batched with left padding. 'chat': the prompt through the chat template, up to <|end|>;
 * 'plain': the corpus format (<|endoftext|> prompt newline), up to the next new line.
 */
export async function answerTasks(model: LlamaForCausalLM, tok: Tokenizer, tasks: readonly InstructTask[], opts: { mode: 'chat' | 'plain'; batchSize: number; maxNewTokens: number }): Promise<string[]> {
  const newline = tok.encode('\n', { addSpecialTokens: false }).ids;
  const stops = opts.mode === 'chat' ? [END_ID, EOT_ID] : [EOT_ID, ...newline];
  const prompts = tasks.map((t) => (opts.mode === 'chat' ? tok.applyChatTemplate(userTurn(t), { addGenerationPrompt: true }) : [EOT_ID, ...tok.encode(`${t.prompt}\n`, { addSpecialTokens: false }).ids]));
  const order = prompts.map((_, i) => i).sort((a, b) => prompts[a]!.length - prompts[b]!.length);
  const device = model.parameters()[0]!.device;
  const out: string[] = new Array<string>(tasks.length).fill('');
  model.eval();
  for (let at = 0; at < order.length; at += opts.batchSize) {
    const rows = order.slice(at, at + opts.batchSize);
    const L = Math.max(...rows.map((i) => prompts[i]!.length));
    const ids = rows.flatMap((i) => [...new Array<number>(L - prompts[i]!.length).fill(EOT_ID), ...prompts[i]!]);
    const mask = rows.flatMap((i) => [...new Array<number>(L - prompts[i]!.length).fill(0), ...new Array<number>(prompts[i]!.length).fill(1)]);
    const input = tensor(Int32Array.from(ids), { shape: [rows.length, L], dtype: 'int32', device });
    const attention = tensor(Int32Array.from(mask), { shape: [rows.length, L], dtype: 'int32', device });
    const seq = await generate(model, input, { maxNewTokens: opts.maxNewTokens, eosTokenId: stops, padTokenId: EOT_ID, attentionMask: attention });
    const W = seq.shape[1]!, data = await seq.data();
    rows.forEach((i, r) => {
      const gen = Array.from(data.subarray(r * W + L, (r + 1) * W));
      const end = gen.findIndex((t) => stops.includes(t));
      out[i] = tok.decode(end < 0 ? gen : gen.slice(0, end), { skipSpecialTokens: true });
    });
    for (const t of [input, attention, seq]) t.dispose();
  }
  return out;
}

const share = (xs: readonly boolean[]): number => (xs.length ? xs.filter(Boolean).length / xs.length : 0);

/** Held-out accuracy of a stage's model, overall, by phrasing and by family (the checker decides). */
export async function evaluateStage(stage: string, model: LlamaForCausalLM, tok: Tokenizer, tasks: readonly InstructTask[], opts: { mode: 'chat' | 'plain'; batchSize: number; maxNewTokens: number }): Promise<StageAccuracy> {
  const outputs = await answerTasks(model, tok, tasks, opts);
  const ok = tasks.map((t, i) => checkAnswer(outputs[i]!, t.answer) === 1);
  const byFamily: Record<string, number> = {};
  for (const f of new Set(tasks.map((t) => t.family))) byFamily[f] = share(ok.filter((_, i) => tasks[i]!.family === f));
  return {
    stage, accuracy: share(ok),
    seenPhrasing: share(ok.filter((_, i) => !tasks[i]!.heldOutTemplate)),
    heldOutPhrasing: share(ok.filter((_, i) => tasks[i]!.heldOutTemplate)),
    byFamily,
    examples: tasks.slice(0, 9).map((t, i) => ({ prompt: t.prompt, answer: t.answer, output: outputs[i]! })),
  };
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** The stages' held-out accuracy as one Markdown table (overall, by phrasing, by family). */
export function accuracyTable(stages: readonly StageAccuracy[]): string {
  const families = Object.keys(stages[0]?.byFamily ?? {});
  const head = ['stage', 'held-out accuracy', 'seen phrasings', 'held-out phrasing', ...families];
  const rows = stages.map((s) => [s.stage, `**${pct(s.accuracy)}**`, pct(s.seenPhrasing), pct(s.heldOutPhrasing), ...families.map((f) => pct(s.byFamily[f] ?? 0))]);
  return [head, head.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}

// ---- the recipe ----

/**
 * The rejected sides of DPO pairs with --dpo-rejected own: the model's own answer (trimmed) where it is wrong and not
 * empty, else the generated plausible mistake. `own` counts the pairs that got the model's answer.
 */
export function rejectedAnswers(tasks: readonly InstructTask[], outputs: readonly string[], plausible: readonly string[]): { rejected: string[]; own: number } {
  let own = 0;
  const rejected = tasks.map((t, i) => {
    const o = outputs[i]!.trim();
    if (o === '' || checkAnswer(o, t.answer) === 1) return plausible[i]!;
    own++;
    return o;
  });
  return { rejected, own };
}

export type InstructOptions = {
  seed: number;
  splitSeed: number;
  heldOutFraction: number;
  evalTasks: number;
  evalBatchSize: number;
  maxNewTokens: number;
  vocabSize: number;
  hiddenSize: number;
  layers: number;
  heads: number;
  intermediateSize: number;
  context: number;
  brownDocs: number;
  pretrainTasks: number;
  corpusSlipRate: number;
  sftSlipRate: number;
  pretrainSteps: number;
  pretrainBatchSize: number;
  pretrainLr: number;
  sftExamples: number;
  sftEpochs: number;
  sftBatchSize: number;
  sftLr: number;
  dpoPairs: number;
  dpoEpochs: number;
  dpoBatchSize: number;
  dpoLr: number;
  dpoBeta: number;
  dpoRejected: string;
  rl: string;
  rlReward: string;
  rlSteps: number;
  rlPrompts: number;
  rlLr: number;
  rlSchedule: ScheduleKind;
  rlBeta: number;
  rlTemperature: number;
  rlDynamicSampling: boolean;
  numGenerations: number;
  rewardEpochs: number;
  logEvery: number;
};

const STAGES = ['pretrain', 'sft', 'dpo', 'rl'] as const;

function checkOptions(o: InstructOptions): void {
  const bad = optionError('instruct', o);
  const ints: (keyof InstructOptions & string)[] = ['evalTasks', 'evalBatchSize', 'maxNewTokens', 'hiddenSize', 'layers', 'heads', 'intermediateSize', 'context', 'pretrainSteps', 'pretrainBatchSize', 'sftExamples', 'sftEpochs', 'sftBatchSize', 'dpoPairs', 'dpoEpochs', 'dpoBatchSize', 'rlSteps', 'rlPrompts', 'rewardEpochs', 'logEvery'];
  for (const k of ints) if (!(Number.isSafeInteger(o[k]) && (o[k] as number) >= 1)) bad(k, 'a positive integer');
  for (const k of ['brownDocs', 'pretrainTasks', 'seed', 'splitSeed'] as const) if (!(Number.isSafeInteger(o[k]) && o[k] >= 0)) bad(k, 'an integer >= 0');
  for (const k of ['pretrainLr', 'sftLr', 'dpoLr', 'rlLr', 'dpoBeta', 'rlTemperature'] as const) if (!(o[k] > 0 && Number.isFinite(o[k]))) bad(k, 'a positive number');
  if (!(o.rlBeta >= 0)) bad('rlBeta', 'a number >= 0');
  if (!(o.heldOutFraction > 0 && o.heldOutFraction < 1)) bad('heldOutFraction', 'in (0, 1)');
  for (const k of ['corpusSlipRate', 'sftSlipRate'] as const) if (!(o[k] >= 0 && o[k] < 1)) bad(k, 'in [0, 1)');
  if (o.vocabSize < 261) bad('vocabSize', 'at least 261 (5 special tokens and 256 bytes)');
  if (o.hiddenSize % o.heads !== 0 || (o.hiddenSize / o.heads) % 2 !== 0) bad('heads', `a divisor of --hidden-size ${o.hiddenSize} giving an even head size`);
  if (o.rl !== 'grpo' && o.rl !== 'ppo') bad('rl', "'grpo' or 'ppo'");
  if (!isScheduleKind(o.rlSchedule)) bad('rlSchedule', "'constant', 'linear' or 'cosine'");
  if (o.rlReward !== 'exact' && o.rlReward !== 'partial') bad('rlReward', "'exact' or 'partial'");
  if (o.dpoRejected !== 'own' && o.dpoRejected !== 'plausible') bad('dpoRejected', "'own' or 'plausible'");
  if (o.rl === 'grpo' && o.numGenerations < 2) bad('numGenerations', 'at least 2 (GRPO compares the samples of a prompt)');
  if (o.brownDocs === 0 && o.pretrainTasks === 0) bad('pretrainTasks', 'positive when --brown-docs is 0 (the corpus would be empty)');
}

async function saveStage(dir: string, acc: StageAccuracy, model: LlamaForCausalLM, tok: Tokenizer, baseDir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await saveSftModel(model, tok, dir, { baseDir, lora: false });
  await writeFileAtomic(join(dir, 'stage.json'), `${JSON.stringify(acc, null, 2)}\n`);
}

/** A finished stage of a run being resumed: its accuracy, with its weights loaded into `model`; null when it did not finish. */
async function resumeStage(dir: string, model: LlamaForCausalLM): Promise<StageAccuracy | null> {
  const text = await readFile(join(dir, 'stage.json'), 'utf8').catch(() => null);
  if (text === null) return null;
  const file = join(dir, 'model.safetensors');
  const saved = await loadSafetensors(file);
  const own = model.stateDict();
  const r = model.loadStateDict(saved, { strict: false });
  // The file holds tied weights once (lm_head.weight is embed_tokens.weight): only those may be missing.
  const untied = r.missingKeys.filter((k) => !Object.entries(own).some(([o, t]) => o !== k && t === own[k] && o in saved));
  if (untied.length || r.unexpectedKeys.length) throw new Error(`instruct: --resume: ${file} does not fit the model (missing ${untied.join(', ') || 'none'}; unexpected ${r.unexpectedKeys.join(', ') || 'none'}); resume with the options the run was started with`);
  return JSON.parse(text) as StageAccuracy;
}

/** The moving average over `w` points (the RL curves are noisy: a handful of prompts a step). */
function smooth(points: [number, number][], w: number): [number, number][] {
  return points.map(([x], i) => {
    const win = points.slice(Math.max(0, i - w + 1), i + 1);
    return [x, win.reduce((a, [, y]) => a + y, 0) / win.length];
  });
}

async function run(opts: InstructOptions, ctx: RecipeContext): Promise<Record<string, unknown>> {
  checkOptions(opts);
  const dir = ctx.outDir;
  const device = ctx.device ?? getDefaultDevice();
  const started = performance.now();
  const seconds: Record<string, number> = {};
  await mkdir(dir, { recursive: true });
  const tasks = new InstructTasks({ splitSeed: opts.splitSeed, heldOutFraction: opts.heldOutFraction });
  const heldOut = tasks.heldOut(opts.evalTasks, opts.seed + 1000);
  // Each stage's training tasks come from a stream of its own; none is held out (instances or phrasings).
  const stream = (stage: number, n: number): InstructTask[] => (n > 0 ? tasks.training(n, opts.seed * 10 + stage) : []);
  // The corpus and the demonstrations come from careless writers: a share of their answers carry the family's slip.
  const written = (ts: InstructTask[], stage: number, rate: number): InstructTask[] => {
    const answers = carelessAnswers(ts, rate, opts.seed * 10 + stage + 5);
    return ts.map((t, i) => ({ ...t, answer: answers[i]! }));
  };

  // ---- data, tokenizer, model ----
  const brown = opts.brownDocs > 0 ? (await loadBrown()).slice(0, opts.brownDocs).map(documentText) : [];
  const corpusTasks = written(stream(1, opts.pretrainTasks), 1, opts.corpusSlipRate);
  const tok = instructTokenizer(opts.vocabSize > 261 ? [...brown, ...corpusTasks.map(plainText)] : [], opts.vocabSize);
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: tok.vocabSize, hidden_size: opts.hiddenSize,
    intermediate_size: opts.intermediateSize, num_hidden_layers: opts.layers, num_attention_heads: opts.heads, num_key_value_heads: opts.heads,
    max_position_embeddings: opts.context, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu', initializer_range: 0.02,
    tie_word_embeddings: true, bos_token_id: EOT_ID, eos_token_id: END_ID, pad_token_id: EOT_ID,
  };
  manualSeed(opts.seed);
  const model = new LlamaForCausalLM(llamaConfig(new ConfigReader(config, 'config.json')));
  model.to(device);
  model.generationConfig = { ...model.generationConfig, eosTokenId: END_ID };
  // The base folder every stage's folder copies its config and tokenizer files from.
  const baseDir = join(dir, 'base');
  await mkdir(baseDir, { recursive: true });
  await writeFileAtomic(join(baseDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  await writeFileAtomic(join(baseDir, 'generation_config.json'), `${JSON.stringify({ bos_token_id: EOT_ID, eos_token_id: END_ID, pad_token_id: EOT_ID }, null, 2)}\n`);
  await writeFileAtomic(join(baseDir, 'tokenizer.json'), JSON.stringify(tok.toJSON()));
  await writeFileAtomic(join(baseDir, 'tokenizer_config.json'), `${JSON.stringify({ chat_template: CHAT_TEMPLATE, eos_token: '<|end|>', pad_token: EOT, bos_token: null, model_max_length: opts.context }, null, 2)}\n`);
  ctx.log(`instruct: LLaMA, ${opts.layers} layers, width ${opts.hiddenSize}, ${opts.heads} heads, context ${opts.context}, vocabulary ${tok.vocabSize}: ${model.numParameters().toLocaleString('en-US')} parameters, on ${device}`);
  ctx.log(`instruct: ${heldOut.length} held-out tasks (${heldOut.filter((t) => t.heldOutTemplate).length} in held-out phrasings), families ${tasks.families.map((f) => f.name).join(', ')}`);

  const evalOpts = { batchSize: opts.evalBatchSize, maxNewTokens: opts.maxNewTokens };
  const stages: StageAccuracy[] = [];
  const report = (a: StageAccuracy): void => {
    stages.push(a);
    ctx.log(`instruct: after ${a.stage}: held-out accuracy ${pct(a.accuracy)} (seen phrasings ${pct(a.seenPhrasing)}, held-out phrasing ${pct(a.heldOutPhrasing)})`);
  };
  const stageDir = (s: (typeof STAGES)[number]): string => join(dir, s === 'rl' ? opts.rl : s);
  const resumed = async (s: (typeof STAGES)[number]): Promise<boolean> => {
    if (!ctx.resume) return false;
    const a = await resumeStage(stageDir(s), model);
    if (a) { ctx.log(`instruct: --resume: ${s} finished before; its model is loaded`); report(a); }
    return a !== null;
  };
  // A stage cut short continues from its Trainer checkpoint under --resume.
  const midway = async (s: (typeof STAGES)[number]): Promise<boolean> => ctx.resume && (await stat(join(stageDir(s), STATE_FILE)).then(() => true, () => false));
  const timed = async (name: string, fn: () => Promise<void>): Promise<void> => {
    const t0 = performance.now();
    await fn();
    seconds[name] = Math.round((performance.now() - t0) / 1000);
  };
  report(await evaluateStage('initial (random weights)', model, tok, heldOut, { ...evalOpts, mode: 'plain' }));

  // ---- 1. pretraining: next-token prediction on Brown + the task corpus ----
  if (!(await resumed('pretrain'))) {
    await timed('pretrain', async () => {
      const ids = pretrainStream(tok, brown, corpusTasks, opts.seed);
      const T = opts.context, B = opts.pretrainBatchSize;
      ctx.log(`instruct: pretraining on ${brown.length} Brown documents and ${corpusTasks.length} task documents: ${ids.length.toLocaleString('en-US')} tokens; ${opts.pretrainSteps} steps of ${B} x ${T} tokens`);
      const plan = trainPlan(ids.length, T, B, opts.pretrainSteps, opts.seed);
      const trainer = new Trainer<LlamaForCausalLM, LmBatch>({
        model, device, data: planSource(ids, plan, T, B, device),
        loss: (m, b) => {
          const logits = m.forward({ inputIds: b.inputIds }).logits;
          return { loss: crossEntropy(reshape(logits, [-1, logits.shape[2]!]), reshape(b.targets, [-1])), tokens: B * T };
        },
        optimizer: { lr: opts.pretrainLr, weightDecay: 0.1 }, schedule: { kind: 'cosine', warmupSteps: Math.min(100, Math.ceil(opts.pretrainSteps / 10)), minLr: opts.pretrainLr / 10 },
        clipGradNorm: 1, maxSteps: opts.pretrainSteps, logEvery: opts.logEvery, outDir: stageDir('pretrain'), resume: await midway('pretrain'), seed: opts.seed, skipNonfinite: ctx.skipNonfinite,
      });
      await trainer.train();
    });
    // The base model has not seen the chat template: it is asked in its corpus's format.
    const a = await evaluateStage('pretrained (base, plain prompt)', model, tok, heldOut, { ...evalOpts, mode: 'plain' });
    await saveStage(stageDir('pretrain'), a, model, tok, baseDir);
    report(a);
  }

  // ---- 2. SFT: chat-formatted demonstrations, loss on the answers only ----
  if (!(await resumed('sft'))) {
    await timed('sft', async () => {
      const records: SftRecord[] = written(stream(2, opts.sftExamples), 2, opts.sftSlipRate).map((t) => ({ kind: 'messages', messages: [...userTurn(t), { role: 'assistant', content: t.answer }] }));
      await sft(model, tok, records, {
        epochs: opts.sftEpochs, batchSize: opts.sftBatchSize, lr: opts.sftLr, maxLength: opts.context, warmupSteps: Math.min(10, Math.floor((Math.ceil(opts.sftExamples / opts.sftBatchSize) * opts.sftEpochs) / 10)), seed: opts.seed,
        logEvery: opts.logEvery, outDir: stageDir('sft'), resume: await midway('sft'), baseDir, log: ctx.log, skipNonfinite: ctx.skipNonfinite,
      });
    });
    const a = await evaluateStage('SFT', model, tok, heldOut, { ...evalOpts, mode: 'chat' });
    await saveStage(stageDir('sft'), a, model, tok, baseDir);
    report(a);
  }

  // ---- 3. DPO: the right answer preferred to a plausible wrong one ----
  const pairTasks = stream(3, opts.dpoPairs);
  const pairRng = new Generator(opts.seed + 3);
  const plausible = pairTasks.map((t) => t.wrong[pairRng.integers(0, t.wrong.length, 1)[0]!]!);
  const pairsFrom = (rejected: readonly string[]): PreferenceRecord[] => pairTasks.map((t, i) => ({
    kind: 'conversationalPreference', prompt: userTurn(t), chosen: [{ role: 'assistant', content: t.answer }], rejected: [{ role: 'assistant', content: rejected[i]! }],
  }));
  // The generated mistakes; with --dpo-rejected own, DPO's pairs reject the SFT model's own wrong greedy answer instead.
  let pairs = pairsFrom(plausible);
  let ownRejected: number | null = null;
  if (!(await resumed('dpo'))) {
    await timed('dpo', async () => {
      if (opts.dpoRejected === 'own') {
        const own = await answerTasks(model, tok, pairTasks, { ...evalOpts, mode: 'chat' });
        const r = rejectedAnswers(pairTasks, own, plausible);
        ownRejected = r.own;
        ctx.log(`instruct: DPO pairs: ${ownRejected} of ${pairTasks.length} reject the SFT model's own wrong answer, the rest a generated plausible one`);
        pairs = pairsFrom(r.rejected);
      }
      await dpoTrain(model, tok, pairs, {
        epochs: opts.dpoEpochs, batchSize: opts.dpoBatchSize, lr: opts.dpoLr, beta: opts.dpoBeta, maxLength: opts.context, seed: opts.seed,
        logEvery: opts.logEvery, outDir: stageDir('dpo'), resume: await midway('dpo'), baseDir, log: ctx.log,
      });
    });
    const a = await evaluateStage('DPO', model, tok, heldOut, { ...evalOpts, mode: 'chat' });
    await saveStage(stageDir('dpo'), a, model, tok, baseDir);
    report(a);
  }

  // ---- 4. RL: GRPO with the checker as reward, or PPO with a reward model learned from the pairs ----
  const rlRecords: PromptRecord[] = stream(4, opts.rlSteps * opts.rlPrompts).map((t) => ({ prompt: userTurn(t), answer: t.answer }));
  let curves: { reward: [number, number][]; kl: [number, number][] } = { reward: [], kl: [] };
  let rewardModelAccuracy: number | null = null;
  if (!(await resumed('rl'))) {
    await timed('rl', async () => {
      const common = {
        maxSteps: opts.rlSteps, promptsPerStep: opts.rlPrompts, maxNewTokens: opts.maxNewTokens, temperature: opts.rlTemperature,
        lr: opts.rlLr, seed: opts.seed, logEvery: opts.logEvery, outDir: stageDir('rl'), resume: await midway('rl'), baseDir, log: ctx.log, schedule: opts.rlSchedule,
      };
      if (opts.rl === 'grpo') {
        const r = await grpoTrain(model, tok, rlRecords, opts.rlReward === 'partial' ? taskPartialReward : taskReward, { ...common, numGenerations: opts.numGenerations, beta: opts.rlBeta, dynamicSampling: opts.rlDynamicSampling });
        curves = { reward: r.stats.map((s) => [s.step, s['reward'] ?? NaN]), kl: r.stats.map((s) => [s.step, s['kl'] ?? NaN]) };
      } else {
        // The reward model starts from the current policy's weights and learns the pairs with the generated mistakes.
        const trunk = new LlamaForCausalLM(model.config);
        trunk.to(device);
        trunk.loadStateDict(model.stateDict());
        const rm = new RewardModel(trunk);
        const rt = await trainRewardModel(rm, tok, pairsFrom(plausible), { epochs: opts.rewardEpochs, batchSize: opts.dpoBatchSize, lr: opts.dpoLr, maxLength: opts.context, seed: opts.seed, logEvery: opts.logEvery, outDir: join(dir, 'reward-model'), log: ctx.log });
        rewardModelAccuracy = rt.stats.at(-1)?.['accuracy'] ?? null;
        rm.eval();
        const r = await ppoTrain(model, rm, tok, rlRecords, { ...common, klCoef: opts.rlBeta });
        curves = { reward: r.stats.map((s) => [s.step, s['score'] ?? NaN]), kl: r.stats.map((s) => [s.step, s['kl'] ?? NaN]) };
      }
    });
    const a = await evaluateStage(opts.rl === 'grpo' ? 'GRPO' : 'PPO', model, tok, heldOut, { ...evalOpts, mode: 'chat' });
    await saveStage(stageDir('rl'), a, model, tok, baseDir);
    report(a);
  }

  // ---- the final model, the table, the pictures ----
  const finalDir = join(dir, 'model');
  await mkdir(finalDir, { recursive: true });
  await saveSftModel(model, tok, finalDir, { baseDir, lora: false });
  const table = accuracyTable(stages);
  await writeFile(join(dir, 'accuracy.md'), `${table}\n`);
  ctx.log(`instruct: held-out accuracy after each stage (${heldOut.length} prompts, greedy):\n${table}`);
  const pictures: string[] = [];
  const drawn = (pts: [number, number][]) => pts.filter(([, y]) => Number.isFinite(y));
  if (drawn(curves.reward).length > 0) {
    const what = opts.rl === 'grpo' ? 'checker reward (fraction of samples right)' : 'reward-model score';
    const w = Math.max(1, Math.round(curves.reward.length / 20));
    const rewardSeries: Series[] = [{ name: 'per step', points: drawn(curves.reward), color: '#aec7e8' }, { name: `moving average (${w} steps)`, points: smooth(drawn(curves.reward), w), color: '#1f77b4' }];
    await writeFile(join(dir, 'reward.svg'), lineChart(rewardSeries, { title: `${opts.rl.toUpperCase()}: ${what}`, xLabel: 'step', yLabel: 'mean reward' }));
    await writeFile(join(dir, 'kl.svg'), lineChart([{ name: 'KL to the reference (per token)', points: drawn(curves.kl), color: '#d62728' }], { title: `${opts.rl.toUpperCase()}: KL to the reference`, xLabel: 'step', yLabel: 'KL (nats per token)' }));
    pictures.push('reward.svg', 'kl.svg');
  }
  const first = (name: string) => stages.find((s) => s.stage.startsWith(name));
  const sftAcc = first('SFT')?.accuracy ?? null, rlAcc = stages.at(-1)?.accuracy ?? null;
  return {
    model: { architecture: 'LlamaForCausalLM', parameters: model.numParameters(), layers: opts.layers, hiddenSize: opts.hiddenSize, heads: opts.heads, context: opts.context, vocabulary: tok.vocabSize, folder: finalDir },
    heldOut: { prompts: heldOut.length, heldOutPhrasing: heldOut.filter((t) => t.heldOutTemplate).length, heldOutFraction: opts.heldOutFraction, families: tasks.families.map((f) => f.name) },
    stages: stages.map(({ examples: _, ...s }) => s),
    table,
    rlGainOverSft: sftAcc !== null && rlAcc !== null ? rlAcc - sftAcc : null,
    everyStageImproves: stages.every((s, i) => i === 0 || s.accuracy > stages[i - 1]!.accuracy),
    rewardModelAccuracy,
    // DPO pairs whose rejected side is the SFT model's own wrong answer (--dpo-rejected own; null when DPO was resumed).
    dpoPairs: { pairs: pairTasks.length, ownRejected },
    examples: stages.at(-1)?.examples ?? [],
    pictures,
    seconds: { ...seconds, total: Math.round((performance.now() - started) / 1000) },
    chat: `attend chat --model ${finalDir}`,
    device,
  };
}

export const instructRecipe: Recipe<InstructOptions> = {
  name: 'instruct',
  summary: 'a small LLaMA pretrained on Brown + task text, then SFT, DPO and GRPO (or PPO) on checkable instruction tasks; held-out accuracy after each stage',
  chapter: 'fine-tuning large language models (instruction tuning, preference optimization, RLHF)',
  defaults: {
    seed: 0, splitSeed: 0, heldOutFraction: 0.1, evalTasks: 360, evalBatchSize: 60, maxNewTokens: 20,
    vocabSize: 261, hiddenSize: 128, layers: 4, heads: 4, intermediateSize: 352, context: 128,
    brownDocs: 50, pretrainTasks: 200000, corpusSlipRate: 0.6, sftSlipRate: 0.45, pretrainSteps: 4000, pretrainBatchSize: 16, pretrainLr: 2e-3,
    sftExamples: 10000, sftEpochs: 1, sftBatchSize: 16, sftLr: 3e-4,
    dpoPairs: 1000, dpoEpochs: 1, dpoBatchSize: 16, dpoLr: 1e-5, dpoBeta: 0.1, dpoRejected: 'own',
    rl: 'grpo', rlReward: 'exact', rlSteps: 300, rlPrompts: 8, rlLr: 1e-4, rlSchedule: 'linear', rlBeta: 0.02, rlTemperature: 1, rlDynamicSampling: true, numGenerations: 8, rewardEpochs: 1,
    logEvery: 10,
  },
  smoke: {
    evalTasks: 36, evalBatchSize: 12, maxNewTokens: 8, hiddenSize: 16, layers: 1, heads: 2, intermediateSize: 32, context: 96,
    brownDocs: 2, pretrainTasks: 50, pretrainSteps: 3, pretrainBatchSize: 2, sftExamples: 8, sftBatchSize: 4, dpoPairs: 8, dpoBatchSize: 4,
    rlSteps: 2, rlPrompts: 2, numGenerations: 2, logEvery: 1,
  },
  help: {
    seed: 'seed of the weights, the training tasks, the batches and the samples',
    splitSeed: 'seed of the instance hold-out (which instances are never trained on)',
    heldOutFraction: 'fraction of each task family\'s instances held out',
    evalTasks: 'held-out prompts (greedy answers; the families and their phrasings in turn, a quarter in the held-out phrasing)',
    evalBatchSize: 'prompts per batch when evaluating',
    maxNewTokens: 'longest answer in tokens (evaluation and RL samples)',
    vocabSize: 'byte-level BPE vocabulary: 5 chat tokens, 256 bytes and merges (261 = characters, no merges)',
    hiddenSize: 'model width',
    layers: 'decoder layers',
    heads: 'attention heads',
    intermediateSize: 'SwiGLU hidden size',
    context: 'context length (max_position_embeddings; pretraining windows)',
    brownDocs: 'the first N of the 500 Brown documents in the pretraining corpus',
    pretrainTasks: 'synthetic task documents (prompt, new line, answer) in the pretraining corpus',
    corpusSlipRate: "share of the task corpus's answers written with the family's typical slip (a careless writer: the sum off by one, the list sorted the wrong way, the word unreversed); 0 = a perfect corpus",
    sftSlipRate: "the same for the SFT demonstrations (0 = perfect demonstrations)",
    pretrainSteps: 'pretraining steps',
    pretrainBatchSize: 'pretraining windows per batch',
    pretrainLr: 'pretraining peak learning rate (cosine to a tenth)',
    sftExamples: 'SFT demonstrations (chat format; loss on the answer only)',
    sftEpochs: 'SFT passes',
    sftBatchSize: 'SFT examples per batch',
    sftLr: 'SFT learning rate (linear decay)',
    dpoPairs: 'DPO pairs (the right answer against a wrong one)',
    dpoEpochs: 'DPO passes',
    dpoBatchSize: 'DPO pairs per batch (also the reward model\'s with --rl ppo)',
    dpoLr: 'DPO learning rate (also the reward model\'s)',
    dpoBeta: 'DPO beta',
    dpoRejected: "the rejected side of the DPO pairs: 'own' (the SFT model's own wrong greedy answer where it has one, else a generated plausible mistake) or 'plausible' (always a generated plausible mistake)",
    rl: "the RL stage: 'grpo' (the checker as reward) or 'ppo' (a reward model learned from pairs of the right answer and a generated plausible mistake)",
    rlReward: "GRPO's reward: 'exact' (the checker: 1 or 0) or 'partial' (1 when exact, else 0.5 x the share of the answer's characters right by edit distance)",
    rlSteps: 'RL updates',
    rlPrompts: 'prompts per RL update',
    rlLr: 'RL learning rate (the peak with --rl-schedule linear or cosine)',
    rlSchedule: "RL learning-rate schedule: 'constant', 'linear' (to 0) or 'cosine'",
    rlBeta: 'KL weight: GRPO beta, or PPO\'s per-token KL coefficient',
    rlTemperature: 'sampling temperature of the RL rollouts',
    rlDynamicSampling: "GRPO: replace groups whose samples all score the same (no signal) by other prompts' groups (DAPO's dynamic sampling)",
    numGenerations: 'GRPO samples per prompt',
    rewardEpochs: 'reward-model passes over the pairs (--rl ppo)',
    logEvery: 'steps between log records',
  },
  run,
};

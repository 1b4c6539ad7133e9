// Text generation with Hugging Face's semantics: greedy, sampling, beam search, a KV cache, streaming.
// The model runs on its device; choosing tokens runs on the host over each step's last-position logits.

import { noGrad } from '../autograd/engine.js';
import { indexSelect } from '../autograd/ops/indexing.js';
import { select } from '../autograd/ops/movement.js';
import { tensor } from '../tensor/create.js';
import { defaultGenerator, Generator } from '../tensor/random.js';
import { keep, tidy } from '../tensor/scope.js';
import { fmtShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { KVCache } from '../nn/attention.js';
import { PreTrainedModel } from '../models/base.js';
import { checkGenerateOptions } from './check.js';
import { assistedGenerate } from './speculative.js';
import { applyRepetitionPenalty, argmax, badScores, checkProbabilities, firstNaN, forceToken, logSoftmax, noRepeatNgramTokens, sampleIndex, softmax, suppress, warp, type LogitsOptions } from './logits.js';
import { whisperInitTokens, type WhisperPromptOptions } from './whisper.js';

/** An encoder-decoder's non-text input (HF's generate(input_features=...)): Whisper's [B, nMels, frames] features. */
export interface EncoderInputs {
  inputFeatures: Tensor;
}

/** What generate() starts from: token ids (a decoder-only prompt, or T5's encoder input), or an encoder's features. */
export type GenerateInput = Tensor | EncoderInputs;

export interface GenerateOptions extends LogitsOptions, WhisperPromptOptions {
  /** New tokens to generate at most (default 20). */
  maxNewTokens?: number;
  /** End-of-sequence tokens are forbidden before this many new tokens. */
  minNewTokens?: number;
  /** No n-gram of this size occurs twice (HF's no_repeat_ngram_size; default: the generation config's). */
  noRepeatNgramSize?: number;
  /** The first new token, and the last one when maxNewTokens is reached (HF's forced_bos/eos_token_id: BART's). */
  forcedBosTokenId?: number;
  forcedEosTokenId?: number;
  doSample?: boolean;
  numBeams?: number;
  /** Beam scores are divided by length ** lengthPenalty (default 1). */
  lengthPenalty?: number;
  /** Beam search stops when numBeams hypotheses are done (true), by HF's heuristic (false, the default), or never early. */
  earlyStopping?: boolean | 'never';
  eosTokenId?: number | number[];
  padTokenId?: number;
  decoderStartTokenId?: number;
  /** Tokens never generated, and tokens not generated first (HF's suppress_tokens / begin_suppress_tokens; default: the generation config's). */
  suppressTokens?: number[];
  beginSuppressTokens?: number[];
  /** [B, T]: 1 for tokens, 0 for (left) padding of the prompt. */
  attentionMask?: Tensor | null;
  /** Seeded sampling: a generator, or a seed for a fresh one (default: the global generator). */
  generator?: Generator;
  seed?: number;
  /** Streaming: called after each step with the new token of every row (greedy and sampling). */
  onToken?: (tokens: number[]) => void;
  /** Assisted generation (HF's assistant_model): a draft sharing the vocabulary speeds up greedy decoding; see assistedGenerate. */
  assistantModel?: PreTrainedModel;
  numAssistantTokens?: number;
  numAssistantTokensSchedule?: 'constant' | 'heuristic';
}

export interface GenerateOutput {
  /** int32 [B, L]: the prompt (or decoder start token) followed by the generated tokens. */
  sequences: Tensor;
  /** Greedy / sampling: the processed scores of every step, one [B, V] array per step. */
  scores: Float32Array[];
  /** Beam search: the length-normalised log-probability of each returned sequence. */
  sequencesScores?: number[];
}

/** Runs the model step by step with its cache, returning last-position logits per row. */
class Session {
  private readonly caches: KVCache[];
  private encoderStates: Tensor | null = null;
  private encoderMask: Tensor | null;
  private started = false;
  private readonly device: string;

  /**
   * The encoder input (token ids or features) and encoderMask become the session's: it disposes them when it owns
   * them (pass copies of the caller's tensors).
   */
  constructor(private readonly model: PreTrainedModel, private readonly encoderInput: { inputIds?: Tensor; inputFeatures?: Tensor }, encoderMask: Tensor | null, private mask: number[][] | null, private readonly ownsInput: boolean) {
    this.caches = model.newCache();
    this.encoderMask = encoderMask && keep(encoderMask);
    this.device = (encoderInput.inputIds ?? encoderInput.inputFeatures)!.device;
  }

  /** One decoder pass over `tokens` without the cache (Whisper's language detection): [rows][V] last-position logits. */
  async peek(tokens: number[][]): Promise<Float64Array[]> {
    return this.run(tokens, false);
  }

  /** Feeds new tokens (the whole prefix on the first call) and returns [rows][V] logits of the last position. */
  async step(tokens: number[][]): Promise<Float64Array[]> {
    const rows = await this.run(tokens, true);
    this.started = true;
    return rows;
  }

  private async run(tokens: number[][], cached: boolean): Promise<Float64Array[]> {
    const device = this.device;
    const B = tokens.length, T = tokens[0]!.length;
    const ids = tensor(Int32Array.from(tokens.flat()), { shape: [B, T], device });
    const logits = noGrad(() => tidy(() => {
      let out;
      if (this.model.isEncoderDecoder) {
        out = this.model.forward({
          ...(this.encoderStates ? {} : this.encoderInput), attentionMask: this.encoderMask, decoderInputIds: ids,
          pastKeyValues: cached ? this.caches : undefined, encoderHiddenStates: this.encoderStates,
        });
        this.encoderStates ??= keep(out.encoderLastHiddenState!);
      } else {
        let attentionMask: Tensor | null = null, positionIds: Tensor | null = null;
        if (this.mask) {
          for (const row of this.mask) if (this.started) row.push(1);
          const S = this.mask[0]!.length;
          attentionMask = tensor(Int32Array.from(this.mask.flat()), { shape: [B, S], device });
          // Positions count real tokens only, so left padding does not shift them (HF's rule).
          const pos = this.mask.map((row) => {
            let c = -1;
            return row.map((m) => (m ? ++c : 1)).slice(S - T);
          });
          positionIds = tensor(Int32Array.from(pos.flat()), { shape: [B, T], device });
        }
        out = this.model.forward({ inputIds: ids, attentionMask, positionIds, pastKeyValues: this.caches });
      }
      return select(out.logits, 1, -1); // [B, V]
    }));
    const data = await logits.data();
    logits.dispose();
    const V = data.length / B;
    return Array.from({ length: B }, (_, r) => Float64Array.from(data.subarray(r * V, (r + 1) * V)));
  }

  /** Beam search: row i continues old row order[i]. */
  reorder(order: number[]): void {
    const idx = tensor(Int32Array.from(order), { dtype: 'int32', device: this.device });
    for (const c of this.caches) c.reorder(idx);
    const swap = (t: Tensor | null) => {
      if (!t) return t;
      const next = keep(noGrad(() => indexSelect(t, 0, idx)));
      t.dispose();
      return next;
    };
    this.encoderStates = swap(this.encoderStates);
    this.encoderMask = swap(this.encoderMask);
    if (this.mask) this.mask = order.map((o) => [...this.mask![o]!]);
    idx.dispose();
  }

  dispose(): void {
    for (const c of this.caches) c.dispose();
    this.encoderStates?.dispose();
    this.encoderMask?.dispose();
    if (this.ownsInput) for (const t of Object.values(this.encoderInput)) t?.dispose();
  }
}

interface Resolved {
  maxNew: number;
  minNew: number;
  eos: number[];
  pad: number;
  prompt: number[][];
  session: Session;
  /** Tokens of the prompt that the decoder sees (0 for decoder-only models: the prompt is the sequence). */
  decoderPromptLen: number;
  suppress: number[];
  beginSuppress: number[];
  noRepeat?: number | undefined;
  forcedBos?: number | undefined;
  forcedEos?: number | undefined;
}

async function prepare(model: PreTrainedModel, input: GenerateInput, o: GenerateOptions, repeat: number): Promise<Resolved> {
  const features = input instanceof Tensor ? null : input.inputFeatures;
  // The encoder's input (token ids or features): only its batch size and device matter for features.
  const inputIds = input instanceof Tensor ? input : input.inputFeatures;
  if (!features && (inputIds.ndim !== 2 || !['int32', 'uint8'].includes(inputIds.dtype))) {
    throw new Error(`generate: inputIds must be an int32 tensor [batch, length], got ${fmtShape(inputIds.shape)} ${inputIds.dtype}`);
  }
  const d = model.generationConfig;
  const suppressIds = o.suppressTokens ?? d.suppressTokens ?? [], beginSuppress = o.beginSuppressTokens ?? d.beginSuppressTokens ?? [];
  const maxNew = o.maxNewTokens ?? 20, minNew = o.minNewTokens ?? 0;
  const processors = { noRepeat: o.noRepeatNgramSize ?? d.noRepeatNgramSize, forcedBos: o.forcedBosTokenId ?? d.forcedBosTokenId, forcedEos: o.forcedEosTokenId ?? d.forcedEosTokenId };
  const eosOpt = o.eosTokenId ?? d.eosTokenId;
  const eos = eosOpt === undefined ? [] : Array.isArray(eosOpt) ? eosOpt : [eosOpt];
  const pad = o.padTokenId ?? d.padTokenId ?? eos[0] ?? 0;
  const [B, T] = inputIds.shape as [number, number];
  // Each batch row is repeated `repeat` times in a row (beam search), like HF's repeat_interleave.
  const rows = (flat: ArrayLike<number>) => Array.from({ length: B * repeat }, (_, i) => Array.from(flat).slice(Math.floor(i / repeat) * T, (Math.floor(i / repeat) + 1) * T));
  const order = Int32Array.from({ length: B * repeat }, (_, i) => Math.floor(i / repeat));
  const mask = o.attentionMask ?? null;
  if (mask && features) throw new Error('generate: attentionMask is for token ids; Whisper\'s encoder attends to every frame of inputFeatures (pad the audio instead)');
  if (mask && (mask.ndim !== 2 || mask.shape[0] !== B || mask.shape[1] !== T)) throw new Error(`generate: attentionMask must be [${B}, ${T}], got ${fmtShape(mask.shape)}`);
  if (model.isEncoderDecoder) {
    const start = o.decoderStartTokenId ?? d.decoderStartTokenId;
    if (start === undefined) throw new Error('generate: the model has no decoder_start_token_id; pass decoderStartTokenId');
    const { tokens: init, detectAt } = whisperInitTokens(d, start, o);
    checkDecoderPositions(model, init.length, maxNew);
    const idx = tensor(order, { dtype: 'int32', device: inputIds.device });
    // Copies (repeated per beam): the session frees them, never the caller's tensors.
    const enc = noGrad(() => indexSelect(inputIds, 0, idx));
    const encMask = mask && noGrad(() => indexSelect(mask, 0, idx));
    idx.dispose();
    const session = new Session(model, features ? { inputFeatures: enc } : { inputIds: enc }, encMask, null, true);
    let prompt = Array.from({ length: B * repeat }, () => [...init]);
    if (detectAt >= 0) {
      try {
        prompt = await detectLanguage(session, prompt, detectAt, Object.values(d.langToId!));
      } catch (e) {
        session.dispose();
        throw e;
      }
    }
    return { maxNew, minNew, eos, pad, prompt: prompt as number[][], session, decoderPromptLen: init.length, suppress: suppressIds, beginSuppress, ...processors };
  }
  if (features) throw new Error(`generate: inputFeatures are for encoder-decoder models (Whisper); ${model.constructor.name} takes token ids`);
  const maskRows = mask ? rows(await mask.data()) : null;
  return { maxNew, minNew, eos, pad, prompt: rows(await inputIds.data()), session: new Session(model, { inputIds }, null, maskRows, false), decoderPromptLen: T, suppress: suppressIds, beginSuppress, ...processors };
}

/** The decoder's prompt plus the new tokens must fit its positions (Whisper: max_target_positions). */
function checkDecoderPositions(model: PreTrainedModel, promptLen: number, maxNew: number): void {
  const limit = model.positionLimit();
  // The last new token is never fed back.
  if (limit && promptLen + maxNew - 1 > limit.value) {
    throw new Error(`generate: a decoder prompt of ${promptLen} tokens plus maxNewTokens = ${maxNew} needs ${promptLen + maxNew - 1} positions, more than the model's ${limit.key} = ${limit.value} (use maxNewTokens <= ${limit.value - promptLen + 1})`);
  }
}

/** transformers' Whisper detect_language: the most likely language token after the start token, per row. */
async function detectLanguage(session: Session, prompt: (number | null)[][], at: number, languageIds: number[]): Promise<number[][]> {
  const logits = await session.peek(prompt.map((p) => p.slice(0, at) as number[]));
  return prompt.map((p, i) => {
    const row = logits[i]!;
    const best = languageIds.reduce((a, b) => (row[b]! > row[a]! ? b : a));
    return p.map((t, j) => (j === at ? best : t!));
  });
}

/**
 * Applies the processors HF applies before choosing, in HF's order: repetition penalty, no repeated n-grams, minimum
 * length, forced first / last token, suppressed tokens.
 */
function processRow(scores: Float64Array, seq: number[], newCount: number, o: GenerateOptions, r: Resolved): void {
  if (o.repetitionPenalty !== undefined) applyRepetitionPenalty(scores, seq, o.repetitionPenalty);
  if (r.noRepeat !== undefined) suppress(scores, noRepeatNgramTokens(seq, r.noRepeat));
  if (newCount < r.minNew) suppress(scores, r.eos);
  if (r.forcedBos !== undefined && newCount === 0) forceToken(scores, r.forcedBos);
  if (r.forcedEos !== undefined && newCount === r.maxNew - 1) forceToken(scores, r.forcedEos);
  suppress(scores, r.suppress);
  if (newCount === 0) suppress(scores, r.beginSuppress);
}

async function greedyOrSample(model: PreTrainedModel, input: GenerateInput, o: GenerateOptions): Promise<GenerateOutput> {
  const r = await prepare(model, input, o, 1);
  const gen = o.generator ?? (o.seed !== undefined ? new Generator(o.seed) : defaultGenerator);
  const seqs = r.prompt.map((p) => [...p]);
  const finished = seqs.map(() => false);
  const scores: Float32Array[] = [];
  try {
    let logits = await r.session.step(seqs);
    for (let n = 0; n < r.maxNew; n++) {
      const V = logits[0]!.length;
      const stepScores = new Float32Array(seqs.length * V);
      const chosen = logits.map((row, i) => {
        // A NaN logit means the model's output is broken: greedy must not pick a token from it (torch's argmax would
        // pick the NaN); sampling raises torch.multinomial's error below.
        const nan = o.doSample ? -1 : firstNaN(row);
        if (nan >= 0) throw new Error(`generate: the logits of row ${i} at step ${n + 1} hold NaN (token ${nan}): the model's weights or inputs are not finite`);
        processRow(row, seqs[i]!, n, o, r);
        let tok: number;
        if (o.doSample) {
          warp(row, o);
          const probs = softmax(row);
          checkProbabilities(probs, row, `row ${i}, step ${n + 1}`);
          tok = sampleIndex(probs, gen.uniform(1)[0]!);
        } else {
          tok = argmax(row);
        }
        stepScores.set(row, i * V);
        return finished[i] ? r.pad : tok;
      });
      scores.push(stepScores);
      chosen.forEach((t, i) => {
        seqs[i]!.push(t);
        if (r.eos.includes(t)) finished[i] = true;
      });
      o.onToken?.(chosen);
      if (finished.every(Boolean) || n === r.maxNew - 1) break;
      logits = await r.session.step(chosen.map((t) => [t]));
    }
  } finally {
    r.session.dispose();
  }
  return { sequences: tensor(Int32Array.from(seqs.flat()), { shape: [seqs.length, seqs[0]!.length], device: inputTensor(input).device }), scores };
}

/** The finished hypotheses of one batch entry (HF's BeamHypotheses). */
class Hypotheses {
  readonly items: { score: number; tokens: number[] }[] = [];
  private worst = Infinity;
  constructor(private readonly numBeams: number, private readonly lengthPenalty: number, private readonly early: boolean | 'never') {}

  add(tokens: number[], sumLogprobs: number, generatedLen: number): void {
    const score = sumLogprobs / generatedLen ** this.lengthPenalty;
    if (this.items.length < this.numBeams || score > this.worst) {
      this.items.push({ score, tokens });
      if (this.items.length > this.numBeams) {
        const worstIdx = this.items.reduce((w, h, i) => (h.score < this.items[w]!.score ? i : w), 0);
        this.items.splice(worstIdx, 1);
      }
      this.worst = Math.min(...this.items.map((h) => h.score));
    }
  }

  isDone(bestSumLogprobs: number, curLen: number, decoderPromptLen: number, maxLength: number): boolean {
    if (this.items.length < this.numBeams) return false;
    if (this.early === true) return true;
    const len = this.early === 'never' && this.lengthPenalty > 0 ? maxLength - decoderPromptLen : curLen - decoderPromptLen;
    return this.worst >= bestSumLogprobs / len ** this.lengthPenalty;
  }
}

async function beamSearch(model: PreTrainedModel, input: GenerateInput, o: GenerateOptions): Promise<GenerateOutput> {
  const nb = o.numBeams!;
  const B = inputTensor(input).shape[0]!;
  const r = await prepare(model, input, o, nb);
  const lp = o.lengthPenalty ?? 1;
  const early = o.earlyStopping ?? false;
  const maxLength = r.prompt[0]!.length + r.maxNew;
  let seqs = r.prompt.map((p) => [...p]);
  let beamScores: number[] = seqs.map((_, i) => (i % nb === 0 ? 0 : -1e9)); // only the first beam is live at the start
  const hyps = Array.from({ length: B }, () => new Hypotheses(nb, lp, early));
  const done = hyps.map(() => false);
  const keepCount = Math.max(2, 1 + r.eos.length) * nb;
  try {
    let logits = await r.session.step(seqs);
    for (;;) {
      const curLen = seqs[0]!.length + 1;
      const V = logits[0]!.length;
      const cand = logits.map((row, i) => {
        const bad = badScores(row);
        if (bad !== null) throw new Error(`generate: beam search: the scores contain either inf or nan (beam ${i}, step ${curLen - r.prompt[0]!.length}: ${bad})`);
        const lsm = logSoftmax(row);
        processRow(lsm, seqs[i]!, curLen - 1 - r.decoderPromptLen, o, r);
        return lsm.map((s) => s + beamScores[i]!);
      });
      const nextSeqs: number[][] = [], nextScores: number[] = [], order: number[] = [], nextTokens: number[] = [];
      for (let b = 0; b < B; b++) {
        if (done[b]) {
          for (let k = 0; k < nb; k++) { nextSeqs.push([...seqs[b * nb]!, r.pad]); nextScores.push(0); order.push(b * nb); nextTokens.push(r.pad); }
          continue;
        }
        // The best keepCount (beam, token) pairs over all of this entry's beams, best first.
        const flat: { s: number; beam: number; tok: number }[] = [];
        for (let k = 0; k < nb; k++) cand[b * nb + k]!.forEach((s, tok) => { if (s > -Infinity) flat.push({ s, beam: k, tok }); });
        flat.sort((x, y) => y.s - x.s || x.beam * V + x.tok - (y.beam * V + y.tok));
        const top = flat.slice(0, keepCount);
        let filled = 0;
        for (let rank = 0; rank < top.length && filled < nb; rank++) {
          const c = top[rank]!;
          const src = b * nb + c.beam;
          if (r.eos.includes(c.tok)) {
            if (rank < nb) hyps[b]!.add([...seqs[src]!], c.s, curLen - r.decoderPromptLen);
            continue;
          }
          nextSeqs.push([...seqs[src]!, c.tok]); nextScores.push(c.s); order.push(src); nextTokens.push(c.tok);
          filled++;
        }
        if (filled < nb) throw new Error(`generate: beam search found only ${filled} continuations for ${nb} beams (too few tokens allowed)`);
        done[b] = done[b] || hyps[b]!.isDone(top[0]!.s, curLen, r.decoderPromptLen, maxLength);
      }
      seqs = nextSeqs;
      beamScores = nextScores;
      r.session.reorder(order);
      if (done.every(Boolean) || seqs[0]!.length >= maxLength) break;
      logits = await r.session.step(nextTokens.map((t) => [t]));
    }
  } finally {
    r.session.dispose();
  }
  // Beams still running at the end compete with the finished hypotheses.
  const best = hyps.map((h, b) => {
    if (!done[b]) for (let k = 0; k < nb; k++) h.add(seqs[b * nb + k]!, beamScores[b * nb + k]!, seqs[b * nb + k]!.length - r.decoderPromptLen);
    return h.items.reduce((x, y) => (y.score > x.score ? y : x));
  });
  const width = Math.min(Math.max(...best.map((h) => h.tokens.length)) + 1, maxLength);
  const out = new Int32Array(B * width).fill(r.pad);
  best.forEach((h, b) => {
    out.set(h.tokens, b * width);
    if (h.tokens.length < width && r.eos.length) out[b * width + h.tokens.length] = r.eos[0]!;
  });
  return { sequences: tensor(out, { shape: [B, width], device: inputTensor(input).device }), scores: [], sequencesScores: best.map((h) => h.score) };
}

const inputTensor = (input: GenerateInput): Tensor => (input instanceof Tensor ? input : input.inputFeatures);

const isEncoderInputs = (input: unknown): input is EncoderInputs => typeof input === 'object' && input !== null && !Array.isArray(input) && !(input instanceof Tensor) && 'inputFeatures' in input;

/** Checks { inputFeatures } (token ids and the options are checked by checkGenerateOptions): a float [B, nMels, frames] tensor. */
function checkEncoderInputs(input: unknown): void {
  if (!isEncoderInputs(input)) return;
  const f: unknown = input.inputFeatures;
  if (!(f instanceof Tensor)) throw new Error('generate: inputFeatures must be a float tensor [batch, mel bins, frames]');
  if (f.ndim !== 3 || f.shape.some((n) => n === 0) || !['float32', 'float16', 'bfloat16', 'float64'].includes(f.dtype)) {
    throw new Error(`generate: inputFeatures must be a non-empty float tensor [batch, mel bins, frames], got ${fmtShape(f.shape)} ${f.dtype}`);
  }
}

/** Whisper's options: token id lists and strings (their values are checked against the generation config later). */
function checkWhisperOptions(opts: GenerateOptions): void {
  for (const name of ['suppressTokens', 'beginSuppressTokens'] as const) {
    const v: unknown = opts[name];
    if (v !== undefined && (!Array.isArray(v) || !v.every((t) => Number.isSafeInteger(t) && (t as number) >= 0))) {
      throw new Error(`generate: ${name} must be an array of token ids, got ${JSON.stringify(v)}`);
    }
  }
  for (const name of ['language', 'task'] as const) {
    if (opts[name] !== undefined && typeof opts[name] !== 'string') throw new Error(`generate: ${name} must be a string, got ${JSON.stringify(opts[name])}`);
  }
}

/** Generates and returns sequences with the per-step scores (greedy, sampling) or sequence scores (beams). */
export function generateWithScores(model: PreTrainedModel, input: GenerateInput, opts: GenerateOptions = {}): Promise<GenerateOutput> {
  checkEncoderInputs(input);
  checkWhisperOptions(opts);
  checkGenerateOptions(model, isEncoderInputs(input) ? input.inputFeatures : input, opts as Record<string, unknown>); // before any work: ranges, empty prompt, positions
  if (opts.assistantModel) {
    if (!(input instanceof Tensor)) throw new Error('generate: assisted generation takes token ids, not inputFeatures');
    return assistedGenerate(model, opts.assistantModel, input, opts);
  }
  const nb = opts.numBeams ?? 1;
  if (nb > 1 && opts.doSample) throw new Error('generate: beam sampling is not supported; use numBeams or doSample');
  if (opts.onToken && nb > 1) throw new Error('generate: streaming works with greedy decoding and sampling, not beam search');
  return nb > 1 ? beamSearch(model, input, opts) : greedyOrSample(model, input, opts);
}

/**
 * HF's model.generate: int32 [B, L] sequences, the prompt (or the decoder prompt: start token, Whisper's language,
 * task and no-timestamps tokens) first. Whisper: generate(model, { inputFeatures }, { language: 'en' }).
 */
export async function generate(model: PreTrainedModel, input: GenerateInput, opts: GenerateOptions = {}): Promise<Tensor> {
  return (await generateWithScores(model, input, opts)).sequences;
}

/**
 * Streams generation as an async iterator of each step's new tokens (one per row), e.g. to print text
 * as it comes: for await (const [t] of streamGenerate(model, ids)) process.stdout.write(tok.decode([t])).
 */
export async function* streamGenerate(model: PreTrainedModel, input: GenerateInput, opts: GenerateOptions = {}): AsyncGenerator<number[]> {
  const queue: number[][] = [];
  let wake: (() => void) | null = null;
  let finished = false;
  let failure: unknown = null;
  const run = generate(model, input, { ...opts, onToken: (t) => { queue.push(t); wake?.(); } })
    .then((s) => s.dispose(), (e: unknown) => { failure = e; })
    .finally(() => { finished = true; wake?.(); });
  while (!finished || queue.length) {
    if (queue.length) yield queue.shift()!;
    else await new Promise<void>((res) => { wake = res; });
    wake = null;
  }
  await run;
  if (failure) throw failure;
}

declare module '../models/base.js' {
  interface PreTrainedModel {
    /** HF's generate(): greedy, sampling or beam search; returns int32 sequences [B, L]. */
    generate(input: GenerateInput, opts?: GenerateOptions): Promise<Tensor>;
  }
}

PreTrainedModel.prototype.generate = function (input, opts) {
  return generate(this, input, opts);
};

// Assisted generation (speculative decoding, greedy) as Hugging Face's assistant_model: a draft model proposes tokens,
// the target checks them all in one pass and keeps the longest prefix it agrees with, so its greedy output is unchanged.

import { noGrad } from '../autograd/engine.js';
import { slice } from '../autograd/ops/movement.js';
import { tensor } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import { fmtShape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KVCache } from '../nn/attention.js';
import { PreTrainedModel } from '../models/base.js';
import { checkGenerateOptions } from './check.js';
import { applyRepetitionPenalty, argmax, firstNaN, suppress } from './logits.js';

export interface AssistedGenerateOptions {
  /** New tokens to generate at most (default 20). */
  maxNewTokens?: number;
  /** End-of-sequence tokens are forbidden before this many new tokens. */
  minNewTokens?: number;
  repetitionPenalty?: number;
  eosTokenId?: number | number[];
  /** Tokens the draft proposes per round (HF's num_assistant_tokens, default 20). */
  numAssistantTokens?: number;
  /** 'constant' (HF's default) keeps numAssistantTokens; 'heuristic' adds 2 after a fully accepted round, else takes 1 off. */
  numAssistantTokensSchedule?: 'constant' | 'heuristic';
  /** Streaming: called with each new token (as a one-row array, like generate's onToken). */
  onToken?: (tokens: number[]) => void;
}

export interface AssistedGenerateOutput {
  /** int32 [1, L]: the prompt followed by the generated tokens, equal to the target's greedy output. */
  sequences: Tensor;
  /** The target's processed scores for each generated token, one [1, V] array per token (as generateWithScores). */
  scores: Float32Array[];
  /** Forward passes of the target model; plain greedy decoding needs one per new token. */
  targetForwardPasses: number;
  draftForwardPasses: number;
  /** Tokens the draft proposed, and how many of them the target accepted. */
  proposedTokens: number;
  acceptedTokens: number;
  /** acceptedTokens / proposedTokens (0 when nothing was proposed). */
  acceptanceRate: number;
}

const NAME = 'assistedGenerate';

function vocabSize(model: PreTrainedModel): number | null {
  const v = (model.config as { vocab_size?: unknown }).vocab_size;
  return typeof v === 'number' ? v : null;
}

function checkOptions(target: PreTrainedModel, draft: unknown, inputIds: Tensor, o: AssistedGenerateOptions): void {
  if (!(draft instanceof PreTrainedModel)) throw new Error(`${NAME}: assistantModel must be a model (e.g. from AutoModelForCausalLM.fromPretrained), got ${typeof draft}`);
  checkGenerateOptions(target, inputIds, o as Record<string, unknown>);
  try {
    checkGenerateOptions(draft, inputIds, o as Record<string, unknown>);
  } catch (e) {
    throw new Error(`${NAME}: assistantModel: ${(e as Error).message}`);
  }
  if (inputIds.ndim !== 2 || !['int32', 'uint8'].includes(inputIds.dtype)) {
    throw new Error(`${NAME}: inputIds must be an int32 tensor [batch, length], got ${fmtShape(inputIds.shape)} ${inputIds.dtype}`);
  }
  if (inputIds.shape[0] !== 1) throw new Error(`${NAME}: assisted generation takes a batch of 1, got inputIds ${fmtShape(inputIds.shape)}`);
  if (target.isEncoderDecoder || draft.isEncoderDecoder) throw new Error(`${NAME}: the model and the assistantModel must be decoder-only (causal LM) models`);
  const vt = vocabSize(target), vd = vocabSize(draft);
  if (vt !== null && vd !== null && vt !== vd) {
    throw new Error(`${NAME}: the assistantModel's vocab_size ${vd} differs from the model's ${vt}; the draft must share the target's tokenizer`);
  }
  // Through generate({ assistantModel }) the other decoding options arrive too: only greedy, unpadded decoding is built.
  const rest = o as Record<string, unknown>;
  if (rest['doSample']) throw new Error(`${NAME}: doSample is not supported with an assistantModel (assisted generation here is greedy)`);
  if (rest['numBeams'] !== undefined && rest['numBeams'] !== 1) throw new Error(`${NAME}: numBeams > 1 is not supported with an assistantModel`);
  if (rest['attentionMask']) throw new Error(`${NAME}: attentionMask is not supported with an assistantModel (batch size 1 needs no padding)`);
  const k = o.numAssistantTokens;
  if (k !== undefined && (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 1)) throw new Error(`${NAME}: numAssistantTokens must be a positive integer, got ${String(k)}`);
  const s = o.numAssistantTokensSchedule;
  if (s !== undefined && s !== 'constant' && s !== 'heuristic') throw new Error(`${NAME}: numAssistantTokensSchedule must be 'constant' or 'heuristic', got ${JSON.stringify(s)}`);
}

/** Feeds tokens to the model with its cache and returns the logits of the last `last` positions, one array each. */
async function run(model: PreTrainedModel, caches: KVCache[], tokens: number[], last: number, device: string): Promise<Float64Array[]> {
  const ids = tensor(Int32Array.from(tokens), { shape: [1, tokens.length], device });
  const logits = noGrad(() => tidy(() => slice(model.forward({ inputIds: ids, pastKeyValues: caches }).logits, 1, tokens.length - last, tokens.length)));
  ids.dispose();
  const data = await logits.data();
  logits.dispose();
  const V = data.length / last;
  return Array.from({ length: last }, (_, i) => Float64Array.from(data.subarray(i * V, (i + 1) * V)));
}

/**
 * Greedy decoding of `target` sped up by a draft model sharing its vocabulary (transformers' generate with
 * assistant_model): each round the draft proposes up to numAssistantTokens tokens, the target scores them all in one
 * forward pass, keeps those equal to its own greedy choice plus one token of its own, and both KV caches are cropped
 * back to the kept length. The tokens equal target.generate(inputIds, { maxNewTokens }); batch size 1.
 */
export async function assistedGenerate(target: PreTrainedModel, draft: PreTrainedModel, inputIds: Tensor, opts: AssistedGenerateOptions = {}): Promise<AssistedGenerateOutput> {
  checkOptions(target, draft, inputIds, opts);
  const maxNew = opts.maxNewTokens ?? 20, minNew = opts.minNewTokens ?? 0;
  const eosOpt = opts.eosTokenId ?? target.generationConfig.eosTokenId;
  const eos = eosOpt === undefined ? [] : Array.isArray(eosOpt) ? eosOpt : [eosOpt];
  const heuristic = opts.numAssistantTokensSchedule === 'heuristic';
  let k = opts.numAssistantTokens ?? 20;
  const device = inputIds.device;
  const seq = Array.from(await inputIds.data());
  const promptLen = seq.length;
  // The processors generate() applies before its argmax; the draft gets them too, so it guesses what the target picks.
  const processRow = (row: Float64Array, prefix: readonly number[], newCount: number): void => {
    if (opts.repetitionPenalty !== undefined) applyRepetitionPenalty(row, prefix, opts.repetitionPenalty);
    if (newCount < minNew) suppress(row, eos);
  };
  const targetCache = target.newCache(), draftCache = draft.newCache();
  const stats = { targetForwardPasses: 0, draftForwardPasses: 0, proposedTokens: 0, acceptedTokens: 0 };
  const scores: Float32Array[] = [];
  // A backstop for models whose config names no vocab_size: the logits' widths must agree.
  let draftWidth: number | null = null;
  try {
    for (let done = false; !done;) {
      const newCount = seq.length - promptLen;
      // The target adds one token of its own each round, so proposals stop one short of maxNewTokens.
      const want = Math.min(k, maxNew - newCount - 1);
      const cand: number[] = [];
      const work = [...seq];
      while (cand.length < want) {
        const [row] = await run(draft, draftCache, work.slice(draftCache[0]?.length ?? 0), 1, device);
        stats.draftForwardPasses++;
        draftWidth = row!.length;
        processRow(row!, work, newCount + cand.length);
        const t = argmax(row!);
        cand.push(t);
        work.push(t);
        if (eos.includes(t)) break;
      }
      // rows[i] is the target's prediction after seq + cand[0, i): one pass checks every proposal and gives one more token.
      const rows = await run(target, targetCache, work.slice(targetCache[0]?.length ?? 0), cand.length + 1, device);
      stats.targetForwardPasses++;
      if (draftWidth !== null && rows[0]!.length !== draftWidth) {
        throw new Error(`${NAME}: the assistantModel gives ${draftWidth} logits per token but the model ${rows[0]!.length}; the draft must share the target's tokenizer`);
      }
      let matched = 0;
      for (let i = 0; i <= cand.length; i++) {
        const row = rows[i]!;
        const nan = firstNaN(row);
        if (nan >= 0) throw new Error(`${NAME}: the model's logits at step ${seq.length - promptLen + 1} hold NaN (token ${nan}): its weights or inputs are not finite`);
        processRow(row, seq, seq.length - promptLen);
        scores.push(Float32Array.from(row));
        const t = argmax(row);
        seq.push(t);
        opts.onToken?.([t]);
        if (eos.includes(t) || seq.length - promptLen >= maxNew) done = true;
        if (i < cand.length && cand[i] === t) matched++;
        if (done || i === cand.length || cand[i] !== t) break;
      }
      stats.proposedTokens += cand.length;
      stats.acceptedTokens += matched;
      if (heuristic && cand.length) k = matched === cand.length ? k + 2 : Math.max(1, k - 1);
      // Both caches keep only what the target accepted; its own last token is fed next round.
      for (const c of targetCache) c.crop(seq.length - 1);
      for (const c of draftCache) c.crop(seq.length - 1);
    }
  } finally {
    for (const c of [...targetCache, ...draftCache]) c.dispose();
  }
  return {
    sequences: tensor(Int32Array.from(seq), { shape: [1, seq.length], device }),
    scores, ...stats, acceptanceRate: stats.proposedTokens ? stats.acceptedTokens / stats.proposedTokens : 0,
  };
}

// Checks made before generation starts: option ranges (Hugging Face's), the prompt, and the model's position limit.

import { fmtShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import type { PreTrainedModel } from '../models/base.js';

/** A numeric generation option: what it must be (for messages) and the test. */
export interface NumberRule {
  /** e.g. 'in (0, 1]' or 'a positive integer', read after "must be". */
  want: string;
  integer: boolean;
  ok: (v: number) => boolean;
}

const int = (min: number, want: string): NumberRule => ({ want, integer: true, ok: (v) => Number.isSafeInteger(v) && v >= min });

/** The numeric options of generate() and their ranges, as transformers' GenerationConfig and logits processors check them. */
export const GENERATION_NUMBER_RULES = {
  maxNewTokens: int(1, 'a positive integer'),
  minNewTokens: int(0, 'a non-negative integer'),
  noRepeatNgramSize: int(1, 'a positive integer'),
  numBeams: int(1, 'a positive integer'),
  topK: int(0, 'a non-negative integer'),
  seed: int(0, 'a non-negative integer'),
  temperature: { want: '> 0', integer: false, ok: (v: number) => Number.isFinite(v) && v > 0 },
  topP: { want: 'in (0, 1]', integer: false, ok: (v: number) => v > 0 && v <= 1 },
  minP: { want: 'in [0, 1]', integer: false, ok: (v: number) => v >= 0 && v <= 1 },
  repetitionPenalty: { want: '> 0', integer: false, ok: (v: number) => Number.isFinite(v) && v > 0 },
  lengthPenalty: { want: 'a finite number', integer: false, ok: (v: number) => Number.isFinite(v) },
} satisfies Record<string, NumberRule>;

export type GenerationNumberOption = keyof typeof GENERATION_NUMBER_RULES;

const describe = (v: unknown): string => (typeof v === 'number' ? String(v) : Array.isArray(v) ? 'an array' : typeof v === 'object' && v !== null ? 'an object' : JSON.stringify(v) ?? String(v));

function tokenId(name: string, v: unknown): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) throw new Error(`generate: ${name} must be a non-negative integer token id, got ${describe(v)}`);
}

/**
 * Everything generate() can check before running the model: each option's type and range (errors name the
 * option), a non-empty prompt, and that the prompt plus maxNewTokens fits the model's positions.
 */
export function checkGenerateOptions(model: PreTrainedModel, inputIds: Tensor, opts: Record<string, unknown>): void {
  if (!(inputIds instanceof Tensor)) throw new Error(`generate: inputIds must be an int32 tensor [batch, length], got ${describe(inputIds)} (tensor(ids, { dtype: 'int32' }) makes one)`);
  const mask = opts['attentionMask'];
  if (mask !== undefined && mask !== null && !(mask instanceof Tensor)) throw new Error(`generate: attentionMask must be a tensor [batch, length] or null, got ${describe(mask)}`);
  for (const [name, rule] of Object.entries(GENERATION_NUMBER_RULES) as [GenerationNumberOption, NumberRule][]) {
    const v = opts[name];
    if (v !== undefined && (typeof v !== 'number' || !rule.ok(v))) throw new Error(`generate: ${name} must be ${rule.want}, got ${describe(v)}`);
  }
  for (const name of ['doSample'] as const) {
    if (opts[name] !== undefined && typeof opts[name] !== 'boolean') throw new Error(`generate: ${name} must be true or false, got ${describe(opts[name])}`);
  }
  const early = opts['earlyStopping'];
  if (early !== undefined && typeof early !== 'boolean' && early !== 'never') throw new Error(`generate: earlyStopping must be true, false or 'never', got ${describe(early)}`);
  for (const name of ['padTokenId', 'decoderStartTokenId', 'forcedBosTokenId', 'forcedEosTokenId'] as const) tokenId(name, opts[name]);
  const eos = opts['eosTokenId'];
  if (Array.isArray(eos)) eos.forEach((e, i) => tokenId(`eosTokenId[${i}]`, e));
  else tokenId('eosTokenId', eos);
  if (opts['onToken'] !== undefined && typeof opts['onToken'] !== 'function') throw new Error(`generate: onToken must be a function, got ${describe(opts['onToken'])}`);

  if (inputIds.ndim === 2 && (inputIds.shape[0] === 0 || inputIds.shape[1] === 0)) {
    throw new Error(`generate: the prompt is empty (inputIds is ${fmtShape(inputIds.shape)}); give at least one token per row (e.g. the BOS token)`);
  }
  const limit = model.positionLimit();
  if (limit && !model.isEncoderDecoder && inputIds.ndim === 2) {
    const T = inputIds.shape[1]!, maxNew = (opts['maxNewTokens'] as number | undefined) ?? 20;
    // The last new token is never fed back, so the model sees T + maxNew - 1 positions.
    const needed = T + maxNew - 1;
    if (needed > limit.value) {
      const room = limit.value - T + 1;
      throw new Error(`generate: a prompt of ${T} tokens plus maxNewTokens = ${maxNew} needs ${needed} positions, more than the model's ${limit.key} = ${limit.value}`
        + (room >= 1 ? ` (use maxNewTokens <= ${room})` : ' (shorten the prompt)'));
    }
  }
}

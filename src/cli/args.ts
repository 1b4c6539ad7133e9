// Strict command-line parsing for `attend`: --key value and --key=value alike, negative numbers as values, and
// numbers checked against the ranges the library checks (Hugging Face's for generation), every error naming the option.

import { GENERATION_NUMBER_RULES, type GenerationNumberOption, type NumberRule } from '../generation/check.js';
import { isDecimal } from '../recipes/recipe.js';

export interface ParsedArgs {
  /** Option values by name (without the dashes): strings, or true for flags; absent when not given. */
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses `args` against `options` (name -> 'string' | 'boolean'). A string option takes the next argument whatever it
 * looks like (so `--max-new-tokens -5` reaches the range check) or its `=value`; a flag takes no value, or `=true` /
 * `=false`. `--` ends the options. `command` prefixes every error.
 */
export function parseOptions(args: readonly string[], options: Record<string, 'string' | 'boolean'>, command: string, allowPositionals = true): ParsedArgs {
  const values: ParsedArgs['values'] = {};
  const positionals: string[] = [];
  const known = (): string => Object.keys(options).map((k) => `--${k}`).join(', ');
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      if (!allowPositionals && i + 1 < args.length) throw new Error(`${command}: unexpected argument '${args[i + 1]}'`);
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-' || isDecimal(arg)) {
      if (!allowPositionals) throw new Error(`${command}: unexpected argument '${arg}'`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = (eq < 0 ? arg : arg.slice(0, eq)).replace(/^--?/, '');
    const type = Object.hasOwn(options, name) ? options[name] : undefined;
    if (type === undefined || !arg.startsWith('--')) throw new Error(`${command}: unknown option ${eq < 0 ? arg : arg.slice(0, eq)} (options: ${known()})`);
    if (type === 'boolean') {
      const v = eq < 0 ? 'true' : arg.slice(eq + 1);
      if (v !== 'true' && v !== 'false') throw new Error(`${command}: --${name} is a flag and takes no value (or =true / =false), got '${v}'`);
      values[name] = v === 'true';
    } else if (eq >= 0) {
      values[name] = arg.slice(eq + 1);
    } else {
      const v = args[i + 1];
      if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new Error(`${command}: --${name} needs a value`);
      values[name] = v;
      i++;
    }
  }
  return { values, positionals };
}

/** A string option's value, or undefined; a flag given where a value belongs is refused. */
export function stringOption(values: ParsedArgs['values'], name: string): string | undefined {
  const v = values[name];
  if (typeof v === 'boolean') throw new Error(`--${name} needs a value`);
  return v;
}

/** A numeric option checked against `rule`: `--top-p must be in (0, 1], got '2'`. */
export function numberOption(values: ParsedArgs['values'], name: string, rule: NumberRule): number | undefined {
  const raw = stringOption(values, name);
  if (raw === undefined) return undefined;
  const n = isDecimal(raw) ? Number(raw) : Number.NaN;
  if (!rule.ok(n) || (rule.integer && !Number.isInteger(n))) throw new Error(`--${name} must be ${rule.want}, got '${raw}'`);
  return n;
}

/** A non-negative (or positive, with min 1) integer option such as --steps or --seed. */
export function intOption(values: ParsedArgs['values'], name: string, min = 0): number | undefined {
  return numberOption(values, name, { want: min === 1 ? 'a positive integer' : `an integer >= ${min}`, integer: true, ok: (v) => Number.isSafeInteger(v) && v >= min });
}

/** A generation option (--top-p, --num-beams, ...) with the range generate() enforces. */
export function generationOption(values: ParsedArgs['values'], name: string, option: GenerationNumberOption): number | undefined {
  return numberOption(values, name, GENERATION_NUMBER_RULES[option]);
}

/** `--key=value` arguments as `--key value`, for parsers that only read the spaced form (the recipes' options). */
export function splitEquals(args: readonly string[]): string[] {
  const end = args.indexOf('--');
  return args.flatMap((a, i) => {
    const eq = a.indexOf('=');
    return (end < 0 || i < end) && a.startsWith('--') && eq > 2 ? [a.slice(0, eq), a.slice(eq + 1)] : [a];
  });
}

// What a recipe is: one chapter of the book as a training job with defaults for this machine, a tiny smoke
// configuration for tests, and final metrics saved as results.json.

import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type OptionValue = number | string | boolean;
export type RecipeOptions = Record<string, OptionValue>;

export interface RecipeContext {
  /** Where checkpoints, metrics.jsonl, pictures and results.json go. */
  outDir: string;
  /** Continue from the checkpoint in outDir. */
  resume: boolean;
  device?: string;
  /** Progress and summaries (stderr by default; tests collect it). */
  log: (line: string) => void;
  /** Skip batches with a non-finite loss or gradient instead of stopping (the Trainer's skipNonfinite). */
  skipNonfinite?: boolean;
}

export interface Recipe<O extends RecipeOptions = RecipeOptions> {
  name: string;
  summary: string;
  /** The book chapter it makes real. */
  chapter: string;
  defaults: O;
  /** Overrides for `--smoke`: a configuration that finishes in seconds. */
  smoke: Partial<O>;
  help: Record<keyof O, string>;
  /** Runs the job and returns its final metrics (written to results.json by the caller). */
  run(opts: O, ctx: RecipeContext): Promise<Record<string, unknown>>;
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The error a recipe's option check raises: "<recipe>: --<option> must be <want>, got <value>". */
export function optionError<O extends RecipeOptions>(recipe: string, opts: O): (key: keyof O & string, want: string) => never {
  return (key, want) => {
    throw new Error(`${recipe}: --${kebab(key)} must be ${want}, got ${String(opts[key])}`);
  };
}

/** Decimal numbers only: no hex, no empty string or whitespace, no Infinity, which Number() would accept. */
export function isDecimal(s: string): boolean {
  return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s);
}

/**
 * Reads `--key value` pairs (and `--flag` for booleans) against a recipe's defaults: each value takes the type
 * of its default; unknown keys and bad values are errors that list what the recipe accepts.
 */
export function parseRecipeArgs<O extends RecipeOptions>(recipe: Recipe<O>, args: readonly string[], smoke: boolean): O {
  const opts: RecipeOptions = { ...recipe.defaults, ...(smoke ? recipe.smoke : {}) };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new Error(`${recipe.name}: unexpected argument '${arg}' (options are --key value)`);
    const key = camel(arg.slice(2));
    if (!Object.hasOwn(recipe.defaults, key)) { // not `in`: --to-string would find Object.prototype.toString
      throw new Error(`${recipe.name}: unknown option ${arg}; options: ${Object.keys(recipe.defaults).map((k) => `--${kebab(k)}`).join(', ')}`);
    }
    const dflt = recipe.defaults[key]!;
    if (typeof dflt === 'boolean') {
      const next = args[i + 1];
      if (next === 'true' || next === 'false') { opts[key] = next === 'true'; i++; } else opts[key] = true;
      continue;
    }
    const raw = args[++i];
    if (raw === undefined) throw new Error(`${recipe.name}: ${arg} needs a value`);
    if (typeof dflt === 'number') {
      if (!isDecimal(raw)) throw new Error(`${recipe.name}: ${arg} must be a number, got '${raw}'`);
      opts[key] = Number(raw);
    } else {
      opts[key] = raw;
    }
  }
  return opts as O;
}

export function recipeUsage(recipe: Recipe): string {
  const rows = Object.entries(recipe.defaults).map(([k, v]) => `  --${kebab(k).padEnd(22)} ${String(recipe.help[k] ?? '')} (default ${JSON.stringify(v)})`);
  return `attend train ${recipe.name} [--key value ...] [--smoke] [--out DIR] [--resume] [--device D] [--skip-nonfinite]

${recipe.summary}
Chapter: ${recipe.chapter}

${rows.join('\n')}
  --smoke                  a tiny configuration that finishes in seconds
  --out DIR                output folder (default runs/${recipe.name})
  --resume                 continue from the last checkpoint in the output folder
  --device D               backend (default: the fastest registered)
  --skip-nonfinite         skip batches whose loss or gradient is not finite (counted as 'skipped' in metrics.jsonl)
                           instead of stopping with an error`;
}

/** Writes results.json atomically (temp file + rename). */
export async function saveResults(outDir: string, results: Record<string, unknown>): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, 'results.json');
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(results, null, 2)}\n`);
  await rename(tmp, path);
  return path;
}

// `attend train <recipe>`: runs one of the book's training recipes and saves its results.

import { join } from 'node:path';
import { RECIPES, recipe } from '../recipes/index.js';
import { parseRecipeArgs, recipeUsage, saveResults } from '../recipes/recipe.js';
import { lockDir } from '../train/lock.js';
import { splitEquals } from './args.js';
import type { CliCommand, Out } from './hf.js';

const GENERIC = new Set(['--smoke', '--resume', '--out', '--device', '--skip-nonfinite']);

export const trainCommand: CliCommand = {
  summary: `train one of the book's recipes (${Object.keys(RECIPES).join(', ')})`,
  get usage() {
    const w = Math.max(...Object.keys(RECIPES).map((k) => k.length), 4);
    return `attend train <recipe> [--key value ...] [--smoke] [--out DIR] [--resume] [--device D] [--skip-nonfinite]

Recipes:
${Object.values(RECIPES).map((r) => `  ${r.name.padEnd(w)}  ${r.summary}`).join('\n')}

attend train <recipe> --help lists a recipe's options and defaults.`;
  },
  async run(args, out: Out = (t) => { process.stdout.write(t); }) {
    const [name, ...rest] = splitEquals(args); // --steps=5 reads as --steps 5
    if (!name || name === '--help') return out(`${this.usage}\n`);
    const r = recipe(name);
    if (rest.includes('--help')) return out(`${recipeUsage(r)}\n`);
    const own: string[] = [];
    let outDir = join('runs', r.name), device: string | undefined, smoke = false, resume = false, skipNonfinite = false;
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i]!;
      if (!GENERIC.has(a)) { own.push(a); continue; }
      if (a === '--smoke' || a === '--resume' || a === '--skip-nonfinite') {
        // A flag may take =true / =false, as the other commands' flags (splitEquals made it a separate argument).
        const next = rest[i + 1];
        const on = next !== 'false';
        if (next === 'true' || next === 'false') i++;
        if (a === '--smoke') smoke = on; else if (a === '--resume') resume = on; else skipNonfinite = on;
      } else {
        const v = rest[++i];
        // `--out --resume` must not name a folder '--resume'.
        if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new Error(`${a} needs a value`);
        if (a === '--out') outDir = v; else device = v;
      }
    }
    const opts = parseRecipeArgs(r, own, smoke);
    const started = Date.now();
    const log = (l: string) => { process.stderr.write(`${l}\n`); };
    // The whole run holds the folder: a second run on it stops at once, before writing anything.
    const lock = await lockDir(outDir, { log });
    try {
      const metrics = await r.run(opts, { outDir, resume, device, log, skipNonfinite });
      const results = { recipe: r.name, options: opts, smoke, ...metrics, wallSeconds: Math.round((Date.now() - started) / 1000) };
      const path = await saveResults(outDir, results);
      out(`${JSON.stringify(results, null, 2)}\nsaved ${path}\n`);
    } finally {
      await lock.release();
    }
  },
};

// Lint: imports in src/ only go downward through the layers, and no runtime import cycles exist.
// Layers, lowest first: platform (src/platform, imported as '#platform'), tensor, autograd, backend, nn, quant, optim, io, tokenizers, processors, models, generation, onnx, pipelines, data, train, recipes, cli;
// src/index.ts and src/browser.ts sit on top; tests and src/test-util may import anything.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const LAYERS = ['platform', 'tensor', 'autograd', 'backend', 'nn', 'quant', 'optim', 'io', 'tokenizers', 'processors', 'models', 'generation', 'onnx', 'pipelines', 'data', 'train', 'recipes', 'cli'];
const root = resolve(dirname(new URL(import.meta.url).pathname), '..', 'src');

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

function layerOf(file) {
  const rel = relative(root, file);
  if (rel.endsWith('.test.ts') || rel.startsWith('test-util')) return { rank: Infinity, exempt: true };
  const top = rel === 'index.ts' || rel === 'browser.ts' ? 'cli' : rel.split('/')[0]; // the package root sits with the CLI on top
  const rank = LAYERS.indexOf(top);
  return { rank: rank < 0 ? LAYERS.length : rank, name: rank < 0 ? rel : top, exempt: false };
}

// `import ... from './x.js'`, `export ... from './x.js'`, `import './x.js'`; type-only ones flagged.
const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[\s\S]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm;

const files = walk(root);
const graph = new Map();
const problems = [];
for (const file of files) {
  const src = readFileSync(file, 'utf8');
  const runtime = [];
  for (const m of src.matchAll(IMPORT)) {
    const target = resolve(dirname(file), m[3].replace(/\.js$/, '.ts'));
    const me = layerOf(file), them = layerOf(target);
    if (!me.exempt && them.rank > me.rank) {
      problems.push(`${relative(root, file)} (layer ${me.name}) imports ${relative(root, target)} (layer ${them.name}), a higher layer`);
    }
    if (!m[2]) runtime.push(target);
  }
  graph.set(file, runtime);
}

// Cycle detection over runtime imports (iterative DFS with colours).
const colour = new Map();
for (const start of files) {
  if (colour.get(start)) continue;
  const stack = [[start, 0]];
  const path = [start];
  colour.set(start, 1);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const next = (graph.get(top[0]) ?? [])[top[1]++];
    if (next === undefined) {
      colour.set(top[0], 2);
      stack.pop();
      path.pop();
    } else if (colour.get(next) === 1) {
      const cycle = path.slice(path.indexOf(next)).concat(next).map((f) => relative(root, f));
      problems.push(`import cycle: ${cycle.join(' -> ')}`);
    } else if (!colour.get(next) && graph.has(next)) {
      colour.set(next, 1);
      stack.push([next, 0]);
      path.push(next);
    }
  }
}

if (problems.length) {
  console.error(`check-imports: ${problems.length} problem(s)\n${problems.map((p) => `  ${p}`).join('\n')}`);
  process.exit(1);
}
console.log(`check-imports: ${files.length} files, imports go downward, no cycles`);

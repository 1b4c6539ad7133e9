// Draws the gpt-brown run and its PyTorch reference in one picture: npx tsx scripts/gpt-brown-compare.ts [RUN_DIR] [COPY_TO_DIR]

import { compareWithTorch } from '../src/train/recipes/gpt-brown.js';

const runDir = process.argv[2] ?? 'runs/gpt-brown';
const copyTo = process.argv[3];
const c = await compareWithTorch(runDir, copyTo ? [runDir, copyTo] : [runDir]);
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
console.log(`final validation loss at step ${c.attend.step}: attend ${c.attend.loss.toFixed(4)} (perplexity ${c.attend.perplexity.toFixed(1)}), PyTorch ${c.torch.loss.toFixed(4)} (perplexity ${c.torch.perplexity.toFixed(1)})`);
console.log(`relative difference ${pct(c.relativeDifference)}; largest over all evaluations ${pct(c.maxRelativeDifference)}`);
for (const f of c.files) console.log(`wrote ${f}`);

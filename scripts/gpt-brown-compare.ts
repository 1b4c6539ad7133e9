// Compares the gpt-brown run with its PyTorch reference (pictures, validation loss, the train-loss gap over the first 50 steps): npx tsx scripts/gpt-brown-compare.ts [RUN_DIR] [COPY_TO_DIR]

import { compareWithTorch, TRAIN_GAP_LIMIT, TRAIN_GAP_STEPS } from '../src/recipes/gpt-brown.js';

const runDir = process.argv[2] ?? 'runs/gpt-brown';
const copyTo = process.argv[3];
const c = await compareWithTorch(runDir, copyTo ? [runDir, copyTo] : [runDir]);
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
console.log(`final validation loss at step ${c.attend.step}: attend ${c.attend.loss.toFixed(4)} (perplexity ${c.attend.perplexity.toFixed(1)}), PyTorch ${c.torch.loss.toFixed(4)} (perplexity ${c.torch.perplexity.toFixed(1)})`);
console.log(`relative difference ${pct(c.relativeDifference)}; largest over all evaluations ${pct(c.maxRelativeDifference)}`);
const g = c.trainLoss;
const ok = g.steps.length > 0 && g.maxRelativeGap < TRAIN_GAP_LIMIT;
console.log(`train loss over the first ${TRAIN_GAP_STEPS} steps (${g.steps.length} records in both): largest relative gap ${g.maxRelativeGap.toExponential(2)} at step ${g.worstStep} (limit ${TRAIN_GAP_LIMIT.toExponential(0)}): ${ok ? 'PASS' : 'FAIL'}`);
for (const f of c.files) console.log(`wrote ${f}`);
if (!ok) process.exitCode = 1;

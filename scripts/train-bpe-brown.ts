// Times byte-level BPE training (and optionally WordPiece) on the whole Brown corpus: npx tsx scripts/train-bpe-brown.ts [vocabSize] [out.json]

import { writeFile } from 'node:fs/promises';
import { loadBrown } from '../src/data/brown.js';
import { Tokenizer } from '../src/tokenizers/tokenizer.js';
import { trainByteLevelBpe } from '../src/tokenizers/train-bpe.js';
import { trainWordPiece } from '../src/tokenizers/train-wordpiece.js';

const vocabSize = Number(process.argv[2] ?? 8000);
const out = process.argv[3];
const docs = await loadBrown();
const texts = docs.flatMap((d) => d.sentences);
const mb = texts.reduce((n, t) => n + Buffer.byteLength(t), 0) / 1e6;
console.log(`Brown: ${docs.length} documents, ${texts.length} sentences, ${mb.toFixed(1)} MB`);

let t0 = performance.now();
const bpe = trainByteLevelBpe(texts, { vocabSize });
console.log(`byte-level BPE, vocab ${vocabSize}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const tok = Tokenizer.fromJSON(bpe);
console.log(`  vocabSize ${tok.vocabSize}; "${texts[1]}" -> ${tok.tokenize(texts[1]!).length} tokens`);
if (out) await writeFile(out, JSON.stringify(bpe, null, 2));

t0 = performance.now();
const wp = trainWordPiece(texts, { vocabSize });
console.log(`WordPiece, vocab ${vocabSize}: ${((performance.now() - t0) / 1000).toFixed(1)} s, vocabSize ${Tokenizer.fromJSON(wp).vocabSize}`);

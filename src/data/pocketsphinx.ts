// The pocketsphinx baseline: CMU's recognizer (Debian's pocketsphinx 0.8 binaries) restricted to digits by a JSGF grammar.

import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Where Debian's pocketsphinx-en-us puts the US English acoustic model and its CMU dictionary. */
export const EN_US_MODEL_DIR = '/usr/share/pocketsphinx/model/en-us';

/** Any number of digit words, nothing else: the recognizer cannot answer outside the task. */
export const DIGITS_JSGF = `#JSGF V1.0;
grammar digits;
public <digits> = ( one | two | three | four | five | six | seven | eight | nine | zero | oh )+ ;
`;

const GRAMMAR_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'oh'];

export interface PocketsphinxOptions {
  /** pocketsphinx_batch (default: found on PATH). */
  bin?: string;
  /** Acoustic model folder (default EN_US_MODEL_DIR/en-us). */
  hmm?: string;
  /** The full pronunciation dictionary the digits' entries are taken from (default EN_US_MODEL_DIR/cmudict-en-us.dict). */
  dictionary?: string;
}

const hint = 'install the Debian packages pocketsphinx and pocketsphinx-en-us (apt-get install pocketsphinx pocketsphinx-en-us)';

function paths(o: PocketsphinxOptions): { bin: string; hmm: string; dictionary: string } {
  return { bin: o.bin ?? 'pocketsphinx_batch', hmm: o.hmm ?? join(EN_US_MODEL_DIR, 'en-us'), dictionary: o.dictionary ?? join(EN_US_MODEL_DIR, 'cmudict-en-us.dict') };
}

/** Checks the binary and the model files, with an error naming the Debian package that provides what is missing. */
export function checkPocketsphinx(o: PocketsphinxOptions = {}): void {
  const p = paths(o);
  try {
    // pocketsphinx_batch without arguments prints its options and exits non-zero: only ENOENT means it is absent.
    execFileSync(p.bin, [], { stdio: 'ignore' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`pocketsphinx: '${p.bin}' was not found: ${hint}`);
  }
  if (!existsSync(join(p.hmm, 'mdef'))) throw new Error(`pocketsphinx: no acoustic model at '${p.hmm}' (mdef missing): ${hint}`);
  if (!existsSync(p.dictionary)) throw new Error(`pocketsphinx: no dictionary at '${p.dictionary}': ${hint}`);
}

/** The digit words' entries of a CMU-format dictionary (alternates such as `zero(2)` included), as a dictionary file. */
export function digitsDictionary(cmudict: string): string {
  const lines = cmudict.split('\n').filter((l) => {
    const head = l.split(/\s/, 1)[0]!.replace(/\(\d+\)$/, '');
    return GRAMMAR_WORDS.includes(head);
  });
  const missing = GRAMMAR_WORDS.filter((w) => !lines.some((l) => l.startsWith(`${w} `) || l.startsWith(`${w}\t`)));
  if (missing.length > 0) throw new Error(`pocketsphinx: the dictionary has no entry for ${missing.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

export interface PocketsphinxResult {
  /** One transcript per input, in order ('' where it recognised nothing). */
  hypotheses: string[];
  /** Wall-clock seconds of the decoding run. */
  seconds: number;
  /** The command line, for the record. */
  command: string;
}

/** Parses pocketsphinx_batch's -hyp file: `words (uttid score)` per line. */
export function parseHypFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(.*?)\s*\((\S+)(?:\s+-?\d+)?\)\s*$/.exec(line);
    if (m) out.set(m[2]!, m[1]!.trim());
  }
  return out;
}

/**
 * Decodes 16 kHz mono audio with pocketsphinx_batch, the en-us acoustic model, the digits-only grammar and a
 * dictionary of the digit words; files go under workDir (raw 16-bit audio, control file, grammar, hypotheses, log).
 */
export async function recognizeDigits(audio: readonly Float32Array[], workDir: string, o: PocketsphinxOptions = {}): Promise<PocketsphinxResult> {
  checkPocketsphinx(o);
  const p = paths(o);
  const rawDir = join(workDir, 'raw');
  await mkdir(rawDir, { recursive: true });
  const ids = audio.map((_, i) => `u${String(i).padStart(6, '0')}`);
  await Promise.all(audio.map((a, i) => {
    const pcm = new Int16Array(a.length);
    for (let k = 0; k < a.length; k++) pcm[k] = Math.max(-32768, Math.min(32767, Math.round(a[k]! * 32768)));
    return writeFile(join(rawDir, `${ids[i]}.raw`), new Uint8Array(pcm.buffer));
  }));
  const dict = join(workDir, 'digits.dic'), gram = join(workDir, 'digits.gram'), ctl = join(workDir, 'utterances.ctl'), hyp = join(workDir, 'hypotheses.txt');
  await writeFile(dict, digitsDictionary(await readFile(p.dictionary, 'utf8')));
  await writeFile(gram, DIGITS_JSGF);
  await writeFile(ctl, `${ids.join('\n')}\n`);
  const args = ['-hmm', p.hmm, '-dict', dict, '-jsgf', gram, '-ctl', ctl, '-cepdir', rawDir, '-cepext', '.raw', '-adcin', 'yes', '-input_endian', 'little', '-samprate', '16000', '-hyp', hyp];
  const t0 = performance.now();
  const log = await new Promise<string>((resolve, reject) => {
    execFile(p.bin, args, { maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pocketsphinx: ${p.bin} failed (${err.message.split('\n')[0]}); log tail:\n${stderr.split('\n').slice(-10).join('\n')}`));
      else resolve(`${stdout}${stderr}`);
    });
  });
  const seconds = (performance.now() - t0) / 1000;
  await writeFile(join(workDir, 'pocketsphinx.log'), log);
  const byId = parseHypFile(await readFile(hyp, 'utf8'));
  return { hypotheses: ids.map((id) => byId.get(id) ?? ''), seconds, command: `${p.bin} ${args.join(' ')}` };
}

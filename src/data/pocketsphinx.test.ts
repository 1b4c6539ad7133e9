// The pocketsphinx baseline: the digits dictionary and grammar, the hypothesis file, a real TIDIGITS recording, missing packages.

import { readFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readPcm } from '../io/wav.js';
import { EN_US_MODEL_DIR, checkPocketsphinx, digitsDictionary, parseHypFile, recognizeDigits } from './pocketsphinx.js';

describe('pocketsphinx', () => {
  test('the dictionary keeps the 11 digit words and their alternates from CMUdict', async () => {
    const dict = digitsDictionary(await readFile(join(EN_US_MODEL_DIR, 'cmudict-en-us.dict'), 'utf8'));
    const heads = dict.trim().split('\n').map((l) => l.split(' ')[0]);
    expect(heads).toEqual(['eight', 'five', 'four', 'nine', 'oh', 'one', 'one(2)', 'seven', 'six', 'three', 'two', 'zero', 'zero(2)']);
    expect(dict).toContain('zero Z IH R OW');
    expect(() => digitsDictionary('one W AH N\ntwo T UW\n')).toThrow(/no entry for zero, three, four/);
  });

  test('hypothesis lines: words, utterance id, score; empty hypotheses too', () => {
    const m = parseHypFile('two nine three four zero (u000001 -2427)\n (u000002 -100)\nthree oh (u000003)\n');
    expect([...m]).toEqual([['u000001', 'two nine three four zero'], ['u000002', ''], ['u000003', 'three oh']]);
  });

  test('recognises a real TIDIGITS recording from pocketsphinx-testdata', async () => {
    const { samples } = await readPcm('/usr/share/pocketsphinx/test/data/tidigits/dhd.2934z.raw', { sampleRate: 16000, format: 's16le' });
    const dir = await mkdtemp(join(tmpdir(), 'attend-sphinx-'));
    const r = await recognizeDigits([samples, new Float32Array(8000)], dir);
    expect(r.hypotheses[0]).toBe('two nine three four zero'); // the file name's digits, "z" = zero
    expect(r.hypotheses).toHaveLength(2);
    expect(r.command).toContain('-jsgf');
  });

  test('missing binaries or models name the Debian packages', () => {
    expect(() => checkPocketsphinx({ bin: '/nonexistent/pocketsphinx_batch' })).toThrow(/not found: install the Debian packages pocketsphinx and pocketsphinx-en-us/);
    expect(() => checkPocketsphinx({ hmm: '/nonexistent/model' })).toThrow(/no acoustic model at '\/nonexistent\/model'.*pocketsphinx-en-us/);
  });
});

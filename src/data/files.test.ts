// The user's own files: CSV (RFC 4180 quoting, header row), JSON Lines and plain text, with errors naming file and line.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadCsv, loadJsonl, loadText, loadTextLines, parseCsv, parseJsonl } from './files.js';

const dir = mkdtempSync(join(tmpdir(), 'attend-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Uint8Array): string => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};

describe('CSV', () => {
  test('quoted fields hold delimiters, doubled quotes and line breaks; CRLF, a BOM and blank lines', () => {
    const text = '\ufeffid,text,label\r\n1,"Hello, world",spam\r\n\r\n2,"She said ""hi""",ham\r\n3,"two\nlines",ham\r\n4,,""\r\n';
    expect(parseCsv(text)).toEqual([
      { id: '1', text: 'Hello, world', label: 'spam' },
      { id: '2', text: 'She said "hi"', label: 'ham' },
      { id: '3', text: 'two\nlines', label: 'ham' },
      { id: '4', text: '', label: '' },
    ]);
  });

  test('no final line end, another delimiter, a row of one quoted empty field', () => {
    expect(parseCsv('a;b\nx;"y;z"', { delimiter: ';' })).toEqual([{ a: 'x', b: 'y;z' }]);
    expect(parseCsv('a\n""\n')).toEqual([{ a: '' }]);
  });

  test('errors name the file and the line', () => {
    expect(() => parseCsv('a,b\n1,2\n3\n', { file: 'd.csv' })).toThrow(/d\.csv:3: expected 2 fields \(a, b\), got 1/);
    expect(() => parseCsv('a,b\n1,"open\nstill open', { file: 'd.csv' })).toThrow(/d\.csv:2: a quoted field is not closed before the end of the file/);
    expect(() => parseCsv('a,b\n1,ab"c\n', { file: 'd.csv' })).toThrow(/d\.csv:2: a quote inside an unquoted field/);
    expect(() => parseCsv('a,b\n"x"y,1\n', { file: 'd.csv' })).toThrow(/d\.csv:2: unexpected text after a closing quote/);
    expect(() => parseCsv('a,a\n1,2\n', { file: 'd.csv' })).toThrow(/d\.csv:1: header name 'a' appears more than once/);
    expect(() => parseCsv('a,,c\n1,2,3\n', { file: 'd.csv' })).toThrow(/d\.csv:1: header column 2 has no name/);
    expect(() => parseCsv('\n\n', { file: 'd.csv' })).toThrow(/d\.csv: empty file \(expected a header row\)/);
    expect(() => parseCsv('a\n1', { delimiter: '"' })).toThrow(/delimiter must be one character other than a quote/);
  });

  test('loadCsv reads files; a missing file, a header without rows and invalid UTF-8 are errors', async () => {
    expect(await loadCsv(file('ok.csv', 'x,y\n1,2\n'))).toEqual([{ x: '1', y: '2' }]);
    await expect(loadCsv(join(dir, 'missing.csv'))).rejects.toThrow(/loadCsv: cannot read .*missing\.csv: no such file/);
    await expect(loadCsv(file('head.csv', 'x,y\n'))).rejects.toThrow(/head\.csv has a header but no data rows/);
    await expect(loadCsv(file('latin1.csv', Uint8Array.from([0x78, 0x0a, 0x61, 0x0a, 0x63, 0x61, 0x66, 0xe9, 0x0a])))).rejects.toThrow(/latin1\.csv:3: not valid UTF-8 \(byte 7\)/);
  });
});

describe('JSON Lines', () => {
  test('one object per line; blank lines and CRLF are fine', () => {
    expect(parseJsonl('{"a":1}\r\n\n{"a":2,"b":"x"}')).toEqual([{ a: 1 }, { a: 2, b: 'x' }]);
  });

  test('a malformed line or a non-object names the file and line', () => {
    expect(() => parseJsonl('{"a":1}\n{"a":\n', 'd.jsonl')).toThrow(/d\.jsonl:2: not valid JSON/);
    expect(() => parseJsonl('{"a":1}\n\n[1,2]\n', 'd.jsonl')).toThrow(/d\.jsonl:3: expected a JSON object, got an array/);
    expect(() => parseJsonl('"text"', 'd.jsonl')).toThrow(/d\.jsonl:1: expected a JSON object, got "text"/);
  });

  test('loadJsonl: a file without records is an error', async () => {
    expect(await loadJsonl(file('ok.jsonl', '{"t":"é"}\n'))).toEqual([{ t: 'é' }]);
    await expect(loadJsonl(file('empty.jsonl', '\n\n'))).rejects.toThrow(/empty\.jsonl has no records/);
    await expect(loadJsonl(join(dir, 'nope.jsonl'))).rejects.toThrow(/loadJsonl: cannot read .*nope\.jsonl: no such file/);
  });
});

describe('plain text', () => {
  test('the whole text, or its lines', async () => {
    const p = file('t.txt', '\ufeffline one\r\n\nline two\n');
    expect(await loadText(p)).toBe('line one\r\n\nline two\n');
    expect(await loadTextLines(p)).toEqual(['line one', 'line two']);
    expect(await loadTextLines(p, { keepEmpty: true })).toEqual(['line one', '', 'line two']);
    await expect(loadTextLines(file('blank.txt', '\n  \n'))).rejects.toThrow(/blank\.txt has no lines/);
    await expect(loadText(join(dir, 'gone.txt'))).rejects.toThrow(/loadText: cannot read .*gone\.txt: no such file/);
  });
});

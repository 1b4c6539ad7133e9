// The user's own data files: plain text, JSON Lines and CSV (a path in Node, or a URL), with errors that name the file and line.

import { readBytes } from '../io/source.js';

/** Reads a UTF-8 file (a leading byte-order mark is dropped); a missing file or invalid UTF-8 is an error naming it. */
async function readUtf8(path: string, op: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await readBytes(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${op}: cannot read ${path}${code === 'ENOENT' ? ': no such file' : ` (${(e as Error).message})`}`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const bad = firstInvalidUtf8(bytes);
    const line = bytes.subarray(0, bad).reduce((n, b) => n + (b === 10 ? 1 : 0), 1);
    throw new Error(`${op}: ${path}:${line}: not valid UTF-8 (byte ${bad}); convert the file to UTF-8`);
  }
  return text.startsWith('\ufeff') ? text.slice(1) : text;
}

/** The byte offset where the first invalid UTF-8 sequence starts (a literal U+FFFD in the file is valid). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  const text = new TextDecoder('utf-8').decode(bytes);
  const enc = new TextEncoder();
  let at = 0; // the byte offset of text[pos]
  let pos = 0;
  for (let i = text.indexOf('\ufffd'); i >= 0; i = text.indexOf('\ufffd', i + 1)) {
    at += enc.encode(text.slice(pos, i)).length;
    if (!(bytes[at] === 0xef && bytes[at + 1] === 0xbf && bytes[at + 2] === 0xbd)) return at;
    at += 3;
    pos = i + 1;
  }
  return bytes.length;
}

/** The whole file as a string. */
export async function loadText(path: string): Promise<string> {
  return readUtf8(path, 'loadText');
}

/** The file's lines (without line ends; blank lines dropped unless keepEmpty). A file without lines is an error. */
export async function loadTextLines(path: string, opts: { keepEmpty?: boolean } = {}): Promise<string[]> {
  const text = await readUtf8(path, 'loadTextLines');
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop(); // the final line end does not start another line
  const out = opts.keepEmpty ? lines : lines.filter((l) => l.trim() !== '');
  if (out.length === 0) throw new Error(`loadTextLines: ${path} has no lines`);
  return out;
}

/** Parses JSON Lines: one JSON object per line (blank lines skipped). `file` labels errors. */
export function parseJsonl(text: string, file = '<jsonl>'): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new Error(`${file}:${i + 1}: expected a JSON object, got ${Array.isArray(v) ? 'an array' : JSON.stringify(v)}`);
    }
    out.push(v as Record<string, unknown>);
  });
  return out;
}

/** Every object of a JSON Lines file; a file without any is an error. */
export async function loadJsonl(path: string): Promise<Record<string, unknown>[]> {
  const rows = parseJsonl(await readUtf8(path, 'loadJsonl'), path);
  if (rows.length === 0) throw new Error(`loadJsonl: ${path} has no records`);
  return rows;
}

export interface CsvOptions {
  /** Field separator, one character (default ','). */
  delimiter?: string;
  /** Labels errors (default '<csv>'; loadCsv passes the path). */
  file?: string;
}

/** Splits CSV text into rows of fields (RFC 4180: quoted fields may hold delimiters, line breaks and doubled quotes). */
function csvRows(text: string, delimiter: string, file: string): { fields: string[]; line: number }[] {
  const rows: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let touched = false; // the row has a character, a delimiter or a quoted field: a blank line has none
  let line = 1;
  let rowLine = 1;
  const endRow = (): void => {
    if (touched) rows.push({ fields: [...fields, field], line: rowLine });
    fields = [];
    field = '';
    touched = false;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' && field === '') {
      const start = line;
      touched = true;
      for (i++; ; i++) {
        if (i >= text.length) throw new Error(`${file}:${start}: a quoted field is not closed before the end of the file`);
        if (text[i] === '"') {
          if (text[i + 1] !== '"') break;
          i++; // a doubled quote stands for one
        } else if (text[i] === '\n') {
          line++;
        }
        field += text[i];
      }
      i++;
      const after = text[i];
      if (after !== undefined && after !== delimiter && after !== '\n' && after !== '\r') {
        throw new Error(`${file}:${line}: unexpected text after a closing quote (a quote inside a quoted field is written "")`);
      }
    } else if (c === delimiter) {
      fields.push(field);
      field = '';
      touched = true;
      i++;
    } else if (c === '\n' || c === '\r') {
      endRow();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      rowLine = ++line;
    } else {
      if (c === '"') throw new Error(`${file}:${line}: a quote inside an unquoted field (quote the whole field and write the quote as "")`);
      field += c;
      touched = true;
      i++;
    }
  }
  endRow();
  return rows;
}

/**
 * Parses CSV with a header row into one record per data row (field values as strings). Every row must have as many
 * fields as the header; header names must be distinct and non-empty. Blank lines are skipped.
 */
export function parseCsv(text: string, opts: CsvOptions = {}): Record<string, string>[] {
  const file = opts.file ?? '<csv>';
  const delimiter = opts.delimiter ?? ',';
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new Error(`parseCsv: delimiter must be one character other than a quote or line break, got ${JSON.stringify(delimiter)}`);
  }
  const rows = csvRows(text.startsWith('\ufeff') ? text.slice(1) : text, delimiter, file);
  if (rows.length === 0) throw new Error(`${file}: empty file (expected a header row)`);
  const [head, ...data] = rows;
  const names = head!.fields.map((f) => f.trim());
  names.forEach((name, i) => {
    if (name === '') throw new Error(`${file}:${head!.line}: header column ${i + 1} has no name`);
    if (names.indexOf(name) !== i) throw new Error(`${file}:${head!.line}: header name '${name}' appears more than once`);
  });
  return data.map(({ fields, line }) => {
    if (fields.length !== names.length) throw new Error(`${file}:${line}: expected ${names.length} fields (${names.join(', ')}), got ${fields.length}`);
    return Object.fromEntries(names.map((name, i) => [name, fields[i]!]));
  });
}

/** The records of a CSV file with a header row (see parseCsv); a file without data rows is an error. */
export async function loadCsv(path: string, opts: Omit<CsvOptions, 'file'> = {}): Promise<Record<string, string>[]> {
  const rows = parseCsv(await readUtf8(path, 'loadCsv'), { ...opts, file: path });
  if (rows.length === 0) throw new Error(`loadCsv: ${path} has a header but no data rows`);
  return rows;
}

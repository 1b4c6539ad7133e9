// A small MIME e-mail reader: headers (folded, RFC 2047 encoded-words), multipart bodies, transfer encodings and charsets to text.
//
// The message is handled as a "binary string" (one char per byte) until a part's bytes are decoded with their charset,
// so that 8-bit bodies in latin1, big5 or utf-8 all survive the structural parsing unchanged.

import { decodeWindows1252 } from './charset.js';
import { htmlToText } from './html.js';

export interface EmailHeader {
  /** The name as written, e.g. 'Subject'. */
  name: string;
  /** The unfolded raw value (a binary string: one char per byte), without the leading whitespace. */
  value: string;
}

export interface ParsedEmail {
  headers: EmailHeader[];
  /** The decoded Subject, whitespace runs collapsed ('' when absent). */
  subject: string;
  /** The readable text of the body: text/plain preferred, else text/html converted; attachments left out. */
  body: string;
}

const MAX_DEPTH = 20; // nesting of multiparts and attached messages; deeper structures are spam tricks, not mail

/** Bytes as a binary string (char code = byte), without going through a text decoder (which would remap 0x80-0x9f). */
function bytesToBinary(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 0x8000) out += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return out;
}

function binaryToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

const decoders = new Map<string, TextDecoder | null>();

/** A decoder for a charset label (WHATWG labels: latin1, iso-8859-1 and us-ascii all mean windows-1252), or null. */
function decoderFor(charset: string): TextDecoder | null {
  const label = charset.trim().toLowerCase();
  if (!decoders.has(label)) {
    let d: TextDecoder | null = null;
    try {
      d = new TextDecoder(label);
    } catch {
      d = null; // an unknown label such as 'default': the caller guesses
    }
    decoders.set(label, d);
  }
  return decoders.get(label)!;
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes bytes given as a binary string. A known charset is used as declared, except that invalid utf-8 falls back
 * to windows-1252 (mislabelled mail is common); an unknown or missing one is guessed: utf-8 if valid, else windows-1252.
 */
export function decodeCharset(binary: string, charset?: string): string {
  const d = charset ? decoderFor(charset) : null;
  const bytes = binaryToBytes(binary);
  if (d?.encoding === 'windows-1252') return decodeWindows1252(bytes);
  if (d && d.encoding !== 'utf-8') return d.decode(bytes);
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return decodeWindows1252(bytes);
  }
}

/** Quoted-printable to bytes (binary string): '=XX' escapes, soft line breaks '=\n'; malformed escapes stay literal. */
export function decodeQuotedPrintable(s: string): string {
  return s
    .replace(/[ \t]+$/gm, '') // trailing whitespace was added in transport (RFC 2045 6.7)
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(256).fill(-1);
for (let i = 0; i < 64; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** Base64 to bytes (binary string), skipping line breaks and any other character outside the alphabet; stops at '='. */
export function decodeBase64(s: string): string {
  const out: number[] = [];
  let acc = 0, bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 61) break; // '=': padding ends the data
    const v = c < 256 ? B64_INDEX[c]! : -1;
    if (v < 0) continue;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  let text = '';
  for (let i = 0; i < out.length; i += 0x8000) text += String.fromCharCode(...out.slice(i, i + 0x8000));
  return text;
}

// =?charset?B|Q?text?= ; the charset may carry an RFC 2231 language suffix, 'utf-8*en'.
const ENCODED_WORD = /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g;

/**
 * A header value (binary string) as text: RFC 2047 encoded-words decoded (adjacent ones of the same charset are joined
 * before decoding, so that a character split between two words survives; whitespace between encoded-words is dropped).
 * Raw 8-bit text is decoded as utf-8 if valid, else with `fallbackCharset` (mail readers use the body's charset:
 * headers of Korean or Thai spam are often raw euc-kr or tis-620), else windows-1252.
 */
export function decodeHeaderValue(value: string, fallbackCharset?: string): string {
  const segments: { charset: string | null; bytes: string }[] = [];
  let last = 0;
  let prevWasWord = false;
  for (const m of value.matchAll(ENCODED_WORD)) {
    const between = value.slice(last, m.index);
    if (!(prevWasWord && /^[ \t\r\n]*$/.test(between)) && between) segments.push({ charset: null, bytes: between });
    const charset = m[1]!.split('*')[0]!.toLowerCase();
    const text = m[3]!;
    const bytes = m[2]!.toUpperCase() === 'B' ? decodeBase64(text) : decodeQuotedPrintable(text.replace(/_/g, ' '));
    const prev = segments[segments.length - 1];
    // Stateful encodings (iso-2022-jp) return to ASCII at the end of each word: joined, the escapes would collide.
    if (prev && prevWasWord && prev.charset === charset && !/^(iso-2022|utf-7)/.test(charset)) prev.bytes += bytes;
    else segments.push({ charset, bytes });
    last = m.index + m[0].length;
    prevWasWord = true;
  }
  if (last < value.length) segments.push({ charset: null, bytes: value.slice(last) });
  return segments.map((s) => decodeCharset(s.bytes, s.charset ?? (isUtf8(s.bytes) ? undefined : fallbackCharset))).join('');
}

/** Whether a binary string is valid utf-8 (pure ASCII included). */
function isUtf8(binary: string): boolean {
  try {
    utf8Strict.decode(binaryToBytes(binary));
    return true;
  } catch {
    return false;
  }
}

/**
 * Splits a message or part into its unfolded headers and its body (line ends already normalised to '\n'). A part
 * that starts with an empty line has no headers.
 */
function splitMessage(text: string, envelope = false): { headers: EmailHeader[]; body: string } {
  // An mbox envelope line ("From sender date") precedes the headers of a whole message in archives.
  const rest = envelope && text.startsWith('From ') ? text.slice(text.indexOf('\n') + 1 || text.length) : text;
  const end = rest.startsWith('\n') ? 0 : rest.indexOf('\n\n') + 1 || rest.length;
  const headers: EmailHeader[] = [];
  for (const line of rest.slice(0, end).split('\n')) {
    if (/^[ \t]/.test(line) && headers.length) {
      headers[headers.length - 1]!.value += line; // unfolding removes only the line break (RFC 5322 2.2.3)
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue; // not a header line: ignore it, as mail readers do
    headers.push({ name: line.slice(0, colon).trim(), value: line.slice(colon + 1).replace(/^[ \t]+/, '') });
  }
  return { headers, body: rest.slice(end + 1) };
}

function header(headers: readonly EmailHeader[], name: string): string | undefined {
  const lower = name.toLowerCase();
  return headers.find((h) => h.name.toLowerCase() === lower)?.value;
}

interface ContentType {
  /** 'type/subtype' in lower case. */
  type: string;
  /** Parameters by lower-case name, unquoted. */
  params: Record<string, string>;
}

/** Parses 'text/plain; charset="utf-8"; format=flowed' (quoted values may hold ';' and backslash escapes). */
function parseParams(value: string): { main: string; params: Record<string, string> } {
  const params: Record<string, string> = {};
  const semi = value.indexOf(';');
  const main = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  if (semi < 0) return { main, params };
  const re = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^;]*))/g;
  for (const m of value.slice(semi).matchAll(re)) {
    const v = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!.trim();
    const key = m[1]!.toLowerCase();
    if (!(key in params)) params[key] = v;
  }
  return { main, params };
}

function contentType(headers: readonly EmailHeader[]): ContentType {
  const raw = header(headers, 'Content-Type');
  if (raw === undefined) return { type: 'text/plain', params: {} };
  const { main, params } = parseParams(raw);
  return { type: main.includes('/') ? main.replace(/\s+/g, '') : 'text/plain', params };
}

/** The parts of a multipart body between '--boundary' lines (the preamble and epilogue are dropped). */
function splitMultipart(body: string, boundary: string): string[] {
  const open = `--${boundary}`;
  const close = `${open}--`;
  const parts: string[] = [];
  let current: string[] | null = null;
  for (const line of body.split('\n')) {
    const bare = line.replace(/[ \t]+$/, ''); // transport padding after a delimiter is allowed
    if (bare === open || bare === close) {
      if (current) parts.push(current.join('\n'));
      current = bare === open ? [] : null;
      if (bare === close) break;
    } else if (current) {
      current.push(line);
    }
  }
  if (current) parts.push(current.join('\n')); // no closing delimiter: keep the last part
  return parts;
}

/** A part's body bytes (binary string) after its Content-Transfer-Encoding. */
function transferDecode(headers: readonly EmailHeader[], body: string): string {
  const cte = (header(headers, 'Content-Transfer-Encoding') ?? '').trim().toLowerCase();
  if (cte === 'quoted-printable') return decodeQuotedPrintable(body);
  if (cte === 'base64') return decodeBase64(body);
  return body;
}

/** The readable text of a part, or null for non-text parts (images, attachments, other media). */
function partText(headers: readonly EmailHeader[], body: string, depth: number): string | null {
  if (depth > MAX_DEPTH) return null;
  const ct = contentType(headers);
  const disposition = (header(headers, 'Content-Disposition') ?? '').trim().toLowerCase();
  if (disposition.startsWith('attachment')) return null;
  if (ct.type.startsWith('multipart/')) {
    const boundary = ct.params['boundary'];
    if (!boundary) return decodeCharset(transferDecode(headers, body), ct.params['charset']).trim();
    const parts = splitMultipart(body, boundary).map((p) => splitMessage(p));
    // A boundary that never occurs is a mailer bug: the body is then plain text.
    if (parts.length === 0) return decodeCharset(transferDecode(headers, body), ct.params['charset']).trim();
    if (ct.type === 'multipart/alternative') {
      const typed = (t: string) => parts.find((p) => contentType(p.headers).type === t);
      const best = typed('text/plain') ?? typed('text/html');
      if (best) return partText(best.headers, best.body, depth + 1);
      for (const p of parts) {
        const text = partText(p.headers, p.body, depth + 1);
        if (text !== null) return text;
      }
      return null;
    }
    const texts = parts.map((p) => partText(p.headers, p.body, depth + 1)).filter((t): t is string => t !== null && t !== '');
    return texts.join('\n\n');
  }
  if (ct.type === 'message/rfc822') {
    const inner = splitMessage(transferDecode(headers, body));
    return partText(inner.headers, inner.body, depth + 1);
  }
  if (!ct.type.startsWith('text/')) return null;
  const text = decodeCharset(transferDecode(headers, body), ct.params['charset']);
  return (ct.type === 'text/html' ? htmlToText(text) : text).trim();
}

/** The charset of the message, or of its first part that declares one (the hint for raw 8-bit headers). */
function firstCharset(headers: readonly EmailHeader[], body: string, depth: number): string | undefined {
  const ct = contentType(headers);
  if (ct.params['charset'] || depth > MAX_DEPTH) return ct.params['charset'];
  const boundary = ct.params['boundary'];
  if (!ct.type.startsWith('multipart/') || !boundary) return undefined;
  for (const part of splitMultipart(body, boundary)) {
    const p = splitMessage(part);
    const c = firstCharset(p.headers, p.body, depth + 1);
    if (c) return c;
  }
  return undefined;
}

/**
 * Parses a raw e-mail (bytes, or a string, which is read as its UTF-8 bytes) into its headers, decoded subject and
 * body text. Lenient like a mail reader: malformed structure degrades to plain text rather than failing.
 */
export function parseEmail(raw: Uint8Array | string): ParsedEmail {
  const bytes = typeof raw === 'string' ? new TextEncoder().encode(raw) : raw;
  const text = bytesToBinary(bytes).replace(/\r\n?/g, '\n');
  const { headers, body } = splitMessage(text, true);
  const subject = decodeHeaderValue(header(headers, 'Subject') ?? '', firstCharset(headers, body, 0)).replace(/[ \t\r\n]+/g, ' ').trim();
  return { headers, subject, body: partText(headers, body, 0) ?? '' };
}

// GPT-2's byte-level alphabet: the reversible table between the 256 byte values and printable characters, and its pre-tokenizer regex.

/**
 * The GPT-2 pre-tokenizer split (contractions, letters, numbers, other symbols, whitespace runs), as Hugging Face's
 * ByteLevel pre-tokenizer and tiktoken's `gpt2` encoding use it.
 */
export const GPT2_SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

function buildByteToChar(): string[] {
  // Printable Latin-1 bytes stand for themselves; the others are moved up past U+0100 in byte order (GPT-2's bytes_to_unicode).
  const table: string[] = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  return table;
}

/** Byte value -> its byte-level character ('Ġ' for a space, 'Ċ' for a newline). */
export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

/** Byte-level character -> byte value. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const encoder = new TextEncoder();

/** The byte-level spelling of a string's UTF-8 bytes ("Hi there" -> "HiĠthere"). */
export function toByteLevel(text: string): string {
  let out = '';
  for (const b of encoder.encode(text)) out += BYTE_TO_CHAR[b];
  return out;
}

/** The bytes a byte-level token stands for, or undefined when it holds a character outside the table. */
export function fromByteLevel(token: string): number[] | undefined {
  const bytes: number[] = [];
  for (const c of token) {
    const b = CHAR_TO_BYTE.get(c);
    if (b === undefined) return undefined;
    bytes.push(b);
  }
  return bytes;
}

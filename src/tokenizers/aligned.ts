// Text that remembers, per character, where it came from in the original input: normalizers replayed with alignments.
//
// Hugging Face's NormalizedString keeps the same bookkeeping; the alignment rules here follow its `transform`
// conventions (inserted characters share the alignment of the one before them, a replacement takes the alignment of
// the last character it replaces, a prepended string takes the first character's) so that offsets come out the same.

/** Characters (Unicode code points) with, for each, the [start, end) code-point range of the original text it stands for. */
export class AlignedText {
  private joined: string | undefined;

  constructor(
    readonly chars: readonly string[],
    readonly starts: readonly number[],
    readonly ends: readonly number[],
  ) {}

  /** `text` aligned to itself, its first code point at original position `base`. */
  static of(text: string, base = 0): AlignedText {
    const chars = Array.from(text);
    const starts = new Array<number>(chars.length);
    const ends = new Array<number>(chars.length);
    for (let i = 0; i < chars.length; i++) {
      starts[i] = base + i;
      ends[i] = base + i + 1;
    }
    const t = new AlignedText(chars, starts, ends);
    t.joined = text;
    return t;
  }

  /** Every character of `text` aligned to the same original range (used when finer alignment is unknown). */
  static spanning(text: string, start: number, end: number): AlignedText {
    const chars = Array.from(text);
    return new AlignedText(chars, chars.map(() => start), chars.map(() => end));
  }

  static concat(parts: readonly AlignedText[]): AlignedText {
    if (parts.length === 1) return parts[0]!;
    const chars: string[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    for (const p of parts) {
      for (let i = 0; i < p.length; i++) {
        chars.push(p.chars[i]!);
        starts.push(p.starts[i]!);
        ends.push(p.ends[i]!);
      }
    }
    return new AlignedText(chars, starts, ends);
  }

  get length(): number {
    return this.chars.length;
  }

  get text(): string {
    this.joined ??= this.chars.join('');
    return this.joined;
  }

  slice(from: number, to: number = this.length): AlignedText {
    return new AlignedText(this.chars.slice(from, to), this.starts.slice(from, to), this.ends.slice(from, to));
  }

  /** Each character becomes `f(char)` (none, one or several characters), all keeping that character's alignment. */
  flatMap(f: (c: string) => string): AlignedText {
    const chars: string[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    let changed = false;
    for (let i = 0; i < this.length; i++) {
      const c = this.chars[i]!;
      const out = f(c);
      if (out === c) {
        chars.push(c);
        starts.push(this.starts[i]!);
        ends.push(this.ends[i]!);
        continue;
      }
      changed = true;
      for (const d of out) {
        chars.push(d);
        starts.push(this.starts[i]!);
        ends.push(this.ends[i]!);
      }
    }
    return changed ? new AlignedText(chars, starts, ends) : this;
  }

  /** `s` in front, aligned to the first character (nothing happens to empty text, as in Hugging Face). */
  prepend(s: string): AlignedText {
    if (this.length === 0) return this;
    const head = AlignedText.spanning(s, this.starts[0]!, this.ends[0]!);
    return AlignedText.concat([head, this]);
  }

  /** Every match of the global `pattern` becomes `content`, aligned to the last character it replaces. */
  replace(pattern: RegExp, content: string): AlignedText {
    const charAt = utf16ToCharIndex(this.chars);
    const inserted = Array.from(content);
    const chars: string[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    const copy = (from: number, to: number): void => {
      for (let i = from; i < to; i++) {
        chars.push(this.chars[i]!);
        starts.push(this.starts[i]!);
        ends.push(this.ends[i]!);
      }
    };
    let done = 0;
    let matched = false;
    for (const m of this.text.matchAll(pattern)) {
      matched = true;
      const from = charAt[m.index]!;
      const to = charAt[m.index + m[0].length]!;
      copy(done, from);
      // An empty match inserts after the previous character, whose alignment the insertion shares.
      const anchor = to > from ? to - 1 : from - 1;
      const start = anchor >= 0 ? this.starts[anchor]! : (this.starts[0] ?? 0);
      const end = anchor >= 0 ? this.ends[anchor]! : start;
      for (const c of inserted) {
        chars.push(c);
        starts.push(start);
        ends.push(end);
      }
      done = to;
    }
    if (!matched) return this;
    copy(done, this.length);
    return new AlignedText(chars, starts, ends);
  }

  /** Unicode normalization; each output character is aligned to the input character it comes from. */
  normalizeUnicode(form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD'): AlignedText {
    const text = this.text;
    if (text.normalize(form) === text) return this;
    const composing = form === 'NFC' || form === 'NFKC';
    const norm = (from: number, to: number): string => {
      if (to === from + 1) {
        const c = this.chars[from]!;
        // Below U+00A0 every form leaves a character alone.
        return c.charCodeAt(0) < 0xa0 ? c : c.normalize(form);
      }
      return this.chars.slice(from, to).join('').normalize(form);
    };
    // Pieces start at every character that is not a combining mark. Composition can also join a piece to the one
    // before when it starts with a Hangul vowel or final jamo; then the two are normalised together.
    const pieces: [number, number][] = [];
    let from = 0;
    for (let i = 1; i <= this.length; i++) {
      const c = this.chars[i];
      // Marks and jamo all lie above U+0300: a cheap test first.
      if (c !== undefined && c.charCodeAt(0) >= 0x300) {
        if (MARK.test(c)) continue;
        if (composing && JAMO.test(c) && norm(from, i + 1) !== norm(from, i) + norm(i, i + 1)) continue;
      }
      pieces.push([from, i]);
      from = i;
    }
    const chars: string[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    for (const [a, b] of pieces) {
      // Output character j comes from input character j (the last one when the output is longer): a composition
      // keeps its base character's alignment and a decomposition repeats it, as Hugging Face does.
      let j = 0;
      for (const c of norm(a, b)) {
        const src = Math.min(a + j++, b - 1);
        chars.push(c);
        starts.push(this.starts[src]!);
        ends.push(this.ends[src]!);
      }
    }
    return new AlignedText(chars, starts, ends);
  }

  /** JavaScript lowercasing of the whole text (so a final sigma is right), aligned character by character. */
  lowercase(): AlignedText {
    const lower = this.text.toLowerCase();
    if (lower === this.text) return this;
    const whole = Array.from(lower);
    const each = this.flatMap((c) => c.toLowerCase());
    if (each.length !== whole.length) return each;
    return new AlignedText(whole, each.starts, each.ends);
  }

  /** Drops whitespace at the start and/or end (JavaScript's `trim` definition of whitespace). */
  strip(left: boolean, right: boolean): AlignedText {
    let from = 0;
    let to = this.length;
    if (left) while (from < to && WHITESPACE.test(this.chars[from]!)) from++;
    if (right) while (to > from && WHITESPACE.test(this.chars[to - 1]!)) to--;
    return from === 0 && to === this.length ? this : this.slice(from, to);
  }
}

const MARK = /^\p{M}$/u;
/** Conjoining and compatibility jamo that compose with a preceding Hangul character. */
const JAMO = /^[\u1161-\u1175\u11a8-\u11c2\u3131-\u318e\uffa0-\uffdc]$/u;
const WHITESPACE = /^\s$/u;

/** For each UTF-16 index of the joined text (and its end), the index of the character it falls in. */
function utf16ToCharIndex(chars: readonly string[]): number[] {
  const map: number[] = [];
  chars.forEach((c, i) => {
    for (let k = 0; k < c.length; k++) map.push(i);
  });
  map.push(chars.length);
  return map;
}

export function isWhitespace(c: string): boolean {
  return WHITESPACE.test(c);
}

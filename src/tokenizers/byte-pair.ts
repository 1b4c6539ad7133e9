// tiktoken's byte-pair merge in O(n log n): a heap over adjacent pairs and a linked list of parts, instead of a rescan per merge.

/**
 * Token ranks keyed by the token's bytes written as a Latin-1 string (one char per byte, code 0 to 255), so that a
 * substring of a piece's byte string is directly a key.
 */
export type ByteRanks = ReadonlyMap<string, number>;

/** A piece's UTF-8 bytes as a Latin-1 string: ASCII text as it is, anything else through TextEncoder (lone surrogates -> U+FFFD, as tiktoken). */
export function utf8ByteString(text: string, encoder: TextEncoder): string {
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  const bytes = encoder.encode(text);
  let out = '';
  // fromCharCode takes its arguments on the stack: convert in bounded chunks.
  for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return out;
}

/** Heap keys pack (rank, position) as rank * 2^32 + position: exact in a double, and ordered as tiktoken picks merges. */
const POS_SPAN = 4294967296;
/** Pair-cache keys pack (left rank, right rank) as left * 2^24 + right. */
const RANK_SPAN = 16777216;
/** The pair cache is emptied when it reaches this many entries, bounding its memory. */
const PAIR_CACHE_ENTRIES = 1_000_000;

/**
 * tiktoken's merge rule over a rank table: repeatedly merge the adjacent pair of parts whose concatenation has the
 * lowest rank (ties: the leftmost), until no adjacent pair is a token. O(n log n) in the piece's length.
 */
export class BytePairEncoder {
  private readonly maxTokenLength: number;
  /** Rank of each single byte, -1 when a byte is no token. */
  private readonly byteRank = new Int32Array(256).fill(-1);
  /** Rank of each two-byte token by (first byte << 8 | second byte), -1 when none: the lookups of every initial pair. */
  private readonly bytePairRank = new Int32Array(65536).fill(-1);
  /** (left rank, right rank) -> rank of the concatenation or -1: parts are tokens, so their ranks name their bytes. */
  private readonly pairCache = new Map<number, number>();

  constructor(private readonly ranks: ByteRanks) {
    let maxLength = 1;
    for (const [bytes, rank] of ranks) {
      if (rank >= RANK_SPAN) throw new Error(`BytePairEncoder: rank ${rank} is beyond the supported ${RANK_SPAN - 1}`);
      maxLength = Math.max(maxLength, bytes.length);
      if (bytes.length === 1) this.byteRank[bytes.charCodeAt(0)] = rank;
      else if (bytes.length === 2) this.bytePairRank[(bytes.charCodeAt(0) << 8) | bytes.charCodeAt(1)] = rank;
    }
    this.maxTokenLength = maxLength;
  }

  /** The ranks of the tokens `bytes` merges into; parts that are no token are left out, as tiktoken does. */
  encode(bytes: string): number[] {
    const n = bytes.length;
    if (n === 0) return [];
    const whole = this.ranks.get(bytes);
    if (whole !== undefined) return [whole];
    // Parts are identified by their first byte; next[i] is where part i ends (the next part's start), n at the end.
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const partRank = new Int32Array(n); // the rank of the token part i is, -1 for a single byte that is none
    const pairRank = new Int32Array(n); // rank of part i merged with the part after it, -1 when that is no token
    const heap = new Float64Array(3 * n); // n - 1 initial pairs, at most 2 more per merge
    let size = 0;

    const rankOf = (start: number, mid: number, end: number): number => {
      if (end - start > this.maxTokenLength) return -1;
      const left = partRank[start];
      const right = partRank[mid];
      if (left < 0 || right < 0) return this.ranks.get(bytes.substring(start, end)) ?? -1;
      const key = left * RANK_SPAN + right;
      let r = this.pairCache.get(key);
      if (r === undefined) {
        r = this.ranks.get(bytes.substring(start, end)) ?? -1;
        if (this.pairCache.size >= PAIR_CACHE_ENTRIES) this.pairCache.clear();
        this.pairCache.set(key, r);
      }
      return r;
    };
    const push = (key: number): void => {
      let i = size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent] <= key) break;
        heap[i] = heap[parent];
        i = parent;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0];
      const last = heap[--size];
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= size) break;
        const child = left + 1 < size && heap[left + 1] < heap[left] ? left + 1 : left;
        if (heap[child] >= last) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
      return top;
    };

    for (let i = 0; i < n; i++) {
      next[i] = i + 1;
      prev[i] = i - 1;
      partRank[i] = this.byteRank[bytes.charCodeAt(i)];
    }
    // The initial pairs, in position order: already a valid heap when all ranks are equal, and built bottom-up otherwise.
    for (let i = 0; i < n - 1; i++) {
      const r = this.bytePairRank[(bytes.charCodeAt(i) << 8) | bytes.charCodeAt(i + 1)];
      pairRank[i] = r;
      if (r >= 0) heap[size++] = r * POS_SPAN + i;
    }
    pairRank[n - 1] = -1;
    for (let i = (size >> 1) - 1; i >= 0; i--) {
      const key = heap[i];
      let j = i;
      for (;;) {
        const left = 2 * j + 1;
        if (left >= size) break;
        const child = left + 1 < size && heap[left + 1] < heap[left] ? left + 1 : left;
        if (heap[child] >= key) break;
        heap[j] = heap[child];
        j = child;
      }
      heap[j] = key;
    }

    while (size > 0) {
      const key = pop();
      const rank = Math.floor(key / POS_SPAN);
      const pos = key - rank * POS_SPAN;
      // A stale entry: its part was merged into the one before it, or its pair changed since it was pushed. An entry
      // whose (rank, position) still matches the current pair is that pair, so checking the rank suffices.
      if (pairRank[pos] !== rank) continue;
      const absorbed = next[pos];
      const end = next[absorbed];
      next[pos] = end;
      if (end < n) prev[end] = pos;
      pairRank[absorbed] = -1;
      partRank[pos] = rank;
      const r = end < n ? rankOf(pos, end, next[end]) : -1;
      pairRank[pos] = r;
      if (r >= 0) push(r * POS_SPAN + pos);
      const before = prev[pos];
      if (before >= 0) {
        const rb = rankOf(before, pos, end);
        pairRank[before] = rb;
        if (rb >= 0) push(rb * POS_SPAN + before);
      }
    }

    const out: number[] = [];
    for (let i = 0; i < n; i = next[i]) {
      const id = partRank[i];
      if (id >= 0) out.push(id);
    }
    return out;
  }
}

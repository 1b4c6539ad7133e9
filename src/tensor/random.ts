// Seeded random numbers: a Philox4x32-10 counter generator, so a seed gives the same numbers on
// every backend, platform and run (the state is just {seed, offset}: easy to checkpoint).

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32. */
function mulhi(a: number, b: number): number {
  const aL = a & 0xffff, aH = a >>> 16, bL = b & 0xffff, bH = b >>> 16;
  const t = aL * bL;
  const m1 = aH * bL + (t >>> 16);
  const m2 = aL * bH + (m1 & 0xffff);
  return (aH * bH + Math.floor(m1 / 0x10000) + Math.floor(m2 / 0x10000)) >>> 0;
}

export interface GeneratorState {
  seed: number;
  offset: number;
}

export class Generator {
  private seed = 0;
  private offset = 0;
  private readonly block = new Uint32Array(4);

  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): this {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`manualSeed: seed must be a non-negative integer, got ${seed}`);
    this.seed = seed;
    this.offset = 0;
    return this;
  }
  getState(): GeneratorState {
    return { seed: this.seed, offset: this.offset };
  }
  setState(s: GeneratorState): void {
    this.manualSeed(s.seed);
    this.offset = s.offset;
  }

  /** Fills `block` with the next four uint32 (one Philox4x32-10 evaluation). */
  private next(): Uint32Array {
    let c0 = this.offset % 0x100000000, c1 = Math.floor(this.offset / 0x100000000) >>> 0, c2 = 0, c3 = 0;
    let k0 = this.seed % 0x100000000, k1 = Math.floor(this.seed / 0x100000000) >>> 0;
    for (let r = 0; r < 10; r++) {
      const hi0 = mulhi(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
      const hi1 = mulhi(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
      c0 = (hi1 ^ c1 ^ k0) >>> 0;
      c1 = lo1;
      c2 = (hi0 ^ c3 ^ k1) >>> 0;
      c3 = lo0;
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    this.offset++;
    const b = this.block;
    b[0] = c0; b[1] = c1; b[2] = c2; b[3] = c3;
    return b;
  }

  /** n raw uint32 values. */
  uint32(n: number): Uint32Array {
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i += 4) {
      const b = this.next();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = b[j]!;
    }
    return out;
  }

  /** n floats uniform in [0, 1), with 24 random bits each (exactly representable in float32). */
  uniform(n: number): Float64Array {
    const u = this.uint32(n);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = (u[i]! >>> 8) * 2 ** -24;
    return out;
  }

  /** n standard normal samples (Box-Muller over pairs). */
  normal(n: number): Float64Array {
    const u = this.uint32(n + (n & 1));
    const out = new Float64Array(n);
    for (let i = 0; i < n; i += 2) {
      const u1 = ((u[i]! >>> 8) + 1) * 2 ** -24; // (0, 1]: log is finite
      const u2 = (u[i + 1]! >>> 8) * 2 ** -24;
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
    }
    return out;
  }

  /** n integers uniform in [low, high). */
  integers(low: number, high: number, n: number): Int32Array {
    if (!(high > low)) throw new Error(`randint: empty range [${low}, ${high})`);
    const u = this.uint32(n);
    const out = new Int32Array(n);
    const range = high - low;
    for (let i = 0; i < n; i++) out[i] = low + Math.floor((u[i]! / 0x100000000) * range);
    return out;
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    const u = this.uint32(n);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor((u[i]! / 0x100000000) * (i + 1));
      const t = p[i]!; p[i] = p[j]!; p[j] = t;
    }
    return p;
  }
}

/** The generator used when an op is not given one. */
export const defaultGenerator = new Generator(0);

/** Seeds the default generator, like torch.manual_seed. */
export function manualSeed(seed: number): void {
  defaultGenerator.manualSeed(seed);
}

// Band-limited resampling: windowed-sinc polyphase filtering, as torchaudio.functional.resample (sinc_interp_hann).
//
// The ratio is reduced by the gcd of the rates to orig / new; output sample j sits at input time j * orig / new and is
// sum_m x[m] * h(m - j * orig / new), with h a sinc low-pass at rolloff * min(from, to) / 2 under a Hann window spanning
// lowpassFilterWidth zero crossings on each side. The filter depends only on the phase j mod new, so each phase's taps
// are computed once (in float64). Defaults and output length (ceil(n * to / from)) equal torchaudio's, zeros outside
// the signal included, so features computed from our resampled audio match a PyTorch pipeline's.

export interface ResampleOptions {
  /** Zero crossings of the sinc on each side (torchaudio's lowpass_filter_width, default 6): sharper cutoff, more taps. */
  lowpassFilterWidth?: number;
  /** Cutoff as a fraction of the lower Nyquist frequency (default 0.99), leaving room for the transition band. */
  rolloff?: number;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function checkRate(name: string, rate: number): void {
  if (typeof rate !== 'number' || !Number.isInteger(rate) || rate <= 0) throw new Error(`resample: ${name} must be a positive integer (Hz), got ${rate}`);
}

interface Phase {
  /** First input offset relative to k * orig. */
  lo: number;
  taps: Float64Array;
}

/** Each phase's nonzero taps: those with |t| < lowpassFilterWidth, t the time offset in cycles of the cutoff. */
function phases(orig: number, nw: number, lpw: number, rolloff: number): Phase[] {
  const base = Math.min(orig, nw) * rolloff;
  const halfWidth = (lpw * orig) / base; // in input samples
  const scale = base / orig;
  const out: Phase[] = [];
  for (let i = 0; i < nw; i++) {
    const centre = (i * orig) / nw;
    const lo = Math.floor(centre - halfWidth);
    const hi = Math.ceil(centre + halfWidth);
    const taps: number[] = [];
    let first: number | null = null;
    for (let d = lo; d <= hi; d++) {
      const t = (d / orig - i / nw) * base;
      if (Math.abs(t) >= lpw) continue;
      first ??= d;
      const window = Math.cos((t * Math.PI) / lpw / 2) ** 2;
      const pt = t * Math.PI;
      taps.push((pt === 0 ? 1 : Math.sin(pt) / pt) * window * scale);
    }
    out.push({ lo: first ?? 0, taps: Float64Array.from(taps) });
  }
  return out;
}

/** Resamples a mono signal from `fromRate` to `toRate` Hz (integers). Equal rates return a copy. */
export function resample(samples: Float32Array | Float64Array | readonly number[], fromRate: number, toRate: number, opts: ResampleOptions = {}): Float32Array {
  checkRate('fromRate', fromRate);
  checkRate('toRate', toRate);
  const lpw = opts.lowpassFilterWidth ?? 6;
  const rolloff = opts.rolloff ?? 0.99;
  if (!Number.isInteger(lpw) || lpw <= 0) throw new Error(`resample: lowpassFilterWidth must be a positive integer, got ${lpw}`);
  if (!(rolloff > 0 && rolloff <= 1)) throw new Error(`resample: rolloff must be in (0, 1], got ${rolloff}`);
  const n = samples.length;
  if (n === 0) throw new Error(`resample: empty input (0 samples) from ${fromRate} Hz`);
  if (fromRate === toRate) return Float32Array.from(samples);
  const g = gcd(fromRate, toRate);
  const orig = fromRate / g, nw = toRate / g;
  const table = phases(orig, nw, lpw, rolloff);
  const outLength = Math.ceil((nw * n) / orig);
  const out = new Float32Array(outLength);
  for (let j = 0, k = 0, i = 0; j < outLength; j++) {
    const { lo, taps } = table[i]!;
    const m0 = k * orig + lo;
    // Taps that fall outside the signal meet zeros (torchaudio pads with zeros).
    const a = Math.max(0, -m0), b = Math.min(taps.length, n - m0);
    let s = 0;
    for (let t = a; t < b; t++) s += samples[m0 + t]! * taps[t]!;
    out[j] = s;
    if (++i === nw) { i = 0; k++; }
  }
  return out;
}

// A small dependency-free SVG line chart: several named curves in one picture, with axes, ticks, labels and a legend.

export interface Series {
  name: string;
  /** [x, y] pairs; points whose y is not finite (or not positive on a log axis) break the line. */
  points: readonly (readonly [number, number])[];
  /** Any SVG colour (default: the next of a ten-colour palette). */
  color?: string;
}

export interface ChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Pixels (default 720 x 440). */
  width?: number;
  height?: number;
  /** A logarithmic y axis (base 10). */
  logY?: boolean;
}

// Matplotlib's tab10, so that pictures look familiar next to PyTorch recipes' plots.
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Tick positions at a 1, 2 or 5 x 10^k spacing covering [lo, hi] with about `count` intervals. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  // Rounded to the step's decimals so that 0.30000000000000004 prints as 0.3.
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(decimals)));
  return out.filter((v) => v >= lo - step * 1e-9);
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1).replace('e+', 'e');
  return String(Number(v.toPrecision(6)));
}

/** The picture as an SVG document. At least one series must have a drawable point. */
export function lineChart(series: readonly Series[], opts: ChartOptions = {}): string {
  const width = opts.width ?? 720, height = opts.height ?? 440;
  const logY = opts.logY ?? false;
  const ok = (y: number): boolean => Number.isFinite(y) && (!logY || y > 0);
  const drawn = series.map((s) => s.points.filter(([x, y]) => Number.isFinite(x) && ok(y)));
  const xs = drawn.flat().map(([x]) => x);
  const ys = drawn.flat().map(([, y]) => (logY ? Math.log10(y) : y));
  if (xs.length === 0) throw new Error('lineChart: no finite points to draw');
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  // A margin of 4% above and below, so that curves do not run along the frame (matplotlib uses 5%).
  const pad = (y1 - y0) * 0.04;
  y0 -= pad;
  y1 += pad;
  const xTicks = niceTicks(x0, x1);
  const yTicks = (logY ? niceTicks(Math.floor(y0), Math.ceil(y1)).filter(Number.isInteger) : niceTicks(y0, y1)).filter((t) => t >= y0 && t <= y1);

  const m = { left: 72, right: 24, top: opts.title ? 44 : 20, bottom: 56 };
  const pw = width - m.left - m.right, ph = height - m.top - m.bottom;
  const px = (x: number): number => m.left + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number): number => m.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const f = (v: number): string => v.toFixed(2);

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  if (opts.title) out.push(`<text x="${f(width / 2)}" y="26" text-anchor="middle" font-size="16">${escapeXml(opts.title)}</text>`);
  for (const t of xTicks) {
    out.push(`<line x1="${f(px(t))}" y1="${m.top}" x2="${f(px(t))}" y2="${m.top + ph}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${f(px(t))}" y="${m.top + ph + 18}" text-anchor="middle">${formatTick(t)}</text>`);
  }
  for (const t of yTicks) {
    out.push(`<line x1="${m.left}" y1="${f(py(t))}" x2="${m.left + pw}" y2="${f(py(t))}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${m.left - 8}" y="${f(py(t) + 4)}" text-anchor="end">${formatTick(logY ? 10 ** t : t)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  if (opts.xLabel) out.push(`<text x="${f(m.left + pw / 2)}" y="${height - 14}" text-anchor="middle">${escapeXml(opts.xLabel)}</text>`);
  if (opts.yLabel) out.push(`<text transform="translate(18 ${f(m.top + ph / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(opts.yLabel)}</text>`);

  const legend: string[] = [];
  series.forEach((s, i) => {
    const color = escapeXml(s.color ?? PALETTE[i % PALETTE.length]!);
    const name = escapeXml(s.name);
    // Runs of drawable points: a non-finite value starts a new run.
    const runs: string[][] = [[]];
    for (const [x, y] of s.points) {
      if (Number.isFinite(x) && ok(y)) runs[runs.length - 1]!.push(`${f(px(x))},${f(py(logY ? Math.log10(y) : y))}`);
      else if (runs[runs.length - 1]!.length) runs.push([]);
    }
    out.push(`<g fill="none" stroke="${color}" stroke-width="1.8"><title>${name}</title>`);
    for (const run of runs) if (run.length > 1) out.push(`<polyline points="${run.join(' ')}"/>`);
    // Sparse curves (an eval every few hundred steps) get markers so that single points stay visible.
    const pts = runs.flat();
    if (pts.length <= 60) for (const p of pts) { const [cx, cy] = p.split(','); out.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="${color}"/>`); }
    out.push('</g>');
    const ly = m.top + 18 + i * 18;
    legend.push(`<line x1="${m.left + pw - 150}" y1="${ly - 4}" x2="${m.left + pw - 126}" y2="${ly - 4}" stroke="${color}" stroke-width="2.5"/>`);
    legend.push(`<text x="${m.left + pw - 120}" y="${ly}">${name}</text>`);
  });
  // The legend goes last, on a light box, so that curves passing behind it do not hide it.
  out.push(`<rect x="${m.left + pw - 158}" y="${m.top + 4}" width="150" height="${series.length * 18 + 8}" fill="white" fill-opacity="0.85" stroke="#ccc"/>`, ...legend);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

// The trainer's progress line: step/total, loss, learning rate, tokens per second and ETA; rewritten in place on a TTY.

/** Where progress goes: a stream such as process.stderr (isTTY decides between rewriting and one line per log). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** '1h02m', '3m05s', '42s'. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** '950', '12.3k', '1.20M'. */
function formatRate(r: number): string {
  if (r >= 1e6) return `${(r / 1e6).toFixed(2)}M`;
  if (r >= 1e3) return `${(r / 1e3).toFixed(1)}k`;
  return r.toFixed(0);
}

export interface ProgressInfo {
  step: number;
  total: number;
  loss: number;
  lr: number;
  tokensPerSecond?: number;
  etaSeconds: number;
  /** The loss function's metrics to show after the loss (name value, 4 significant digits). */
  metrics?: Record<string, number>;
}

export function progressLine(p: ProgressInfo): string {
  const width = String(p.total).length;
  const parts = [`step ${String(p.step).padStart(width)}/${p.total}`, `loss ${p.loss.toFixed(4)}`];
  for (const [k, v] of Object.entries(p.metrics ?? {})) parts.push(`${k} ${Number.isFinite(v) ? Number(v.toPrecision(4)) : v}`);
  parts.push(`lr ${p.lr.toExponential(2)}`);
  if (p.tokensPerSecond !== undefined) parts.push(`${formatRate(p.tokensPerSecond)} tok/s`);
  parts.push(`ETA ${formatDuration(p.etaSeconds)}`);
  return parts.join(' | ');
}

/** Writes progress: on a TTY one line rewritten at every update, elsewhere only the lines it is told to keep. */
export class Progress {
  private open = false; // a TTY line is on screen without its line end

  constructor(private readonly stream: ProgressStream | null) {}

  /** An update; `keep` (a log step) makes it a line of its own where the output is not a TTY. */
  update(line: string, keep: boolean): void {
    if (!this.stream) return;
    if (this.stream.isTTY) {
      this.stream.write(`\r\x1b[K${line}`);
      this.open = true;
    } else if (keep) {
      this.stream.write(`${line}\n`);
    }
  }

  /** A message on its own line (evaluations, checkpoints), below the progress line. */
  message(line: string): void {
    if (!this.stream) return;
    this.finish();
    this.stream.write(`${line}\n`);
  }

  /** Ends the in-place line, so that later output starts on a new line. */
  finish(): void {
    if (this.open) this.stream!.write('\n');
    this.open = false;
  }
}

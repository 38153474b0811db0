// A progress line for long loops: label, a bar, done/total, extra fields, the rate and the time left. On a terminal
// it redraws one line; otherwise (a log file, a pipe) it writes a line about every 5% and at the end (and, with
// firstEstimate, the first time a rate is known: the time left after the first unit of work).

/** A duration for people: 42s, 3m07s, 2h05m; '?' when unknown. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  if (h) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return m ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

export interface ProgressOptions {
  /** What is counted, singular: 'step', 'point', 'epoch' (default 'step'). */
  unit?: string;
  /** Where the line goes (default process.stderr); isTTY decides redraw or log lines. */
  stream?: { isTTY?: boolean; write(s: string): unknown };
  /** Seconds since some fixed origin, for the rate (default: the process clock). */
  now?: () => number;
  /**
   * Off a terminal, also write the first report with a rate (for a loop whose 5% takes long: a grid says what it
   * will cost after its first block).
   */
  firstEstimate?: boolean;
  /** Width of the bar in characters. */
  width?: number;
}

/**
 * Reports `done` of `total` with extra fields (name -> value, shown in order). The rate is measured from the first
 * report (so time spent before it, such as compiling, and work done by an earlier run are not counted); `secs`
 * gives the elapsed time explicitly instead of the clock.
 */
export type Progress = (done: number, total: number, fields?: Record<string, string | number>, secs?: number) => void;

export function progress(label: string, o: ProgressOptions = {}): Progress {
  const unit = o.unit ?? 'step';
  const out = o.stream ?? process.stderr;
  const w = o.width ?? 24;
  const now = o.now ?? (() => performance.now() / 1000);
  let first: { done: number; secs: number } | null = null;
  let lastBucket = -1;
  let rateShown = false;
  return (done, total, fields = {}, secs = now()) => {
    if (!first) first = { done, secs };
    const rate = done > first.done ? (secs - first.secs) / (done - first.done) : NaN;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(frac * w);
    const extra = Object.entries(fields)
      .map(([k, v]) => `  ${k} ${v}`)
      .join('');
    const rateText = Number.isFinite(rate) ? rate.toFixed(2) : '?';
    const line =
      `${label} [${'#'.repeat(filled)}${'.'.repeat(w - filled)}] ${unit} ${done}/${total}${extra}  ` +
      `${rateText} s/${unit}  ETA ${formatDuration((total - done) * rate)}`;
    if (out.isTTY) {
      out.write(`\r${line}\x1b[K${done >= total ? '\n' : ''}`);
    } else {
      const bucket = Math.floor(frac * 20);
      const firstRate = !!o.firstEstimate && !rateShown && Number.isFinite(rate);
      if (bucket !== lastBucket || done >= total || firstRate) {
        lastBucket = bucket;
        rateShown ||= Number.isFinite(rate);
        out.write(`${line}\n`);
      }
    }
  };
}

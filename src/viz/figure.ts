// Pictures as SVG, rasterized to PNG with sharp: heatmaps with a colorbar (log, linear or diverging scale; cells of
// a mask, or a grid over coordinates with axes), binary masks, text and panels side by side (line charts and 3-D
// surfaces: charts.ts).
import { existsSync } from 'node:fs';
import sharp from 'sharp';
import { interpolateRdBu, interpolateViridis } from 'd3-scale-chromatic';
import { gridCells } from '../run/grid.ts';
/** Colormaps, t in [0, 1]: ColorBrewer RdBu reversed (blue = low, red = high; the reference's loss maps), viridis. */
export const COLORMAPS = {
  RdBu_r: (t: number) => interpolateRdBu(1 - t),
  viridis: interpolateViridis,
} satisfies Record<string, (t: number) => string>;
export type Colormap = keyof typeof COLORMAPS;

/** The colour at t (clamped to [0, 1]; not finite: the top colour). */
export function colorAt(cmap: Colormap, t: number): string {
  return COLORMAPS[cmap](Math.min(1, Math.max(0, Number.isFinite(t) ? t : 1)));
}

export interface Panel {
  svg: string;
  width: number;
  height: number;
}

export interface HeatmapOptions {
  title: string;
  cmap: Colormap;
  scale: 'log' | 'linear';
  /** The colour range (default: the range of the finite values; for log, of the positive ones). */
  vmin?: number;
  vmax?: number;
  /** Diverging: vmin..mid and mid..vmax fill the lower and the upper half of the colormap. */
  mid?: number;
  /** Colorbar ticks: value and label (default: round values in the range). */
  ticks?: [number, string][];
  /** Colorbar title. */
  legend?: string;
  /** Optional outline: a binary mask (same grid as the mask, placed at offset pad) drawn as a contour. */
  outline?: { data: Uint8Array; H: number; W: number; pad: number };
  cellPx?: number;
  /**
   * Coordinates and axes: column i at xs[i], row j at ys[j] (row 0 at the bottom), for a grid of points such as a
   * loss surface. Without them, row 0 is drawn at the top and there are no axes (a grid of cells).
   */
  axes?: {
    xs: number[];
    ys: number[];
    xlabel: string;
    ylabel: string;
    /** ys growing downwards, as the rows of a matrix. */
    yDown?: boolean;
    /** Ticks at the points themselves (numbered items) rather than at round values. */
    atPoints?: boolean;
  };
}

export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const FONT = 'font-family="DejaVu Sans, sans-serif"';

/** A short label for a tick value. */
export const tickLabel = (v: number) => (v === 0 ? '0' : String(Number(v.toPrecision(3))));

/** About n round values (steps of 1, 2 or 5 times a power of ten) from lo to hi. */
export function niceTicks(lo: number, hi: number, n = 6): number[] {
  if (!(hi > lo)) return Number.isFinite(lo) ? [lo] : [];
  const p = 10 ** Math.floor(Math.log10((hi - lo) / n));
  const at = (step: number) => {
    const out: number[] = [];
    for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) {
      out.push(Number((i * step).toPrecision(12)));
    }
    return out;
  };
  const off = (t: number[]) => Math.abs(t.length - n);
  return [1, 2, 5, 10].map((m) => at(m * p)).reduce((a, b) => (off(b) < off(a) ? b : a));
}

/** Round values on a log axis from lo to hi: powers of ten, with 2 and 5 times them when the range is short. */
export function logTicks(lo: number, hi: number): number[] {
  const e0 = Math.floor(Math.log10(lo)),
    e1 = Math.ceil(Math.log10(hi));
  const pick = (ms: number[]) => {
    const out: number[] = [];
    for (let e = e0; e <= e1; e++) for (const m of ms) out.push(Number((m * 10 ** e).toPrecision(12)));
    return out.filter((v) => v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9));
  };
  const ts = pick([1]);
  if (ts.length >= 3) return ts;
  const more = pick([1, 2, 5]);
  return more.length >= 2 ? more : niceTicks(lo, hi, 4); // a short range: round values, evenly spaced
}

/** Maps a value to [0, 1] on the heatmap's scale (not clamped). */
function scaleOf(o: HeatmapOptions, values: ArrayLike<number>) {
  const fin = Array.from(values).filter((v) => Number.isFinite(v) && (o.scale === 'linear' || v > 0));
  let lo = o.vmin ?? (fin.length ? Math.min(...fin) : o.scale === 'log' ? 1 : 0);
  let hi = o.vmax ?? (fin.length ? Math.max(...fin) : lo + 1);
  if (o.mid !== undefined) {
    lo = Math.min(lo, o.mid);
    hi = Math.max(hi, o.mid);
  }
  if (!(hi > lo)) hi = o.scale === 'log' ? lo * 10 : lo + 1;
  const f = (v: number) => (o.scale === 'log' ? Math.log(Math.max(v, 1e-12)) : v);
  const [a, b] = [f(lo), f(hi)];
  if (o.mid === undefined) return { norm: (v: number) => (f(v) - a) / (b - a), lo, hi };
  const m = f(o.mid);
  const half = (v: number, from: number, to: number) => (to > from ? (v - from) / (to - from) : 0);
  return { norm: (v: number) => (f(v) < m ? 0.5 * half(f(v), a, m) : 0.5 + 0.5 * half(f(v), m, b)), lo, hi };
}

/** A heatmap of values [H, W] with a title and a colorbar on the right (and axes, with o.axes). */
export function heatmap(values: ArrayLike<number>, H: number, W: number, o: HeatmapOptions): Panel {
  const cell = o.cellPx ?? Math.max(3, Math.floor(360 / Math.max(H, W)));
  const ax = o.axes;
  const top = o.legend ? 44 : 30,
    left = ax ? 62 : 10,
    gw = W * cell,
    gh = H * cell;
  const { norm, lo, hi } = scaleOf(o, values);
  const fill = (v: number) => (Number.isNaN(v) ? '#888' : colorAt(o.cmap, norm(v)));
  const parts: string[] = [`<text x="${left}" y="20" ${FONT} font-size="14">${esc(o.title)}</text>`];
  if (ax) {
    // cells centred on their points, axes in the points' coordinates
    const cells = gridCells(ax.xs, ax.ys, values, (v) => v);
    const x0 = Math.min(...cells.map((c) => c.x)),
      x1 = Math.max(...cells.map((c) => c.x2));
    const y0 = Math.min(...cells.map((c) => c.y)),
      y1 = Math.max(...cells.map((c) => c.y2));
    const X = (v: number) => left + ((v - x0) / (x1 - x0)) * gw;
    const Y = (v: number) => (ax.yDown ? top + ((v - y0) / (y1 - y0)) * gh : top + gh - ((v - y0) / (y1 - y0)) * gh);
    for (const c of cells) {
      const [xa, xb] = [X(Math.min(c.x, c.x2)), X(Math.max(c.x, c.x2))];
      const [ya, yb] = [Y(c.y), Y(c.y2)].sort((a, b) => a - b);
      parts.push(`<rect x="${xa}" y="${ya}" width="${xb - xa + 0.5}" height="${yb - ya + 0.5}" fill="${fill(c.v)}"/>`);
    }
    parts.push(`<rect x="${left}" y="${top}" width="${gw}" height="${gh}" fill="none" stroke="#444"/>`);
    const every = (vs: number[]) => vs.filter((_, i) => i % Math.ceil(vs.length / 12) === 0);
    const tickAt = (vs: number[], lo: number, hi: number) => (ax.atPoints ? every(vs) : niceTicks(lo, hi));
    for (const v of tickAt(ax.xs, x0, x1)) {
      parts.push(
        `<line x1="${X(v)}" x2="${X(v)}" y1="${top + gh}" y2="${top + gh + 4}" stroke="#444"/>` +
          `<text x="${X(v)}" y="${top + gh + 16}" ${FONT} font-size="11" text-anchor="middle">${tickLabel(v)}</text>`,
      );
    }
    for (const v of tickAt(ax.ys, y0, y1)) {
      parts.push(
        `<line x1="${left - 4}" x2="${left}" y1="${Y(v)}" y2="${Y(v)}" stroke="#444"/>` +
          `<text x="${left - 6}" y="${Y(v) + 4}" ${FONT} font-size="11" text-anchor="end">${tickLabel(v)}</text>`,
      );
    }
    const label = (at: string, s: string) => `<text ${at} ${FONT} font-size="12" text-anchor="middle">${esc(s)}</text>`;
    parts.push(label(`x="${left + gw / 2}" y="${top + gh + 34}"`, ax.xlabel));
    parts.push(label(`transform="translate(14,${top + gh / 2}) rotate(-90)"`, ax.ylabel));
  } else {
    for (let i = 0; i < H; i++)
      for (let j = 0; j < W; j++) {
        const at = `x="${left + j * cell}" y="${top + i * cell}"`;
        parts.push(`<rect ${at} width="${cell + 0.5}" height="${cell + 0.5}" fill="${fill(values[i * W + j])}"/>`);
      }
  }
  if (o.outline) {
    const { data, H: mh, W: mw, pad } = o.outline;
    const at = (i: number, j: number) => (i >= 0 && j >= 0 && i < mh && j < mw ? data[i * mw + j] : 0);
    const segs: string[] = [];
    for (let i = -1; i <= mh; i++)
      for (let j = -1; j <= mw; j++) {
        const x = left + (j + pad) * cell,
          y = top + (i + pad) * cell;
        if (at(i, j) !== at(i, j + 1)) segs.push(`M${x + cell},${y}v${cell}`);
        if (at(i, j) !== at(i + 1, j)) segs.push(`M${x},${y + cell}h${cell}`);
      }
    parts.push(`<path d="${segs.join('')}" stroke="black" stroke-width="1" fill="none" opacity="0.6"/>`);
  }
  // colorbar
  const bx = left + gw + 12,
    bw = 14,
    steps = 64;
  for (let s = 0; s < steps; s++) {
    const y = top + gh - ((s + 1) * gh) / steps;
    const c = colorAt(o.cmap, s / (steps - 1));
    parts.push(`<rect x="${bx}" y="${y}" width="${bw}" height="${gh / steps + 0.5}" fill="${c}"/>`);
  }
  if (o.legend) parts.push(`<text x="${bx}" y="${top - 6}" ${FONT} font-size="11">${esc(o.legend)}</text>`);
  const auto = o.scale === 'log' ? logTicks(lo, hi) : niceTicks(lo, hi);
  const ticks = o.ticks ?? auto.map((v): [number, string] => [v, tickLabel(v)]);
  for (const [v, label] of ticks) {
    const y = top + gh - Math.min(1, Math.max(0, norm(v))) * gh;
    parts.push(
      `<line x1="${bx + bw}" x2="${bx + bw + 4}" y1="${y}" y2="${y}" stroke="black"/>` +
        `<text x="${bx + bw + 6}" y="${y + 4}" ${FONT} font-size="11">${esc(label)}</text>`,
    );
  }
  const titleWidth = left + 7.5 * o.title.length; // DejaVu Sans at 14 px: about 7.5 px a character
  return { svg: parts.join(''), width: Math.max(bx + bw + 48, titleWidth), height: top + gh + (ax ? 44 : 10) };
}

/** A mask with a title: positive cells white, negative black, zero grey. */
export function maskPanel(data: ArrayLike<number>, H: number, W: number, title: string, cellPx?: number): Panel {
  const cell = cellPx ?? Math.max(3, Math.floor(360 / Math.max(H, W)));
  const parts = [
    `<text x="10" y="20" font-family="DejaVu Sans, sans-serif" font-size="14">${esc(title)}</text>`,
    `<rect x="9" y="29" width="${W * cell + 2}" height="${H * cell + 2}" fill="none" stroke="#999"/>`,
  ];
  for (let i = 0; i < H; i++)
    for (let j = 0; j < W; j++) {
      const v = data[i * W + j];
      const fill = v > 0 ? '#ffffff' : v < 0 ? '#000000' : '#bbbbbb';
      parts.push(
        `<rect x="${10 + j * cell}" y="${30 + i * cell}" width="${cell + 0.5}" height="${cell + 0.5}" fill="${fill}"/>`,
      );
    }
  return { svg: parts.join(''), width: W * cell + 30, height: H * cell + 40 };
}

export function textPanel(lines: string[], width = 320): Panel {
  const parts = lines.map(
    (l, i) =>
      `<text x="10" y="${24 + i * 18}" font-family="DejaVu Sans Mono, monospace" font-size="13">${esc(l)}</text>`,
  );
  return { svg: parts.join(''), width, height: 30 + lines.length * 18 };
}

/** Panels in rows, each row left to right, on a white background. */
export function compose(rows: Panel[][], title?: string): Panel {
  const titleH = title ? 30 : 0;
  let y = titleH,
    width = 0;
  const parts: string[] = title
    ? [
        `<text x="10" y="22" font-family="DejaVu Sans, sans-serif"` +
          ` font-size="16" font-weight="bold">${esc(title)}</text>`,
      ]
    : [];
  for (const row of rows) {
    let x = 0,
      h = 0;
    for (const p of row) {
      parts.push(`<g transform="translate(${x},${y})">${p.svg}</g>`);
      x += p.width;
      h = Math.max(h, p.height);
    }
    width = Math.max(width, x);
    y += h;
  }
  return { svg: parts.join(''), width, height: y };
}

/** Writes a panel as a PNG on white, `scale` pixels per SVG unit. */
export async function writePng(p: Panel, path: string, scale = 1): Promise<void> {
  const w = Math.ceil(p.width),
    h = Math.ceil(p.height);
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w * scale}" height="${h * scale}" ` +
    `viewBox="0 0 ${w} ${h}"><rect width="100%" height="100%" fill="white"/>${p.svg}</svg>`;
  await sharp(Buffer.from(svg)).png().toFile(path);
}

/** The loss map of the reference's figures: log scale, RdBu_r, ticks like 0.4 / 1 / 4 / >256, plus ln 10 (a uniform
 * guess). */
export function lossMap(
  values: ArrayLike<number>,
  H: number,
  W: number,
  title: string,
  outline?: HeatmapOptions['outline'],
): Panel {
  return heatmap(values, H, W, {
    title,
    cmap: 'RdBu_r',
    scale: 'log',
    vmin: 0.125,
    vmax: 256,
    outline,
    ticks: [
      [0.125, '0.125'],
      [0.4, '0.4'],
      [1, '1'],
      [Math.LN10, 'ln10'],
      [16, '16'],
      [256, '>256'],
    ],
  });
}

export function accMap(
  values: ArrayLike<number>,
  H: number,
  W: number,
  title: string,
  outline?: HeatmapOptions['outline'],
): Panel {
  return heatmap(values, H, W, {
    title,
    cmap: 'viridis',
    scale: 'linear',
    vmin: 0,
    vmax: 1,
    outline,
    ticks: [
      [0, '0'],
      [0.25, '0.25'],
      [0.5, '0.5'],
      [0.75, '0.75'],
      [1, '1'],
    ],
  });
}

/** A matrix of cosine similarities (row i, column j of points 1..n, row 1 at the top) on RdBu_r from -1 to 1. */
export function cosineMap(c: number[][], title: string): Panel {
  const idx = c.map((_, i) => i + 1);
  const axes = { xs: idx, ys: idx, xlabel: 'point', ylabel: 'point', yDown: true, atPoints: true };
  const cell = Math.max(16, Math.floor(240 / Math.max(1, c.length)));
  const scale = { cmap: 'RdBu_r', scale: 'linear', vmin: -1, vmax: 1 } as const;
  return heatmap(c.flat(), c.length, c.length, { title, ...scale, legend: 'cos', axes, cellPx: cell });
}

/**
 * PNG files laid out as rows of tiles, each scaled to `w` pixels wide, with white gaps (the figure sets' panels);
 * files that do not exist are left out.
 */
export async function tilesPng(rows: string[][], path: string, w = 460): Promise<void> {
  const tiles = await Promise.all(
    rows.map((r) =>
      Promise.all(
        r.filter(existsSync).map(async (f) => {
          const buf = await sharp(f).resize({ width: w }).png().toBuffer();
          return { buf, h: (await sharp(buf).metadata()).height ?? w };
        }),
      ),
    ),
  );
  const rowH = tiles.map((r) => Math.max(0, ...r.map((t) => t.h)));
  const top = (i: number) => rowH.slice(0, i).reduce((a, b) => a + b + 10, 0);
  const width = Math.max(1, ...tiles.map((r) => r.length)) * (w + 10);
  const composites = tiles.flatMap((r, i) => r.map((t, j) => ({ input: t.buf, left: j * (w + 10), top: top(i) })));
  await sharp({ create: { width, height: Math.max(1, top(rows.length)), channels: 3, background: '#ffffff' } })
    .composite(composites)
    .png()
    .toFile(path);
}

// Pictures as SVG, rasterized to PNG with sharp: cell heatmaps with a colorbar (log or linear scale),
// binary masks, and panels side by side.
import sharp from 'sharp';

type RGB = [number, number, number];
const hex = (h: string): RGB => [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];

/** Colormap anchors: ColorBrewer RdBu reversed (blue = low, red = high; the reference's loss maps) and viridis. */
export const COLORMAPS: Record<string, RGB[]> = {
  RdBu_r: ['#053061', '#2166ac', '#4393c3', '#92c5de', '#d1e5f0', '#f7f7f7', '#fddbc7', '#f4a582', '#d6604d', '#b2182b', '#67001f'].map(hex),
  viridis: ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'].map(hex),
};

export function colorAt(cmap: string, t: number): string {
  const c = COLORMAPS[cmap];
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 1)) * (c.length - 1);
  const i = Math.min(c.length - 2, Math.floor(x));
  const f = x - i;
  const rgb = c[i].map((v, k) => Math.round(v + f * (c[i + 1][k] - v)));
  return `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
}

export interface Panel {
  svg: string;
  width: number;
  height: number;
}

export interface HeatmapOptions {
  title: string;
  cmap: string;
  scale: 'log' | 'linear';
  vmin: number;
  vmax: number;
  /** Colorbar ticks: value and label. */
  ticks: [number, string][];
  /** Optional outline: a binary mask (same grid as the mask, placed at offset pad) drawn as a contour. */
  outline?: { data: Uint8Array; H: number; W: number; pad: number };
  cellPx?: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A heatmap of values [H, W] (row 0 at the top) with a title and a colorbar on the right. */
export function heatmap(values: ArrayLike<number>, H: number, W: number, o: HeatmapOptions): Panel {
  const cell = o.cellPx ?? Math.max(3, Math.floor(360 / Math.max(H, W)));
  const top = 30, left = 10, gw = W * cell, gh = H * cell;
  const norm = (v: number) => (o.scale === 'log' ? (Math.log(Math.max(v, 1e-12)) - Math.log(o.vmin)) / (Math.log(o.vmax) - Math.log(o.vmin)) : (v - o.vmin) / (o.vmax - o.vmin));
  const parts: string[] = [`<text x="${left}" y="20" font-family="DejaVu Sans, sans-serif" font-size="14">${esc(o.title)}</text>`];
  for (let i = 0; i < H; i++)
    for (let j = 0; j < W; j++) {
      const v = values[i * W + j];
      const fill = Number.isNaN(v) ? '#888' : colorAt(o.cmap, norm(v));
      parts.push(`<rect x="${left + j * cell}" y="${top + i * cell}" width="${cell + 0.5}" height="${cell + 0.5}" fill="${fill}"/>`);
    }
  if (o.outline) {
    const { data, H: mh, W: mw, pad } = o.outline;
    const at = (i: number, j: number) => (i >= 0 && j >= 0 && i < mh && j < mw ? data[i * mw + j] : 0);
    const segs: string[] = [];
    for (let i = -1; i <= mh; i++)
      for (let j = -1; j <= mw; j++) {
        const x = left + (j + pad) * cell, y = top + (i + pad) * cell;
        if (at(i, j) !== at(i, j + 1)) segs.push(`M${x + cell},${y}v${cell}`);
        if (at(i, j) !== at(i + 1, j)) segs.push(`M${x},${y + cell}h${cell}`);
      }
    parts.push(`<path d="${segs.join('')}" stroke="black" stroke-width="1" fill="none" opacity="0.6"/>`);
  }
  // colorbar
  const bx = left + gw + 12, bw = 14, steps = 64;
  for (let s = 0; s < steps; s++) {
    parts.push(`<rect x="${bx}" y="${top + gh - ((s + 1) * gh) / steps}" width="${bw}" height="${gh / steps + 0.5}" fill="${colorAt(o.cmap, s / (steps - 1))}"/>`);
  }
  for (const [v, label] of o.ticks) {
    const y = top + gh - Math.min(1, Math.max(0, norm(v))) * gh;
    parts.push(`<line x1="${bx + bw}" x2="${bx + bw + 4}" y1="${y}" y2="${y}" stroke="black"/><text x="${bx + bw + 6}" y="${y + 4}" font-family="DejaVu Sans, sans-serif" font-size="11">${esc(label)}</text>`);
  }
  return { svg: parts.join(''), width: bx + bw + 48, height: top + gh + 10 };
}

/** A mask with a title: positive cells white, negative black, zero grey. */
export function maskPanel(data: ArrayLike<number>, H: number, W: number, title: string, cellPx?: number): Panel {
  const cell = cellPx ?? Math.max(3, Math.floor(360 / Math.max(H, W)));
  const parts = [`<text x="10" y="20" font-family="DejaVu Sans, sans-serif" font-size="14">${esc(title)}</text>`, `<rect x="9" y="29" width="${W * cell + 2}" height="${H * cell + 2}" fill="none" stroke="#999"/>`];
  for (let i = 0; i < H; i++)
    for (let j = 0; j < W; j++) {
      const v = data[i * W + j];
      const fill = v > 0 ? '#ffffff' : v < 0 ? '#000000' : '#bbbbbb';
      parts.push(`<rect x="${10 + j * cell}" y="${30 + i * cell}" width="${cell + 0.5}" height="${cell + 0.5}" fill="${fill}"/>`);
    }
  return { svg: parts.join(''), width: W * cell + 30, height: H * cell + 40 };
}

export function textPanel(lines: string[], width = 320): Panel {
  const parts = lines.map((l, i) => `<text x="10" y="${24 + i * 18}" font-family="DejaVu Sans Mono, monospace" font-size="13">${esc(l)}</text>`);
  return { svg: parts.join(''), width, height: 30 + lines.length * 18 };
}

/** Panels in rows, each row left to right, on a white background. */
export function compose(rows: Panel[][], title?: string): Panel {
  const titleH = title ? 30 : 0;
  let y = titleH, width = 0;
  const parts: string[] = title ? [`<text x="10" y="22" font-family="DejaVu Sans, sans-serif" font-size="16" font-weight="bold">${esc(title)}</text>`] : [];
  for (const row of rows) {
    let x = 0, h = 0;
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

export async function writePng(p: Panel, path: string): Promise<void> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${Math.ceil(p.width)}" height="${Math.ceil(p.height)}"><rect width="100%" height="100%" fill="white"/>${p.svg}</svg>`;
  await sharp(Buffer.from(svg)).png().toFile(path);
}

/** The loss map of the reference's figures: log scale, RdBu_r, ticks like 0.4 / 1 / 4 / >256, plus ln 10 (a uniform guess). */
export function lossMap(values: ArrayLike<number>, H: number, W: number, title: string, outline?: HeatmapOptions['outline']): Panel {
  return heatmap(values, H, W, {
    title, cmap: 'RdBu_r', scale: 'log', vmin: 0.125, vmax: 256, outline,
    ticks: [[0.125, '0.125'], [0.4, '0.4'], [1, '1'], [Math.LN10, 'ln10'], [16, '16'], [256, '>256']],
  });
}

export function accMap(values: ArrayLike<number>, H: number, W: number, title: string, outline?: HeatmapOptions['outline']): Panel {
  return heatmap(values, H, W, { title, cmap: 'viridis', scale: 'linear', vmin: 0, vmax: 1, outline, ticks: [[0, '0'], [0.25, '0.25'], [0.5, '0.5'], [0.75, '0.75'], [1, '1']] });
}

export interface Series {
  name: string;
  color: string;
  /** x, mean, spread (drawn as an error bar of +-spread) */
  points: [number, number, number][];
}

/** A line chart with error bars and a legend. */
export function lineChart(series: Series[], o: { title: string; xlabel: string; ylabel: string; width?: number; height?: number }): Panel {
  const W = o.width ?? 560, H = o.height ?? 360, L = 60, T = 36, R = 130, Bm = 46;
  const pw = W - L - R, ph = H - T - Bm;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.flatMap((p) => [p[1] - p[2], p[1] + p[2]]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = Math.min(0, ...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-9) y1 = y0 + 1;
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const X = (v: number) => L + ((v - x0) / (x1 - x0 || 1)) * pw, Y = (v: number) => T + ph - ((v - y0) / (y1 - y0)) * ph;
  const f = 'font-family="DejaVu Sans, sans-serif"';
  const parts = [`<text x="${L}" y="22" ${f} font-size="14">${esc(o.title)}</text>`, `<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`];
  const digits = Math.max(0, Math.ceil(-Math.log10((y1 - y0) / 5)) + 1);
  for (let i = 0; i <= 5; i++) {
    const v = y0 + ((y1 - y0) * i) / 5;
    parts.push(`<line x1="${L - 4}" x2="${L}" y1="${Y(v)}" y2="${Y(v)}" stroke="#444"/><text x="${L - 6}" y="${Y(v) + 4}" ${f} font-size="10" text-anchor="end">${v.toFixed(digits)}</text>`);
  }
  for (const v of [...new Set(xs)].sort((a, b) => a - b)) parts.push(`<line x1="${X(v)}" x2="${X(v)}" y1="${T + ph}" y2="${T + ph + 4}" stroke="#444"/><text x="${X(v)}" y="${T + ph + 16}" ${f} font-size="10" text-anchor="middle">${v}</text>`);
  if (y0 < 0 && y1 > 0) parts.push(`<line x1="${L}" x2="${L + pw}" y1="${Y(0)}" y2="${Y(0)}" stroke="#bbb" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${L + pw / 2}" y="${H - 8}" ${f} font-size="12" text-anchor="middle">${esc(o.xlabel)}</text>`);
  parts.push(`<text transform="translate(14,${T + ph / 2}) rotate(-90)" ${f} font-size="12" text-anchor="middle">${esc(o.ylabel)}</text>`);
  series.forEach((s, si) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts.map((p) => `${X(p[0])},${Y(p[1])}`).join(' ')}"/>`);
    for (const [x, m, sd] of pts) {
      parts.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${Y(m - sd)}" y2="${Y(m + sd)}" stroke="${s.color}"/><circle cx="${X(x)}" cy="${Y(m)}" r="3" fill="${s.color}"/>`);
    }
    parts.push(`<line x1="${L + pw + 12}" x2="${L + pw + 32}" y1="${T + 12 + si * 18}" y2="${T + 12 + si * 18}" stroke="${s.color}" stroke-width="2"/><text x="${L + pw + 38}" y="${T + 16 + si * 18}" ${f} font-size="12">${esc(s.name)}</text>`);
  });
  return { svg: parts.join(''), width: W, height: H };
}

/**
 * A 3-D view of a surface z[ny, nx] over (xs, ys): cells as quadrilaterals seen from azimuth -60 and elevation 30
 * degrees, painted back to front, coloured by height (viridis). z is clipped at zmax.
 */
export function surface3d(xs: number[], ys: number[], z: ArrayLike<number>, o: { title: string; zmax?: number; width?: number; height?: number }): Panel {
  const W = o.width ?? 560, H = o.height ?? 440, nx = xs.length, ny = ys.length;
  const finite = Array.from(z).filter(Number.isFinite);
  const zmax = o.zmax ?? Math.max(...finite), zmin = Math.min(...finite);
  const zn = (v: number) => (Math.min(Number.isFinite(v) ? v : zmax, zmax) - zmin) / (zmax - zmin || 1);
  const az = (-60 * Math.PI) / 180, el = (30 * Math.PI) / 180;
  const proj = (i: number, j: number) => {
    const x = (2 * i) / (nx - 1) - 1, y = (2 * j) / (ny - 1) - 1, h = zn(z[j * nx + i]) * 1.2;
    const xr = x * Math.cos(az) - y * Math.sin(az), yr = x * Math.sin(az) + y * Math.cos(az);
    return { sx: W / 2 + xr * W * 0.3, sy: H * 0.62 - (yr * Math.sin(el) + h * Math.cos(el)) * H * 0.3, depth: yr * Math.cos(el) - h * Math.sin(el) };
  };
  const quads: { d: number; pts: string; c: number }[] = [];
  for (let j = 0; j + 1 < ny; j++)
    for (let i = 0; i + 1 < nx; i++) {
      const p = [proj(i, j), proj(i + 1, j), proj(i + 1, j + 1), proj(i, j + 1)];
      const c = (zn(z[j * nx + i]) + zn(z[j * nx + i + 1]) + zn(z[(j + 1) * nx + i + 1]) + zn(z[(j + 1) * nx + i])) / 4;
      quads.push({ d: p.reduce((s, q) => s + q.depth, 0) / 4, pts: p.map((q) => `${q.sx.toFixed(1)},${q.sy.toFixed(1)}`).join(' '), c });
    }
  quads.sort((a, b) => b.d - a.d);
  const parts = [`<text x="10" y="20" font-family="DejaVu Sans, sans-serif" font-size="14">${esc(o.title)}</text>`];
  for (const q of quads) parts.push(`<polygon points="${q.pts}" fill="${colorAt('viridis', q.c)}" stroke="#333" stroke-width="0.3"/>`);
  parts.push(`<text x="10" y="${H - 10}" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#555">height: loss from ${zmin.toPrecision(3)} to ${zmax.toPrecision(3)}${o.zmax !== undefined ? ' (clipped)' : ''}</text>`);
  return { svg: parts.join(''), width: W, height: H };
}

// Line charts and 3-D surface views as SVG panels.
import { colorAt, type Panel, esc } from './figure.ts';

export interface Series {
  name: string;
  color: string;
  /** x, mean, spread (drawn as an error bar of +-spread) */
  points: [number, number, number][];
}

/** A line chart with error bars and a legend. */
export function lineChart(
  series: Series[],
  o: { title: string; xlabel: string; ylabel: string; width?: number; height?: number },
): Panel {
  const W = o.width ?? 560,
    H = o.height ?? 360,
    L = 60,
    T = 36,
    R = 130,
    Bm = 46;
  const pw = W - L - R,
    ph = H - T - Bm;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.flatMap((p) => [p[1] - p[2], p[1] + p[2]]));
  const x0 = Math.min(...xs),
    x1 = Math.max(...xs);
  let y0 = Math.min(0, ...ys),
    y1 = Math.max(...ys);
  if (y1 - y0 < 1e-9) y1 = y0 + 1;
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const X = (v: number) => L + ((v - x0) / (x1 - x0 || 1)) * pw,
    Y = (v: number) => T + ph - ((v - y0) / (y1 - y0)) * ph;
  const f = 'font-family="DejaVu Sans, sans-serif"';
  const parts = [
    `<text x="${L}" y="22" ${f} font-size="14">${esc(o.title)}</text>`,
    `<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`,
  ];
  const digits = Math.max(0, Math.ceil(-Math.log10((y1 - y0) / 5)) + 1);
  for (let i = 0; i <= 5; i++) {
    const v = y0 + ((y1 - y0) * i) / 5;
    parts.push(
      `<line x1="${L - 4}" x2="${L}" y1="${Y(v)}" y2="${Y(v)}" stroke="#444"/>` +
        `<text x="${L - 6}" y="${Y(v) + 4}" ${f} font-size="10" text-anchor="end">${v.toFixed(digits)}</text>`,
    );
  }
  for (const v of [...new Set(xs)].sort((a, b) => a - b))
    parts.push(
      `<line x1="${X(v)}" x2="${X(v)}" y1="${T + ph}" y2="${T + ph + 4}" stroke="#444"/>` +
        `<text x="${X(v)}" y="${T + ph + 16}" ${f} font-size="10" text-anchor="middle">${v}</text>`,
    );
  if (y0 < 0 && y1 > 0)
    parts.push(`<line x1="${L}" x2="${L + pw}" y1="${Y(0)}" y2="${Y(0)}" stroke="#bbb" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${L + pw / 2}" y="${H - 8}" ${f} font-size="12" text-anchor="middle">${esc(o.xlabel)}</text>`);
  parts.push(
    `<text transform="translate(14,${T + ph / 2}) rotate(-90)" ${f}` +
      ` font-size="12" text-anchor="middle">${esc(o.ylabel)}</text>`,
  );
  series.forEach((s, si) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    parts.push(
      `<polyline fill="none" stroke="${s.color}" stroke-width="2"` +
        ` points="${pts.map((p) => `${X(p[0])},${Y(p[1])}`).join(' ')}"/>`,
    );
    for (const [x, m, sd] of pts) {
      parts.push(
        `<line x1="${X(x)}" x2="${X(x)}" y1="${Y(m - sd)}" y2="${Y(m + sd)}" stroke="${s.color}"/>` +
          `<circle cx="${X(x)}" cy="${Y(m)}" r="3" fill="${s.color}"/>`,
      );
    }
    parts.push(
      `<line x1="${L + pw + 12}" x2="${L + pw + 32}" y1="${T + 12 + si * 18}" y2="${T + 12 + si * 18}"` +
        ` stroke="${s.color}" stroke-width="2"/>` +
        `<text x="${L + pw + 38}" y="${T + 16 + si * 18}" ${f} font-size="12">${esc(s.name)}</text>`,
    );
  });
  return { svg: parts.join(''), width: W, height: H };
}

/**
 * A 3-D view of a surface z[ny, nx] over (xs, ys): cells as quadrilaterals seen from azimuth -60 and elevation 30
 * degrees, painted back to front, coloured by height (viridis). z is clipped at zmax.
 */
export function surface3d(
  xs: number[],
  ys: number[],
  z: ArrayLike<number>,
  o: { title: string; zmax?: number; width?: number; height?: number },
): Panel {
  const W = o.width ?? 560,
    H = o.height ?? 440,
    nx = xs.length,
    ny = ys.length;
  const finite = Array.from(z).filter(Number.isFinite);
  const zmax = o.zmax ?? Math.max(...finite),
    zmin = Math.min(...finite);
  const zn = (v: number) => (Math.min(Number.isFinite(v) ? v : zmax, zmax) - zmin) / (zmax - zmin || 1);
  const az = (-60 * Math.PI) / 180,
    el = (30 * Math.PI) / 180;
  const proj = (i: number, j: number) => {
    const x = (2 * i) / (nx - 1) - 1,
      y = (2 * j) / (ny - 1) - 1,
      h = zn(z[j * nx + i]) * 1.2;
    const xr = x * Math.cos(az) - y * Math.sin(az),
      yr = x * Math.sin(az) + y * Math.cos(az);
    return {
      sx: W / 2 + xr * W * 0.3,
      sy: H * 0.62 - (yr * Math.sin(el) + h * Math.cos(el)) * H * 0.3,
      depth: yr * Math.cos(el) - h * Math.sin(el),
    };
  };
  const quads: { d: number; pts: string; c: number }[] = [];
  for (let j = 0; j + 1 < ny; j++)
    for (let i = 0; i + 1 < nx; i++) {
      const p = [proj(i, j), proj(i + 1, j), proj(i + 1, j + 1), proj(i, j + 1)];
      const c = (zn(z[j * nx + i]) + zn(z[j * nx + i + 1]) + zn(z[(j + 1) * nx + i + 1]) + zn(z[(j + 1) * nx + i])) / 4;
      quads.push({
        d: p.reduce((s, q) => s + q.depth, 0) / 4,
        pts: p.map((q) => `${q.sx.toFixed(1)},${q.sy.toFixed(1)}`).join(' '),
        c,
      });
    }
  quads.sort((a, b) => b.d - a.d);
  const parts = [`<text x="10" y="20" font-family="DejaVu Sans, sans-serif" font-size="14">${esc(o.title)}</text>`];
  for (const q of quads)
    parts.push(`<polygon points="${q.pts}" fill="${colorAt('viridis', q.c)}" stroke="#333" stroke-width="0.3"/>`);
  parts.push(
    `<text x="10" y="${H - 10}" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#555">` +
      `height: loss from ${zmin.toPrecision(3)} to ${zmax.toPrecision(3)}` +
      `${o.zmax !== undefined ? ' (clipped)' : ''}</text>`,
  );
  return { svg: parts.join(''), width: W, height: H };
}

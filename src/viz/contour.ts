// Contour lines of a grid by marching squares (with linear interpolation along cell edges), as segments.
export interface Segment {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  level: number;
}

/** values [ny, nx] at coordinates xs (columns) and ys (rows); NaN cells are skipped. */
export function contourSegments(values: ArrayLike<number>, xs: number[], ys: number[], levels: number[]): Segment[] {
  const nx = xs.length,
    ny = ys.length;
  const out: Segment[] = [];
  const v = (i: number, j: number) => values[j * nx + i];
  for (const L of levels) {
    for (let j = 0; j + 1 < ny; j++)
      for (let i = 0; i + 1 < nx; i++) {
        const c = [v(i, j), v(i + 1, j), v(i + 1, j + 1), v(i, j + 1)]; // corners: bl, br, tr, tl
        if (c.some(Number.isNaN)) continue;
        const p = [
          [xs[i], ys[j]],
          [xs[i + 1], ys[j]],
          [xs[i + 1], ys[j + 1]],
          [xs[i], ys[j + 1]],
        ];
        const cross: [number, number][] = [];
        for (let e = 0; e < 4; e++) {
          const a = c[e],
            b = c[(e + 1) % 4];
          if (a < L !== b < L) {
            const t = (L - a) / (b - a);
            const [xa, ya] = p[e],
              [xb, yb] = p[(e + 1) % 4];
            cross.push([xa + t * (xb - xa), ya + t * (yb - ya)]);
          }
        }
        if (cross.length === 2)
          out.push({ x1: cross[0][0], y1: cross[0][1], x2: cross[1][0], y2: cross[1][1], level: L });
        else if (cross.length === 4) {
          // saddle: pair the crossings by the cell centre's side
          const centre = (c[0] + c[1] + c[2] + c[3]) / 4;
          const [a, b, cc, d] = cross;
          if (centre < L === c[0] < L) {
            out.push(
              { x1: a[0], y1: a[1], x2: b[0], y2: b[1], level: L },
              { x1: cc[0], y1: cc[1], x2: d[0], y2: d[1], level: L },
            );
          } else {
            out.push(
              { x1: a[0], y1: a[1], x2: d[0], y2: d[1], level: L },
              { x1: b[0], y1: b[1], x2: cc[0], y2: cc[1], level: L },
            );
          }
        }
      }
  }
  return out;
}

// Host-side linear algebra on flat vectors: orthonormal bases and projections.

/**
 * Gram-Schmidt: an orthonormal basis of the span of the given directions (e.g. the edges B - A, C - A, ... of a simplex
 * of optima); directions already in the span of the earlier ones are dropped.
 */
export function orthonormal(dirs: ArrayLike<number>[]): Float64Array[] {
  const out: Float64Array[] = [];
  for (const d of dirs) {
    const v = Float64Array.from(d);
    for (let pass = 0; pass < 2; pass++)
      for (const q of out) {
        let dot = 0;
        for (let i = 0; i < v.length; i++) dot += v[i] * q[i];
        for (let i = 0; i < v.length; i++) v[i] -= dot * q[i];
      }
    const n = norm2(v);
    if (n > 1e-12 * Math.max(1, norm2(d))) out.push(v.map((x) => x / n));
  }
  return out;
}

/**
 * Removes from each of the K rows of g [K, D] its components along the orthonormal directions q: the steps then stay in
 * the hyperplane normal to a segment (one direction) or to a simplex (m directions), as the connector algorithm needs.
 */
export function projectOut(g: Float64Array | Float32Array, D: number, q: Float64Array[]): void {
  for (let k = 0; k < g.length / D; k++)
    for (const u of q) {
      let dot = 0;
      for (let i = 0; i < D; i++) dot += g[k * D + i] * u[i];
      for (let i = 0; i < D; i++) g[k * D + i] -= dot * u[i];
    }
}

export const norm2 = (v: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
};

/** The cosine of the angle between two vectors (0 for a zero vector). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb + 1e-30);
}

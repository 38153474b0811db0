// The Lanczos iteration for the extreme eigenvalues of a symmetric operator given only as matrix-vector products
// (here: Hessian-vector products). One instance per grid point; the caller batches the products of many instances.
// Full reorthogonalization against the stored Krylov basis (kept in float32) keeps the Ritz values free of ghost
// copies; the extreme Ritz values converge first, both ends at once, so one run gives lambda_max and lambda_min.
import { symmetricEigen } from './eigen.ts';
import { randn, rng } from '../engine/random.ts';

export interface RitzExtremes {
  max: number;
  min: number;
  /** Residual norms ||H y - theta y|| of the two Ritz pairs (|beta_m * last component of the eigenvector of T|). */
  resMax: number;
  resMin: number;
}

export class Lanczos {
  private Q: Float32Array[] = [];
  private alpha: number[] = [];
  private beta: number[] = [];
  private q: Float64Array;
  /** The Krylov space is exhausted (beta = 0): the Ritz values are exact eigenvalues of the operator. */
  exhausted = false;

  /** n: vector length; the start vector is Gaussian from the seed (so a point's result does not depend on its
   * block). */
  constructor(
    readonly n: number,
    seed: number,
  ) {
    const r = rng(seed);
    const v = Float64Array.from({ length: n }, () => randn(r));
    const s = Math.hypot(...chunkNorms(v));
    this.q = v.map((x) => x / s);
  }

  get iterations(): number {
    return this.alpha.length;
  }

  /** The vector whose product with the operator is needed next. */
  next(): Float64Array {
    return this.q;
  }

  /** Takes w = H q for the vector of next(). */
  step(hq: ArrayLike<number>): void {
    const n = this.n,
      q = this.q;
    const w = Float64Array.from(hq);
    let a = 0;
    for (let i = 0; i < n; i++) a += w[i] * q[i];
    this.alpha.push(a);
    for (let i = 0; i < n; i++) w[i] -= a * q[i];
    const prev = this.Q[this.Q.length - 1];
    const bPrev = this.beta.length ? this.beta[this.beta.length - 1] : 0;
    if (prev) for (let i = 0; i < n; i++) w[i] -= bPrev * prev[i];
    this.Q.push(Float32Array.from(q));
    // full reorthogonalization, twice ("twice is enough")
    for (let pass = 0; pass < 2; pass++) {
      for (const u of this.Q) {
        let d = 0;
        for (let i = 0; i < n; i++) d += w[i] * u[i];
        for (let i = 0; i < n; i++) w[i] -= d * u[i];
      }
    }
    let b = 0;
    for (let i = 0; i < n; i++) b += w[i] * w[i];
    b = Math.sqrt(b);
    this.beta.push(b);
    const scale = Math.max(Math.abs(a), bPrev, 1e-30);
    if (b <= 1e-10 * scale || this.Q.length >= n) {
      this.exhausted = true;
      return;
    }
    this.q = w.map((x) => x / b);
  }

  /** Extreme eigenvalues of the tridiagonal T_m and their residual norms. */
  extremes(): RitzExtremes {
    const m = this.alpha.length;
    const T = Array.from({ length: m }, (_, i) =>
      Array.from({ length: m }, (_, j) =>
        i === j ? this.alpha[i] : Math.abs(i - j) === 1 ? this.beta[Math.min(i, j)] : 0,
      ),
    );
    const { values, vectors } = symmetricEigen(T);
    const bm = this.exhausted ? 0 : this.beta[m - 1];
    return {
      max: values[0],
      min: values[m - 1],
      resMax: Math.abs(bm * vectors[0][m - 1]),
      resMin: Math.abs(bm * vectors[m - 1][m - 1]),
    };
  }

  /** Both extremes converged: residuals at most tol times the spectral scale max(|lambda_max|, |lambda_min|). */
  converged(tol: number): boolean {
    if (this.exhausted) return true;
    if (this.alpha.length < 2) return false;
    const e = this.extremes();
    const scale = Math.max(Math.abs(e.max), Math.abs(e.min), 1e-30);
    return e.resMax <= tol * scale && e.resMin <= tol * scale;
  }
}

function chunkNorms(v: Float64Array): number[] {
  // Math.hypot over a huge spread would overflow the argument list: sum squares in chunks
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 4096) {
    let s = 0;
    for (let j = i; j < Math.min(v.length, i + 4096); j++) s += v[j] * v[j];
    out.push(Math.sqrt(s));
  }
  return out;
}

// float64 CPU references of the elementwise ops: the dropout hash (bit for bit), erf, GELU, SiLU.

/** The dropout kernels' hash (PCG-style), bit for bit: uniform in [0, 1) for (seed, index). */
export function pcg(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const t = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((t >>> 22) ^ t) >>> 0;
}

export function uniform01(seed: number, i: number): number {
  return (pcg((pcg(i) ^ seed) >>> 0) >>> 8) / 16777216;
}

export function dropoutRef(x: ArrayLike<number>, p: number, seed: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = uniform01(seed >>> 0, i) >= p ? x[i] / (1 - p) : 0;
  return y;
}

/** The error function, float64: its Taylor series below 3, the continued fraction of erfc above (|error| < 1e-14). */
export function erf(x: number): number {
  const z = Math.abs(x);
  if (z < 3) {
    let term = z,
      sum = z;
    for (let n = 1; n < 100 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * Math.min(1, (2 / Math.sqrt(Math.PI)) * sum);
  }
  // erfc(z) = exp(-z^2) / sqrt(pi) / (z + (1/2) / (z + 1 / (z + (3/2) / (z + 2 / (z + ...))))), evaluated from the tail
  let f = z;
  for (let n = 60; n >= 1; n--) f = z + n / 2 / f;
  return Math.sign(x) * (1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f);
}

/** GELU, float64: exact (erf) or PyTorch's tanh approximation. */
export const geluRef = (form: 'erf' | 'tanh') =>
  form === 'tanh'
    ? (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))
    : (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));

export const siluRef = (v: number) => v / (1 + Math.exp(-v));

export const sigmoidRef = (v: number) => 1 / (1 + Math.exp(-v));

export const leakyReluRef = (alpha: number) => (v: number) => (v > 0 ? v : alpha * v);

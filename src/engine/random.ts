// Seeded random numbers (mulberry32) for initialisation, sampling and tests: the same seed gives the same run.
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
export const randn = (r: () => number) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
export const randArray = (r: () => number, n: number, scale = 1): Float32Array =>
  Float32Array.from({ length: n }, () => randn(r) * scale);

/** A seeded Fisher-Yates permutation of 0..n-1. */
/**
 * Minibatch indices of n samples: consecutive slices of a permutation drawn from r, a fresh permutation whenever the
 * next slice would run past the end (the last partial slice is skipped).
 */
export function batchStream(n: number, batch: number, r: () => number): () => Uint32Array {
  let perm = permutation(n, r),
    at = 0;
  return () => {
    if (at + batch > n) {
      perm = permutation(n, r);
      at = 0;
    }
    const idx = perm.subarray(at, at + batch);
    at += batch;
    return idx;
  };
}

export function permutation(n: number, r: () => number): Uint32Array {
  const p = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

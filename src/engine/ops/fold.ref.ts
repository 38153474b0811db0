// float64 CPU reference of a point's value from basis tensors and coefficients.

/** W_k = sum_b coef[k, b] * basis[b] for one point k; basis is [B, size]. */
export function combine(
  basis: ArrayLike<number>,
  coef: ArrayLike<number>,
  k: number,
  B: number,
  size: number,
  offset = 0,
): Float64Array {
  const out = new Float64Array(size);
  for (let b = 0; b < B; b++) {
    const c = coef[k * B + b];
    for (let i = 0; i < size; i++) out[i] += c * basis[b * size + i];
  }
  if (offset) for (let i = 0; i < size; i++) out[i] += offset;
  return out;
}

// float64 CPU reference of batch norm for one point.

/** One point, training mode: x [N, C, HW], gamma/beta [C]. Biased variance, as PyTorch normalizes. */
/** Batch norm of one point: batch statistics, or the given running statistics (evaluation mode). */
export function batchNormRef(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  N: number,
  C: number,
  HW: number,
  eps: number,
  running?: { mean: ArrayLike<number>; var: ArrayLike<number> },
): Float64Array {
  const y = new Float64Array(N * C * HW);
  const M = N * HW;
  for (let c = 0; c < C; c++) {
    let mean = 0,
      v = 0;
    if (running) {
      mean = running.mean[c];
      v = Math.max(running.var[c], 0) * M;
    } else {
      for (let n = 0; n < N; n++) for (let q = 0; q < HW; q++) mean += x[(n * C + c) * HW + q];
      mean /= M;
      for (let n = 0; n < N; n++) for (let q = 0; q < HW; q++) v += (x[(n * C + c) * HW + q] - mean) ** 2;
    }
    const istd = 1 / Math.sqrt(v / M + eps);
    for (let n = 0; n < N; n++)
      for (let q = 0; q < HW; q++) {
        const i = (n * C + c) * HW + q;
        y[i] = gamma[c] * (x[i] - mean) * istd + beta[c];
      }
  }
  return y;
}

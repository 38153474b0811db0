// Plain TypeScript CPU references (float64) for every op of the engine: the ground truth that kernels are checked
// against, by value, and (through central finite differences) by gradient. Each family's reference lives beside its
// op (ops/<family>.ref.ts); this module gathers them with the finite differences. Per-point weights are materialized
// here on purpose; the GPU kernels never do that.
export * from './ops/conv.ref.ts';
export * from './ops/pool.ref.ts';
export * from './ops/gconv.ref.ts';
export * from './ops/batchnorm.ref.ts';
export * from './ops/loss.ref.ts';
export * from './ops/elementwise.ref.ts';
export * from './ops/fold.ref.ts';
export * from './optim.ref.ts';

/** Central finite differences of a scalar function f at x, for the listed indices (all when omitted). */
export function finiteDiff(
  f: (x: Float64Array) => number,
  x: ArrayLike<number>,
  indices?: number[],
  h = 1e-4,
): Map<number, number> {
  const xx = Float64Array.from(x);
  const out = new Map<number, number>();
  for (const i of indices ?? [...Array(xx.length).keys()]) {
    const v = xx[i];
    xx[i] = v + h;
    const fp = f(xx);
    xx[i] = v - h;
    const fm = f(xx);
    xx[i] = v;
    out.set(i, (fp - fm) / (2 * h));
  }
  return out;
}

// The shape of a gradcheck case (checked by engine/gradcheck.ts) and helpers the families' cases share.
import type { Param } from '../manifold.ts';
import type { Tape } from '../tape.ts';
import type { AnyTensor } from '../tensor.ts';
import type * as ops from './index.ts';

export interface OpCase {
  op: string;
  name: string;
  K: number;
  B: number;
  /** Activation input: [K, ...] or shared (no K). */
  x: { shape: number[]; shared?: boolean; scale?: number };
  params?: { name: string; shape: number[]; scale?: number; init?: (r: () => number, n: number) => Float32Array }[];
  gpu: (
    ctx: ops.Ctx,
    x: AnyTensor,
    p: Param[],
  ) => { y: AnyTensor; backward?: (tape: Tape, seed: Float32Array) => void };
  /** Reference forward over all K points (float64), flattened like the GPU output. */
  ref: (x: ArrayLike<number>, p: ArrayLike<number>[], coef: ArrayLike<number>) => Float64Array;
  /** Reference scalar given the seed; default sum(ref * seed). */
  refLoss?: (x: ArrayLike<number>, p: ArrayLike<number>[], coef: ArrayLike<number>, seed: Float32Array) => number;
  /** Length of the compared output when it differs from y (e.g. loss values only). */
  outLen?: number;
  /** Looser forward tolerance, with the reason. */
  atol?: number;
  /** Coefficients [K*B] from the case's random stream (default uniform in +-0.7). */
  coef?: (r: () => number, n: number) => Float32Array;
}

export function concat(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function perPoint(K: number, per: number, f: (xk: ArrayLike<number>, k: number) => Float64Array) {
  return (x: ArrayLike<number>) =>
    concat([...Array(K).keys()].map((k) => f(Array.prototype.slice.call(x, k * per, (k + 1) * per), k)));
}

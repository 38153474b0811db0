// One MPO step: the sampled good and bad cells as one manifold of points, forward and backward in one batched pass.
import type { Gpu } from '../engine/device.ts';
import type { Optimizer } from '../engine/optim.ts';
import type { Tensor } from '../engine/tensor.ts';
import { backwardPoints } from '../models/run.ts';
import type { Plane } from './plane.ts';
import { Diverged } from '../run/diverged.ts';

export interface StepResult {
  loss: Float32Array;
  acc: Float32Array;
  goodLoss: number;
  badLoss: number;
  goodAcc: number;
  badAcc: number;
  /** the scale the step's cells were placed with */
  scale: number;
}

export const meanOf = (a: ArrayLike<number>, from: number, to: number) => {
  let t = 0;
  for (let i = from; i < to; i++) t += a[i];
  return to > from ? t / (to - from) : 0;
};

/**
 * One MPO step: cells at (row, column) offsets from the grid centre, the first `nGood` of them white (minimize
 * their mean CE) and the rest black (maximize c * their mean CE, clamped at tau), all in one batched pass per op;
 * then the plane's gradient, the scale's gradient from dL/dC, and one Adam update.
 */
export async function mpoStep(
  gpu: Gpu,
  plane: Plane,
  opt: Optimizer,
  offsets: [number, number][],
  nGood: number,
  x: Tensor,
  y: Tensor,
  o: { negCoef: number; clamp: number },
): Promise<StepResult> {
  const K = offsets.length,
    nBad = K - nGood;
  const s = (await plane.scale.basis.read())[0];
  const coefs = new Float32Array(K * 3);
  offsets.forEach(([di, dj], k) => coefs.set([1, s * dj, s * di], k * 3));
  const weights = offsets.map((_, k) => (k < nGood ? 1 / nGood : -o.negCoef / nBad));
  const clampAbove = offsets.map((_, k) => (k < nGood ? Infinity : o.clamp));
  await plane.updateBasis();
  const res = await backwardPoints(gpu, plane.model, coefs, weights, x, y, { clampAbove, coefGrad: true });
  const gl = meanOf(res.loss, 0, nGood),
    bl = meanOf(res.loss, nGood, K);
  if (!Number.isFinite(gl) || !Number.isFinite(bl))
    throw new Diverged(`the loss is not finite (good cells ${gl}, bad cells ${bl})`);
  // dL/dscale from the coefficient gradient
  let ds = 0;
  offsets.forEach(([di, dj], k) => (ds += res.dcoef![k * 3 + 1] * dj + res.dcoef![k * 3 + 2] * di));
  try {
    await plane.backward();
  } catch (e) {
    throw new Diverged((e as Error).message);
  }
  if (!Number.isFinite(ds)) throw new Diverged('the scale gradient is not finite');
  plane.scale.ensureGrad().write([ds]);
  opt.step();
  return {
    loss: res.loss,
    acc: res.acc,
    goodLoss: gl,
    badLoss: bl,
    goodAcc: meanOf(res.acc, 0, nGood),
    badAcc: meanOf(res.acc, nGood, K),
    scale: s,
  };
}

// Evaluating an MPO plane: the loss and accuracy of every cell of the grid, and the scores against the mask.
import type { Gpu } from '../engine/device.ts';
import { evaluateOnImages } from '../models/run.ts';
import type { Dataset } from '../data/dataset.ts';
import type { Mask } from './masks.ts';
import type { Plane } from './plane.ts';

/** A mask [H, W] placed in a grid with `pad` cells of margin (0) around it. */
export function padded(m: Int8Array, H: number, W: number, pad: number): Int8Array {
  const GW = W + 2 * pad;
  const out = new Int8Array((H + 2 * pad) * GW);
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) out[(i + pad) * GW + j + pad] = m[i * W + j];
  return out;
}

/**
 * The point coefficients (1, scale * column, scale * row) of every cell of an H x W mask's grid with `pad` cells of
 * margin, columns and rows counted from the mask's centre (W // 2, H // 2).
 */
export function gridCoefs(H: number, W: number, scale: number, pad: number) {
  const GH = H + 2 * pad,
    GW = W + 2 * pad;
  const ch = Math.floor(H / 2),
    cw = Math.floor(W / 2);
  const coefs = new Float32Array(GH * GW * 3);
  for (let gi = 0; gi < GH; gi++)
    for (let gj = 0; gj < GW; gj++)
      coefs.set([1, scale * (gj - pad - cw), scale * (gi - pad - ch)], (gi * GW + gj) * 3);
  return { coefs, GH, GW };
}

/** Mean CE and accuracy of every grid cell over the picked images (the plane's basis rebuilt first). */
export async function evaluateGrid(
  gpu: Gpu,
  plane: Plane,
  coefs: Float32Array,
  d: Dataset,
  pick: number[],
): Promise<{ loss: Float32Array; acc: Float32Array }> {
  await plane.updateBasis();
  return evaluateOnImages(gpu, plane.model, coefs, d, pick);
}

/**
 * Mean loss and accuracy of a grid's good (ternary +1) and bad (-1) cells, and the share of the mask's cells whose
 * loss is on the side of ln 10 that their colour asks for (white: below).
 */
export function cellMeans(loss: ArrayLike<number>, acc: ArrayLike<number>, mask: Mask, tern: Int8Array, pad: number) {
  const GW = mask.W + 2 * pad;
  let ga = 0,
    ba = 0,
    gl = 0,
    bl = 0,
    ng = 0,
    nb = 0,
    agree = 0;
  for (let i = 0; i < mask.H; i++)
    for (let j = 0; j < mask.W; j++) {
      const c = i * mask.W + j,
        g = (i + pad) * GW + (j + pad);
      if (tern[c] > 0) {
        ga += acc[g];
        gl += loss[g];
        ng++;
      }
      if (tern[c] < 0) {
        ba += acc[g];
        bl += loss[g];
        nb++;
      }
      if (loss[g] < LN10 === (mask.data[c] === 1)) agree++;
    }
  return {
    goodLoss: gl / ng,
    badLoss: bl / nb,
    goodAcc: ga / ng,
    badAcc: ba / nb,
    agreement: agree / (mask.H * mask.W),
  };
}

/** The reference's fit metrics over the ternary mask's +1 and -1 cells, plus agreement over all mask cells. */
export function scoreGrid(
  loss: ArrayLike<number>,
  acc: ArrayLike<number>,
  mask: Mask,
  tern: Int8Array,
  pad: number,
): SplitMetrics {
  const m = cellMeans(loss, acc, mask, tern, pad);
  return {
    acc_diff: m.goodAcc - m.badAcc,
    loss_diff: m.badLoss - m.goodLoss,
    mean_good_acc: m.goodAcc,
    mean_bad_acc: m.badAcc,
    agreement: m.agreement,
  };
}

export interface SplitMetrics {
  acc_diff: number;
  loss_diff: number;
  mean_good_acc: number;
  mean_bad_acc: number;
  agreement: number;
}

export const LN10 = Math.log(10);

// The weight gradients of conv2d / linear: the basis-folding GEMM (one pass per WGRAD_BMAX basis tensors, every point
// folded in), or per-point gradients folded afterwards; the split of the reduction into workgroup layers.
import type { ConvKernels } from '../device.ts';
import { type KernelSpec, spec } from '../kernel.ts';
import type { Param } from '../manifold.ts';
import { Tensor, type AnyTensor } from '../tensor.ts';
import { WGRAD_BMAX, coefReduceKernel, convWgradReduceKernel } from './conv.wgsl.ts';
import { chooseTiles, convWeightGradKernel } from './conv-tiled.wgsl.ts';
import { chooseLanes, convWeightGradLanesKernel, lanesFit, lanesGrid } from './conv-lanes.wgsl.ts';
import { type Ctx, check, groups1d } from './ctx.ts';
import { foldPointGrads } from './fold.ts';

/** The conv kernel family for a layer: the context's, or tiled where the kernel window is too large for lanes. */
export function convFamily(ctx: Ctx, s: { KH: number; KW: number }): ConvKernels {
  const f = ctx.convKernels ?? ctx.gpu.convKernels;
  return f === 'lanes' && !lanesFit(s.KH, s.KW) ? 'tiled' : f;
}

export interface ConvShape {
  K: number;
  shared: boolean;
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  KH: number;
  KW: number;
  OH: number;
  OW: number;
  stride: number;
  pad: number;
  relu: boolean;
}

/**
 * Basis gradients of a conv over s.K points with coefficients `coef` [s.K, B] (accumulated into weight.grad /
 * bias.grad), and dL/dC when dcoef: the GEMM over positions runs once per WGRAD_BMAX basis tensors, each point's tile
 * folded into them in the kernel (the cheaper way while B <= K).
 */
export function convWeightGrad(
  ctx: Ctx,
  what: string,
  x: AnyTensor,
  dy: Tensor,
  weight: Param,
  bias: Param | null,
  s: ConvShape,
  U: Record<string, number>,
  coef: Tensor,
  dcoef: boolean,
): void {
  const { gpu, manifold } = ctx;
  const B = manifold.B;
  let sp = wgradSplit(ctx, s, U, B, false);
  // the lanes kernel writes dL/dC partials per lane; where those would pass 32 MiB (wide layers, many points), the
  // tiled kernel (one partial per workgroup) runs this weight gradient instead
  if (dcoef && sp.Z * sp.tilesM * sp.tilesN * sp.dcPerGroup * s.K * B * 4 > Math.min(gpu.bindingLimit, 32 * 2 ** 20))
    sp = wgradSplit(ctx, s, U, B, false, 'tiled');
  const { tilesM, tilesN, Z } = sp;
  const part = new Tensor(gpu, [Z, B, s.Cout, U.R], 'conv.wgrad.part');
  const G = Z * tilesM * tilesN * sp.dcPerGroup;
  const dcpart = dcoef ? new Tensor(gpu, [G, s.K, B], 'conv.dcoef.part') : null;
  if (dcpart) gpu.commandEncoder().clearBuffer(dcpart.buffer, 0, dcpart.size * 4);
  const nb = Math.min(B, WGRAD_BMAX);
  for (let bOff = 0; bOff < B; bOff += nb) {
    gpu.dispatch({
      kernel: sp.kernel(nb, !!bias, dcoef),
      buffers: {
        x: x.buffer,
        dy: dy.buffer,
        coef: coef.buffer,
        part: part.buffer,
        ...(dcpart
          ? { weight: weight.basis.buffer, dcpart: dcpart.buffer, ...(bias ? { bias: bias.basis.buffer } : {}) }
          : {}),
      },
      uniforms: { ...U, KG: sp.KG, S: sp.S, PS: sp.PS, bOff, tilesM, tilesN },
      groups: [tilesM, tilesN, Z],
      what: `${what} (weight gradient)`,
      flops: 2 * s.K * sp.P * s.Cout * U.R,
    });
  }
  const gw = weight.ensureGrad();
  const gb = bias?.ensureGrad();
  gpu.dispatch({
    kernel: spec(convWgradReduceKernel, !!bias),
    buffers: { part: part.buffer, gw: gw.buffer, ...(gb ? { gb: gb.buffer } : {}) },
    uniforms: { Z, B, Cout: s.Cout, R0: U.R0, R: U.R, accumulate: 1, zPer: Z },
    groups: groups1d(B * s.Cout * U.R),
    what: `${what} (weight gradient reduce)`,
  });
  part.dispose();
  if (dcpart) {
    gpu.dispatch({
      kernel: spec(coefReduceKernel),
      buffers: { part: dcpart.buffer, dcoef: manifold.ensureCoefGrad().buffer },
      uniforms: { G, KB: s.K * B },
      groups: [Math.ceil((s.K * B) / 64)],
      what: `${what} (coefficient gradient)`,
    });
    dcpart.dispose();
  }
}

/**
 * How the weight-gradient reduction over (points, positions) is split into Z = ceil(K / KG) * S workgroup layers, so
 * that enough workgroups run within a partial-buffer budget. perPoint forces one point per layer (KG = 1), so that
 * the partials of point k are layers k*S .. k*S + S - 1.
 */
export function wgradSplit(
  ctx: Ctx,
  s: ConvShape,
  U: Record<string, number>,
  B: number,
  perPoint: boolean,
  family = convFamily(ctx, s),
) {
  const lanes = family === 'lanes';
  let tilesM: number, tilesN: number, BK: number, kernel: (nb: number, hasBias: boolean, dcoef: boolean) => KernelSpec;
  let dcPerGroup = 1; // dcoef partials per workgroup
  if (lanes) {
    const l = chooseLanes(U.R, s.Cout);
    [tilesM, tilesN] = lanesGrid(l, U.R, s.Cout);
    BK = 1;
    dcPerGroup = l.WG;
    kernel = (nb, hasBias, dcoef) => spec(convWeightGradLanesKernel, l, nb, hasBias, dcoef);
  } else {
    const tw = chooseTiles(s.Cout, U.R);
    tilesM = Math.ceil(U.R / tw.BM);
    tilesN = Math.ceil(s.Cout / tw.BN);
    BK = tw.BK;
    kernel = (nb, hasBias, dcoef) => spec(convWeightGradKernel, tw, nb, hasBias, dcoef);
  }
  const P = s.N * s.OH * s.OW;
  const budget = Math.min(ctx.gpu.bindingLimit / 4, 8 * 2 ** 20);
  const zMax = Math.max(
    perPoint ? s.K : 1,
    Math.min(ctx.maxWgradLayers ?? Infinity, Math.floor(budget / (B * s.Cout * U.R))),
  );
  // a GPU wants ~1024 workgroups in flight; a CPU adapter has a few threads and pays for every partial layer
  const zWant = Math.min(zMax, Math.max(perPoint ? s.K : 1, Math.ceil((lanes ? 16 : 1024) / (tilesM * tilesN))));
  let KG: number, S: number;
  if (zWant <= s.K && !perPoint) {
    S = 1;
    KG = Math.ceil(s.K / zWant);
  } else {
    KG = 1;
    S = Math.max(1, Math.min(Math.floor(zWant / s.K), Math.ceil(P / (BK * 8))));
  }
  const PS = Math.ceil(Math.ceil(P / S) / BK) * BK;
  S = Math.ceil(P / PS);
  return { kernel, tilesM, tilesN, dcPerGroup, P, KG, S, PS, Z: Math.ceil(s.K / KG) * S };
}

/** Bytes of the per-point weight-gradient partials of pointWeightGrads. */
export const pointPartBytes = (s: ConvShape, U: Record<string, number>, Z: number) => Z * s.Cout * U.R * 4;

/**
 * With B > WGRAD_BMAX basis tensors, pointWeightGrads (one GEMM) beats convWeightGrad (one GEMM per WGRAD_BMAX basis
 * tensors), unless its per-point partials would not fit one binding, or a test forces the folding kernel.
 */
export function pointGradsPreferred(ctx: Ctx, B: number, s: ConvShape, U: Record<string, number>): boolean {
  return (
    B > WGRAD_BMAX && !ctx.foldWgrad && pointPartBytes(s, U, wgradSplit(ctx, s, U, 1, true).Z) <= ctx.gpu.bindingLimit
  );
}

/**
 * Gradients of a conv through each point's own weight gradient: one GEMM pass with a coefficient of 1 and one point
 * per partial layer, reduced per point to [K, Cout, R0] and [K, Cout], then folded into the basis gradients (when the
 * tape wants them) and dotted with every basis tensor for dL/dC (when it wants those). For B > K, B > WGRAD_BMAX,
 * or a tape without basis gradients, where convWeightGrad would run the GEMM once per WGRAD_BMAX basis tensors.
 */
export function pointWeightGrads(
  ctx: Ctx,
  what: string,
  x: AnyTensor,
  dy: Tensor,
  weight: Param,
  bias: Param | null,
  s: ConvShape,
  U: Record<string, number>,
  perBasis = false,
): void {
  const { gpu } = ctx;
  const K = s.K;
  const sp = wgradSplit(ctx, s, U, 1, true);
  const { tilesM, tilesN, Z } = sp;
  check(
    pointPartBytes(s, U, Z) <= gpu.bindingLimit,
    what,
    `per-point weight gradients of ${K} points (${pointPartBytes(s, U, Z)} bytes)` +
      ` exceed the binding limit ${gpu.bindingLimit}: evaluate fewer points per block`,
  );
  const ones = ctx.manifold.ones(); // K <= max(manifold K, B): points, or basis tensors on the perBasis path
  const part = new Tensor(gpu, [Z, 1, s.Cout, U.R], 'conv.wgrad.part');
  gpu.dispatch({
    kernel: sp.kernel(1, !!bias, false),
    buffers: { x: x.buffer, dy: dy.buffer, coef: ones.buffer, part: part.buffer },
    uniforms: { ...U, B: 1, KG: 1, S: sp.S, PS: sp.PS, bOff: 0, tilesM, tilesN },
    groups: [tilesM, tilesN, Z],
    what: `${what} (per-point weight gradient)`,
    flops: 2 * K * sp.P * s.Cout * U.R,
  });
  // perBasis (the shared-input path, whose "points" are the B basis tensors): straight into the basis gradients
  const gw = perBasis ? weight.ensureGrad() : new Tensor(gpu, [K, s.Cout * U.R0], 'conv.wgrad.points');
  const gb = perBasis ? (bias?.ensureGrad() ?? null) : bias ? new Tensor(gpu, [K, s.Cout], 'conv.bgrad.points') : null;
  gpu.dispatch({
    kernel: spec(convWgradReduceKernel, !!bias),
    buffers: { part: part.buffer, gw: gw.buffer, ...(gb ? { gb: gb.buffer } : {}) },
    uniforms: { Z, B: 1, Cout: s.Cout, R0: U.R0, R: U.R, accumulate: perBasis ? 1 : 0, zPer: sp.S },
    groups: groups1d(K * s.Cout * U.R),
    what: `${what} (per-point weight gradient reduce)`,
  });
  if (perBasis) {
    part.dispose();
    return;
  }
  foldPointGrads(ctx, gw, [weight], what);
  if (bias && gb) foldPointGrads(ctx, gb, [bias], what);
  part.dispose();
  gw.dispose();
  gb?.dispose();
}

// ---------------------------------------------------------------- elementwise

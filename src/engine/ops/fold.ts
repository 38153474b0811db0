// Manifold folds: point values of a parameter from its basis tensors, and per-point gradients folded into basis and
// coefficient gradients (dL/dC).
import type { Param } from '../manifold.ts';
import { Tensor } from '../tensor.ts';
import { spec } from '../kernel.ts';
import {
  FOLD_COEF_CHUNK,
  FOLD_NB,
  combineKernel,
  foldBasisKernel,
  foldCoefKernel,
  foldCoefReduceKernel,
} from './fold.wgsl.ts';
import { type Ctx, out, groups1d, onBackward } from './ctx.ts';

/** Point values sum_b C[k,b] basis[b] of a basis tensor [B, ...] for the manifold's K points: [K, ...]. */
export function combineBasis(ctx: Ctx, basis: Tensor, what: string): Tensor {
  const { K, B, coef } = ctx.manifold;
  const S = basis.size / B;
  const y = new Tensor(ctx.gpu, [K, S], 'conv.point_weights');
  const per = ctx.gpu.elemsPerThread;
  ctx.gpu.dispatch({
    kernel: spec(combineKernel, false, per),
    buffers: { coef: coef.buffer, z: basis.buffer, y: y.buffer },
    uniforms: { K, B, S },
    groups: groups1d(K * S, 256 * per),
    what,
  });
  return y;
}

/** dp[b, s] (+)= sum_k C[k,b] g[k, gOff + s] (g rows of length gStride), in passes of FOLD_NB basis tensors. */
export function foldBasis(
  ctx: Ctx,
  g: Tensor,
  dp: Tensor,
  u: { S: number; accumulate: number; gOff: number; gStride: number },
  what: string,
): void {
  const { K, B, coef } = ctx.manifold;
  for (let bOff = 0; bOff < B; bOff += FOLD_NB) {
    ctx.gpu.dispatch({
      kernel: spec(foldBasisKernel),
      buffers: { coef: coef.buffer, g: g.buffer, dp: dp.buffer },
      uniforms: { K, B, ...u, bOff },
      groups: groups1d(u.S),
      what,
    });
  }
}

/**
 * dcoef[k, b] += sum_s p[b, s] g[k, gOff + s], in passes of FOLD_NB basis tensors, each split over s into chunks of
 * ctx.foldChunk (default FOLD_COEF_CHUNK) elements whose sums a second kernel adds up when there are several.
 */
export function foldCoef(
  ctx: Ctx,
  p: Tensor,
  g: Tensor,
  u: { S: number; gOff: number; gStride: number },
  what: string,
): void {
  const { K, B } = ctx.manifold;
  const dcoef = ctx.manifold.ensureCoefGrad();
  const chunk = ctx.foldChunk ?? FOLD_COEF_CHUNK;
  const nChunks = Math.max(1, Math.ceil(u.S / chunk));
  const split = nChunks > 1;
  const part = split ? new Tensor(ctx.gpu, [K, nChunks, 4], 'fold.coef_partials') : null;
  for (let bOff = 0; bOff < B; bOff += FOLD_NB) {
    ctx.gpu.dispatch({
      kernel: spec(foldCoefKernel, split),
      buffers: { p: p.buffer, g: g.buffer, ...(part ? { part: part.buffer } : { dcoef: dcoef.buffer }) },
      uniforms: { K, B, ...u, bOff, chunk, nChunks },
      groups: [nChunks, K],
      what,
    });
    if (part)
      ctx.gpu.dispatch({
        kernel: spec(foldCoefReduceKernel),
        buffers: { part: part.buffer, dcoef: dcoef.buffer },
        uniforms: { B, bOff, nChunks },
        groups: [K],
        what: `${what} (${nChunks} chunk sums per point)`,
      });
  }
  part?.dispose();
}

/** Per-point gradients g [K, sum of param sizes] (params side by side) -> basis gradients and dcoef. */
export function foldPointGrads(ctx: Ctx, g: Tensor, params: Param[], what: string): void {
  const stride = params.reduce((a, p) => a + p.size, 0);
  let off = 0;
  for (const p of params) {
    if (ctx.tape?.basisGrad !== false)
      foldBasis(
        ctx,
        g,
        p.ensureGrad(),
        { S: p.size, accumulate: 1, gOff: off, gStride: stride },
        `${what} (${p.name} basis gradient)`,
      );
    if (ctx.tape?.coefGrad)
      foldCoef(ctx, p.basis, g, { S: p.size, gOff: off, gStride: stride }, `${what} (${p.name} coefficient gradient)`);
    off += p.size;
  }
}

// ---------------------------------------------------------------- loss

/**
 * Every point's value of a parameter, W_k = sum_b C[k,b] basis[b], as [K, ...shape] (e.g. the configuration P of the
 * toy landscape on a hyperplane). Backward: per-point gradients folded into dL/dC and, unless basisGrad is false,
 * into the basis gradient.
 */
export function pointValues(ctx: Ctx, p: Param, o: { basisGrad?: boolean } = {}): Tensor {
  const { gpu, manifold } = ctx;
  const { K, B } = manifold;
  const S = p.size;
  const y = out(ctx, [K, ...p.shape], `points(${p.name})`);
  const per = gpu.elemsPerThread;
  gpu.dispatch({
    kernel: spec(combineKernel, false, per),
    buffers: { coef: manifold.coef.buffer, z: p.basis.buffer, y: y.buffer },
    uniforms: { K, B, S },
    groups: groups1d(K * S, 256 * per),
    what: `points(${p.name}) [${K}x${S}]`,
  });
  onBackward(ctx, `points(${p.name})`, y, (g, tape) => {
    if (o.basisGrad !== false && tape.basisGrad)
      foldBasis(ctx, g, p.ensureGrad(), { S, accumulate: 1, gOff: 0, gStride: S }, `points(${p.name}) basis gradient`);
    if (tape.coefGrad) foldCoef(ctx, p.basis, g, { S, gOff: 0, gStride: S }, `points(${p.name}) coefficient gradient`);
  });
  return y;
}

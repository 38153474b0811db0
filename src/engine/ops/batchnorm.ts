// Batch norm over a manifold: per-point batch statistics (training mode) or per-point combinations of the running
// statistics (evaluation mode), with gamma, beta and the statistics as manifold parameters.
import type { Param } from '../manifold.ts';
import { Tensor, type AnyTensor, shapeStr } from '../tensor.ts';
import { spec } from '../kernel.ts';
import {
  bnApplyKernel,
  bnBackwardKernel,
  bnRunningStatsKernel,
  bnRunningUpdateKernel,
  bnStatsKernel,
} from './batchnorm.wgsl.ts';
import { type Ctx, check, out, groups1d, imageInput, keepForBackward, onBackward } from './ctx.ts';
import { foldPointGrads } from './fold.ts';

export interface BatchNormOptions {
  eps?: number;
  /** The MPO reference's parametrization: gamma_eff = gamma + 1 (gamma initialised to 0). */
  reparam?: boolean;
  /**
   * Running statistics (B basis tensors each, combined per point like any parameter). mode 'use': evaluation mode,
   * normalize with them (constants in the backward); 'update': training mode (batch statistics) and afterwards
   * update them as PyTorch does (one point only).
   */
  running?: { mean: Param; var: Param; mode: 'use' | 'update'; momentum?: number };
}

/**
 * Batch norm over x [K, N, C, H, W]: training mode with per-point statistics over (N, H, W) for each channel, or
 * evaluation mode with (per-point combinations of) running statistics.
 */
export function batchNorm2d(ctx: Ctx, x: AnyTensor, gamma: Param, beta: Param, o: BatchNormOptions = {}): Tensor {
  const op = `batchnorm2d(${gamma.name})`;
  const [K, N, C, H, W] = imageInput(ctx, x, op);
  check(
    gamma.shape.length === 1 && gamma.shape[0] === C && beta.shape[0] === C,
    op,
    `gamma ${shapeStr(gamma.shape)} / beta ${shapeStr(beta.shape)} must be [${C}]`,
  );
  const run = o.running;
  const fixed = run?.mode === 'use';
  if (run)
    check(
      run.mean.shape[0] === C && run.var.shape[0] === C,
      op,
      `running statistics ${shapeStr(run.mean.shape)} / ${shapeStr(run.var.shape)} must be [${C}]`,
    );
  if (!fixed) check(N * H * W > 1, op, `needs more than one value per channel, got N*H*W = ${N * H * W}`);
  const { gpu, manifold } = ctx;
  const U = {
    K,
    N,
    C,
    HW: H * W,
    B: manifold.B,
    eps: o.eps ?? 1e-5,
    gammaOffset: o.reparam ? 1 : 0,
    fixedStats: fixed ? 1 : 0,
  };
  const what = `${op} x ${shapeStr(x.shape)}`;
  const stats = new Tensor(gpu, [K, C, 2], 'bn.stats');
  if (fixed) {
    gpu.dispatch({
      kernel: spec(bnRunningStatsKernel),
      buffers: {
        coef: manifold.coef.buffer,
        rmean: run.mean.basis.buffer,
        rvar: run.var.basis.buffer,
        stats: stats.buffer,
      },
      uniforms: { K, C, B: manifold.B, eps: U.eps },
      groups: groups1d(K * C, 64),
      what: `${what} (running statistics)`,
    });
  } else {
    gpu.dispatch({
      kernel: spec(bnStatsKernel),
      buffers: { x: x.buffer, stats: stats.buffer },
      uniforms: U,
      groups: [C, K],
      what,
    });
    if (run) {
      check(
        K === 1 && manifold.B === 1,
        op,
        `updating running statistics needs one point with one basis tensor, got K = ${K}, B = ${manifold.B}`,
      );
      gpu.dispatch({
        kernel: spec(bnRunningUpdateKernel),
        buffers: { stats: stats.buffer, rmean: run.mean.basis.buffer, rvar: run.var.basis.buffer },
        uniforms: { C, eps: U.eps, momentum: run.momentum ?? 0.1, M: N * H * W },
        groups: groups1d(C, 64),
        what: `${what} (running statistics update)`,
      });
    }
  }
  const y = out(ctx, [K, N, C, H, W], op);
  const common = { coef: manifold.coef.buffer, gamma: gamma.basis.buffer, beta: beta.basis.buffer };
  gpu.dispatch({
    kernel: spec(bnApplyKernel),
    buffers: { x: x.buffer, stats: stats.buffer, ...common, y: y.buffer },
    uniforms: U,
    groups: groups1d(y.size),
    what,
  });
  if (!keepForBackward(ctx, stats)) return y;
  onBackward(ctx, op, y, (dy, tape) => {
    const dx = new Tensor(gpu, x.shape, `d${op}`);
    const pg = new Tensor(gpu, [K, fixed ? 4 : 2, C], 'bn.pointgrad');
    gpu.dispatch({
      kernel: spec(bnBackwardKernel),
      buffers: { dy: dy.buffer, x: x.buffer, stats: stats.buffer, ...common, dx: dx.buffer, pg: pg.buffer },
      uniforms: U,
      groups: [C, K],
      what: `${what} (backward)`,
    });
    tape.addGrad(x, dx);
    // evaluation mode: the running statistics get basis gradients too (and their share of dL/dC)
    foldPointGrads(ctx, pg, fixed ? [gamma, beta, run.mean, run.var] : [gamma, beta], what);
    pg.dispose();
  });
  return y;
}

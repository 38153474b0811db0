// Gradcheck cases of batch norm.
import * as ops from './index.ts';
import * as ref from '../reference.ts';
import { type OpCase, perPoint } from './case.ts';

export function bnCase(
  name: string,
  K: number,
  B: number,
  N: number,
  C: number,
  H: number,
  W: number,
  reparam: boolean,
): OpCase {
  return {
    op: 'batchnorm2d',
    name,
    K,
    B,
    x: { shape: [N, C, H, W], scale: 2 },
    params: [
      { name: 'gamma', shape: [C] },
      { name: 'beta', shape: [C] },
    ],
    gpu: (ctx, x, p) => ({ y: ops.batchNorm2d(ctx, x, p[0], p[1], { reparam }) }),
    ref: (x, p, coef) =>
      perPoint(K, N * C * H * W, (xk, k) =>
        ref.batchNormRef(
          xk,
          ref.combine(p[0], coef, k, B, C, reparam ? 1 : 0),
          ref.combine(p[1], coef, k, B, C),
          N,
          C,
          H * W,
          1e-5,
        ),
      )(x),
  };
}

/** Evaluation mode: running mean and variance are manifold tensors too (the "states" directions of Li et al.). */
export function bnEvalCase(name: string, K: number, B: number, N: number, C: number, H: number, W: number): OpCase {
  return {
    op: 'batchnorm2d(running)',
    name,
    K,
    B,
    x: { shape: [N, C, H, W], scale: 2 },
    params: [
      { name: 'gamma', shape: [C] },
      { name: 'beta', shape: [C] },
      { name: 'mean', shape: [C] },
      { name: 'var', shape: [C], init: (r, n) => Float32Array.from({ length: n }, () => 0.5 + r()) },
    ],
    // positive coefficients and variances in [0.5, 1.5]: every point's combined variance is positive
    coef: (r, n) => Float32Array.from({ length: n }, () => 0.2 + 0.6 * r()),
    gpu: (ctx, x, p) => ({
      y: ops.batchNorm2d(ctx, x, p[0], p[1], { running: { mean: p[2], var: p[3], mode: 'use' } }),
    }),
    ref: (x, p, coef) =>
      perPoint(K, N * C * H * W, (xk, k) =>
        ref.batchNormRef(xk, ref.combine(p[0], coef, k, B, C), ref.combine(p[1], coef, k, B, C), N, C, H * W, 1e-5, {
          mean: ref.combine(p[2], coef, k, B, C),
          var: ref.combine(p[3], coef, k, B, C),
        }),
      )(x),
  };
}

/** Batch norm in training mode (B up to 5, two fold passes) and evaluation mode (running statistics on the
 * manifold). */
export function batchnormCases(): OpCase[] {
  return [
    bnCase('K7 B3', 7, 3, 3, 4, 5, 3, false),
    bnCase('K1 B1 reparam', 1, 1, 4, 3, 3, 3, true),
    bnCase('K6 B5 (two fold passes)', 6, 5, 2, 3, 2, 3, false),
    bnEvalCase('K5 B3', 5, 3, 2, 3, 3, 2),
    bnEvalCase('K1 B1, N*H*W = 1', 1, 1, 1, 4, 1, 1),
  ];
}

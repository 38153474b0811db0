// The n-wedge toy loss of Fort & Jastrzebski 2019: the op over a manifold, its CPU reference and gradcheck cases, and
// toyLosses, the loss of given points of the toy landscape (see structure/toy.ts).
import { Tensor, type AnyTensor, shapeStr } from '../engine/tensor.ts';
import { spec } from '../engine/kernel.ts';
import { wedgeBackwardKernel, wedgeForwardKernel } from './wedge.wgsl.ts';
import { type Ctx, check, out, groups1d } from '../engine/ops/ctx.ts';
import type { LossOutput } from '../engine/ops/loss.ts';
import * as ops from '../engine/ops/index.ts';
import * as ref from '../engine/reference.ts';
import type { OpCase } from '../engine/ops/case.ts';
import type { Gpu } from '../engine/device.ts';
import { Manifold, type Param } from '../engine/manifold.ts';
import { Tape } from '../engine/tape.ts';

/**
 * The n-wedge surrogate loss (Fort & Jastrzebski 2019) of each point x [K, D]: sqrt of the sum of squares of its D - n
 * smallest |x_i|, with n per point (keep, u32 [K]). The output has the cross-entropy's layout ([2K]: loss, then 0).
 */
export function wedgeLoss(ctx: Ctx, x: AnyTensor, keep: Tensor): LossOutput {
  const op = 'wedge_loss';
  check(
    x.shape.length === 2 && x.shape[0] === ctx.manifold.K,
    op,
    `x ${shapeStr(x.shape)} must be [K=${ctx.manifold.K}, D]`,
  );
  const [K, D] = x.shape;
  check(keep.dtype === 'u32' && keep.size === K, op, `keep ${shapeStr(keep.shape)} must be u32 [${K}]`);
  check(
    K <= ctx.gpu.maxGroups,
    op,
    `K = ${K} points exceed the adapter's ${ctx.gpu.maxGroups} workgroups per dimension`,
  );
  const { gpu } = ctx;
  const o = out(ctx, [2 * K], 'wedge.loss');
  const info = new Tensor(gpu, [K, 3], 'wedge.info', 'u32');
  gpu.dispatch({
    kernel: spec(wedgeForwardKernel),
    buffers: { x: x.buffer, keep: keep.buffer, out: o.buffer, info: info.buffer },
    uniforms: { K, D },
    groups: [K],
    what: `${op} x ${shapeStr(x.shape)}`,
  });
  const tape = ctx.tape;
  if (tape) {
    tape.own(info);
    tape.loss = {
      K,
      seed: (pw: Tensor) => {
        const dx = new Tensor(gpu, x.shape, 'dwedge');
        gpu.dispatch({
          kernel: spec(wedgeBackwardKernel),
          buffers: { x: x.buffer, keep: keep.buffer, out: o.buffer, info: info.buffer, pw: pw.buffer, dx: dx.buffer },
          uniforms: { K, D },
          groups: groups1d(K * D),
          what: `${op} backward`,
        });
        tape.addGrad(x, dx);
      },
    };
  } else info.dispose();
  return {
    out: o,
    K,
    async read() {
      const v = await o.read();
      return { loss: v.slice(0, K), acc: v.slice(K) };
    },
  };
}

/** The toy landscape's loss on the points of a manifold: x = pointValues(P) on a B-basis hyperplane, then the wedge
 * loss. */
export function wedgeCase(name: string, K: number, B: number, D: number, keep: number[]): OpCase {
  const values = (p: ArrayLike<number>, coef: ArrayLike<number>) =>
    [...Array(K).keys()].map((k) => ref.combine(p, coef, k, B, D));
  return {
    op: 'wedge_loss',
    name,
    K,
    B,
    x: { shape: [1], shared: true },
    params: [{ name: 'P', shape: [D], scale: 1 }],
    outLen: 2 * K,
    gpu: (ctx, _x, p) => {
      const keepT = ctx.tape!.own(Tensor.fromArray(ctx.gpu, [K], keep, 'keep', 'u32'));
      const l = wedgeLoss(ctx, ops.pointValues(ctx, p[0]), keepT);
      return { y: l.out, backward: (tape, seed) => tape.backward(seed.slice(0, K)) };
    },
    ref: (_x, p, coef) =>
      Float64Array.from([...values(p[0], coef).map((v, k) => wedgeRef(v, keep[k])), ...keep.map(() => 0)]),
    refLoss: (_x, p, coef, seed) => values(p[0], coef).reduce((s, v, k) => s + seed[k] * wedgeRef(v, keep[k]), 0),
  };
}

/** The wedge loss of points on a hyperplane. */
export function wedgeCases(): OpCase[] {
  return [
    wedgeCase('K5 B3 D=300 (n = 0, 1, 150, 299, 300)', 5, 3, 300, [0, 1, 150, 299, 300]),
    wedgeCase('K2 B1 D=7', 2, 1, 7, [3, 5]),
  ];
}

/** The n-wedge surrogate loss of one point: sqrt of the sum of squares of the D - n smallest |x_i| (sorted). */
export function wedgeRef(x: ArrayLike<number>, n: number): number {
  const a = Array.from(x, Math.abs).sort((p, q) => p - q);
  let s = 0;
  for (let i = 0; i < Math.max(0, a.length - n); i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

/** Losses (and optionally dL/dC) of K points P_k = sum_b C[k,b] basis[b] of the toy landscape, keep[k] = n of
 * point k. */
export async function toyLosses(
  gpu: Gpu,
  basis: Param,
  coefs: Float32Array,
  keep: number[],
  o: { coefGrad?: boolean; basisGrad?: boolean } = {},
): Promise<{ loss: Float32Array; dcoef: Float32Array | null }> {
  const K = keep.length;
  const manifold = new Manifold(gpu, K, basis.B, coefs);
  const tape = o.coefGrad || o.basisGrad ? new Tape(gpu, manifold, !!o.coefGrad) : null;
  const ctx: ops.Ctx = { gpu, manifold, tape };
  const keepT = Tensor.fromArray(gpu, [K], keep, 'toy.keep', 'u32');
  const x = ops.pointValues(ctx, basis, { basisGrad: !!o.basisGrad });
  const l = wedgeLoss(ctx, x, keepT);
  try {
    if (tape) tape.backward(new Array(K).fill(1));
    const [r, dc] = await Promise.all([l.read(), o.coefGrad ? manifold.dcoef!.read() : null]);
    return { loss: r.loss, dcoef: dc };
  } finally {
    if (tape) tape.dispose();
    else {
      x.dispose();
      l.out.dispose();
    }
    keepT.dispose();
    manifold.dispose();
  }
}

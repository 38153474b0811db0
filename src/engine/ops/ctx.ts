// What every op takes (the context: device, manifold, tape and options) and the shape checks and outputs they share.
import type { ConvKernels, Gpu } from '../device.ts';
import type { Manifold } from '../manifold.ts';
import type { Tape } from '../tape.ts';
import { Tensor, type AnyTensor, shapeStr } from '../tensor.ts';
import { fold } from '../kernel.ts';

export interface Ctx {
  gpu: Gpu;
  manifold: Manifold;
  /** null: inference only, nothing recorded. */
  tape: Tape | null;
  /**
   * Points come in pairs (2j, 2j+1) that share their ReLU masks and max-pool choices, taken from the pair's mean
   * pre-activation. Used for Hessian-vector products by central differences at x +- eps v: the two gradients then
   * lie on the same linear piece of a ReLU net, so their difference is the Hessian that double backprop computes,
   * without the kink terms that a finite difference across ReLU switches picks up. ReLUs are not fused then.
   */
  pairedMasks?: boolean;
  /**
   * Conv/linear weight gradients by the basis-folding kernel (one GEMM pass per WGRAD_BMAX basis tensors) even where
   * the per-point path would be taken: that kernel is otherwise only the fallback for per-point gradients too large
   * for a binding, so tests force it here.
   */
  foldWgrad?: boolean;
  /** The conv kernel family for this context's conv2d / linear (default: the device's, see Gpu.convKernels). */
  convKernels?: ConvKernels;
  /** Caps the z layers of the weight-gradient split, so that a layer sums several points (tests). */
  maxWgradLayers?: number;
  /** Elements per workgroup of the coefficient-gradient fold (default FOLD_COEF_CHUNK): tests set it small, so that
   * small layers take the split path (chunk sums added up by a second kernel) too. */
  foldChunk?: number;
}

export class ShapeError extends Error {}

export function check(cond: boolean, op: string, msg: string): asserts cond {
  if (!cond) throw new ShapeError(`${op}: ${msg}`);
}

/** Output tensor, owned by the tape when there is one. */
export function out(ctx: Ctx, shape: number[], label: string): Tensor {
  const t = new Tensor(ctx.gpu, shape, label);
  return ctx.tape ? ctx.tape.own(t) : t;
}

export const groups1d = (n: number, per = 256): [number, number] => fold(Math.ceil(n / per));

/** Splits x's shape into (K, rest) given whether it carries the K dimension. */
export function pointsOf(
  ctx: Ctx,
  x: AnyTensor,
  rank: number,
  op: string,
): { K: number; shared: boolean; dims: number[] } {
  const K = ctx.manifold.K;
  if (x.shape.length === rank) {
    check(x.shape[0] === K, op, `input ${shapeStr(x.shape)} has ${x.shape[0]} points but the manifold has K=${K}`);
    return { K, shared: false, dims: x.shape.slice(1) };
  }
  check(
    x.shape.length === rank - 1,
    op,
    `input ${shapeStr(x.shape)} must have rank ${rank} ([K, ...]) or ${rank - 1} (shared by all points)`,
  );
  return { K, shared: true, dims: [...x.shape] };
}

// ---------------------------------------------------------------- conv2d / linear

export function kLeading(ctx: Ctx, x: AnyTensor, op: string): void {
  check(
    x.shape.length >= 2 && x.shape[0] === ctx.manifold.K,
    op,
    `input ${shapeStr(x.shape)} must be [K=${ctx.manifold.K}, N, ...]`,
  );
}

export function imageInput(ctx: Ctx, x: AnyTensor, op: string): number[] {
  check(
    x.shape.length === 5 && x.shape[0] === ctx.manifold.K,
    op,
    `input ${shapeStr(x.shape)} must be [K=${ctx.manifold.K}, N, C, H, W]`,
  );
  return [...x.shape];
}

/**
 * Records an op's backward (when the context has a tape): `run` gets the gradient of the op's output y, and is
 * skipped when nothing downstream produced one. own: y was not made by out() and the tape must keep it alive.
 */
export function onBackward(
  ctx: Ctx,
  op: string,
  y: AnyTensor,
  run: (dy: Tensor, tape: Tape) => void,
  own = false,
): void {
  const tape = ctx.tape;
  if (!tape) return;
  if (own && y instanceof Tensor) tape.own(y);
  tape.record(op, () => {
    const dy = tape.gradOf(y);
    if (dy) run(dy, tape);
  });
}

/** Tensors the backward reads: kept by the tape when there is one (true), else disposed now (false). */
export function keepForBackward(ctx: Ctx, ...ts: (Tensor | null | undefined)[]): boolean {
  for (const t of ts) if (t) ctx.tape ? ctx.tape.own(t) : t.dispose();
  return !!ctx.tape;
}

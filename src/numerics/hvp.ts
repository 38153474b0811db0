// Hessian-vector products of a model's loss by central differences of gradients, both signs batched as manifold points.
import type { Gpu } from '../engine/device.ts';
import { Tensor } from '../engine/tensor.ts';
import { batchOf, type Dataset } from '../data/dataset.ts';
import { paramShapes } from '../models/graph.ts';
import type { BnMode } from '../models/layers.ts';
import type { Model } from '../models/model.ts';
import type { ModelSpec } from '../models/zoo.ts';
import { backwardPoints } from '../models/run.ts';
import { manifoldModel, type WeightSet } from '../models/checkpoint.ts';

/**
 * Hessian-vector products H(x_p) v_p for P points x_p = sum_g coefs[p][g] * plane[g] of the plane's span, each with its
 * own vector v_p (flat over the dim > 1 parameters), over the given image batches (mean loss). Also returns the
 * loss at each point (mean of the two evaluations, exact to O(eps^2)).
 */
export class HvpEngine {
  private layout: ReturnType<typeof hessianLayout>;
  readonly n: number;
  private batches: { x: Tensor; y: Tensor; weight: number }[] = [];
  private sizes: number[];

  /**
   * pairedMasks (default): the +eps and -eps evaluations share ReLU masks and max-pool choices (see ops.Ctx), so the
   * products are those of double backprop (the reference's); false: plain finite differences, which across ReLU
   * switches add kink terms of both signs.
   */
  constructor(
    readonly gpu: Gpu,
    readonly spec: ModelSpec,
    readonly plane: WeightSet[],
    readonly bnMode: BnMode,
    images: { data: Dataset; pick: ArrayLike<number> },
    readonly eps: number,
    readonly pairedMasks = true,
    chunk = 500,
  ) {
    this.layout = hessianLayout(spec);
    this.n = this.layout.reduce((a, l) => a + l.size, 0);
    this.sizes = paramShapes(spec.layers).map((s) => s.shape.reduce((a, b) => a * b, 1));
    const { data, pick } = images;
    for (let i0 = 0; i0 < pick.length; i0 += chunk) {
      const idx = Array.prototype.slice.call(pick, i0, i0 + chunk) as number[];
      const { x, y } = batchOf(data, idx);
      this.batches.push({
        x: Tensor.fromArray(gpu, [idx.length, ...data.shape], x, 'hvp.x'),
        y: Tensor.fromArray(gpu, [idx.length], y, 'hvp.y', 'u32'),
        weight: idx.length / pick.length,
      });
    }
  }

  /** Splits a flat Hessian vector into per-tensor arrays (zeros on the tensors the Hessian leaves out). */
  private unflatten(v: ArrayLike<number>): Float32Array[] {
    const out = this.sizes.map((s) => new Float32Array(s));
    for (const l of this.layout) for (let i = 0; i < l.size; i++) out[l.tensor][i] = v[l.offset + i];
    return out;
  }

  async products(coefs: number[][], vs: ArrayLike<number>[]): Promise<{ hv: Float64Array[]; loss: number[] }> {
    const P = vs.length,
      G = this.plane.length,
      B = G + P,
      eps = this.eps;
    const bases: WeightSet[] = [...this.plane, ...vs.map((v) => ({ weights: this.unflatten(v), states: null }))];
    const model: Model = manifoldModel(this.gpu, this.spec, bases, this.bnMode);
    const C = new Float32Array(2 * P * B);
    for (let p = 0; p < P; p++)
      for (const [s, sign] of [
        [0, 1],
        [1, -1],
      ] as const) {
        const row = (2 * p + s) * B;
        for (let g = 0; g < G; g++) C[row + g] = coefs[p][g];
        C[row + G + p] = sign * eps;
      }
    const loss = new Array<number>(P).fill(0);
    try {
      for (const b of this.batches) {
        const r = await backwardPoints(this.gpu, model, C, new Array(2 * P).fill(b.weight), b.x, b.y, {
          pairedMasks: this.pairedMasks,
        });
        for (let p = 0; p < P; p++) loss[p] += (b.weight * (r.loss[2 * p] + r.loss[2 * p + 1])) / 2;
      }
      const grads = await Promise.all(this.layout.map((l) => model.params[l.tensor].grad!.read()));
      const hv = vs.map((_, p) => {
        const out = new Float64Array(this.n);
        this.layout.forEach((l, li) => {
          const g = grads[li];
          for (let i = 0; i < l.size; i++) out[l.offset + i] = g[(G + p) * l.size + i] / (2 * eps * eps);
        });
        return out;
      });
      return { hv, loss };
    } finally {
      model.dispose();
    }
  }

  dispose(): void {
    for (const b of this.batches) {
      b.x.dispose();
      b.y.dispose();
    }
    this.batches = [];
  }
}

/** Which parameter tensors the Hessian covers (dim > 1, as the reference) and where each sits in the flat vector. */
export function hessianLayout(spec: ModelSpec): { tensor: number; offset: number; size: number }[] {
  let off = 0;
  return paramShapes(spec.layers).flatMap((s, t) => {
    if (s.shape.length <= 1) return [];
    const size = s.shape.reduce((a, b) => a * b, 1);
    const e = { tensor: t, offset: off, size };
    off += size;
    return [e];
  });
}

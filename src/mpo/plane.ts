// The MPO plane: trainable origin, right_param, up_param (three independent default inits) and a scalar scale.
// Each step, the model's basis [origin, right, up] is rebuilt from them ("up_orthogonal": right = right_param -
// origin; up = right-length copy of up_param made orthogonal to right, over the whole parameter vector), and
// after the backward the basis gradient is carried back through that transform. Cell (i, j) is the manifold
// point with coefficients [1, scale * (j - W/2), scale * (i - H/2)].
import type { Gpu } from '../engine/device.ts';
import { Param } from '../engine/manifold.ts';
import { Tensor } from '../engine/tensor.ts';
import { fold, spec } from '../engine/kernel.ts';
import { planeBasisKernel, planeDotsKernel, planeGradKernel } from './plane.wgsl.ts';
import { Model } from '../models/model.ts';
import { initParams } from '../models/graph.ts';
import type { ModelDef } from '../models/graph.ts';

const K_BASIS = planeBasisKernel(),
  K_GRAD = planeGradKernel();

export interface PlaneValues {
  origin: Float32Array[];
  right: Float32Array[];
  up: Float32Array[];
  scale: number;
}

export class Plane {
  readonly origin: Param[];
  readonly rightP: Param[];
  readonly upP: Param[];
  readonly scale: Param;
  /** The model over the B = 3 manifold [origin, right, up]. */
  readonly model: Model;
  /** alpha, beta and the dot products of the current basis (float64). */
  private s = { a: 0, c: 1, uu: 1, alpha: 0, beta: 1 };
  private counts: number[];

  constructor(
    readonly gpu: Gpu,
    readonly layers: ModelDef,
    v: PlaneValues,
  ) {
    const base = new Model(gpu, layers, 3, initParams(layers, 3, 0));
    this.model = base;
    const mk = (vals: Float32Array[], tag: string) =>
      base.params.map((p, i) => new Param(gpu, `${tag}.${p.name}`, p.shape, 1, vals[i]));
    this.origin = mk(v.origin, 'origin');
    this.rightP = mk(v.right, 'right_param');
    this.upP = mk(v.up, 'up_param');
    this.scale = new Param(gpu, 'scale', [1], 1, [v.scale]);
    this.counts = base.params.map((p) => Math.ceil(p.size / 1024));
  }

  /**
   * Three independent default inits, as the reference (origin, right_param, up_param), scale 0.1; `origin` in place
   * of the first (an imported model's own weights).
   */
  static fresh(gpu: Gpu, layers: ModelDef, seed: number, origin?: Float32Array[]): Plane {
    const [o, r, u] = [0, 1, 2].map((k) => initParams(layers, 1, seed * 3 + k));
    return new Plane(gpu, layers, { origin: origin?.map((t) => t.slice()) ?? o, right: r, up: u, scale: 0.1 });
  }

  trainables(): Param[] {
    return [...this.origin, ...this.rightP, ...this.upP, this.scale];
  }

  private async dots(mode: 0 | 1): Promise<[number, number, number]> {
    const total = this.counts.reduce((a, b) => a + b, 0);
    const part = new Tensor(this.gpu, [total * 3], 'plane.dots');
    let off = 0;
    this.model.params.forEach((p, i) => {
      this.gpu.dispatch({
        kernel: spec(planeDotsKernel, this.gpu.reduceThreads),
        buffers: {
          o: this.origin[i].basis.buffer,
          rp: this.rightP[i].basis.buffer,
          up: this.upP[i].basis.buffer,
          g: (p.grad ?? p.basis).buffer,
          part: part.buffer,
        },
        uniforms: { n: p.size, off, mode },
        groups: fold(this.counts[i]),
        what: `plane dots ${p.name}`,
      });
      off += this.counts[i];
    });
    const v = await part.read();
    part.dispose();
    const s: [number, number, number] = [0, 0, 0];
    for (let i = 0; i < total; i++) for (let t = 0; t < 3; t++) s[t] += v[i * 3 + t];
    return s;
  }

  /** Rebuilds the model's basis from the trainable tensors. */
  async updateBasis(): Promise<void> {
    const [a, c, uu] = await this.dots(0);
    const p2 = uu - (a * a) / c;
    if (!(c > 0) || !(p2 > 0)) throw new Error(`plane degenerate: |right|^2 = ${c}, |up_perp|^2 = ${p2} (diverged?)`);
    this.s = { a, c, uu, alpha: a / c, beta: Math.sqrt(c) / Math.sqrt(p2) };
    this.model.params.forEach((p, i) => {
      this.gpu.dispatch({
        kernel: K_BASIS,
        buffers: {
          o: this.origin[i].basis.buffer,
          rp: this.rightP[i].basis.buffer,
          up: this.upP[i].basis.buffer,
          basis: p.basis.buffer,
        },
        uniforms: { n: p.size, alpha: this.s.alpha, beta: this.s.beta },
        groups: fold(Math.ceil(p.size / 256)),
        what: `plane basis ${p.name}`,
      });
    });
  }

  /** Carries the model's accumulated basis gradient back to origin / right_param / up_param; zeroes it. */
  async backward(): Promise<void> {
    const [gu, gr] = await this.dots(1);
    if (!Number.isFinite(gu) || !Number.isFinite(gr))
      throw new Error(`the gradient is not finite (g.up = ${gu}, g.right = ${gr})`);
    const { a, c, uu } = this.s;
    const p2 = uu - (a * a) / c,
      p = Math.sqrt(p2),
      q = Math.sqrt(c);
    const gup = gu - (a / c) * gr; // g . u_perp (unnormalized)
    const hr = (q / p) * gr;
    const A1 = q / p,
      A2 = (-q * gup) / p ** 3,
      A3 = (q * gup * a) / (p ** 3 * c);
    const coef = {
      a1: A1,
      a2: A2,
      a3: A3 - hr / c,
      e1: (-a / c) * A1,
      e2: -hr / c - (a / c) * A2,
      e3: gup / (p * q) + (2 * a * hr) / (c * c) - (a / c) * A3,
    };
    this.model.params.forEach((p, i) => {
      this.gpu.dispatch({
        kernel: K_GRAD,
        buffers: {
          o: this.origin[i].basis.buffer,
          rp: this.rightP[i].basis.buffer,
          up: this.upP[i].basis.buffer,
          g: p.ensureGrad().buffer,
          dorig: this.origin[i].ensureGrad().buffer,
          drp: this.rightP[i].ensureGrad().buffer,
          dup: this.upP[i].ensureGrad().buffer,
        },
        uniforms: { n: p.size, ...coef },
        groups: fold(Math.ceil(p.size / 256)),
        what: `plane gradient ${p.name}`,
      });
      p.zeroGrad();
    });
  }

  /** Trainable values (for checkpoints). */
  async values(): Promise<PlaneValues> {
    const rd = (ps: Param[]) => Promise.all(ps.map((p) => p.basis.read()));
    return {
      origin: await rd(this.origin),
      right: await rd(this.rightP),
      up: await rd(this.upP),
      scale: (await this.scale.basis.read())[0],
    };
  }

  /** The effective plane: origin, right, up (orthogonalized, |up| = |right|) per parameter tensor. */
  async effective(): Promise<{
    names: string[];
    shapes: number[][];
    origin: Float32Array[];
    right: Float32Array[];
    up: Float32Array[];
  }> {
    await this.updateBasis();
    const all = await Promise.all(this.model.params.map((p) => p.basis.read()));
    const n = this.model.params.map((p) => p.size);
    return {
      names: this.model.params.map((p) => p.name),
      shapes: this.model.params.map((p) => [...p.shape]),
      origin: all.map((v, i) => v.slice(0, n[i])),
      right: all.map((v, i) => v.slice(n[i], 2 * n[i])),
      up: all.map((v, i) => v.slice(2 * n[i])),
    };
  }

  dispose(): void {
    this.model.dispose();
    for (const p of this.trainables()) p.dispose();
  }
}

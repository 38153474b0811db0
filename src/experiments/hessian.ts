// `loss-atlas hessian`: the largest and smallest Hessian eigenvalues of the loss at every point of a 2-D grid (or a
// 1-D path) theta + a * d1 + b * d2, and the map of |lambda_min / lambda_max| (Li et al. 2018).
//
// Hessian-vector products by central differences of gradients, batched on the weight manifold: for a block of P grid
// points with Lanczos vectors v_1..v_P, the model's basis is [theta, d1, d2, v_1, ..., v_P] and point p is evaluated
// twice, at coefficients (1, a_p, b_p, +eps e_p) and (1, a_p, b_p, -eps e_p). One batched backward of the sum of the
// 2P losses leaves in basis gradient 3 + p exactly eps * (g(x_p + eps v_p) - g(x_p - eps v_p)), so
// H v_p = that / (2 eps^2), with O(eps^2) error. As the reference tool, only parameters of dim > 1 (conv and linear
// weights) take part; the loss is the mean cross-entropy over the chosen images (the reference sums over batches,
// which scales both eigenvalues alike and leaves their ratio unchanged).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { Tensor } from '../engine/tensor.ts';
import { permutation, rng } from '../engine/random.ts';
import { batchOf, type Dataset } from '../data/fashion-mnist.ts';
import { atomicWrite, npyBytes, readNpy } from '../data/formats.ts';
import { paramShapes } from '../models/graph.ts';
import { type BnMode } from '../models/layers.ts';
import { type Sequential } from '../models/sequential.ts';
import type { ModelSpec } from '../models/zoo.ts';
import { backwardPoints } from '../models/run.ts';
import { manifoldModel, type Checkpoint, type WeightSet } from './checkpoint.ts';
import { Lanczos } from './lanczos.ts';
import { gridCells, planeOf, type SurfaceOptions } from './surface.ts';
import { vegaLitePng } from '../viz/vega.ts';

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
  constructor(readonly gpu: Gpu, readonly spec: ModelSpec, readonly plane: WeightSet[], readonly bnMode: BnMode, images: { data: Dataset; pick: ArrayLike<number> }, readonly eps: number, readonly pairedMasks = true, chunk = 500) {
    this.layout = hessianLayout(spec);
    this.n = this.layout.reduce((a, l) => a + l.size, 0);
    this.sizes = paramShapes(spec.layers).map((s) => s.shape.reduce((a, b) => a * b, 1));
    const { data, pick } = images;
    for (let i0 = 0; i0 < pick.length; i0 += chunk) {
      const idx = Array.prototype.slice.call(pick, i0, i0 + chunk) as number[];
      const { x, y } = batchOf(data, idx);
      this.batches.push({ x: Tensor.fromArray(gpu, [idx.length, ...data.shape], x, 'hvp.x'), y: Tensor.fromArray(gpu, [idx.length], y, 'hvp.y', 'u32'), weight: idx.length / pick.length });
    }
  }

  /** Splits a flat Hessian vector into per-tensor arrays (zeros on the tensors the Hessian leaves out). */
  private unflatten(v: ArrayLike<number>): Float32Array[] {
    const out = this.sizes.map((s) => new Float32Array(s));
    for (const l of this.layout) for (let i = 0; i < l.size; i++) out[l.tensor][i] = v[l.offset + i];
    return out;
  }

  async products(coefs: number[][], vs: ArrayLike<number>[]): Promise<{ hv: Float64Array[]; loss: number[] }> {
    const P = vs.length, G = this.plane.length, B = G + P, eps = this.eps;
    const bases: WeightSet[] = [...this.plane, ...vs.map((v) => ({ weights: this.unflatten(v), states: null }))];
    const model: Sequential = manifoldModel(this.gpu, this.spec, bases, this.bnMode);
    const C = new Float32Array(2 * P * B);
    for (let p = 0; p < P; p++)
      for (const [s, sign] of [[0, 1], [1, -1]] as const) {
        const row = (2 * p + s) * B;
        for (let g = 0; g < G; g++) C[row + g] = coefs[p][g];
        C[row + G + p] = sign * eps;
      }
    const loss = new Array<number>(P).fill(0);
    try {
      for (const b of this.batches) {
        const r = await backwardPoints(this.gpu, model, C, new Array(2 * P).fill(b.weight), b.x, b.y, { pairedMasks: this.pairedMasks });
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
    for (const b of this.batches) { b.x.dispose(); b.y.dispose(); }
    this.batches = [];
  }
}

export interface HessianPointResult {
  max: number;
  min: number;
  loss: number;
  iterations: number;
}

/**
 * Lanczos for the extreme eigenvalues at P points together: every iteration is one batched HVP pass over all points
 * not yet converged. seeds: one per point (the start vector), so that a point's result does not depend on its block.
 */
export async function extremeEigenvalues(hvp: HvpEngine, coefs: number[][], seeds: number[], o: { iters: number; tol: number }): Promise<HessianPointResult[]> {
  const lz = seeds.map((s) => new Lanczos(hvp.n, s));
  const loss = new Array<number>(coefs.length).fill(NaN);
  const done = new Array<boolean>(coefs.length).fill(false);
  for (let it = 0; it < o.iters; it++) {
    const active = lz.map((_, p) => p).filter((p) => !done[p]);
    if (!active.length) break;
    const r = await hvp.products(active.map((p) => coefs[p]), active.map((p) => lz[p].next()));
    active.forEach((p, j) => {
      lz[p].step(r.hv[j]);
      if (Number.isNaN(loss[p])) loss[p] = r.loss[j];
      if (lz[p].converged(o.tol) || lz[p].iterations >= Math.min(o.iters, hvp.n)) done[p] = true;
    });
  }
  return lz.map((l, p) => {
    const e = l.extremes();
    return { max: e.max, min: e.min, loss: loss[p], iterations: l.iterations };
  });
}

export interface HessianOptions extends Pick<SurfaceOptions, 'norm' | 'ignoreBiasBn' | 'dirType' | 'bnStats' | 'seed' | 'split' | 'images' | 'shard' | 'directions'> {
  xs: number[];
  /** null: a 1-D path along d1 only. */
  ys: number[] | null;
  iters: number;
  tol: number;
  eps: number;
  /** Grid points per batched block. */
  block: number;
}

export interface HessianResult {
  xs: number[];
  ys: number[] | null;
  /** [ny, nx] (or [nx]) */
  max: Float32Array;
  min: Float32Array;
  loss: Float32Array;
  iters: Float32Array;
}

const ARRAYS = ['max', 'min', 'loss', 'iters'] as const;

export async function runHessian(gpu: Gpu, a: Checkpoint, targets: [Checkpoint | null, Checkpoint | null], data: { train: Dataset; test: Dataset }, o: HessianOptions, out: string, hooks: { shouldStop?: () => boolean; onBlock?: (done: number, total: number) => void } = {}): Promise<HessianResult> {
  mkdirSync(out, { recursive: true });
  const { spec, d1, d2, bnMode } = planeOf(a, targets, data.train.shape, o);
  const plane: WeightSet[] = o.ys ? [a, d1, d2] : [a, d1];
  const nx = o.xs.length, ny = o.ys ? o.ys.length : 1, K = nx * ny;
  const shape = o.ys ? [ny, nx] : [nx];
  const arrays: Record<(typeof ARRAYS)[number], Float32Array> = { max: new Float32Array(K).fill(NaN), min: new Float32Array(K).fill(NaN), loss: new Float32Array(K).fill(NaN), iters: new Float32Array(K).fill(NaN) };
  const path = (k: string) => join(out, `hessian_${k}.npy`);
  const sh = o.shard ?? { i: 0, n: 1 };
  // everything that decides a point's value: a resumed run must match it (only the shard may differ)
  const meta = {
    x: o.xs, y: o.ys, split: o.split, images: o.images, norm: o.norm, ignoreBiasBn: o.ignoreBiasBn, seed: o.seed, model: a.model, modelFile: a.path,
    targets: targets.map((t) => t?.path ?? null), explicitDirections: !!o.directions, dirType: o.dirType, bnStats: o.bnStats, iters: o.iters, tol: o.tol, eps: o.eps, shard: sh,
  };
  const metaPath = join(out, 'hessian_meta.json');
  if (ARRAYS.every((k) => existsSync(path(k)))) {
    if (existsSync(metaPath)) {
      const old = JSON.parse(readFileSync(metaPath, 'utf8'));
      const key = (m: Record<string, unknown>) => JSON.stringify({ ...m, shard: undefined });
      if (key(old) !== key(meta)) throw new Error(`${out} holds a Hessian map with other settings (grid, images, directions, seed, iterations or checkpoint); use another --out`);
    }
    for (const k of ARRAYS) {
      const r = readNpy(path(k));
      if (r.shape.join() !== shape.join()) throw new Error(`${path(k)}: grid [${r.shape}] does not match ${o.ys ? '--x/--y' : '--x'} [${shape}]; use another --out`);
      arrays[k] = r.data;
    }
  }
  atomicWrite(metaPath, JSON.stringify(meta) + '\n');
  const mine = (k: number) => k % sh.n === sh.i;
  const own = Array.from({ length: K }, (_, k) => k).filter(mine);
  const todo = own.filter((k) => Number.isNaN(arrays.iters[k])); // iters is finite once a point is done, even if its values are not
  const ds = data[o.split];
  const n = o.images > 0 ? Math.min(o.images, ds.n) : ds.n;
  const pick = Array.from(permutation(ds.n, rng(o.seed + 17))).slice(0, n);
  const hvp = new HvpEngine(gpu, spec, plane, bnMode, { data: ds, pick }, o.eps);
  const coefOf = (k: number) => (o.ys ? [1, o.xs[k % nx], o.ys[Math.floor(k / nx)]] : [1, o.xs[k]]);
  try {
    for (let b0 = 0; b0 < todo.length; b0 += o.block) {
      const ks = todo.slice(b0, b0 + o.block);
      const res = await extremeEigenvalues(hvp, ks.map(coefOf), ks.map((k) => o.seed * 1_000_003 + k), o);
      ks.forEach((k, q) => {
        arrays.max[k] = res[q].max; arrays.min[k] = res[q].min; arrays.loss[k] = res[q].loss; arrays.iters[k] = res[q].iterations;
      });
      for (const k of ARRAYS) atomicWrite(path(k), npyBytes(arrays[k], shape));
      const doneCount = own.length - todo.length + b0 + ks.length;
      hooks.onBlock?.(doneCount, own.length);
      if (hooks.shouldStop?.() && b0 + o.block < todo.length) throw new HessianInterrupted(`interrupted with ${doneCount} of ${own.length} points done; the partial maps are saved in ${out}`);
    }
  } finally {
    hvp.dispose();
  }
  const result: HessianResult = { xs: o.xs, ys: o.ys, ...arrays };
  if (sh.n > 1) return result;
  await writeHessianOutputs(result, out, `${a.model}, ${o.split} loss`);
  return result;
}

export class HessianInterrupted extends Error {}

/** Signed and absolute eigenvalue ratios. */
export function ratios(r: HessianResult): { abs: Float32Array; signed: Float32Array } {
  const signed = r.min.map((mn, k) => mn / r.max[k]);
  return { abs: signed.map(Math.abs), signed };
}

async function writeHessianOutputs(r: HessianResult, out: string, what: string): Promise<void> {
  const shape = r.ys ? [r.ys.length, r.xs.length] : [r.xs.length];
  for (const k of ARRAYS) atomicWrite(join(out, `hessian_${k}.npy`), npyBytes(r[k], shape));
  const { abs, signed } = ratios(r);
  atomicWrite(join(out, 'hessian.json'), JSON.stringify({ x: r.xs, y: r.ys, max_eig: Array.from(r.max), min_eig: Array.from(r.min), loss: Array.from(r.loss), iterations: Array.from(r.iters), abs_ratio: Array.from(abs) }) + '\n');
  if (r.ys) {
    await ratioMap(r, abs, join(out, 'hessian_ratio.png'), `|lambda_min / lambda_max| (${what})`, 'abs');
    await ratioMap(r, signed, join(out, 'hessian_ratio_signed.png'), `lambda_min / lambda_max (${what})`, 'signed');
    await ratioMap(r, r.max, join(out, 'hessian_max.png'), `lambda_max (${what})`, 'value');
  } else {
    await pathPlot(r, abs, join(out, 'hessian_path.png'), what);
  }
}

/** Heatmap of a per-point value: abs ratio on viridis 0..0.5 (the reference's vmin/vmax), signed on a diverging scale. */
async function ratioMap(r: HessianResult, v: Float32Array, path: string, title: string, kind: 'abs' | 'signed' | 'value'): Promise<void> {
  const values = gridCells(r.xs, r.ys!, v, (z) => (Number.isFinite(z) ? z : null));
  const scale: { scheme: 'viridis' | 'redblue'; domain?: number[]; clamp?: boolean; domainMid?: number; reverse?: boolean } = kind === 'abs' ? { scheme: 'viridis', domain: [0, 0.5], clamp: true } : kind === 'signed' ? { scheme: 'redblue', domainMid: 0, reverse: true } : { scheme: 'viridis' };
  await vegaLitePng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 340, height: 340, data: { values },
    mark: 'rect',
    encoding: {
      x: { field: 'x', type: 'quantitative', title: 'x direction' }, x2: { field: 'x2' },
      y: { field: 'y', type: 'quantitative', title: 'y direction' }, y2: { field: 'y2' },
      color: { field: 'v', type: 'quantitative', scale, title: kind === 'value' ? 'lambda_max' : 'ratio' },
    },
  }, path);
}

async function pathPlot(r: HessianResult, abs: Float32Array, path: string, what: string): Promise<void> {
  const rows = r.xs.flatMap((x, k) => [
    { x, series: 'lambda_max', v: r.max[k] },
    { x, series: 'lambda_min', v: r.min[k] },
    { x, series: '|min/max|', v: abs[k] },
  ]);
  await vegaLitePng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Hessian extremes along the path (${what})`, data: { values: rows },
    vconcat: [
      { width: 460, height: 200, transform: [{ filter: "datum.series != '|min/max|'" }], mark: 'line', encoding: { x: { field: 'x', type: 'quantitative', title: 'alpha' }, y: { field: 'v', type: 'quantitative', title: 'eigenvalue' }, color: { field: 'series', type: 'nominal' } } },
      { width: 460, height: 120, transform: [{ filter: "datum.series == '|min/max|'" }], mark: { type: 'line', color: '#440154' }, encoding: { x: { field: 'x', type: 'quantitative', title: 'alpha' }, y: { field: 'v', type: 'quantitative', title: '|lambda_min / lambda_max|' } } },
    ],
  }, path);
}

/** Joins the shard directories of one Hessian map into out; every point must be filled by exactly one shard. */
export async function mergeHessians(dirs: string[], out: string): Promise<HessianResult> {
  const metas = dirs.map((d) => {
    const p = join(d, 'hessian_meta.json');
    if (!existsSync(p)) throw new Error(`${d}: no hessian_meta.json (not a hessian run directory?)`);
    return JSON.parse(readFileSync(p, 'utf8'));
  });
  // shards may run on machines with other paths to the same checkpoint
  const key = (m: Record<string, unknown>) => JSON.stringify({ ...m, shard: undefined, modelFile: undefined, targets: undefined });
  metas.forEach((m, i) => { if (key(m) !== key(metas[0])) throw new Error(`merge: ${dirs[i]} is a different Hessian map (grid, images, directions or settings) from ${dirs[0]}`); });
  const xs: number[] = metas[0].x, ys: number[] | null = metas[0].y;
  const K = xs.length * (ys ? ys.length : 1);
  const merged = Object.fromEntries(ARRAYS.map((k) => [k, new Float32Array(K).fill(NaN)])) as Record<(typeof ARRAYS)[number], Float32Array>;
  for (const d of dirs) {
    const parts = Object.fromEntries(ARRAYS.map((k) => [k, readNpy(join(d, `hessian_${k}.npy`)).data]));
    for (let k = 0; k < K; k++) {
      if (Number.isNaN(parts.iters[k])) continue;
      if (!Number.isNaN(merged.iters[k]) && !Object.is(merged.max[k], parts.max[k])) throw new Error(`merge: point ${k} has two different values (${merged.max[k]} and ${parts.max[k]} in ${d})`);
      for (const a of ARRAYS) merged[a][k] = parts[a][k];
    }
  }
  const missing = Array.from(merged.iters).filter(Number.isNaN).length;
  if (missing) throw new Error(`merge: ${missing} of ${K} points are in none of the shards (a shard unfinished or missing?)`);
  mkdirSync(out, { recursive: true });
  atomicWrite(join(out, 'hessian_meta.json'), JSON.stringify({ ...metas[0], shard: { i: 0, n: 1 } }) + '\n');
  const result: HessianResult = { xs, ys, ...merged };
  await writeHessianOutputs(result, out, `${metas[0].model}, ${metas[0].split} loss, ${dirs.length} shards`);
  return result;
}

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
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { permutation, rng } from '../engine/random.ts';
import type { Dataset } from '../data/dataset.ts';
import { atomicWrite } from '../data/formats.ts';
import type { Checkpoint, WeightSet } from '../models/checkpoint.ts';
import { Lanczos } from '../numerics/lanczos.ts';
import { HvpEngine } from '../numerics/hvp.ts';
import { gridPoint, mergeGrids, openGrid, type GridFiles, type GridHooks } from '../run/grid.ts';
import { planeOf } from './plane.ts';
import type { SurfaceOptions } from './surface.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { heatmap, writePng, type HeatmapOptions } from '../viz/figure.ts';

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
export async function extremeEigenvalues(
  hvp: HvpEngine,
  coefs: number[][],
  seeds: number[],
  o: { iters: number; tol: number },
): Promise<HessianPointResult[]> {
  const lz = seeds.map((s) => new Lanczos(hvp.n, s));
  const loss = new Array<number>(coefs.length).fill(NaN);
  const done = new Array<boolean>(coefs.length).fill(false);
  for (let it = 0; it < o.iters; it++) {
    const active = lz.map((_, p) => p).filter((p) => !done[p]);
    if (!active.length) break;
    const r = await hvp.products(
      active.map((p) => coefs[p]),
      active.map((p) => lz[p].next()),
    );
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

export interface HessianOptions
  extends Pick<
    SurfaceOptions,
    'norm' | 'ignoreBiasBn' | 'dirType' | 'bnStats' | 'seed' | 'split' | 'images' | 'shard' | 'directions'
  > {
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

const HESSIAN: GridFiles<(typeof ARRAYS)[number]> = {
  // iters is finite once a point is done, even if its values are not; shards may run on machines with other paths
  // to the same checkpoint
  name: 'hessian',
  arrays: ARRAYS,
  doneBy: 'iters',
  local: ['modelFile', 'targets'],
  kind: 'hessian',
  noun: 'Hessian map',
  decides: 'grid, images, directions, seed, iterations or checkpoint',
};

export async function runHessian(
  gpu: Gpu,
  a: Checkpoint,
  targets: [Checkpoint | null, Checkpoint | null],
  data: { train: Dataset; test: Dataset },
  o: HessianOptions,
  out: string,
  hooks: GridHooks = {},
): Promise<HessianResult> {
  const { spec, d1, d2, bnMode } = planeOf(a, targets, data.train.shape, o);
  const plane: WeightSet[] = o.ys ? [a, d1, d2] : [a, d1];
  // everything that decides a point's value: a resumed run must match it (only the shard may differ)
  const meta = {
    x: o.xs,
    y: o.ys,
    split: o.split,
    images: o.images,
    norm: o.norm,
    ignoreBiasBn: o.ignoreBiasBn,
    seed: o.seed,
    model: a.model,
    modelFile: a.path,
    targets: targets.map((t) => t?.path ?? null),
    explicitDirections: !!o.directions,
    dirType: o.dirType,
    bnStats: o.bnStats,
    iters: o.iters,
    tol: o.tol,
    eps: o.eps,
  };
  const job = openGrid({
    ...HESSIAN,
    out,
    xs: o.xs,
    ys: o.ys,
    meta,
    settings: { block: o.block },
    shard: o.shard,
    adapter: gpu.adapterInfo,
    partial: 'the partial maps are saved',
  });
  const ds = data[o.split];
  const n = o.images > 0 ? Math.min(o.images, ds.n) : ds.n;
  const pick = Array.from(permutation(ds.n, rng(o.seed + 17))).slice(0, n);
  const hvp = new HvpEngine(gpu, spec, plane, bnMode, { data: ds, pick }, o.eps);
  try {
    await job.run({
      ...hooks,
      block: o.block,
      evaluate: async (ks) => {
        const coefs = ks.map((k) => [1, ...gridPoint(o.xs, o.ys, k)]);
        const res = await extremeEigenvalues(
          hvp,
          coefs,
          ks.map((k) => o.seed * 1_000_003 + k),
          o,
        );
        const of = (f: (r: HessianPointResult) => number) => res.map(f);
        const iters = of((p) => p.iterations);
        return { max: of((p) => p.max), min: of((p) => p.min), loss: of((p) => p.loss), iters };
      },
    });
  } finally {
    hvp.dispose();
  }
  const result: HessianResult = { xs: o.xs, ys: o.ys, ...job.values };
  if (o.shard && o.shard.n > 1) return result;
  await writeHessianOutputs(result, out, `${a.model}, ${o.split} loss`);
  return result;
}

/** Signed and absolute eigenvalue ratios. */
export function ratios(r: HessianResult): { abs: Float32Array; signed: Float32Array } {
  const signed = r.min.map((mn, k) => mn / r.max[k]);
  return { abs: signed.map(Math.abs), signed };
}

/** hessian.json and the pictures (the .npy arrays are written by the grid job). */
async function writeHessianOutputs(r: HessianResult, out: string, what: string): Promise<void> {
  const { abs, signed } = ratios(r);
  const json = {
    x: r.xs,
    y: r.ys,
    max_eig: Array.from(r.max),
    min_eig: Array.from(r.min),
    loss: Array.from(r.loss),
    iterations: Array.from(r.iters),
    abs_ratio: Array.from(abs),
  };
  atomicWrite(join(out, 'hessian.json'), `${JSON.stringify(json)}\n`);
  if (r.ys) {
    await ratioMap(r, abs, join(out, 'hessian_ratio.png'), `|lambda_min / lambda_max| (${what})`, 'abs');
    await ratioMap(r, signed, join(out, 'hessian_ratio_signed.png'), `lambda_min / lambda_max (${what})`, 'signed');
    await ratioMap(r, r.max, join(out, 'hessian_max.png'), `lambda_max (${what})`, 'value');
  } else {
    await pathPlot(r, abs, join(out, 'hessian_path.png'), what);
  }
}

/** Heatmap of a per-point value: abs ratio on viridis 0..0.5 (the reference's vmin/vmax), signed diverging at 0. */
async function ratioMap(
  r: HessianResult,
  v: Float32Array,
  path: string,
  title: string,
  kind: 'abs' | 'signed' | 'value',
): Promise<void> {
  const scale: Pick<HeatmapOptions, 'cmap' | 'vmin' | 'vmax' | 'mid'> =
    kind === 'abs'
      ? { cmap: 'viridis', vmin: 0, vmax: 0.5 }
      : kind === 'signed'
        ? { cmap: 'RdBu_r', mid: 0 }
        : { cmap: 'viridis' };
  const axes = { xs: r.xs, ys: r.ys!, xlabel: 'x direction', ylabel: 'y direction' };
  const legend = kind === 'value' ? 'lambda_max' : 'ratio';
  const finite = v.map((z) => (Number.isFinite(z) ? z : NaN));
  const map = heatmap(finite, r.ys!.length, r.xs.length, { title, scale: 'linear', ...scale, legend, axes });
  await writePng(map, path, 2);
}

async function pathPlot(r: HessianResult, abs: Float32Array, path: string, what: string): Promise<void> {
  const rows = r.xs.flatMap((x, k) => [
    { x, series: 'lambda_max', v: r.max[k] },
    { x, series: 'lambda_min', v: r.min[k] },
    { x, series: '|min/max|', v: abs[k] },
  ]);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `Hessian extremes along the path (${what})`,
      data: { values: rows },
      vconcat: [
        {
          width: 460,
          height: 200,
          transform: [{ filter: "datum.series != '|min/max|'" }],
          mark: 'line',
          encoding: {
            x: { field: 'x', type: 'quantitative', title: 'alpha' },
            y: { field: 'v', type: 'quantitative', title: 'eigenvalue' },
            color: { field: 'series', type: 'nominal' },
          },
        },
        {
          width: 460,
          height: 120,
          transform: [{ filter: "datum.series == '|min/max|'" }],
          mark: { type: 'line', color: '#440154' },
          encoding: {
            x: { field: 'x', type: 'quantitative', title: 'alpha' },
            y: { field: 'v', type: 'quantitative', title: '|lambda_min / lambda_max|' },
          },
        },
      ],
    },
    path,
  );
}

/** Joins the shard directories of one Hessian map into out; every point must be filled by exactly one shard. */
export async function mergeHessians(dirs: string[], out: string): Promise<HessianResult> {
  const { meta, values } = mergeGrids(dirs, out, HESSIAN);
  const result: HessianResult = { xs: meta.x, ys: meta.y, ...values };
  await writeHessianOutputs(result, out, `${meta.model}, ${meta.split} loss, ${dirs.length} shards`);
  return result;
}

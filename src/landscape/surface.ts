// `loss-atlas surface`: loss and accuracy on a 2-D grid theta + a * d1 + b * d2 (Li et al. 2018). Every grid point
// is a point of a B = 3 manifold [theta, d1, d2]; the grid is evaluated in blocks of points, and the partial result
// is written after each block (unfilled points hold NaN), so an interrupted run resumes where it stopped.
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { permutation, rng } from '../engine/random.ts';
import type { Dataset } from '../data/dataset.ts';
import { atomicWrite, safetensorsBytes } from '../data/formats.ts';
import { evaluateOnImages } from '../models/run.ts';
import { manifoldModel, type Checkpoint } from '../models/checkpoint.ts';
import { directionTensors } from './directions.ts';
import { planeOf, type PlaneOptions } from './plane.ts';
import { gridPoint, mergeGrids, openGrid, type GridFiles, type GridHooks, type Shard } from '../run/grid.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { contourSegments } from '../viz/contour.ts';
import { surfaceVtp } from '../viz/vtk.ts';
import { heatmap, writePng } from '../viz/figure.ts';
import { surface3d } from '../viz/charts.ts';
export interface SurfaceOptions extends PlaneOptions {
  xs: number[];
  ys: number[];
  split: 'train' | 'test';
  images: number;
  /** Grid points per block (one batched evaluation each, then the partial result is saved). */
  block: number;
  /** VTK export: clip the loss at zmax (0 = no clip); log: z = ln(loss + 0.1). */
  zmax?: number;
  log?: boolean;
  /** This process's share of the grid: points k with k % n == i (for many machines; join with merge). */
  shard?: Shard;
}

export interface SurfaceResult {
  xs: number[];
  ys: number[];
  /** [ny, nx], row j for y[j], column i for x[i] */
  loss: Float32Array;
  acc: Float32Array;
}

const SURFACE: GridFiles<'loss' | 'acc'> = {
  // shards may run on machines with other paths to the same checkpoint
  name: 'surface',
  arrays: ['loss', 'acc'],
  doneBy: 'loss',
  local: ['modelFile', 'targets'],
  kind: 'surface',
  noun: 'surface',
  decides: 'grid, images, directions, seed, model or checkpoint',
};

export async function runSurface(
  gpu: Gpu,
  a: Checkpoint,
  targets: [Checkpoint | null, Checkpoint | null],
  data: { train: Dataset; test: Dataset },
  o: SurfaceOptions,
  out: string,
  hooks: GridHooks = {},
): Promise<SurfaceResult> {
  const { spec, d1, d2, bnMode } = planeOf(a, targets, data.train.shape, o);
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
  };
  const settings = { block: o.block, zmax: o.zmax, log: o.log };
  const { shard } = o;
  const job = openGrid({ ...SURFACE, out, xs: o.xs, ys: o.ys, meta, settings, shard, adapter: gpu.adapterInfo });
  const dirMeta = { norm: o.norm, ignore: o.ignoreBiasBn ? 'biasbn' : '', seed: String(o.seed), dir_type: o.dirType };
  const dirs = { ...directionTensors('x/', spec.layers, d1), ...directionTensors('y/', spec.layers, d2) };
  atomicWrite(join(out, 'directions.safetensors'), safetensorsBytes(dirs, dirMeta));
  const model = manifoldModel(gpu, spec, [a, d1, d2], bnMode);
  const ds = data[o.split];
  const n = o.images > 0 ? Math.min(o.images, ds.n) : ds.n;
  const pick = Array.from(permutation(ds.n, rng(o.seed + 17))).slice(0, n);
  try {
    await job.run({
      ...hooks,
      block: o.block,
      evaluate: async (ks) => {
        const coefs = Float32Array.from(ks.flatMap((k) => [1, ...gridPoint(o.xs, o.ys, k)]));
        return evaluateOnImages(gpu, model, coefs, ds, pick);
      },
    });
  } finally {
    model.dispose();
  }
  const result = { xs: o.xs, ys: o.ys, loss: job.values.loss, acc: job.values.acc };
  if (o.shard && o.shard.n > 1) return result; // a shard: `merge` writes the joint outputs
  const title = `${o.split} loss around ${a.model} (${targets[0] ? 'target' : o.norm} directions)`;
  await writeSurfaceOutputs(result, out, { split: o.split, images: n, title, zmax: o.zmax, log: o.log });
  return result;
}

/** surface.json and the pictures (the .npy arrays are written by the grid job). */
async function writeSurfaceOutputs(
  result: SurfaceResult,
  out: string,
  o: { split: string; images: number; title: string; zmax?: number; log?: boolean },
): Promise<void> {
  const { xs, ys, loss, acc } = result;
  const json = { x: xs, y: ys, split: o.split, images: o.images, loss: Array.from(loss), acc: Array.from(acc) };
  atomicWrite(join(out, 'surface.json'), `${JSON.stringify(json)}\n`);
  await plotSurface(result, join(out, 'surface_heatmap.png'), o.title);
  await plotContours(result, join(out, 'surface_contour.png'), o.title);
  atomicWrite(join(out, 'surface.vtp'), surfaceVtp(xs, ys, loss, { zmax: o.zmax, log: o.log }));
  const zmax = o.zmax && o.zmax > 0 ? o.zmax : undefined;
  await writePng(surface3d(xs, ys, loss, { title: o.title, zmax }), join(out, 'surface_3d.png'));
}

/** Contour lines at the reference's levels (0.1 to 10 in steps of 0.5), coloured by level. */
export async function plotContours(
  r: SurfaceResult,
  path: string,
  title: string,
  levels = Array.from({ length: 20 }, (_, i) => 0.1 + 0.5 * i),
): Promise<void> {
  const segs = contourSegments(r.loss, r.xs, r.ys, levels);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title,
      width: 360,
      height: 360,
      data: { values: segs.length ? segs : [{ x1: r.xs[0], y1: r.ys[0], x2: r.xs[0], y2: r.ys[0], level: levels[0] }] },
      mark: { type: 'rule', strokeWidth: 1.5 },
      encoding: {
        x: {
          field: 'x1',
          type: 'quantitative',
          title: 'x direction',
          scale: { domain: [Math.min(...r.xs), Math.max(...r.xs)] },
        },
        x2: { field: 'x2' },
        y: {
          field: 'y1',
          type: 'quantitative',
          title: 'y direction',
          scale: { domain: [Math.min(...r.ys), Math.max(...r.ys)] },
        },
        y2: { field: 'y2' },
        color: { field: 'level', type: 'quantitative', scale: { scheme: 'viridis' }, title: 'loss' },
      },
    },
    path,
  );
}

/** Joins the shard directories of one surface (same grid) into `out`; every point must be filled by one shard. */
export async function mergeSurfaces(
  dirs: string[],
  out: string,
  vtk: { zmax?: number; log?: boolean } = {},
): Promise<SurfaceResult> {
  const { meta, values } = mergeGrids(dirs, out, SURFACE);
  const result = { xs: meta.x, ys: meta.y!, loss: values.loss, acc: values.acc };
  const title = `${meta.split} loss around ${meta.model} (${dirs.length} shards)`;
  await writeSurfaceOutputs(result, out, { split: String(meta.split), images: Number(meta.images), title, ...vtk });
  return result;
}

/** A filled heatmap of the loss (log colour scale, viridis). */
export async function plotSurface(r: SurfaceResult, path: string, title: string): Promise<void> {
  const axes = { xs: r.xs, ys: r.ys, xlabel: 'x direction', ylabel: 'y direction' };
  const loss = r.loss.map((l) => Math.max(l, 1e-6));
  const map = heatmap(loss, r.ys.length, r.xs.length, { title, cmap: 'viridis', scale: 'log', legend: 'loss', axes });
  await writePng(map, path, 2);
}

// `loss-atlas surface`: loss and accuracy on a 2-D grid theta + a * d1 + b * d2 (Li et al. 2018). Every grid point
// is a point of a B = 3 manifold [theta, d1, d2]; the grid is evaluated in blocks of points, and the partial result
// is written after each block (unfilled points hold NaN), so an interrupted run resumes where it stopped.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { permutation, rng } from '../engine/random.ts';
import type { Dataset } from '../data/fashion-mnist.ts';
import { atomicWrite, npyBytes, readNpy, safetensorsBytes } from '../data/formats.ts';
import { paramShapes } from '../models/graph.ts';
import { evaluateOnImages } from '../models/run.ts';
import { directionTensors, randomDirectionSet, targetDirectionSet, type DirNorm, type DirType } from './directions.ts';
import { bnModeFor, checkpointSpec, manifoldModel, sameModel, type Checkpoint, type WeightSet } from './checkpoint.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { contourSegments } from '../viz/contour.ts';
import { surfaceVtp } from '../viz/vtk.ts';
import { surface3d, writePng } from '../viz/figure.ts';

export interface SurfaceOptions {
  xs: number[];
  ys: number[];
  split: 'train' | 'test';
  images: number;
  norm: DirNorm;
  ignoreBiasBn: boolean;
  dirType: DirType;
  bnStats: 'running' | 'batch';
  seed: number;
  /** Grid points per block (one batched evaluation each, then the partial result is saved). */
  block: number;
  /** Explicit directions (e.g. PCA components), used as they are instead of targets or random ones. */
  directions?: [WeightSet, WeightSet];
  /** VTK export: clip the loss at zmax (0 = no clip); log: z = ln(loss + 0.1). */
  zmax?: number;
  log?: boolean;
  /** This process's share of the grid: points k with k % n == i (for many machines; join with merge). */
  shard?: { i: number; n: number };
}

export interface SurfaceResult {
  xs: number[];
  ys: number[];
  /** [ny, nx], row j for y[j], column i for x[i] */
  loss: Float32Array;
  acc: Float32Array;
}


/** The plane of a surface (or Hessian map): the model, the two directions and how BN is evaluated. */
export function planeOf(a: Checkpoint, targets: [Checkpoint | null, Checkpoint | null], input: [number, number, number], o: Pick<SurfaceOptions, 'norm' | 'ignoreBiasBn' | 'dirType' | 'bnStats' | 'seed' | 'directions'>) {
  const spec = checkpointSpec(a, input);
  const shapes = paramShapes(spec.layers).map((p) => p.shape);
  const bnMode = bnModeFor(a, o.bnStats, spec.layers);
  for (const t of targets) if (t) sameModel(a, t);
  const dir = (t: Checkpoint | null, seed: number): WeightSet => (t ? targetDirectionSet(a, t, o.dirType) : randomDirectionSet(a, shapes, { seed, norm: o.norm, ignoreBiasBn: o.ignoreBiasBn, dirType: o.dirType }));
  const [d1, d2] = o.directions ?? [dir(targets[0], o.seed), dir(targets[1], o.seed + 1)];
  return { spec, d1, d2, bnMode };
}

export async function runSurface(gpu: Gpu, a: Checkpoint, targets: [Checkpoint | null, Checkpoint | null], data: { train: Dataset; test: Dataset }, o: SurfaceOptions, out: string, hooks: { shouldStop?: () => boolean; onBlock?: (done: number, total: number) => void } = {}): Promise<SurfaceResult> {
  mkdirSync(out, { recursive: true });
  const { spec, d1, d2, bnMode } = planeOf(a, targets, data.train.shape, o);
  atomicWrite(join(out, 'directions.safetensors'), safetensorsBytes({ ...directionTensors('x/', spec.layers, d1), ...directionTensors('y/', spec.layers, d2) }, { norm: o.norm, ignore: o.ignoreBiasBn ? 'biasbn' : '', seed: String(o.seed), dir_type: o.dirType }));
  const nx = o.xs.length, ny = o.ys.length, K = nx * ny;
  const lossPath = join(out, 'surface_loss.npy'), accPath = join(out, 'surface_acc.npy');
  let loss: Float32Array = new Float32Array(K).fill(NaN), acc: Float32Array = new Float32Array(K).fill(NaN);
  const sh = o.shard ?? { i: 0, n: 1 };
  const meta = { x: o.xs, y: o.ys, split: o.split, images: o.images, norm: o.norm, ignoreBiasBn: o.ignoreBiasBn, seed: o.seed, model: a.model, explicitDirections: !!o.directions, dirType: o.dirType, bnStats: o.bnStats, shard: sh };
  const metaPath = join(out, 'surface_meta.json');
  if (existsSync(lossPath) && existsSync(accPath)) {
    if (existsSync(metaPath)) {
      const old = JSON.parse(readFileSync(metaPath, 'utf8'));
      const key = (m: Record<string, unknown>) => JSON.stringify({ ...m, shard: undefined });
      if (key(old) !== key(meta)) throw new Error(`${out} holds a surface with other settings (grid, images, directions, seed or model); use another --out`);
    }
    const l = readNpy(lossPath), c = readNpy(accPath);
    if (l.shape.join() === `${ny},${nx}` && c.shape.join() === `${ny},${nx}`) { loss = l.data; acc = c.data; }
    else throw new Error(`${lossPath}: grid [${l.shape}] does not match --x/--y [${ny},${nx}]; use another --out`);
  }
  atomicWrite(metaPath, JSON.stringify(meta) + '\n');
  const mine = (k: number) => k % sh.n === sh.i;
  const todo = Array.from({ length: K }, (_, k) => k).filter((k) => mine(k) && Number.isNaN(loss[k]));
  const ownCount = Array.from({ length: K }, (_, k) => k).filter(mine).length;
  const model = manifoldModel(gpu, spec, [a, d1, d2], bnMode);
  const ds = data[o.split];
  const n = o.images > 0 ? Math.min(o.images, ds.n) : ds.n;
  const pick = Array.from(permutation(ds.n, rng(o.seed + 17)));
  try {
    for (let b0 = 0; b0 < todo.length; b0 += o.block) {
      const ks = todo.slice(b0, b0 + o.block);
      const coefs = Float32Array.from(ks.flatMap((k) => [1, o.xs[k % nx], o.ys[Math.floor(k / nx)]]));
      const res = await evaluateOnImages(gpu, model, coefs, ds, pick.slice(0, n));
      ks.forEach((k, q) => { loss[k] = res.loss[q]; acc[k] = res.acc[q]; });
      atomicWrite(lossPath, npyBytes(loss, [ny, nx]));
      atomicWrite(accPath, npyBytes(acc, [ny, nx]));
      hooks.onBlock?.(ownCount - todo.length + b0 + ks.length, ownCount);
      if (hooks.shouldStop?.() && b0 + o.block < todo.length) throw new SurfaceInterrupted(`interrupted with ${ownCount - todo.length + b0 + ks.length} of ${ownCount} points done; the partial surface is saved in ${out}`);
    }
  } finally {
    model.dispose();
  }
  const result = { xs: o.xs, ys: o.ys, loss, acc };
  if (sh.n > 1) return result; // a shard: `merge` writes the joint outputs
  await writeSurfaceOutputs(result, out, { split: o.split, images: n, title: `${o.split} loss around ${a.model} (${targets[0] ? 'target' : o.norm} directions)`, zmax: o.zmax, log: o.log });
  return result;
}

async function writeSurfaceOutputs(result: SurfaceResult, out: string, o: { split: string; images: number; title: string; zmax?: number; log?: boolean }): Promise<void> {
  const { xs, ys, loss, acc } = result;
  atomicWrite(join(out, 'surface_loss.npy'), npyBytes(loss, [ys.length, xs.length]));
  atomicWrite(join(out, 'surface_acc.npy'), npyBytes(acc, [ys.length, xs.length]));
  atomicWrite(join(out, 'surface.json'), JSON.stringify({ x: xs, y: ys, split: o.split, images: o.images, loss: Array.from(loss), acc: Array.from(acc) }) + '\n');
  await plotSurface(result, join(out, 'surface_heatmap.png'), o.title);
  await plotContours(result, join(out, 'surface_contour.png'), o.title);
  atomicWrite(join(out, 'surface.vtp'), surfaceVtp(xs, ys, loss, { zmax: o.zmax, log: o.log }));
  await writePng(surface3d(xs, ys, loss, { title: o.title, zmax: o.zmax && o.zmax > 0 ? o.zmax : undefined }), join(out, 'surface_3d.png'));
}

/** Contour lines at the reference's levels (0.1 to 10 in steps of 0.5), coloured by level. */
export async function plotContours(r: SurfaceResult, path: string, title: string, levels = Array.from({ length: 20 }, (_, i) => 0.1 + 0.5 * i)): Promise<void> {
  const segs = contourSegments(r.loss, r.xs, r.ys, levels);
  await vegaLitePng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 360, height: 360, data: { values: segs.length ? segs : [{ x1: r.xs[0], y1: r.ys[0], x2: r.xs[0], y2: r.ys[0], level: levels[0] }] },
    mark: { type: 'rule', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'x1', type: 'quantitative', title: 'x direction', scale: { domain: [Math.min(...r.xs), Math.max(...r.xs)] } }, x2: { field: 'x2' },
      y: { field: 'y1', type: 'quantitative', title: 'y direction', scale: { domain: [Math.min(...r.ys), Math.max(...r.ys)] } }, y2: { field: 'y2' },
      color: { field: 'level', type: 'quantitative', scale: { scheme: 'viridis' }, title: 'loss' },
    },
  }, path);
}

/** Joins the shard directories of one surface (same grid) into `out`; every point must be filled by exactly one shard. */
export async function mergeSurfaces(dirs: string[], out: string, vtk: { zmax?: number; log?: boolean } = {}): Promise<SurfaceResult> {
  if (dirs.length === 0) throw new Error('merge: give the shard directories');
  const metas = dirs.map((d) => {
    const p = join(d, 'surface_meta.json');
    if (!existsSync(p)) throw new Error(`${d}: no surface_meta.json (not a surface run directory?)`);
    return JSON.parse(readFileSync(p, 'utf8'));
  });
  const key = (m: { x: number[]; y: number[]; split: string; images: number; norm: string; seed: number; model: string }) => JSON.stringify([m.x, m.y, m.split, m.images, m.norm, m.seed, m.model]);
  metas.forEach((m, i) => { if (key(m) !== key(metas[0])) throw new Error(`merge: ${dirs[i]} is a different surface (grid, split, images, directions or model) from ${dirs[0]}`); });
  const xs: number[] = metas[0].x, ys: number[] = metas[0].y;
  const K = xs.length * ys.length;
  const loss = new Float32Array(K).fill(NaN), acc = new Float32Array(K).fill(NaN);
  dirs.forEach((d) => {
    const l = readNpy(join(d, 'surface_loss.npy')).data, c = readNpy(join(d, 'surface_acc.npy')).data;
    for (let k = 0; k < K; k++) {
      if (Number.isNaN(l[k])) continue;
      if (!Number.isNaN(loss[k]) && loss[k] !== l[k]) throw new Error(`merge: point ${k} has two different values (${loss[k]} and ${l[k]} in ${d})`);
      loss[k] = l[k]; acc[k] = c[k];
    }
  });
  const missing = Array.from(loss).filter(Number.isNaN).length;
  if (missing) throw new Error(`merge: ${missing} of ${K} points are in none of the shards (a shard unfinished or missing?)`);
  mkdirSync(out, { recursive: true });
  const result = { xs, ys, loss, acc };
  await writeSurfaceOutputs(result, out, { split: metas[0].split, images: metas[0].images, title: `${metas[0].split} loss around ${metas[0].model} (${dirs.length} shards)`, ...vtk });
  return result;
}

export class SurfaceInterrupted extends Error {}

/** One rectangle per grid point (values [ny, nx], row j for ys[j]) centred on it, for Vega-Lite rect marks. */
export function gridCells<T>(xs: number[], ys: number[], values: ArrayLike<number>, f: (v: number) => T): { x: number; x2: number; y: number; y2: number; v: T }[] {
  const nx = xs.length;
  const dx = nx > 1 ? Math.abs(xs[1] - xs[0]) : 1, dy = ys.length > 1 ? Math.abs(ys[1] - ys[0]) : 1;
  return Array.from(values, (z, k) => ({ x: xs[k % nx] - dx / 2, x2: xs[k % nx] + dx / 2, y: ys[Math.floor(k / nx)] - dy / 2, y2: ys[Math.floor(k / nx)] + dy / 2, v: f(z) }));
}

/** A filled heatmap of the loss (log colour scale, viridis). */
export async function plotSurface(r: SurfaceResult, path: string, title: string): Promise<void> {
  const values = gridCells(r.xs, r.ys, r.loss, (l) => Math.max(l, 1e-6));
  await vegaLitePng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 360, height: 360, data: { values },
    mark: 'rect',
    encoding: {
      x: { field: 'x', type: 'quantitative', title: 'x direction' }, x2: { field: 'x2' },
      y: { field: 'y', type: 'quantitative', title: 'y direction' }, y2: { field: 'y2' },
      color: { field: 'v', type: 'quantitative', scale: { type: 'log', scheme: 'viridis' }, title: 'loss' },
    },
  }, path);
}

// `loss-atlas trajectory`: the training path in the plane of its two principal directions (Li et al. 2018): PCA of
// the per-epoch snapshots minus the final weights (centred, as sklearn's PCA), the path projected onto the two unit
// components, and the loss surface of that plane around the final weights, evaluated as a B = 3 manifold.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import type { Dataset } from '../data/dataset.ts';
import { readCheckpoint, type Checkpoint } from './interpolate.ts';
import { runSurface, type SurfaceResult } from './surface.ts';
import { contourSegments } from '../viz/contour.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { symmetricEigen } from '../numerics/eigen.ts';
export interface Pca {
  directions: [Float32Array[], Float32Array[]];
  explained: [number, number];
  /** path coordinates of each snapshot, in snapshot order */
  path: [number, number][];
}

/** PCA of (snapshot - final), tensors flattened in order; directions are unit vectors in weight space. */
export function trajectoryPca(snapshots: Float32Array[][], final: Float32Array[]): Pca {
  const n = snapshots.length;
  if (n < 3) throw new Error(`trajectory: ${n} snapshots; at least 3 are needed (train with --snapshots)`);
  const sizes = final.map((t) => t.length);
  const P = sizes.reduce((a, b) => a + b, 0);
  const X = snapshots.map((s) => {
    const row = new Float64Array(P);
    let o = 0;
    s.forEach((t, i) => {
      for (let j = 0; j < t.length; j++) row[o + j] = t[j] - final[i][j];
      o += t.length;
    });
    return row;
  });
  const mean = new Float64Array(P);
  for (const r of X) for (let j = 0; j < P; j++) mean[j] += r[j] / n;
  const Xc = X.map((r) => r.map((v, j) => v - mean[j]));
  const G = Xc.map((a) => Xc.map((b) => a.reduce((s, v, j) => s + v * b[j], 0)));
  const { values, vectors } = symmetricEigen(G);
  const total = values.reduce((s, v) => s + Math.max(0, v), 0) || 1;
  const dirs = [0, 1].map((c) => {
    const d = new Float64Array(P);
    Xc.forEach((r, e) => {
      for (let j = 0; j < P; j++) d[j] += vectors[c][e] * r[j];
    });
    const nrm = Math.sqrt(d.reduce((s, v) => s + v * v, 0)) || 1;
    return d.map((v) => v / nrm);
  });
  const split = (d: Float64Array) => {
    let o = 0;
    return sizes.map((s) => {
      const t = Float32Array.from(d.subarray(o, o + s));
      o += s;
      return t;
    });
  };
  const path = X.map((r) => [0, 1].map((c) => r.reduce((s, v, j) => s + v * dirs[c][j], 0)) as [number, number]);
  return {
    directions: [split(dirs[0]), split(dirs[1])],
    explained: [Math.max(0, values[0]) / total, Math.max(0, values[1]) / total],
    path,
  };
}

/** Snapshots of a train run directory (snapshots/epoch-<n>.safetensors), in epoch order, and its final weights. */
export function readTrainRun(
  dir: string,
  input: [number, number, number],
): { snapshots: Checkpoint[]; final: Checkpoint; epochs: number[] } {
  const sd = join(dir, 'snapshots');
  if (!existsSync(sd)) throw new Error(`${dir}: no snapshots/ (train with --snapshots)`);
  const files = readdirSync(sd)
    .filter((f) => /^epoch-\d+\.safetensors$/.test(f))
    .sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
  const finalPath = join(dir, 'model.safetensors');
  if (!existsSync(finalPath)) throw new Error(`${dir}: no model.safetensors (is the training finished?)`);
  return {
    snapshots: files.map((f) => readCheckpoint(join(sd, f), input)),
    final: readCheckpoint(finalPath, input),
    epochs: files.map((f) => Number(f.match(/\d+/)![0])),
  };
}

export async function runTrajectory(
  gpu: Gpu,
  dir: string,
  data: { train: Dataset; test: Dataset },
  o: { grid: number; images: number; margin: number },
  out: string,
): Promise<{ pca: Pca; surface: SurfaceResult }> {
  const run = readTrainRun(dir, data.train.shape);
  writeRunConfig(out, 'trajectory', { run: dir, ...o }, gpu);
  const pca = trajectoryPca(
    run.snapshots.map((s) => s.weights),
    run.final.weights,
  );
  const ext = (c: 0 | 1) => {
    const v = pca.path.map((p) => p[c]);
    const lo = Math.min(0, ...v),
      hi = Math.max(0, ...v),
      m = (hi - lo) * o.margin || 1;
    return [lo - m, hi + m];
  };
  const lin = ([a, b]: number[]) => Array.from({ length: o.grid }, (_, i) => a + ((b - a) * i) / (o.grid - 1));
  const surface = await runSurface(
    gpu,
    run.final,
    [null, null],
    data,
    {
      xs: lin(ext(0)),
      ys: lin(ext(1)),
      split: 'train',
      images: o.images,
      norm: 'none',
      ignoreBiasBn: false,
      dirType: 'weights',
      bnStats: 'running',
      seed: 0,
      block: 256,
      directions: [
        { weights: pca.directions[0], states: null },
        { weights: pca.directions[1], states: null },
      ],
    },
    join(out, 'surface'),
  );
  writeFileSync(
    join(out, 'trajectory.json'),
    `${JSON.stringify({ epochs: run.epochs, explained: pca.explained, path: pca.path })}\n`,
  );
  const segs = contourSegments(
    surface.loss,
    surface.xs,
    surface.ys,
    Array.from({ length: 20 }, (_, i) => 0.1 + 0.5 * i),
  );
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'training trajectory on the loss surface of its two principal directions',
      width: 380,
      height: 380,
      layer: [
        {
          data: { values: segs },
          mark: { type: 'rule', strokeWidth: 1 },
          encoding: {
            x: { field: 'x1', type: 'quantitative', title: `1st PCA component (${pct(pca.explained[0])})` },
            x2: { field: 'x2' },
            y: { field: 'y1', type: 'quantitative', title: `2nd PCA component (${pct(pca.explained[1])})` },
            y2: { field: 'y2' },
            color: { field: 'level', type: 'quantitative', scale: { scheme: 'viridis' }, title: 'loss' },
          },
        },
        {
          data: { values: pca.path.map((p, i) => ({ x: p[0], y: p[1], epoch: run.epochs[i] })) },
          mark: { type: 'line', point: true, color: '#d62728' },
          encoding: {
            x: { field: 'x', type: 'quantitative' },
            y: { field: 'y', type: 'quantitative' },
            order: { field: 'epoch' },
          },
        },
      ],
    },
    join(out, 'trajectory.png'),
  );
  return { pca, surface };
}

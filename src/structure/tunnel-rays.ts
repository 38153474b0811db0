// Radial low-loss tunnels around an optimum (Fort & Jastrzebski 2019, Fig. 2 and 5): the loss along R random unit
// directions v_r at distances a (theta + a v_r), all rays and distances one batch of manifold points (basis
// [theta, v_1 .. v_R], coefficients (1, a e_r)); the tunnel width of a ray is the distance at which the loss first
// exceeds L(theta) + delta.
import type { Gpu } from '../engine/device.ts';
import { permutation, randn, rng } from '../engine/random.ts';
import type { Dataset } from '../data/dataset.ts';
import { paramShapes } from '../models/graph.ts';
import { evaluateOnImages } from '../models/run.ts';
import { checkpointSpec, manifoldModel, type Checkpoint } from '../models/checkpoint.ts';
import { vegaLitePng } from '../viz/vega.ts';

export interface TunnelOptions {
  rays: number;
  points: number;
  /** largest distance as a fraction of ||theta|| */
  maxFrac: number;
  delta: number;
  images: number;
  seed: number;
  split: 'train' | 'test';
}

export interface TunnelResult {
  a: number[];
  loss: number[][];
  L0: number;
  widths: (number | null)[];
  thetaNorm: number;
}

/** First distance at which a ray's loss exceeds L0 + delta (linear interpolation between samples); null if never. */
export function crossing(a: number[], loss: number[], level: number): number | null {
  for (let i = 1; i < a.length; i++)
    if (loss[i] > level) return a[i - 1] + ((level - loss[i - 1]) / (loss[i] - loss[i - 1])) * (a[i] - a[i - 1]);
  return null;
}

export async function runTunnels(
  gpu: Gpu,
  ck: Checkpoint,
  data: { train: Dataset; test: Dataset },
  o: TunnelOptions,
): Promise<TunnelResult> {
  const spec = checkpointSpec(ck, data.train.shape);
  const sizes = paramShapes(spec.layers).map((s) => s.shape.reduce((x, y) => x * y, 1));
  const r = rng(o.seed);
  let tn = 0;
  for (const w of ck.weights) for (const v of w) tn += v * v;
  const thetaNorm = Math.sqrt(tn);
  const dirs = Array.from({ length: o.rays }, () => {
    const d = sizes.map((s) => Float32Array.from({ length: s }, () => randn(r)));
    let n = 0;
    for (const t of d) for (const v of t) n += v * v;
    const inv = 1 / Math.sqrt(n);
    return { weights: d.map((t) => t.map((v) => v * inv)), states: null };
  });
  const model = manifoldModel(gpu, spec, [ck, ...dirs], ck.states ? 'running' : 'batch');
  const a = Array.from({ length: o.points }, (_, i) => (o.maxFrac * thetaNorm * i) / (o.points - 1));
  const B = 1 + o.rays;
  const coefs = new Float32Array(o.rays * o.points * B);
  for (let q = 0; q < o.rays; q++)
    for (let i = 0; i < o.points; i++) {
      const k = q * o.points + i;
      coefs[k * B] = 1;
      coefs[k * B + 1 + q] = a[i];
    }
  const ds = data[o.split];
  const pick = Array.from(permutation(ds.n, rng(o.seed + 1))).slice(0, Math.min(o.images, ds.n));
  try {
    const { loss } = await evaluateOnImages(gpu, model, coefs, ds, pick);
    const rays = Array.from({ length: o.rays }, (_, q) => Array.from(loss.subarray(q * o.points, (q + 1) * o.points)));
    const L0 = rays[0][0];
    return { a, loss: rays, L0, widths: rays.map((l) => crossing(a, l, L0 + o.delta)), thetaNorm };
  } finally {
    model.dispose();
  }
}

/** Mean, sd, min and max of the widths of the rays that crossed, and how many did not. */
export const widthStats = (w: (number | null)[]) => {
  const v = w.filter((x): x is number => x !== null);
  if (!v.length) return { mean: null, sd: null, min: null, max: null, rays_without_crossing: w.length };
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const sd = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
  return { mean, sd, min: Math.min(...v), max: Math.max(...v), rays_without_crossing: w.length - v.length };
};

export async function plotTunnels(t: TunnelResult, delta: number, path: string, title: string): Promise<void> {
  const rows = t.loss.flatMap((ray, q) => ray.map((l, i) => ({ a: t.a[i], loss: l, ray: q })));
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title,
      width: 460,
      height: 280,
      layer: [
        {
          data: { values: rows },
          mark: { type: 'line', opacity: 0.4, strokeWidth: 1 },
          encoding: {
            x: { field: 'a', type: 'quantitative', title: 'distance along a random unit direction' },
            y: { field: 'loss', type: 'quantitative', title: 'train loss' },
            detail: { field: 'ray', type: 'nominal' },
          },
        },
        {
          data: { values: [{ y: t.L0 + delta }] },
          mark: { type: 'rule', strokeDash: [4, 3], color: '#d62728' },
          encoding: { y: { field: 'y', type: 'quantitative' } },
        },
      ],
    },
    path,
  );
}

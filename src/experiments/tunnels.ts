// `loss-atlas tunnels`: radial low-loss tunnels around an optimum (Fort & Jastrzebski 2019, Fig. 2 and 5): the loss
// along R random unit directions v_r at distances a (theta + a v_r), all rays and distances one batch of manifold points
// (basis [theta, v_1 .. v_R], coefficients (1, a e_r)); the tunnel width of a ray is the distance at which the loss
// first exceeds L(theta) + delta. `--sweep` trains SimpleCNN optima over learning rate, L2, dropout and batch size and
// plots the mean width against each.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { permutation, randn, rng } from '../engine/random.ts';
import type { Dataset } from '../data/fashion-mnist.ts';
import { paramShapes } from '../models/graph.ts';
import { evaluateOnImages } from '../models/run.ts';
import { checkpointSpec, manifoldModel, readCheckpoint, type Checkpoint } from './checkpoint.ts';
import { writeRunConfig } from './run-info.ts';
import { runTrain, trainConfig } from './train.ts';
import { vegaLitePng } from '../viz/vega.ts';

export interface TunnelOptions { rays: number; points: number; /** largest distance as a fraction of ||theta|| */ maxFrac: number; delta: number; images: number; seed: number; split: 'train' | 'test' }

export interface TunnelResult { a: number[]; loss: number[][]; L0: number; widths: (number | null)[]; thetaNorm: number }

/** First distance at which a ray's loss exceeds L0 + delta (linear interpolation between samples); null if never. */
export function crossing(a: number[], loss: number[], level: number): number | null {
  for (let i = 1; i < a.length; i++) if (loss[i] > level) return a[i - 1] + ((level - loss[i - 1]) / (loss[i] - loss[i - 1])) * (a[i] - a[i - 1]);
  return null;
}

export async function runTunnels(gpu: Gpu, ck: Checkpoint, data: { train: Dataset; test: Dataset }, o: TunnelOptions): Promise<TunnelResult> {
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
  for (let q = 0; q < o.rays; q++) for (let i = 0; i < o.points; i++) { const k = q * o.points + i; coefs[k * B] = 1; coefs[k * B + 1 + q] = a[i]; }
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

const stats = (w: (number | null)[]) => {
  const v = w.filter((x): x is number => x !== null);
  if (!v.length) return { mean: null, sd: null, min: null, max: null, rays_without_crossing: w.length };
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const sd = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
  return { mean, sd, min: Math.min(...v), max: Math.max(...v), rays_without_crossing: w.length - v.length };
};

export async function plotTunnels(t: TunnelResult, delta: number, path: string, title: string): Promise<void> {
  const rows = t.loss.flatMap((ray, q) => ray.map((l, i) => ({ a: t.a[i], loss: l, ray: q })));
  await vegaLitePng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title, width: 460, height: 280,
    layer: [
      { data: { values: rows }, mark: { type: 'line', opacity: 0.4, strokeWidth: 1 }, encoding: { x: { field: 'a', type: 'quantitative', title: 'distance along a random unit direction' }, y: { field: 'loss', type: 'quantitative', title: 'train loss' }, detail: { field: 'ray', type: 'nominal' } } },
      { data: { values: [{ y: t.L0 + delta }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#d62728' }, encoding: { y: { field: 'y', type: 'quantitative' } } },
    ],
  }, path);
}

export const TUNNELS_HELP = `usage: loss-atlas tunnels --model-file A.safetensors [flags]     or     loss-atlas tunnels --sweep [flags]

The loss along --rays random unit directions from a checkpoint at --points distances up to --max x ||theta|| (all in
one batch), and the tunnel width of each ray: the distance where the loss first exceeds L(theta) + --delta.
--sweep trains SimpleCNN optima on Fashion-MNIST (base: lr 0.05, batch 128, no L2, no dropout) varying one factor at a
time: learning rate 0.01 / 0.03 / 0.05 / 0.1, L2 0 / 5e-4 / 5e-3, dropout 0 / 0.25 / 0.5, batch 32 / 128 / 512, and plots
the mean width against each (optima that did not train, test accuracy under twice chance, are left out and named).
Optima and their widths are kept under --out/optima, so a rerun only redraws. Writes tunnels.png (or sweep.png),
tunnels.json and metrics.json into --out.
  --rays N (24)   --points N (21)   --max X (1.0)   --delta X (0.5 nats)   --images N (500)   --split train|test (train)
  --seed N (1)    --data DIR        --sweep-epochs N (2)   --sweep-images N (4000)`;

export async function tunnelsCommand(gpu: Gpu, data: { train: Dataset; test: Dataset }, dataDir: string, flags: Record<string, string | boolean>, out: string, log: (m: string) => void): Promise<Record<string, unknown>> {
  const known = ['model-file', 'sweep', 'rays', 'points', 'max', 'delta', 'images', 'split', 'seed', 'data', 'out', 'sweep-epochs', 'sweep-images', 'verbose', 'help'];
  for (const k of Object.keys(flags)) if (!known.includes(k)) throw new Error(`unknown flag --${k} (see loss-atlas tunnels --help)`);
  const int = (k: string, d: number, min: number) => {
    const v = Number(flags[k] ?? d);
    if (!Number.isInteger(v) || v < min) throw new Error(`--${k}: a whole number >= ${min} expected, got "${flags[k]}"`);
    return v;
  };
  const pos = (k: string, d: number) => {
    const v = Number(flags[k] ?? d);
    if (!(v > 0) || !Number.isFinite(v)) throw new Error(`--${k}: a positive number expected, got "${flags[k]}"`);
    return v;
  };
  const split = (flags.split ?? 'train') as 'train' | 'test';
  if (split !== 'train' && split !== 'test') throw new Error(`--split "${flags.split}": train or test expected`);
  const o: TunnelOptions = { rays: int('rays', 24, 1), points: int('points', 21, 2), maxFrac: pos('max', 1), delta: pos('delta', 0.5), images: int('images', 500, 1), seed: int('seed', 1, 0), split };
  writeRunConfig(out, flags.sweep ? 'tunnels --sweep' : 'tunnels', { modelFile: flags['model-file'] ?? null, ...o, sweepEpochs: flags['sweep-epochs'] ?? null, sweepImages: flags['sweep-images'] ?? null }, gpu);
  if (!flags.sweep) {
    if (typeof flags['model-file'] !== 'string') throw new Error('--model-file PATH (a model.safetensors of loss-atlas train) or --sweep is required');
    const ck = readCheckpoint(flags['model-file'], data.train.shape);
    const t = await runTunnels(gpu, ck, data, o);
    const m = { L0: t.L0, theta_norm: t.thetaNorm, delta: o.delta, width: stats(t.widths) };
    log(m.width.mean === null ? `L(theta) = ${t.L0.toFixed(4)}; no ray reached L + ${o.delta} within ${o.maxFrac} x ||theta||: raise --max` : `L(theta) = ${t.L0.toFixed(4)}; tunnel width ${m.width.mean.toFixed(3)} +- ${m.width.sd!.toFixed(3)} (${(m.width.mean / t.thetaNorm * 100).toFixed(1)}% of ||theta||) over ${o.rays} rays${m.width.rays_without_crossing ? `, ${m.width.rays_without_crossing} never crossing` : ''}`);
    await plotTunnels(t, o.delta, join(out, 'tunnels.png'), `loss along ${o.rays} random unit directions from ${ck.model}`);
    writeFileSync(join(out, 'tunnels.json'), JSON.stringify(t) + '\n');
    writeFileSync(join(out, 'metrics.json'), JSON.stringify(m, null, 2) + '\n');
    return m;
  }
  // the sweep: one factor at a time around a base configuration
  const base = { model: 'simplecnn', epochs: String(int('sweep-epochs', 2, 1)), batch: '128', lr: '0.05', wd: '0', dropout: '0', 'train-images': String(int('sweep-images', 4000, 1)), 'eval-images': '1000', seed: '1' };
  const factors: [string, string, string[]][] = [['learning rate', 'lr', ['0.01', '0.03', '0.05', '0.1']], ['L2 (weight decay)', 'wd', ['0', '0.0005', '0.005']], ['dropout', 'dropout', ['0', '0.25', '0.5']], ['batch size', 'batch', ['32', '128', '512']]];
  const rows: { factor: string; value: number; width: number; sd: number; test_acc: number; diverged: boolean }[] = [];
  for (const [label, key, values] of factors) {
    for (const v of values) {
      const cfgFlags = { ...base, [key]: v };
      const id = `${key}-${v}`;
      const dir = join(out, 'optima', Object.entries(cfgFlags).filter(([k]) => ['lr', 'wd', 'dropout', 'batch'].includes(k)).map(([k, x]) => `${k}${x}`).join('_'));
      if (!existsSync(join(dir, 'model.safetensors'))) {
        log(`training SimpleCNN with ${label} ${v}`);
        await runTrain(gpu, trainConfig({ ...cfgFlags, data: dataDir }, () => dataDir), data, dir, existsSync(join(dir, 'checkpoint', 'state.json')), { log: (m) => log(`  ${m}`) });
      }
      // the widths of an optimum are kept next to it (for these tunnel settings), so a rerun only redraws
      const cache = join(dir, 'tunnel-widths.json');
      const prev = existsSync(cache) ? JSON.parse(readFileSync(cache, 'utf8')) : null;
      let s: ReturnType<typeof stats> = prev && JSON.stringify(prev.options) === JSON.stringify(o) ? prev.width : null;
      if (!s) {
        s = stats((await runTunnels(gpu, readCheckpoint(join(dir, 'model.safetensors'), data.train.shape), data, o)).widths);
        writeFileSync(cache, JSON.stringify({ options: o, width: s }) + '\n');
      }
      const acc = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')).test_acc;
      // an optimum no better than twice chance did not train (diverged): its "tunnel" says nothing
      const diverged = acc < 2 / data.train.classes;
      rows.push({ factor: label, value: Number(v), width: s.mean ?? NaN, sd: s.sd ?? NaN, test_acc: acc, diverged });
      log(`  ${id}: width ${s.mean?.toFixed(3) ?? 'none (no crossing)'} +- ${s.sd?.toFixed(3) ?? '-'}, test accuracy ${(100 * acc).toFixed(1)}%${diverged ? ': training diverged, left out of the plot' : ''}`);
    }
  }
  await vegaLitePng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'radial tunnel width around SimpleCNN optima (mean +- sd over random directions)', data: { values: rows.filter((r) => !r.diverged) },
    facet: { field: 'factor', type: 'nominal', title: null }, columns: 4, resolve: { scale: { x: 'independent' } },
    spec: {
      width: 200, height: 180,
      layer: [
        { mark: { type: 'line', point: true }, encoding: { x: { field: 'value', type: 'quantitative', title: null }, y: { field: 'width', type: 'quantitative', title: 'tunnel width' } } },
        { mark: 'errorbar', transform: [{ calculate: 'datum.width - datum.sd', as: 'lo' }, { calculate: 'datum.width + datum.sd', as: 'hi' }], encoding: { x: { field: 'value', type: 'quantitative' }, y: { field: 'lo', type: 'quantitative', title: 'tunnel width' }, y2: { field: 'hi' } } },
      ],
    },
  }, join(out, 'sweep.png'));
  writeFileSync(join(out, 'metrics.json'), JSON.stringify({ sweep: rows, delta: o.delta }, null, 2) + '\n');
  return { sweep: rows };
}

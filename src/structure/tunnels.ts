// `loss-atlas tunnels`: radial low-loss tunnels around an optimum (Fort & Jastrzebski 2019, Fig. 2 and 5): the loss
// along R random unit directions v_r at distances a (theta + a v_r), all rays and distances one batch of manifold
// points (basis [theta, v_1 .. v_R], coefficients (1, a e_r)); the tunnel width of a ray is the distance at which the
// loss first exceeds L(theta) + delta. `--sweep` trains SimpleCNN optima over learning rate, L2, dropout and batch size
// and plots the mean width against each.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { permutation, randn, rng } from '../engine/random.ts';
import type { Dataset } from '../data/dataset.ts';
import { paramShapes } from '../models/graph.ts';
import { evaluateOnImages } from '../models/run.ts';
import { checkpointSpec, manifoldModel, readCheckpoint, type Checkpoint } from '../models/checkpoint.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { runTrain, trainConfig } from '../landscape/train.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { UsageError, defineCommand, optionsOf, type OptionInput } from '../options/index.ts';

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

const stats = (w: (number | null)[]) => {
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

export const TUNNELS = defineCommand({
  name: 'tunnels',
  summary:
    'radial tunnels: loss along many random unit directions from an optimum, tunnel widths; ' +
    '--sweep over lr, L2, dropout, batch (--help)',
  usage: 'loss-atlas tunnels --model-file A.safetensors [flags]     or     loss-atlas tunnels --sweep [flags]',
  description: `\
The loss along --rays random unit directions from a checkpoint at --points distances up to --max x ||theta|| (all in
one batch), and the tunnel width of each ray: the distance where the loss first exceeds L(theta) + --delta.
--sweep trains SimpleCNN optima on Fashion-MNIST (base: lr 0.05, batch 128, no L2, no dropout) varying one factor at a
time: learning rate 0.01 / 0.03 / 0.05 / 0.1, L2 0 / 5e-4 / 5e-3, dropout 0 / 0.25 / 0.5, \
batch 32 / 128 / 512, and plots
the mean width against each (optima that did not train, test accuracy under twice chance, are left out and named).
Optima and their widths are kept under --out/optima, so a rerun only redraws. Writes tunnels.png (or sweep.png),
tunnels.json and metrics.json into --out.`,
  options: {
    'model-file': {
      type: 'string',
      placeholder: 'FILE',
      help: 'the optimum (a model.safetensors of loss-atlas train)',
    },
    sweep: {
      type: 'boolean',
      help: 'train SimpleCNN optima over lr, L2, dropout and batch size and plot their widths',
    },
    rays: { type: 'integer', min: 1, default: 24, help: 'random unit directions' },
    points: { type: 'integer', min: 2, default: 21, help: 'distances along each ray' },
    max: { type: 'number', above: 0, default: 1, help: 'largest distance as a fraction of ||theta||' },
    delta: { type: 'number', above: 0, default: 0.5, help: 'loss rise (nats) that ends a tunnel' },
    images: { type: 'integer', min: 1, default: 500, help: 'images evaluated' },
    split: { type: 'enum', choices: ['train', 'test'], default: 'train', help: 'the images evaluated' },
    seed: { type: 'integer', min: 0, default: 1, help: 'seed of the directions and images' },
    data: { type: 'string', placeholder: 'DIR', help: 'Fashion-MNIST directory' },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/tunnels-<time>', help: 'run directory' },
    'sweep-epochs': { type: 'integer', min: 1, defaultText: '2', help: '--sweep: training epochs of each optimum' },
    'sweep-images': { type: 'integer', min: 1, defaultText: '4000', help: '--sweep: training images of each optimum' },
  },
});

export async function tunnelsCommand(
  gpu: Gpu,
  data: { train: Dataset; test: Dataset },
  dataDir: string,
  input: OptionInput<typeof TUNNELS.options>,
  out: string,
  log: (m: string) => void,
): Promise<Record<string, unknown>> {
  const f = optionsOf(TUNNELS.options, input);
  const o: TunnelOptions = {
    rays: f.rays,
    points: f.points,
    maxFrac: f.max,
    delta: f.delta,
    images: f.images,
    seed: f.seed,
    split: f.split,
  };
  const settings = {
    sweep: f.sweep,
    modelFile: f.modelFile ?? null,
    ...o,
    sweepEpochs: f.sweepEpochs ?? null,
    sweepImages: f.sweepImages ?? null,
  };
  writeRunConfig(out, 'tunnels', settings, gpu);
  if (!f.sweep) {
    if (f.modelFile === undefined) {
      throw new UsageError('--model-file FILE (a model.safetensors of loss-atlas train) or --sweep is required');
    }
    const ck = readCheckpoint(f.modelFile, data.train.shape);
    const t = await runTunnels(gpu, ck, data, o);
    const m = { L0: t.L0, theta_norm: t.thetaNorm, delta: o.delta, width: stats(t.widths) };
    log(
      m.width.mean === null
        ? `L(theta) = ${t.L0.toFixed(4)}; no ray reached L + ${o.delta} within ${o.maxFrac} x ||theta||: raise --max`
        : `L(theta) = ${t.L0.toFixed(4)};` +
            ` tunnel width ${m.width.mean.toFixed(3)} +- ${m.width.sd!.toFixed(3)}` +
            ` (${((m.width.mean / t.thetaNorm) * 100).toFixed(1)}% of ||theta||) over ${o.rays} rays` +
            `${m.width.rays_without_crossing ? `, ${m.width.rays_without_crossing} never crossing` : ''}`,
    );
    await plotTunnels(
      t,
      o.delta,
      join(out, 'tunnels.png'),
      `loss along ${o.rays} random unit directions from ${ck.model}`,
    );
    writeFileSync(join(out, 'tunnels.json'), `${JSON.stringify(t)}\n`);
    writeFileSync(join(out, 'metrics.json'), `${JSON.stringify(m, null, 2)}\n`);
    return m;
  }
  // the sweep: one factor at a time around a base configuration
  // the factors as written in the optima's directory names
  const base: Record<string, string> = { batch: '128', lr: '0.05', wd: '0', dropout: '0' };
  const factors: [string, string, string[]][] = [
    ['learning rate', 'lr', ['0.01', '0.03', '0.05', '0.1']],
    ['L2 (weight decay)', 'wd', ['0', '0.0005', '0.005']],
    ['dropout', 'dropout', ['0', '0.25', '0.5']],
    ['batch size', 'batch', ['32', '128', '512']],
  ];
  const rows: { factor: string; value: number; width: number; sd: number; test_acc: number; diverged: boolean }[] = [];
  for (const [label, key, values] of factors) {
    for (const v of values) {
      const cfgFlags = { ...base, [key]: v };
      const id = `${key}-${v}`;
      const dir = join(
        out,
        'optima',
        Object.entries(cfgFlags)
          .map(([k, x]) => `${k}${x}`)
          .join('_'),
      );
      if (!existsSync(join(dir, 'model.safetensors'))) {
        log(`training SimpleCNN with ${label} ${v}`);
        const t = trainConfig(
          {
            model: 'simplecnn',
            epochs: f.sweepEpochs ?? 2,
            batch: Number(cfgFlags.batch),
            lr: Number(cfgFlags.lr),
            wd: Number(cfgFlags.wd),
            dropout: Number(cfgFlags.dropout),
            trainImages: f.sweepImages ?? 4000,
            evalImages: 1000,
            seed: 1,
            data: dataDir,
          },
          () => dataDir,
        );
        const resume = existsSync(join(dir, 'checkpoint', 'state.json'));
        await runTrain(gpu, t, data, dir, resume, { log: (m) => log(`  ${m}`) });
      }
      // the widths of an optimum are kept next to it (for these tunnel settings), so a rerun only redraws
      const cache = join(dir, 'tunnel-widths.json');
      const prev = existsSync(cache) ? JSON.parse(readFileSync(cache, 'utf8')) : null;
      let s: ReturnType<typeof stats> = prev && JSON.stringify(prev.options) === JSON.stringify(o) ? prev.width : null;
      if (!s) {
        s = stats(
          (await runTunnels(gpu, readCheckpoint(join(dir, 'model.safetensors'), data.train.shape), data, o)).widths,
        );
        writeFileSync(cache, `${JSON.stringify({ options: o, width: s })}\n`);
      }
      const acc = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')).test_acc;
      // an optimum no better than twice chance did not train (diverged): its "tunnel" says nothing
      const diverged = acc < 2 / data.train.classes;
      rows.push({ factor: label, value: Number(v), width: s.mean ?? NaN, sd: s.sd ?? NaN, test_acc: acc, diverged });
      log(
        `  ${id}: width ${s.mean?.toFixed(3) ?? 'none (no crossing)'} +- ${s.sd?.toFixed(3) ?? '-'}` +
          `, test accuracy ${(100 * acc).toFixed(1)}%${diverged ? ': training diverged, left out of the plot' : ''}`,
      );
    }
  }
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'radial tunnel width around SimpleCNN optima (mean +- sd over random directions)',
      data: { values: rows.filter((r) => !r.diverged) },
      facet: { field: 'factor', type: 'nominal', title: null },
      columns: 4,
      resolve: { scale: { x: 'independent' } },
      spec: {
        width: 200,
        height: 180,
        layer: [
          {
            mark: { type: 'line', point: true },
            encoding: {
              x: { field: 'value', type: 'quantitative', title: null },
              y: { field: 'width', type: 'quantitative', title: 'tunnel width' },
            },
          },
          {
            mark: 'errorbar',
            transform: [
              { calculate: 'datum.width - datum.sd', as: 'lo' },
              { calculate: 'datum.width + datum.sd', as: 'hi' },
            ],
            encoding: {
              x: { field: 'value', type: 'quantitative' },
              y: { field: 'lo', type: 'quantitative', title: 'tunnel width' },
              y2: { field: 'hi' },
            },
          },
        ],
      },
    },
    join(out, 'sweep.png'),
  );
  writeFileSync(join(out, 'metrics.json'), `${JSON.stringify({ sweep: rows, delta: o.delta }, null, 2)}\n`);
  return { sweep: rows };
}

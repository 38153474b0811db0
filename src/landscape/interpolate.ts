// `loss-atlas interpolate`: 1-D loss and accuracy along theta(alpha) = theta1 + alpha * d, with d = theta2 - theta1
// (between two checkpoints) or a random direction (filter-normalized by default), on train and test images.
// All alphas are points of a B = 2 manifold [theta1, d], evaluated in batched blocks.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { permutation, rng } from '../engine/random.ts';
import { safetensorsBytes } from '../data/formats.ts';
import type { Dataset } from '../data/dataset.ts';
import { paramShapes } from '../models/graph.ts';
import { evaluateOnImages } from '../models/run.ts';
import { directionTensors, randomDirectionSet, targetDirectionSet, type DirNorm, type DirType } from './directions.ts';
import {
  bnModeFor,
  checkpointSpec,
  manifoldModel,
  sameModel,
  type Checkpoint,
  type WeightSet,
} from '../models/checkpoint.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { linspace } from '../options/index.ts';

export { readCheckpoint, type Checkpoint } from '../models/checkpoint.ts';

export interface InterpolateOptions {
  /** The alphas, min:max:num (as --x; config.json records this spec). */
  x: string;
  norm: DirNorm;
  ignoreBiasBn: boolean;
  /** Whether the direction also moves the BN running statistics. */
  dirType: DirType;
  /** Batch norm with the running statistics (eval mode, default) or each point's batch statistics. */
  bnStats: 'running' | 'batch';
  seed: number;
  images: number;
  /** An explicit direction (e.g. read from a direction file), used instead of a random one. */
  direction?: WeightSet;
  logScale: boolean;
  lossMax: number;
}

export interface InterpolateResult {
  alpha: number[];
  train_loss: number[];
  train_acc: number[];
  test_loss: number[];
  test_acc: number[];
}

export async function runInterpolate(
  gpu: Gpu,
  a: Checkpoint,
  b: Checkpoint | null,
  data: { train: Dataset; test: Dataset },
  o: InterpolateOptions,
  out: string,
): Promise<InterpolateResult> {
  if (b) sameModel(a, b);
  const alphas = linspace(o.x, 'x');
  const { direction, ...settings } = o;
  const files = { modelFile: a.path, modelFile2: b?.path ?? null };
  writeRunConfig(out, 'interpolate', { ...files, ...settings, explicitDirection: !!direction }, gpu);
  const spec = checkpointSpec(a, data.train.shape);
  const shapes = paramShapes(spec.layers).map((p) => p.shape);
  const bnMode = bnModeFor(a, o.bnStats, spec.layers);
  if (b && bnMode === 'running' && o.dirType === 'states' && !b.states)
    throw new Error(`${b.path}: no running statistics to interpolate (use --dir-type weights or --bn-stats batch)`);
  const d = b
    ? targetDirectionSet(a, b, o.dirType)
    : (o.direction ??
      randomDirectionSet(a, shapes, { seed: o.seed, norm: o.norm, ignoreBiasBn: o.ignoreBiasBn, dirType: o.dirType }));
  if (!b)
    writeFileSync(
      join(out, 'direction.safetensors'),
      safetensorsBytes(directionTensors('', spec.layers, d), {
        norm: o.norm,
        ignore: o.ignoreBiasBn ? 'biasbn' : '',
        seed: String(o.seed),
        dir_type: o.dirType,
      }),
    );
  const model = manifoldModel(gpu, spec, [a, d], bnMode);
  const coefs = Float32Array.from(alphas.flatMap((al) => [1, al]));
  const res: InterpolateResult = { alpha: alphas, train_loss: [], train_acc: [], test_loss: [], test_acc: [] };
  try {
    for (const split of ['train', 'test'] as const) {
      const ds = data[split];
      const n = o.images > 0 ? Math.min(o.images, ds.n) : ds.n;
      const pick = Array.from(permutation(ds.n, rng(o.seed + (split === 'train' ? 11 : 13))));
      const { loss, acc } = await evaluateOnImages(gpu, model, coefs, ds, pick.slice(0, n));
      res[`${split}_loss`] = Array.from(loss);
      res[`${split}_acc`] = Array.from(acc);
    }
  } finally {
    model.dispose();
  }
  writeFileSync(join(out, 'interpolate.json'), `${JSON.stringify(res)}\n`);
  await plotInterpolation(res, join(out, 'interpolate.png'), {
    title: b ? 'linear interpolation between two checkpoints' : `random ${o.norm}-normalized direction`,
    logScale: o.logScale,
    lossMax: o.lossMax,
  });
  return res;
}

/** Loss (left axis) and accuracy (right axis) against alpha, train solid and test dashed. */
export async function plotInterpolation(
  r: InterpolateResult,
  path: string,
  o: { title: string; logScale: boolean; lossMax: number },
): Promise<void> {
  const rows = r.alpha.flatMap((al, k) => [
    { alpha: al, split: 'train', loss: Math.min(r.train_loss[k], o.lossMax), acc: 100 * r.train_acc[k] },
    { alpha: al, split: 'test', loss: Math.min(r.test_loss[k], o.lossMax), acc: 100 * r.test_acc[k] },
  ]);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: o.title,
      width: 480,
      height: 300,
      data: { values: rows },
      encoding: {
        x: { field: 'alpha', type: 'quantitative', title: 'alpha' },
        strokeDash: { field: 'split', type: 'nominal', title: 'split' },
      },
      layer: [
        {
          mark: { type: 'line', color: '#1f77b4' },
          encoding: {
            y: {
              field: 'loss',
              type: 'quantitative',
              title: 'loss (blue)',
              scale: o.logScale ? { type: 'log' } : { zero: true },
              axis: { titleColor: '#1f77b4' },
            },
          },
        },
        {
          mark: { type: 'line', color: '#d62728' },
          encoding: {
            y: {
              field: 'acc',
              type: 'quantitative',
              title: 'accuracy % (red)',
              scale: { domain: [0, 100] },
              axis: { titleColor: '#d62728' },
            },
          },
        },
      ],
      resolve: { scale: { y: 'independent' } },
    },
    path,
  );
}

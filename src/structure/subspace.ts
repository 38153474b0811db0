// `loss-atlas subspace`: training in random subspaces theta = theta0 + P z (Li et al. 2018a, "intrinsic dimension";
// the random hyperplane cuts of Fort & Jastrzebski 2019), only z trained. The manifold holds it directly: the basis is
// [theta0, p_1, ..., p_dmax] (the columns of P, unit norm) and a run of dimension d is a point whose coefficients are
// (1, z_1, ..., z_d, 0, ...); dL/dz is the engine's coefficient gradient. All d of a sweep are nested in one basis, so
// they train together as the K points of one batched pass, next to the direct training (d = D) for the baseline.
// P: dense Gaussian columns (held as basis tensors: memory (1 + d) * D), or a seeded sparse projection (each column
// round(sqrt(D)) nonzeros of +-1/sqrt(that) at random rows) that is never stored densely: kernels over its nonzeros
// build each point's weights theta0 + P z_k and take P^T dL/dtheta_k (memory K * D + 2 nnz(P)), for large D.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { Manifold } from '../engine/manifold.ts';
import { crossEntropy } from '../engine/ops/loss.ts';
import { Tape } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import { Adam } from '../engine/optim.ts';
import { batchStream, permutation, rng } from '../engine/random.ts';
import { batchOf, type Dataset } from '../data/dataset.ts';
import { Model } from '../models/model.ts';
import { parameterCount } from '../models/graph.ts';

import { checkClasses, initialWeights, modelSpec } from '../models/zoo.ts';
import { evaluateOnImages } from '../models/run.ts';

import { writeRunConfig } from '../run/run-info.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { defineCommand, optionsOf, type OptionInput } from '../options/index.ts';
import { sparseEntries, projection, basisTrainer, sparseTrainer } from './subspace-trainers.ts';
import { checkFinite } from '../run/diverged.ts';
export interface SubspaceOptions {
  model: string;
  ds: number[];
  /**
   * dense: Gaussian columns, held as basis tensors; sparse: the seeded sparse projection, never stored densely (its
   * nonzeros only: memory d * sqrt(D) instead of d * D); sparse-basis: the same P held as basis tensors (the check of
   * the sparse kernels); identity: P = I (columns e_1 .. e_d), the check that d = D reproduces direct training
   */
  projection: 'dense' | 'sparse' | 'sparse-basis' | 'identity';
  steps: number;
  batch: number;
  lr: number;
  /** Adam's learning rate for the direct (full-space) baseline */
  lrFull: number;
  seed: number;
  evalImages: number;
  trainImages: number;
}

export interface SubspaceResult {
  D: number;
  ds: number[];
  acc: number[];
  loss: number[];
  fullAcc: number;
  fullLoss: number;
  dInt90: number | null;
  /** final coefficients [K, 1 + dmax] and the direct run's final parameters */
  z: Float32Array;
  full: Float32Array[];
}

export async function runSubspace(
  gpu: Gpu,
  data: { train: Dataset; test: Dataset },
  o: SubspaceOptions,
  log: (m: string) => void,
): Promise<SubspaceResult> {
  const spec = modelSpec(o.model, { input: data.train.shape });
  const D = parameterCount(spec.layers);
  const dMax = Math.max(...o.ds);
  if (dMax > D) throw new Error(`--ds: ${dMax} exceeds the model's ${D} parameters`);
  const theta0 = initialWeights(spec, o.seed);
  checkClasses(spec, o.model, data.train);
  const sub =
    o.projection === 'sparse'
      ? sparseTrainer(gpu, spec.layers, theta0, sparseEntries(D, dMax, o.seed + 1), dMax, o.ds, o.lr)
      : basisTrainer(gpu, spec.layers, theta0, projection(D, dMax, o.projection, o.seed + 1), o.ds, o.lr);
  const full = new Model(gpu, spec.layers, 1, theta0);
  const K = o.ds.length;
  const fullOpt = new Adam(gpu, full.params, { lr: o.lrFull });
  const one = Manifold.single(gpu);
  const train: Dataset =
    o.trainImages > 0 && o.trainImages < data.train.n ? { ...data.train, n: o.trainImages } : data.train;
  const r = rng(o.seed + 2);
  const nextBatch = batchStream(train.n, o.batch, r);
  try {
    for (let s = 0; s < o.steps; s++) {
      const idx = nextBatch();
      const { x, y } = batchOf(train, idx);
      const xt = Tensor.fromArray(gpu, [idx.length, ...train.shape], x, 'sub.x'),
        yt = Tensor.fromArray(gpu, [idx.length], y, 'sub.y', 'u32');
      // the direct baseline (submitted first, read back with the subspace step's results)
      const t1 = new Tape(gpu, one);
      const o1 = crossEntropy({ gpu, manifold: one, tape: t1 }, full.forward({ gpu, manifold: one, tape: t1 }, xt), yt);
      t1.backward([1]);
      fullOpt.step();
      const l = await sub.step(xt, yt);
      const l1 = await o1.read();
      const at = { step: s + 1 };
      checkFinite(l, { ...at, what: 'subspace', advice: `a lower --lr than ${o.lr}`, label: (k) => `d = ${o.ds[k]}` });
      checkFinite(l1.loss, {
        ...at,
        what: 'subspace (the full-space baseline)',
        advice: `a lower --lr-full than ${o.lrFull}`,
      });
      t1.dispose();
      xt.dispose();
      yt.dispose();
      if ((s + 1) % Math.max(1, Math.floor(o.steps / 5)) === 0)
        log(
          `  step ${s + 1}/${o.steps}: batch loss d = ${o.ds[0]}: ${l[0].toFixed(3)}` +
            ` ... d = ${o.ds[K - 1]}: ${l[K - 1].toFixed(3)}; full space ${l1.loss[0].toFixed(3)}`,
        );
    }
    const pick = Array.from(permutation(data.test.n, rng(o.seed + 3))).slice(
      0,
      o.evalImages > 0 ? Math.min(o.evalImages, data.test.n) : data.test.n,
    );
    const ev = await sub.evaluate(data.test, pick);
    const ef = await evaluateOnImages(gpu, full, Float32Array.of(1), data.test, pick);
    const acc = Array.from(ev.acc),
      loss = Array.from(ev.loss);
    const j = acc.findIndex((a) => a >= 0.9 * ef.acc[0]);
    return {
      D,
      ds: o.ds,
      acc,
      loss,
      fullAcc: ef.acc[0],
      fullLoss: ef.loss[0],
      dInt90: j < 0 ? null : o.ds[j],
      z: sub.coefs(),
      full: await Promise.all(full.params.map((p) => p.basis.read())),
    };
  } finally {
    sub.dispose();
    full.dispose();
    fullOpt.dispose();
    one.dispose();
  }
}

export async function plotSubspace(runs: { label: string; r: SubspaceResult }[], path: string): Promise<void> {
  const rows = runs.flatMap(({ label, r }) => r.ds.map((d, i) => ({ d, acc: 100 * r.acc[i], net: label })));
  const base = runs.map(({ label, r }) => ({ net: label, y: 90 * r.fullAcc, d90: r.dInt90 }));
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'test accuracy of training in a random d-dimensional subspace (dashed: 90% of direct training)',
      width: 480,
      height: 300,
      layer: [
        {
          data: { values: rows },
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'd', type: 'quantitative', scale: { type: 'log' }, title: 'subspace dimension d' },
            y: { field: 'acc', type: 'quantitative', title: 'test accuracy %' },
            color: { field: 'net', type: 'nominal', legend: { labelLimit: 400 } },
          },
        },
        {
          data: { values: base },
          mark: { type: 'rule', strokeDash: [5, 4] },
          encoding: { y: { field: 'y', type: 'quantitative' }, color: { field: 'net', type: 'nominal' } },
        },
      ],
    },
    path,
  );
}

export const SUBSPACE = defineCommand({
  name: 'subspace',
  summary:
    'training in random subspaces theta0 + P z, all d batched with direct training; intrinsic dimension ' +
    'd_int90 (--help)',
  description: `\
Training in random subspaces theta = theta0 + P z (only z trained), every d of the sweep batched as points of one
manifold next to direct training; reports d_int90, the smallest d whose test accuracy reaches 90% of direct training.
Writes subspace.png, subspace.json and metrics.json into --out (default runs/subspace-<time>).`,
  options: {
    models: { type: 'list', of: 'string', placeholder: 'NAME,...', default: ['mlp', 'small'], help: 'the networks' },
    ds: { type: 'list', of: 'integer', min: 1, default: [10, 30, 100, 300], help: 'subspace dimensions' },
    projection: {
      type: 'enum',
      choices: ['dense', 'sparse'],
      default: 'dense',
      help:
        'dense: Gaussian P held as 1 + d basis tensors; sparse: sqrt(D) nonzeros per column, never stored densely ' +
        '(for large D: memory d * sqrt(D), not d * D)',
    },
    steps: { type: 'integer', min: 0, default: 400, help: 'training steps' },
    batch: { type: 'integer', min: 1, default: 128, help: 'images per step' },
    lr: { type: 'number', min: 0, default: 0.05, help: 'Adam learning rate on z' },
    'lr-full': { type: 'number', min: 0, default: 1e-3, help: 'Adam learning rate of the direct training' },
    seed: { type: 'integer', min: 0, default: 1, help: 'seed of theta0, P and the batches' },
    'eval-images': { type: 'count', default: 2000, help: 'test images' },
    'train-images': { type: 'integer', min: 0, default: 0, help: 'training images used (0 = all)' },
    data: { type: 'string', placeholder: 'DIR', help: 'Fashion-MNIST directory' },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/subspace-<time>', help: 'run directory' },
  },
});

export async function subspaceCommand(
  gpu: Gpu,
  data: { train: Dataset; test: Dataset },
  input: OptionInput<typeof SUBSPACE.options>,
  out: string,
  log: (m: string) => void,
): Promise<Record<string, unknown>> {
  const o = optionsOf(SUBSPACE.options, input);
  const ds = [...o.ds].sort((a, b) => a - b);
  const { models, projection } = o;
  const settings = {
    models,
    ds,
    projection,
    steps: o.steps,
    batch: o.batch,
    lr: o.lr,
    lrFull: o.lrFull,
    seed: o.seed,
    evalImages: o.evalImages,
    trainImages: o.trainImages,
  };
  writeRunConfig(out, 'subspace', settings, gpu);
  const runs: { label: string; r: SubspaceResult }[] = [];
  for (const model of models) {
    log(`${model}: subspaces d = ${ds.join(', ')} and direct training, batched`);
    gpu.pool.resetPeak();
    const r = await runSubspace(gpu, data, { ...settings, model }, log);
    log(
      `  peak GPU memory ${(gpu.pool.peakBytes / 2 ** 20).toFixed(1)} MiB` +
        ` (${projection} P, D = ${r.D}, d up to ${ds[ds.length - 1]}, direct training included)`,
    );
    log(
      `  D = ${r.D}: direct ${(100 * r.fullAcc).toFixed(1)}%;` +
        ` ${r.ds.map((d, i) => `d=${d}: ${(100 * r.acc[i]).toFixed(1)}%`).join(', ')}` +
        `; d_int90 = ${r.dInt90 ?? `> ${ds[ds.length - 1]}`}`,
    );
    runs.push({ label: `${model} (D = ${r.D})`, r });
  }
  await plotSubspace(runs, join(out, 'subspace.png'));
  const metrics = Object.fromEntries(
    runs.map(({ label, r }) => [label, { D: r.D, d_int90: r.dInt90, full_acc: r.fullAcc, acc: r.acc, ds: r.ds }]),
  );
  writeFileSync(
    join(out, 'subspace.json'),
    `${JSON.stringify(
      runs.map(({ label, r }) => ({
        label,
        D: r.D,
        ds: r.ds,
        acc: r.acc,
        loss: r.loss,
        fullAcc: r.fullAcc,
        fullLoss: r.fullLoss,
        dInt90: r.dInt90,
      })),
    )}\n`,
  );
  writeFileSync(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  return metrics;
}

// `loss-atlas subspace`: training in random subspaces theta = theta0 + P z (Li et al. 2018a, "intrinsic dimension";
// the random hyperplane cuts of Fort & Jastrzebski 2019), only z trained. The manifold holds it directly: the basis is
// [theta0, p_1, ..., p_dmax] (the columns of P, unit norm) and a run of dimension d is a point whose coefficients are
// (1, z_1, ..., z_d, 0, ...); dL/dz is the engine's coefficient gradient. All d of a sweep are nested in one basis, so
// they train together as the K points of one batched pass, next to the direct training (d = D) for the baseline.
// P: dense Gaussian columns, or a seeded sparse projection (each column s nonzeros of +-1/sqrt(s) at random positions,
// sklearn's sparse random projection with rows normalized), which is cheaper to draw for large D.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { Manifold } from '../engine/manifold.ts';
import { crossEntropy } from '../engine/ops.ts';
import { Tape } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import { Adam } from '../engine/optim.ts';
import { batchStream, permutation, randn, rng } from '../engine/random.ts';
import { batchOf, type Dataset } from '../data/fashion-mnist.ts';
import { Sequential, initParams, paramShapes } from '../models/sequential.ts';
import { modelSpec, parameterCount } from '../models/zoo.ts';
import { evaluateOnImages } from '../models/run.ts';
import { HostAdam } from './toy.ts';
import { vegaLitePng } from '../viz/vega.ts';

export interface SubspaceOptions {
  model: string;
  ds: number[];
  /** identity: P = I (columns e_1 .. e_d), the check that d = D reproduces direct training */
  projection: 'dense' | 'sparse' | 'identity';
  steps: number;
  batch: number;
  lr: number;
  /** Adam's learning rate for the direct (full-space) baseline */
  lrFull: number;
  seed: number;
  evalImages: number;
  trainImages: number;
}

/** Columns of P (unit norm), flattened per parameter tensor: basis rows 1..d of each tensor. */
function projection(D: number, d: number, kind: SubspaceOptions['projection'], seed: number): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: d }, (_, j) => {
    const p = new Float32Array(D);
    if (kind === 'identity') p[j] = 1;
    else if (kind === 'dense') {
      let s = 0;
      for (let i = 0; i < D; i++) { p[i] = randn(r); s += p[i] * p[i]; }
      const n = Math.sqrt(s);
      for (let i = 0; i < D; i++) p[i] /= n;
    } else {
      const nz = Math.max(1, Math.round(Math.sqrt(D)));
      for (let q = 0; q < nz; q++) p[Math.floor(r() * D)] += (r() < 0.5 ? -1 : 1) / Math.sqrt(nz);
    }
    return p;
  });
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

export async function runSubspace(gpu: Gpu, data: { train: Dataset; test: Dataset }, o: SubspaceOptions, log: (m: string) => void): Promise<SubspaceResult> {
  const spec = modelSpec(o.model, { input: data.train.shape });
  const shapes = paramShapes(spec.layers).map((s) => s.shape.reduce((a, b) => a * b, 1));
  const D = parameterCount(spec.layers);
  const dMax = Math.max(...o.ds);
  if (dMax > D) throw new Error(`--ds: ${dMax} exceeds the model's ${D} parameters`);
  const theta0 = initParams(spec.layers, 1, o.seed);
  const cols = projection(D, dMax, o.projection, o.seed + 1);
  const B = 1 + dMax;
  const model = new Sequential(gpu, spec.layers, B, theta0.map((t, ti) => {
    const all = new Float32Array(B * t.length);
    all.set(t);
    let off = 0;
    for (let q = 0; q < ti; q++) off += shapes[q];
    cols.forEach((c, j) => all.set(c.subarray(off, off + t.length), (1 + j) * t.length));
    return all;
  }));
  const full = new Sequential(gpu, spec.layers, 1, theta0);
  const K = o.ds.length;
  const coefs = new Float32Array(K * B), mask = new Uint8Array(K * B);
  o.ds.forEach((d, k) => { coefs[k * B] = 1; for (let j = 1; j <= d; j++) mask[k * B + j] = 1; });
  const zopt = new HostAdam(K * B, o.lr, 0); // constant learning rate, as the direct baseline's Adam
  const fullOpt = new Adam(gpu, full.params, { lr: o.lrFull });
  const one = Manifold.single(gpu);
  const train: Dataset = o.trainImages > 0 && o.trainImages < data.train.n ? { ...data.train, n: o.trainImages } : data.train;
  const r = rng(o.seed + 2);
  const nextBatch = batchStream(train.n, o.batch, r);
  try {
    for (let s = 0; s < o.steps; s++) {
      const idx = nextBatch();
      const { x, y } = batchOf(train, idx);
      const xt = Tensor.fromArray(gpu, [idx.length, ...train.shape], x, 'sub.x'), yt = Tensor.fromArray(gpu, [idx.length], y, 'sub.y', 'u32');
      // the subspace runs: one batched pass over K points, dL/dz from the coefficient gradient
      const manifold = new Manifold(gpu, K, B, coefs);
      const tape = new Tape(gpu, manifold, true, false); // only dL/dz: no basis gradients
      const out = crossEntropy({ gpu, manifold, tape }, model.forward({ gpu, manifold, tape }, xt), yt);
      tape.backward(new Array(K).fill(1));
      // the direct baseline
      const t1 = new Tape(gpu, one);
      const o1 = crossEntropy({ gpu, manifold: one, tape: t1 }, full.forward({ gpu, manifold: one, tape: t1 }, xt), yt);
      t1.backward([1]);
      fullOpt.step();
      const [dc, l, l1] = await Promise.all([manifold.dcoef!.read(), out.read(), o1.read()]);
      zopt.step(coefs, dc, mask);
      tape.dispose(); t1.dispose(); manifold.dispose(); xt.dispose(); yt.dispose();
      if ((s + 1) % Math.max(1, Math.floor(o.steps / 5)) === 0) log(`  step ${s + 1}/${o.steps}: batch loss d = ${o.ds[0]}: ${l.loss[0].toFixed(3)} ... d = ${o.ds[K - 1]}: ${l.loss[K - 1].toFixed(3)}; full space ${l1.loss[0].toFixed(3)}`);
    }
    const pick = Array.from(permutation(data.test.n, rng(o.seed + 3))).slice(0, o.evalImages > 0 ? Math.min(o.evalImages, data.test.n) : data.test.n);
    const ev = await evaluateOnImages(gpu, model, coefs, data.test, pick);
    const ef = await evaluateOnImages(gpu, full, Float32Array.of(1), data.test, pick);
    const acc = Array.from(ev.acc), loss = Array.from(ev.loss);
    const j = acc.findIndex((a) => a >= 0.9 * ef.acc[0]);
    return { D, ds: o.ds, acc, loss, fullAcc: ef.acc[0], fullLoss: ef.loss[0], dInt90: j < 0 ? null : o.ds[j], z: coefs, full: await Promise.all(full.params.map((p) => p.basis.read())) };
  } finally {
    model.dispose(); full.dispose(); fullOpt.dispose(); one.dispose();
  }
}

export async function plotSubspace(runs: { label: string; r: SubspaceResult }[], path: string): Promise<void> {
  const rows = runs.flatMap(({ label, r }) => r.ds.map((d, i) => ({ d, acc: 100 * r.acc[i], net: label })));
  const base = runs.map(({ label, r }) => ({ net: label, y: 90 * r.fullAcc, d90: r.dInt90 }));
  await vegaLitePng({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'test accuracy of training in a random d-dimensional subspace (dashed: 90% of direct training)', width: 480, height: 300,
    layer: [
      { data: { values: rows }, mark: { type: 'line', point: true }, encoding: { x: { field: 'd', type: 'quantitative', scale: { type: 'log' }, title: 'subspace dimension d' }, y: { field: 'acc', type: 'quantitative', title: 'test accuracy %' }, color: { field: 'net', type: 'nominal' } } },
      { data: { values: base }, mark: { type: 'rule', strokeDash: [5, 4] }, encoding: { y: { field: 'y', type: 'quantitative' }, color: { field: 'net', type: 'nominal' } } },
    ],
  }, path);
}

export const SUBSPACE_HELP = `usage: loss-atlas subspace [flags]

Training in random subspaces theta = theta0 + P z (only z trained), every d of the sweep batched as points of one
manifold next to direct training; reports d_int90, the smallest d whose test accuracy reaches 90% of direct training.
Writes subspace.png, subspace.json and metrics.json into --out (default runs/subspace-<time>).
  --models mlp,small (mlp,small)    --ds 10,30,100,300 (default)    --projection dense|sparse (dense)
  --steps N (400)    --batch N (128)    --lr X (0.05, Adam on z)    --lr-full X (0.001)    --seed N (1)
  --eval-images N (2000)    --train-images N (0 = all)    --data DIR`;

export async function subspaceCommand(gpu: Gpu, data: { train: Dataset; test: Dataset }, flags: Record<string, string | boolean>, out: string, log: (m: string) => void): Promise<Record<string, unknown>> {
  const known = ['models', 'ds', 'projection', 'steps', 'batch', 'lr', 'lr-full', 'seed', 'eval-images', 'train-images', 'data', 'out', 'verbose', 'help'];
  for (const k of Object.keys(flags)) if (!known.includes(k)) throw new Error(`unknown flag --${k} (see loss-atlas subspace --help)`);
  const num = (k: string, d: number, int = true) => {
    const v = Number(flags[k] ?? d);
    if (!(v >= 0) || (int && !Number.isInteger(v))) throw new Error(`--${k}: ${int ? 'a whole number' : 'a number'} >= 0 expected, got "${flags[k]}"`);
    return v;
  };
  const ds = typeof flags.ds === 'string' ? flags.ds.split(',').map(Number) : [10, 30, 100, 300];
  if (ds.some((d) => !Number.isInteger(d) || d < 1)) throw new Error(`--ds "${flags.ds}": comma-separated dimensions >= 1 expected`);
  ds.sort((a, b) => a - b);
  const projection = (flags.projection ?? 'dense') as 'dense' | 'sparse';
  if (projection !== 'dense' && projection !== 'sparse') throw new Error(`--projection "${flags.projection}": dense or sparse expected`);
  const models = typeof flags.models === 'string' ? flags.models.split(',') : ['mlp', 'small'];
  mkdirSync(out, { recursive: true });
  const runs: { label: string; r: SubspaceResult }[] = [];
  for (const model of models) {
    log(`${model}: subspaces d = ${ds.join(', ')} and direct training, batched`);
    const r = await runSubspace(gpu, data, { model, ds, projection, steps: num('steps', 400), batch: num('batch', 128), lr: num('lr', 0.05, false), lrFull: num('lr-full', 1e-3, false), seed: num('seed', 1), evalImages: num('eval-images', 2000), trainImages: num('train-images', 0) }, log);
    log(`  D = ${r.D}: direct ${(100 * r.fullAcc).toFixed(1)}%; ${r.ds.map((d, i) => `d=${d}: ${(100 * r.acc[i]).toFixed(1)}%`).join(', ')}; d_int90 = ${r.dInt90 ?? `> ${ds[ds.length - 1]}`}`);
    runs.push({ label: `${model} (D = ${r.D})`, r });
  }
  await plotSubspace(runs, join(out, 'subspace.png'));
  const metrics = Object.fromEntries(runs.map(({ label, r }) => [label, { D: r.D, d_int90: r.dInt90, full_acc: r.fullAcc, acc: r.acc, ds: r.ds }]));
  writeFileSync(join(out, 'subspace.json'), JSON.stringify(runs.map(({ label, r }) => ({ label, D: r.D, ds: r.ds, acc: r.acc, loss: r.loss, fullAcc: r.fullAcc, fullLoss: r.fullLoss, dInt90: r.dInt90 }))) + '\n');
  writeFileSync(join(out, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
  return metrics;
}

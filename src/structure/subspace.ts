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
import { batchStream, permutation, randn, rng } from '../engine/random.ts';
import { batchOf, type Dataset } from '../data/dataset.ts';
import { Sequential } from '../models/sequential.ts';
import { initParams, paramShapes, parameterCount } from '../models/graph.ts';
import type { Layer } from '../models/layers.ts';
import { fold } from '../engine/kernel.ts';
import { sparseExpandKernel, sparseProjectKernel } from './sparse.wgsl.ts';
import { modelSpec } from '../models/zoo.ts';
import { evaluateOnImages } from '../models/run.ts';
import { HostAdam } from '../numerics/adam.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { defineCommand, optionsOf, type OptionInput } from '../options/index.ts';

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

/**
 * The nonzeros of the seeded sparse projection, column by column: column j has round(sqrt(D)) entries of
 * +-1/sqrt(that) at random rows (a row drawn twice holds two entries, which add).
 */
export function sparseEntries(
  D: number,
  d: number,
  seed: number,
): { row: Uint32Array; col: Uint32Array; val: Float32Array } {
  const r = rng(seed);
  const nz = Math.max(1, Math.round(Math.sqrt(D)));
  const row = new Uint32Array(d * nz),
    col = new Uint32Array(d * nz),
    val = new Float32Array(d * nz);
  for (let j = 0, e = 0; j < d; j++) {
    for (let q = 0; q < nz; q++, e++) {
      row[e] = Math.floor(r() * D);
      col[e] = j;
      val[e] = (r() < 0.5 ? -1 : 1) / Math.sqrt(nz);
    }
  }
  return { row, col, val };
}

/**
 * The rows lo .. lo + n - 1 of the sparse P (one parameter tensor) by rows (CSR: rowPtr [n + 1], col, val) and by
 * columns (CSC: colPtr [dmax + 1], row (local), val), from `byRow`, the entry indices sorted by row. Index and value
 * arrays hold at least one element (a binding cannot be empty).
 */
export function sparseBlock(
  e: ReturnType<typeof sparseEntries>,
  byRow: ArrayLike<number>,
  lo: number,
  n: number,
  dMax: number,
) {
  let a = 0;
  while (a < byRow.length && e.row[byRow[a]] < lo) a++;
  let b = a;
  while (b < byRow.length && e.row[byRow[b]] < lo + n) b++;
  const m = b - a,
    size = Math.max(1, m);
  const rowPtr = new Uint32Array(n + 1),
    colPtr = new Uint32Array(dMax + 1);
  const col = new Uint32Array(size),
    rval = new Float32Array(size),
    row = new Uint32Array(size),
    cval = new Float32Array(size);
  for (let q = 0; q < m; q++) {
    const i = byRow[a + q];
    rowPtr[e.row[i] - lo + 1]++;
    colPtr[e.col[i] + 1]++;
    col[q] = e.col[i];
    rval[q] = e.val[i];
  }
  for (let i = 0; i < n; i++) rowPtr[i + 1] += rowPtr[i];
  for (let j = 0; j < dMax; j++) colPtr[j + 1] += colPtr[j];
  const next = colPtr.slice(0, dMax); // counting sort by column, stable in row order
  for (let q = 0; q < m; q++) {
    const i = byRow[a + q],
      at = next[e.col[i]]++;
    row[at] = e.row[i] - lo;
    cval[at] = e.val[i];
  }
  return { rowPtr, col, rval, colPtr, row, cval };
}

/** Columns of P (unit norm for dense), flattened per parameter tensor: basis rows 1..d of each tensor. */
function projection(D: number, d: number, kind: SubspaceOptions['projection'], seed: number): Float32Array[] {
  const cols = Array.from({ length: d }, () => new Float32Array(D));
  if (kind === 'sparse' || kind === 'sparse-basis') {
    const e = sparseEntries(D, d, seed);
    for (let q = 0; q < e.row.length; q++) cols[e.col[q]][e.row[q]] += e.val[q];
    return cols;
  }
  const r = rng(seed);
  cols.forEach((p, j) => {
    if (kind === 'identity') p[j] = 1;
    else {
      let s = 0;
      for (let i = 0; i < D; i++) {
        p[i] = randn(r);
        s += p[i] * p[i];
      }
      const n = Math.sqrt(s);
      for (let i = 0; i < D; i++) p[i] /= n;
    }
  });
  return cols;
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

/** One way of training the K points z_k (k = one d of the sweep): a step on a batch, evaluation, the final coefficients. */
interface SubspaceTrainer {
  /** Forward + backward of the K points on the batch and one Adam step on z; returns the batch losses. */
  step(x: Tensor, y: Tensor): Promise<Float32Array>;
  evaluate(d: Dataset, pick: number[]): Promise<{ loss: Float32Array; acc: Float32Array }>;
  /** [K, 1 + dmax]: 1, then z_k (zeros beyond d_k) */
  coefs(): Float32Array;
  dispose(): void;
}

/**
 * P held as basis tensors: the basis is [theta0, p_1 .. p_dmax], point k has coefficients (1, z_k, 0 ...), and dL/dz is
 * the engine's coefficient gradient (a tape without basis gradients). Memory (1 + dmax) * D.
 */
function basisTrainer(
  gpu: Gpu,
  layers: Layer[],
  theta0: Float32Array[],
  cols: Float32Array[],
  ds: number[],
  lr: number,
): SubspaceTrainer {
  const B = 1 + cols.length,
    K = ds.length;
  const big = theta0.findIndex((t) => B * t.length * 4 > gpu.bindingLimit);
  if (big >= 0)
    throw new Error(
      `--projection dense: ${paramShapes(layers)[big].name} (${theta0[big].length} weights) with ${B} basis tensors needs ${B * theta0[big].length * 4} bytes in one binding, over the adapter's limit of ${gpu.bindingLimit} (all of P: ${((4 * B * theta0.reduce((a, t) => a + t.length, 0)) / 2 ** 30).toFixed(2)} GiB); use --projection sparse (P never stored densely) or a smaller largest d`,
    );
  let off = 0;
  const model = new Sequential(
    gpu,
    layers,
    B,
    theta0.map((t) => {
      const all = new Float32Array(B * t.length);
      all.set(t);
      cols.forEach((c, j) => all.set(c.subarray(off, off + t.length), (1 + j) * t.length));
      off += t.length;
      return all;
    }),
  );
  const coefs = new Float32Array(K * B),
    mask = new Uint8Array(K * B);
  ds.forEach((d, k) => {
    coefs[k * B] = 1;
    for (let j = 1; j <= d; j++) mask[k * B + j] = 1;
  });
  const zopt = new HostAdam(K * B, lr, 0); // constant learning rate, as the direct baseline's Adam
  return {
    async step(x, y) {
      const manifold = new Manifold(gpu, K, B, coefs);
      const tape = new Tape(gpu, manifold, true, false); // only dL/dz: no basis gradients
      try {
        const out = crossEntropy({ gpu, manifold, tape }, model.forward({ gpu, manifold, tape }, x), y);
        tape.backward(new Array(K).fill(1));
        const [dc, l] = await Promise.all([manifold.dcoef!.read(), out.read()]);
        zopt.step(coefs, dc, mask);
        return l.loss;
      } finally {
        tape.dispose();
        manifold.dispose();
      }
    },
    evaluate: (d, pick) => evaluateOnImages(gpu, model, coefs, d, pick),
    coefs: () => coefs,
    dispose: () => model.dispose(),
  };
}

/**
 * The sparse P never stored densely: each step builds every point's weights theta_k = theta0 + P z_k with a kernel
 * over P's nonzeros (by rows), trains them as K points with their own weights (basis = the K weight vectors,
 * identity coefficients, so the basis gradients are the per-point gradients), and takes dL/dz_k = P^T g_k with a
 * kernel over the nonzeros by columns. Memory: K * D for the weights and their gradients, 2 * nnz(P) for P.
 */
function sparseTrainer(
  gpu: Gpu,
  layers: Layer[],
  theta0: Float32Array[],
  entries: ReturnType<typeof sparseEntries>,
  dMax: number,
  ds: number[],
  lr: number,
): SubspaceTrainer {
  const K = ds.length;
  const sizes = theta0.map((t) => t.length);
  const eye = new Float32Array(K * K);
  for (let k = 0; k < K; k++) eye[k * K + k] = 1;
  const model = new Sequential(
    gpu,
    layers,
    K,
    sizes.map((n) => new Float32Array(K * n)),
  );
  const z = new Float32Array(K * dMax),
    mask = new Uint8Array(K * dMax);
  ds.forEach((d, k) => mask.fill(1, k * dMax, k * dMax + d));
  const zopt = new HostAdam(K * dMax, lr, 0);
  const owned: Tensor[] = [];
  const keep = (t: Tensor) => {
    owned.push(t);
    return t;
  };
  const zT = keep(new Tensor(gpu, [K, dMax], 'sub.z'));
  const dzT = keep(new Tensor(gpu, [K, dMax], 'sub.dz'));
  const dimsT = keep(Tensor.fromArray(gpu, [K], ds, 'sub.dims', 'u32'));
  // per parameter tensor: theta0, its rows of P by rows (CSR) and by columns (CSC), local row indices
  const byRow = Uint32Array.from(entries.row.keys()).sort((a, b) => entries.row[a] - entries.row[b] || a - b);
  let off = 0;
  const parts = theta0.map((t, ti) => {
    const n = t.length,
      blk = sparseBlock(entries, byRow, off, n, dMax);
    off += n;
    const label = `sub.P(${model.params[ti].name})`;
    const u32 = (a: Uint32Array, name: string) => keep(Tensor.fromArray(gpu, [a.length], a, `${label}.${name}`, 'u32'));
    const f32 = (a: Float32Array, name: string) => keep(Tensor.fromArray(gpu, [a.length], a, `${label}.${name}`));
    return {
      n,
      theta0: keep(Tensor.fromArray(gpu, [n], t, 'sub.theta0')),
      rowPtr: u32(blk.rowPtr, 'rowPtr'),
      col: u32(blk.col, 'col'),
      rval: f32(blk.rval, 'rval'),
      colPtr: u32(blk.colPtr, 'colPtr'),
      row: u32(blk.row, 'row'),
      cval: f32(blk.cval, 'cval'),
    };
  });
  const expandK = sparseExpandKernel(),
    projectK = sparseProjectKernel();
  const expand = () => {
    gpu.write(zT.buffer, z);
    parts.forEach((q, ti) =>
      gpu.dispatch({
        kernel: expandK,
        buffers: {
          theta0: q.theta0.buffer,
          rowPtr: q.rowPtr.buffer,
          col: q.col.buffer,
          val: q.rval.buffer,
          z: zT.buffer,
          dims: dimsT.buffer,
          theta: model.params[ti].basis.buffer,
        },
        uniforms: { K, S: q.n, dmax: dMax },
        groups: fold(Math.ceil((K * q.n) / 256)),
        what: `theta0 + P z of ${model.params[ti].name} (K=${K})`,
      }),
    );
  };
  return {
    async step(x, y) {
      expand();
      const manifold = new Manifold(gpu, K, K, eye);
      const tape = new Tape(gpu, manifold);
      try {
        const out = crossEntropy({ gpu, manifold, tape }, model.forward({ gpu, manifold, tape }, x), y);
        tape.backward(new Array(K).fill(1));
        parts.forEach((q, ti) =>
          gpu.dispatch({
            kernel: projectK,
            buffers: {
              colPtr: q.colPtr.buffer,
              row: q.row.buffer,
              val: q.cval.buffer,
              g: model.params[ti].ensureGrad().buffer,
              dims: dimsT.buffer,
              dz: dzT.buffer,
            },
            uniforms: { K, S: q.n, dmax: dMax, accumulate: ti > 0 ? 1 : 0 },
            groups: fold(Math.ceil((K * dMax) / 256)),
            what: `P^T dL/dtheta of ${model.params[ti].name} (K=${K})`,
          }),
        );
        const [dz, l] = await Promise.all([dzT.read(), out.read()]);
        zopt.step(z, dz, mask);
        return l.loss;
      } finally {
        for (const p of model.params) p.zeroGrad();
        tape.dispose();
        manifold.dispose();
      }
    },
    evaluate(d, pick) {
      expand();
      return evaluateOnImages(gpu, model, eye, d, pick);
    },
    coefs() {
      const c = new Float32Array(K * (1 + dMax));
      for (let k = 0; k < K; k++) {
        c[k * (1 + dMax)] = 1;
        c.set(z.subarray(k * dMax, (k + 1) * dMax), k * (1 + dMax) + 1);
      }
      return c;
    },
    dispose() {
      model.dispose();
      for (const t of owned) t.dispose();
    },
  };
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
  const theta0 = initParams(spec.layers, 1, o.seed);
  const sub =
    o.projection === 'sparse'
      ? sparseTrainer(gpu, spec.layers, theta0, sparseEntries(D, dMax, o.seed + 1), dMax, o.ds, o.lr)
      : basisTrainer(gpu, spec.layers, theta0, projection(D, dMax, o.projection, o.seed + 1), o.ds, o.lr);
  const full = new Sequential(gpu, spec.layers, 1, theta0);
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
      t1.dispose();
      xt.dispose();
      yt.dispose();
      if ((s + 1) % Math.max(1, Math.floor(o.steps / 5)) === 0)
        log(
          `  step ${s + 1}/${o.steps}: batch loss d = ${o.ds[0]}: ${l[0].toFixed(3)} ... d = ${o.ds[K - 1]}: ${l[K - 1].toFixed(3)}; full space ${l1.loss[0].toFixed(3)}`,
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
      `  peak GPU memory ${(gpu.pool.peakBytes / 2 ** 20).toFixed(1)} MiB (${projection} P, D = ${r.D}, d up to ${ds[ds.length - 1]}, direct training included)`,
    );
    log(
      `  D = ${r.D}: direct ${(100 * r.fullAcc).toFixed(1)}%; ${r.ds.map((d, i) => `d=${d}: ${(100 * r.acc[i]).toFixed(1)}%`).join(', ')}; d_int90 = ${r.dInt90 ?? `> ${ds[ds.length - 1]}`}`,
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

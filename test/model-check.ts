// What the whole-model tests share: a small batch, a small conv net, one forward + backward of a model over a
// manifold read back, and the check of its gradients against central finite differences of the CPU graph.
import { expect } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { randArray, rng } from '../src/engine/gradcheck.ts';
import { Manifold } from '../src/engine/manifold.ts';
import * as ref from '../src/engine/reference.ts';
import { Tape } from '../src/engine/tape.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { type ModelDef, graphRef, initParams, paramShapes } from '../src/models/graph.ts';
import type { Layer } from '../src/models/layers.ts';
import type { Model } from '../src/models/model.ts';
import { convNet } from '../src/models/zoo.ts';

export const N = 4,
  IN: [number, number, number] = [1, 10, 10];
export const net = (bn: boolean): Layer[] =>
  convNet({ channels: [1, 4, 6, 8], dense: [16], bn, maxpool: true, pool: [2, 2] });
const r = rng(99);
export const xData = randArray(r, N * 100);
export const labels = [3, 1, 7, 1];

/** A batch of inputs with its labels: the default is the small batch above. */
export interface Batch {
  x: ArrayLike<number>;
  N: number;
  IN: number[];
  labels: number[];
  classes: number;
}
export const BATCH: Batch = { x: xData, N, IN, labels, classes: 10 };

export interface Run {
  loss: Float32Array;
  acc: Float32Array;
  grads: Float32Array[];
  dcoef: Float32Array | null;
}

/** One forward + backward of a model over a manifold, reading back everything. */
export async function runOnce(
  gpu: Gpu,
  model: Model,
  K: number,
  B: number,
  coef: ArrayLike<number>,
  weights: number[],
  coefGrad: boolean,
  batch: Batch = BATCH,
): Promise<Run> {
  const manifold = new Manifold(gpu, K, B, coef);
  const tape = new Tape(gpu, manifold, coefGrad);
  const x = Tensor.fromArray(gpu, [batch.N, ...batch.IN], batch.x, 'x');
  const y = Tensor.fromArray(gpu, [batch.N], batch.labels, 'labels', 'u32');
  const logits = model.forward({ gpu, manifold, tape }, x);
  const out = (await import('../src/engine/ops/index.ts')).crossEntropy({ gpu, manifold, tape }, logits, y);
  tape.backward(weights);
  const { loss, acc } = await out.read();
  const grads = await Promise.all(model.params.map((p) => p.grad!.read()));
  const dcoef = manifold.dcoef ? await manifold.dcoef.read() : null;
  for (const p of model.params) p.zeroGrad();
  tape.dispose();
  x.dispose();
  y.dispose();
  manifold.dispose();
  return { loss, acc, grads, dcoef };
}

export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string) {
  expect(got.length).toBe(want.length);
  let worst = 0,
    at = -1;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - want[i]) / (atol + rtol * Math.abs(want[i]));
    if (e > worst) {
      worst = e;
      at = i;
    }
  }
  expect(worst, `${what}: worst at ${at}: ${got[at]} vs ${want[at]}`).toBeLessThanOrEqual(1);
}

/**
 * Basis and coefficient gradients of sum_k weights[k] * CE_k from one GPU run against central finite differences
 * of the float64 CPU model, at `perParam` random entries of every parameter and at every coefficient.
 */
export async function expectGradientsMatchFD(
  gpu: Gpu,
  layers: ModelDef,
  o: {
    K: number;
    B: number;
    initSeed: number;
    coefSeed: number;
    weights: number[];
    sampleSeed: number;
    perParam: number;
    batch?: Batch;
  },
) {
  const { K, B, weights } = o;
  const b = o.batch ?? BATCH;
  const init = initParams(layers, B, o.initSeed);
  const coef = randArray(rng(o.coefSeed), K * B, 0.8);
  const model = new (await import('../src/models/model.ts')).Model(gpu, layers, B, init);
  const got = await runOnce(gpu, model, K, B, coef, weights, true, b);
  model.dispose();
  const total = (params: ArrayLike<number>[], c: ArrayLike<number>) => {
    let s = 0;
    for (let k = 0; k < K; k++) {
      const vals = params.map((p) => ref.combine(p, c, k, B, p.length / B));
      s += weights[k] * ref.crossEntropyRef(graphRef(layers, vals, b.x, b.N, b.IN).y, b.labels, b.N, b.classes).loss;
    }
    return s;
  };
  const names = paramShapes(layers).map((p) => p.name);
  const pr = rng(o.sampleSeed);
  for (let i = 0; i < init.length; i++) {
    const idx = Array.from({ length: Math.min(o.perParam, init[i].length) }, () => Math.floor(pr() * init[i].length));
    const fd = ref.finiteDiff(
      (pv) =>
        total(
          init.map((q, j) => (j === i ? pv : q)),
          coef,
        ),
      init[i],
      idx,
      1e-5,
    );
    for (const [j, v] of fd)
      expect(Math.abs(got.grads[i][j] - v), `${names[i]} [${j}]`).toBeLessThanOrEqual(1e-3 * (1 + Math.abs(v)));
  }
  const fdc = ref.finiteDiff((cv) => total(init, cv), coef, undefined, 1e-5);
  for (const [j, v] of fdc)
    expect(Math.abs(got.dcoef![j] - v), `coef [${j}]`).toBeLessThanOrEqual(1e-3 * (1 + Math.abs(v)));
}

/**
 * K points of a B-dimensional manifold in one batched run against K separate K = 1 runs with the points' weights
 * materialized: losses, accuracies, basis gradients and coefficient gradients.
 */
export async function expectBatchedEqualsSeparate(
  gpu: Gpu,
  layers: ModelDef,
  o: { K: number; B: number; init: Float32Array[]; coef: ArrayLike<number>; weights: number[]; batch?: Batch },
) {
  const { K, B, init, coef, weights } = o;
  const { Model } = await import('../src/models/model.ts');
  const model = new Model(gpu, layers, B, init);
  const batched = await runOnce(gpu, model, K, B, coef, weights, true, o.batch);
  model.dispose();
  const shapes = paramShapes(layers);
  const sumGrads = shapes.map((s) => new Float64Array(B * s.shape.reduce((a, b) => a * b, 1)));
  const dcoef = new Float64Array(K * B);
  for (let k = 0; k < K; k++) {
    const wk = init.map((p) => Float32Array.from(ref.combine(p, coef, k, B, p.length / B)));
    const single = new Model(gpu, layers, 1, wk);
    const one = await runOnce(gpu, single, 1, 1, [1], [weights[k]], false, o.batch);
    single.dispose();
    expect(Math.abs(one.loss[0] - batched.loss[k])).toBeLessThan(1e-5 + 1e-4 * one.loss[0]);
    expect(one.acc[0]).toBe(batched.acc[k]);
    one.grads.forEach((g, i) => {
      const size = g.length;
      for (let b = 0; b < B; b++)
        for (let j = 0; j < size; j++) {
          sumGrads[i][b * size + j] += coef[k * B + b] * g[j];
          dcoef[k * B + b] += init[i][b * size + j] * g[j];
        }
    });
  }
  // f32 sums run in a different order in the batched reduction than in the per-point runs, so the
  // absolute tolerance is relative to the largest gradient of the model (a conv bias before batch
  // norm has an exact gradient of 0 and f32 noise around it).
  const scale = Math.max(...sumGrads.map((g) => Math.max(...Array.from(g, Math.abs))));
  batched.grads.forEach((g, i) =>
    expectClose(g, sumGrads[i], 1e-3, 1e-5 * scale, `basis gradient of ${shapes[i].name}`),
  );
  expectClose(batched.dcoef!, dcoef, 1e-3, 1e-5, 'coefficient gradient');
}

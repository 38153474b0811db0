// Whole-model checks: the K-batching identity, training lowers the loss, basis and coefficient gradients
// against finite differences of the float64 CPU model, and no GPU memory left behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { Manifold } from '../src/engine/manifold.ts';
import { Tape } from '../src/engine/tape.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { Adam } from '../src/engine/optim.ts';
import * as ref from '../src/engine/reference.ts';
import { randArray, rng } from '../src/engine/gradcheck.ts';
import { Model } from '../src/models/model.ts';
import { convNet } from '../src/models/zoo.ts';
import {
  type Graph,
  INPUT,
  forwardFlops,
  graphRef,
  initParams,
  layerShapes,
  nodeShapes,
  paramShapes,
  toGraph,
} from '../src/models/graph.ts';
import type { Layer } from '../src/models/layers.ts';
import { testGpu } from './helpers.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

const N = 4,
  IN: [number, number, number] = [1, 10, 10];
const net = (bn: boolean): Layer[] => convNet({ channels: [1, 4, 6, 8], dense: [16], bn, maxpool: true, pool: [2, 2] });
const r = rng(99);
const xData = randArray(r, N * 100);
const labels = [3, 1, 7, 1];

interface Run {
  loss: Float32Array;
  acc: Float32Array;
  grads: Float32Array[];
  dcoef: Float32Array | null;
}

/** One forward + backward of a model over a manifold, reading back everything. */
async function runOnce(
  model: Model,
  K: number,
  B: number,
  coef: ArrayLike<number>,
  weights: number[],
  coefGrad: boolean,
): Promise<Run> {
  const manifold = new Manifold(gpu, K, B, coef);
  const tape = new Tape(gpu, manifold, coefGrad);
  const x = Tensor.fromArray(gpu, [N, ...IN], xData, 'x');
  const y = Tensor.fromArray(gpu, [N], labels, 'labels', 'u32');
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

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string) {
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
async function expectGradientsMatchFD(
  layers: Layer[],
  o: {
    K: number;
    B: number;
    initSeed: number;
    coefSeed: number;
    weights: number[];
    sampleSeed: number;
    perParam: number;
  },
) {
  const { K, B, weights } = o;
  const init = initParams(layers, B, o.initSeed);
  const coef = randArray(rng(o.coefSeed), K * B, 0.8);
  const model = new Model(gpu, layers, B, init);
  const got = await runOnce(model, K, B, coef, weights, true);
  model.dispose();
  const total = (params: ArrayLike<number>[], c: ArrayLike<number>) => {
    let s = 0;
    for (let k = 0; k < K; k++) {
      const vals = params.map((p) => ref.combine(p, c, k, B, p.length / B));
      s += weights[k] * ref.crossEntropyRef(graphRef(layers, vals, xData, N, IN).y, labels, N, 10).loss;
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

describe.each([false, true])('conv net (batch norm %s)', (bn) => {
  const batchedEqualsSeparate =
    'K=7 points of a B=3 manifold in one batched run equal 7 separate K=1 runs with materialized weights';
  it(batchedEqualsSeparate, async () => {
    const K = 7,
      B = 3;
    const layers = net(bn);
    const init = initParams(layers, B, 5);
    const coef = randArray(rng(3), K * B, 0.8);
    const weights = Array.from({ length: K }, (_, k) => (k % 2 ? -0.5 : 1) / K);
    const model = new Model(gpu, layers, B, init);
    const batched = await runOnce(model, K, B, coef, weights, true);
    model.dispose();
    const shapes = paramShapes(layers);
    const sumGrads = shapes.map((s) => new Float64Array(B * s.shape.reduce((a, b) => a * b, 1)));
    const dcoef = new Float64Array(K * B);
    for (let k = 0; k < K; k++) {
      const wk = init.map((p) => Float32Array.from(ref.combine(p, coef, k, B, p.length / B)));
      const single = new Model(gpu, layers, 1, wk);
      const one = await runOnce(single, 1, 1, [1], [weights[k]], false);
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
  });

  it('basis and coefficient gradients of the whole model match finite differences of the CPU model', () =>
    expectGradientsMatchFD(net(bn), {
      K: 3,
      B: 2,
      initSeed: 11,
      coefSeed: 4,
      weights: [0.5, -0.3, 0.2],
      sampleSeed: 8,
      perParam: 6,
    }));

  it('training for 20 steps on a fixed batch lowers the loss and leaves no GPU memory behind', async () => {
    const start = gpu.pool.liveBytes;
    const model = Model.create(gpu, net(bn), 1, 21);
    const opt = new Adam(gpu, model.params, { lr: 0.01, maxNorm: 100 });
    const manifold = Manifold.single(gpu);
    const x = Tensor.fromArray(gpu, [N, ...IN], xData, 'x');
    const y = Tensor.fromArray(gpu, [N], labels, 'labels', 'u32');
    const { crossEntropy } = await import('../src/engine/ops/index.ts');
    const losses: number[] = [];
    for (let step = 0; step < 20; step++) {
      const tape = new Tape(gpu, manifold);
      const out = crossEntropy({ gpu, manifold, tape }, model.forward({ gpu, manifold, tape }, x), y);
      tape.backward([1]);
      opt.step();
      losses.push((await out.read()).loss[0]);
      tape.dispose();
    }
    expect(losses[19]).toBeLessThan(losses[0] * 0.5);
    opt.dispose();
    model.dispose();
    manifold.dispose();
    x.dispose();
    y.dispose();
    expect(gpu.pool.liveBytes).toBe(start);
  });
});

describe('errors name the op and the shapes', () => {
  it('a shape mismatch', async () => {
    const model = Model.create(gpu, net(false), 1, 1);
    const manifold = Manifold.single(gpu);
    const x = Tensor.fromArray(gpu, [N, 3, 10, 10], new Float32Array(N * 300), 'x');
    expect(() => model.forward({ gpu, manifold, tape: null }, x)).toThrow(
      /conv2d\(0\.conv\.weight\): input \[4,3,10,10\] has 3 channels, weight \[4,1,3,3\] expects 1/,
    );
    x.dispose();
    manifold.dispose();
    model.dispose();
  });

  it('a WGSL compile error', async () => {
    const { kernel } = await import('../src/engine/kernel.ts');
    const bad = kernel(
      'broken.op',
      'k1',
      [['n', 'u32']],
      [{ name: 'y', write: true }],
      '@compute @workgroup_size(1) fn main() { y[0] = undefined_thing; }',
      1,
    );
    const t = new Tensor(gpu, [4], 'y');
    gpu.dispatch({ kernel: bad, buffers: { y: t.buffer }, uniforms: { n: 4 }, groups: [1], what: 'y [4]' });
    await expect(gpu.sync()).rejects.toThrow(/broken\.op.*y \[4\][\s\S]*undefined_thing/);
    t.dispose();
  });
});

describe('points split into blocks', () => {
  it('blocks sized to a lowered binding limit give the same losses and gradients as one batched pass', async () => {
    const { evaluatePoints, backwardPoints, pointsPerBlock } = await import('../src/models/run.ts');
    const K = 7,
      B = 2;
    const layers = net(true);
    const model = new Model(gpu, layers, B, initParams(layers, B, 2));
    const coefs = randArray(rng(6), K * B, 0.8);
    const weights = Array.from({ length: K }, (_, k) => 1 / (k + 1));
    const x = Tensor.fromArray(gpu, [N, ...IN], xData, 'x');
    const y = Tensor.fromArray(gpu, [N], labels, 'labels', 'u32');
    const whole = await evaluatePoints(gpu, model, coefs, x, y, K);
    const g1 = await backwardPoints(gpu, model, coefs, weights, x, y, { block: K, coefGrad: true });
    const grads1 = await Promise.all(model.params.map((p) => p.grad!.read()));
    model.params.forEach((p) => p.zeroGrad());

    const saved = gpu.bindingLimit;
    gpu.bindingLimit = 2 * 4 * 400 * N; // two points of the largest activation (4 x 10 x 10 per sample)
    try {
      expect(pointsPerBlock(gpu, layers, N, IN, K)).toBe(2);
      // one pass over all K points now breaks the limit, with an error saying what to do
      await expect(evaluatePoints(gpu, model, coefs, x, y, K)).rejects.toThrow(
        /binding limit .* fewer points per block/,
      );
      const blocked = await evaluatePoints(gpu, model, coefs, x, y);
      expectClose(blocked.loss, whole.loss, 1e-5, 1e-6, 'blocked losses');
      expect(Array.from(blocked.acc)).toEqual(Array.from(whole.acc));
      const g2 = await backwardPoints(gpu, model, coefs, weights, x, y, { coefGrad: true });
      const grads2 = await Promise.all(model.params.map((p) => p.grad!.read()));
      grads2.forEach((g, i) => expectClose(g, grads1[i], 1e-4, 1e-6, `blocked gradient ${i}`));
      expectClose(g2.dcoef!, g1.dcoef!, 1e-4, 1e-6, 'blocked coefficient gradient');
    } finally {
      gpu.bindingLimit = saved;
    }
    x.dispose();
    y.dispose();
    model.dispose();
  });
});

describe('a tape without basis gradients (coefficient training)', () => {
  it.each([
    [false, 7, 3],
    [true, 7, 3],
    [false, 3, 6],
    [true, 3, 6],
  ])('batch norm %s, K=%i, B=%i: the same dL/dC as the full tape, no basis gradient touched', async (bn, K, B) => {
    const { backwardPoints } = await import('../src/models/run.ts');
    const layers = net(bn);
    const init = initParams(layers, B, 13);
    const coefs = randArray(rng(17), K * B, 0.8);
    const weights = Array.from({ length: K }, (_, k) => (k % 2 ? -0.4 : 1) / K);
    const x = Tensor.fromArray(gpu, [N, ...IN], xData, 'x');
    const y = Tensor.fromArray(gpu, [N], labels, 'labels', 'u32');
    const full = new Model(gpu, layers, B, init);
    const want = await backwardPoints(gpu, full, coefs, weights, x, y, { coefGrad: true });
    full.dispose();
    const only = new Model(gpu, layers, B, init);
    const got = await backwardPoints(gpu, only, coefs, weights, x, y, { coefGrad: true, basisGrad: false });
    expect(only.params.every((p) => p.grad === null)).toBe(true);
    only.dispose();
    expectClose(got.loss, want.loss, 1e-6, 1e-7, 'losses');
    expectClose(got.dcoef!, want.dcoef!, 1e-4, 1e-5, 'coefficient gradient');
    x.dispose();
    y.dispose();
  });

  it('asking for neither gradient is an error', () => {
    const manifold = Manifold.single(gpu);
    expect(() => new Tape(gpu, manifold, false, false)).toThrow(/nothing to compute/);
    manifold.dispose();
  });
});

describe('ResNet blocks (identity and projection shortcuts)', () => {
  it('basis and coefficient gradients match finite differences of the CPU model', async () => {
    const { resNet } = await import('../src/models/zoo.ts');
    const layers = resNet({ n: 1, inChannels: 1, width: 0.25 }); // 4-8-16 channels: the CPU reference stays quick
    expect(paramShapes(layers).some((p) => p.name.includes('shortcut'))).toBe(true);
    await expectGradientsMatchFD(layers, {
      K: 2,
      B: 2,
      initSeed: 13,
      coefSeed: 9,
      weights: [0.7, -0.4],
      sampleSeed: 21,
      perParam: 2,
    });
  });
});

describe('model graphs', () => {
  // GELU in both forms, SiLU, and a residual block whose shortcut is a strided 1x1 conv: a DAG of 9 nodes
  const dag: Layer[] = [
    { type: 'conv', cin: 1, cout: 3, k: 3, pad: 1 },
    { type: 'gelu' },
    {
      type: 'residual',
      body: [{ type: 'conv', cin: 3, cout: 4, k: 3, stride: 2, pad: 1 }, { type: 'silu' }],
      shortcut: [{ type: 'conv', cin: 3, cout: 4, k: 1, stride: 2 }],
    },
    { type: 'gelu', form: 'tanh' },
    { type: 'adaptive', size: [2, 2] },
    { type: 'flatten' },
    { type: 'linear', in: 16, out: 10 },
  ];

  const residualBlock =
    'a residual block becomes body, shortcut and an add node; names, shapes and FLOPs come from the layer table';
  it(residualBlock, () => {
    const g = toGraph(dag);
    expect(g.nodes.map((n) => `${n.name}:${n.op.type}<${n.inputs.join(',')}`)).toEqual([
      '0:conv<input',
      '1:gelu<0',
      '2.0:conv<1',
      '2.1:silu<2.0',
      '2.shortcut.0:conv<1',
      '2:add<2.shortcut.0,2.1',
      '3:gelu<2',
      '4:adaptive<3',
      '5:flatten<4',
      '6:linear<5',
    ]);
    expect(paramShapes(dag).map((p) => p.name)).toContain('2.shortcut.0.conv.weight');
    expect(nodeShapes(dag, IN).get('2')).toEqual([4, 5, 5]);
    expect(forwardFlops(dag, IN)).toBe(2 * (3 * 100 * 9 + 4 * 25 * 3 * 9 + 4 * 25 * 3 + 16 * 10));
    expect(() => layerShapes([{ type: 'linear', in: 5, out: 2 }], IN)).toThrow(
      /node 0 \(linear\): an input of 5 features expected, got \[1,10,10\]/,
    );
    expect(() =>
      toGraph({ nodes: [{ name: 'a', op: { type: 'relu' }, inputs: ['b'], index: 0 }], output: 'a' }),
    ).toThrow(/node a takes "b"/);
  });

  it('gradients through GELU, SiLU and a projection shortcut match finite differences of the CPU graph', () =>
    expectGradientsMatchFD(dag, {
      K: 3,
      B: 2,
      initSeed: 17,
      coefSeed: 6,
      weights: [0.6, -0.2, 0.3],
      sampleSeed: 5,
      perParam: 4,
    }));

  const handBuiltGraph =
    'a graph built by hand (two branches of the input, added) runs, and inference frees every intermediate';
  it(handBuiltGraph, async () => {
    const g: Graph = {
      nodes: [
        { name: 'a', op: { type: 'conv', cin: 1, cout: 2, k: 3, pad: 1 }, inputs: [INPUT], index: 0 },
        { name: 'b', op: { type: 'conv', cin: 1, cout: 2, k: 1 }, inputs: [INPUT], index: 1 },
        { name: 'r', op: { type: 'relu' }, inputs: ['a'], index: 2 },
        { name: 's', op: { type: 'add' }, inputs: ['r', 'b'], index: 3 },
        { name: 'f', op: { type: 'flatten' }, inputs: ['s'], index: 4 },
        { name: 'l', op: { type: 'linear', in: 200, out: 10 }, inputs: ['f'], index: 5 },
      ],
      output: 'l',
    };
    const K = 2,
      B = 2;
    const init = initParams(g, B, 3);
    const coef = randArray(rng(8), K * B, 0.8);
    const model = new Model(gpu, g, B, init);
    const manifold = new Manifold(gpu, K, B, coef);
    const x = Tensor.fromArray(gpu, [N, ...IN], xData, 'x');
    const start = gpu.pool.liveBytes;
    const y = model.forward({ gpu, manifold, tape: null }, x);
    const got = await y.read();
    const held = gpu.pool.liveBytes - start;
    y.dispose();
    expect(gpu.pool.liveBytes).toBe(start); // only the output was left
    expect(held).toBeGreaterThan(0);
    for (let k = 0; k < K; k++) {
      const want = graphRef(
        g,
        init.map((p) => ref.combine(p, coef, k, B, p.length / B)),
        xData,
        N,
        IN,
      ).y;
      for (let i = 0; i < want.length; i++)
        expect(Math.abs(got[k * want.length + i] - want[i])).toBeLessThan(1e-4 * (1 + Math.abs(want[i])));
    }
    x.dispose();
    manifold.dispose();
    model.dispose();
  });
});

describe('BN running statistics', () => {
  const trainingAndEval =
    'training passes update them as PyTorch does, and eval mode (K = 4, B = 2) matches the CPU model with them';
  it(trainingAndEval, async () => {
    const C = 2,
      N = 5,
      H = 3,
      W = 4;
    const layers: Layer[] = [{ type: 'bn', c: C }, { type: 'flatten' }, { type: 'linear', in: C * H * W, out: 3 }];
    const r = rng(5);
    const model = new Model(
      gpu,
      layers,
      1,
      initParams(layers, 1, 2).map((p) => p.map(() => r() - 0.5)),
    );
    model.bnMode = 'update';
    const manifold = Manifold.single(gpu);
    const expMean = [0, 0],
      expVar = [1, 1];
    for (let step = 0; step < 2; step++) {
      const xv = Float32Array.from({ length: N * C * H * W }, () => 3 * r() + step);
      const x = Tensor.fromArray(gpu, [1, N, C, H, W], xv, 'x'); // BN takes per-point inputs [K, N, ...]
      model.forward({ gpu, manifold, tape: null }, x).dispose();
      x.dispose();
      for (let c = 0; c < C; c++) {
        const vals: number[] = [];
        for (let n = 0; n < N; n++) for (let q = 0; q < H * W; q++) vals.push(xv[(n * C + c) * H * W + q]);
        const m = vals.reduce((a, b) => a + b, 0) / vals.length;
        const unbiased = vals.reduce((a, b) => a + (b - m) ** 2, 0) / (vals.length - 1);
        expMean[c] = 0.9 * expMean[c] + 0.1 * m;
        expVar[c] = 0.9 * expVar[c] + 0.1 * unbiased;
      }
    }
    const [rm, rv] = await Promise.all(model.states.map((s) => s.basis.read()));
    for (let c = 0; c < C; c++) {
      expect(rm[c]).toBeCloseTo(expMean[c], 5);
      expect(rv[c]).toBeCloseTo(expVar[c], 4);
    }
    // eval mode on a B = 2 manifold: basis 1 of the statistics is a direction (states mode)
    const params = await Promise.all(model.params.map((p) => p.basis.read()));
    const dirs = params.map((p) => p.map(() => 0.3 * (r() - 0.5)));
    const sdirs = [rm.map(() => 0.2 * (r() - 0.5)), rv.map(() => 0.2 * r())];
    const two = (a: Float32Array, d: Float32Array) => {
      const o = new Float32Array(2 * a.length);
      o.set(a);
      o.set(d, a.length);
      return o;
    };
    const m2 = new Model(
      gpu,
      layers,
      2,
      params.map((p, i) => two(p, dirs[i])),
      [two(rm, sdirs[0]), two(rv, sdirs[1])],
    );
    m2.bnMode = 'running';
    const K = 4,
      coefs = Array.from({ length: K }, (_, k) => [1, k * 0.7 - 1]).flat();
    const man = new Manifold(gpu, K, 2, coefs);
    const xv = Float32Array.from({ length: N * C * H * W }, () => 2 * r());
    const x = Tensor.fromArray(
      gpu,
      [K, N, C, H, W],
      Float32Array.from({ length: K * xv.length }, (_, i) => xv[i % xv.length]),
      'x',
    );
    const y = m2.forward({ gpu, manifold: man, tape: null }, x);
    const got = await y.read();
    for (let k = 0; k < K; k++) {
      const a = k * 0.7 - 1;
      const comb = (p: ArrayLike<number>, d: ArrayLike<number>) => Array.from(p, (v, i) => v + a * d[i]);
      const want = graphRef(
        layers,
        params.map((p, i) => comb(p, dirs[i])),
        xv,
        N,
        [C, H, W],
        0,
        [comb(rm, sdirs[0]), comb(rv, sdirs[1])],
      ).y;
      for (let i = 0; i < want.length; i++)
        expect(Math.abs(got[k * want.length + i] - want[i])).toBeLessThan(1e-4 * (1 + Math.abs(want[i])));
    }
    y.dispose();
    x.dispose();
    man.dispose();
    m2.dispose();
    model.dispose();
    manifold.dispose();
  });
});

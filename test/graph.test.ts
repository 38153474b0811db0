// Model graphs: residual blocks as add nodes, shapes and FLOPs from the layer table, gradients through GELU, SiLU and a
// projection shortcut, graphs built by hand, and batch norm's running statistics (training updates, evaluation mode).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { randArray, rng } from '../src/engine/gradcheck.ts';
import { Manifold } from '../src/engine/manifold.ts';
import * as ref from '../src/engine/reference.ts';
import { Tensor } from '../src/engine/tensor.ts';
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
import { Model } from '../src/models/model.ts';
import { testGpu } from './helpers.ts';
import { IN, N, expectGradientsMatchFD, xData } from './model-check.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

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
    expectGradientsMatchFD(gpu, dag, {
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

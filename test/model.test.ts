// Whole-model checks: the K-batching identity, training lowers the loss, basis and coefficient gradients
// against finite differences of the float64 CPU model, and no GPU memory left behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { Manifold } from '../src/engine/manifold.ts';
import { Tape } from '../src/engine/tape.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { Adam } from '../src/engine/optim.ts';
import { randArray, rng } from '../src/engine/gradcheck.ts';
import { Model } from '../src/models/model.ts';
import { initParams, paramShapes } from '../src/models/graph.ts';
import { testGpu } from './helpers.ts';
import {
  IN,
  N,
  expectBatchedEqualsSeparate,
  expectClose,
  expectGradientsMatchFD,
  labels,
  net,
  xData,
} from './model-check.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe.each([false, true])('conv net (batch norm %s)', (bn) => {
  const batchedEqualsSeparate =
    'K=7 points of a B=3 manifold in one batched run equal 7 separate K=1 runs with materialized weights';
  it(batchedEqualsSeparate, async () => {
    const K = 7,
      B = 3;
    const layers = net(bn);
    await expectBatchedEqualsSeparate(gpu, layers, {
      K,
      B,
      init: initParams(layers, B, 5),
      coef: randArray(rng(3), K * B, 0.8),
      weights: Array.from({ length: K }, (_, k) => (k % 2 ? -0.5 : 1) / K),
    });
  });

  it('basis and coefficient gradients of the whole model match finite differences of the CPU model', () =>
    expectGradientsMatchFD(gpu, net(bn), {
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
    await expectGradientsMatchFD(gpu, layers, {
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

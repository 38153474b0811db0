// Optimizers against PyTorch-exact CPU references, gradient clipping, buffer accounting, scoped disposal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { Param } from '../src/engine/manifold.ts';
import { Adam, SGD } from '../src/engine/optim.ts';
import { Tensor, tidy } from '../src/engine/tensor.ts';
import * as ref from '../src/engine/reference.ts';
import { randArray, rng } from '../src/engine/gradcheck.ts';
import { bucketSize } from '../src/engine/buffers.ts';
import { sumSquaresKernel } from '../src/engine/optim.wgsl.ts';
import { chooseTiles } from '../src/engine/ops/conv-tiled.wgsl.ts';
import { chooseLanes, lanesGrid } from '../src/engine/ops/conv-lanes.wgsl.ts';
import { matmulKernel, matmulLanesKernel } from '../bench/matmul.wgsl.ts';
import { type KernelSpec, fold } from '../src/engine/kernel.ts';
import { testGpu } from './helpers.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

/** Runs `steps` optimizer steps on GPU and CPU with the same gradients each step. */
async function compareOptimizer(
  kind: 'sgd' | 'adam',
  o: Record<string, number | boolean>,
  maxNorm: number,
  gradScale: number,
) {
  const r = rng(17);
  const sizes = [1000, 37, 3 * 333, 4500]; // 4500: two workgroups at 16 elements per invocation
  const init = sizes.map((n) => randArray(r, n));
  const params = init.map((v, i) => new Param(gpu, `p${i}`, [v.length], 1, v));
  const opt =
    kind === 'sgd'
      ? new SGD(gpu, params, {
          lr: o.lr as number,
          momentum: o.momentum as number,
          weightDecay: o.weightDecay as number,
          nesterov: o.nesterov as boolean,
          maxNorm,
        })
      : new Adam(gpu, params, { lr: o.lr as number, weightDecay: o.weightDecay as number, maxNorm });
  const cp = init.map((v) => Float64Array.from(v));
  const s1 = sizes.map((n) => new Float64Array(n)),
    s2 = sizes.map((n) => new Float64Array(n));
  const norms: number[] = [];
  for (let t = 1; t <= 5; t++) {
    const grads = sizes.map((n) => randArray(r, n, gradScale));
    params.forEach((p, i) => p.ensureGrad().write(grads[i]));
    opt.step();
    const g64 = grads.map((g) => Float64Array.from(g));
    norms.push(maxNorm > 0 ? ref.clipRef(g64, maxNorm) : 0);
    cp.forEach((p, i) =>
      kind === 'sgd'
        ? ref.sgdRef(p, g64[i], s1[i], {
            lr: o.lr as number,
            momentum: o.momentum as number,
            weightDecay: o.weightDecay as number,
            nesterov: o.nesterov as boolean,
          })
        : ref.adamRef(p, g64[i], s1[i], s2[i], t, {
            lr: o.lr as number,
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            weightDecay: o.weightDecay as number,
          }),
    );
    if (maxNorm > 0) expect(Math.abs((await opt.lastNorm())! - norms[t - 1])).toBeLessThan(1e-4 * norms[t - 1]);
  }
  for (let i = 0; i < params.length; i++) {
    const got = await params[i].basis.read();
    for (let j = 0; j < got.length; j++)
      expect(Math.abs(got[j] - cp[i][j]), `p${i}[${j}]`).toBeLessThan(1e-5 + 1e-4 * Math.abs(cp[i][j]));
    // gradients are zeroed after a step
    expect(Math.max(...(await params[i].grad!.read()).map(Math.abs))).toBe(0);
  }
  opt.dispose();
  params.forEach((p) => p.dispose());
  return norms;
}

describe.each([1, 16])('optimizers match PyTorch-exact CPU references (%i elements per invocation)', (per) => {
  let saved = 1;
  beforeAll(() => {
    saved = gpu.elemsPerThread;
    gpu.elemsPerThread = per;
  });
  afterAll(() => {
    gpu.elemsPerThread = saved;
  });
  it('SGD with momentum and weight decay', () =>
    compareOptimizer('sgd', { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: false }, 0, 1));
  it('SGD with Nesterov momentum', () =>
    compareOptimizer('sgd', { lr: 0.05, momentum: 0.9, weightDecay: 0, nesterov: true }, 0, 1));
  it('Adam with weight decay', () => compareOptimizer('adam', { lr: 1e-2, weightDecay: 1e-4 }, 0, 1));
  it('Adam with global-norm clipping that bites', async () => {
    const norms = await compareOptimizer('adam', { lr: 1e-3, weightDecay: 0 }, 5, 1);
    expect(Math.min(...norms)).toBeGreaterThan(5); // the clip was active on every step
  });
  it('SGD with global-norm clipping that bites', async () => {
    const norms = await compareOptimizer('sgd', { lr: 0.1, momentum: 0.5, weightDecay: 0, nesterov: false }, 10, 1);
    expect(Math.min(...norms)).toBeGreaterThan(10);
  });
});

describe('the roofline matmuls (bench:kernels) against a CPU product', () => {
  for (const fam of ['tiled', 'lanes'] as const) {
    it(`${fam}, 37 x 29 times 29 x 45`, async () => {
      const [M, Kd, N] = [37, 29, 45];
      const av = randArray(rng(12), M * Kd),
        bv = randArray(rng(13), Kd * N);
      const a = Tensor.fromArray(gpu, [M, Kd], av, 'a'),
        b = Tensor.fromArray(gpu, [Kd, N], bv, 'b'),
        c = new Tensor(gpu, [M, N], 'c');
      let kernel: KernelSpec, groups: [number, number];
      if (fam === 'lanes') {
        const l = chooseLanes(N, M);
        kernel = matmulLanesKernel(l);
        groups = lanesGrid(l, N, M);
      } else {
        const t = chooseTiles(N, M);
        kernel = matmulKernel(t);
        groups = [Math.ceil(M / t.BM), Math.ceil(N / t.BN)];
      }
      gpu.dispatch({
        kernel,
        buffers: { a: a.buffer, b: b.buffer, c: c.buffer },
        uniforms: { M, N, Kd },
        groups,
        what: 'test',
      });
      const got = await c.read();
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let want = 0;
          for (let k = 0; k < Kd; k++) want += av[i * Kd + k] * bv[k * N + j];
          expect(Math.abs(got[i * N + j] - want)).toBeLessThan(1e-5 + 1e-4 * Math.abs(want));
        }
      a.dispose();
      b.dispose();
      c.dispose();
    });
  }
});

describe('sum of squares (gradient norm) at both workgroup widths', () => {
  for (const wg of [256, 8]) {
    it(`${wg} threads per 1024 elements`, async () => {
      const n = 2 * 1024 + 37; // a partial last workgroup
      const v = randArray(rng(11), n);
      const g = Tensor.fromArray(gpu, [n], v, 'g');
      const groups = Math.ceil(n / 1024);
      const part = new Tensor(gpu, [groups + 1], 'part');
      gpu.dispatch({
        kernel: sumSquaresKernel(wg),
        buffers: { g: g.buffer, part: part.buffer },
        uniforms: { n, off: 1 },
        groups: fold(groups),
        what: 'test',
      });
      const got = await part.read();
      for (let w = 0; w < groups; w++) {
        let want = 0;
        for (let i = w * 1024; i < Math.min(n, (w + 1) * 1024); i++) want += v[i] * v[i];
        expect(Math.abs(got[1 + w] - want)).toBeLessThan(1e-4 * want);
      }
      g.dispose();
      part.dispose();
    });
  }
});

describe('buffers', () => {
  it('counts live and peak bytes, and reuses freed buffers', () => {
    const live0 = gpu.pool.liveBytes;
    gpu.pool.resetPeak();
    const a = new Tensor(gpu, [1000], 'a');
    const b = new Tensor(gpu, [3000], 'b');
    expect(gpu.pool.liveBytes - live0).toBe(bucketSize(4000) + bucketSize(12000));
    const alloc = gpu.pool.allocatedBytes;
    b.dispose();
    const c = new Tensor(gpu, [2900], 'c'); // same bucket as b: no new allocation
    expect(gpu.pool.allocatedBytes).toBe(alloc);
    a.dispose();
    c.dispose();
    expect(gpu.pool.liveBytes).toBe(live0);
    expect(gpu.pool.peakBytes - live0).toBe(bucketSize(4000) + bucketSize(12000));
    expect(() => a.buffer).toThrow(/used after dispose/);
  });

  it('tidy disposes what it made, except what it returns', async () => {
    const live0 = gpu.pool.liveBytes;
    const kept = await tidy(gpu, () => {
      new Tensor(gpu, [100], 'temp1');
      Tensor.zeros(gpu, [200], 'temp2');
      return { keep: new Tensor(gpu, [50], 'kept') };
    });
    expect(kept.keep.disposed).toBe(false);
    expect(gpu.pool.liveBytes - live0).toBe(bucketSize(200));
    kept.keep.dispose();
    expect(gpu.pool.liveBytes).toBe(live0);
  });

  it('reads back what was written', async () => {
    const v = randArray(rng(3), 777);
    const t = Tensor.fromArray(gpu, [7, 111], v);
    expect(Array.from(await t.read())).toEqual(Array.from(v));
    t.dispose();
  });
});

// Hessian maps: the batched central-difference HVP against a float64 CPU finite-difference HVP (several points in
// one pass), Lanczos extremes against a dense eigen-decomposition, resume, shards + merge, and flag errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { rng, randn } from '../src/engine/random.ts';
import * as ref from '../src/engine/reference.ts';
import type { Dataset } from '../src/data/dataset.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { readNpy } from '../src/data/formats.ts';
import { initParams, graphRef } from '../src/models/graph.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { extremeEigenvalues, runHessian, type HessianOptions } from '../src/landscape/hessian.ts';
import { hessianLayout, HvpEngine } from '../src/numerics/hvp.ts';
import { symmetricEigen } from '../src/numerics/eigen.ts';
import { readCheckpoint } from '../src/models/checkpoint.ts';
import { Interrupted } from '../src/run/interrupted.ts';
import { testGpu, writeIdx, writeInitCheckpoint } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-hess-'));
const data = join(dir, 'data');
beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(data);
  writeIdx(join(data, 'train'), 40, 1);
  writeIdx(join(data, 't10k'), 20, 2);
  writeInitCheckpoint(join(dir, 'mlp.safetensors'), 'mlp', 9);
});
afterAll(() => gpu?.destroy());

/** A small in-memory dataset of [1, s, s] images with random labels. */
function toyData(n: number, s: number, seed: number): Dataset {
  const r = rng(seed);
  return {
    images: Float32Array.from({ length: n * s * s }, () => 2 * r() - 1),
    labels: Uint32Array.from({ length: n }, () => Math.floor(r() * 10)),
    n,
    shape: [1, s, s],
    classes: 10,
  };
}

describe('Hessian-vector products', () => {
  it.each([
    ['a tanh MLP', 'mlp', 3, 1e-5, 1e-3, 1e-3],
    // a large GPU step: plain differences would cross ReLU switches; the paired masks keep both on one piece
    ['a ReLU conv net with max-pool (paired masks)', 'tiny', 6, 1e-6, 1e-4, 3e-2],
  ])(
    '%s: 3 points batched in one pass match float64 finite differences of gradients of the CPU model',
    async (_n, name, size, hIn, hOut, eps) => {
      const ds = toyData(12, size, 4);
      const spec = modelSpec(name, { input: ds.shape });
      const r = rng(2);
      const theta = initParams(spec.layers, 1, 3).map((w) => w.map((v) => 3 * v)); // larger weights: more curvature
      const d = theta.map((w) => w.map(() => 0.3 * randn(r)));
      const layout = hessianLayout(spec);
      const n = layout.reduce((a, l) => a + l.size, 0);
      const alphas = [0, 0.4, -0.7];
      const vs = alphas.map(() => {
        const v = Float64Array.from({ length: n }, () => randn(r));
        const s = Math.hypot(...v);
        return v.map((x) => x / s);
      });
      const hvp = new HvpEngine(
        gpu,
        spec,
        [
          { weights: theta, states: null },
          { weights: d, states: null },
        ],
        'batch',
        { data: ds, pick: Array.from({ length: ds.n }, (_, i) => i) },
        eps,
        process.env.UNPAIRED !== '1',
      );
      const got = await hvp.products(
        alphas.map((a) => [1, a]),
        vs,
      );
      hvp.dispose();
      // float64 reference: loss(x) and its gradient over the dim > 1 parameters by central differences
      const loss = (flat: Float64Array, base: Float64Array[]) => {
        const vals = base.map((b) => Float64Array.from(b));
        for (const l of layout) for (let i = 0; i < l.size; i++) vals[l.tensor][i] += flat[l.offset + i];
        const y = graphRef(spec.layers, vals, ds.images, ds.n, ds.shape).y;
        return ref.crossEntropyRef(y, ds.labels, ds.n, 10).loss;
      };
      const grad = (shift: Float64Array, base: Float64Array[]) =>
        Float64Array.from({ length: n }, (_, i) => {
          const p = Float64Array.from(shift),
            m = Float64Array.from(shift);
          p[i] += hIn;
          m[i] -= hIn;
          return (loss(p, base) - loss(m, base)) / (2 * hIn);
        });
      alphas.forEach((a, q) => {
        const base = theta.map((w, t) => Float64Array.from(w, (v, i) => v + a * d[t][i]));
        // steps small enough that the float64 reference crosses no ReLU switch
        const h = hOut;
        const gp = grad(
            vs[q].map((x) => h * x),
            base,
          ),
          gm = grad(
            vs[q].map((x) => -h * x),
            base,
          );
        const want = gp.map((x, i) => (x - gm[i]) / (2 * h));
        const err = Math.hypot(...want.map((x, i) => x - got.hv[q][i])) / Math.hypot(...want);
        expect(err).toBeLessThan(1e-2);
        // the mean of the +-eps losses: O(eps^2)
        expect(Math.abs(got.loss[q] - loss(new Float64Array(n), base))).toBeLessThan(1e-5 + eps * eps);
      });
    },
  );

  it('Lanczos extremes equal the extreme eigenvalues of the dense Hessian (built from the same products)', async () => {
    const ds = toyData(10, 2, 7);
    const spec = modelSpec('mlp', { input: ds.shape });
    const theta = initParams(spec.layers, 1, 5).map((w) => w.map((v) => 3 * v));
    const plane = [{ weights: theta, states: null }];
    const hvp = new HvpEngine(
      gpu,
      spec,
      plane,
      'batch',
      { data: ds, pick: Array.from({ length: ds.n }, (_, i) => i) },
      1e-3,
    );
    const n = hvp.n;
    const H: number[][] = [];
    for (let i0 = 0; i0 < n; i0 += 32) {
      const cols = Array.from({ length: Math.min(32, n - i0) }, (_, j) => {
        const e = new Float64Array(n);
        e[i0 + j] = 1;
        return e;
      });
      const r = await hvp.products(
        cols.map(() => [1]),
        cols,
      );
      H.push(...r.hv.map((c) => Array.from(c)));
    }
    const sym = H.map((row, i) => row.map((v, j) => (v + H[j][i]) / 2));
    const asym = Math.max(...H.flatMap((row, i) => row.map((v, j) => Math.abs(v - H[j][i]))));
    const { values } = symmetricEigen(sym);
    const scale = Math.max(Math.abs(values[0]), Math.abs(values[n - 1]));
    expect(asym).toBeLessThan(1e-2 * scale); // the products are a symmetric operator, up to the FD error
    expect(values[n - 1]).toBeLessThan(0); // an untrained net: both signs, so min is not just a small positive value
    const [e] = await extremeEigenvalues(hvp, [[1]], [11], { iters: 60, tol: 1e-4 });
    hvp.dispose();
    expect(Math.abs(e.max - values[0])).toBeLessThan(1e-3 * scale);
    expect(Math.abs(e.min - values[n - 1])).toBeLessThan(1e-3 * scale);
  });
});

describe('hessian maps', () => {
  const opts = (o: Partial<HessianOptions> = {}): HessianOptions => ({
    xs: [-0.5, 0, 0.5],
    ys: [-0.5, 0.5],
    split: 'train',
    images: 0,
    norm: 'filter',
    ignoreBiasBn: true,
    dirType: 'weights',
    bnStats: 'batch',
    seed: 3,
    iters: 8,
    tol: 1e-3,
    eps: 1e-3,
    block: 2,
    ...o,
  });

  it('an interrupted map resumes from its partial files and ends like an uninterrupted one', async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const a = readCheckpoint(join(dir, 'mlp.safetensors'), ds.train.shape);
    const full = await runHessian(gpu, a, [null, null], ds, opts(), join(dir, 'full'));
    let blocks = 0;
    await expect(
      runHessian(gpu, a, [null, null], ds, opts(), join(dir, 'part'), { shouldStop: () => ++blocks >= 2 }),
    ).rejects.toThrow(Interrupted);
    expect(readNpy(join(dir, 'part', 'hessian_max.npy')).data.filter(Number.isNaN).length).toBe(2);
    const resumed = await runHessian(gpu, a, [null, null], ds, opts(), join(dir, 'part'));
    expect(Array.from(resumed.max)).toEqual(Array.from(full.max));
    expect(Array.from(resumed.min)).toEqual(Array.from(full.min));
    expect(full.max.every((m, k) => m >= full.min[k])).toBe(true);
    // a 1-D path through the same centre: the centre point's eigenvalues agree with the grid's (same start vector)
    const path = await runHessian(gpu, a, [null, null], ds, opts({ xs: [0], ys: null }), join(dir, 'path'));
    expect(path.max[0]).toBeGreaterThan(0);
  });

  it('two shard processes merged equal one unsharded run; bad flags are named', async () => {
    const { spawnSync } = await import('node:child_process');
    const { createRequire } = await import('node:module');
    const tsx = createRequire(import.meta.url).resolve('tsx/cli');
    const cli = join(import.meta.dirname, '..', 'src', 'cli.ts');
    const run = (args: string[]) =>
      spawnSync(process.execPath, [tsx, cli, ...args], { encoding: 'utf8', env: { ...process.env } });
    const common = [
      'hessian',
      '--model-file',
      join(dir, 'mlp.safetensors'),
      '--data',
      data,
      '--x',
      '-0.5:0.5:3',
      '--y',
      '-0.5:0.5:2',
      '--images',
      '20',
      '--iters',
      '6',
      '--block',
      '2',
    ];
    for (const [i, out] of [
      [0, 's0'],
      [1, 's1'],
    ] as const) {
      const r = run([...common, '--shard', `${i}/2`, '--out', join(dir, out)]);
      expect(r.status, r.stderr).toBe(0);
    }
    const one = run([...common, '--out', join(dir, 'one')]);
    expect(one.status, one.stderr).toBe(0);
    const m = run(['merge', join(dir, 's0'), join(dir, 's1'), '--out', join(dir, 'merged')]);
    expect(m.status, m.stderr).toBe(0);
    const a = readNpy(join(dir, 'merged', 'hessian_max.npy')).data,
      b = readNpy(join(dir, 'one', 'hessian_max.npy')).data;
    // a point's products do not depend on its block's companions beyond float rounding
    a.forEach((v, k) => expect(Math.abs(v - b[k])).toBeLessThan(1e-3 * Math.abs(b[k]) + 1e-6));
    const bad = run([...common.slice(0, 5), '--x', '1:-1:0', '--out', join(dir, 'bad')]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--x "1:-1:0": min:max:num expected/);
    const other = run(['hessian', '--model-file', join(dir, 'nope.safetensors'), '--data', data]);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/nope\.safetensors/);
  });
});

// Random-subspace training: with P = I and d = D it reproduces direct training (the same Adam steps on the same
// batches), and a sweep of several d trains as one batch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { rng } from '../src/engine/random.ts';
import type { Dataset } from '../src/data/dataset.ts';
import { runSubspace } from '../src/structure/subspace.ts';
import { sparseBlock, sparseEntries } from '../src/structure/subspace-trainers.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { sparseExpandKernel, sparseProjectKernel } from '../src/structure/sparse.wgsl.ts';
import { fold } from '../src/engine/kernel.ts';
import { testGpu } from './helpers.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

function toyData(n: number, seed: number): Dataset {
  const r = rng(seed);
  const labels = Uint32Array.from({ length: n }, () => Math.floor(r() * 10));
  // learnable: pixel (label % 9) is bright
  const images = Float32Array.from(
    { length: n * 9 },
    (_, i) => (i % 9 === labels[Math.floor(i / 9)] % 9 ? 1 : 0) + 0.3 * r(),
  );
  return { images, labels, n, shape: [1, 3, 3], classes: 10 };
}

describe('subspace training', () => {
  it('d = D with P = I takes the same steps as direct training', async () => {
    const data = { train: toyData(64, 1), test: toyData(32, 2) };
    const D = 9 * 16 + 16 + 16 * 10 + 10;
    const r = await runSubspace(
      gpu,
      data,
      {
        model: 'mlp',
        ds: [D],
        projection: 'identity',
        steps: 15,
        batch: 16,
        lr: 0.01,
        lrFull: 0.01,
        seed: 3,
        evalImages: 0,
        trainImages: 0,
      },
      () => {},
    );
    expect(r.D).toBe(D);
    const theta = r.full.flatMap((t) => Array.from(t));
    // z is the displacement from theta0, so theta0 + z must equal the directly trained parameters
    const r0 = await runSubspace(
      gpu,
      data,
      {
        model: 'mlp',
        ds: [1],
        projection: 'identity',
        steps: 0,
        batch: 16,
        lr: 0.01,
        lrFull: 0.01,
        seed: 3,
        evalImages: 0,
        trainImages: 0,
      },
      () => {},
    );
    const theta0 = r0.full.flatMap((t) => Array.from(t));
    let maxDiff = 0;
    for (let i = 0; i < D; i++) maxDiff = Math.max(maxDiff, Math.abs(theta0[i] + r.z[1 + i] - theta[i]));
    expect(maxDiff).toBeLessThan(1e-4);
    expect(Math.abs(r.acc[0] - r.fullAcc)).toBeLessThan(1e-6);
    expect(Math.abs(r.loss[0] - r.fullLoss)).toBeLessThan(1e-4);
  }, 60_000);

  it('a sweep of dimensions trains together; more dimensions fit the training batch better', async () => {
    const data = { train: toyData(64, 1), test: toyData(64, 2) };
    const r = await runSubspace(
      gpu,
      data,
      {
        model: 'mlp',
        ds: [1, 40, 200],
        projection: 'sparse',
        steps: 40,
        batch: 32,
        lr: 0.05,
        lrFull: 0.01,
        seed: 1,
        evalImages: 0,
        trainImages: 0,
      },
      () => {},
    );
    expect(r.acc.length).toBe(3);
    expect(r.loss[2]).toBeLessThan(r.loss[0]);
  }, 60_000);

  it('sparse projection kernels: theta0 + P z_k and P^T g_k equal a CPU reference, and are adjoint', async () => {
    const S = 300,
      dmax = 7,
      K = 3,
      dims = [1, 5, 7];
    const e = sparseEntries(S, dmax, 5); // 17 nonzeros per column, rows drawn with repeats
    const r = rng(8);
    const theta0 = Float32Array.from({ length: S }, () => r() - 0.5);
    const z = Float32Array.from({ length: K * dmax }, () => r() - 0.5);
    const g = Float32Array.from({ length: K * S }, () => r() - 0.5);
    // CSR and CSC of the entries, as the trainer builds them (the reference below works from the entries themselves)
    const byRow = Uint32Array.from(e.row.keys()).sort((a, b) => e.row[a] - e.row[b] || a - b);
    const blk = sparseBlock(e, byRow, 0, S, dmax);
    const T = (shape: number[], d: ArrayLike<number>, dt: 'f32' | 'u32' = 'f32') =>
      Tensor.fromArray(gpu, shape, d, 't', dt);
    const n = blk.col.length;
    const ts = {
      theta0: T([S], theta0),
      rowPtr: T([S + 1], blk.rowPtr, 'u32'),
      col: T([n], blk.col, 'u32'),
      rval: T([n], blk.rval),
      colPtr: T([dmax + 1], blk.colPtr, 'u32'),
      row: T([n], blk.row, 'u32'),
      cval: T([n], blk.cval),
      z: T([K, dmax], z),
      g: T([K, S], g),
      dims: T([K], dims, 'u32'),
      theta: new Tensor(gpu, [K, S], 'theta'),
      dz: new Tensor(gpu, [K, dmax], 'dz'),
    };
    gpu.dispatch({
      kernel: sparseExpandKernel(),
      buffers: {
        theta0: ts.theta0.buffer,
        rowPtr: ts.rowPtr.buffer,
        col: ts.col.buffer,
        val: ts.rval.buffer,
        z: ts.z.buffer,
        dims: ts.dims.buffer,
        theta: ts.theta.buffer,
      },
      uniforms: { K, S, dmax },
      groups: fold(Math.ceil((K * S) / 256)),
      what: 'expand',
    });
    gpu.dispatch({
      kernel: sparseProjectKernel(),
      buffers: {
        colPtr: ts.colPtr.buffer,
        row: ts.row.buffer,
        val: ts.cval.buffer,
        g: ts.g.buffer,
        dims: ts.dims.buffer,
        dz: ts.dz.buffer,
      },
      uniforms: { K, S, dmax, accumulate: 0 },
      groups: fold(Math.ceil((K * dmax) / 256)),
      what: 'project',
    });
    const [theta, dz] = await Promise.all([ts.theta.read(), ts.dz.read()]);
    const wantTheta = new Float64Array(K * S),
      wantDz = new Float64Array(K * dmax);
    for (let k = 0; k < K; k++) {
      for (let i = 0; i < S; i++) wantTheta[k * S + i] = theta0[i];
      for (let q = 0; q < e.row.length; q++) {
        if (e.col[q] >= dims[k]) continue;
        wantTheta[k * S + e.row[q]] += e.val[q] * z[k * dmax + e.col[q]];
        wantDz[k * dmax + e.col[q]] += e.val[q] * g[k * S + e.row[q]];
      }
    }
    for (let i = 0; i < K * S; i++) expect(Math.abs(theta[i] - wantTheta[i]), `theta ${i}`).toBeLessThan(1e-5);
    for (let i = 0; i < K * dmax; i++) expect(Math.abs(dz[i] - wantDz[i]), `dz ${i}`).toBeLessThan(1e-5);
    expect(dz[0 * dmax + 3]).toBe(0); // beyond d_0 = 1
    // adjoint: <P z_k, g_k> = <z_k, P^T g_k> (the gradient of theta . g with respect to z is P^T g)
    for (let k = 0; k < K; k++) {
      let a = 0,
        b = 0;
      for (let i = 0; i < S; i++) a += (theta[k * S + i] - theta0[i]) * g[k * S + i];
      for (let j = 0; j < dims[k]; j++) b += z[k * dmax + j] * dz[k * dmax + j];
      expect(Math.abs(a - b)).toBeLessThan(1e-4);
    }
    Object.values(ts).forEach((t) => t.dispose());
  });

  const sparseEqualsDense =
    'the sparse projection trained without storing P takes the same steps as the same P stored as basis tensors';
  it(sparseEqualsDense, async () => {
    const data = { train: toyData(64, 1), test: toyData(64, 2) };
    const o = {
      model: 'mlp',
      ds: [3, 40, 120],
      steps: 8,
      batch: 16,
      lr: 0.05,
      lrFull: 0.01,
      seed: 2,
      evalImages: 0,
      trainImages: 0,
    };
    const light = await runSubspace(gpu, data, { ...o, projection: 'sparse' }, () => {});
    const stored = await runSubspace(gpu, data, { ...o, projection: 'sparse-basis' }, () => {});
    let worst = 0;
    for (let i = 0; i < light.z.length; i++) worst = Math.max(worst, Math.abs(light.z[i] - stored.z[i]));
    expect(worst).toBeLessThan(2e-3);
    expect(light.z.some((v, i) => i % 121 !== 0 && v !== 0)).toBe(true); // z moved
    light.loss.forEach((l, k) => expect(Math.abs(l - stored.loss[k])).toBeLessThan(1e-3));
  }, 60_000);

  const denseTooLarge =
    'a dense P too large for one binding is refused up front, naming the tensor and the sparse alternative';
  it(denseTooLarge, async () => {
    const data = { train: toyData(16, 1), test: toyData(16, 2) };
    const saved = gpu.bindingLimit;
    gpu.bindingLimit = 4 * 144 * 41 - 4; // the 144-weight first layer with 41 basis tensors does not fit
    try {
      await expect(
        runSubspace(
          gpu,
          data,
          {
            model: 'mlp',
            ds: [40],
            projection: 'dense',
            steps: 1,
            batch: 8,
            lr: 0.05,
            lrFull: 0.01,
            seed: 1,
            evalImages: 0,
            trainImages: 0,
          },
          () => {},
        ),
      ).rejects.toThrow(
        /--projection dense: .*weight \(144 weights\) with 41 basis tensors .* use --projection sparse/,
      );
    } finally {
      gpu.bindingLimit = saved;
    }
  });
});

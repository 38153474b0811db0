// Random-subspace training: with P = I and d = D it reproduces direct training (the same Adam steps on the same
// batches), and a sweep of several d trains as one batch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { rng } from '../src/engine/random.ts';
import type { Dataset } from '../src/data/fashion-mnist.ts';
import { runSubspace } from '../src/experiments/subspace.ts';
import { testGpu } from './helpers.ts';

let gpu: Gpu;
beforeAll(async () => { gpu = await testGpu(); });
afterAll(() => gpu?.destroy());

function toyData(n: number, seed: number): Dataset {
  const r = rng(seed);
  const labels = Uint32Array.from({ length: n }, () => Math.floor(r() * 10));
  // learnable: pixel (label % 9) is bright
  const images = Float32Array.from({ length: n * 9 }, (_, i) => (i % 9 === labels[Math.floor(i / 9)] % 9 ? 1 : 0) + 0.3 * r());
  return { images, labels, n, shape: [1, 3, 3], classes: 10 };
}

describe('subspace training', () => {
  it('d = D with P = I takes the same steps as direct training', async () => {
    const data = { train: toyData(64, 1), test: toyData(32, 2) };
    const D = 9 * 16 + 16 + 16 * 10 + 10;
    const r = await runSubspace(gpu, data, { model: 'mlp', ds: [D], projection: 'identity', steps: 15, batch: 16, lr: 0.01, lrFull: 0.01, seed: 3, evalImages: 0, trainImages: 0 }, () => {});
    expect(r.D).toBe(D);
    const theta = r.full.flatMap((t) => Array.from(t));
    // z is the displacement from theta0, so theta0 + z must equal the directly trained parameters
    const r0 = await runSubspace(gpu, data, { model: 'mlp', ds: [1], projection: 'identity', steps: 0, batch: 16, lr: 0.01, lrFull: 0.01, seed: 3, evalImages: 0, trainImages: 0 }, () => {});
    const theta0 = r0.full.flatMap((t) => Array.from(t));
    let maxDiff = 0;
    for (let i = 0; i < D; i++) maxDiff = Math.max(maxDiff, Math.abs(theta0[i] + r.z[1 + i] - theta[i]));
    expect(maxDiff).toBeLessThan(1e-4);
    expect(Math.abs(r.acc[0] - r.fullAcc)).toBeLessThan(1e-6);
    expect(Math.abs(r.loss[0] - r.fullLoss)).toBeLessThan(1e-4);
  }, 60_000);

  it('a sweep of dimensions trains together; more dimensions fit the training batch better', async () => {
    const data = { train: toyData(64, 1), test: toyData(64, 2) };
    const r = await runSubspace(gpu, data, { model: 'mlp', ds: [1, 40, 200], projection: 'sparse', steps: 40, batch: 32, lr: 0.05, lrFull: 0.01, seed: 1, evalImages: 0, trainImages: 0 }, () => {});
    expect(r.acc.length).toBe(3);
    expect(r.loss[2]).toBeLessThan(r.loss[0]);
  }, 60_000);
});

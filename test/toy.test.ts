// The toy landscape (Fort & Jastrzebski): the hyperplane threshold d_lim = D - n found by batched training, batched ray
// evaluations equal to single-point CPU evaluations, and the projection that keeps connector steps in the hyperplanes
// normal to a segment or simplex. (The wedge loss kernel itself is in the op cases: CPU reference and
// finite differences.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { Param } from '../src/engine/manifold.ts';
import { randn, rng } from '../src/engine/random.ts';
import { wedgeRef, toyLosses } from '../src/structure/wedge.ts';
import { hyperplaneSweep, sweepDims } from '../src/structure/toy-hyperplanes.ts';
import { orthonormal, projectOut } from '../src/numerics/linalg.ts';
import { testGpu } from './helpers.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe('toy landscape', () => {
  const hyperplanesReachZero =
    'optimization on random hyperplanes reaches zero loss exactly from d = D - n on (three n, trained together)';
  it(hyperplanesReachZero, async () => {
    const D = 24,
      ns = [6, 12, 18];
    const ds = sweepDims(D, ns, 1, 0);
    expect(ds).toEqual([5, 6, 7, 11, 12, 13, 17, 18, 19]);
    const h = await hyperplaneSweep(gpu, { D, ns, ds, steps: 1500, lr: 0.02, seed: 3 });
    expect(h.dLim).toEqual([18, 12, 6]);
    // one dimension below the threshold the loss stays well away from zero
    ns.forEach((n, i) => expect(h.rel[i][ds.indexOf(D - n - 1)]).toBeGreaterThan(100 * h.success));
  }, 120_000);

  const wedgeAtMillion =
    'the wedge loss and its gradient at D = 10^6 (two points, n = 1,000 and 500,000) against the CPU reference';
  it(wedgeAtMillion, async () => {
    const D = 1_000_000,
      ns = [1000, 500_000],
      r = rng(21);
    const pts = Float32Array.from({ length: 2 * D }, () => randn(r));
    const basis = new Param(gpu, 'P', [D], 2, pts);
    const { loss } = await toyLosses(gpu, basis, Float32Array.of(1, 0, 0, 1), ns, { basisGrad: true });
    const g = await basis.grad!.read();
    basis.dispose();
    for (let k = 0; k < 2; k++) {
      const x = pts.subarray(k * D, (k + 1) * D);
      const want = wedgeRef(x, ns[k]);
      expect(Math.abs(loss[k] - want) / want).toBeLessThan(1e-4);
      // dL/dx_i = x_i / L on the D - n smallest |x_i|, 0 on the n largest (the free, long directions)
      const cut = Array.from(x, Math.abs).sort((a, b) => b - a)[ns[k] - 1];
      for (let q = 0; q < 200; q++) {
        const i = Math.floor(r() * D);
        const w = Math.abs(x[i]) >= cut ? 0 : x[i] / want;
        expect(Math.abs(g[k * D + i] - w)).toBeLessThan(1e-6 + 1e-4 * Math.abs(w));
      }
    }
  }, 120_000);

  it('rays and distances batched as manifold points equal single-point CPU evaluations', async () => {
    const D = 50,
      R = 3,
      r = rng(4);
    const init = Float32Array.from({ length: (1 + R) * D }, () => randn(r));
    const basis = new Param(gpu, 'P', [D], 1 + R, init);
    const as = [0, 0.5, 2];
    const coefs = Float32Array.from(
      Array.from({ length: R }, (_, q) =>
        as.map((a) => Array.from({ length: 1 + R }, (_, b) => (b === 0 ? 1 : b === 1 + q ? a : 0))),
      ).flat(2),
    );
    const { loss } = await toyLosses(gpu, basis, coefs, new Array(R * as.length).fill(20));
    basis.dispose();
    for (let q = 0; q < R; q++)
      as.forEach((a, i) => {
        const p = Array.from({ length: D }, (_, j) => init[j] + a * init[(1 + q) * D + j]);
        expect(Math.abs(loss[q * as.length + i] - wedgeRef(p, 20))).toBeLessThan(1e-5 * (1 + wedgeRef(p, 20)));
      });
  });

  it('projected gradients are orthogonal to a segment and to a simplex to 1e-5', () => {
    const D = 1000,
      r = rng(9);
    const vec = () => Float64Array.from({ length: D }, () => randn(r));
    const [A, B, C, E] = [vec(), vec(), vec(), vec()];
    for (const edges of [[B.map((v, i) => v - A[i])], [B, C, E].map((X) => X.map((v, i) => v - A[i]))]) {
      const q = orthonormal(edges);
      expect(q.length).toBe(edges.length);
      const g = Float64Array.from({ length: 3 * D }, () => randn(r));
      projectOut(g, D, q);
      for (let k = 0; k < 3; k++)
        for (const e of edges) {
          let dot = 0,
            ng = 0,
            ne = 0;
          for (let i = 0; i < D; i++) {
            dot += g[k * D + i] * e[i];
            ng += g[k * D + i] ** 2;
            ne += e[i] ** 2;
          }
          expect(Math.abs(dot) / Math.sqrt(ng * ne)).toBeLessThan(1e-5);
        }
    }
  });
});

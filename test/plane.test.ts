// The MPO plane: the up_orthogonal transform and its gradient (through the whole model) against finite
// differences of a float64 CPU implementation of the reference's objective.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/device.ts';
import { Tensor } from '../src/engine/tensor.ts';
import * as ref from '../src/engine/reference.ts';
import { randArray, rng } from '../src/engine/gradcheck.ts';
import { initParams, graphRef } from '../src/models/graph.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { backwardPoints } from '../src/models/run.ts';
import { Plane } from '../src/mpo/plane.ts';
import { pointWeights, testGpu } from './helpers.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe('MPO plane', () => {
  const gradientsMatch =
    'gradients of the clamped objective w.r.t. origin, right_param, up_param and scale match finite differences';
  it(gradientsMatch, async () => {
    const spec = modelSpec('tiny', { input: [1, 8, 8] });
    const layers = spec.layers;
    const [o0, r0, u0] = [0, 1, 2].map((k) => initParams(layers, 1, 10 + k));
    const scale = 0.3;
    const plane = new Plane(gpu, layers, { origin: o0, right: r0, up: u0, scale });
    const N = 5;
    const xData = randArray(rng(5), N * 64);
    const labels = [0, 3, 5, 7, 9];
    const cells: [number, number][] = [
      [-1, 2],
      [0, 0],
      [2, -1],
      [1, 1],
    ]; // (x row offset, y column offset)
    const weights = [0.5, 0.5, -0.5, -0.5];
    const clamp = [Infinity, Infinity, 1e9, 0.5]; // the last bad cell is above its threshold: no gradient
    const coefs = Float32Array.from(cells.flatMap(([x, y]) => [1, scale * y, scale * x]));
    await plane.updateBasis();
    const xt = Tensor.fromArray(gpu, [N, 1, 8, 8], xData),
      yt = Tensor.fromArray(gpu, [N], labels, 'y', 'u32');
    const res = await backwardPoints(gpu, plane.model, coefs, weights, xt, yt, { clampAbove: clamp, coefGrad: true });
    await plane.backward();
    const ds = cells.reduce((s, [x, y], k) => s + res.dcoef![k * 3 + 1] * y + res.dcoef![k * 3 + 2] * x, 0);
    const got = {
      o: await Promise.all(plane.origin.map((p) => p.grad!.read())),
      r: await Promise.all(plane.rightP.map((p) => p.grad!.read())),
      u: await Promise.all(plane.upP.map((p) => p.grad!.read())),
    };
    xt.dispose();
    yt.dispose();

    const J = (o: Float64Array[], rp: Float64Array[], up: Float64Array[], s: number) =>
      cells.reduce((acc, [x, y], k) => {
        const w = pointWeights(o, rp, up, s, x, y);
        const { loss } = ref.crossEntropyRef(graphRef(layers, w, xData, N, [1, 8, 8]).y, labels, N, 10);
        return acc + (loss > clamp[k] ? 0 : weights[k] * loss);
      }, 0);
    const f64 = (a: Float32Array[]) => a.map((v) => Float64Array.from(v));
    const base = { o: f64(o0), r: f64(r0), u: f64(u0) };
    expect(res.loss[3]).toBeGreaterThan(0.5); // the clamp bites
    expect(res.loss[2]).toBeLessThan(1e9);
    const pr = rng(77);
    for (const which of ['o', 'r', 'u'] as const) {
      for (let t = 0; t < base[which].length; t++) {
        const v = base[which][t];
        for (let q = 0; q < 3; q++) {
          const j = Math.floor(pr() * v.length);
          const h = 1e-5,
            keep = v[j];
          v[j] = keep + h;
          const jp = J(base.o, base.r, base.u, scale);
          v[j] = keep - h;
          const jm = J(base.o, base.r, base.u, scale);
          v[j] = keep;
          const fd = (jp - jm) / (2 * h);
          expect(
            Math.abs(got[which][t][j] - fd),
            `${which}[${t}][${j}]: ${got[which][t][j]} vs ${fd}`,
          ).toBeLessThanOrEqual(1e-3 * (1 + Math.abs(fd)));
        }
      }
    }
    const fdS = (J(base.o, base.r, base.u, scale + 1e-5) - J(base.o, base.r, base.u, scale - 1e-5)) / 2e-5;
    expect(Math.abs(ds - fdS)).toBeLessThanOrEqual(1e-3 * (1 + Math.abs(fdS)));
    plane.dispose();
  });
});

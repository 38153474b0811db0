// The tfjs peer of the benchmark computes the same MPO step as loss-atlas: same per-cell losses on the same
// weights, and the same plane after one step (a loop of per-cell backward passes vs one batched pass).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { Gpu } from '../src/engine/device.ts';
import { SGD } from '../src/engine/optim.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { randArray, rng } from '../src/engine/gradcheck.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { paramShapes, graphRef } from '../src/models/graph.ts';
import { readSafetensors } from '../src/data/formats.ts';
import { exportCheck, predictMs } from '../bench/torch-check.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { evaluatePoints } from '../src/models/run.ts';
import { Plane } from '../src/mpo/plane.ts';
import { mpoStep } from '../src/mpo/step.ts';
import { cellLosses, tfMpoStep, tfPlane, useBackend } from '../bench/peers/tfjs.ts';
import { pointWeights, testGpu } from './helpers.ts';
import * as ref from '../src/engine/reference.ts';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await testGpu();
});
afterAll(() => gpu?.destroy());

describe.each(['cpu', 'wasm'] as const)('tfjs peer on %s', (backend) => {
  it('matches loss-atlas: per-cell losses, and the plane after one step', async () => {
    await useBackend(backend);
    const spec = modelSpec('tiny', { bn: true, input: [1, 12, 12] });
    const plane = Plane.fresh(gpu, spec.layers, 3);
    const v0 = await plane.values();
    const N = 6;
    const xs = randArray(rng(1), N * 144),
      ys = [1, 2, 3, 4, 5, 6];
    const x = Tensor.fromArray(gpu, [N, 1, 12, 12], xs),
      y = Tensor.fromArray(gpu, [N], ys, 'y', 'u32');
    const offsets: [number, number][] = [
      [0, 0],
      [1, -2],
      [-3, 2],
      [2, 2],
    ];
    const tp = tfPlane(
      v0,
      paramShapes(spec.layers).map((p) => p.shape),
    );
    const xt = tf.tensor4d(xs, [N, 1, 12, 12]),
      yt = tf.tensor1d(ys, 'int32');
    await plane.updateBasis();
    const coefs = Float32Array.from(offsets.flatMap(([di, dj]) => [1, v0.scale * dj, v0.scale * di]));
    const ours = await evaluatePoints(gpu, plane.model, coefs, x, y);
    const theirs = await cellLosses(spec.layers, tp, offsets, xt, yt);
    theirs.forEach((l, k) => expect(Math.abs(l - ours.loss[k])).toBeLessThan(1e-5));
    // one plain-SGD step each, so that the update is the (clipped) gradient itself; the clamp (2.3) stops some
    // bad cells, the clip (0.5) bites. Adam is left out on purpose: tfjs's Adam puts epsilon differently.
    const o = { negCoef: 1, clamp: 2.3, clipNorm: 0.5 };
    const lr = 0.1;
    const opt = new SGD(gpu, plane.trainables(), { lr, maxNorm: o.clipNorm });
    await mpoStep(gpu, plane, opt, offsets, 2, x, y, o);
    await tfMpoStep(spec.layers, tp, tf.train.sgd(lr), offsets, 2, xt, yt, o);
    const v1 = await plane.values();
    let worst = 0,
      biggest = 0;
    const cmp = async (a0: Float32Array[], a: Float32Array[], b: tf.Variable[]) => {
      for (let i = 0; i < a.length; i++) {
        const t = await b[i].data();
        for (let j = 0; j < a[i].length; j++) {
          worst = Math.max(worst, Math.abs(a[i][j] - t[j]));
          biggest = Math.max(biggest, Math.abs(t[j] - a0[i][j]));
        }
      }
    };
    await cmp(v0.origin, v1.origin, tp.origin);
    await cmp(v0.right, v1.right, tp.right);
    await cmp(v0.up, v1.up, tp.up);
    expect(biggest).toBeGreaterThan(1e-3); // the step moved the plane
    expect(worst).toBeLessThan(1e-3 * biggest); // and both moved it the same way
    expect(Math.abs(v1.scale - (await tp.scale.data())[0])).toBeLessThan(1e-3 * Math.abs(v1.scale - v0.scale) + 1e-7);
    opt.dispose();
    plane.dispose();
    x.dispose();
    y.dispose();
  });
});

describe('the PyTorch loss check (bench/torch-check.ts)', () => {
  it('writes a plane, batch and cells whose losses the documented cell formula reproduces on the CPU', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'la-check-'));
    for (const bn of [false, true]) {
      const path = await exportCheck(gpu, 'tiny', bn, 6, dir, modelSpec('tiny', { bn, input: [1, 12, 12] }));
      expect(path).toBe(join(dir, `tiny-bn${bn ? 1 : 0}.safetensors`));
      const { tensors: t } = readSafetensors(path);
      const spec = modelSpec('tiny', { bn, input: [1, 12, 12] });
      const names = paramShapes(spec.layers).map((p) => p.name);
      // the reference's cell formula over the whole parameter vector, in float64 (test/helpers.ts)
      const of = (k: string) => names.map((n) => Float64Array.from(t[`${k}.${n}`].data));
      const [o, rp, upp] = [of('origin'), of('right_param'), of('up_param')];
      const scale = t.scale.data[0],
        off = t.offsets.data,
        x = t.x.data,
        y = t.y.data;
      const N = y.length;
      expect(off.length).toBe(8);
      for (let k = 0; k < off.length / 2; k++) {
        const [di, dj] = [off[2 * k], off[2 * k + 1]];
        const logits = graphRef(spec.layers, pointWeights(o, rp, upp, scale, di, dj), x, N, [1, 12, 12]).y;
        const ce = ref.crossEntropyRef(logits, y, N, 10).loss;
        expect(Math.abs(ce - t.losses.data[k])).toBeLessThan(1e-4);
      }
    }
  });

  it('predicts a peer time from its slowest GFLOP/s on the same workload and BN setting', () => {
    const rows = [
      { impl: 'tfjs-wasm', workload: 'mpo-fashion', bn: false, gflops: 2 },
      { impl: 'tfjs-wasm', workload: 'mpo-fashion', bn: false, gflops: 4 },
      { impl: 'tfjs-wasm', workload: 'mpo-fashion', bn: true, gflops: 1 },
    ];
    expect(predictMs(rows, 'tfjs-wasm', 'mpo-fashion', false, 4e9)).toBeCloseTo(2000, 6);
    expect(predictMs(rows, 'tfjs-wasm', 'mpo-fashion', true, 4e9)).toBeCloseTo(4000, 6);
    expect(predictMs(rows, 'tfjs-webgpu', 'mpo-fashion', false, 4e9)).toBeNull();
    expect(predictMs(rows, 'tfjs-wasm', 'mpo-cifar', false, 4e9)).toBeNull();
  });
});

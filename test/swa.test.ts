// SWA vs ensembles: the averaged point of the snapshot manifold equals the separately averaged weights; an ensemble of
// copies of one network equals that network; the cyclic schedule.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { Model } from '../src/models/model.ts';
import { initParams } from '../src/models/graph.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { evaluateOnImages } from '../src/models/run.ts';
import { evaluateSnapshots, swaLr } from '../src/structure/swa.ts';
import { testGpu, writeIdx } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-swa-'));
beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(join(dir, 'data'));
  writeIdx(join(dir, 'data', 't10k'), 40, 2);
});
afterAll(() => gpu?.destroy());

describe('swa', () => {
  it('the average point equals averaged weights; an ensemble of copies equals the copy', async () => {
    const test = loadFashionMnist(join(dir, 'data'), 't10k');
    const spec = modelSpec('tiny');
    const snaps = [1, 2, 3].map((s) => initParams(spec.layers, 1, s));
    const pick = Array.from({ length: test.n }, (_, i) => i);
    const r = await evaluateSnapshots(gpu, spec, snaps, test, pick);
    const avg = snaps[0].map((t, i) => t.map((_, j) => (snaps[0][i][j] + snaps[1][i][j] + snaps[2][i][j]) / 3));
    const m = new Model(gpu, spec.layers, 1, avg);
    const own = await evaluateOnImages(gpu, m, Float32Array.of(1), test, pick);
    m.dispose();
    expect(Math.abs(r.swaLoss - own.loss[0])).toBeLessThan(1e-4);
    expect(r.swa).toBeCloseTo(own.acc[0], 6);
    const copies = await evaluateSnapshots(gpu, spec, [snaps[0], snaps[0]], test, pick);
    expect(copies.ensemble).toBeCloseTo(copies.individual[0], 6);
    expect(Math.abs(copies.ensembleLoss - copies.individualLoss[0])).toBeLessThan(1e-4);
  });

  it('cyclic learning rate: from lr down to lr / 100 in every cycle', () => {
    const o = { schedule: 'cyclic' as const, every: 5 };
    expect([0, 4, 5, 9].map((s) => swaLr(o, 0.1, s))).toEqual(
      [0.1, 0.1 * 0.01, 0.1, 0.1 * 0.01].map((v) => expect.closeTo(v, 12) as unknown as number),
    );
    expect(swaLr({ schedule: 'constant', every: 5 }, 0.1, 3)).toBe(0.1);
  });
});

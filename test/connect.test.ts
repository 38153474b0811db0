// Connectors: curve coefficients as Garipov et al. define them, the simplex lattice, and an end-to-end connector on a
// tiny net whose optimized points stay in the hyperplanes normal to the segment / simplex.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { readSafetensors } from '../src/data/formats.ts';
import { paramShapes } from '../src/models/graph.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { readCheckpoint } from '../src/models/checkpoint.ts';
import { runConnect, simplexLattice } from '../src/structure/connect.ts';
import { curveCoefs, type ConnectOptions } from '../src/structure/connectors.ts';
import { runMSweep } from '../src/structure/msweep.ts';
import { testGpu, writeIdx, writeInitCheckpoint } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-conn-'));
const data = join(dir, 'data');
const spec = modelSpec('tiny');
beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(data);
  writeIdx(join(data, 'train'), 64, 1);
  writeIdx(join(data, 't10k'), 20, 2);
  for (const seed of [1, 2, 3]) writeInitCheckpoint(join(dir, `m${seed}.safetensors`), 'tiny', seed);
});
afterAll(() => gpu?.destroy());

const flat = (ws: Float32Array[]) => Float64Array.from(ws.flatMap((w) => Array.from(w)));

describe('connectors', () => {
  it('Bezier and polygonal-chain coefficients (3 nodes), and the simplex lattice', () => {
    expect(curveCoefs('bezier', 0.25)).toEqual([0.5625, 0.375, 0.0625]); // (1-t)^2, 2t(1-t), t^2
    expect(curveCoefs('polychain', 0.25)).toEqual([0.5, 0.5, 0]);
    expect(curveCoefs('polychain', 0.75)).toEqual([0, 0.5, 0.5]);
    for (const t of [0, 0.3, 1])
      for (const k of ['bezier', 'polychain'] as const)
        expect(curveCoefs(k, t).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    const lat = simplexLattice(2, 3);
    expect(lat.length).toBe(10);
    expect(lat.every((l) => Math.abs(l.reduce((a, b) => a + b, 0) - 1) < 1e-12)).toBe(true);
  });

  it('Fort connector between two nets: the optimized points deviate from the line only normal to it', async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const cks = [1, 2].map((s) => readCheckpoint(join(dir, `m${s}.safetensors`), ds.train.shape));
    const o: ConnectOptions = {
      method: 'fort',
      points: 3,
      steps: 6,
      lr: 1e-2,
      batch: 16,
      images: 20,
      dense: 9,
      seed: 1,
      probes: 0,
      tPerStep: 2,
    };
    const out = join(dir, 'fort');
    const r = await runConnect(gpu, cks, ds, o, out, () => {});
    const [A, B] = cks.map((c) => flat(c.weights));
    const u = B.map((v, i) => v - A[i]);
    const nodes = readSafetensors(join(out, 'connector.safetensors')).tensors;
    const names = paramShapes(spec.layers).map((s) => s.name);
    for (let j = 1; j <= 3; j++) {
      const x = Float64Array.from(names.flatMap((n) => Array.from(nodes[`node${j}/${n}`].data)));
      const t = j / 4;
      const dev = x.map((v, i) => v - ((1 - t) * A[i] + t * B[i]));
      let dot = 0,
        nd = 0,
        nu = 0;
      dev.forEach((d, i) => {
        dot += d * u[i];
        nd += d * d;
        nu += u[i] * u[i];
      });
      expect(nd).toBeGreaterThan(0); // it moved
      expect(Math.abs(dot) / Math.sqrt(nd * nu)).toBeLessThan(1e-4);
    }
    expect(typeof r.metrics.barrier_line_train).toBe('number');
    for (const f of ['config.json', 'connect.png', 'deviations.png', 'metrics.json', 'connect.json'])
      expect(existsSync(join(out, f)), f).toBe(true);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.endpoint_train_loss.length).toBe(2);
  }, 120_000);

  it('a Bezier bend trains; three optima give a triangle map', async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const cks = [1, 2, 3].map((s) => readCheckpoint(join(dir, `m${s}.safetensors`), ds.train.shape));
    const base: ConnectOptions = {
      method: 'bezier',
      points: 2,
      steps: 4,
      lr: 1e-2,
      batch: 16,
      images: 20,
      dense: 7,
      seed: 1,
      probes: 0,
      tPerStep: 3,
    };
    const b = await runConnect(gpu, cks.slice(0, 2), ds, base, join(dir, 'bez'), () => {});
    expect(Number.isFinite(b.metrics.barrier_path_train as number)).toBe(true);
    const tri = await runConnect(gpu, cks, ds, { ...base, method: 'fort' }, join(dir, 'tri'), () => {});
    expect(existsSync(join(dir, 'tri', 'triangle.png'))).toBe(true);
    expect(typeof tri.metrics.max_connector_train_loss).toBe('number');
    await expect(runConnect(gpu, cks, ds, base, join(dir, 'bad'), () => {})).rejects.toThrow(
      /--method bezier: joins two checkpoints/,
    );
  }, 120_000);

  it('short directions against m: one row per m, counts finite, a finished m is not recomputed on resume', async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const cks = [1, 2, 3].map((s) => readCheckpoint(join(dir, `m${s}.safetensors`), ds.train.shape));
    const o: ConnectOptions = {
      method: 'fort',
      points: 1,
      steps: 3,
      lr: 1e-2,
      batch: 16,
      images: 20,
      dense: 3,
      seed: 1,
      probes: 2,
      tPerStep: 1,
    };
    const out = join(dir, 'msweep');
    const m = await runMSweep(gpu, cks, ds, o, out, () => {});
    expect(m.m).toEqual([1, 2]);
    for (const v of [
      m.optimum_short_directions,
      ...(m.centre_short_directions as number[]),
      ...(m.flat_centre_short_directions as number[]),
    ]) {
      expect(Number.isFinite(v as number)).toBe(true);
      expect(v as number).toBeGreaterThan(0);
    }
    // the centre was moved by its 3 steps of Adam (untrained nets: the loss need not fall on the evaluation images)
    (m.centre_train_loss as number[]).forEach((l, i) => expect(l).not.toBe((m.flat_centre_train_loss as number[])[i]));
    expect(existsSync(join(out, 'short_directions.png'))).toBe(true);
    // resume: the stored m = 1 row is reused as it is (marked here), m = 2 (removed) is computed again, to the
    // same value
    const saved = JSON.parse(readFileSync(join(out, 'msweep.json'), 'utf8'));
    const m2 = saved.rows.find((r: { m: number }) => r.m === 2).centre_short;
    saved.rows = saved.rows.filter((r: { m: number }) => r.m === 1);
    saved.rows[0].centre_short = 12345;
    writeFileSync(join(out, 'msweep.json'), JSON.stringify(saved));
    const again = await runMSweep(gpu, cks, ds, o, out, () => {});
    expect(again.centre_short_directions).toEqual([12345, m2]);
    await expect(runMSweep(gpu, cks.slice(0, 2), ds, o, out, () => {})).rejects.toThrow(/at least three checkpoints/);
  }, 120_000);
});

// Directions and 1-D interpolation: filter normalization, and the interpolated losses at alpha = 0 and 1 equal
// the two checkpoints' own losses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { safetensorsBytes } from '../src/data/formats.ts';
import { Model } from '../src/models/model.ts';
import { initParams, paramShapes, stateShapes } from '../src/models/graph.ts';
import { rng } from '../src/engine/random.ts';
import { manifoldModel } from '../src/models/checkpoint.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { evaluateOnImages } from '../src/models/run.ts';
import { randomDirection } from '../src/landscape/directions.ts';
import { linspace } from '../src/options/index.ts';
import { readCheckpoint, runInterpolate } from '../src/landscape/interpolate.ts';
import { readRunConfig } from '../src/run/run-info.ts';
import { testGpu, writeIdx } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-int-'));
const data = join(dir, 'data');
const spec = modelSpec('tiny', { bn: true });
const shapes = paramShapes(spec.layers);
function writeCheckpoint(path: string, seed: number, withStates = false): Float32Array[] {
  const w = initParams(spec.layers, 1, seed);
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  shapes.forEach((s, i) => (t[s.name] = { shape: s.shape, data: w[i] }));
  if (withStates) {
    const r = rng(seed + 100);
    stateShapes(spec.layers).forEach(
      (s) =>
        (t[s.name] = {
          shape: s.shape,
          data: Float32Array.from({ length: s.shape[0] }, () =>
            s.name.endsWith('var') ? 0.05 + 0.3 * r() : 0.3 * (r() - 0.5),
          ),
        }),
    );
  }
  writeFileSync(path, safetensorsBytes(t, { model: 'tiny', bn: 'true', skip: 'false' }));
  return w;
}
beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(data);
  writeIdx(join(data, 'train'), 90, 1);
  writeIdx(join(data, 't10k'), 40, 2);
});
afterAll(() => gpu?.destroy());

describe('directions', () => {
  it('filter normalization gives each filter of d the norm of the same filter of theta; biasbn ignored', () => {
    const w = initParams(spec.layers, 1, 3);
    const d = randomDirection(
      w,
      shapes.map((s) => s.shape),
      { seed: 123, norm: 'filter', ignoreBiasBn: true },
    );
    shapes.forEach((s, t) => {
      if (s.shape.length <= 1) {
        expect(d[t].every((v) => v === 0)).toBe(true);
        return;
      }
      const per = w[t].length / s.shape[0];
      for (let f = 0; f < s.shape[0]; f++) {
        const n = (a: Float32Array) => Math.hypot(...a.subarray(f * per, (f + 1) * per));
        expect(n(d[t])).toBeCloseTo(n(w[t]), 4);
      }
    });
    const keep = randomDirection(
      w,
      shapes.map((s) => s.shape),
      { seed: 123, norm: 'filter', ignoreBiasBn: false },
    );
    const b = shapes.findIndex((s) => s.shape.length === 1);
    expect(Array.from(keep[b])).toEqual(Array.from(w[b]));
    expect(linspace('-1:1:5', 'x')).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(() => linspace('-1:1', 'x')).toThrow(/--x "-1:1": min:max:num expected/);
  });
});

describe('interpolate', () => {
  it('alpha = 0 and 1 reproduce the two checkpoints, and the plot and data are written', async () => {
    const wa = writeCheckpoint(join(dir, 'a.safetensors'), 1),
      wb = writeCheckpoint(join(dir, 'b.safetensors'), 2);
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const a = readCheckpoint(join(dir, 'a.safetensors'), ds.train.shape),
      b = readCheckpoint(join(dir, 'b.safetensors'), ds.train.shape);
    const out = join(dir, 'out');
    const r = await runInterpolate(
      gpu,
      a,
      b,
      ds,
      {
        x: '0:1:3',
        norm: 'filter',
        ignoreBiasBn: false,
        dirType: 'weights',
        bnStats: 'batch',
        seed: 123,
        images: 0,
        logScale: false,
        lossMax: 5,
      },
      out,
    );
    for (const [w, k] of [
      [wa, 0],
      [wb, 2],
    ] as const) {
      const m = new Model(gpu, spec.layers, 1, w as Float32Array[]);
      const own = await evaluateOnImages(
        gpu,
        m,
        Float32Array.of(1),
        ds.test,
        Array.from({ length: ds.test.n }, (_, i) => i),
      );
      m.dispose();
      expect(Math.abs(r.test_loss[k] - own.loss[0])).toBeLessThan(1e-5);
      expect(r.test_acc[k]).toBeCloseTo(own.acc[0], 6);
    }
    expect(existsSync(join(out, 'interpolate.png'))).toBe(true);
    expect(existsSync(join(out, 'interpolate.json'))).toBe(true);
    expect(r.alpha).toEqual([0, 0.5, 1]);
    // config.json records the --x spec, not the list of alphas it makes
    const { settings } = readRunConfig(out, { kind: 'interpolate' });
    expect(settings).toMatchObject({ x: '0:1:3', modelFile: a.path, modelFile2: b.path });
    expect(settings).not.toHaveProperty('alphas');
  });

  const statesMode =
    "states mode: with running statistics, alpha = 1 is checkpoint B in eval mode; weights mode keeps A's statistics";
  it(statesMode, async () => {
    writeCheckpoint(join(dir, 'sa.safetensors'), 3, true);
    writeCheckpoint(join(dir, 'sb.safetensors'), 4, true);
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const a = readCheckpoint(join(dir, 'sa.safetensors'), ds.train.shape),
      b = readCheckpoint(join(dir, 'sb.safetensors'), ds.train.shape);
    expect(a.states?.length).toBe(2);
    const all = Array.from({ length: ds.test.n }, (_, i) => i);
    const own = async (c: typeof a) => {
      const m = manifoldModel(gpu, spec, [c], 'running');
      const r = await evaluateOnImages(gpu, m, Float32Array.of(1), ds.test, all);
      m.dispose();
      return r.loss[0];
    };
    const opts = {
      x: '0:1:2',
      norm: 'filter' as const,
      ignoreBiasBn: false,
      bnStats: 'running' as const,
      seed: 1,
      images: 0,
      logScale: false,
      lossMax: 5,
    };
    const st = await runInterpolate(gpu, a, b, ds, { ...opts, dirType: 'states' }, join(dir, 'st'));
    const wt = await runInterpolate(gpu, a, b, ds, { ...opts, dirType: 'weights' }, join(dir, 'wt'));
    const la = await own(a),
      lb = await own(b);
    expect(Math.abs(st.test_loss[0] - la)).toBeLessThan(1e-5);
    expect(Math.abs(st.test_loss[1] - lb)).toBeLessThan(1e-5);
    expect(Math.abs(wt.test_loss[0] - la)).toBeLessThan(1e-5);
    expect(Math.abs(wt.test_loss[1] - lb)).toBeGreaterThan(1e-3); // B's weights with A's statistics
  });
});

// 2-D surfaces: the centre equals the checkpoint's own loss, and an interrupted run resumed from its partial
// files ends with the same grid as an uninterrupted one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { readNpy, readSafetensors, safetensorsBytes } from '../src/data/formats.ts';
import { readDirections } from '../src/landscape/directions.ts';
import { Model } from '../src/models/model.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { evaluateOnImages } from '../src/models/run.ts';
import { readCheckpoint } from '../src/landscape/interpolate.ts';
import { runSurface, type SurfaceOptions } from '../src/landscape/surface.ts';
import { Interrupted } from '../src/run/interrupted.ts';
import { testGpu, writeIdx, writeInitCheckpoint } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-surf-'));
const data = join(dir, 'data');
const spec = modelSpec('tiny');
beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(data);
  writeIdx(join(data, 'train'), 60, 1);
  writeIdx(join(data, 't10k'), 20, 2);
  writeInitCheckpoint(join(dir, 'm.safetensors'), 'tiny', 4);
});
afterAll(() => gpu?.destroy());

describe('surface', () => {
  it('resumes from its partial files and ends like an uninterrupted run; the centre is the checkpoint', async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const a = readCheckpoint(join(dir, 'm.safetensors'), ds.train.shape);
    const o: SurfaceOptions = {
      xs: [-1, -0.5, 0, 0.5, 1],
      ys: [-1, 0, 1],
      split: 'train',
      images: 0,
      norm: 'filter',
      ignoreBiasBn: true,
      dirType: 'weights',
      bnStats: 'batch',
      seed: 5,
      block: 4,
    };
    const full = await runSurface(gpu, a, [null, null], ds, o, join(dir, 'full'));
    let blocks = 0;
    await expect(
      runSurface(gpu, a, [null, null], ds, o, join(dir, 'part'), { shouldStop: () => ++blocks >= 2 }),
    ).rejects.toThrow(Interrupted);
    const partial = readNpy(join(dir, 'part', 'surface_loss.npy')).data;
    expect(partial.filter(Number.isNaN).length).toBe(15 - 8);
    const resumed = await runSurface(gpu, a, [null, null], ds, o, join(dir, 'part'));
    expect(Array.from(resumed.loss)).toEqual(Array.from(full.loss));
    expect(Array.from(resumed.acc)).toEqual(Array.from(full.acc));
    const m = new Model(gpu, spec.layers, 1, a.weights);
    const own = await evaluateOnImages(
      gpu,
      m,
      Float32Array.of(1),
      ds.train,
      Array.from({ length: ds.train.n }, (_, i) => i),
    );
    m.dispose();
    expect(Math.abs(full.loss[1 * 5 + 2] - own.loss[0])).toBeLessThan(1e-5);
    expect(existsSync(join(dir, 'full', 'surface_heatmap.png'))).toBe(true);
  });
});

describe('surface resume', () => {
  it('into the same --out with another checkpoint of the architecture, or other targets, is refused', async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    writeInitCheckpoint(join(dir, 'm2.safetensors'), 'tiny', 9);
    const a = readCheckpoint(join(dir, 'm.safetensors'), ds.train.shape),
      b = readCheckpoint(join(dir, 'm2.safetensors'), ds.train.shape);
    const o: SurfaceOptions = {
      xs: [-1, 1],
      ys: [0, 1],
      split: 'train',
      images: 8,
      norm: 'filter',
      ignoreBiasBn: true,
      dirType: 'weights',
      bnStats: 'batch',
      seed: 3,
      block: 4,
    };
    const out = join(dir, 'checkpoints');
    await runSurface(gpu, a, [null, null], ds, o, out);
    const other = /holds a surface with other settings \(grid, images, directions, seed, model or checkpoint\)/;
    await expect(runSurface(gpu, b, [null, null], ds, o, out)).rejects.toThrow(other);
    await expect(runSurface(gpu, a, [b, null], ds, o, out)).rejects.toThrow(other);
    const meta = JSON.parse(readFileSync(join(out, 'surface_meta.json'), 'utf8'));
    expect(meta).toMatchObject({ modelFile: a.path, targets: [null, null] });
    // the same checkpoint again resumes (nothing left to do)
    await runSurface(gpu, a, [null, null], ds, o, out);
  });
});

describe('surface directions', () => {
  const blockPoint =
    'a block point equals that point evaluated alone; --dir-file directions reproduce the surface; another ' +
    'architecture is named';
  it(blockPoint, async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const a = readCheckpoint(join(dir, 'm.safetensors'), ds.train.shape);
    const o: SurfaceOptions = {
      xs: [-1, 0, 1],
      ys: [-1, 1],
      split: 'train',
      images: 0,
      norm: 'filter',
      ignoreBiasBn: true,
      dirType: 'weights',
      bnStats: 'batch',
      seed: 8,
      block: 6,
    };
    const first = await runSurface(gpu, a, [null, null], ds, o, join(dir, 'd1'));
    const [dx, dy] = readDirections(join(dir, 'd1', 'directions.safetensors'), spec.layers, ['x/', 'y/']);
    // the corner (x = 1, y = -1) alone, with materialized weights
    const m = new Model(
      gpu,
      spec.layers,
      1,
      a.weights.map((w, i) => w.map((v, j) => v + dx.weights[i][j] - dy.weights[i][j])),
    );
    const own = await evaluateOnImages(
      gpu,
      m,
      Float32Array.of(1),
      ds.train,
      Array.from({ length: ds.train.n }, (_, i) => i),
    );
    m.dispose();
    expect(Math.abs(first.loss[2] - own.loss[0])).toBeLessThan(1e-5);
    const again = await runSurface(gpu, a, [null, null], ds, { ...o, seed: 99, directions: [dx, dy] }, join(dir, 'd2'));
    // seed 99 would draw other directions (and another image order: float sums differ in the last bits)
    again.loss.forEach((l, k) => expect(Math.abs(l - first.loss[k])).toBeLessThan(1e-5));
    // tiny's tensors under another model's name
    const t = readSafetensors(join(dir, 'm.safetensors')).tensors;
    writeFileSync(join(dir, 'other.safetensors'), safetensorsBytes(t, { model: 'small', bn: 'false', skip: 'false' }));
    expect(() => readCheckpoint(join(dir, 'other.safetensors'), ds.train.shape)).toThrow(
      /other\.safetensors: tensor \S+ (of model small missing|has \d+ values)/,
    );
  });
});

describe('surface shards', () => {
  it('n shard processes merged equal one unsharded run', async () => {
    const { spawn } = await import('node:child_process');
    const { createRequire } = await import('node:module');
    const tsx = createRequire(import.meta.url).resolve('tsx/cli');
    const cli = join(import.meta.dirname, '..', 'src', 'cli.ts');
    const args = (out: string, extra: string[] = []) => [
      tsx,
      cli,
      'surface',
      '--model-file',
      join(dir, 'm.safetensors'),
      '--data',
      data,
      '--x',
      '-1:1:5',
      '--y',
      '-1:1:3',
      '--images',
      'all',
      '--block',
      '4',
      '--out',
      out,
      ...extra,
    ];
    const run = (a: string[]) =>
      new Promise<number | null>((res) => spawn(process.execPath, a, { stdio: 'ignore' }).on('exit', (c) => res(c)));
    const codes = await Promise.all([
      run(args(join(dir, 'one'))),
      run(args(join(dir, 's0'), ['--shard', '0/2'])),
      run(args(join(dir, 's1'), ['--shard', '1/2'])),
    ]);
    expect(codes).toEqual([0, 0, 0]);
    expect(existsSync(join(dir, 's0', 'surface_heatmap.png'))).toBe(false);
    const { mergeSurfaces } = await import('../src/landscape/surface.ts');
    await expect(mergeSurfaces([join(dir, 's0')], join(dir, 'merged'))).rejects.toThrow(
      /7 of 15 points are in none of the shards/,
    );
    const merged = await mergeSurfaces([join(dir, 's0'), join(dir, 's1')], join(dir, 'merged'));
    expect(Array.from(merged.loss)).toEqual(Array.from(readNpy(join(dir, 'one', 'surface_loss.npy')).data));
    expect(existsSync(join(dir, 'merged', 'surface_heatmap.png'))).toBe(true);
  });
});

describe('contours', () => {
  it('marching squares puts the level set of r^2 on the circle', async () => {
    const { contourSegments } = await import('../src/viz/contour.ts');
    const xs = Array.from({ length: 41 }, (_, i) => -1 + i / 20),
      ys = xs;
    const v = Float32Array.from({ length: 41 * 41 }, (_, k) => xs[k % 41] ** 2 + ys[Math.floor(k / 41)] ** 2);
    const segs = contourSegments(v, xs, ys, [0.25]);
    expect(segs.length).toBeGreaterThan(40);
    for (const s of segs)
      for (const [x, y] of [
        [s.x1, s.y1],
        [s.x2, s.y2],
      ])
        expect(Math.abs(Math.hypot(x, y) - 0.5)).toBeLessThan(0.01);
  });
});

describe('VTK export', () => {
  it('writes a PolyData with a point per grid node and two triangles per cell, clipped at zmax', async () => {
    const { surfaceVtp } = await import('../src/viz/vtk.ts');
    const xml = surfaceVtp([0, 1, 2], [0, 1], [1, 2, 30, 4, 5, 60], { zmax: 10 });
    expect(xml).toMatch(/NumberOfPoints="6"/);
    expect(xml).toMatch(/NumberOfPolys="4"/);
    expect(xml).toMatch(/<DataArray type="Float32" Name="z" format="ascii">1 2 10 4 5 10<\/DataArray>/);
    expect(xml).toMatch(/Name="offsets" format="ascii">3 6 9 12</);
  });
});

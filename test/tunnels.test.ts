// Radial tunnels: every ray and distance evaluated in one batch equals evaluating that point alone; widths by
// interpolated crossing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { randn, rng } from '../src/engine/random.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { Model } from '../src/models/model.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { evaluateOnImages } from '../src/models/run.ts';
import { readCheckpoint } from '../src/models/checkpoint.ts';
import { TUNNELS, tunnelsCommand } from '../src/structure/tunnels.ts';
import { crossing, runTunnels } from '../src/structure/tunnel-rays.ts';
import { parseCommand } from '../src/options/index.ts';
import { testGpu, writeIdx, writeInitCheckpoint } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-tun-'));
const data = join(dir, 'data');
const spec = modelSpec('simplecnn', { dropout: 0.25 });
beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(data);
  writeIdx(join(data, 'train'), 30, 1);
  writeIdx(join(data, 't10k'), 10, 2);
  writeInitCheckpoint(join(dir, 'm.safetensors'), 'simplecnn', 2, { dropout: 0.25 });
});
afterAll(() => gpu?.destroy());

describe('tunnels', () => {
  it('crossing interpolates the first exceedance', () => {
    expect(crossing([0, 1, 2, 3], [1, 1.2, 1.8, 3], 1.5)).toBeCloseTo(1.5, 12);
    expect(crossing([0, 1], [1, 1.1], 2)).toBeNull();
  });

  const raysInOneBatch =
    'rays x distances in one batch equal single-point evaluations (SimpleCNN with dropout off in evaluation)';
  it(raysInOneBatch, async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const ck = readCheckpoint(join(dir, 'm.safetensors'), ds.train.shape);
    expect(ck.dropout).toBe(0.25);
    const o = { rays: 3, points: 4, maxFrac: 0.5, delta: 0.1, images: 30, seed: 5, split: 'train' as const };
    const t = await runTunnels(gpu, ck, ds, o);
    // rebuild ray 2 as runTunnels draws it, and evaluate its third point alone
    const sizes = ck.weights.map((w) => w.length);
    const r = rng(o.seed);
    let dirs: Float32Array[] = [];
    for (let q = 0; q < 3; q++) {
      const d = sizes.map((s) => Float32Array.from({ length: s }, () => randn(r)));
      const n = Math.sqrt(d.reduce((a, x) => a + x.reduce((b, v) => b + v * v, 0), 0));
      dirs = d.map((x) => x.map((v) => v / n));
    }
    const a = t.a[2];
    const m = new Model(
      gpu,
      spec.layers,
      1,
      ck.weights.map((w, i) => w.map((v, j) => v + a * dirs[i][j])),
    );
    const all = Array.from({ length: ds.train.n }, (_, i) => i);
    const single = await evaluateOnImages(gpu, m, Float32Array.of(1), ds.train, all);
    m.dispose();
    expect(Math.abs(t.loss[2][2] - single.loss[0])).toBeLessThan(1e-5);
    expect(t.loss.every((ray) => Math.abs(ray[0] - t.L0) < 1e-6)).toBe(true);
  }, 60_000);

  const commandOutputs =
    'the command writes config.json (settings, adapter, commit), metrics.json, tunnels.json and the plot; bad flags ' +
    'are named';
  it(commandOutputs, async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const out = join(dir, 'cmd');
    const argv = ['--model-file', join(dir, 'm.safetensors'), '--rays', '2', '--points', '3', '--images', '10'];
    argv.push('--max', '2');
    const m = await tunnelsCommand(gpu, ds, data, parseCommand(TUNNELS, argv).options, out, () => {});
    for (const f of ['config.json', 'metrics.json', 'tunnels.json', 'tunnels.png'])
      expect(existsSync(join(out, f)), f).toBe(true);
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ kind: 'tunnels', sweep: false, rays: 2, points: 3, images: 10, maxFrac: 2 });
    expect(cfg.adapter).toBe(gpu.adapterInfo);
    expect(typeof cfg.commit).toBe('string');
    expect(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'))).toEqual(JSON.parse(JSON.stringify(m)));
    expect(() => parseCommand(TUNNELS, ['--rays', '0'])).toThrow(/--rays: an integer >= 1 expected, got "0"/);
    const noFile = /--model-file FILE .* or --sweep is required/;
    await expect(tunnelsCommand(gpu, ds, data, {}, out, () => {})).rejects.toThrow(noFile);
  }, 60_000);

  const sweepTasks =
    '--sweep as job-array tasks: each task trains every n-th distinct optimum, --gather names the missing ones, ' +
    'then draws the same metrics.json as one process';
  it(sweepTasks, async () => {
    const ds = { train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') };
    const small = ['--sweep', '--sweep-epochs', '1', '--sweep-images', '30', '--rays', '2', '--points', '3'];
    small.push('--images', '10', '--max', '2');
    const arr = join(dir, 'sweep-tasks');
    const run = (g: Gpu | null, ...extra: string[]) =>
      tunnelsCommand(
        g,
        g ? ds : null,
        data,
        parseCommand(TUNNELS, [...small, '--out', arr, ...extra]).options,
        arr,
        () => {},
      );
    const optima = () =>
      readdirSync(join(arr, 'optima')).filter((d) => existsSync(join(arr, 'optima', d, 'tunnel-widths.json')));
    expect(await run(gpu, '--task', '1/4')).toMatchObject({ task: { i: 1, n: 4 } });
    // 10 distinct optima (the base configuration is in all four factors); task 1/4 owns the 2nd, 6th and 10th
    expect(optima().sort()).toEqual([
      'batch128_lr0.03_wd0_dropout0',
      'batch128_lr0.05_wd0.005_dropout0',
      'batch512_lr0.05_wd0_dropout0',
    ]);
    await expect(run(null, '--gather')).rejects.toThrow(
      /tunnels --sweep --gather: 7 of 10 steps in .* are not done: optima\/batch128_lr0.01/,
    );
    expect(existsSync(join(arr, 'metrics.json'))).toBe(false);
    await expect(run(gpu, '--task', '1/4', '--rays', '3')).rejects.toThrow(/started with rays 2, this command has 3/);
    for (const t of ['0/4', '2/4', '3/4']) await run(gpu, '--task', t);
    expect(optima()).toHaveLength(10);
    const g = (await run(null, '--gather')) as { sweep: { factor: string; width: number }[] };
    expect(g.sweep).toHaveLength(13);
    const gathered = readFileSync(join(arr, 'metrics.json'), 'utf8');
    expect(existsSync(join(arr, 'sweep.png'))).toBe(true);
    // one process from scratch trains the same optima to the same widths: the same metrics.json
    const one = join(dir, 'sweep-one');
    await tunnelsCommand(gpu, ds, data, parseCommand(TUNNELS, [...small, '--out', one]).options, one, () => {});
    expect(readFileSync(join(one, 'metrics.json'), 'utf8')).toBe(gathered);
    await expect(run(gpu, '--task', '0/2', '--gather')).rejects.toThrow(/separate steps/);
    const noSweep = parseCommand(TUNNELS, ['--task', '0/2', '--out', arr]).options;
    await expect(tunnelsCommand(gpu, ds, data, noSweep, arr, () => {})).rejects.toThrow(/--task needs --sweep/);
  }, 240_000);
});

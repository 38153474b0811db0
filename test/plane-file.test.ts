// A plane file read back (src/mpo/plane-file.ts, `loss-atlas plane`): the plane of an mpo run evaluates to that run's
// own grid; a colour model's plane is evaluated on CIFAR-10; files that are not planes are refused, naming the file.
// (The web page's planes: test/web.test.ts.)
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type NamedTensor, readNpy, safetensorsBytes } from '../src/data/formats.ts';
import { rng } from '../src/engine/gradcheck.ts';
import { paramShapes } from '../src/models/graph.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { parsePlane } from '../src/mpo/plane-file.ts';
import { CLI_ARGS, fashionFixture, writeCifar } from './helpers.ts';

const { dir, data } = fashionFixture('la-plane-');
const run = (args: string[]) => spawnSync(process.execPath, [...CLI_ARGS, ...args], { encoding: 'utf8' });

describe('loss-atlas plane', () => {
  it("an mpo run's plane.safetensors gives that run's grid and scores", () => {
    const mpo = join(dir, 'mpo');
    const flags = ['--quick', '--model', 'tiny', '--grid', '6', '--mask', 'plus', '--steps', '6', '--batch', '16'];
    // the run evaluates a random pick of images; --eval-images all takes them all, as plane's --images does
    const r1 = run(['mpo', ...flags, '--eval-images', 'all', '--pad', '1', '--data', data, '--out', mpo]);
    expect(r1.status, r1.stderr).toBe(0);
    const out = join(dir, 'plane');
    const r2 = run([
      'plane',
      join(mpo, 'plane.safetensors'),
      '--images',
      '1000',
      '--pad',
      '1',
      '--data',
      data,
      '--out',
      out,
    ]);
    expect(r2.status, r2.stderr).toBe(0);
    const a = readNpy(join(mpo, 'grid_test.npy')),
      b = readNpy(join(out, 'grid_test.npy'));
    expect(b.shape).toEqual(a.shape);
    for (let k = 0; k < a.data.length; k++) expect(Math.abs(b.data[k] - a.data[k])).toBeLessThan(1e-4);
    const ma = JSON.parse(readFileSync(join(mpo, 'metrics.json'), 'utf8')),
      mb = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(mb.test.acc_diff).toBeCloseTo(ma.test.acc_diff, 5);
    expect(mb.test.agreement).toBeCloseTo(ma.test.agreement, 5);
  }, 180_000);

  it('evaluates a plane of the cifar net on CIFAR-10 (the data set its model takes), not on Fashion-MNIST', () => {
    const cifar = join(dir, 'cifar');
    mkdirSync(cifar);
    for (let i = 1; i <= 5; i++) writeCifar(cifar, `data_batch_${i}.bin`, 2, i);
    writeCifar(cifar, 'test_batch.bin', 3, 9);
    const r = rng(5);
    const st: Record<string, NamedTensor> = { scale: { shape: [1], data: Float32Array.of(0.1) } };
    for (const p of paramShapes(modelSpec('cifar').layers))
      for (const part of ['origin', 'right', 'up']) {
        const n = p.shape.reduce((a, b) => a * b, 1);
        st[`${part}/${p.name}`] = { shape: p.shape, data: Float32Array.from({ length: n }, () => 0.05 * (r() - 0.5)) };
      }
    const f = join(dir, 'cifar-plane.safetensors');
    writeFileSync(f, safetensorsBytes(st, { model: 'cifar', bn: 'false', grid: '1x2', mask_cells: '10' }));
    const out = join(dir, 'cifar-out');
    const res = spawnSync(process.execPath, [...CLI_ARGS, 'plane', f, '--data', cifar, '--pad', '0', '--out', out], {
      encoding: 'utf8',
      env: { ...process.env, LOSS_ATLAS_CIFAR10_RECORDS: 'any' },
    });
    expect(res.status, res.stderr).toBe(0);
    const g = readNpy(join(out, 'grid_test.npy'));
    expect(g.shape).toEqual([1, 2, 2]);
    // mean CE over the 3 test images near ln 10 for near-zero weights; accuracy a multiple of 1/3
    for (const k of [0, 2]) expect(Math.abs(g.data[k] - Math.log(10))).toBeLessThan(0.5);
    for (const k of [1, 3]) expect(Math.abs(g.data[k] * 3 - Math.round(g.data[k] * 3))).toBeLessThan(1e-5);
  }, 120_000);

  it('refuses what is not a plane, naming the file', () => {
    const f = join(dir, 'not-a-plane.safetensors');
    const one = { shape: [1], data: Float32Array.of(1) };
    writeFileSync(f, safetensorsBytes({ scale: one }, { grid: '4x4' }));
    expect(() => parsePlane(readFileSync(f), f)).toThrow(`${f}: no model in the metadata`);
    writeFileSync(f, safetensorsBytes({ scale: one }, { model: 'tiny', grid: 'big' }));
    expect(() => parsePlane(readFileSync(f), f)).toThrow(/not-a-plane\.safetensors: grid "big" in the metadata: HxW/);
    writeFileSync(f, safetensorsBytes({ scale: one }, { model: 'tiny', grid: '2x2', mask_cells: '012' }));
    expect(() => parsePlane(readFileSync(f), f)).toThrow(/mask_cells: 4 of 0 and 1 expected/);
    writeFileSync(f, safetensorsBytes({ scale: one }, { model: 'tiny', grid: '2x2' }));
    const r = run(['plane', f, '--data', data, '--out', join(dir, 'bad')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/not-a-plane\.safetensors: tensor origin\/\S+ of model tiny missing/);
  }, 60_000);
});

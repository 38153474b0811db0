// The MPO pipeline end to end on a tiny net and data files the test writes itself: load, train, evaluate,
// write every output, interrupt and resume (same result), and the errors bad input gets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Gpu } from '../src/engine/device.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { loadCifar10 } from '../src/data/cifar10.ts';
import { readNpy, readSafetensors } from '../src/data/formats.ts';
import { runMpo, type MpoConfig } from '../src/mpo/mpo.ts';
import { Interrupted } from '../src/run/interrupted.ts';
import { MPO, loadData, mpoConfig } from '../src/mpo/command.ts';
import { parseCommand } from '../src/options/index.ts';
import { iconMask, loadMask, ternary } from '../src/mpo/masks.ts';
import { testGpu, writeCifar, writeIdx } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-mpo-'));
const fmnist = join(dir, 'fmnist'),
  cifar = join(dir, 'cifar');

// The CIFAR-10 files below hold a few records each (a real batch holds 10,000).
process.env.LOSS_ATLAS_CIFAR10_RECORDS = 'any';

beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(fmnist);
  mkdirSync(cifar);
  writeIdx(join(fmnist, 'train'), 120, 1);
  writeIdx(join(fmnist, 't10k'), 40, 2);
  for (let i = 1; i <= 5; i++) writeCifar(cifar, `data_batch_${i}.bin`, 6, i);
  writeCifar(cifar, 'test_batch.bin', 8, 9);
});
afterAll(() => gpu?.destroy());

function tinyConfig(over: Partial<MpoConfig> = {}): MpoConfig {
  return {
    ...mpoConfig({ quick: true, data: fmnist }),
    experiment: 'test',
    model: 'tiny',
    mask: 'plus',
    grid: 6,
    steps: 6,
    batch: 16,
    cellsPerStep: 3,
    evalImages: 10,
    pad: 1,
    checkpointEvery: 2,
    logEvery: 1,
    ...over,
  };
}

describe('data readers', () => {
  it('reads IDX and CIFAR-10 files, normalized like the reference', () => {
    const f = loadFashionMnist(fmnist, 'train');
    expect(f.n).toBe(120);
    expect(Math.max(...f.images.subarray(0, 784))).toBeLessThanOrEqual(1);
    expect(Array.from(f.labels.subarray(0, 3))).toEqual([0, 1, 2]);
    const c = loadCifar10(cifar, 'train');
    expect(c.n).toBe(30);
    expect(c.shape).toEqual([3, 32, 32]);
    const raw = readFileSync(join(cifar, 'data_batch_1.bin'));
    expect(c.images[0]).toBeCloseTo((raw[1] / 255 - 0.4914) / 0.2023, 5);
    expect(c.images[1024]).toBeCloseTo((raw[1025] / 255 - 0.4822) / 0.1994, 5);
  });

  it('reads unpacked IDX files (no .gz) the same, and prefers the .gz when both are there', () => {
    const d = join(dir, 'unpacked');
    mkdirSync(d);
    for (const f of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'])
      writeFileSync(join(d, f), gunzipSync(readFileSync(join(fmnist, `${f}.gz`))));
    const a = loadFashionMnist(fmnist, 'train'),
      b = loadFashionMnist(d, 'train');
    expect(b.n).toBe(a.n);
    expect(Array.from(b.images)).toEqual(Array.from(a.images));
    expect(Array.from(b.labels)).toEqual(Array.from(a.labels));
    writeFileSync(join(d, 'train-labels-idx1-ubyte.gz'), gzipSync(Buffer.from([0, 0, 8, 1, 0, 0, 0, 1, 3])));
    expect(() => loadFashionMnist(d, 'train')).toThrow(
      /train-labels-idx1-ubyte\.gz: 120 labels expected \(one per image\), found 1/,
    );
  });

  it('names the file, what was expected and what was found', () => {
    writeFileSync(join(dir, 'bad-images-idx3-ubyte.gz'), gzipSync(Buffer.from([0, 0, 9, 3, 0, 0, 0, 1])));
    expect(() => loadFashionMnist(dir, 'bad' as 'train')).toThrow(
      /bad-images-idx3-ubyte\.gz: IDX magic 0x00000803 .* found 0x00000903/,
    );
    writeFileSync(
      join(dir, 'trunc-images-idx3-ubyte.gz'),
      readFileSync(join(fmnist, 'train-images-idx3-ubyte.gz')).subarray(0, 1000),
    );
    expect(() => loadFashionMnist(dir, 'trunc' as 'train')).toThrow(
      /trunc-images-idx3-ubyte\.gz: corrupt or truncated gzip/,
    );
    expect(() => loadFashionMnist(join(dir, 'nowhere'), 'train')).toThrow(
      /nowhere\/train-images-idx3-ubyte\.gz: file not found/,
    );
    const c2 = join(dir, 'cifar-bad');
    mkdirSync(c2);
    for (let i = 1; i <= 5; i++) writeFileSync(join(c2, `data_batch_${i}.bin`), Buffer.alloc(3073 * 2 + 5));
    expect(() => loadCifar10(c2, 'train')).toThrow(
      /data_batch_1\.bin: 6151 bytes is not a whole number of 3073-byte records/,
    );
    expect(() => loadCifar10(join(dir, 'none'), 'test')).toThrow(
      /test_batch\.bin: file not found\. Run `npm run data:cifar10`/,
    );
  });
});

describe('masks', () => {
  const iconsAndTernary =
    'built-in icons are binary pictures with boundary cells, and the ternary conversion follows the reference';
  it(iconsAndTernary, async () => {
    const m = iconMask('heart', 12);
    const white = m.data.reduce((a, v) => a + v, 0);
    expect(white).toBeGreaterThan(20);
    expect(white).toBeLessThan(120);
    const t = ternary({ H: 3, W: 3, data: Uint8Array.from([1, 1, 1, 1, 1, 1, 0, 0, 0]), name: 't' });
    // row 0 is white with all (edge-clipped) neighbours white: ignored; row 1 borders black: +1; row 2 black
    // next to white: -1
    expect(Array.from(t)).toEqual([0, 0, 0, 1, 1, 1, -1, -1, -1]);
    await expect(loadMask('grid:0', 10)).rejects.toThrow(/grid:N needs an integer 1 <= N <= 50/);
    await expect(loadMask('no-such-icon', 10)).rejects.toThrow(/not a built-in icon/);
    await expect(loadMask(join(dir, 'missing.png'), 10)).rejects.toThrow(/missing\.png: file not found/);
    writeFileSync(join(dir, 'notimage.png'), 'hello');
    await expect(loadMask(join(dir, 'notimage.png'), 10)).rejects.toThrow(/notimage\.png: not a readable image/);
    const sharp = (await import('sharp')).default;
    await sharp({ create: { width: 20, height: 20, channels: 3, background: '#ffffff' } })
      .png()
      .toFile(join(dir, 'white.png'));
    await expect(loadMask(join(dir, 'white.png'), 10)).rejects.toThrow(
      /white\.png .* has 0 white and 0 black boundary cells/,
    );
  });

  it('reads image masks: the alpha channel when there is one, else luminance', async () => {
    const sharp = (await import('sharp')).default;
    // a transparent PNG with an opaque black disc: alpha decides (the disc is white in the mask)
    const disc = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">' +
        '<circle cx="20" cy="20" r="12" fill="black"/></svg>',
    );
    await sharp(disc).png().toFile(join(dir, 'disc.png'));
    const a = await loadMask(join(dir, 'disc.png'), 10);
    expect(a.data[5 * 10 + 5]).toBe(1);
    expect(a.data[0]).toBe(0);
    // a JPEG (no alpha) with a white square on black: luminance decides
    await sharp({ create: { width: 40, height: 40, channels: 3, background: '#000000' } })
      .composite([
        { input: { create: { width: 20, height: 20, channels: 3, background: '#ffffff' } }, left: 0, top: 0 },
      ])
      .jpeg()
      .toFile(join(dir, 'sq.jpg'));
    const j = await loadMask(join(dir, 'sq.jpg'), 10);
    expect(j.data[1 * 10 + 1]).toBe(1);
    expect(j.data[8 * 10 + 8]).toBe(0);
  });
});

describe('MPO pipeline', () => {
  const trainsAndResumes =
    'trains, evaluates, writes every output; an interrupted and resumed run ends like an uninterrupted one';
  it(trainsAndResumes, async () => {
    const cfg = tinyConfig();
    const data = await loadData(cfg);
    const a = join(dir, 'run-a'),
      b = join(dir, 'run-b');
    const ra = await runMpo(gpu, cfg, data, a, false);
    for (const f of [
      'config.json',
      'metrics.json',
      'mask.png',
      'loss_train.png',
      'loss_test.png',
      'acc_train.png',
      'acc_test.png',
      'summary.png',
      'grid_train.npy',
      'grid_test.npy',
      'plane.safetensors',
      'log.jsonl',
      'checkpoint/state.json',
    ]) {
      expect(existsSync(join(a, f)), f).toBe(true);
    }
    const m = JSON.parse(readFileSync(join(a, 'metrics.json'), 'utf8'));
    expect(Object.keys(m.test).sort()).toEqual(['acc_diff', 'agreement', 'loss_diff', 'mean_bad_acc', 'mean_good_acc']);
    expect(m.steps).toBe(6);
    const g = readNpy(join(a, 'grid_test.npy'));
    expect(g.shape).toEqual([8, 8, 2]);
    expect(g.data.every(Number.isFinite)).toBe(true);
    const plane = readSafetensors(join(a, 'plane.safetensors'));
    expect(Object.keys(plane.tensors).filter((k) => k.startsWith('up/')).length).toBe(6);
    expect(plane.tensors['origin/0.conv.weight'].shape).toEqual([4, 1, 3, 3]);
    expect(
      readFileSync(join(a, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).step),
    ).toEqual([1, 2, 3, 4, 5, 6]);
    const cfgOut = JSON.parse(readFileSync(join(a, 'config.json'), 'utf8'));
    expect(cfgOut.adapter).toBe(gpu.adapterInfo);
    expect(cfgOut.commit).toBeTypeOf('string');

    // interrupted after step 3 (checkpoint at 3), then resumed
    let n = 0;
    await expect(runMpo(gpu, cfg, data, b, false, { shouldStop: () => ++n >= 3 })).rejects.toThrow(Interrupted);
    expect(existsSync(join(b, 'metrics.json'))).toBe(false); // nothing partial is marked complete
    const rb = await runMpo(gpu, cfg, data, b, true);
    for (const split of ['train', 'test'] as const) {
      for (const k of Object.keys(ra.metrics[split]) as (keyof typeof ra.metrics.train)[]) {
        expect(Math.abs(rb.metrics[split][k] - ra.metrics[split][k]), `${split}.${k}`).toBeLessThanOrEqual(1e-5);
      }
    }
    const pa = readSafetensors(join(a, 'plane.safetensors')).tensors,
      pb = readSafetensors(join(b, 'plane.safetensors')).tensors;
    for (const k of Object.keys(pa)) expect(Array.from(pb[k].data)).toEqual(Array.from(pa[k].data));
    const logOf = (d: string) =>
      readFileSync(join(d, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => {
          const { seconds: _s, ...rest } = JSON.parse(l);
          return rest;
        });
    expect(logOf(b)).toEqual(logOf(a));
  });

  it('runs on CIFAR-10 files with batch norm', async () => {
    const cfg = tinyConfig({
      dataset: 'cifar10',
      data: cifar,
      bn: true,
      steps: 2,
      batch: 6,
      evalImages: 4,
      grid: 5,
      mask: 'diamond',
      pad: 0,
    });
    const r = await runMpo(gpu, cfg, await loadData(cfg), join(dir, 'run-c'), false);
    expect(r.metrics.steps).toBe(2);
    expect(Number.isFinite(r.metrics.test.agreement)).toBe(true);
  });

  it('rejects bad flag values with the flag named', () => {
    const parse = (...argv: string[]) => parseCommand(MPO, argv).options;
    expect(() => parse('--steps', '-3')).toThrow(/--steps: an integer >= 0 expected, got "-3"/);
    expect(() => parse('--lr', 'fast')).toThrow(/--lr: a number/);
    expect(() => parse('--model', 'resnet9000')).toThrow(/--model: one of tiny, .* expected, got "resnet9000"/);
    expect(() => parse('--bogus', '1')).toThrow(/unknown flag --bogus/);
    // the parsed flags over the preset
    const c = mpoConfig(parse('--quick', '--steps', '5', '--eval-images', 'all', '--bn', '--data', fmnist));
    expect(c).toMatchObject({ experiment: 'quick', steps: 5, evalImages: 0, bn: true, batch: 16, data: fmnist });
    expect(mpoConfig(parse('--model', 'cifar')).dataset).toBe('cifar10');
  });

  it('stops with a clear error when the loss is not finite', async () => {
    const cfg = tinyConfig();
    const data = await loadData(cfg);
    data.train.images.fill(NaN);
    await expect(runMpo(gpu, cfg, data, join(dir, 'run-nan'), false)).rejects.toThrow(
      /diverged at step 1: .*not finite/,
    );
    expect(existsSync(join(dir, 'run-nan', 'metrics.json'))).toBe(false);
  });
});

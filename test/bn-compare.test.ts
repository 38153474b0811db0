// bn-compare end to end on a tiny net and IDX files the test writes: every run, the table, the plot, and a
// second invocation that keeps the finished runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { BN_COMPARE, bnCompare, bnCompareConfig } from '../src/mpo/bn-compare.ts';
import { UsageError, parseCommand, renderHelp } from '../src/options/index.ts';
import { readRunConfig } from '../src/run/run-info.ts';
import { testGpu, writeIdx } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-bnc-'));
beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(join(dir, 'data'));
  writeIdx(join(dir, 'data', 'train'), 64, 1);
  writeIdx(join(dir, 'data', 't10k'), 16, 2);
});
afterAll(() => gpu?.destroy());

describe('bn-compare', () => {
  it('writes runs, table and plot, and keeps finished runs when run again', async () => {
    const out = join(dir, 'cmp');
    const argv = ['--out', out, '--model', 'tiny', '--data', join(dir, 'data'), '--fills', '0.3,0.7', '--seeds', '1,2'];
    argv.push('--size', '8', '--steps', '2', '--eval-images', '4');
    // mpo flags given on the command line win over the CPU-sized defaults
    argv.push('--lr', '0.01', '--batch', '8', '--clamp', '3', '--cells-per-step', '2', '--pad', '1');
    argv.push('--checkpoint-every', '1', '--log-every', '2', '--neg-coef', '0.5', '--clip', '50');
    const flags = parseCommand(BN_COMPARE, argv).options;
    expect(await bnCompare(gpu, flags)).toBe(0);
    expect(readRunConfig(join(out, 'skip-p0.7-s2'), { kind: 'mpo' }).settings).toMatchObject({
      model: 'tiny',
      lr: 0.01,
      batch: 8,
      clamp: 3,
      cellsPerStep: 2,
      pad: 1,
      checkpointEvery: 1,
      logEvery: 2,
      negCoef: 0.5,
      clipNorm: 50,
      steps: 2,
      evalImages: 4,
      skip: true,
      mask: 'random:0.7:2:8',
    });
    // the comparison's own config.json
    expect(readRunConfig(out, { kind: 'bn-compare' }).settings).toMatchObject({
      fills: [0.3, 0.7],
      seeds: [1, 2],
      size: 8,
      lr: 0.01,
    });
    for (const f of [
      'bn_compare.png',
      'bn_compare_loss.png',
      'bn_compare.json',
      'bn_compare.md',
      'plain-p0.3-s1/metrics.json',
      'batch-norm-p0.7-s2/metrics.json',
      'skip-p0.3-s2/metrics.json',
    ])
      expect(existsSync(join(out, f)), f).toBe(true);
    const j = JSON.parse(readFileSync(join(out, 'bn_compare.json'), 'utf8'));
    expect(j.rows.map((r: { variant: string }) => r.variant)).toEqual(['plain', 'batch norm', 'skip']);
    expect(j.rows[0].byFill.map((b: { fill: number; runs: number[] }) => [b.fill, b.runs.length])).toEqual([
      [0.3, 2],
      [0.7, 2],
    ]);
    // loss_diff per run, as in each run's metrics.json
    const m = JSON.parse(readFileSync(join(out, 'plain-p0.3-s1', 'metrics.json'), 'utf8'));
    expect(j.rows[0].byFill[0].lossDiff.runs[0]).toBeCloseTo(m.test.loss_diff, 10);
    expect(readFileSync(join(out, 'bn_compare.md'), 'utf8')).toContain('test loss_diff');
    const t = statSync(join(out, 'plain-p0.3-s1', 'metrics.json')).mtimeMs;
    expect(await bnCompare(gpu, flags)).toBe(0);
    expect(statSync(join(out, 'plain-p0.3-s1', 'metrics.json')).mtimeMs).toBe(t);
  });
});

describe('bn-compare flags', () => {
  const parse = (...argv: string[]) => bnCompareConfig(parseCommand(BN_COMPARE, [...argv, '--data', 'd']).options);

  it('the CPU-sized and --full defaults, and every mpo flag given over them', () => {
    expect(parse()).toMatchObject({ model: 'squares-small', lr: 3e-3, batch: 16, cellsPerStep: 8, clamp: 5, pad: 0 });
    expect(parse('--full')).toMatchObject({ model: 'squares', lr: 3e-4, batch: 512, cellsPerStep: 50, steps: 11_800 });
    const given = ['--lr', '1e-3', '--clamp', '2', '--pad', '2', '--batch', '64', '--train-images', '100'];
    for (const full of [[], ['--full']]) {
      expect(parse(...full, ...given, '--warmup-epochs', '3', '--dataset', 'fashion-mnist')).toMatchObject({
        lr: 1e-3,
        clamp: 2,
        pad: 2,
        batch: 64,
        trainImages: 100,
        warmupEpochs: 3,
        dataset: 'fashion-mnist',
        data: 'd',
      });
    }
  });

  it('takes no flag it would ignore: --preset, --quick and --grid are refused, and --help does not list them', () => {
    for (const argv of [['--preset', 'quick'], ['--quick'], ['--grid', '12']]) {
      expect(() => parseCommand(BN_COMPARE, argv)).toThrow(UsageError);
    }
    const help = renderHelp(BN_COMPARE);
    for (const f of ['--preset', '--quick', '--grid ']) expect(help).not.toContain(f);
  });
});

describe('bn-compare as a job array', () => {
  it('--task i/n runs every n-th run in one --out; --gather names missing runs, equals one process', async () => {
    const base = ['--model', 'tiny', '--data', join(dir, 'data'), '--fills', '0.4', '--seeds', '1,2', '--size', '6'];
    base.push('--steps', '2', '--eval-images', '4', '--batch', '8', '--cells-per-step', '2', '--pad', '1');
    const one = join(dir, 'one'),
      arr = join(dir, 'array');
    const opts = (...extra: string[]) => parseCommand(BN_COMPARE, [...base, ...extra]).options;
    expect(await bnCompare(gpu, opts('--out', one))).toBe(0);
    // 3 variants x 1 fill x 2 seeds = 6 runs; task 1/4 takes runs 1 and 5
    expect(await bnCompare(gpu, opts('--out', arr, '--task', '1/4'))).toBe(0);
    const made = (d: string) =>
      ['plain-p0.4-s1', 'plain-p0.4-s2', 'batch-norm-p0.4-s1', 'batch-norm-p0.4-s2', 'skip-p0.4-s1', 'skip-p0.4-s2']
        .filter((r) => existsSync(join(d, r, 'metrics.json')))
        .join(' ');
    expect(made(arr)).toBe('plain-p0.4-s2 skip-p0.4-s2');
    expect(existsSync(join(arr, 'bn_compare.json'))).toBe(false);
    await expect(bnCompare(null, opts('--out', arr, '--gather'))).rejects.toThrow(
      /--gather: 4 of 6 runs in .* are not finished \(no metrics\.json\): .*plain-p0\.4-s1, .*batch-norm-p0\.4-s1/,
    );
    for (const t of ['0/4', '2/4', '3/4']) expect(await bnCompare(gpu, opts('--out', arr, '--task', t))).toBe(0);
    expect(await bnCompare(null, opts('--out', arr, '--gather'))).toBe(0);
    const rows = (d: string) => JSON.parse(readFileSync(join(d, 'bn_compare.json'), 'utf8')).rows;
    expect(rows(arr)).toEqual(rows(one));
    const md = (d: string) => readFileSync(join(d, 'bn_compare.md'), 'utf8');
    expect(md(arr)).toBe(md(one));
    await expect(bnCompare(null, opts('--gather'))).rejects.toThrow(UsageError);
    await expect(bnCompare(gpu, opts('--task', '0/2'))).rejects.toThrow(/--task needs --out DIR/);
  });
});

// bn-compare end to end on a tiny net and IDX files the test writes: every run, the table, the plot, and a
// second invocation that keeps the finished runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { BN_COMPARE, bnCompare } from '../src/mpo/bn-compare.ts';
import { parseCommand } from '../src/options/index.ts';
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
    const flags = parseCommand(BN_COMPARE, argv).options;
    expect(await bnCompare(gpu, flags)).toBe(0);
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

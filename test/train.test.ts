// loss-atlas train on a small net and IDX files the test writes: it learns, writes its files, and a run
// interrupted after an epoch and resumed ends with the same weights as one that was not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { readSafetensors } from '../src/data/formats.ts';
import { TRAIN, lrAt, runTrain, trainConfig } from '../src/landscape/train.ts';
import { parseCommand } from '../src/options/index.ts';
import { Interrupted } from '../src/run/interrupted.ts';
import { testGpu, writeIdx } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-train-'));
const data = join(dir, 'data');
beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(data);
  writeIdx(join(data, 'train'), 200, 1);
  writeIdx(join(data, 't10k'), 60, 2);
});
afterAll(() => gpu?.destroy());

const cfg = () =>
  trainConfig(
    { model: 'small', epochs: 4, batch: 20, lr: 0.05, milestones: [3], evalImages: 0, snapshots: true, data },
    () => data,
  );
const ds = () => ({ train: loadFashionMnist(data, 'train'), test: loadFashionMnist(data, 't10k') });

describe('train', () => {
  it('learns, follows the step schedule, writes checkpoints, snapshots and the final weights', async () => {
    const c = cfg();
    expect([0, 1, 2, 3].map((e) => lrAt(c, e))).toEqual([0.05, 0.05, 0.05, 0.05 * 0.1]);
    const out = join(dir, 'a');
    const m = await runTrain(gpu, c, ds(), out, false);
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log.map((l) => l.epoch)).toEqual([1, 2, 3, 4]);
    expect(log[3].lr).toBeCloseTo(0.005, 10);
    expect(log[3].train_loss).toBeLessThan(log[0].train_loss);
    expect(m.test_acc).toBeGreaterThan(0.3); // 10 classes, each a bright band: learnable
    for (const f of [
      'config.json',
      'metrics.json',
      'model.safetensors',
      'snapshots/epoch-1.safetensors',
      'snapshots/epoch-4.safetensors',
      'checkpoint/state.json',
    ])
      expect(existsSync(join(out, f)), f).toBe(true);
    expect(Object.keys(readSafetensors(join(out, 'model.safetensors')).tensors)).toContain('0.conv.weight');
  });

  it('resumed after an interruption, ends with the same weights', async () => {
    const c = cfg();
    const a = join(dir, 'a'),
      b = join(dir, 'b');
    let n = 0;
    await expect(runTrain(gpu, c, ds(), b, false, { shouldStop: () => ++n >= 2 })).rejects.toThrow(Interrupted);
    expect(existsSync(join(b, 'metrics.json'))).toBe(false);
    await runTrain(gpu, c, ds(), b, true);
    const wa = readSafetensors(join(a, 'model.safetensors')).tensors,
      wb = readSafetensors(join(b, 'model.safetensors')).tensors;
    for (const k of Object.keys(wa)) expect(Array.from(wb[k].data)).toEqual(Array.from(wa[k].data));
  });

  const bnStatistics =
    'a BN net saves its running statistics (updated in training, used for evaluation), resumed identically';
  it(bnStatistics, async () => {
    const c = trainConfig({ model: 'tiny', bn: true, epochs: 2, batch: 40, lr: 0.05, evalImages: 0, data }, () => data);
    const a = join(dir, 'bn-a'),
      b = join(dir, 'bn-b');
    await runTrain(gpu, c, ds(), a, false);
    let n = 0;
    await expect(runTrain(gpu, c, ds(), b, false, { shouldStop: () => ++n >= 1 })).rejects.toThrow(Interrupted);
    await runTrain(gpu, c, ds(), b, true);
    const wa = readSafetensors(join(a, 'model.safetensors')).tensors,
      wb = readSafetensors(join(b, 'model.safetensors')).tensors;
    const rv = wa['1.bn.running_var'];
    expect(rv.data.length).toBe(4);
    expect(rv.data.every((v) => v > 0 && v !== 1)).toBe(true); // moved from its initial 1 by the updates
    expect(Array.from(wb['1.bn.running_mean'].data)).toEqual(Array.from(wa['1.bn.running_mean'].data));
    expect(Array.from(wb['1.bn.running_var'].data)).toEqual(Array.from(rv.data));
  });

  it('rejects bad flags with the flag named', () => {
    const parse = (...argv: string[]) => trainConfig(parseCommand(TRAIN, argv).options, () => data);
    expect(() => parse('--epochs', '0')).toThrow(/--epochs: an integer >= 1 expected, got "0"/);
    const milestones = /--milestones: comma-separated integers >= 1 expected, got "soon"/;
    expect(() => parse('--milestones', 'soon')).toThrow(milestones);
    expect(() => parse('--model', 'vgg')).toThrow(/--model: one of .* expected, got "vgg"/);
    expect(() => parse('--model', 'resnet9')).toThrow(/--model: a ResNet depth 6n\+2 .* expected, got "resnet9"/);
    expect(() => parse('--model', 'small', '--width', '2')).toThrow(/--width 2: only the ResNets have a width factor/);
    // the parsed flags as the configuration
    expect(parse('--epochs', '2', '--milestones', '1,2', '--no-nesterov', '--eval-images', 'all')).toMatchObject({
      epochs: 2,
      milestones: [1, 2],
      nesterov: false,
      evalImages: 0,
      model: 'small',
      lr: 0.05,
      weightDecay: 5e-4,
      data,
    });
  });
});

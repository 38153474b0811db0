// The figure sets as job-array tasks: which steps a task owns, stage-2 steps waiting for other tasks, and li-figures /
// fort-figures (--smoke) run as tasks then gathered equal to one process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { loadSplits } from '../src/data/datasets.ts';
import { checkSameSettings, runSteps, stepsOf, taskSummary, type Step } from '../src/run/tasks.ts';
import { writeRunConfig } from '../src/run/run-info.ts';
import { LI_FIGURES, runLiFigures } from '../src/landscape/li-figures.ts';
import { FORT_FIGURES, runFortFigures } from '../src/structure/fort-figures.ts';
import { parseCommand } from '../src/options/index.ts';
import { testGpu, writeIdx } from './helpers.ts';

let gpu: Gpu;
const dir = mkdtempSync(join(tmpdir(), 'la-sets-'));
const data = join(dir, 'data');
beforeAll(async () => {
  gpu = await testGpu();
  mkdirSync(data);
  writeIdx(join(data, 'train'), 64, 1);
  writeIdx(join(data, 't10k'), 32, 2);
});
afterAll(() => gpu?.destroy());

/** Fake steps: a done flag each, stage 2 ones needing the stage-1 ones named. */
function fakeSteps(): { steps: Step[]; ran: string[] } {
  const done = new Set<string>(),
    ran: string[] = [];
  const step = (name: string, stage: 1 | 2, needs: string[] = []): Step => ({
    name,
    stage,
    done: () => done.has(name),
    waitsFor: () => needs.filter((n) => !done.has(n)),
    run: async () => {
      ran.push(name);
      done.add(name);
    },
  });
  const steps = [step('a', 1), step('b', 1), step('c', 1), step('ab', 2, ['a', 'b']), step('c2', 2, ['c'])];
  return { steps, ran };
}

/** summary.json without what differs between one process and a gathering (time, the gathered flag, --out). */
const summaryOf = (out: string) => {
  const text = readFileSync(join(out, 'summary.json'), 'utf8').replaceAll(out, 'OUT');
  const { seconds: _s, seconds_this_invocation: _t, gathered: _g, ...rest } = JSON.parse(text);
  return rest;
};

describe('job-array tasks of a figure set', () => {
  it('a task owns every n-th step of each stage; stage-2 steps wait until their inputs are done', async () => {
    const { steps, ran } = fakeSteps();
    expect(stepsOf(steps, { i: 0, n: 2 }).map((s) => s.name)).toEqual(['a', 'c', 'ab']);
    expect(stepsOf(steps, { i: 1, n: 2 }).map((s) => s.name)).toEqual(['b', 'c2']);
    // task 0 first: ab waits for b (task 1's)
    const r0 = await runSteps(steps, { i: 0, n: 2 });
    expect(r0).toEqual({ ran: ['a', 'c'], waiting: [{ name: 'ab', waitsFor: ['b'] }] });
    const msg = taskSummary('li-figures', 'OUT', { i: 0, n: 2 }, steps, r0);
    expect(msg).toMatch(
      /task 0\/2: 2 steps run, 3 owned; 2 of 5 steps of OUT done\. Waiting for other tasks: ab \(needs b\)/,
    );
    expect(msg).toMatch(/Run this task again once the other tasks are done/);
    expect(await runSteps(steps, { i: 1, n: 2 })).toEqual({ ran: ['b', 'c2'], waiting: [] });
    // the second run of task 0 finishes ab; nothing is run twice
    expect(await runSteps(steps, { i: 0, n: 2 })).toEqual({ ran: ['ab'], waiting: [] });
    expect(ran).toEqual(['a', 'c', 'b', 'c2', 'ab']);
    // one process runs the steps in order; a stage-2 step before its inputs is a mistake of the set
    const f = fakeSteps();
    await runSteps(f.steps, undefined);
    expect(f.ran).toEqual(['a', 'b', 'c', 'ab', 'c2']);
    const bad = fakeSteps();
    await expect(runSteps([bad.steps[3], ...bad.steps], undefined)).rejects.toThrow(/ab: its inputs a, b are missing/);
  });

  it('the tasks and the gathering of one set must have its settings', () => {
    const out = join(dir, 'same');
    checkSameSettings(out, { scale: 'cpu' }, ['scale']); // no set yet
    writeRunConfig(out, 'li-figures', { scale: 'smoke', nets: 2 }, null);
    checkSameSettings(out, { scale: 'smoke' }, ['scale']);
    expect(() => checkSameSettings(out, { scale: 'cpu' }, ['scale'])).toThrow(
      /same\/config.json: the set was started with scale "smoke", this command has "cpu"/,
    );
  });

  it('li-figures --smoke: two tasks (twice), then --gather: the summary of one process', async () => {
    const one = join(dir, 'li-one'),
      arr = join(dir, 'li-tasks');
    const opts = (...a: string[]) => parseCommand(LI_FIGURES, ['--smoke', '--data', data, ...a]).options;
    const log: string[] = [];
    await runLiFigures(gpu, opts('--out', one), () => {});
    await runLiFigures(gpu, opts('--out', arr, '--task', '0/2'), (m) => log.push(m));
    // the batch interpolation (task 0's) needs the large-batch net, task 1's
    expect(log.at(-1)).toMatch(/Waiting for other tasks: batch-interpolation \(needs small-bs256-wd0\)/);
    await expect(runLiFigures(null, opts('--out', arr, '--gather'), () => {})).rejects.toThrow(
      /--gather: 3 of 5 steps in .* are not done: resnet8-noshort, small-bs256-wd0, batch-interpolation; .*second run/,
    );
    await expect(runLiFigures(gpu, opts('--out', arr, '--task', '0/2', '--full'), () => {})).rejects.toThrow(
      /started with scale "smoke", this command has "full"/,
    );
    await runLiFigures(gpu, opts('--out', arr, '--task', '1/2'), () => {});
    await runLiFigures(gpu, opts('--out', arr, '--task', '0/2'), () => {});
    expect(existsSync(join(arr, 'summary.json'))).toBe(false);
    await runLiFigures(null, opts('--out', arr, '--gather'), () => {});
    expect(summaryOf(arr)).toEqual(summaryOf(one));
    expect(JSON.parse(readFileSync(join(arr, 'summary.json'), 'utf8')).gathered).toBe(true);
    for (const f of ['li_depth.png', 'li_batch.png']) expect(existsSync(join(arr, f)), f).toBe(true);
  }, 240_000);

  it('fort-figures --smoke: three tasks (twice), then --gather: the summary of one process', async () => {
    const splits = await loadSplits('fashion-mnist', data);
    const one = join(dir, 'fort-one'),
      arr = join(dir, 'fort-tasks');
    const opts = (...a: string[]) => parseCommand(FORT_FIGURES, ['--smoke', '--data', data, ...a]).options;
    await runFortFigures(gpu, opts('--out', one), data, splits, () => {});
    const log: string[] = [];
    for (const t of ['0/3', '1/3', '2/3'])
      await runFortFigures(gpu, opts('--out', arr, '--task', t), data, splits, (m) => log.push(m));
    // every stage-2 step is owned by a task; those whose optima another task trained after it wait
    expect(log.join('\n')).toMatch(/Waiting for other tasks: .*\(needs optima\/seed/);
    await expect(runFortFigures(null, opts('--out', arr, '--gather'), data, null, () => {})).rejects.toThrow(
      /fort-figures --gather: \d+ of 13 steps in .* are not done: connect-/,
    );
    for (const t of ['0/3', '1/3', '2/3'])
      await runFortFigures(gpu, opts('--out', arr, '--task', t), data, splits, () => {});
    await runFortFigures(null, opts('--out', arr, '--gather'), data, null, () => {});
    expect(summaryOf(arr)).toEqual(summaryOf(one));
    expect(existsSync(join(arr, 'fort_summary.png'))).toBe(true);
  }, 300_000);
});

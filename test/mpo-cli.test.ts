// The mpo command as a user runs it: the command killed (SIGKILL) or interrupted (SIGINT) and resumed with --resume
// ends with the same metrics as one that was never interrupted. The signal reaches the command line's process,
// which runs the work in a child (src/cli/quiet.ts): that child saves and stops either way (a hard kill of the process
// doing the work is in resume.test.ts).
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_ARGS, fashionFixture } from './helpers.ts';

const { dir, data } = fashionFixture('la-cli-');
const flags = [
  'mpo',
  '--quick',
  '--model',
  'tiny',
  '--data',
  data,
  '--grid',
  '6',
  '--mask',
  'plus',
  '--steps',
  '30',
  '--batch',
  '32',
  '--cells-per-step',
  '3',
  '--eval-images',
  '10',
  '--pad',
  '1',
  '--checkpoint-every',
  '3',
  '--log-every',
  '1',
];
const run = (args: string[]) =>
  spawnSync(process.execPath, [...CLI_ARGS, ...args], {
    encoding: 'utf8',
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  });
const metrics = (d: string) => JSON.parse(readFileSync(join(d, 'metrics.json'), 'utf8'));
const step = (d: string) =>
  existsSync(join(d, 'checkpoint', 'state.json'))
    ? JSON.parse(readFileSync(join(d, 'checkpoint', 'state.json'), 'utf8')).step
    : 0;

/** The pids of the children of `pid`. */
const childrenOf = (pid: number) =>
  (spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout ?? '').split(/\s+/).filter(Boolean).map(Number);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Starts a run (the command line's filtering parent and the child doing the work), waits for a checkpoint past
 * `after` steps, sends the signal to the parent, waits for the parent's exit and then for the child's.
 */
async function interrupt(
  out: string,
  signal: NodeJS.Signals,
  after: number,
): Promise<{ code: number | null; signal: string | null }> {
  const p = spawn(process.execPath, [...CLI_ARGS, ...flags, '--out', out], { stdio: 'ignore' });
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) =>
    p.on('exit', (code, sig) => r({ code, signal: sig })),
  );
  for (let i = 0; i < 1200 && step(out) < after; i++) await new Promise((r) => setTimeout(r, 100));
  const kids = childrenOf(p.pid!);
  p.kill(signal);
  const e = await exited;
  for (let i = 0; i < 600 && kids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
  expect(kids.filter(alive), 'the child outlived the wait').toEqual([]);
  return e;
}

describe('mpo command: interrupt and resume', () => {
  const ref = join(dir, 'ref');
  it('an uninterrupted run', () => {
    const r = run([...flags, '--out', ref]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/pictures: .*summary\.png/);
  });

  for (const signal of ['SIGKILL', 'SIGINT'] as const) {
    it(`the command killed with ${signal} saves, stops and resumes: the same metrics`, async () => {
      const out = join(dir, signal);
      const e = await interrupt(out, signal, 6);
      if (signal === 'SIGKILL') expect(e.signal).toBe('SIGKILL');
      else expect(e.code).toBe(130);
      expect(existsSync(join(out, 'metrics.json'))).toBe(false);
      const stopped = step(out);
      // the child saves at the step after the stop request (the parent passes SIGINT on; a SIGKILLed parent's child
      // notices it is gone): past the periodic checkpoint of step 6
      expect(stopped).toBeGreaterThan(6);
      expect(stopped).toBeLessThan(30);
      const r = run(['mpo', '--resume', out]);
      expect(r.status, r.stderr).toBe(0);
      const a = metrics(ref),
        b = metrics(out);
      for (const split of ['train', 'test'])
        for (const k of Object.keys(a[split]))
          expect(Math.abs(b[split][k] - a[split][k]), `${split}.${k}`).toBeLessThanOrEqual(1e-5);
    });
  }

  it('bad flags exit non-zero with the flag named', () => {
    const r = run(['mpo', '--quick', '--steps', 'many']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--steps: an integer >= 0 expected, got "many"/);
    const m = run(['mpo', '--quick', '--data', join(dir, 'nowhere')]);
    expect(m.status).not.toBe(0);
    expect(m.stderr).toMatch(/nowhere\/train-images-idx3-ubyte\.gz: file not found/);
  });
});

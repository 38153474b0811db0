// Bad run directories and diverging runs: each refused with a message naming the flag or the directory, and no run
// marked complete (no metrics.json).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeRunDir } from '../src/run/run-info.ts';
import { CLI_ARGS, fashionFixture } from './helpers.ts';

const { dir, data } = fashionFixture('la-rundir-');
const mpo = ['mpo', '--quick', '--model', 'tiny', '--data', data, '--grid', '6', '--mask', 'plus'];
const small = ['--batch', '32', '--cells-per-step', '3', '--eval-images', '10', '--pad', '1', '--log-every', '5'];
const run = (args: string[]) =>
  spawnSync(process.execPath, [...CLI_ARGS, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
  });
const refused = (r: ReturnType<typeof run>, pattern: RegExp) => {
  expect(r.error, 'the command did not finish').toBeUndefined();
  expect(r.status, r.stdout).not.toBe(0);
  expect(r.stderr).toMatch(pattern);
};

describe('makeRunDir', () => {
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  it.each([
    ['an existing file', file, /--out .*a-file: exists and is not a directory/],
    ['a path under a file', join(file, 'run'), /--out .*: .*a-file exists and is not a directory/],
    ['a path under /dev/null', '/dev/null/run', /--out \/dev\/null\/run: .*system file system/],
    ['a path under /proc', '/proc/foo', /--out \/proc\/foo: .*system file system/],
    ['a path under /sys', '/sys/foo/bar', /--out \/sys\/foo\/bar: .*system file system/],
  ])('refuses %s, naming the flag', (_, path, message) => {
    expect(() => makeRunDir(path)).toThrow(message);
  });
  it.skipIf(process.getuid?.() === 0)('refuses a directory without write permission', () => {
    const ro = join(dir, 'read-only');
    mkdirSync(ro, { mode: 0o500 });
    expect(() => makeRunDir(join(ro, 'run'), '--out')).toThrow(/--out .*: no permission to write in .*read-only/);
  });
  it('creates a new directory and its parents', () => {
    makeRunDir(join(dir, 'new', 'run'));
    expect(existsSync(join(dir, 'new', 'run'))).toBe(true);
  });
});

describe('run directories on the command line', () => {
  it('mpo --out /proc/foo is refused at once, naming --out', () => {
    refused(run([...mpo, '--out', '/proc/foo']), /--out \/proc\/foo: .*system file system/);
  });
  it('mpo --out FILE is refused, naming --out', () => {
    const f = join(dir, 'file-out');
    writeFileSync(f, 'x');
    refused(run([...mpo, '--out', f]), /--out .*file-out: exists and is not a directory/);
  });
  it('train --out /dev/null/x is refused, naming --out', () => {
    refused(run(['train', '--data', data, '--out', '/dev/null/x']), /--out \/dev\/null\/x: /);
  });

  it('mpo --resume of a directory without a checkpoint is refused; the same command starts it over', () => {
    const out = join(dir, 'no-checkpoint');
    mkdirSync(out);
    const config = { kind: 'mpo', argv: [], adapter: null, commit: 'x', created: new Date().toISOString() };
    writeFileSync(join(out, 'config.json'), JSON.stringify({ ...config, lr: 0.001 }));
    writeFileSync(join(out, 'log.jsonl'), '{"step":1}\n');
    refused(run(['mpo', '--resume', out]), /--resume .*no-checkpoint: no checkpoint there.*stopped before its first/);
    expect(existsSync(join(out, 'metrics.json'))).toBe(false);
    writeFileSync(join(out, 'metrics.json'), '{}');
    refused(run(['mpo', '--resume', out]), /no checkpoint there.*metrics\.json says the run is already complete/);
    // a run that stopped before its first checkpoint: the same command starts over in its directory
    const r = run([...mpo, ...small, '--steps', '6', '--checkpoint-every', '3', '--out', join(dir, 'again')]);
    expect(r.status, r.stderr).toBe(0);
    const again = join(dir, 'started-over');
    mkdirSync(again);
    writeFileSync(join(again, 'config.json'), readFileSync(join(dir, 'again', 'config.json')));
    const s = run([...mpo, ...small, '--steps', '6', '--checkpoint-every', '3', '--out', again]);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stderr).toMatch(/stopped before its first checkpoint: starting it over/);
    const steps = readFileSync(join(again, 'log.jsonl'), 'utf8').trim().split('\n').length;
    expect(steps).toBe(2); // steps 5 and 6, once
    // a directory with a checkpoint still asks for --resume
    refused(run([...mpo, '--out', again]), /already holds a run .*--resume/);
  }, 120_000);

  it('train --resume of a directory without a checkpoint is refused', () => {
    const out = join(dir, 'train-no-checkpoint');
    mkdirSync(out);
    const config = { kind: 'train', argv: [], adapter: null, commit: 'x', created: new Date().toISOString() };
    writeFileSync(join(out, 'config.json'), JSON.stringify({ ...config, dataset: 'fashion-mnist', data }));
    refused(run(['train', '--resume', out]), /--resume .*train-no-checkpoint: no checkpoint there/);
    expect(existsSync(join(out, 'metrics.json'))).toBe(false);
  });
});

describe('divergence', () => {
  it('mpo stops at a non-finite gradient norm, keeps the last good checkpoint, and resumes with a lower --lr', () => {
    const out = join(dir, 'diverged');
    const bad = ['--lr', '1', '--clip', '0', '--clamp', '1e30', '--neg-coef', '1e6', '--steps', '200'];
    const r = run([...mpo, ...small, '--checkpoint-every', '3', ...bad, '--out', out]);
    refused(r, /training diverged at step \d+: the gradient norm is (Infinity|NaN).*lower --lr than 1/);
    expect(r.stderr).toMatch(/last good checkpoint in .*checkpoint is kept: continue with --resume/);
    expect(existsSync(join(out, 'metrics.json'))).toBe(false);
    const saved = JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).step;
    expect(saved).toBeGreaterThan(0);
    const again = run(['mpo', '--resume', out, '--lr', '1e-6']);
    expect(again.stderr).toMatch(/--lr 0.000001: resuming with learning rate 0.000001 instead of 1 /);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).lr).toBe(1e-6);
  }, 120_000);
});

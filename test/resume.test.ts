// Kill and resume as a user meets it: mpo, train and surface processes killed with SIGKILL after their first
// checkpoint (or saved block) and run again end with the same files, byte for byte, as runs never interrupted.
// Timing fields (seconds, wall times) are left out of the comparison of metrics.json.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy } from '../src/data/formats.ts';
import { CLI_ARGS, fashionFixture, writeInitCheckpoint } from './helpers.ts';

const { dir, data } = fashionFixture('la-resume-');
// one process: the SIGKILL ends the run itself (without LOSS_ATLAS_ONE_PROCESS it would reach the filtering parent)
const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', LOSS_ATLAS_ONE_PROCESS: '1' };

const run = (args: string[]) => spawnSync(process.execPath, [...CLI_ARGS, ...args], { encoding: 'utf8', env });

/** Starts the command, polls until `ready(out)` holds, kills it with SIGKILL and waits for its exit. */
async function killWhen(args: string[], ready: () => boolean): Promise<string | null> {
  const p = spawn(process.execPath, [...CLI_ARGS, ...args], { stdio: 'ignore', env });
  const exited = new Promise<string | null>((r) => p.on('exit', (_code, sig) => r(sig)));
  let gone = false;
  p.on('exit', () => (gone = true));
  for (let i = 0; i < 1200 && !gone && !ready(); i++) await new Promise((r) => setTimeout(r, 20));
  p.kill('SIGKILL');
  return exited;
}

const TIMING = new Set(['seconds', 'wall', 'wall_s', 'elapsed', 'time', 'ms_per_step', 'steps_per_s', 'duration']);
/** metrics.json without its timing fields (at any depth). */
function metrics(d: string): unknown {
  const strip = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(strip)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .filter(([k]) => !TIMING.has(k) && !/seconds|_s$|time/i.test(k))
              .map(([k, x]) => [k, strip(x)]),
          )
        : v;
  return strip(JSON.parse(readFileSync(join(d, 'metrics.json'), 'utf8')));
}

/** The names of the files in d that differ (byte for byte) between two run directories. */
function differing(a: string, b: string, files: string[]): string[] {
  return files.filter((f) => !readFileSync(join(a, f)).equals(readFileSync(join(b, f))));
}

const stateStep = (d: string) => {
  const p = join(d, 'checkpoint', 'state.json');
  try {
    return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')).step ?? 0) : 0;
  } catch {
    return 0;
  }
};

describe('killed (SIGKILL) and resumed: the same files as an uninterrupted run', () => {
  it('mpo', async () => {
    const flags = ['mpo', '--quick', '--model', 'tiny', '--data', data, '--grid', '4', '--mask', 'plus'];
    flags.push('--steps', '20', '--batch', '16', '--cells-per-step', '2', '--eval-images', '10', '--pad', '1');
    flags.push('--checkpoint-every', '5', '--log-every', '5', '--train-images', '200');
    const ref = join(dir, 'mpo-ref'),
      out = join(dir, 'mpo-kill');
    const r = run([...flags, '--out', ref]);
    expect(r.status, r.stderr).toBe(0);
    expect(await killWhen([...flags, '--out', out], () => stateStep(out) >= 5)).toBe('SIGKILL');
    expect(existsSync(join(out, 'metrics.json'))).toBe(false);
    expect(stateStep(out)).toBeLessThan(20);
    const s = run(['mpo', '--resume', out]);
    expect(s.status, s.stderr).toBe(0);
    expect(metrics(out)).toEqual(metrics(ref));
    const files = readdirSync(ref).filter((f) => /^grid_.*\.npy$|^plane\.safetensors$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(3);
    expect(differing(ref, out, files)).toEqual([]);
  }, 240_000);

  it('train', async () => {
    const flags = ['train', '--model', 'tiny', '--data', data, '--epochs', '5', '--batch', '32'];
    flags.push('--eval-images', '20', '--train-images', '200', '--seed', '3');
    const ref = join(dir, 'train-ref'),
      out = join(dir, 'train-kill');
    const r = run([...flags, '--out', ref]);
    expect(r.status, r.stderr).toBe(0);
    const epoch = () => {
      try {
        return JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).epoch as number;
      } catch {
        return 0;
      }
    };
    expect(await killWhen([...flags, '--out', out], () => epoch() >= 1)).toBe('SIGKILL');
    expect(existsSync(join(out, 'model.safetensors'))).toBe(false);
    expect(epoch()).toBeGreaterThanOrEqual(1);
    expect(epoch()).toBeLessThan(5);
    const s = run(['train', '--resume', out]);
    expect(s.status, s.stderr).toBe(0);
    expect(metrics(out)).toEqual(metrics(ref));
    expect(differing(ref, out, ['model.safetensors'])).toEqual([]);
  }, 240_000);

  it('surface', async () => {
    const model = join(dir, 'm.safetensors');
    writeInitCheckpoint(model, 'tiny', 5);
    const flags = (out: string) =>
      ['surface', '--model-file', model, '--data', data, '--x', '-1:1:6', '--y', '-1:1:4', '--images', '40'].concat([
        '--block',
        '2',
        '--out',
        out,
      ]);
    const ref = join(dir, 'surf-ref'),
      out = join(dir, 'surf-kill');
    const r = run(flags(ref));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/surface: 24 points, 12 blocks of up to 2 points, 40 train images per point/);
    const partial = () => {
      try {
        const v = readNpy(join(out, 'surface_loss.npy')).data;
        return v.some(Number.isFinite) && v.some(Number.isNaN);
      } catch {
        return false;
      }
    };
    expect(await killWhen(flags(out), partial)).toBe('SIGKILL');
    const left = Array.from(readNpy(join(out, 'surface_loss.npy')).data).filter(Number.isNaN).length;
    expect(left).toBeGreaterThan(0);
    const s = run(flags(out));
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).toMatch(new RegExp(`surface: 24 points \\(${left} left\\)`));
    expect(differing(ref, out, ['surface_loss.npy', 'surface_acc.npy'])).toEqual([]);
  }, 240_000);
});

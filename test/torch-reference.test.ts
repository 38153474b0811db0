// bench/torch_reference.py, the PyTorch side of the benchmark, at a CPU size: its loss check against the per-cell
// losses loss-atlas writes, and one quick timing pass of each implementation. Runs where some Python can import torch
// (Debian's python3-torch 1.13 or a newer one); skipped elsewhere.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const candidates = [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
const python = candidates.find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
const tmp = mkdtempSync(join(tmpdir(), 'torch-ref-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const run = (cmd: string, args: string[]) =>
  spawnSync(cmd, args, { cwd: root, encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } });

describe.skipIf(!python)('bench/torch_reference.py (PyTorch importable)', () => {
  it('agrees with loss-atlas on the per-cell losses and times the loop and vmap steps', () => {
    const check = join(tmp, 'check');
    const ours = run('npx', [
      'tsx',
      'bench/mpo.ts',
      '--workloads',
      'mpo-fashion',
      '--check-dir',
      check,
      '--check-only',
    ]);
    expect(ours.status, ours.stderr).toBe(0);
    const out = join(tmp, 'torch.json');
    const args = ['--check-dir', check, '--workloads', 'mpo-fashion,surface-icons', '--quick', '--steps', '1'];
    const r = run(python!, ['bench/torch_reference.py', ...args, '--cells', '1,2', '--batch', '4', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(readFileSync(out, 'utf8'));
    expect(res.complete).toBe(true);
    expect(res.checks.map((c: { bn: boolean }) => c.bn)).toEqual([false, true]);
    for (const c of res.checks) expect(c.max_loss_diff).toBeLessThan(1e-3);
    const impls = new Set(res.rows.map((row: { impl: string }) => row.impl));
    expect([...impls].sort()).toEqual(expect.arrayContaining(['torch-loop', 'torch-vmap']));
    for (const row of res.rows) expect(row.ms_per_step).toBeGreaterThan(0);
  }, 120_000);

  it('refuses a check folder without loss-atlas files, naming the missing file', () => {
    const r = run(python!, [
      'bench/torch_reference.py',
      '--check-dir',
      join(tmp, 'empty'),
      '--workloads',
      'mpo-fashion',
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(join(tmp, 'empty', 'mpo-fashion-bn0.safetensors'));
  });
});

// Quiet by default: the command line drops Dawn's two "artificially reduced" limit warnings and prints no adapter line
// unless --verbose; its line filter passes every other byte through unchanged.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DAWN_NOISE, lineFilter, runsItself } from '../src/cli/quiet.ts';

const W1 =
  'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset' +
  ' allocation limit.';
const W2 = W1.replace('Uniform', 'Storage');

function filtered(chunks: string[]): { out: string; seen: string[] } {
  let out = '';
  const seen: string[] = [];
  const f = lineFilter(DAWN_NOISE, (s) => {
    out += s;
    seen.push(out);
  });
  for (const c of chunks) f.push(c);
  f.end();
  return { out, seen };
}

describe('the stderr line filter', () => {
  it('drops exactly the two warnings, wherever the chunks split them', () => {
    const text = `${W1}\n${W2}\nloss 0.5\nWarning: something else\n${W1} (not quite)\nend`;
    const want = `loss 0.5\nWarning: something else\n${W1} (not quite)\nend`;
    expect(filtered([text]).out).toBe(want);
    for (const size of [1, 3, 7, 50]) {
      const chunks = [];
      for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
      expect(filtered(chunks).out, `chunks of ${size}`).toBe(want);
    }
    expect(filtered([`${W1}\r\n`]).out).toBe('');
  });

  it('passes a partial line on at once unless it could still be a warning', () => {
    const f = filtered(['step 3/700 ...', ' done\n']);
    expect(f.seen[0]).toBe('step 3/700 ...');
    expect(filtered(['Warning: maxDyn']).seen).toEqual(['Warning: maxDyn']); // held until the end, then passed
  });

  it('--verbose and LOSS_ATLAS_ONE_PROCESS=1 run in one process; a child runs itself', () => {
    expect(runsItself(['mpo'], {})).toBe(false);
    expect(runsItself(['mpo', '--verbose'], {})).toBe(true);
    expect(runsItself(['mpo'], { LOSS_ATLAS_ONE_PROCESS: '1' })).toBe(true);
    expect(runsItself(['mpo'], { LOSS_ATLAS_PARENT: '42' })).toBe(true);
  });
});

describe('a command end to end', () => {
  const root = join(import.meta.dirname, '..');
  const out = mkdtempSync(join(tmpdir(), 'la-quiet-'));
  const toy = (...extra: string[]) =>
    spawnSync(
      'node',
      ['--import', 'tsx', 'src/cli.ts', 'toy', '--D', '12', '--steps', '3', '--points', '3', ...extra],
      {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
      },
    );

  it('prints neither the warnings nor the adapter without --verbose; both with it', () => {
    const q = toy('--out', join(out, 'quiet'));
    expect(q.status, q.stderr).toBe(0);
    expect(q.stderr).not.toMatch(/artificially reduced/);
    expect(q.stdout + q.stderr).not.toMatch(/adapter/);
    expect(q.stdout).toMatch(/metrics\.json/);
    const v = toy('--out', join(out, 'verbose'), '--verbose');
    expect(v.status, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/\[gpu\] adapter: /);
    // Dawn prints its warnings only on adapters that report unbounded dynamic-buffer limits (CPU adapters)
    const cpu = /llvmpipe|lavapipe|swiftshader/i.test(v.stderr);
    if (cpu) expect(v.stderr).toMatch(/artificially reduced/);
  });
});

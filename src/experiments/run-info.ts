// What every run directory records about how it was made: config.json with the command's settings, the adapter, the
// git commit of the code and the time.
import { execSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { atomicWrite } from '../data/formats.ts';

/** The commit of the checked-out code ('unknown' outside a git checkout). */
export function gitCommit(): string {
  try {
    return execSync('git rev-parse HEAD', { stdio: ['ignore', 'pipe', 'ignore'], cwd: new URL('../..', import.meta.url).pathname }).toString().trim();
  } catch {
    return 'unknown';
  }
}

/** Writes out/config.json: {command, ...settings, adapter, commit, created}. */
export function writeRunConfig(out: string, command: string, settings: Record<string, unknown>, gpu: Gpu): void {
  mkdirSync(out, { recursive: true });
  atomicWrite(join(out, 'config.json'), JSON.stringify({ command, ...settings, adapter: gpu.adapterInfo, commit: gitCommit(), created: new Date().toISOString() }, null, 2) + '\n');
}

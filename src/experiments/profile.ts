// `loss-atlas profile [mpo flags]`: runs a few MPO steps with timestamp queries on every dispatch, prints the
// per-kernel table of the steps after the first (which compiles the pipelines), and writes a Chrome trace of
// the last step (open it in Perfetto or chrome://tracing).
// On lavapipe the timestamps are taken on the CPU threads that run the work, and a pass can include time spent
// waiting; per-kernel shares there are indicative only.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { Profiler } from '../engine/profiler.ts';
import { runMpo } from './mpo.ts';
import { loadData, mpoConfig } from './mpo-cli.ts';

export async function profileCommand(gpu: Gpu, flags: Record<string, string | boolean>): Promise<number> {
  const steps = Number(flags['profile-steps'] ?? 5);
  if (!Number.isInteger(steps) || steps < 2) throw new Error(`--profile-steps: an integer >= 2 expected, got "${flags['profile-steps']}"`);
  const trace = typeof flags.trace === 'string' ? flags.trace : 'profile-trace.json';
  const rest = { ...flags };
  delete rest['profile-steps'];
  delete rest.trace;
  const cfg = { ...mpoConfig(rest.preset ? rest : { quick: true, ...rest }), steps, evalImages: 1, pad: 0, checkpointEvery: 1_000_000 };
  const prof = Profiler.attach(gpu);
  if (!prof) throw new Error(`adapter ${gpu.adapterInfo} has no timestamp-query: cannot profile`);
  console.log(`adapter: ${gpu.adapterInfo}`);
  console.log(`profiling ${steps} MPO steps: model ${cfg.model}${cfg.bn ? ' + BN' : ''}, ${cfg.cellsPerStep}+${cfg.cellsPerStep} cells x ${cfg.batch} images`);
  const walls: number[] = [];
  let last = performance.now(), lastStepFrom = 0;
  let table = '', chrome: object = {};
  const out = mkdtempSync(join(tmpdir(), 'la-profile-'));
  await runMpo(gpu, cfg, loadData(cfg), out, false, {
    onStep: async (s) => {
      await prof.collect();
      const now = performance.now();
      walls.push(now - last);
      last = now;
      if (s === 1) prof.clear();
      if (s === steps - 1) lastStepFrom = prof.times.length;
      if (s === steps) {
        table = prof.table();
        const all = prof.times.splice(0);
        prof.times.push(...all.slice(lastStepFrom));
        chrome = prof.chromeTrace();
        prof.detach();
      }
    },
  });
  rmSync(out, { recursive: true, force: true });
  console.log(`\nkernels over steps 2..${steps}:\n${table}`);
  const w = walls.slice(1).sort((a, b) => a - b);
  console.log(`\nwall time per step (steps 2..${steps}): median ${w[Math.floor(w.length / 2)].toFixed(1)} ms`);
  writeFileSync(trace, JSON.stringify(chrome));
  console.log(`Chrome trace of step ${steps}: ${trace}`);
  return 0;
}

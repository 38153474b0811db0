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
import { MPO_OPTIONS, loadData, mpoConfig } from './command.ts';
import { defineCommand, omitOptions, optionsOf, type OptionInput } from '../options/index.ts';

export const PROFILE = defineCommand({
  name: 'profile',
  summary:
    'a few MPO steps with per-kernel GPU times (timestamp queries) and a Chrome trace ' +
    '(takes the mpo flags, --profile-steps N, --trace PATH)',
  usage: 'loss-atlas profile [mpo flags] [--profile-steps N] [--trace PATH]',
  description: `Runs a few MPO steps with timestamp queries on every dispatch, prints the per-kernel table of the steps
after the first (which compiles the pipelines) and writes a Chrome trace of the last step (open it in Perfetto or
chrome://tracing). Takes the flags of loss-atlas mpo (the quick preset unless --preset is given).`,
  options: {
    ...omitOptions(MPO_OPTIONS, ['out', 'resume']),
    preset: { ...MPO_OPTIONS.preset, defaultText: 'quick' },
    'profile-steps': { type: 'integer', min: 2, default: 5, help: 'MPO steps to run (the first is not timed)' },
    trace: { type: 'string', placeholder: 'PATH', default: 'profile-trace.json', help: 'the Chrome trace file' },
  },
  globals: ['verbose', 'normalize', 'weights', 'help'],
});

export async function profileCommand(gpu: Gpu, o: OptionInput<typeof PROFILE.options>): Promise<number> {
  const { profileSteps: steps, trace } = optionsOf(PROFILE.options, o);
  const cfg = { ...mpoConfig(o, 'quick'), steps, evalImages: 1, pad: 0, checkpointEvery: 1_000_000 };
  const prof = Profiler.attach(gpu);
  if (!prof) throw new Error(`adapter ${gpu.adapterInfo} has no timestamp-query: cannot profile`);
  console.log(`adapter: ${gpu.adapterInfo}`);
  console.log(
    `profiling ${steps} MPO steps: model ${cfg.model}${cfg.bn ? ' + BN' : ''},` +
      ` ${cfg.cellsPerStep}+${cfg.cellsPerStep} cells x ${cfg.batch} images`,
  );
  const walls: number[] = [];
  let last = performance.now(),
    lastStepFrom = 0;
  let table = '',
    chrome: object = {};
  const out = mkdtempSync(join(tmpdir(), 'la-profile-'));
  await runMpo(gpu, cfg, await loadData(cfg), out, false, {
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

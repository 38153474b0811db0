// `npm run exp:fort-figures`: the toy-model and real-network experiments of Fort & Jastrzebski 2019 at CPU-sized scale
// (Fashion-MNIST, the paper's 16-32-32 tanh SimpleCNN), or with --full at larger sizes for a GPU. Every step writes its
// own run directory and is skipped when its metrics.json exists, so the script resumes after an interruption; the
// steps run as job-array tasks too (--task i/n, twice: the connectors, tunnels and SWA need the optima of stage 1).
// Ends with summary.json (each step's metrics) and fort_summary.png (the main pictures side by side).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tilesPng } from '../viz/figure.ts';
import type { Gpu } from '../engine/device.ts';
import type { Dataset } from '../data/dataset.ts';
import { runTrain, trainConfig } from '../landscape/train.ts';
import { readCheckpoint } from '../models/checkpoint.ts';
import { runToy } from './toy.ts';
import { runConnect } from './connect.ts';
import type { ConnectOptions } from './connectors.ts';
import { runMSweep } from './msweep.ts';
import { tunnelSweepSteps, tunnelsCommand } from './tunnels.ts';
import { subspaceCommand } from './subspace.ts';
import { swaCommand } from './swa.ts';
import { checkTaskFlags, defineCommand, type OptionInput } from '../options/index.ts';
import { checkRunDir, readRunConfig, writeRunConfig } from '../run/run-info.ts';
import { checkSameSettings, runOrGather, type Step } from '../run/tasks.ts';

export const FORT_FIGURES = defineCommand({
  name: 'fort-figures',
  summary:
    "Fort & Jastrzebski's experiments at CPU size (toy, connectors, m-connectors, tunnels, subspaces, SWA); " +
    '--full for a GPU (--help)',
  usage: 'npm run exp:fort-figures [-- --full] [--tunnel-sweep] [--out DIR] [--data DIR]',
  description: `\
Fort & Jastrzebski 2019 at CPU size (about 70 minutes on the 2-core machine, summed from the step times of one run):
the toy landscape (hyperplane threshold, connector, radial well), six SimpleCNN optima on Fashion-MNIST, a connector
and a Bezier curve between two of them, m-connectors for three and four, short directions at the centres of
m-connectors for m = 1..5, radial tunnels, random-subspace training with d_int90 (MLP and SimpleCNN), and weight
averaging vs ensembling at a low and a high learning rate. --tunnel-sweep adds the tunnel-width sweep over learning
rate, L2, dropout and batch size (about 25 more minutes); --full uses larger sizes throughout (a GPU). Every step
writes its own run directory and is skipped when done, so the same command resumes. Writes summary.json and
fort_summary.png into --out (default runs/fort-figures).`,
  options: {
    full: { type: 'boolean', help: 'larger sizes throughout (for a GPU)' },
    'tunnel-sweep': { type: 'boolean', help: 'add the tunnel-width sweep (--full always has it)' },
    out: {
      type: 'string',
      placeholder: 'DIR',
      defaultText: 'runs/fort-figures, runs/fort-figures-full with --full',
      help: 'output directory',
    },
    data: { type: 'string', placeholder: 'DIR', help: 'Fashion-MNIST directory' },
    smoke: { type: 'boolean', help: 'the smallest sizes, a check that every step runs (minutes)' },
    task: {
      type: 'shard',
      help:
        'run only every n-th step, i-th first (one task of a job array; all tasks share --out); the steps that ' +
        "need other tasks' optima wait for a second run of the array",
    },
    gather: {
      type: 'boolean',
      help: 'summary.json and fort_summary.png from the finished steps in --out (no GPU); names any missing',
    },
  },
});

type Scale = 'cpu' | 'full' | 'smoke';
type Splits = { train: Dataset; test: Dataset };

/** The set's steps in the order one process runs them; stage 2 needs the optima (and the sweep's optima). */
function fortSteps(
  gpu: Gpu | null,
  data: Splits | null,
  scale: Scale,
  sweep: boolean,
  dataDir: string,
  out: string,
  log: (m: string) => void,
): Step[] {
  const full = scale === 'full',
    smoke = scale === 'smoke';
  const pick = <T>(cpu: T, big: T, small: T): T => (full ? big : smoke ? small : cpu);
  const need = () => {
    if (!gpu || !data) throw new Error('fort-figures: a GPU is needed for this step');
    return { gpu, data };
  };
  const done = (d: string) => existsSync(join(out, d, 'metrics.json'));
  const nOptima = pick(6, 11, 4);
  const optimum = (i: number) => join(out, 'optima', `seed${i + 1}`, 'model.safetensors');
  const optimumName = (i: number) => `optima/seed${i + 1}`;
  const cks = (n: number) => Array.from({ length: n }, (_, i) => readCheckpoint(optimum(i), need().data.train.shape));
  /** A stage-2 step on the first `n` optima. */
  const onOptima = (name: string, n: number, run: (gpu: Gpu, data: Splits) => Promise<unknown>): Step => ({
    name,
    stage: 2,
    done: () => done(name),
    waitsFor: () =>
      Array.from({ length: n }, (_, i) => i)
        .filter((i) => !existsSync(optimum(i)))
        .map(optimumName),
    run: async () => {
      const { gpu, data } = need();
      await run(gpu, data);
    },
  });
  const steps: Step[] = [];
  steps.push({
    name: 'toy',
    stage: 1,
    done: () => done('toy'),
    run: async () => {
      log('toy landscape');
      const toy = pick<Record<string, unknown>>(
        { D: 100, steps: 3000 },
        { D: 1000, ns: [200, 500, 800, 950], steps: 8000, rays: 64 },
        { D: 20, ns: [4, 10], span: 1, steps: 200, rays: 4, points: 3 },
      );
      await runToy(need().gpu, toy, join(out, 'toy'), (m) => log(`  ${m}`));
    },
  });
  // SimpleCNN optima from independent initializations
  for (let i = 0; i < nOptima; i++) {
    const dir = join(out, 'optima', `seed${i + 1}`);
    steps.push({
      name: optimumName(i),
      stage: 1,
      done: () => existsSync(optimum(i)),
      run: async () => {
        log(`training SimpleCNN optimum ${i + 1}/${nOptima}`);
        const cfg = trainConfig(
          {
            model: 'simplecnn',
            epochs: pick(2, 20, 1),
            batch: 64,
            lr: 0.05,
            wd: 0,
            seed: i + 1,
            trainImages: pick(4000, 0, 200),
            evalImages: pick(2000, 2000, 100),
            data: dataDir,
          },
          () => dataDir,
        );
        const resume = existsSync(join(dir, 'checkpoint', 'state.json'));
        await runTrain(need().gpu, cfg, need().data, dir, resume, { log: (m) => log(`  ${m}`) });
      },
    });
  }
  const tunnelSweep = {
    sweep: true,
    rays: pick(8, 32, 2),
    images: pick(300, 2000, 50),
    points: pick(16, 21, 4),
    max: 3,
    sweepEpochs: pick(2, 10, 1),
    sweepImages: pick(4000, 60000, 100),
  };
  if (sweep) {
    const sweepDir = join(out, 'tunnels-sweep');
    for (const s of tunnelSweepSteps(gpu, data, dataDir, tunnelSweep, sweepDir, (m) => log(`  ${m}`))) {
      steps.push({ ...s, name: `tunnels-sweep/${s.name}` });
    }
  }
  steps.push({
    name: 'subspace',
    stage: 1,
    done: () => done('subspace'),
    run: async () => {
      log('random-subspace training');
      const sub = pick<Record<string, unknown>>(
        { models: ['mlp', 'simplecnn'], ds: [10, 50, 250, 1000], steps: 300, batch: 64, evalImages: 1000 },
        { models: ['mlp', 'simplecnn'], ds: [10, 30, 100, 300, 1000, 3000], steps: 3000 },
        { models: ['mlp'], ds: [10, 50], steps: 20, batch: 32, evalImages: 100, trainImages: 200 },
      );
      await subspaceCommand(need().gpu, need().data, sub, join(out, 'subspace'), (m) => log(`  ${m}`));
    },
  });

  const base: ConnectOptions = {
    method: 'fort',
    points: pick(5, 9, 3),
    steps: pick(100, 1000, 5),
    lr: 1e-3,
    batch: pick(32, 128, 16),
    images: pick(500, 5000, 50),
    dense: pick(21, 61, 5),
    seed: 1,
    probes: pick(4, 16, 2),
    tPerStep: pick(2, 4, 1),
  };
  const connects: [string, number, ConnectOptions][] = [
    ['connect-fort', 2, { ...base, points: pick(7, 9, 3), steps: pick(200, 1000, 5) }],
    ['connect-bezier', 2, { ...base, method: 'bezier', probes: 0, steps: pick(200, 1000, 5) }],
    ['connect-triangle', 3, { ...base, points: pick(2, 4, 2), probes: 0 }],
    ['connect-m3', 4, base],
  ];
  for (const [name, n, o] of connects) {
    steps.push(
      onOptima(name, n, async (gpu, data) => {
        log(name);
        await runConnect(gpu, cks(n), data, o, join(out, name), (m) => log(`  ${m}`));
      }),
    );
  }
  steps.push(
    onOptima('connect-msweep', nOptima, async (gpu, data) => {
      log(`short directions at the centre of m-connectors, m = 1..${nOptima - 1}`);
      const o = { ...base, probes: pick(8, 32, 2) };
      await runMSweep(gpu, cks(nOptima), data, o, join(out, 'connect-msweep'), (m) => log(`  ${m}`));
    }),
  );
  steps.push(
    onOptima('tunnels', 1, async (gpu, data) => {
      log('radial tunnels around optimum 1');
      const t = { modelFile: optimum(0), rays: pick(16, 64, 4), images: pick(300, 2000, 50), max: 3 };
      if (smoke) Object.assign(t, { points: 5 });
      await tunnelsCommand(gpu, data, dataDir, t, join(out, 'tunnels'), (m) => log(`  ${m}`));
    }),
  );
  if (sweep) {
    const names = steps.filter((s) => s.name.startsWith('tunnels-sweep/')).map((s) => s.name);
    const sweepDone = () => names.filter((n) => !steps.find((s) => s.name === n)!.done());
    steps.push({
      name: 'tunnels-sweep',
      stage: 2,
      done: () => done('tunnels-sweep'),
      waitsFor: sweepDone,
      run: async () => {
        log('tunnel widths over learning rate, L2, dropout and batch size');
        const { gpu, data } = need();
        await tunnelsCommand(gpu, data, dataDir, tunnelSweep, join(out, 'tunnels-sweep'), (m) => log(`  ${m}`));
      },
    });
  }
  steps.push(
    onOptima('swa', 1, async (gpu, data) => {
      log('weight averaging vs ensembling');
      const swa = pick<Record<string, unknown>>(
        { lrs: [0.01, 0.1, 0.2], snapshots: 6, every: 50 },
        { lrs: [0.01, 0.1, 0.2], snapshots: 10, every: 200 },
        { lrs: [0.01, 0.2], snapshots: 2, every: 5, images: 50 },
      );
      await swaCommand(gpu, data, { modelFile: optimum(0), ...swa }, join(out, 'swa'), (m) => log(`  ${m}`));
    }),
  );
  return steps;
}

export async function runFortFigures(
  gpu: Gpu | null,
  o: OptionInput<typeof FORT_FIGURES.options>,
  dataDir: string,
  data: Splits | null,
  log: (m: string) => void,
): Promise<string> {
  checkTaskFlags(o);
  const scale: Scale = o.full ? 'full' : o.smoke ? 'smoke' : 'cpu';
  const sweep = !!o.tunnelSweep || scale === 'full';
  const out = o.out ?? join('runs', scale === 'full' ? 'fort-figures-full' : 'fort-figures');
  checkRunDir(out, 'fort-figures', 'the figure set');
  const settings = { scale, tunnelSweep: sweep, data: dataDir };
  if (o.task || o.gather) checkSameSettings(out, settings, ['scale', 'tunnelSweep']);
  // the set's own config.json; each step writes its own in its directory
  if (!o.gather) writeRunConfig(out, 'fort-figures', settings, gpu);
  const t0 = performance.now();
  const stamp = () => `[${((performance.now() - t0) / 1000).toFixed(0)} s]`;
  const steps = fortSteps(gpu, data, scale, sweep, dataDir, out, (m) => log(m.startsWith(' ') ? m : `${stamp()} ${m}`));
  if (!(await runOrGather('fort-figures', out, steps, o, log))) return out;
  const read = (d: string) => JSON.parse(readFileSync(join(out, d, 'metrics.json'), 'utf8'));
  const summary: Record<string, unknown> = { toy: read('toy') };
  const optima = steps.filter((s) => /^optima\/seed\d+$/.test(s.name)).map((s) => s.name);
  summary.optima_test_acc = optima.map((d) => read(d).test_acc);
  for (const d of ['connect-fort', 'connect-bezier', 'connect-triangle', 'connect-m3', 'connect-msweep', 'tunnels'])
    summary[d] = read(d);
  if (sweep) summary.tunnels_sweep = read('tunnels-sweep');
  summary.subspace = read('subspace');
  summary.swa = read('swa');
  const adapter = gpu?.adapterInfo ?? readRunConfig(out).adapter;
  const seconds = Math.round((performance.now() - t0) / 1000);
  const head = { scale, adapter, seconds_this_invocation: seconds, gathered: !!o.gather };
  writeFileSync(join(out, 'summary.json'), `${JSON.stringify({ ...head, ...summary }, null, 2)}\n`);
  const panels = [
    join(out, 'toy', 'hyperplanes.png'),
    join(out, 'toy', 'connector.png'),
    join(out, 'connect-fort', 'connect.png'),
    join(out, 'connect-fort', 'deviations.png'),
    join(out, 'connect-bezier', 'connect.png'),
    join(out, 'connect-triangle', 'triangle.png'),
    join(out, 'connect-msweep', 'short_directions.png'),
    join(out, 'tunnels', 'tunnels.png'),
    join(out, 'subspace', 'subspace.png'),
    join(out, 'swa', 'swa.png'),
    join(out, 'toy', 'radial.png'),
  ].filter(existsSync);
  const rows = Array.from({ length: Math.ceil(panels.length / 2) }, (_, r) => panels.slice(2 * r, 2 * r + 2));
  await tilesPng(rows, join(out, 'fort_summary.png'), 520);
  log(`${stamp()} done: ${join(out, 'fort_summary.png')}, summary.json`);
  return out;
}

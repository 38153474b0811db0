// `npm run exp:fort-figures`: the toy-model and real-network experiments of Fort & Jastrzebski 2019 at CPU-sized scale
// (Fashion-MNIST, the paper's 16-32-32 tanh SimpleCNN), or with --full at larger sizes for a GPU. Every step writes its
// own run directory and is skipped when its metrics.json exists, so the script resumes after an interruption. Ends with
// summary.json (each step's metrics) and fort_summary.png (the main pictures side by side).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Gpu } from '../engine/device.ts';
import type { Dataset } from '../data/dataset.ts';
import { runTrain, trainConfig } from '../landscape/train.ts';
import { readCheckpoint } from '../models/checkpoint.ts';
import { runToy } from './toy.ts';
import { runConnect } from './connect.ts';
import type { ConnectOptions } from './connectors.ts';
import { runMSweep } from './msweep.ts';
import { tunnelsCommand } from './tunnels.ts';
import { subspaceCommand } from './subspace.ts';
import { swaCommand } from './swa.ts';
import { defineCommand, type OptionInput } from '../options/index.ts';
import { checkRunDir, writeRunConfig } from '../run/run-info.ts';

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
  },
});

async function gridPng(files: string[], path: string, w = 520): Promise<void> {
  const tiles = await Promise.all(
    files.filter(existsSync).map(async (f) => {
      const buf = await sharp(f).resize({ width: w }).png().toBuffer();
      return { buf, h: (await sharp(buf).metadata()).height ?? w };
    }),
  );
  const cols = 2,
    rowsN = Math.ceil(tiles.length / cols);
  const rowH = Array.from({ length: rowsN }, (_, r) =>
    Math.max(...tiles.slice(r * cols, r * cols + cols).map((t) => t.h)),
  );
  const top = (r: number) => rowH.slice(0, r).reduce((a, b) => a + b + 10, 0);
  await sharp({ create: { width: cols * (w + 10), height: top(rowsN), channels: 3, background: '#ffffff' } })
    .composite(tiles.map((t, i) => ({ input: t.buf, left: (i % cols) * (w + 10), top: top(Math.floor(i / cols)) })))
    .png()
    .toFile(path);
}

export async function runFortFigures(
  gpu: Gpu,
  o: OptionInput<typeof FORT_FIGURES.options>,
  dataDir: string,
  data: { train: Dataset; test: Dataset },
  log: (m: string) => void,
): Promise<string> {
  const full = !!o.full;
  const out = o.out ?? join('runs', full ? 'fort-figures-full' : 'fort-figures');
  checkRunDir(out, 'fort-figures', 'the figure set');
  // the set's own config.json; each step writes its own in its directory
  writeRunConfig(
    out,
    'fort-figures',
    { scale: full ? 'full' : 'cpu', tunnelSweep: !!o.tunnelSweep, data: dataDir },
    gpu,
  );
  const t0 = performance.now();
  const stamp = () => `[${((performance.now() - t0) / 1000).toFixed(0)} s]`;
  const done = (d: string) => existsSync(join(out, d, 'metrics.json'));
  const summary: Record<string, unknown> = {};
  const read = (d: string) => JSON.parse(readFileSync(join(out, d, 'metrics.json'), 'utf8'));

  if (!done('toy')) {
    log(`${stamp()} toy landscape`);
    const toy = full ? { D: 1000, ns: [200, 500, 800, 950], steps: 8000, rays: 64 } : { D: 100, steps: 3000 };
    await runToy(gpu, toy, join(out, 'toy'), (m) => log(`  ${m}`));
  }
  summary.toy = read('toy');

  // SimpleCNN optima from independent initializations
  const nOptima = full ? 11 : 6;
  const optimum = (i: number) => join(out, 'optima', `seed${i + 1}`, 'model.safetensors');
  for (let i = 0; i < nOptima; i++) {
    if (existsSync(optimum(i))) continue;
    log(`${stamp()} training SimpleCNN optimum ${i + 1}/${nOptima}`);
    const dir = join(out, 'optima', `seed${i + 1}`);
    const cfg = trainConfig(
      {
        model: 'simplecnn',
        epochs: full ? 20 : 2,
        batch: 64,
        lr: 0.05,
        wd: 0,
        seed: i + 1,
        trainImages: full ? 0 : 4000,
        evalImages: 2000,
        data: dataDir,
      },
      () => dataDir,
    );
    await runTrain(gpu, cfg, data, dir, existsSync(join(dir, 'checkpoint', 'state.json')), {
      log: (m) => log(`  ${m}`),
    });
  }
  const cks = Array.from({ length: nOptima }, (_, i) => readCheckpoint(optimum(i), data.train.shape));
  summary.optima_test_acc = cks.map(
    (_, i) => JSON.parse(readFileSync(join(out, 'optima', `seed${i + 1}`, 'metrics.json'), 'utf8')).test_acc,
  );

  const base: ConnectOptions = {
    method: 'fort',
    points: full ? 9 : 5,
    steps: full ? 1000 : 100,
    lr: 1e-3,
    batch: full ? 128 : 32,
    images: full ? 5000 : 500,
    dense: full ? 61 : 21,
    seed: 1,
    probes: full ? 16 : 4,
    tPerStep: full ? 4 : 2,
  };
  const connects: [string, typeof cks, ConnectOptions][] = [
    ['connect-fort', cks.slice(0, 2), { ...base, points: full ? 9 : 7, steps: full ? 1000 : 200 }],
    ['connect-bezier', cks.slice(0, 2), { ...base, method: 'bezier', probes: 0, steps: full ? 1000 : 200 }],
    ['connect-triangle', cks.slice(0, 3), { ...base, points: full ? 4 : 2, probes: 0, steps: full ? 1000 : 100 }],
    ['connect-m3', cks.slice(0, 4), { ...base, probes: full ? 16 : 4, steps: full ? 1000 : 100 }],
  ];
  for (const [name, set, o] of connects) {
    if (!done(name)) {
      log(`${stamp()} ${name}`);
      await runConnect(gpu, set, data, o, join(out, name), (m) => log(`  ${m}`));
    }
    summary[name] = read(name);
  }
  if (!done('connect-msweep')) {
    log(`${stamp()} short directions at the centre of m-connectors, m = 1..${nOptima - 1}`);
    await runMSweep(
      gpu,
      cks,
      data,
      { ...base, probes: full ? 32 : 8, steps: full ? 1000 : 100 },
      join(out, 'connect-msweep'),
      (m) => log(`  ${m}`),
    );
  }
  summary['connect-msweep'] = read('connect-msweep');
  if (!done('tunnels')) {
    log(`${stamp()} radial tunnels around optimum 1`);
    const t = { modelFile: optimum(0), rays: full ? 64 : 16, images: full ? 2000 : 300, max: 3 };
    await tunnelsCommand(gpu, data, dataDir, t, join(out, 'tunnels'), (m) => log(`  ${m}`));
  }
  summary.tunnels = read('tunnels');
  if ((o.tunnelSweep || full) && !done('tunnels-sweep')) {
    log(`${stamp()} tunnel widths over learning rate, L2, dropout and batch size`);
    const t = {
      sweep: true,
      rays: full ? 32 : 8,
      images: full ? 2000 : 300,
      points: full ? 21 : 16,
      max: 3,
      sweepEpochs: full ? 10 : 2,
      sweepImages: full ? 60000 : 4000,
    };
    await tunnelsCommand(gpu, data, dataDir, t, join(out, 'tunnels-sweep'), (m) => log(`  ${m}`));
  }
  if (done('tunnels-sweep')) summary.tunnels_sweep = read('tunnels-sweep');
  if (!done('subspace')) {
    log(`${stamp()} random-subspace training`);
    const sub = full
      ? { models: ['mlp', 'simplecnn'], ds: [10, 30, 100, 300, 1000, 3000], steps: 3000 }
      : { models: ['mlp', 'simplecnn'], ds: [10, 50, 250, 1000], steps: 300, batch: 64, evalImages: 1000 };
    await subspaceCommand(gpu, data, sub, join(out, 'subspace'), (m) => log(`  ${m}`));
  }
  summary.subspace = read('subspace');
  if (!done('swa')) {
    log(`${stamp()} weight averaging vs ensembling`);
    const swa = { modelFile: optimum(0), lrs: [0.01, 0.1, 0.2], snapshots: full ? 10 : 6, every: full ? 200 : 50 };
    await swaCommand(gpu, data, swa, join(out, 'swa'), (m) => log(`  ${m}`));
  }
  summary.swa = read('swa');
  writeFileSync(
    join(out, 'summary.json'),
    `${JSON.stringify(
      {
        scale: full ? 'full' : 'cpu',
        adapter: gpu.adapterInfo,
        seconds_this_invocation: Math.round((performance.now() - t0) / 1000),
        ...summary,
      },
      null,
      2,
    )}\n`,
  );
  await gridPng(
    [
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
    ],
    join(out, 'fort_summary.png'),
  );
  log(`${stamp()} done: ${join(out, 'fort_summary.png')}, summary.json`);
  return out;
}

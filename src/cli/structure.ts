// The landscape-structure commands (Fort & Jastrzebski 2019): connect, subspace, tunnels, swa, fort-figures and toy.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadSplits } from '../data/datasets.ts';
import { fashionMnistDir } from '../data/fashion-mnist.ts';
import { readCheckpoint } from '../models/checkpoint.ts';
import { runConnect } from '../structure/connect.ts';
import type { ConnectOptions } from '../structure/connectors.ts';
import { runMSweep } from '../structure/msweep.ts';
import { SUBSPACE, subspaceCommand } from '../structure/subspace.ts';
import { TUNNELS, tunnelsCommand } from '../structure/tunnels.ts';
import { SWA, swaCommand } from '../structure/swa.ts';
import { FORT_FIGURES, runFortFigures } from '../structure/fort-figures.ts';
import { TOY, runToy } from '../structure/toy.ts';
import { checkTaskFlags, defineCommand } from '../options/index.ts';
import { checkpointData, command, fashionExperiment, withGpu, type Command } from './common.ts';
import { defaultRunDir } from '../run/run-info.ts';

export const CONNECT = defineCommand({
  name: 'connect',
  summary:
    "low-loss connectors between checkpoints: Fort's hyperplane algorithm (also m-connectors for 3+), " +
    'Bezier / polychain curves (--help)',
  usage: 'loss-atlas connect A.safetensors B.safetensors [C.safetensors ...] [flags]',
  description: `\
Low-loss connectors between trained networks (same architecture). Two checkpoints: Fort & Jastrzebski's connector
(--method fort: --points points on the segment, each optimized with gradient and step kept in the hyperplane normal to
it, joined by straight segments) or Garipov et al.'s curves (--method bezier | polychain: one trainable bend, several
random t per step); evaluated at --dense points along the path against the straight line, on train and test images.
Three checkpoints: an m-connector over the triangle (a barycentric lattice of resolution --points, every non-vertex
point optimized in the hyperplane normal to the simplex), shown as a triangle map; four to eleven: the centre of the
simplex. Writes connect.png (paths), deviations.png (cosine similarity of the deviations from the line), triangle.png,
connect.json, connector.safetensors (the nodes), metrics.json (barrier = max loss on the path minus the mean of the
endpoints; short directions) into --out (default runs/connect-<time>).`,
  positionals: {
    placeholder: 'CHECKPOINT',
    min: 2,
    help: 'model.safetensors files of loss-atlas train or ONNX files (same architecture)',
    missing: 'give two or more checkpoint files (model.safetensors of loss-atlas train, or .onnx)',
  },
  options: {
    method: { type: 'enum', choices: ['fort', 'bezier', 'polychain'], default: 'fort', help: 'the connector' },
    points: {
      type: 'integer',
      min: 1,
      defaultText: '9; lattice resolution 4 for three checkpoints',
      help: 'fort: points on the segment, or the lattice resolution',
    },
    steps: { type: 'integer', min: 1, default: 300, help: 'optimization steps' },
    lr: { type: 'number', above: 0, default: 1e-3, help: 'Adam learning rate' },
    batch: { type: 'integer', min: 1, default: 128, help: 'images per step' },
    images: { type: 'integer', min: 1, default: 1000, help: 'images per split for the evaluation' },
    dense: { type: 'integer', min: 3, default: 41, help: 'points of the evaluation along the path' },
    't-per-step': { type: 'integer', min: 1, default: 4, help: 'bezier / polychain: random t per step' },
    probes: {
      type: 'integer',
      min: 0,
      defaultText: '0; 8 with --m-sweep',
      help: 'Hutchinson probes for the number of short directions (tr(H)^2 / tr(H^2)) along the path',
    },
    'm-sweep': {
      type: 'boolean',
      help:
        'with three or more checkpoints: short directions at the optimized centre of the m-connector of the first ' +
        'm + 1 checkpoints, for every m (and at the flat centre and optimum 1), plotted against m ' +
        '(short_directions.png, msweep.json; resumes)',
    },
    seed: { type: 'integer', min: 0, default: 1, help: 'seed of the batches and probes' },
    data: { type: 'string', placeholder: 'DIR', help: "the checkpoints' dataset directory" },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/connect-<time>', help: 'run directory' },
  },
});

const connect = command(CONNECT, async ({ options: f, positionals: files, globals }) => {
  for (const a of files) if (!existsSync(a)) throw new Error(`${a}: no such checkpoint file`);
  const data = await checkpointData(files[0], f.data);
  const cks = files.map((a) => readCheckpoint(a, data.train.shape));
  const o: ConnectOptions = {
    method: f.method,
    points: f.points ?? (files.length === 3 ? 4 : 9),
    steps: f.steps,
    lr: f.lr,
    batch: f.batch,
    images: f.images,
    dense: f.dense,
    seed: f.seed,
    probes: f.probes ?? (f.mSweep ? 8 : 0),
    tPerStep: f.tPerStep,
  };
  const out = f.out ?? defaultRunDir('connect');
  return withGpu(globals, async (gpu) => {
    if (f.mSweep) {
      const ms = await runMSweep(gpu, cks, data, o, out, (m) => console.log(m));
      const short = (ms.centre_short_directions as number[]).map((v) => v.toFixed(1)).join(', ');
      console.log(`short directions at the m-connector centres: ${short} for m = 1..${cks.length - 1}`);
      console.log(`wrote ${out}/short_directions.png, msweep.json, metrics.json`);
      return 0;
    }
    const r = await runConnect(gpu, cks, data, o, out, (m) => console.log(m));
    const metrics = JSON.stringify(r.metrics, (k, v) => (k === 'short_directions' ? undefined : v), 1);
    console.log(metrics.replace(/\n\s*/g, ' '));
    console.log(`wrote ${out}/metrics.json and the plots`);
    return 0;
  });
});

const subspace = fashionExperiment(SUBSPACE, async (gpu, { data, out }, { options }) => {
  await subspaceCommand(gpu, data, options, out, (m) => console.log(m));
  return `wrote ${join(out, 'subspace.png')}, metrics.json, config.json`;
});

const tunnelsRun = fashionExperiment(TUNNELS, async (gpu, { data, dataDir, out }, { options }) => {
  const r = await tunnelsCommand(gpu, data, dataDir, options, out, (m) => console.log(m));
  return r.task ? `task done: ${out}` : `wrote ${out}/metrics.json, config.json and the plot`;
});
// --sweep --gather: the plot from the optima in --out, without a GPU or the dataset
const tunnels = command(TUNNELS, async (inv) => {
  checkTaskFlags(inv.options);
  if (!inv.options.gather) return tunnelsRun.run(inv);
  await tunnelsCommand(null, null, '', inv.options, inv.options.out!, (m) => console.log(m));
  console.log(`wrote ${inv.options.out}/sweep.png, metrics.json`);
  return 0;
});

const swa = fashionExperiment(SWA, async (gpu, { data, out }, { options }) => {
  await swaCommand(gpu, data, options, out, (m) => console.log(m));
  return `wrote ${join(out, 'swa.png')}, metrics.json, config.json`;
});

const fortFigures = command(FORT_FIGURES, async ({ options: o, globals }) => {
  const dataDir = fashionMnistDir(o.data);
  // --gather draws from the finished steps without a GPU or the dataset
  if (o.gather) return runFortFigures(null, o, dataDir, null, (m) => console.log(m)).then(() => 0);
  const data = await loadSplits('fashion-mnist', dataDir);
  return withGpu(globals, async (gpu) => {
    await runFortFigures(gpu, o, dataDir, data, (m) => console.log(m));
    return 0;
  });
});

const toy = command(TOY, async ({ options: o, globals }) => {
  const out = o.out ?? defaultRunDir('toy');
  return withGpu(globals, async (gpu) => {
    await runToy(gpu, o, out, (m) => console.log(m));
    console.log(`wrote ${join(out, 'hyperplanes.png')}, connector.png, radial.png, metrics.json`);
    return 0;
  });
});

export const STRUCTURE_COMMANDS: Record<string, Command> = {
  connect,
  subspace,
  tunnels,
  swa,
  'fort-figures': fortFigures,
  toy,
};

// The loss-surface commands (Li et al. 2018) besides the grid maps: train, interpolate, trajectory, report,
// li-figures and demo.
import { checkResumable, defaultRunDir, freshRunDir, readRunConfig, resumeWithLr } from '../run/run-info.ts';
import { join } from 'node:path';
import { loadSplits } from '../data/datasets.ts';
import { fashionMnistDir } from '../data/fashion-mnist.ts';
import { cifar10Dir } from '../data/cifar10.ts';
import { untilStopped } from '../run/stop.ts';
import { writeReport } from '../viz/report.ts';
import { DIR_NORMS } from '../landscape/directions.ts';
import { TRAIN, runTrain, trainConfig, type TrainConfig } from '../landscape/train.ts';
import { runInterpolate } from '../landscape/interpolate.ts';
import { runTrajectory } from '../landscape/trajectory.ts';
import { LI_FIGURES, runLiFigures } from '../landscape/li-figures.ts';
import { DEMO, runDemo } from '../landscape/demo.ts';
import { UsageError, checkResumeFlags, defineCommand, linspace } from '../options/index.ts';
import { dirFile, directionOptions, directionSettings } from './checkpoint-flags.ts';
import { checkpointsAndData, command, withGpu, type Command } from './common.ts';

export const INTERPOLATE = defineCommand({
  name: 'interpolate',
  summary:
    'loss and accuracy along a line: between two checkpoints, or along a random filter-normalized direction ' +
    '(--help)',
  usage: 'loss-atlas interpolate --model-file A.safetensors [--model-file2 B.safetensors] [flags]',
  description: `\
1-D loss and accuracy along theta1 + alpha * d: d = theta2 - theta1 with --model-file2 (default alphas -0.5:1.5:401),
else a random direction (default -1:1:51) normalized per --norm (${DIR_NORMS.join(', ')}; default filter).
Writes interpolate.json, interpolate.png (loss and accuracy on twin axes), direction.safetensors (random direction)
and config.json into --out (default runs/interpolate-<time>).`,
  options: {
    'model-file': {
      type: 'string',
      placeholder: 'FILE',
      required: true,
      help: 'the checkpoint: a model.safetensors of loss-atlas train, or an ONNX file (its initializers)',
    },
    'model-file2': { type: 'string', placeholder: 'FILE', help: 'a second checkpoint: the direction is B - A' },
    x: { type: 'range', defaultText: '-0.5:1.5:401 with --model-file2, else -1:1:51', help: 'alphas' },
    ...directionOptions(1000),
    seed: { type: 'integer', min: 0, default: 123, help: 'seed of the random direction and the images' },
    log: { type: 'boolean', help: 'log-scale loss axis' },
    'loss-max': { type: 'number', above: 0, default: 5, help: 'loss axis clipped there' },
    data: { type: 'string', placeholder: 'DIR', help: "the model's dataset directory" },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/interpolate-<time>', help: 'run directory' },
  },
});

export const TRAJECTORY = defineCommand({
  name: 'trajectory',
  summary:
    "a training run's path on the loss surface of its two PCA directions: trajectory --run DIR " +
    '(a train run with --snapshots)',
  description: `\
The weights of a training run's snapshots projected on their two principal directions (from the final weights), on
the loss surface of those directions. Writes trajectory.png (contours and the path, explained variance on the axes),
trajectory.json and surface/ into --out (default DIR/trajectory).`,
  options: {
    run: { type: 'string', placeholder: 'DIR', required: true, help: 'a loss-atlas train run that saved snapshots' },
    grid: { type: 'integer', min: 2, default: 21, help: 'surface points per side' },
    images: { type: 'count', default: 500, help: 'images per point' },
    margin: { type: 'number', min: 0, default: 0.3, help: 'margin around the path, as a fraction of its extent' },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'DIR/trajectory', help: 'output directory' },
    data: { type: 'string', placeholder: 'DIR', defaultText: "the run's", help: 'dataset directory' },
  },
});

export const REPORT = defineCommand({
  name: 'report',
  summary:
    'HTML: index.html for a run directory (pictures, results, settings, data links), or a gallery of the runs ' +
    'under a folder (default runs/)',
  description: `\
Writes index.html into a run directory (its pictures, results, settings and data files), or, for a folder of runs,
a gallery of them with a page per run.`,
  positionals: { placeholder: 'DIR', min: 0, max: 1, help: 'a run directory or a folder of runs (default runs)' },
  options: {},
  globals: ['help'],
});

const train = command(TRAIN, async ({ options: o, globals, given }) => {
  let cfg: TrainConfig, out: string;
  const resume = o.resume ?? null;
  if (resume) {
    checkResumeFlags(given, resume, ['lr']);
    cfg = readRunConfig(resume, { kind: 'train', legacy: 'train' }).settings as unknown as TrainConfig;
    out = resume;
    checkResumable(resume, 'train');
    if (given?.includes('lr') && o.lr !== cfg.lr) cfg.lr = resumeWithLr(resume, o.lr, cfg.lr);
  } else {
    cfg = trainConfig(o, (ds, f) => (ds === 'cifar10' ? cifar10Dir(f) : fashionMnistDir(f)));
    out = o.out ?? defaultRunDir(`train-${cfg.model}`);
    const note = freshRunDir(out, 'train', 'train');
    if (note) console.error(note);
  }
  const data = await loadSplits(cfg.dataset, cfg.data);
  return withGpu(globals, async (gpu) => {
    console.log(`run directory: ${out}`);
    return untilStopped('this epoch', async (shouldStop) => {
      const m = await runTrain(gpu, cfg, data, out, !!resume, { log: (l) => console.log(l), shouldStop });
      const weights = join(out, 'model.safetensors');
      console.log(`done: test accuracy ${(m.test_acc * 100).toFixed(2)}%, weights in ${weights}`);
      return 0;
    });
  });
});

const interpolate = command(INTERPOLATE, async ({ options: o, globals }) => {
  const {
    a,
    others: [b],
    data,
  } = await checkpointsAndData(o.modelFile, [o.modelFile2], o.data);
  const { norm, ignoreBiasBn, images, dirType, bnStats } = directionSettings(o);
  const x = o.x?.spec ?? (b ? '-0.5:1.5:401' : '-1:1:51');
  const out = o.out ?? defaultRunDir('interpolate');
  if (b && o.dirFile !== undefined) {
    throw new UsageError('--dir-file and --model-file2: the direction is either B - A or the saved one');
  }
  return withGpu(globals, async (gpu) => {
    const what = b ? ' between two checkpoints' : ` along a random ${norm}-normalized direction`;
    console.log(`${linspace(x, 'x').length} points of ${a.model}${what}, ${images || 'all'} images per split`);
    const saved = b ? undefined : dirFile(o.dirFile, a, data.train.shape, [''])?.[0];
    const opts = {
      x,
      norm,
      ignoreBiasBn,
      dirType,
      bnStats,
      seed: o.seed,
      images,
      logScale: o.log,
      lossMax: o.lossMax,
      direction: saved,
    };
    const r = await runInterpolate(gpu, a, b, data, opts, out);
    const k0 = r.alpha.reduce((best, al, k) => (Math.abs(al) < Math.abs(r.alpha[best]) ? k : best), 0);
    const at = `test loss ${r.test_loss[k0].toFixed(4)}, accuracy ${(100 * r.test_acc[k0]).toFixed(1)}%`;
    console.log(`alpha ${r.alpha[k0]}: ${at}; max test loss ${Math.max(...r.test_loss).toFixed(3)}`);
    console.log(`wrote ${join(out, 'interpolate.png')} and interpolate.json`);
    return 0;
  });
});

const trajectory = command(TRAJECTORY, async ({ options: o, globals }) => {
  const tc = readRunConfig(o.run, { kind: 'train', legacy: 'train' }).settings as unknown as TrainConfig;
  const data = await loadSplits(tc.dataset, o.data ?? tc.data);
  const { grid, images, margin } = o;
  const out = o.out ?? join(o.run, 'trajectory');
  return withGpu(globals, async (gpu) => {
    const r = await runTrajectory(gpu, o.run, data, { grid, images, margin }, out);
    const [e0, e1] = r.pca.explained;
    const explained = `${(100 * e0).toFixed(1)}% and ${(100 * e1).toFixed(1)}%`;
    console.log(`explained variance: ${explained}; wrote ${join(out, 'trajectory.png')}`);
    return 0;
  });
});

const report = command(REPORT, async ({ positionals }) => {
  const root = positionals[0] ?? 'runs';
  const r = writeReport(root);
  console.log(`${r.runs} run${r.runs === 1 ? '' : 's'}; open ${join(root, 'index.html')}`);
  return 0;
});

// --gather draws from the finished steps without a GPU
const liFigures = command(LI_FIGURES, async ({ options: o, globals }) => {
  const log = (m: string) => console.log(m);
  if (o.gather) return runLiFigures(null, o, log).then(() => 0);
  return withGpu(globals, async (gpu) => {
    await runLiFigures(gpu, o, log);
    return 0;
  });
});

const demo = command(DEMO, async ({ options: o, globals }) => withGpu(globals, (gpu) => runDemo(gpu, o)));

export const LANDSCAPE_COMMANDS: Record<string, Command> = {
  train,
  interpolate,
  trajectory,
  report,
  'li-figures': liFigures,
  demo,
};

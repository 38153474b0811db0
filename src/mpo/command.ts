// `loss-atlas mpo`: presets, the flag table, Ctrl-C -> checkpoint, resume.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { fashionMnistDir } from '../data/fashion-mnist.ts';
import type { Dataset } from '../data/dataset.ts';
import { cifar10Dir } from '../data/cifar10.ts';
import { dataKind, loadSplits } from '../data/datasets.ts';
import { runMpo, type MpoConfig } from './mpo.ts';
import { type MpoPreset as Preset, PRESETS } from './presets.ts';
import { untilStopped } from '../run/stop.ts';
import { checkResumable, freshRunDir, readRunConfig, resumeWithLr } from '../run/run-info.ts';
import { formatDuration as fmtTime, progress } from '../run/progress.ts';
import { ICONS } from './masks.ts';
import { MODEL_NAMES, colourModel, modelId, modelSpec } from '../models/zoo.ts';
import { isOnnxPath } from '../models/onnx.ts';
import { checkResumeFlags, defineCommand, type OptionInput, type OptionTable } from '../options/index.ts';

/** What --help shows for a setting that comes from the preset: its value in each preset (one value if they agree). */
const fromPresets = (k: keyof Preset): string => {
  const byValue = new Map<string, string[]>();
  for (const [n, p] of Object.entries(PRESETS)) byValue.set(String(p[k]), [...(byValue.get(String(p[k])) ?? []), n]);
  return byValue.size === 1 ? [...byValue.keys()][0] : [...byValue].map(([v, ns]) => `${v} ${ns.join('/')}`).join(', ');
};

/** The flags of `loss-atlas mpo` (also taken by profile and bn-compare). */
export const MPO_OPTIONS = {
  preset: {
    type: 'enum',
    choices: ['quick', 'fashion-pattern', 'cifar-pattern'],
    placeholder: 'NAME',
    defaultText: 'fashion-pattern',
    help: 'starting settings',
  },
  quick: { type: 'boolean', help: 'the CPU-sized settings (= --preset quick)' },
  mask: {
    type: 'string',
    placeholder: 'SPEC',
    defaultText: fromPresets('mask'),
    help:
      `an icon (${Object.keys(ICONS).join(', ')}), an image path (PNG/JPEG), random:P[:SEED] (30x30 random ` +
      'squares) or grid:N ((2N+1)^2 square grid)',
  },
  grid: {
    type: 'integer',
    min: 3,
    max: 200,
    defaultText: fromPresets('grid'),
    help: 'icon / image grid size (cells per side)',
  },
  model: {
    type: 'string',
    placeholder: 'NAME',
    check: (v: string) =>
      (MODEL_NAMES as readonly string[]).includes(v) || isOnnxPath(v)
        ? null
        : `one of ${MODEL_NAMES.join(', ')}, or an ONNX file (.onnx)`,
    defaultText: fromPresets('model'),
    help: `the network: ${MODEL_NAMES.join(', ')}, or an ONNX file (FILE.onnx: its graph and weights)`,
  },
  dataset: {
    type: 'enum',
    choices: ['fashion-mnist', 'cifar10'],
    defaultText: "the model's; tiny and small take either",
    help: 'the training data',
  },
  bn: { type: 'boolean', help: 'batch norm in every conv block' },
  skip: { type: 'boolean', help: 'residual blocks (squares model)' },
  steps: { type: 'integer', min: 0, defaultText: fromPresets('steps'), help: 'training steps' },
  batch: { type: 'integer', min: 2, max: 8192, defaultText: fromPresets('batch'), help: 'images per step' },
  lr: { type: 'number', min: 1e-8, max: 1, defaultText: fromPresets('lr'), help: 'Adam learning rate' },
  'cells-per-step': {
    type: 'integer',
    min: 1,
    max: 10_000,
    defaultText: fromPresets('cellsPerStep'),
    help: 'good and bad cells sampled per step (each)',
  },
  'neg-coef': {
    type: 'number',
    min: 0,
    defaultText: fromPresets('negCoef'),
    help: 'c in J = mean good-cell loss - c * mean clamped bad-cell loss',
  },
  clamp: {
    type: 'number',
    min: 0,
    defaultText: fromPresets('clamp'),
    help: 'bad cells above this loss get no gradient (tau)',
  },
  clip: { type: 'number', min: 0, defaultText: fromPresets('clipNorm'), help: 'gradient-norm clip' },
  seed: { type: 'integer', min: 0, max: 2 ** 31, defaultText: fromPresets('seed'), help: 'random seed' },
  'eval-images': {
    type: 'count',
    min: 1,
    defaultText: fromPresets('evalImages'),
    help: 'images per split evaluated at every cell of the maps',
  },
  pad: {
    type: 'integer',
    min: 0,
    max: 100,
    defaultText: fromPresets('pad'),
    help: 'margin cells around the mask in the maps',
  },
  'train-images': { type: 'integer', min: 0, defaultText: '0 = all', help: 'use only the first N training images' },
  'warmup-epochs': {
    type: 'integer',
    min: 0,
    defaultText: `${fromPresets('warmupEpochs')}; 0 = off`,
    help: 'early stop after N epochs if good - bad accuracy < 0.01',
  },
  'checkpoint-every': {
    type: 'integer',
    min: 1,
    defaultText: fromPresets('checkpointEvery'),
    help: 'steps between checkpoints',
  },
  'log-every': { type: 'integer', min: 1, defaultText: fromPresets('logEvery'), help: 'steps between log.jsonl lines' },
  data: {
    type: 'string',
    placeholder: 'DIR',
    help: 'dataset directory (Fashion-MNIST IDX .gz, or CIFAR-10 binary batches)',
  },
  out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/<preset>-<time>', help: 'run directory' },
  resume: {
    type: 'string',
    placeholder: 'DIR',
    help: 'continue the run in DIR from its last checkpoint (settings from DIR/config.json)',
  },
} as const satisfies OptionTable;
export type MpoOptions = OptionInput<typeof MPO_OPTIONS>;

export const MPO = defineCommand({
  name: 'mpo',
  summary: 'multi-point optimization: draw a picture into the loss landscape (--help for flags)',
  usage: 'loss-atlas mpo [--preset quick|fashion-pattern|cifar-pattern] [flags]',
  description: `\
Trains a plane of weights so that the loss over a grid of cells draws a picture (Skorokhodov & Burtsev 2019).
Writes config.json, log.jsonl, checkpoint/, mask.png, loss_{train,test}.png, acc_{train,test}.png, summary.png,
grid_{train,test}.npy ([rows, cols, 2] = mean CE, accuracy), plane.safetensors and, last, metrics.json.
The settings not given come from the preset (defaults below: a value per preset where they differ).`,
  options: MPO_OPTIONS,
  footer: 'Ctrl-C saves a checkpoint and stops; --resume continues it.',
});

/** The run's settings: the preset (--quick, --preset, else `defaultPreset`) with the given flags over it. */
export function mpoConfig(o: MpoOptions, defaultPreset = 'fashion-pattern'): MpoConfig {
  const presetName = o.quick ? 'quick' : (o.preset ?? defaultPreset);
  return withMpoFlags({ ...PRESETS[presetName], experiment: presetName, data: '' }, o);
}

/**
 * `base` with the mpo flags given in `o` over it (a flag not given keeps base's value); the dataset follows
 * the model unless --dataset is given, and --data (or the dataset's default folder) is its directory.
 */
export function withMpoFlags(base: MpoConfig, o: Omit<MpoOptions, 'preset' | 'quick' | 'resume' | 'out'>): MpoConfig {
  const c: MpoConfig = { ...base };
  c.mask = o.mask ?? c.mask;
  c.model = o.model === undefined ? c.model : modelId(o.model);
  if (o.bn) c.bn = true;
  if (o.skip) c.skip = true;
  c.grid = o.grid ?? c.grid;
  c.steps = o.steps ?? c.steps;
  c.batch = o.batch ?? c.batch;
  c.lr = o.lr ?? c.lr;
  c.cellsPerStep = o.cellsPerStep ?? c.cellsPerStep;
  c.clamp = o.clamp ?? c.clamp;
  c.clipNorm = o.clip ?? c.clipNorm;
  c.negCoef = o.negCoef ?? c.negCoef;
  c.seed = o.seed ?? c.seed;
  c.pad = o.pad ?? c.pad;
  c.trainImages = o.trainImages ?? c.trainImages;
  c.warmupEpochs = o.warmupEpochs ?? c.warmupEpochs;
  c.checkpointEvery = o.checkpointEvery ?? c.checkpointEvery;
  c.logEvery = o.logEvery ?? c.logEvery;
  c.evalImages = o.evalImages ?? c.evalImages;
  const fashionOnly = c.model === 'icons' || c.model === 'squares';
  const modelData = colourModel(c.model) ? 'cifar10' : fashionOnly ? 'fashion-mnist' : c.dataset;
  c.dataset = o.dataset ?? modelData;
  c.data = c.dataset === 'cifar10' ? cifar10Dir(o.data) : fashionMnistDir(o.data);
  return c;
}

export function loadData(c: MpoConfig): Promise<{ train: Dataset; test: Dataset }> {
  return loadSplits(c.dataset, c.data, { shape: isOnnxPath(c.model) ? modelSpec(c.model).input : undefined });
}

/** An mpo run to start or continue: its settings (from --resume DIR's config.json, else the flags) and directory. */
export interface MpoRun {
  cfg: MpoConfig;
  out: string;
  resume: boolean;
}

/** The run `loss-atlas mpo` makes of its flags, before any GPU work (a config.json of another kind is refused). */
export function mpoRunDir(o: MpoOptions, defaultPreset = 'fashion-pattern', given?: string[]): MpoRun {
  if (o.resume !== undefined) {
    checkResumeFlags(given, o.resume, ['lr']);
    if (!existsSync(join(o.resume, 'config.json'))) {
      throw new Error(`--resume ${o.resume}: no config.json there (not a run directory?)`);
    }
    // the settings as written, without the header fields and the derived parameter count
    const { parameters: _, ...cfg } = readRunConfig(o.resume, { kind: 'mpo', legacy: 'mpo' }).settings;
    checkResumable(o.resume, 'mpo');
    if (o.lr !== undefined && o.lr !== cfg.lr) cfg.lr = resumeWithLr(o.resume, o.lr, cfg.lr as number);
    return { cfg: cfg as unknown as MpoConfig, out: o.resume, resume: true };
  }
  const cfg = mpoConfig(o, defaultPreset);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const out = o.out ?? join('runs', `${cfg.experiment}-${stamp}`);
  const note = freshRunDir(out, 'mpo', 'mpo');
  if (note) console.error(note);
  return { cfg, out, resume: false };
}

export async function mpoCommand(gpu: Gpu, run: MpoRun): Promise<number> {
  const { cfg, out, resume } = run;
  const cpu = gpu.isCpu;
  if (cpu && cfg.experiment !== 'quick' && cfg.steps > 2000) {
    console.error(
      `warning: ${gpu.adapterInfo.split(' / ').pop()} is a CPU adapter;` +
        ` the full ${cfg.experiment} settings (${cfg.steps} steps of ${cfg.batch} images)` +
        ` will take a very long time here. --quick runs a CPU-sized version.`,
    );
  }
  console.log(`run directory: ${out}`);
  console.log(`loading ${dataKind(cfg.dataset, cfg.data)} from ${cfg.data} ...`);
  const data = await loadData(cfg);
  return untilStopped('this step', async (shouldStop) => {
    const bar = progress(cfg.experiment, { unit: 'step' });
    const onStep = (step: number, total: number, good: number, bad: number, secs: number) =>
      bar(step, total, { 'good loss': good.toFixed(3), 'bad loss': bad.toFixed(3) }, secs);
    const hooks = { onStep, shouldStop, log: (m: string) => console.error(m) };
    const r = await runMpo(gpu, cfg, data, out, resume, hooks);
    const m = r.metrics;
    console.log(`\nfinished ${m.steps} steps in ${fmtTime(m.seconds)}${r.stoppedEarly ? ' (early stop)' : ''}`);
    console.log(
      `test:  acc_diff ${m.test.acc_diff.toFixed(3)}  loss_diff ${m.test.loss_diff.toFixed(3)}` +
        `  agreement ${m.test.agreement.toFixed(3)}`,
    );
    console.log(
      `train: acc_diff ${m.train.acc_diff.toFixed(3)}  loss_diff ${m.train.loss_diff.toFixed(3)}` +
        `  agreement ${m.train.agreement.toFixed(3)}`,
    );
    console.log(
      `pictures: ${join(out, 'summary.png')}` +
        ` (also mask.png, loss_test.png, acc_test.png, loss_train.png, acc_train.png)`,
    );
    return 0;
  });
}

// `loss-atlas mpo`: presets, flags, progress bar, Ctrl-C -> checkpoint, resume.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { fashionMnistDir, type Dataset } from '../data/fashion-mnist.ts';
import { cifar10Dir } from '../data/cifar10.ts';
import { loadSplits } from '../data/datasets.ts';
import { Interrupted, runMpo, type MpoConfig } from './mpo.ts';
import { stopOnSignal } from './stop.ts';
import { ICONS } from './masks.ts';
import { MODEL_NAMES } from '../models/zoo.ts';

export const PRESETS: Record<string, Omit<MpoConfig, 'data' | 'experiment'>> = {
  /** Sized for a 2-core CPU with no GPU (lavapipe): a 12x12 heart on the 9.8k-parameter net, about 4 minutes there. */
  quick: {
    dataset: 'fashion-mnist', model: 'small', bn: false, skip: false, mask: 'heart', grid: 12, steps: 700, batch: 16, lr: 1e-3,
    cellsPerStep: 8, negCoef: 1, clamp: 2.5, clipNorm: 100, seed: 42, evalImages: 250, pad: 3, warmupEpochs: 0, trainImages: 0,
    checkpointEvery: 50, logEvery: 10,
  },
  /** The reference's Fashion-MNIST icon settings (icons-mask-hpo.yml at HEAD). */
  'fashion-pattern': {
    dataset: 'fashion-mnist', model: 'icons', bn: false, skip: false, mask: 'heart', grid: 50, steps: 11_800, batch: 512, lr: 2.5e-4,
    cellsPerStep: 50, negCoef: 1, clamp: 2.5, clipNorm: 100, seed: 42, evalImages: 1000, pad: 5, warmupEpochs: 30, trainImages: 0,
    checkpointEvery: 500, logEvery: 50,
  },
  /** The reference's CIFAR-10 settings: batch 256, 100 epochs, warm-up 50 epochs. */
  'cifar-pattern': {
    dataset: 'cifar10', model: 'cifar', bn: false, skip: false, mask: 'heart', grid: 50, steps: 19_600, batch: 256, lr: 2.5e-4,
    cellsPerStep: 50, negCoef: 1, clamp: 2.5, clipNorm: 100, seed: 42, evalImages: 1000, pad: 5, warmupEpochs: 50, trainImages: 0,
    checkpointEvery: 500, logEvery: 50,
  },
};

export const MPO_HELP = `usage: loss-atlas mpo [--preset quick|fashion-pattern|cifar-pattern] [flags]

Trains a plane of weights so that the loss over a grid of cells draws a picture (Skorokhodov & Burtsev 2019).
Writes config.json, log.jsonl, checkpoint/, mask.png, loss_{train,test}.png, acc_{train,test}.png, summary.png,
grid_{train,test}.npy ([rows, cols, 2] = mean CE, accuracy), plane.safetensors and, last, metrics.json.

  --preset NAME          starting settings (default fashion-pattern; --quick = --preset quick)
  --mask SPEC            an icon (${Object.keys(ICONS).join(', ')}), an image path (PNG/JPEG),
                         random:P[:SEED] (30x30 random squares) or grid:N ((2N+1)^2 square grid)
  --grid N               icon / image grid size (cells per side)
  --model NAME           ${MODEL_NAMES.join(', ')}
  --dataset NAME         fashion-mnist or cifar10 (default: the model's; tiny and small take either)
  --bn / --skip          batch norm in every conv block / residual blocks (squares model)
  --steps N              training steps          --batch N        images per step
  --lr X                 Adam learning rate      --cells-per-step N   good and bad cells sampled per step (each)
  --clamp X              bad cells above this loss get no gradient (tau)   --clip X   gradient-norm clip
  --seed N               --eval-images N|all     --pad N          margin cells around the mask in the maps
  --train-images N       use only the first N training images (0 = all)
  --warmup-epochs N      early stop after N epochs if good - bad accuracy < 0.01 (0 = off)
  --data DIR             dataset directory (Fashion-MNIST IDX .gz, or CIFAR-10 binary batches)
  --out DIR              run directory (default runs/<preset>-<timestamp>)
  --resume DIR           continue the run in DIR from its last checkpoint (settings from DIR/config.json)
  --verbose              print the GPU adapter and its limits
Ctrl-C saves a checkpoint and stops; --resume continues it.`;

type Flags = Record<string, string | boolean>;

function numFlag(flags: Flags, name: string, o: { int?: boolean; min?: number; max?: number }): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  const bad = typeof v !== 'string' || !Number.isFinite(n) || (o.int && !Number.isInteger(n)) || (o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max);
  if (bad) throw new Error(`--${name}: ${o.int ? 'an integer' : 'a number'}${o.min !== undefined ? ` >= ${o.min}` : ''}${o.max !== undefined ? ` <= ${o.max}` : ''} expected, got "${v}"`);
  return n;
}

const KNOWN = new Set(['dataset', 'preset', 'quick', 'mask', 'grid', 'model', 'bn', 'skip', 'steps', 'batch', 'lr', 'cells-per-step', 'clamp', 'clip', 'seed', 'eval-images', 'pad', 'train-images', 'warmup-epochs', 'data', 'out', 'resume', 'verbose', 'neg-coef', 'checkpoint-every', 'log-every', 'help']);

export function mpoConfig(flags: Flags, defaultPreset = 'fashion-pattern'): MpoConfig {
  for (const k of Object.keys(flags)) if (!KNOWN.has(k)) throw new Error(`unknown flag --${k} (see --help)`);
  const presetName = flags.quick ? 'quick' : typeof flags.preset === 'string' ? flags.preset : defaultPreset;
  const preset = PRESETS[presetName];
  if (!preset) throw new Error(`--preset "${presetName}": one of ${Object.keys(PRESETS).join(', ')} expected`);
  const c: MpoConfig = { ...preset, experiment: presetName, data: '' };
  const str = (k: string) => (typeof flags[k] === 'string' ? (flags[k] as string) : undefined);
  c.mask = str('mask') ?? c.mask;
  c.model = str('model') ?? c.model;
  if (!(MODEL_NAMES as readonly string[]).includes(c.model)) throw new Error(`--model "${c.model}": one of ${MODEL_NAMES.join(', ')} expected`);
  if (flags.bn) c.bn = true;
  if (flags.skip) c.skip = true;
  c.grid = numFlag(flags, 'grid', { int: true, min: 3, max: 200 }) ?? c.grid;
  c.steps = numFlag(flags, 'steps', { int: true, min: 0 }) ?? c.steps;
  c.batch = numFlag(flags, 'batch', { int: true, min: 2, max: 8192 }) ?? c.batch;
  c.lr = numFlag(flags, 'lr', { min: 1e-8, max: 1 }) ?? c.lr;
  c.cellsPerStep = numFlag(flags, 'cells-per-step', { int: true, min: 1, max: 10_000 }) ?? c.cellsPerStep;
  c.clamp = numFlag(flags, 'clamp', { min: 0 }) ?? c.clamp;
  c.clipNorm = numFlag(flags, 'clip', { min: 0 }) ?? c.clipNorm;
  c.negCoef = numFlag(flags, 'neg-coef', { min: 0 }) ?? c.negCoef;
  c.seed = numFlag(flags, 'seed', { int: true, min: 0, max: 2 ** 31 }) ?? c.seed;
  c.pad = numFlag(flags, 'pad', { int: true, min: 0, max: 100 }) ?? c.pad;
  c.trainImages = numFlag(flags, 'train-images', { int: true, min: 0 }) ?? c.trainImages;
  c.warmupEpochs = numFlag(flags, 'warmup-epochs', { int: true, min: 0 }) ?? c.warmupEpochs;
  c.checkpointEvery = numFlag(flags, 'checkpoint-every', { int: true, min: 1 }) ?? c.checkpointEvery;
  c.logEvery = numFlag(flags, 'log-every', { int: true, min: 1 }) ?? c.logEvery;
  if (flags['eval-images'] === 'all') c.evalImages = 0;
  else c.evalImages = numFlag(flags, 'eval-images', { int: true, min: 1 }) ?? c.evalImages;
  const ds = str('dataset');
  if (ds !== undefined && ds !== 'fashion-mnist' && ds !== 'cifar10') throw new Error(`--dataset "${ds}": fashion-mnist or cifar10 expected`);
  c.dataset = (ds as MpoConfig['dataset'] | undefined) ?? (c.model === 'cifar' ? 'cifar10' : c.model === 'icons' || c.model === 'squares' ? 'fashion-mnist' : c.dataset);
  c.data = c.dataset === 'cifar10' ? cifar10Dir(flags.data) : fashionMnistDir(flags.data);
  return c;
}

export function loadData(c: MpoConfig): { train: Dataset; test: Dataset } {
  return loadSplits(c.dataset, c.data);
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}h${String(m % 60).padStart(2, '0')}m` : m ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

/** A one-line progress bar on a terminal; a line every ~5% otherwise. */
export function progress(label: string) {
  const tty = process.stderr.isTTY;
  let lastLine = -1, startStep = -1, startSecs = 0;
  return (step: number, total: number, good: number, bad: number, secs: number) => {
    if (startStep < 0) { startStep = step - 1; startSecs = secs; }
    const rate = (secs - startSecs) / Math.max(1, step - startStep);
    const eta = (total - step) * rate;
    const w = 24, filled = Math.round((step / total) * w);
    const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(w - filled)}] step ${step}/${total}  good loss ${good.toFixed(3)}  bad loss ${bad.toFixed(3)}  ${rate.toFixed(2)} s/step  ETA ${fmtTime(eta)}`;
    if (tty) process.stderr.write(`\r${line}\x1b[K${step === total ? '\n' : ''}`);
    else {
      const bucket = Math.floor((step / total) * 20);
      if (bucket !== lastLine || step === total) { lastLine = bucket; process.stderr.write(line + '\n'); }
    }
  };
}

export async function mpoCommand(gpu: Gpu, flags: Flags, defaultPreset = 'fashion-pattern'): Promise<number> {
  let cfg: MpoConfig, out: string;
  const resume = typeof flags.resume === 'string' ? flags.resume : null;
  if (flags.resume === true) throw new Error('--resume needs the run directory');
  if (resume) {
    const cf = join(resume, 'config.json');
    if (!existsSync(cf)) throw new Error(`--resume ${resume}: no config.json there (not a run directory?)`);
    cfg = JSON.parse(readFileSync(cf, 'utf8')) as MpoConfig;
    out = resume;
  } else {
    cfg = mpoConfig(flags, defaultPreset);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
    out = typeof flags.out === 'string' ? flags.out : join('runs', `${cfg.experiment}-${stamp}`);
    if (existsSync(join(out, 'config.json'))) throw new Error(`--out ${out} already holds a run; use --resume ${out} to continue it, or another --out`);
  }
  const cpu = gpu.isCpu;
  if (cpu && cfg.experiment !== 'quick' && cfg.steps > 2000) {
    console.error(`warning: ${gpu.adapterInfo.split(' / ').pop()} is a CPU adapter; the full ${cfg.experiment} settings (${cfg.steps} steps of ${cfg.batch} images) will take a very long time here. --quick runs a CPU-sized version.`);
  }
  console.log(`adapter: ${gpu.adapterInfo}`);
  console.log(`run directory: ${out}`);
  console.log(`loading ${cfg.dataset} from ${cfg.data} ...`);
  const data = loadData(cfg);
  const sig = stopOnSignal('stopping after this step (Ctrl-C again to quit at once) ...');
  try {
    const r = await runMpo(gpu, cfg, data, out, !!resume, { onStep: progress(cfg.experiment), shouldStop: sig.stopped, log: (m) => console.error(m) });
    const m = r.metrics;
    console.log(`\nfinished ${m.steps} steps in ${fmtTime(m.seconds)}${r.stoppedEarly ? ' (early stop)' : ''}`);
    console.log(`test:  acc_diff ${m.test.acc_diff.toFixed(3)}  loss_diff ${m.test.loss_diff.toFixed(3)}  agreement ${m.test.agreement.toFixed(3)}`);
    console.log(`train: acc_diff ${m.train.acc_diff.toFixed(3)}  loss_diff ${m.train.loss_diff.toFixed(3)}  agreement ${m.train.agreement.toFixed(3)}`);
    console.log(`pictures: ${join(out, 'summary.png')} (also mask.png, loss_test.png, acc_test.png, loss_train.png, acc_train.png)`);
    return 0;
  } catch (e) {
    if (e instanceof Interrupted) {
      console.error(`\n${e.message}\ncontinue with: loss-atlas mpo --resume ${out}`);
      return 130;
    }
    throw e;
  } finally {
    sig.dispose();
  }
}

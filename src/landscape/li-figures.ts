// `npm run exp:li-figures`: the comparisons of Li et al. 2018 (slides in ../shared/papers) at CPU-sized scale on
// Fashion-MNIST, or with --full at the reference's CIFAR-10 sizes (for a GPU):
//   1. skip connections vs none, at two depths (ResNet-8/14 and their noshort twins; ResNet-20/56/110 with --full);
//   2. small vs large batch, weight decay 0 vs 5e-4 (the small conv net; VGG-like sizes are not in the zoo);
// each net with a 1-D plot along a filter-normalized random direction, a 2-D surface (contours) and a map of the
// Hessian eigenvalue ratio |lambda_min / lambda_max|, plus the linear interpolation between the small- and
// large-batch solutions. Every step is skipped when its outputs exist, so the script resumes after an interruption.
// Writes into --out (default runs/li-figures): one directory per net and step, panels li_*.png putting the nets side
// by side, and summary.json (test accuracy, surface and eigen-ratio statistics per net).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tilesPng } from '../viz/figure.ts';
import type { Gpu } from '../engine/device.ts';
import { loadSplits } from '../data/datasets.ts';
import type { Dataset } from '../data/dataset.ts';
import { fashionMnistDir } from '../data/fashion-mnist.ts';
import { cifar10Dir } from '../data/cifar10.ts';
import { runTrain, trainConfig, type TrainOptions } from './train.ts';
import { checkTaskFlags, defineCommand, linspace, type OptionInput } from '../options/index.ts';
import { readCheckpoint } from '../models/checkpoint.ts';
import { runInterpolate } from './interpolate.ts';
import { runSurface } from './surface.ts';
import { ratios, runHessian } from './hessian.ts';
import { checkRunDir, readRunConfig, writeRunConfig } from '../run/run-info.ts';
import { checkSameSettings, runOrGather, type Step } from '../run/tasks.ts';

interface Net {
  id: string;
  label: string;
  group: 'depth' | 'batch';
  train: TrainOptions;
}

interface Scale {
  dataset: 'fashion-mnist' | 'cifar10';
  nets: Net[];
  trainImages: number;
  surface: string;
  surfaceImages: number;
  line: string;
  lineImages: number;
  hessian: string;
  hessianImages: number;
  hessianIters: number;
}

function scale(kind: 'cpu' | 'full' | 'smoke'): Scale {
  if (kind === 'full') {
    const res = (d: number, short: boolean): Net => ({
      id: `resnet${d}${short ? '' : '-noshort'}`,
      label: `ResNet-${d}${short ? '' : ' (no skip)'}`,
      group: 'depth',
      train: {
        model: `resnet${d}${short ? '' : '-noshort'}`,
        epochs: 300,
        batch: 128,
        lr: 0.1,
        milestones: [150, 225, 275],
        wd: 5e-4,
      },
    });
    return {
      dataset: 'cifar10',
      trainImages: 0,
      surface: '-1:1:51',
      surfaceImages: 0,
      line: '-1:1:51',
      lineImages: 0,
      hessian: '-1:1:21',
      hessianImages: 5000,
      hessianIters: 30,
      nets: [
        ...[20, 56, 110].flatMap((d) => [res(d, true), res(d, false)]),
        ...batchNets({ epochs: 300, milestones: [150, 225, 275], model: 'cifar', large: 1024 }),
      ],
    };
  }
  const small = kind === 'smoke';
  const res = (d: number, short: boolean): Net => ({
    id: `resnet${d}${short ? '' : '-noshort'}`,
    label: `ResNet-${d}${short ? '' : ' (no skip)'}, width 1/4`,
    group: 'depth',
    train: {
      model: `resnet${d}${short ? '' : '-noshort'}`,
      width: 0.25,
      epochs: small ? 1 : 3,
      batch: 64,
      lr: 0.05,
      wd: 5e-4,
      trainImages: small ? 200 : 2000,
      ...(small ? {} : { milestones: [2] }),
    },
  });
  return {
    dataset: 'fashion-mnist',
    trainImages: small ? 200 : 4000,
    surface: small ? '-1:1:3' : '-1:1:13',
    surfaceImages: small ? 20 : 200,
    line: small ? '-1:1:5' : '-1:1:31',
    lineImages: small ? 20 : 250,
    hessian: small ? '-1:1:2' : '-1:1:4',
    hessianImages: small ? 10 : 50,
    hessianIters: small ? 3 : 15,
    nets: [
      ...(small ? [res(8, true), res(8, false)] : [res(8, true), res(8, false), res(14, true), res(14, false)]),
      ...batchNets({ epochs: small ? 1 : 6, milestones: small ? [] : [5], model: 'small', large: 256 }).slice(
        0,
        small ? 2 : 4,
      ),
    ],
  };
}

/** Small vs large batch (the large one 256 at CPU size, where 4,000 images give a 1,024 batch only 4 steps an
 * epoch). */
function batchNets(o: { epochs: number; milestones: number[]; model: string; large: number }): Net[] {
  // wd as written in the run directories' names
  const runs: [number, string][] = [
    [32, '0'],
    [o.large, '0'],
    [32, '5e-4'],
    [o.large, '5e-4'],
  ];
  return runs.map(([bs, wd]) => ({
    id: `${o.model}-bs${bs}-wd${wd}`,
    label: `${o.model} net, batch ${bs}, wd ${wd}`,
    group: 'batch' as const,
    train: {
      model: o.model,
      epochs: o.epochs,
      batch: bs,
      lr: 0.05,
      wd: Number(wd),
      ...(o.milestones.length ? { milestones: o.milestones } : {}),
    },
  }));
}

export async function runLiFigures(
  gpu: Gpu | null,
  o: OptionInput<typeof LI_FIGURES.options>,
  log: (m: string) => void,
): Promise<string> {
  checkTaskFlags(o);
  const kind = o.full ? 'full' : o.smoke ? 'smoke' : 'cpu';
  const s = scale(kind);
  const out = o.out ?? join('runs', kind === 'full' ? 'li-figures-full' : 'li-figures');
  checkRunDir(out, 'li-figures', 'the figure set');
  const dataDir = s.dataset === 'cifar10' ? cifar10Dir(o.data) : fashionMnistDir(o.data);
  if (o.task || o.gather) checkSameSettings(out, { scale: kind }, ['scale']);
  let data: { train: Dataset; test: Dataset } | null = null;
  if (!o.gather) {
    if (!gpu) throw new Error('li-figures: a GPU is needed to train the nets');
    data = await loadSplits(s.dataset, dataDir);
    // the set's own config.json (its sizes); each step writes its own in its directory
    writeRunConfig(out, 'li-figures', { scale: kind, ...s, data: dataDir }, gpu);
  }
  const t0 = performance.now();
  const stamp = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
  const steps = liSteps(gpu, data, s, kind, dataDir, out, (m) => log(`[${stamp()}] ${m}`));
  if (!(await runOrGather('li-figures', out, steps, o, log))) return out;
  await liGather(s, kind, out, gpu?.adapterInfo ?? readRunConfig(out).adapter, performance.now() - t0, !!o.gather);
  log(`[${stamp()}] done: ${join(out, 'li_depth.png')}, li_batch.png, summary.json`);
  return out;
}

const DIRECTIONS = {
  norm: 'filter' as const,
  ignoreBiasBn: true,
  dirType: 'weights' as const,
  bnStats: 'running' as const,
  seed: 123,
};

/** The set's steps: one per net (train, 1-D plot, surface, eigen-ratio map), then the batch interpolation. */
function liSteps(
  gpu: Gpu | null,
  data: { train: Dataset; test: Dataset } | null,
  s: Scale,
  kind: string,
  dataDir: string,
  out: string,
  log: (m: string) => void,
): Step[] {
  const need = () => {
    if (!gpu || !data) throw new Error('li-figures: a GPU is needed for this step');
    return { gpu, data };
  };
  const netDone = (id: string) =>
    ['train/model.safetensors', 'line/interpolate.json', 'surface/surface.json', 'hessian/hessian.json'].every((f) =>
      existsSync(join(out, id, f)),
    );
  const steps: Step[] = s.nets.map((net) => ({
    name: net.id,
    stage: 1,
    done: () => netDone(net.id),
    run: () => liNet(need().gpu, need().data, s, net, dataDir, join(out, net.id), log),
  }));
  // the linear interpolation between the small- and large-batch solutions (wd 0), as Li et al.'s Figure 2
  const [sb, lb] = s.nets.filter((n) => n.group === 'batch');
  if (sb && lb) {
    steps.push({
      name: 'batch-interpolation',
      stage: 2,
      done: () => existsSync(join(out, 'batch-interpolation', 'interpolate.json')),
      waitsFor: () => [sb.id, lb.id].filter((id) => !netDone(id)),
      run: async () => {
        const { gpu, data } = need();
        log(`interpolation between ${sb.label} and ${lb.label}`);
        const a = readCheckpoint(join(out, sb.id, 'train', 'model.safetensors'), data.train.shape),
          b = readCheckpoint(join(out, lb.id, 'train', 'model.safetensors'), data.train.shape);
        await runInterpolate(
          gpu,
          a,
          b,
          data,
          {
            norm: 'filter',
            ignoreBiasBn: false,
            dirType: 'states',
            bnStats: 'running',
            seed: 1,
            x: kind === 'smoke' ? '-0.5:1.5:5' : '-0.5:1.5:41',
            images: s.lineImages,
            logScale: false,
            lossMax: 5,
          },
          join(out, 'batch-interpolation'),
        );
      },
    });
  }
  return steps;
}

/** One net: train it, then its 1-D plot, 2-D surface and eigen-ratio map (each skipped when its output exists). */
async function liNet(
  gpu: Gpu,
  data: { train: Dataset; test: Dataset },
  s: Scale,
  net: Net,
  dataDir: string,
  dir: string,
  log: (m: string) => void,
): Promise<void> {
  const trainDir = join(dir, 'train');
  if (!existsSync(join(trainDir, 'model.safetensors'))) {
    log(`training ${net.label}`);
    const flags = { trainImages: s.trainImages, ...net.train, evalImages: 2000, data: dataDir, dataset: s.dataset };
    const cfg = trainConfig(flags, () => dataDir);
    await runTrain(gpu, cfg, data, trainDir, existsSync(join(trainDir, 'checkpoint', 'state.json')), {
      log: (m) => log(`  ${m}`),
    });
  }
  const ck = readCheckpoint(join(trainDir, 'model.safetensors'), data.train.shape);
  if (!existsSync(join(dir, 'line', 'interpolate.json'))) {
    log(`1-D plot of ${net.label}`);
    const line = { ...DIRECTIONS, x: s.line, images: s.lineImages, logScale: false, lossMax: 5 };
    await runInterpolate(gpu, ck, null, data, line, join(dir, 'line'));
  }
  const grid = (spec: string) => ({ xs: linspace(spec, 'x'), ys: linspace(spec, 'y'), split: 'train' as const });
  if (!existsSync(join(dir, 'surface', 'surface.json'))) {
    log(`2-D surface of ${net.label}`);
    const surface = { ...DIRECTIONS, ...grid(s.surface), images: s.surfaceImages, block: 256 };
    await runSurface(gpu, ck, [null, null], data, surface, join(dir, 'surface'));
  }
  if (!existsSync(join(dir, 'hessian', 'hessian.json'))) {
    log(`Hessian eigenvalue ratios of ${net.label}`);
    const h = { ...DIRECTIONS, ...grid(s.hessian), images: s.hessianImages, iters: s.hessianIters, tol: 1e-2 };
    await runHessian(gpu, ck, [null, null], data, { ...h, eps: 1e-3, block: 8 }, join(dir, 'hessian'));
  }
}

/** summary.json and the panels li_depth.png, li_batch.png from the finished steps (no GPU). */
async function liGather(
  s: Scale,
  kind: string,
  out: string,
  adapter: string | null,
  ms: number,
  gathered: boolean,
): Promise<void> {
  const summary: Record<string, unknown> = {};
  for (const net of s.nets) {
    const dir = join(out, net.id);
    const metrics = JSON.parse(readFileSync(join(dir, 'train', 'metrics.json'), 'utf8'));
    const surf = JSON.parse(readFileSync(join(dir, 'surface', 'surface.json'), 'utf8')) as { loss: number[] };
    const hess = JSON.parse(readFileSync(join(dir, 'hessian', 'hessian.json'), 'utf8')) as {
      max_eig: number[];
      min_eig: number[];
    };
    const abs = ratios({
      xs: [],
      ys: null,
      max: Float32Array.from(hess.max_eig),
      min: Float32Array.from(hess.min_eig),
      loss: new Float32Array(),
      iters: new Float32Array(),
    }).abs;
    const c = Math.floor(hess.max_eig.length / 2);
    summary[net.id] = {
      label: net.label,
      test_acc: metrics.test_acc,
      train_loss: metrics.train_loss,
      surface_min: Math.min(...surf.loss),
      surface_max: Math.max(...surf.loss),
      surface_mean: surf.loss.reduce((a, b) => a + b, 0) / surf.loss.length,
      centre_lambda_max: hess.max_eig[c],
      centre_lambda_min: hess.min_eig[c],
      mean_abs_ratio: abs.reduce((a, b) => a + b, 0) / abs.length,
      max_abs_ratio: Math.max(...abs),
    };
  }
  // seconds: of the invocation that wrote the file (a gathering: of the gathering only)
  const head = { scale: kind, dataset: s.dataset, adapter, seconds: Math.round(ms / 1000), gathered };
  writeFileSync(join(out, 'summary.json'), `${JSON.stringify({ ...head, nets: summary }, null, 2)}\n`);
  for (const group of ['depth', 'batch'] as const) {
    const nets = s.nets.filter((n) => n.group === group);
    if (!nets.length) continue;
    await tilesPng(
      nets.map((n) => [
        join(out, n.id, 'line', 'interpolate.png'),
        join(out, n.id, 'surface', 'surface_contour.png'),
        join(out, n.id, 'hessian', 'hessian_ratio.png'),
      ]),
      join(out, `li_${group}.png`),
    );
  }
}

export const LI_FIGURES = defineCommand({
  name: 'li-figures',
  summary:
    "Li et al. 2018's comparisons (skip vs none, depth, batch size, weight decay): 1-D, 2-D and eigen-ratio " +
    'maps (--help)',
  usage: 'npm run exp:li-figures [-- --full] [--out DIR] [--data DIR]',
  description: `\
Li et al. 2018's comparisons: skip connections vs none at two depths (ResNet-8/14 at width 1/4 on Fashion-MNIST; with
--full ResNet-20/56/110 on CIFAR-10 at the reference's settings, for a GPU), small vs large batch and weight decay
0 vs 5e-4 (the small conv net; --full: the CIFAR net), each with a 1-D plot, a 2-D contour plot and an eigenvalue-ratio
map, and the interpolation between the small- and large-batch solutions. About 45 minutes on the 2-core CPU machine.
Resumes: finished steps are skipped. Writes li_depth.png, li_batch.png and summary.json into --out
(default runs/li-figures), with every step's own run directory below it.`,
  options: {
    full: { type: 'boolean', help: "CIFAR-10 at the reference's sizes (for a GPU)" },
    smoke: { type: 'boolean', help: 'the smallest sizes, a check that every step runs (minutes)' },
    out: {
      type: 'string',
      placeholder: 'DIR',
      defaultText: 'runs/li-figures, runs/li-figures-full with --full',
      help: 'output directory',
    },
    data: { type: 'string', placeholder: 'DIR', help: 'dataset directory' },
    task: {
      type: 'shard',
      help:
        'run only every n-th net, i-th first (one task of a job array; all tasks share --out); the batch ' +
        'interpolation needs two nets: a second run of the array makes it',
    },
    gather: {
      type: 'boolean',
      help: 'summary.json and the panels from the finished steps in --out (no GPU); names any missing',
    },
  },
});

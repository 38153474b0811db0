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
import sharp from 'sharp';
import type { Gpu } from '../engine/device.ts';
import { loadSplits } from '../data/datasets.ts';
import type { Dataset } from '../data/dataset.ts';
import { fashionMnistDir } from '../data/fashion-mnist.ts';
import { cifar10Dir } from '../data/cifar10.ts';
import { runTrain, trainConfig, type TrainOptions } from './train.ts';
import { defineCommand, linspace, type OptionInput } from '../options/index.ts';
import { readCheckpoint } from '../models/checkpoint.ts';
import { runInterpolate } from './interpolate.ts';
import { runSurface } from './surface.ts';
import { ratios, runHessian } from './hessian.ts';
import { checkRunDir, writeRunConfig } from '../run/run-info.ts';

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

/** Grid of PNG files (rows of columns), each scaled to `w` pixels wide, with white gaps. */
async function gridPng(rows: string[][], path: string, w = 460): Promise<void> {
  const tiles = await Promise.all(
    rows.map((r) =>
      Promise.all(
        r.map(async (f) => {
          const img = sharp(f).resize({ width: w });
          const buf = await img.png().toBuffer();
          const meta = await sharp(buf).metadata();
          return { buf, h: meta.height ?? w };
        }),
      ),
    ),
  );
  const rowH = tiles.map((r) => Math.max(...r.map((t) => t.h)));
  const width = Math.max(...rows.map((r) => r.length)) * (w + 10);
  const height = rowH.reduce((a, b) => a + b + 10, 0);
  const composites = tiles.flatMap((r, i) =>
    r.map((t, j) => ({ input: t.buf, left: j * (w + 10), top: rowH.slice(0, i).reduce((a, b) => a + b + 10, 0) })),
  );
  await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .composite(composites)
    .png()
    .toFile(path);
}

export async function runLiFigures(
  gpu: Gpu,
  o: OptionInput<typeof LI_FIGURES.options>,
  log: (m: string) => void,
): Promise<string> {
  const kind = o.full ? 'full' : o.smoke ? 'smoke' : 'cpu';
  const s = scale(kind);
  const out = o.out ?? join('runs', kind === 'full' ? 'li-figures-full' : 'li-figures');
  checkRunDir(out, 'li-figures', 'the figure set');
  const dataDir = s.dataset === 'cifar10' ? cifar10Dir(o.data) : fashionMnistDir(o.data);
  const data: { train: Dataset; test: Dataset } = loadSplits(s.dataset, dataDir);
  // the set's own config.json (its sizes); each step writes its own in its directory
  writeRunConfig(out, 'li-figures', { scale: kind, ...s, data: dataDir }, gpu);
  const t0 = performance.now();
  const stamp = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
  const summary: Record<string, unknown> = {};
  for (const net of s.nets) {
    const dir = join(out, net.id);
    const trainDir = join(dir, 'train');
    if (!existsSync(join(trainDir, 'model.safetensors'))) {
      log(`[${stamp()}] training ${net.label}`);
      const flags = { trainImages: s.trainImages, ...net.train, evalImages: 2000, data: dataDir, dataset: s.dataset };
      const cfg = trainConfig(flags, () => dataDir);
      await runTrain(gpu, cfg, data, trainDir, existsSync(join(trainDir, 'checkpoint', 'state.json')), {
        log: (m) => log(`  ${m}`),
      });
    }
    const ck = readCheckpoint(join(trainDir, 'model.safetensors'), data.train.shape);
    const dirOpts = {
      norm: 'filter' as const,
      ignoreBiasBn: true,
      dirType: 'weights' as const,
      bnStats: 'running' as const,
      seed: 123,
    };
    if (!existsSync(join(dir, 'line', 'interpolate.json'))) {
      log(`[${stamp()}] 1-D plot of ${net.label}`);
      await runInterpolate(
        gpu,
        ck,
        null,
        data,
        { ...dirOpts, x: s.line, images: s.lineImages, logScale: false, lossMax: 5 },
        join(dir, 'line'),
      );
    }
    if (!existsSync(join(dir, 'surface', 'surface.json'))) {
      log(`[${stamp()}] 2-D surface of ${net.label}`);
      await runSurface(
        gpu,
        ck,
        [null, null],
        data,
        {
          ...dirOpts,
          xs: linspace(s.surface, 'x'),
          ys: linspace(s.surface, 'y'),
          split: 'train',
          images: s.surfaceImages,
          block: 256,
        },
        join(dir, 'surface'),
      );
    }
    if (!existsSync(join(dir, 'hessian', 'hessian.json'))) {
      log(`[${stamp()}] Hessian eigenvalue ratios of ${net.label}`);
      await runHessian(
        gpu,
        ck,
        [null, null],
        data,
        {
          ...dirOpts,
          xs: linspace(s.hessian, 'x'),
          ys: linspace(s.hessian, 'y'),
          split: 'train',
          images: s.hessianImages,
          iters: s.hessianIters,
          tol: 1e-2,
          eps: 1e-3,
          block: 8,
        },
        join(dir, 'hessian'),
      );
    }
    const metrics = JSON.parse(readFileSync(join(trainDir, 'metrics.json'), 'utf8'));
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
  // the linear interpolation between the small- and large-batch solutions (wd 0), as Li et al.'s Figure 2
  const [sb, lb] = s.nets.filter((n) => n.group === 'batch');
  if (sb && lb && !existsSync(join(out, 'batch-interpolation', 'interpolate.json'))) {
    log(`[${stamp()}] interpolation between ${sb.label} and ${lb.label}`);
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
  }
  writeFileSync(
    join(out, 'summary.json'),
    `${JSON.stringify(
      {
        scale: kind,
        dataset: s.dataset,
        adapter: gpu.adapterInfo,
        seconds: Math.round((performance.now() - t0) / 1000),
        nets: summary,
      },
      null,
      2,
    )}\n`,
  );
  for (const group of ['depth', 'batch'] as const) {
    const nets = s.nets.filter((n) => n.group === group);
    if (!nets.length) continue;
    await gridPng(
      nets.map((n) => [
        join(out, n.id, 'line', 'interpolate.png'),
        join(out, n.id, 'surface', 'surface_contour.png'),
        join(out, n.id, 'hessian', 'hessian_ratio.png'),
      ]),
      join(out, `li_${group}.png`),
    );
  }
  log(`[${stamp()}] done: ${join(out, 'li_depth.png')}, li_batch.png, summary.json`);
  return out;
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
  },
});

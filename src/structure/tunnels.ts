// `loss-atlas tunnels`: the loss along random unit directions from an optimum and the tunnel widths (the rays in
// tunnel-rays.ts); `--sweep` trains SimpleCNN optima over learning rate, L2, dropout and batch size and plots the mean
// width against each (tunnel-sweep.ts), in one process or as job-array tasks (--task i/n, then --gather).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import type { Dataset } from '../data/dataset.ts';
import { readCheckpoint } from '../models/checkpoint.ts';
import { checkRunDir, writeRunConfig } from '../run/run-info.ts';
import { checkSameSettings, runOrGather, type Step } from '../run/tasks.ts';
import { UsageError, checkTaskFlags, defineCommand, optionsOf, type OptionInput } from '../options/index.ts';
import { plotTunnels, runTunnels, widthStats, type TunnelOptions } from './tunnel-rays.ts';
import { gatherSweep, sweepSteps } from './tunnel-sweep.ts';

export const TUNNELS = defineCommand({
  name: 'tunnels',
  summary:
    'radial tunnels: loss along many random unit directions from an optimum, tunnel widths; ' +
    '--sweep over lr, L2, dropout, batch (--help)',
  usage: 'loss-atlas tunnels --model-file A.safetensors [flags]     or     loss-atlas tunnels --sweep [flags]',
  description: `\
The loss along --rays random unit directions from a checkpoint at --points distances up to --max x ||theta|| (all in
one batch), and the tunnel width of each ray: the distance where the loss first exceeds L(theta) + --delta.
--sweep trains SimpleCNN optima on Fashion-MNIST (base: lr 0.05, batch 128, no L2, no dropout) varying one factor at a
time: learning rate 0.01 / 0.03 / 0.05 / 0.1, L2 0 / 5e-4 / 5e-3, dropout 0 / 0.25 / 0.5, \
batch 32 / 128 / 512, and plots
the mean width against each (optima that did not train, test accuracy under twice chance, are left out and named).
Optima and their widths are kept under --out/optima, so a rerun only redraws. Writes tunnels.png (or sweep.png),
tunnels.json and metrics.json into --out.`,
  options: {
    'model-file': {
      type: 'string',
      placeholder: 'FILE',
      help: 'the optimum (a model.safetensors of loss-atlas train, or an ONNX file: its initializers)',
    },
    sweep: {
      type: 'boolean',
      help: 'train SimpleCNN optima over lr, L2, dropout and batch size and plot their widths',
    },
    rays: { type: 'integer', min: 1, default: 24, help: 'random unit directions' },
    points: { type: 'integer', min: 2, default: 21, help: 'distances along each ray' },
    max: { type: 'number', above: 0, default: 1, help: 'largest distance as a fraction of ||theta||' },
    delta: { type: 'number', above: 0, default: 0.5, help: 'loss rise (nats) that ends a tunnel' },
    images: { type: 'integer', min: 1, default: 500, help: 'images evaluated' },
    split: { type: 'enum', choices: ['train', 'test'], default: 'train', help: 'the images evaluated' },
    seed: { type: 'integer', min: 0, default: 1, help: 'seed of the directions and images' },
    data: { type: 'string', placeholder: 'DIR', help: 'Fashion-MNIST directory' },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/tunnels-<time>', help: 'run directory' },
    'sweep-epochs': { type: 'integer', min: 1, defaultText: '2', help: '--sweep: training epochs of each optimum' },
    'sweep-images': { type: 'integer', min: 1, defaultText: '4000', help: '--sweep: training images of each optimum' },
    task: {
      type: 'shard',
      help:
        '--sweep: train and measure only every n-th optimum, i-th first (one task of a job array; all tasks ' +
        'share --out), then stop',
    },
    gather: {
      type: 'boolean',
      help: '--sweep: draw the plot from the optima the tasks finished in --out (no GPU); names any missing',
    },
  },
});

type TunnelFlags = ReturnType<typeof optionsOf<typeof TUNNELS.options>>;

const tunnelOptions = (f: TunnelFlags): TunnelOptions => ({
  rays: f.rays,
  points: f.points,
  maxFrac: f.max,
  delta: f.delta,
  images: f.images,
  seed: f.seed,
  split: f.split,
});

/** The sweep's steps for these flags, one per distinct optimum under `out` (fort-figures runs them as its own). */
export function tunnelSweepSteps(
  gpu: Gpu | null,
  data: { train: Dataset; test: Dataset } | null,
  dataDir: string,
  input: OptionInput<typeof TUNNELS.options>,
  out: string,
  log: (m: string) => void,
): Step[] {
  const f = optionsOf(TUNNELS.options, input);
  const s = { epochs: f.sweepEpochs ?? 2, images: f.sweepImages ?? 4000, tunnel: tunnelOptions(f) };
  return sweepSteps(gpu, data, dataDir, s, out, log);
}

/** The command; for --sweep --gather `gpu` and `data` may be null (nothing is trained or evaluated). */
export async function tunnelsCommand(
  gpu: Gpu | null,
  data: { train: Dataset; test: Dataset } | null,
  dataDir: string,
  input: OptionInput<typeof TUNNELS.options>,
  out: string,
  log: (m: string) => void,
): Promise<Record<string, unknown>> {
  const f = optionsOf(TUNNELS.options, input);
  const o = tunnelOptions(f);
  const settings = {
    sweep: f.sweep,
    modelFile: f.modelFile ?? null,
    ...o,
    sweepEpochs: f.sweepEpochs ?? null,
    sweepImages: f.sweepImages ?? null,
  };
  if (!f.sweep && (f.task || f.gather)) throw new UsageError(`${f.task ? '--task' : '--gather'} needs --sweep`);
  checkTaskFlags({ task: f.task, gather: f.gather, out: input.out });
  checkRunDir(out, 'tunnels', 'the tunnels');
  if (f.task || f.gather) checkSameSettings(out, settings, Object.keys(settings));
  if (!f.gather) writeRunConfig(out, 'tunnels', settings, gpu);
  if (!f.sweep) {
    if (f.modelFile === undefined) {
      throw new UsageError('--model-file FILE (a model.safetensors of loss-atlas train) or --sweep is required');
    }
    if (!gpu || !data) throw new Error('tunnels: a GPU and the dataset are needed');
    const ck = readCheckpoint(f.modelFile, data.train.shape);
    const t = await runTunnels(gpu, ck, data, o);
    const m = { L0: t.L0, theta_norm: t.thetaNorm, delta: o.delta, width: widthStats(t.widths) };
    log(
      m.width.mean === null
        ? `L(theta) = ${t.L0.toFixed(4)}; no ray reached L + ${o.delta} within ${o.maxFrac} x ||theta||: raise --max`
        : `L(theta) = ${t.L0.toFixed(4)};` +
            ` tunnel width ${m.width.mean.toFixed(3)} +- ${m.width.sd!.toFixed(3)}` +
            ` (${((m.width.mean / t.thetaNorm) * 100).toFixed(1)}% of ||theta||) over ${o.rays} rays` +
            `${m.width.rays_without_crossing ? `, ${m.width.rays_without_crossing} never crossing` : ''}`,
    );
    await plotTunnels(
      t,
      o.delta,
      join(out, 'tunnels.png'),
      `loss along ${o.rays} random unit directions from ${ck.model}`,
    );
    writeFileSync(join(out, 'tunnels.json'), `${JSON.stringify(t)}\n`);
    writeFileSync(join(out, 'metrics.json'), `${JSON.stringify(m, null, 2)}\n`);
    return m;
  }
  const steps = tunnelSweepSteps(gpu, data, dataDir, input, out, log);
  if (!(await runOrGather('tunnels --sweep', out, steps, f, log))) return { task: f.task };
  return { sweep: await gatherSweep(out, o, log) };
}

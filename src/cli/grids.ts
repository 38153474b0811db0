// The grid maps around a checkpoint: surface and hessian (resumable, sharded), and merge (joins the shards).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import type { Checkpoint, WeightSet } from '../models/checkpoint.ts';
import { untilStopped } from '../run/stop.ts';
import { progress } from '../run/progress.ts';
import type { GridHooks } from '../run/grid.ts';
import { mergeSurfaces, runSurface } from '../landscape/surface.ts';
import { mergeHessians, ratios, runHessian } from '../landscape/hessian.ts';
import { UsageError, defineCommand, linspace, type Globals, type OptionValues, type Shard } from '../options/index.ts';
import { checkpointOptions, dirFile, directionOptions, directionSettings } from './checkpoint-flags.ts';
import { checkpointsAndData, command, withGpu, type Command } from './common.ts';
import { defaultRunDir } from '../run/run-info.ts';

/** Grids of more points than this take --yes: a typo in --x / --y (100000 for 100) should not start a week's run. */
export const MAX_POINTS = 1e6;

/** Refuses a grid of more than MAX_POINTS points without --yes (a usage error naming the flags and the count). */
export function checkGridSize(xs: number[], ys: number[] | null, yes: boolean | undefined): void {
  const K = xs.length * (ys?.length ?? 1);
  if (K <= MAX_POINTS || yes) return;
  const flags = ys ? '--x/--y' : '--x';
  const dims = ys ? `${xs.length} x ${ys.length} = ` : '';
  throw new UsageError(
    `${flags}: ${dims}${K} points, more than 1e6; check the point counts (min:max:num) or add --yes to run it`,
  );
}

export const SURFACE = defineCommand({
  name: 'surface',
  summary:
    'loss and accuracy on a 2-D grid around a checkpoint (filter-normalized or target directions), ' +
    'resumable (--help)',
  usage: 'loss-atlas surface --model-file A.safetensors [--model-file2 B] [--model-file3 C] [flags]',
  description: `\
Loss and accuracy at theta + a * d1 + b * d2 for a, b on --x, --y (min:max:num, default -1:1:51 each); d1, d2 random
and normalized per --norm (filter) unless --model-file2 / --model-file3 give targets (B - A, C - A). The grid is
evaluated in blocks of --block points; after each block surface_loss.npy / surface_acc.npy ([ny, nx], NaN where not
done yet) are saved, so running the same command again resumes. Writes also surface.json, surface_heatmap.png,
directions.safetensors into --out (default runs/surface-<time>).`,
  options: {
    ...checkpointOptions,
    x: { type: 'range', default: '-1:1:51', help: 'a, along d1' },
    y: { type: 'range', default: '-1:1:51', help: 'b, along d2' },
    split: { type: 'enum', choices: ['train', 'test'], default: 'train', help: 'the images evaluated' },
    ...directionOptions(1000),
    seed: { type: 'integer', min: 0, default: 123, help: 'seed of the random directions and the images' },
    block: { type: 'integer', min: 1, default: 256, help: 'points per batched pass (and per saved block)' },
    shard: {
      type: 'shard',
      help:
        'compute only the points k with k % n == i (one process or machine per shard, each with its own --out); ' +
        'then: loss-atlas merge DIR_0 ... DIR_n-1 --out DIR',
    },
    yes: { type: 'boolean', help: `run a grid of more than 1e6 points` },
    zmax: { type: 'number', min: 0, help: 'surface.vtp (ParaView): clip the loss at X (0: no clip)' },
    log: { type: 'boolean', help: 'surface.vtp: z = ln(loss + 0.1)' },
    data: { type: 'string', placeholder: 'DIR', help: "the model's dataset directory" },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/surface-<time>', help: 'run directory' },
  },
});

export const HESSIAN = defineCommand({
  name: 'hessian',
  summary:
    'largest/smallest Hessian eigenvalues and their ratio on a grid or path around a checkpoint (Lanczos), ' +
    'resumable (--help)',
  usage: 'loss-atlas hessian --model-file A.safetensors [--model-file2 B] [--model-file3 C] [flags]',
  description: `\
The largest and smallest eigenvalues of the loss Hessian (conv and linear weights, as the reference) at every point
theta + a * d1 + b * d2 of a grid (or along d1 only with --path), by Lanczos on Hessian-vector products
(central differences of gradients, both signs batched as manifold points; a block of points per batched pass).
Writes hessian_{max,min,loss,iters}.npy (NaN where not done yet: running the same command again resumes),
hessian.json, hessian_ratio.png (|lambda_min / lambda_max|, viridis 0..0.5 as the reference), hessian_ratio_signed.png,
hessian_max.png (or hessian_path.png for a path) into --out (default runs/hessian-<time>).`,
  options: {
    ...checkpointOptions,
    x: { type: 'range', default: '-1:1:11', help: 'a, along d1' },
    y: { type: 'range', defaultText: '-1:1:11', help: 'b, along d2 (not with --path)' },
    path: { type: 'boolean', help: 'along d1 only (a 1-D path)' },
    split: { type: 'enum', choices: ['train', 'test'], default: 'train', help: 'the images of the loss' },
    ...directionOptions(500),
    seed: { type: 'integer', min: 0, default: 123, help: 'seed of the random directions, images and start vectors' },
    block: { type: 'integer', min: 1, default: 8, help: 'points per batched pass' },
    iters: { type: 'integer', min: 2, default: 30, help: 'Lanczos iterations at most' },
    tol: { type: 'number', above: 0, default: 0.01, help: 'residual / spectral scale for convergence' },
    eps: { type: 'number', above: 0, default: 1e-3, help: 'central-difference step along the unit Lanczos vector' },
    shard: {
      type: 'shard',
      help: 'compute only the points k with k % n == i; then: loss-atlas merge DIR_0 ... --out DIR',
    },
    yes: { type: 'boolean', help: `run a grid of more than 1e6 points` },
    data: { type: 'string', placeholder: 'DIR', help: "the model's dataset directory" },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/hessian-<time>', help: 'run directory' },
  },
});

export const MERGE = defineCommand({
  name: 'merge',
  summary: 'join the shard directories of one surface or Hessian map (--shard i/n) into one: merge DIR... --out DIR',
  usage: 'loss-atlas merge DIR_0 ... DIR_n-1 --out DIR [flags]',
  description: `\
Joins the shard directories of one surface or Hessian map (each computed by surface or hessian with a shard i/n of
its points) into one run directory with the map's pictures.`,
  positionals: { placeholder: 'DIR', min: 1, help: 'the shard directories' },
  options: {
    out: { type: 'string', placeholder: 'DIR', required: true, help: 'the merged run directory' },
    zmax: { type: 'number', min: 0, help: 'surfaces, surface.vtp (ParaView): clip the loss at X (0: no clip)' },
    log: { type: 'boolean', help: 'surfaces, surface.vtp: z = ln(loss + 0.1)' },
  },
  globals: ['help'],
});

/** The closing line of one shard of a grid job: where it is and how to join the shards. */
const shardDone = (shard: { i: number; n: number }, out: string) =>
  `shard ${shard.i}/${shard.n} done in ${out}; join the shards with: loss-atlas merge <shard dirs> --out DIR`;

type GridFlags = OptionValues<typeof checkpointOptions> &
  OptionValues<ReturnType<typeof directionOptions>> & {
    split: string;
    shard?: Shard;
    data?: string;
    out?: string;
    yes?: boolean;
  };

interface GridFrame {
  gpu: Gpu;
  a: Checkpoint;
  targets: [Checkpoint | null, Checkpoint | null];
  data: Awaited<ReturnType<typeof checkpointsAndData>>['data'];
  /** From --dir-file (for a path, its one direction twice). */
  directions?: [WeightSet, WeightSet];
  /** The direction settings (--norm, --ignore, --images, --dir-type, --bn-stats). */
  dirOpts: ReturnType<typeof directionSettings>;
  out: string;
  hooks: GridHooks;
}

/**
 * What surface and hessian share: the checkpoints with their dataset, the directions (--dir-file), the run directory,
 * the GPU with its adapter printed and the line saying what is computed, a stop between blocks with the progress line,
 * and the closing line (the shard's, or `closing` of the result).
 */
async function gridCommand<R>(
  name: 'surface' | 'hessian',
  o: GridFlags,
  globals: Globals,
  frame: {
    axes: string[];
    what: (a: Checkpoint, images: string) => string;
    run: (f: GridFrame) => Promise<R>;
    closing: (r: R, out: string) => string;
  },
): Promise<number> {
  const {
    a,
    others: [t2, t3],
    data,
  } = await checkpointsAndData(o.modelFile, [o.modelFile2, o.modelFile3], o.data);
  const dirOpts = directionSettings(o);
  const saved = dirFile(o.dirFile, a, data.train.shape, frame.axes);
  const directions = saved ? ([saved[0], saved[1] ?? saved[0]] as [WeightSet, WeightSet]) : undefined;
  const out = o.out ?? defaultRunDir(name);
  return withGpu(globals, async (gpu) => {
    console.log(`${frame.what(a, `${dirOpts.images || 'all'} ${o.split}`)}, into ${out}`);
    return untilStopped('this block', async (shouldStop) => {
      const perPoint = `${dirOpts.images || 'all'} ${o.split} images per point`;
      const announce = (line: string) => console.log(line);
      const hooks = {
        shouldStop,
        progress: progress(name, { unit: 'point', firstEstimate: true }),
        announce,
        perPoint,
      };
      const r = await frame.run({ gpu, a, targets: [t2, t3], data, directions, dirOpts, out, hooks });
      console.log(o.shard && o.shard.n > 1 ? shardDone(o.shard, out) : frame.closing(r, out));
      return 0;
    });
  });
}

const surface = command(SURFACE, async ({ options: o, globals }) => {
  const xs = o.x.values,
    ys = o.y.values;
  checkGridSize(xs, ys, o.yes);
  return gridCommand('surface', o, globals, {
    axes: ['x/', 'y/'],
    what: (a, images) => `${xs.length} x ${ys.length} points around ${a.model}, ${images} images each`,
    run: ({ gpu, a, targets, data, directions, dirOpts, out, hooks }) => {
      const { split, shard, block, seed, zmax, log } = o;
      const opts = { xs, ys, split, ...dirOpts, seed, block, shard, directions, zmax, log };
      return runSurface(gpu, a, targets, data, opts, out, hooks);
    },
    closing: (r, out) => {
      const range = `min loss ${Math.min(...r.loss).toFixed(4)}, max ${Math.max(...r.loss).toFixed(4)}`;
      return `${range}; wrote ${join(out, 'surface_heatmap.png')}, surface.json, surface_{loss,acc}.npy`;
    },
  });
});

const hessian = command(HESSIAN, async ({ options: o, globals }) => {
  if (o.path && o.y !== undefined) throw new UsageError('--path and --y: a path has no y axis');
  const xs = o.x.values;
  const ys = o.path ? null : (o.y?.values ?? linspace('-1:1:11', 'y'));
  checkGridSize(xs, ys, o.yes);
  const { split, seed, block, iters, tol, eps, shard } = o;
  return gridCommand('hessian', o, globals, {
    axes: ys ? ['x/', 'y/'] : ['x/'],
    what: (a, images) => {
      const grid = ys ? `${xs.length} x ${ys.length} grid` : `${xs.length}-point path`;
      return `${grid} around ${a.model}, ${images} images, up to ${iters} Lanczos iterations`;
    },
    run: ({ gpu, a, targets, data, directions, dirOpts, out, hooks }) => {
      const opts = { xs, ys, split, ...dirOpts, directions, seed, block, iters, tol, eps, shard };
      return runHessian(gpu, a, targets, data, opts, out, hooks);
    },
    closing: (r, out) => {
      const ratio = ratios(r).abs;
      const c = Math.floor(r.max.length / 2);
      const centre = `lambda_max ${r.max[c].toPrecision(4)}, lambda_min ${r.min[c].toPrecision(4)}`;
      const range = `${Math.min(...ratio).toFixed(3)} .. ${Math.max(...ratio).toFixed(3)}`;
      const png = join(out, ys ? 'hessian_ratio.png' : 'hessian_path.png');
      return `centre: ${centre}; |min/max| over the map ${range}; wrote ${png}`;
    },
  });
});

const merge = command(MERGE, async ({ options: o, positionals: dirs }) => {
  if (existsSync(join(dirs[0], 'hessian_meta.json'))) {
    const h = await mergeHessians(dirs, o.out);
    console.log(`merged ${dirs.length} shards (${h.xs.length}${h.ys ? ` x ${h.ys.length}` : ''} points) into ${o.out}`);
    return 0;
  }
  const r = await mergeSurfaces(dirs, o.out, { zmax: o.zmax, log: o.log });
  console.log(`merged ${dirs.length} shards (${r.xs.length} x ${r.ys.length} points) into ${o.out}`);
  return 0;
});

export const GRID_COMMANDS: Record<string, Command> = { surface, hessian, merge };

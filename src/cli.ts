// loss-atlas command line. Each command is a small function; `loss-atlas help` lists them.
import { Gpu } from './engine/device.ts';
import { checkOp, opCases } from './engine/gradcheck.ts';
import { runDemo } from './experiments/demo.ts';
import { MPO_HELP, mpoCommand } from './experiments/mpo-cli.ts';
import { profileCommand } from './experiments/profile.ts';
import { stopOnSignal } from './experiments/stop.ts';
import { Profiler } from './engine/profiler.ts';
import { BN_COMPARE_HELP, bnCompare } from './experiments/bn-compare.ts';
import { INTERPOLATE_HELP, readCheckpoint, runInterpolate } from './experiments/interpolate.ts';
import { DIRECTION_HELP, DIR_NORMS, linspace, readDirections, type DirNorm, type DirType } from './experiments/directions.ts';
import { checkpointSpec, type Checkpoint, type WeightSet } from './experiments/checkpoint.ts';
import { SurfaceInterrupted, mergeSurfaces, runSurface } from './experiments/surface.ts';
import { LI_FIGURES_HELP, runLiFigures } from './experiments/li-figures.ts';
import { TOY_HELP, runToy } from './experiments/toy.ts';
import { FORT_FIGURES_HELP, runFortFigures } from './experiments/fort-figures.ts';
import { SWA_HELP, swaCommand } from './experiments/swa.ts';
import { TUNNELS_HELP, tunnelsCommand } from './experiments/tunnels.ts';
import { SUBSPACE_HELP, subspaceCommand } from './experiments/subspace.ts';
import { CONNECT_HELP, runConnect, runMSweep, type ConnectOptions } from './experiments/connect.ts';
import { HessianInterrupted, mergeHessians, ratios, runHessian } from './experiments/hessian.ts';
import { runTrajectory } from './experiments/trajectory.ts';
import { writeReport } from './viz/report.ts';
import { TRAIN_HELP, TrainInterrupted, runTrain, trainConfig, type TrainConfig } from './experiments/train.ts';
import { fashionMnistDir } from './data/fashion-mnist.ts';
import { loadSplits } from './data/datasets.ts';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readSafetensors } from './data/formats.ts';
import { CIFAR10, cifar10Dir } from './data/cifar10.ts';
import { fetchArchive } from './data/download.ts';
import { join, dirname } from 'node:path';

interface Command {
  summary: string;
  run: (args: string[], flags: Flags) => Promise<number>;
}
export interface Flags {
  verbose: boolean;
  [k: string]: string | boolean;
}

function parseFlags(argv: string[]): { args: string[]; flags: Flags } {
  const flags: Flags = { verbose: false };
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) { args.push(a); continue; }
    const [k, v] = a.slice(2).split('=', 2);
    if (v !== undefined) flags[k] = v;
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--') && k !== 'verbose') flags[k] = argv[++i];
    else flags[k] = true;
  }
  return { args, flags };
}

/** Set by a global --profile: time every dispatch of the command and print the per-kernel table at its end. */
let profileAll: { trace: string } | null = null;

async function withGpu<T>(flags: Flags, fn: (gpu: Gpu) => Promise<T>): Promise<T> {
  const gpu = await Gpu.create({ verbose: flags.verbose, profile: !!flags.profile || !!profileAll });
  const prof = profileAll ? Profiler.attach(gpu) : null;
  if (profileAll && !prof) throw new Error(`--profile: adapter ${gpu.adapterInfo} has no timestamp-query`);
  try {
    const r = await fn(gpu);
    if (prof && profileAll) {
      await prof.collect();
      console.log(`\nkernels of the whole command (pipeline compilation included), from timestamp queries:\n${prof.table()}`);
      writeFileSync(profileAll.trace, JSON.stringify(prof.chromeTrace()));
      console.log(`Chrome trace: ${profileAll.trace}`);
      prof.detach();
    }
    return r;
  } finally {
    gpu.destroy();
  }
}


/** The default run directory runs/<name>-<UTC time>. */
const runDir = (name: string) => join('runs', `${name}-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`);

const mkdirp = (d: string) => { mkdirSync(d, { recursive: true }); return d; };

function checkFlags(flags: Flags, known: string[], cmd: string): void {
  for (const k of Object.keys(flags)) if (k !== 'verbose' && !known.includes(k)) throw new Error(`unknown flag --${k} (see loss-atlas ${cmd} --help)`);
}

/** --model-file (and the extra checkpoint flags given) with the dataset its architecture was trained on. */
function checkpointsAndData(flags: Flags, extra: string[]) {
  const file = flags['model-file'];
  if (typeof file !== 'string') throw new Error('--model-file PATH (a model.safetensors written by loss-atlas train) is required');
  const cifar = readSafetensors(file).metadata.model === 'cifar';
  const data = loadSplits(cifar ? 'cifar10' : 'fashion-mnist', cifar ? cifar10Dir(flags.data) : fashionMnistDir(flags.data));
  const others = extra.map((f) => (typeof flags[f] === 'string' ? readCheckpoint(flags[f] as string, data.train.shape) : null));
  return { a: readCheckpoint(file, data.train.shape), others, data, file };
}

/** --norm, --ignore, --dir-type, --bn-stats and --images, shared by interpolate, surface and hessian. */
const DIRECTION_FLAGS = ['norm', 'ignore', 'dir-type', 'bn-stats', 'images', 'dir-file'];
/** --dir-file F: directions saved by an earlier run (surface/hessian: x/ and y/ tensors; interpolate: none or x/). */
function dirFile(flags: Flags, a: Checkpoint, input: [number, number, number], prefixes: string[]): WeightSet[] | undefined {
  const f = flags['dir-file'];
  if (f === undefined) return undefined;
  if (typeof f !== 'string' || !existsSync(f)) throw new Error(`--dir-file: ${f}: no such file`);
  const layers = checkpointSpec(a, input).layers;
  if (prefixes.length === 1 && prefixes[0] === '') {
    // interpolate: its own direction file has no prefix; a surface's x/ direction works too
    const t = readSafetensors(f).tensors;
    return readDirections(f, layers, [Object.keys(t).some((k) => k.startsWith('x/')) ? 'x/' : '']);
  }
  return readDirections(f, layers, prefixes);
}

function directionFlags(flags: Flags, defaultImages: number): { norm: DirNorm; ignoreBiasBn: boolean; images: number; dirType: DirType; bnStats: 'running' | 'batch' } {
  const norm = (typeof flags.norm === 'string' ? flags.norm : 'filter') as DirNorm;
  if (!DIR_NORMS.includes(norm)) throw new Error(`--norm "${norm}": one of ${DIR_NORMS.join(', ')} expected`);
  if (flags.ignore !== undefined && flags.ignore !== 'biasbn') throw new Error(`--ignore "${flags.ignore}": only biasbn is known`);
  const images = flags.images === 'all' ? 0 : Number(flags.images ?? defaultImages);
  if (!Number.isInteger(images) || images < 0) throw new Error(`--images: a whole number or all expected, got "${flags.images}"`);
  const dirType = (flags['dir-type'] ?? 'weights') as DirType;
  if (dirType !== 'weights' && dirType !== 'states') throw new Error(`--dir-type "${flags['dir-type']}": weights or states expected`);
  const bnStats = (flags['bn-stats'] ?? 'running') as 'running' | 'batch';
  if (bnStats !== 'running' && bnStats !== 'batch') throw new Error(`--bn-stats "${flags['bn-stats']}": running or batch expected`);
  return { norm, ignoreBiasBn: flags.ignore === 'biasbn', images, dirType, bnStats };
}

/** --shard i/n */
function shardFlag(flags: Flags): { i: number; n: number } | undefined {
  if (flags.shard === undefined) return undefined;
  const m = typeof flags.shard === 'string' ? flags.shard.match(/^(\d+)\/(\d+)$/) : null;
  if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) throw new Error(`--shard "${flags.shard}": i/n with 0 <= i < n expected, e.g. 0/4`);
  return { i: Number(m[1]), n: Number(m[2]) };
}

function intFlag(flags: Flags, k: string, d: number, min: number): number {
  const v = Number(flags[k] ?? d);
  if (!Number.isInteger(v) || v < min) throw new Error(`--${k}: a whole number >= ${min} expected, got "${flags[k]}"`);
  return v;
}

function numFlag(flags: Flags, k: string, d: number): number {
  const v = Number(flags[k] ?? d);
  if (!(v > 0) || !Number.isFinite(v)) throw new Error(`--${k}: a positive number expected, got "${flags[k]}"`);
  return v;
}

/** Runs a block-wise resumable job with Ctrl-C -> stop after the current block. */
async function interruptible<T>(run: (shouldStop: () => boolean) => Promise<T>): Promise<T> {
  const sig = stopOnSignal('stopping after this block (Ctrl-C again to quit at once) ...');
  try {
    return await run(sig.stopped);
  } finally {
    sig.dispose();
  }
}

const HESSIAN_HELP = `usage: loss-atlas hessian --model-file A.safetensors [--model-file2 B] [--model-file3 C] [flags]

The largest and smallest eigenvalues of the loss Hessian (conv and linear weights, as the reference) at every point
theta + a * d1 + b * d2 of a grid (or along d1 only when --y is not given), by Lanczos on Hessian-vector products
(central differences of gradients, both signs batched as manifold points; a block of points per batched pass).
Writes hessian_{max,min,loss,iters}.npy (NaN where not done yet: running the same command again resumes),
hessian.json, hessian_ratio.png (|lambda_min / lambda_max|, viridis 0..0.5 as the reference), hessian_ratio_signed.png,
hessian_max.png (or hessian_path.png for a path) into --out (default runs/hessian-<time>).
  --x min:max:num (-1:1:11)   --y min:max:num (-1:1:11; omit with --path for 1-D)   --path   along d1 only
  --split train|test (train)  --images N|all (500)   --seed N (123)   --block N (8) points per batched pass
  --iters N (30)  Lanczos iterations at most        --tol X (0.01) residual / spectral scale for convergence
  --eps X (0.001) central-difference step along the unit Lanczos vector       --data DIR
${DIRECTION_HELP}
  --shard i/n    compute only the points k with k % n == i; then: loss-atlas merge DIR_0 ... --out DIR`;

/**
 * The frame of a Fashion-MNIST experiment command: --help, the dataset (--data), the run directory (--out, default
 * runs/<name>-<time>), the GPU with its adapter printed; the body returns the closing line.
 */
function fashionExperiment(help: string, name: string, body: (gpu: Gpu, d: { data: ReturnType<typeof loadSplits>; dataDir: string; out: string }, flags: Flags) => Promise<string>): Command['run'] {
  return async (_a, flags) => {
    if (flags.help) { console.log(help); return 0; }
    const dataDir = fashionMnistDir(flags.data);
    const data = loadSplits('fashion-mnist', dataDir);
    const out = typeof flags.out === 'string' ? flags.out : runDir(name);
    return withGpu(flags, async (gpu) => {
      console.log(`adapter: ${gpu.adapterInfo}`);
      console.log(await body(gpu, { data, dataDir, out }, flags));
      return 0;
    });
  };
}

const commands: Record<string, Command> = {
  mpo: {
    summary: 'multi-point optimization: draw a picture into the loss landscape (--help for flags)',
    run: async (_a, flags) => {
      if (flags.help) { console.log(MPO_HELP); return 0; }
      return withGpu(flags, (gpu) => mpoCommand(gpu, flags));
    },
  },
  train: {
    summary: 'ordinary training of a model (SGD, momentum/Nesterov, step schedule), checkpoints and snapshots (--help)',
    run: async (_a, flags) => {
      if (flags.help) { console.log(TRAIN_HELP); return 0; }
      let cfg: TrainConfig, out: string;
      const resume = typeof flags.resume === 'string' ? flags.resume : null;
      if (resume) {
        if (!existsSync(join(resume, 'config.json'))) throw new Error(`--resume ${resume}: no config.json there (not a run directory?)`);
        cfg = JSON.parse(readFileSync(join(resume, 'config.json'), 'utf8'));
        out = resume;
      } else {
        cfg = trainConfig(flags, (ds, f) => (ds === 'cifar10' ? cifar10Dir(f) : fashionMnistDir(f)));
        out = typeof flags.out === 'string' ? flags.out : runDir(`train-${cfg.model}`);
        if (existsSync(join(out, 'config.json'))) throw new Error(`--out ${out} already holds a run; use --resume ${out} to continue it`);
      }
      const data = loadSplits(cfg.dataset, cfg.data);
      return withGpu(flags, async (gpu) => {
        console.log(`adapter: ${gpu.adapterInfo}\nrun directory: ${out}`);
        const sig = stopOnSignal('stopping after this epoch (Ctrl-C again to quit at once) ...');
        try {
          const m = await runTrain(gpu, cfg, data, out, !!resume, { log: (l) => console.log(l), shouldStop: sig.stopped });
          console.log(`done: test accuracy ${(m.test_acc * 100).toFixed(2)}%, weights in ${join(out, 'model.safetensors')}`);
          return 0;
        } catch (e) {
          if (e instanceof TrainInterrupted) { console.error(`${e.message}\ncontinue with: loss-atlas train --resume ${out}`); return 130; }
          throw e;
        } finally {
          sig.dispose();
        }
      });
    },
  },
  interpolate: {
    summary: 'loss and accuracy along a line: between two checkpoints, or along a random filter-normalized direction (--help)',
    run: async (_a, flags) => {
      if (flags.help) { console.log(INTERPOLATE_HELP); return 0; }
      checkFlags(flags, ['model-file', 'model-file2', 'x', ...DIRECTION_FLAGS, 'seed', 'log', 'loss-max', 'data', 'out'], 'interpolate');
      const { a, others: [b], data, file: fileA } = checkpointsAndData(flags, ['model-file2']);
      const fileB = b ? (flags['model-file2'] as string) : null;
      const { norm, ignoreBiasBn, images, dirType, bnStats } = directionFlags(flags, 1000);
      const lossMax = Number(flags['loss-max'] ?? 5);
      if (!(lossMax > 0)) throw new Error(`--loss-max: a positive number expected, got "${flags['loss-max']}"`);
      const alphas = linspace(typeof flags.x === 'string' ? flags.x : b ? '-0.5:1.5:401' : '-1:1:51', 'x');
      const out = typeof flags.out === 'string' ? flags.out : runDir('interpolate');
      return withGpu(flags, async (gpu) => {
        console.log(`adapter: ${gpu.adapterInfo}\n${alphas.length} points of ${a.model}${b ? ' between two checkpoints' : ` along a random ${norm}-normalized direction`}, ${images || 'all'} images per split`);
        if (b && flags['dir-file'] !== undefined) throw new Error('--dir-file and --model-file2: the direction is either B - A or the saved one');
        const saved = b ? undefined : dirFile(flags, a, data.train.shape, [''])?.[0];
        const opts = { alphas, norm, ignoreBiasBn, dirType, bnStats, seed: Number(flags.seed ?? 123), images, logScale: !!flags.log, lossMax, direction: saved };
        mkdirSync(out, { recursive: true });
        writeFileSync(join(out, 'config.json'), JSON.stringify({ modelFile: fileA, modelFile2: fileB, ...opts, alphas: undefined, x: flags.x ?? null, adapter: gpu.adapterInfo }, null, 2) + '\n');
        const r = await runInterpolate(gpu, a, b, data, opts, out);
        const k0 = r.alpha.reduce((best, al, k) => (Math.abs(al) < Math.abs(r.alpha[best]) ? k : best), 0);
        console.log(`alpha ${r.alpha[k0]}: test loss ${r.test_loss[k0].toFixed(4)}, accuracy ${(100 * r.test_acc[k0]).toFixed(1)}%; max test loss ${Math.max(...r.test_loss).toFixed(3)}`);
        console.log(`wrote ${join(out, 'interpolate.png')} and interpolate.json`);
        return 0;
      });
    },
  },
  surface: {
    summary: 'loss and accuracy on a 2-D grid around a checkpoint (filter-normalized or target directions), resumable (--help)',
    run: async (_a, flags) => {
      if (flags.help) {
        console.log(`usage: loss-atlas surface --model-file A.safetensors [--model-file2 B] [--model-file3 C] [flags]

Loss and accuracy at theta + a * d1 + b * d2 for a, b on --x, --y (min:max:num, default -1:1:51 each); d1, d2 random
and normalized per --norm (filter) unless --model-file2 / --model-file3 give targets (B - A, C - A). The grid is
evaluated in blocks of --block points; after each block surface_loss.npy / surface_acc.npy ([ny, nx], NaN where not
done yet) are saved, so running the same command again resumes. Writes also surface.json, surface_heatmap.png,
directions.safetensors into --out (default runs/surface-<time>).
  --split train|test (train)   --images N|all (1000)   --seed N (123)   --block N (256)   --data DIR
${DIRECTION_HELP}
  --shard i/n          compute only the points k with k % n == i (one process or machine per shard, each with its
                       own --out); then: loss-atlas merge DIR_0 ... DIR_n-1 --out DIR
  --zmax X / --log     for surface.vtp (ParaView): clip the loss at X / use z = ln(loss + 0.1)`);
        return 0;
      }
      checkFlags(flags, ['model-file', 'model-file2', 'model-file3', 'x', 'y', 'split', ...DIRECTION_FLAGS, 'seed', 'block', 'data', 'out', 'shard', 'zmax', 'log'], 'surface');
      const { a, others: [t2, t3], data } = checkpointsAndData(flags, ['model-file2', 'model-file3']);
      const { norm, ignoreBiasBn, images, dirType, bnStats } = directionFlags(flags, 1000);
      const split = (flags.split ?? 'train') as 'train' | 'test';
      if (split !== 'train' && split !== 'test') throw new Error(`--split "${flags.split}": train or test expected`);
      const shard = shardFlag(flags);
      const block = intFlag(flags, 'block', 256, 1);
      const xs = linspace(typeof flags.x === 'string' ? flags.x : '-1:1:51', 'x'), ys = linspace(typeof flags.y === 'string' ? flags.y : '-1:1:51', 'y');
      const out = typeof flags.out === 'string' ? flags.out : runDir('surface');
      return withGpu(flags, async (gpu) => {
        console.log(`adapter: ${gpu.adapterInfo}\n${xs.length} x ${ys.length} points around ${a.model}, ${images || 'all'} ${split} images each, into ${out}`);
        const sig = stopOnSignal('stopping after this block (Ctrl-C again to quit at once) ...');
        const t0 = performance.now();
        try {
          const r = await runSurface(gpu, a, [t2, t3], data, { xs, ys, split, images, norm, ignoreBiasBn, dirType, bnStats, seed: Number(flags.seed ?? 123), block, shard, directions: dirFile(flags, a, data.train.shape, ['x/', 'y/']) as [WeightSet, WeightSet] | undefined, zmax: flags.zmax !== undefined ? Number(flags.zmax) : undefined, log: !!flags.log }, out, {
            shouldStop: sig.stopped,
            onBlock: (done, total) => process.stderr.write(`${done}/${total} points  ${((performance.now() - t0) / 1000).toFixed(0)} s\n`),
          });
          if (shard && shard.n > 1) console.log(`shard ${shard.i}/${shard.n} done in ${out}; join the shards with: loss-atlas merge <shard dirs> --out DIR`);
          else console.log(`min loss ${Math.min(...r.loss).toFixed(4)}, max ${Math.max(...r.loss).toFixed(4)}; wrote ${join(out, 'surface_heatmap.png')}, surface.json, surface_{loss,acc}.npy`);
          return 0;
        } catch (e) {
          if (e instanceof SurfaceInterrupted) { console.error(`${e.message}\nrun the same command again to continue`); return 130; }
          throw e;
        } finally {
          sig.dispose();
        }
      });
    },
  },
  trajectory: {
    summary: 'a training run\'s path on the loss surface of its two PCA directions: trajectory --run DIR (a train run with --snapshots)',
    run: async (_a, flags) => {
      if (flags.help) { console.log('usage: loss-atlas trajectory --run DIR [--grid N (21)] [--images N|all (500)] [--margin X (0.3)] [--out DIR] [--data DIR]\nWrites trajectory.png (contours and the path, explained variance on the axes), trajectory.json and surface/ into --out (default DIR/trajectory).'); return 0; }
      for (const k of Object.keys(flags)) if (!['run', 'grid', 'images', 'margin', 'out', 'data', 'verbose'].includes(k)) throw new Error(`unknown flag --${k} (see loss-atlas trajectory --help)`);
      if (typeof flags.run !== 'string') throw new Error('--run DIR (a loss-atlas train run made with --snapshots) is required');
      const cfgPath = join(flags.run, 'config.json');
      if (!existsSync(cfgPath)) throw new Error(`--run ${flags.run}: no config.json (not a train run directory?)`);
      const tc = JSON.parse(readFileSync(cfgPath, 'utf8')) as TrainConfig;
      const dir = typeof flags.data === 'string' ? flags.data : tc.data;
      const data = loadSplits(tc.dataset, dir);
      const grid = Number(flags.grid ?? 21), images = flags.images === 'all' ? 0 : Number(flags.images ?? 500), margin = Number(flags.margin ?? 0.3);
      if (!Number.isInteger(grid) || grid < 2) throw new Error(`--grid: a whole number >= 2 expected, got "${flags.grid}"`);
      if (!Number.isInteger(images) || images < 0) throw new Error(`--images: a whole number or all expected, got "${flags.images}"`);
      const out = typeof flags.out === 'string' ? flags.out : join(flags.run, 'trajectory');
      return withGpu(flags, async (gpu) => {
        const r = await runTrajectory(gpu, flags.run as string, data, { grid, images, margin }, out);
        console.log(`explained variance: ${(100 * r.pca.explained[0]).toFixed(1)}% and ${(100 * r.pca.explained[1]).toFixed(1)}%; wrote ${join(out, 'trajectory.png')}`);
        return 0;
      });
    },
  },
  report: {
    summary: 'HTML: index.html for a run directory (pictures, results, settings, data links), or a gallery of the runs under a folder (default runs/)',
    run: async (args) => {
      const root = args[0] ?? 'runs';
      const r = writeReport(root);
      console.log(`${r.runs} run${r.runs === 1 ? '' : 's'}; open ${join(root, 'index.html')}`);
      return 0;
    },
  },
  hessian: {
    summary: 'largest/smallest Hessian eigenvalues and their ratio on a grid or path around a checkpoint (Lanczos), resumable (--help)',
    run: async (_a, flags) => {
      if (flags.help) { console.log(HESSIAN_HELP); return 0; }
      checkFlags(flags, ['model-file', 'model-file2', 'model-file3', 'x', 'y', 'path', 'split', ...DIRECTION_FLAGS, 'seed', 'block', 'iters', 'tol', 'eps', 'data', 'out', 'shard'], 'hessian');
      const { a, others: [t2, t3], data } = checkpointsAndData(flags, ['model-file2', 'model-file3']);
      const { norm, ignoreBiasBn, images, dirType, bnStats } = directionFlags(flags, 500);
      const split = (flags.split ?? 'train') as 'train' | 'test';
      if (split !== 'train' && split !== 'test') throw new Error(`--split "${flags.split}": train or test expected`);
      if (flags.path && flags.y !== undefined) throw new Error('--path and --y: a path has no y axis');
      const xs = linspace(typeof flags.x === 'string' ? flags.x : '-1:1:11', 'x');
      const ys = flags.path ? null : linspace(typeof flags.y === 'string' ? flags.y : '-1:1:11', 'y');
      const dirs = dirFile(flags, a, data.train.shape, ys ? ['x/', 'y/'] : ['x/']);
      const opts = { xs, ys, split, images, norm, ignoreBiasBn, dirType, bnStats, directions: dirs ? ([dirs[0], dirs[1] ?? dirs[0]] as [WeightSet, WeightSet]) : undefined, seed: intFlag(flags, 'seed', 123, 0), block: intFlag(flags, 'block', 8, 1), iters: intFlag(flags, 'iters', 30, 2), tol: numFlag(flags, 'tol', 0.01), eps: numFlag(flags, 'eps', 1e-3), shard: shardFlag(flags) };
      const out = typeof flags.out === 'string' ? flags.out : runDir('hessian');
      return withGpu(flags, async (gpu) => {
        console.log(`adapter: ${gpu.adapterInfo}\n${ys ? `${xs.length} x ${ys.length} grid` : `${xs.length}-point path`} around ${a.model}, ${images || 'all'} ${split} images, up to ${opts.iters} Lanczos iterations, into ${out}`);
        writeFileSync(join(mkdirp(out), 'config.json'), JSON.stringify({ modelFile: a.path, modelFile2: t2?.path ?? null, modelFile3: t3?.path ?? null, ...opts, adapter: gpu.adapterInfo }, null, 2) + '\n');
        const t0 = performance.now();
        try {
          const r = await interruptible((shouldStop) => runHessian(gpu, a, [t2, t3], data, opts, out, {
            shouldStop,
            onBlock: (done, total) => process.stderr.write(`${done}/${total} points  ${((performance.now() - t0) / 1000).toFixed(0)} s\n`),
          }));
          if (opts.shard && opts.shard.n > 1) { console.log(`shard ${opts.shard.i}/${opts.shard.n} done in ${out}; join the shards with: loss-atlas merge <shard dirs> --out DIR`); return 0; }
          const ratio = ratios(r).abs;
          const c = Math.floor(r.max.length / 2);
          console.log(`centre: lambda_max ${r.max[c].toPrecision(4)}, lambda_min ${r.min[c].toPrecision(4)}; |min/max| over the map ${Math.min(...ratio).toFixed(3)} .. ${Math.max(...ratio).toFixed(3)}; wrote ${join(out, ys ? 'hessian_ratio.png' : 'hessian_path.png')}`);
          return 0;
        } catch (e) {
          if (e instanceof HessianInterrupted) { console.error(`${e.message}\nrun the same command again to continue`); return 130; }
          throw e;
        }
      });
    },
  },
  merge: {
    summary: 'join the shard directories of one surface or Hessian map (--shard i/n) into one: merge DIR... --out DIR',
    run: async (args, flags) => {
      if (typeof flags.out !== 'string') throw new Error('merge: --out DIR is required');
      if (args.length && existsSync(join(args[0], 'hessian_meta.json'))) {
        const h = await mergeHessians(args, flags.out);
        console.log(`merged ${args.length} shards (${h.xs.length}${h.ys ? ` x ${h.ys.length}` : ''} points) into ${flags.out}`);
        return 0;
      }
      const r = await mergeSurfaces(args, flags.out, { zmax: flags.zmax !== undefined ? Number(flags.zmax) : undefined, log: !!flags.log });
      console.log(`merged ${args.length} shards (${r.xs.length} x ${r.ys.length} points) into ${flags.out}`);
      return 0;
    },
  },
  connect: {
    summary: 'low-loss connectors between checkpoints: Fort\'s hyperplane algorithm (also m-connectors for 3+), Bezier / polygonal chains (--help)',
    run: async (args, flags) => {
      if (flags.help) { console.log(CONNECT_HELP); return 0; }
      checkFlags(flags, ['method', 'points', 'steps', 'lr', 'batch', 'images', 'dense', 'seed', 'probes', 't-per-step', 'm-sweep', 'data', 'out'], 'connect');
      if (args.length < 2) throw new Error('connect: give two or more checkpoint files (model.safetensors of loss-atlas train)');
      const method = (flags.method ?? 'fort') as ConnectOptions['method'];
      if (!['fort', 'bezier', 'polychain'].includes(method)) throw new Error(`--method "${flags.method}": fort, bezier or polychain expected`);
      for (const a of args) if (!existsSync(a)) throw new Error(`${a}: no such checkpoint file`);
      const cifar = readSafetensors(args[0]).metadata.model === 'cifar';
      const data = loadSplits(cifar ? 'cifar10' : 'fashion-mnist', cifar ? cifar10Dir(flags.data) : fashionMnistDir(flags.data));
      const cks = args.map((a) => readCheckpoint(a, data.train.shape));
      const o: ConnectOptions = { method, points: intFlag(flags, 'points', args.length === 3 ? 4 : 9, 1), steps: intFlag(flags, 'steps', 300, 1), lr: numFlag(flags, 'lr', 1e-3), batch: intFlag(flags, 'batch', 128, 1), images: intFlag(flags, 'images', 1000, 1), dense: intFlag(flags, 'dense', 41, 3), seed: intFlag(flags, 'seed', 1, 0), probes: intFlag(flags, 'probes', flags['m-sweep'] ? 8 : 0, 0), tPerStep: intFlag(flags, 't-per-step', 4, 1) };
      const out = typeof flags.out === 'string' ? flags.out : runDir('connect');
      return withGpu(flags, async (gpu) => {
        console.log(`adapter: ${gpu.adapterInfo}`);
        if (flags['m-sweep']) {
          const ms = await runMSweep(gpu, cks, data, o, out, (m) => console.log(m));
          console.log(`short directions at the m-connector centres: ${(ms.centre_short_directions as number[]).map((v) => v.toFixed(1)).join(', ')} for m = 1..${cks.length - 1}`);
          console.log(`wrote ${out}/short_directions.png, msweep.json, metrics.json`);
          return 0;
        }
        const r = await runConnect(gpu, cks, data, o, out, (m) => console.log(m));
        console.log(JSON.stringify(r.metrics, (k, v) => (k === 'short_directions' ? undefined : v), 1).replace(/\n\s*/g, ' '));
        console.log(`wrote ${out}/metrics.json and the plots`);
        return 0;
      });
    },
  },
  subspace: {
    summary: 'training in random subspaces theta0 + P z, all d batched with direct training; intrinsic dimension d_int90 (--help)',
    run: fashionExperiment(SUBSPACE_HELP, 'subspace', async (gpu, { data, out }, flags) => {
      await subspaceCommand(gpu, data, flags, out, (m) => console.log(m));
      return `wrote ${join(out, 'subspace.png')}, metrics.json, config.json`;
    }),
  },
  tunnels: {
    summary: 'radial tunnels: loss along many random unit directions from an optimum, tunnel widths; --sweep over lr, L2, dropout, batch (--help)',
    run: fashionExperiment(TUNNELS_HELP, 'tunnels', async (gpu, { data, dataDir, out }, flags) => {
      await tunnelsCommand(gpu, data, dataDir, flags, out, (m) => console.log(m));
      return `wrote ${out}/metrics.json, config.json and the plot`;
    }),
  },
  swa: {
    summary: 'weight averaging vs prediction ensembling of snapshots at a low and a high learning rate (--help)',
    run: fashionExperiment(SWA_HELP, 'swa', async (gpu, { data, out }, flags) => {
      await swaCommand(gpu, data, flags, out, (m) => console.log(m));
      return `wrote ${join(out, 'swa.png')}, metrics.json, config.json`;
    }),
  },
  'fort-figures': {
    summary: 'Fort & Jastrzebski\'s experiments at CPU size (toy, connectors, m-connectors, tunnels, subspaces, SWA); --full for a GPU (--help)',
    run: async (_a, flags) => {
      if (flags.help) { console.log(FORT_FIGURES_HELP); return 0; }
      checkFlags(flags, ['full', 'tunnel-sweep', 'out', 'data'], 'fort-figures');
      const dataDir = fashionMnistDir(flags.data);
      const data = loadSplits('fashion-mnist', dataDir);
      return withGpu(flags, async (gpu) => {
        console.log(`adapter: ${gpu.adapterInfo}`);
        await runFortFigures(gpu, flags, dataDir, data, (m) => console.log(m));
        return 0;
      });
    },
  },
  toy: {
    summary: 'the n-wedge toy landscape (Fort & Jastrzebski): hyperplane threshold d_lim vs D - n, connector, radial well (--help)',
    run: async (_a, flags) => {
      if (flags.help) { console.log(TOY_HELP); return 0; }
      const out = typeof flags.out === 'string' ? flags.out : runDir('toy');
      return withGpu(flags, async (gpu) => {
        console.log(`adapter: ${gpu.adapterInfo}`);
        await runToy(gpu, flags, out, (m) => console.log(m));
        console.log(`wrote ${join(out, 'hyperplanes.png')}, connector.png, radial.png, metrics.json`);
        return 0;
      });
    },
  },
  'li-figures': {
    summary: 'Li et al. 2018\'s comparisons (skip vs none, depth, batch size, weight decay): 1-D, 2-D and eigen-ratio maps (--help)',
    run: async (_a, flags) => {
      if (flags.help) { console.log(LI_FIGURES_HELP); return 0; }
      checkFlags(flags, ['full', 'smoke', 'out', 'data'], 'li-figures');
      return withGpu(flags, async (gpu) => {
        console.log(`adapter: ${gpu.adapterInfo}`);
        await runLiFigures(gpu, flags, (m) => console.log(m));
        return 0;
      });
    },
  },
  'bn-compare': {
    summary: 'MPO on random squares over fill probabilities and seeds: plain vs batch norm vs skip (--help)',
    run: async (_a, flags) => {
      if (flags.help) { console.log(BN_COMPARE_HELP); return 0; }
      return withGpu(flags, (gpu) => bnCompare(gpu, flags));
    },
  },
  profile: {
    summary: 'a few MPO steps with per-kernel GPU times (timestamp queries) and a Chrome trace (takes the mpo flags, --profile-steps N, --trace PATH)',
    run: (_a, flags) => withGpu({ ...flags, profile: true }, (gpu) => profileCommand(gpu, flags)),
  },
  'data:cifar10': {
    summary: 'download CIFAR-10 (binary version), verify size and MD5, unpack the batches into data/cifar-10-batches-bin',
    run: async (_a, flags) => {
      const dir = cifar10Dir(flags.dir ?? flags.data);
      const archive = typeof flags.archive === 'string' ? flags.archive : join(dirname(dir), 'cifar-10-binary.tar.gz');
      const spec = {
        url: typeof flags.url === 'string' ? flags.url : CIFAR10.url,
        bytes: typeof flags.bytes === 'string' ? Number(flags.bytes) : CIFAR10.bytes,
        md5: typeof flags.md5 === 'string' ? flags.md5 : CIFAR10.md5,
        members: [...CIFAR10.train, ...CIFAR10.test, 'batches.meta.txt'].map((f) => `${CIFAR10.folder}/${f}`),
      };
      const files = await fetchArchive(spec, archive, dir);
      console.log(`CIFAR-10 ready in ${dir} (${files.length} files)`);
      return 0;
    },
  },
  demo: {
    summary: 'train a small conv net on Fashion-MNIST (K=1), then a 1-D loss profile: 21 points on a line in one batched pass',
    run: (_a, flags) => withGpu(flags, (gpu) => runDemo(gpu, flags)),
  },
  gradcheck: {
    summary: 'check every op: forward vs CPU reference, backward vs finite differences (non-zero exit on failure)',
    run: (_a, flags) =>
      withGpu(flags, async (gpu) => {
        const filter = typeof flags.op === 'string' ? flags.op : '';
        console.log(`adapter: ${gpu.adapterInfo}`);
        console.log('| op | case | forward err / tol | backward err / tol | result |\n|---|---|---|---|---|');
        let failed = 0;
        for (const c of opCases().filter((c) => c.op.includes(filter))) {
          const r = await checkOp(gpu, c);
          if (!r.pass) failed++;
          console.log(`| ${r.op} | ${r.name} | ${r.fwdErr.toFixed(3)} | ${r.bwdErr.toFixed(3)} | ${r.pass ? 'ok' : `FAIL: ${r.detail}`} |`);
        }
        console.log(failed ? `${failed} case(s) failed` : 'all cases passed (errors are shown as a fraction of the tolerance)');
        return failed ? 1 : 0;
      }),
  },
};

function help(): void {
  console.log('usage: loss-atlas <command> [flags]\n\ncommands:');
  for (const [n, c] of Object.entries(commands)) console.log(`  ${n.padEnd(12)} ${c.summary}`);
  console.log('\nflags: --verbose (print the GPU adapter and limits)');
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === 'help' || cmd === '--help') { help(); return 0; }
  const c = commands[cmd];
  if (!c) { console.error(`unknown command "${cmd}"`); help(); return 2; }
  const { args, flags } = parseFlags(rest);
  if (flags.profile && cmd !== 'profile') {
    // any command: --profile [--trace PATH] times its kernels (taken out of the flags the command checks)
    profileAll = { trace: typeof flags.trace === 'string' ? flags.trace : 'profile-trace.json' };
    delete flags.profile;
    delete flags.trace;
  }
  return c.run(args, flags);
}

main().then(
  (code) => process.exit(code),
  (e) => { console.error(e instanceof Error ? (process.env.LOSS_ATLAS_STACK ? e.stack : e.message) : e); process.exit(1); },
);

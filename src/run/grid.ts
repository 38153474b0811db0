// A resumable, sharded job over the points of a grid (or a 1-D path): per-point values in <name>_<array>.npy, NaN
// where a point is not done yet, and <name>_meta.json with everything that decides a point's value. Points are
// evaluated in blocks; after each block the arrays are saved and a stop request is honoured, so running the same job
// again resumes where it stopped, and a resume with other settings (or into a run directory of another kind) is
// refused. --shard i/n takes the points k with k % n == i, each shard in its own directory; mergeGrids joins them.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { atomicWrite, npyBytes, readNpy } from '../data/formats.ts';
import { Interrupted, RUN_AGAIN } from './interrupted.ts';
import type { Progress } from './progress.ts';
import { checkRunDir, readRunConfig, writeRunConfig, type RunKind } from './run-info.ts';

export interface Shard {
  i: number;
  n: number;
}

/** The coordinates of point k: [x] on a path (ys null), [x, y] on a grid stored row-major (k = j * nx + i). */
export function gridPoint(xs: number[], ys: number[] | null, k: number): number[] {
  return ys ? [xs[k % xs.length], ys[Math.floor(k / xs.length)]] : [xs[k]];
}

/** The array shape of a grid: [ny, nx], or [nx] for a path. */
export const gridShape = (xs: number[], ys: number[] | null) => (ys ? [ys.length, xs.length] : [xs.length]);

/** The points of a grid of K points that belong to a shard (all of them without one). */
export function shardPoints(K: number, shard: Shard = { i: 0, n: 1 }): number[] {
  return Array.from({ length: K }, (_, k) => k).filter((k) => k % shard.n === shard.i);
}

/** One rectangle per grid point (values [ny, nx], row j for ys[j]) centred on it. */
export function gridCells<T>(xs: number[], ys: number[], values: ArrayLike<number>, f: (v: number) => T) {
  const nx = xs.length;
  const dx = nx > 1 ? Math.abs(xs[1] - xs[0]) : 1;
  const dy = ys.length > 1 ? Math.abs(ys[1] - ys[0]) : 1;
  return Array.from(values, (z, k) => {
    const x = xs[k % nx];
    const y = ys[Math.floor(k / nx)];
    return { x: x - dx / 2, x2: x + dx / 2, y: y - dy / 2, y2: y + dy / 2, v: f(z) };
  });
}

/** What a grid job stores, and the words its messages use. */
export interface GridFiles<A extends string> {
  /** File prefix: <name>_<array>.npy and <name>_meta.json. */
  name: string;
  /** The per-point arrays; the first is the one compared when two shards hold the same point. */
  arrays: readonly A[];
  /** The array that is NaN exactly where a point is not done (finite once done, even if other values are not). */
  doneBy: A;
  /** Meta fields that may differ between the shards of one grid (say, file paths on other machines). */
  local?: string[];
  /** For messages: 'surface', 'Hessian map'. */
  noun: string;
  /** For messages: the settings that make two grids different, e.g. 'grid, images, directions, seed or model'. */
  decides: string;
  /** The kind written to config.json. */
  kind: RunKind;
}

export interface GridJobSpec<A extends string> extends GridFiles<A> {
  out: string;
  xs: number[];
  ys: number[] | null;
  /** Everything that decides a point's value, without the shard (stored as <name>_meta.json, shard added last). */
  meta: Record<string, unknown>;
  shard?: Shard;
  /** Settings for config.json besides the meta (those that do not change a point's value, e.g. the block size). */
  settings?: Record<string, unknown>;
  /** The adapter for config.json. */
  adapter: string | null;
  /** For the refusal of a resume with another grid: the flags that set it (default '--x/--y', '--x' for a path). */
  gridFlags?: string;
  /** For the interruption message (default 'the partial <noun> is saved'): 'the partial maps are saved'. */
  partial?: string;
}

export interface GridBlocks<A extends string> {
  /** Points per block: one evaluate call each, then the arrays are saved. */
  block: number;
  /** Values of the points ks (in order), one list per array. */
  evaluate: (ks: number[]) => Promise<Record<A, ArrayLike<number>>>;
  /** Polled after each block: when true and points remain, the job stops with Interrupted. */
  shouldStop?: () => boolean;
  /** Reported before the first block and after each one. */
  progress?: Progress;
  /** Gets the line saying the grid's size (points, blocks, what one point costs) before the first block. */
  announce?: (line: string) => void;
  /** What one point evaluates, for that line: '1000 train images per point'. */
  perPoint?: string;
}

/** Stop requests and progress reports of a grid run, as its callers pass them on. */
export type GridHooks = Pick<GridBlocks<string>, 'shouldStop' | 'progress' | 'announce' | 'perPoint'>;

/** The size line of a grid run: its points, those left, the blocks they take and what one point costs. */
export function gridSizeLine(noun: string, own: number, todo: number, block: number, perPoint?: string): string {
  if (todo === 0) return `${noun}: ${own} points, all done`;
  const blocks = Math.ceil(todo / block);
  const left = todo < own ? ` (${todo} left)` : '';
  const cost = perPoint ? `, ${perPoint}` : '';
  return `${noun}: ${own} points${left}, ${blocks} block${blocks === 1 ? '' : 's'} of up to ${block} points${cost}`;
}

export interface GridJob<A extends string> {
  readonly spec: GridJobSpec<A>;
  /** The per-point arrays, filled where done. */
  readonly values: Record<A, Float32Array>;
  readonly shape: number[];
  /** This shard's points, and those of them not done yet. */
  readonly own: number[];
  readonly todo: number[];
  /** Evaluates the points left, block by block; returns the arrays. */
  run(b: GridBlocks<A>): Promise<Record<A, Float32Array>>;
}

const metaKey = (m: Record<string, unknown>, drop: string[] = []) =>
  JSON.stringify({ ...m, shard: undefined, ...Object.fromEntries(drop.map((k) => [k, undefined])) });

const arrayPath = (dir: string, name: string, a: string) => join(dir, `${name}_${a}.npy`);

/**
 * Opens (or resumes) the grid job in spec.out: refuses a directory that holds a run of another kind, checks the stored
 * meta against this job's (refusing other settings), loads the partial arrays, writes the meta and, for a fresh job,
 * config.json.
 */
export function openGrid<A extends string>(spec: GridJobSpec<A>): GridJob<A> {
  const { out, name, xs, ys, arrays } = spec;
  checkRunDir(out, spec.kind, `the ${spec.noun}`);
  const shard = spec.shard ?? { i: 0, n: 1 };
  const shape = gridShape(xs, ys);
  const K = shape.reduce((a, b) => a * b, 1);
  mkdirSync(out, { recursive: true });
  const values = Object.fromEntries(arrays.map((a) => [a, new Float32Array(K).fill(NaN)])) as Record<A, Float32Array>;
  const meta = { ...spec.meta, shard };
  const metaPath = join(out, `${name}_meta.json`);
  const resumed = arrays.every((a) => existsSync(arrayPath(out, name, a)));
  if (resumed) {
    if (existsSync(metaPath) && metaKey(JSON.parse(readFileSync(metaPath, 'utf8'))) !== metaKey(meta)) {
      throw new Error(`${out} holds a ${spec.noun} with other settings (${spec.decides}); use another --out`);
    }
    for (const a of arrays) {
      const p = arrayPath(out, name, a);
      const r = readNpy(p);
      const flags = spec.gridFlags ?? (ys ? '--x/--y' : '--x');
      if (r.shape.join() !== shape.join()) {
        throw new Error(`${p}: grid [${r.shape}] does not match ${flags} [${shape}]; use another --out`);
      }
      values[a] = r.data;
    }
  }
  atomicWrite(metaPath, `${JSON.stringify(meta)}\n`);
  if (!resumed || !existsSync(join(out, 'config.json'))) {
    writeRunConfig(out, spec.kind, { ...meta, ...spec.settings }, spec.adapter);
  }
  const own = shardPoints(K, shard);
  const todo = own.filter((k) => Number.isNaN(values[spec.doneBy][k]));
  const save = () => {
    for (const a of arrays) atomicWrite(arrayPath(out, name, a), npyBytes(values[a], shape));
  };
  return {
    spec,
    values,
    shape,
    own,
    todo,
    async run(b) {
      const before = own.length - todo.length;
      b.announce?.(gridSizeLine(spec.noun, own.length, todo.length, b.block, b.perPoint));
      b.progress?.(before, own.length);
      for (let b0 = 0; b0 < todo.length; b0 += b.block) {
        const ks = todo.slice(b0, b0 + b.block);
        const res = await b.evaluate(ks);
        for (const a of arrays) for (let q = 0; q < ks.length; q++) values[a][ks[q]] = res[a][q];
        save();
        const done = before + b0 + ks.length;
        b.progress?.(done, own.length);
        if (b.shouldStop?.() && b0 + b.block < todo.length) {
          const saved = spec.partial ?? `the partial ${spec.noun} is saved`;
          const msg = `interrupted with ${done} of ${own.length} points done; ${saved} in ${out}`;
          throw new Interrupted(msg, out, RUN_AGAIN);
        }
      }
      return values;
    },
  };
}

export interface MergedGrid<A extends string> {
  /** The first shard's meta (shard set to 0/1). */
  meta: Record<string, unknown> & { x: number[]; y: number[] | null };
  values: Record<A, Float32Array>;
}

/**
 * Joins the shard directories of one grid into out: every point must be done in exactly one shard (or in several
 * with the same value). Writes the arrays, the meta and config.json into out; the caller draws the pictures.
 */
export function mergeGrids<A extends string>(dirs: string[], out: string, f: GridFiles<A>): MergedGrid<A> {
  if (dirs.length === 0) throw new Error('merge: give the shard directories');
  const metas = dirs.map((d) => {
    const p = join(d, `${f.name}_meta.json`);
    if (!existsSync(p)) throw new Error(`${d}: no ${f.name}_meta.json (not a ${f.name} run directory?)`);
    return JSON.parse(readFileSync(p, 'utf8')) as MergedGrid<A>['meta'];
  });
  metas.forEach((m, i) => {
    if (metaKey(m, f.local) !== metaKey(metas[0], f.local)) {
      throw new Error(`merge: ${dirs[i]} is a different ${f.noun} (${f.decides}) from ${dirs[0]}`);
    }
  });
  checkRunDir(out, f.kind, `the merged ${f.noun}`);
  const shape = gridShape(metas[0].x, metas[0].y);
  const K = shape.reduce((a, b) => a * b, 1);
  const merged = Object.fromEntries(f.arrays.map((a) => [a, new Float32Array(K).fill(NaN)])) as Record<A, Float32Array>;
  const first = f.arrays[0];
  for (const d of dirs) {
    const read = (a: A) => readNpy(arrayPath(d, f.name, a)).data;
    const parts = Object.fromEntries(f.arrays.map((a) => [a, read(a)])) as Record<A, Float32Array>;
    for (let k = 0; k < K; k++) {
      if (Number.isNaN(parts[f.doneBy][k])) continue;
      if (!Number.isNaN(merged[f.doneBy][k]) && !Object.is(merged[first][k], parts[first][k])) {
        const [was, is] = [merged[first][k], parts[first][k]];
        throw new Error(`merge: point ${k} has two different values (${was} and ${is} in ${d})`);
      }
      for (const a of f.arrays) merged[a][k] = parts[a][k];
    }
  }
  const missing = Array.from(merged[f.doneBy]).filter(Number.isNaN).length;
  if (missing) {
    throw new Error(`merge: ${missing} of ${K} points are in none of the shards (a shard unfinished or missing?)`);
  }
  mkdirSync(out, { recursive: true });
  const meta = { ...metas[0], shard: { i: 0, n: 1 } };
  for (const a of f.arrays) atomicWrite(arrayPath(out, f.name, a), npyBytes(merged[a], shape));
  atomicWrite(join(out, `${f.name}_meta.json`), `${JSON.stringify(meta)}\n`);
  let shardSettings: Record<string, unknown> = {};
  try {
    shardSettings = readRunConfig(dirs[0]).settings; // what the first shard recorded beyond its meta
  } catch {
    // a shard directory without a readable config.json: the meta is all there is
  }
  writeRunConfig(out, f.kind, { ...shardSettings, ...meta, shards: dirs }, null);
  return { meta, values: merged };
}

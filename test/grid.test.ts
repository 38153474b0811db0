// The resumable, sharded grid job on a fake evaluator (no GPU): shard filter, blocks, stop and resume, the
// settings check, the merge of shard directories, and the geometry helpers.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNpy } from '../src/data/formats.ts';
import {
  gridCells,
  gridPoint,
  gridShape,
  mergeGrids,
  openGrid,
  shardPoints,
  type GridFiles,
  type Shard,
} from '../src/run/grid.ts';
import { Interrupted } from '../src/run/interrupted.ts';
import { readRunConfig, writeRunConfig } from '../src/run/run-info.ts';

const dir = mkdtempSync(join(tmpdir(), 'la-grid-'));
const xs = [-1, 0, 1, 2],
  ys = [10, 20, 30];
const FILES: GridFiles<'f' | 'n'> = {
  name: 'fake',
  arrays: ['f', 'n'],
  doneBy: 'n',
  kind: 'surface',
  noun: 'fake map',
  decides: 'grid or scale',
  local: ['path'],
};
/** A point's value: x * scale + y; n counts how often the point was evaluated. */
const job = (out: string, o: { shard?: Shard; scale?: number; path?: string; ys?: number[] | null } = {}) => {
  const y = o.ys === undefined ? ys : o.ys;
  return openGrid({
    ...FILES,
    out,
    xs,
    ys: y,
    meta: { x: xs, y, scale: o.scale ?? 2, path: o.path ?? '/a' },
    shard: o.shard,
    adapter: 'fake',
  });
};
const evaluator =
  (scale = 2, ys: number[] | null = [10, 20, 30], seen: number[][] = []) =>
  async (ks: number[]) => {
    seen.push(ks);
    const v = ks.map((k) => gridPoint(xs, ys, k)).map(([x, y]) => x * scale + (y ?? 0));
    return { f: v, n: ks.map(() => 1) };
  };

describe('grid geometry', () => {
  it('points are row-major, shards take k % n == i, cells are centred on the points', () => {
    expect(gridPoint(xs, ys, 5)).toEqual([0, 20]);
    expect(gridPoint(xs, null, 2)).toEqual([1]);
    expect(gridShape(xs, ys)).toEqual([3, 4]);
    expect(gridShape(xs, null)).toEqual([4]);
    expect(shardPoints(10, { i: 1, n: 3 })).toEqual([1, 4, 7]);
    expect(shardPoints(3)).toEqual([0, 1, 2]);
    const c = gridCells([0, 1], [5, 7], [1, 2, 3, 4], (v) => v * 10);
    expect(c[3]).toEqual({ x: 0.5, x2: 1.5, y: 6, y2: 8, v: 40 });
  });
});

describe('grid job', () => {
  it('evaluates its shard in blocks, saves NaN where not done, stops between blocks and resumes', async () => {
    const out = join(dir, 'part');
    const seen: number[][] = [];
    let polls = 0;
    const j1 = job(out, { shard: { i: 1, n: 2 } });
    expect(j1.own).toEqual([1, 3, 5, 7, 9, 11]);
    const err = await j1
      .run({ block: 2, evaluate: evaluator(2, ys, seen), shouldStop: () => ++polls >= 2 })
      .catch((e) => e);
    expect(err).toBeInstanceOf(Interrupted);
    expect(err.message).toBe(`interrupted with 4 of 6 points done; the partial fake map is saved in ${out}`);
    expect(err.dir).toBe(out);
    expect(seen).toEqual([
      [1, 3],
      [5, 7],
    ]);
    const saved = readNpy(join(out, 'fake_f.npy'));
    expect(saved.shape).toEqual([3, 4]);
    expect(Array.from(saved.data, (v) => (Number.isNaN(v) ? null : v))).toEqual([
      null,
      10,
      null,
      14,
      null,
      20,
      null,
      24,
      null,
      null,
      null,
      null,
    ]);
    expect(JSON.parse(readFileSync(join(out, 'fake_meta.json'), 'utf8'))).toEqual({
      x: xs,
      y: ys,
      scale: 2,
      path: '/a',
      shard: { i: 1, n: 2 },
    });
    expect(readRunConfig(out)).toMatchObject({
      kind: 'surface',
      adapter: 'fake',
      settings: { scale: 2, shard: { i: 1, n: 2 } },
    });

    // the same job again: only the points left, then done (a stop asked after the last block changes nothing)
    const j2 = job(out, { shard: { i: 1, n: 2 } });
    expect(j2.todo).toEqual([9, 11]);
    const reports: [number, number][] = [];
    const v = await j2.run({
      block: 2,
      evaluate: evaluator(2, ys, seen),
      shouldStop: () => true,
      progress: (d, t) => reports.push([d, t]),
    });
    expect(seen.slice(2)).toEqual([[9, 11]]);
    expect(reports).toEqual([
      [4, 6],
      [6, 6],
    ]);
    expect(v.f[11]).toBe(2 * 2 + 30);
    expect(Array.from(v.n).filter((n) => n === 1).length).toBe(6);
  });

  it('a resume with other settings or another grid is refused; only the shard may differ', async () => {
    const out = join(dir, 'settings');
    await job(out).run({ block: 12, evaluate: evaluator() });
    expect(() => job(out, { scale: 3 })).toThrow(
      `${out} holds a fake map with other settings (grid or scale); use another --out`,
    );
    expect(() => job(out, { path: '/b' })).toThrow(/other settings/); // local fields differ only between shards
    expect(() =>
      openGrid({ ...FILES, out, xs, ys: [10, 20], meta: { x: xs, y: ys, scale: 2, path: '/a' }, adapter: null }),
    ).toThrow(/fake_f\.npy: grid \[3,4\] does not match --x\/--y \[2,4\]; use another --out/);
    expect(job(out, { shard: { i: 0, n: 3 } }).todo).toEqual([]);
  });

  it('shard directories merge into the unsharded result; gaps, conflicts and other grids are named', async () => {
    const one = join(dir, 'one'),
      s0 = join(dir, 's0'),
      s1 = join(dir, 's1'),
      s2 = join(dir, 's2');
    const full = await job(one).run({ block: 5, evaluate: evaluator() });
    await job(s0, { shard: { i: 0, n: 2 } }).run({ block: 3, evaluate: evaluator() });
    await job(s1, { shard: { i: 1, n: 2 }, path: '/elsewhere' }).run({ block: 3, evaluate: evaluator() });
    expect(() => mergeGrids([], join(dir, 'm'), FILES)).toThrow('merge: give the shard directories');
    expect(() => mergeGrids([s0], join(dir, 'm'), FILES)).toThrow(
      'merge: 6 of 12 points are in none of the shards (a shard unfinished or missing?)',
    );
    expect(() => mergeGrids([s0, join(dir, 'nothing')], join(dir, 'm'), FILES)).toThrow(
      /nothing: no fake_meta\.json \(not a fake run directory\?\)/,
    );
    await job(s2, { shard: { i: 1, n: 2 }, scale: 5 }).run({ block: 6, evaluate: evaluator(5) });
    expect(() => mergeGrids([s0, s2], join(dir, 'm'), FILES)).toThrow(
      `merge: ${s2} is a different fake map (grid or scale) from ${s0}`,
    );
    const m = mergeGrids([s0, s1], join(dir, 'm'), FILES);
    expect(Array.from(m.values.f)).toEqual(Array.from(full.f));
    expect(m.meta.shard).toEqual({ i: 0, n: 1 });
    expect(Array.from(readNpy(join(dir, 'm', 'fake_f.npy')).data)).toEqual(Array.from(full.f));
    expect(existsSync(join(dir, 'm', 'fake_meta.json'))).toBe(true);
    expect(readRunConfig(join(dir, 'm'))).toMatchObject({
      kind: 'surface',
      adapter: null,
      settings: { shards: [s0, s1] },
    });
    // the same point in two shards with the same value is fine; with another value it is not
    expect(Array.from(mergeGrids([one, s0, s1], join(dir, 'm2'), FILES).values.f)).toEqual(Array.from(full.f));
    const s3 = join(dir, 's3');
    await job(s3, { scale: 2 }).run({
      block: 12,
      evaluate: async (ks) => ({ f: ks.map(() => 99), n: ks.map(() => 1) }),
    });
    expect(() => mergeGrids([one, s3], join(dir, 'm3'), FILES)).toThrow(
      `merge: point 0 has two different values (8 and 99 in ${s3})`,
    );
  });

  it('an --out that holds a run of another kind is refused and left as it was', async () => {
    const out = join(dir, 'train-run');
    writeRunConfig(out, 'train', { model: 'tiny', epochs: 2 }, 'gpu');
    const before = readFileSync(join(out, 'config.json'), 'utf8');
    expect(() => job(out)).toThrow(
      `${out} holds a train run (config.json), not a surface: use another --out for the fake map`,
    );
    expect(readFileSync(join(out, 'config.json'), 'utf8')).toBe(before);
    expect(existsSync(join(out, 'fake_meta.json'))).toBe(false);
    // an unreadable config.json is not overwritten either
    const odd = join(dir, 'odd');
    mkdirSync(odd);
    writeFileSync(join(odd, 'config.json'), '{"mask": "heart"}');
    expect(() => job(odd)).toThrow(`${odd}/config.json: no "kind"`);
    // a directory with a config.json of its own kind (say, a run stopped before its first block) is taken
    const own = join(dir, 'own');
    writeRunConfig(own, 'surface', {}, 'fake');
    expect(job(own).todo.length).toBe(12);
  });

  it('a 1-D path: shape [nx], coordinates [x]', async () => {
    const out = join(dir, 'path');
    const v = await job(out, { ys: null }).run({ block: 3, evaluate: evaluator(2, null) });
    expect(readNpy(join(out, 'fake_f.npy')).shape).toEqual([4]);
    expect(Array.from(v.f)).toEqual([-2, 0, 2, 4]);
    expect(() =>
      openGrid({ ...FILES, out, xs: [0], ys: null, meta: { x: [0], y: null, scale: 2, path: '/a' }, adapter: null }),
    ).toThrow(/other settings/);
  });
});

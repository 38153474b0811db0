// PCA of training snapshots (no GPU needed): the eigen-solver, explained variance, unit directions, the path.
import { describe, expect, it } from 'vitest';
import { trajectoryPca } from '../src/landscape/trajectory.ts';
import { symmetricEigen } from '../src/numerics/eigen.ts';
import { randArray, rng } from '../src/engine/random.ts';

describe('trajectory PCA', () => {
  it('symmetricEigen recovers a known spectrum', () => {
    const { values, vectors } = symmetricEigen([
      [2, 1, 0],
      [1, 2, 0],
      [0, 0, 5],
    ]);
    expect(values.map((v) => +v.toFixed(10))).toEqual([5, 3, 1]);
    const v = vectors[1];
    expect(Math.abs(Math.abs(v[0]) - Math.SQRT1_2)).toBeLessThan(1e-9);
    expect(Math.sign(v[0])).toBe(Math.sign(v[1]));
  });

  it('a path along one line has one component; the final point sits at the origin', () => {
    const r = rng(3);
    const final = [randArray(r, 30), randArray(r, 7)];
    const dir = [randArray(r, 30), randArray(r, 7)];
    const wobble = [randArray(r, 30, 1e-3), randArray(r, 7, 1e-3)];
    const snaps = [4, 3, 2, 1, 0].map((t, e) =>
      final.map((f, i) => Float32Array.from(f, (v, j) => v + t * dir[i][j] + (e % 2 ? wobble[i][j] : 0))),
    );
    const p = trajectoryPca(snaps, final);
    expect(p.explained[0]).toBeGreaterThan(0.999);
    expect(p.explained[0] + p.explained[1]).toBeLessThanOrEqual(1 + 1e-9);
    const norm = (d: Float32Array[]) => Math.sqrt(d.reduce((s, t) => s + t.reduce((a, v) => a + v * v, 0), 0));
    expect(norm(p.directions[0])).toBeCloseTo(1, 5);
    expect(norm(p.directions[1])).toBeCloseTo(1, 5);
    const dot = p.directions[0].reduce((s, t, i) => s + t.reduce((a, v, j) => a + v * p.directions[1][i][j], 0), 0);
    expect(Math.abs(dot)).toBeLessThan(1e-4);
    expect(p.path[4][0]).toBeCloseTo(0, 6);
    expect(Math.abs(p.path[0][0])).toBeCloseTo(4 * norm(dir), 2);
    expect(() => trajectoryPca(snaps.slice(0, 2), final)).toThrow(/at least 3 are needed/);
  });
});

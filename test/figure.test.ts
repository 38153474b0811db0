// The hand-drawn pictures: colormaps (d3-scale-chromatic), axis ticks, and the one heatmap (cells of a mask, or a
// grid of points with axes). No GPU needed.
import { describe, expect, it } from 'vitest';
import { interpolateRdBu, interpolateViridis } from 'd3-scale-chromatic';
import { colorAt, cosineMap, heatmap, logTicks, niceTicks } from '../src/viz/figure.ts';

const fills = (svg: string) => [...svg.matchAll(/<rect [^>]*fill="([^"]+)"/g)].map((m) => m[1]);

describe('colormaps', () => {
  it('viridis and reversed RdBu from d3, clamped; not finite is the top colour', () => {
    expect(colorAt('viridis', 0)).toBe(interpolateViridis(0));
    expect(colorAt('viridis', 2)).toBe(interpolateViridis(1));
    expect(colorAt('RdBu_r', 0)).toBe(interpolateRdBu(1)); // blue = low
    expect(colorAt('RdBu_r', 1)).toBe(interpolateRdBu(0)); // red = high
    expect(colorAt('RdBu_r', NaN)).toBe(interpolateRdBu(0));
  });
});

describe('ticks', () => {
  it('round values near the asked count; log ticks at powers of ten, or 1-2-5, or evenly spaced', () => {
    expect(niceTicks(-1.05, 1.05)).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(niceTicks(-0.66, 0)).toEqual([-0.6, -0.5, -0.4, -0.3, -0.2, -0.1, 0]);
    expect(logTicks(0.01, 300)).toEqual([0.01, 0.1, 1, 10, 100]);
    expect(logTicks(0.2, 4.7)).toEqual([0.2, 0.5, 1, 2]);
    expect(logTicks(2.32, 2.35)).toEqual([2.32, 2.33, 2.34, 2.35]);
  });
});

describe('heatmap', () => {
  it('a grid of points: one cell each, NaN grey, a diverging scale centred at mid', () => {
    const axes = { xs: [0, 1, 2], ys: [10, 20], xlabel: 'x', ylabel: 'y' };
    const p = heatmap([-2, 0, 1, NaN, 0, 0], 2, 3, { title: 't', cmap: 'RdBu_r', scale: 'linear', mid: 0, axes });
    const cells = fills(p.svg).slice(0, 6);
    expect(cells[0]).toBe(colorAt('RdBu_r', 0));
    expect(cells[1]).toBe(colorAt('RdBu_r', 0.5));
    expect(cells[2]).toBe(colorAt('RdBu_r', 1));
    expect(cells[3]).toBe('#888');
    expect(p.svg).toContain('>x</text>');
    // row 0 (y = 10) is drawn below row 1 (y = 20)
    const ys = [...p.svg.matchAll(/<rect x="[^"]+" y="([^"]+)"/g)].map((m) => Number(m[1]));
    expect(ys[0]).toBeGreaterThan(ys[3]);
  });

  it('a log scale from the values; a cosine matrix with row 1 on top', () => {
    const p = heatmap([1, 10, 100, 1000], 2, 2, { title: 'loss', cmap: 'viridis', scale: 'log' });
    const cells = fills(p.svg).slice(0, 4);
    expect(cells).toEqual([0, 1 / 3, 2 / 3, 1].map((t) => colorAt('viridis', t)));
    expect(p.svg).toMatch(/>100<\/text>/);
    const c = cosineMap(
      [
        [1, -1],
        [-1, 1],
      ],
      'cos',
    );
    const ys = [...c.svg.matchAll(/<rect x="[^"]+" y="([^"]+)"/g)].map((m) => Number(m[1]));
    expect(ys[0]).toBeLessThan(ys[2]);
    expect(fills(c.svg).slice(0, 2)).toEqual([colorAt('RdBu_r', 1), colorAt('RdBu_r', 0)]);
  });
});

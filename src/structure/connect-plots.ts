// The pictures of the connector runs: loss along the paths, cosines between segments, the triangle of three optima.
import { vegaLitePng } from '../viz/vega.ts';
import { cosineMap, writePng } from '../viz/figure.ts';

export async function plotPaths(
  t: number[],
  line: Record<string, number[]>,
  path: Record<string, number[]>,
  method: string,
  file: string,
): Promise<void> {
  const rows = t.flatMap((x, i) => [
    { t: x, path: 'straight line', split: 'train', loss: line.train_loss[i] },
    { t: x, path: 'straight line', split: 'test', loss: line.test_loss[i] },
    { t: x, path: `${method} connector`, split: 'train', loss: path.train_loss[i] },
    { t: x, path: `${method} connector`, split: 'test', loss: path.test_loss[i] },
  ]);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `loss between two optima: straight line vs ${method} connector`,
      width: 480,
      height: 300,
      data: { values: rows },
      mark: 'line',
      encoding: {
        x: { field: 't', type: 'quantitative', title: 'position along the path' },
        y: { field: 'loss', type: 'quantitative', title: 'cross-entropy' },
        color: { field: 'path', type: 'nominal' },
        strokeDash: { field: 'split', type: 'nominal' },
      },
    },
    file,
  );
}

export async function plotCosines(c: number[][], file: string): Promise<void> {
  await writePng(cosineMap(c, 'cosine similarity of the deviations from the straight line'), file, 2);
}

/** The 2-simplex in the plane: vertex i at angle 90 + 120 i degrees; one dot per lattice point, coloured by loss. */
export async function plotTriangle(lat: number[][], conn: number[], flat: number[], file: string): Promise<void> {
  const V = [0, 1, 2].map((i) => [
    Math.cos(((90 + 120 * i) * Math.PI) / 180),
    Math.sin(((90 + 120 * i) * Math.PI) / 180),
  ]);
  const xy = (l: number[]) => [l.reduce((a, c, i) => a + c * V[i][0], 0), l.reduce((a, c, i) => a + c * V[i][1], 0)];
  const rows = lat.flatMap((l, k) => [
    { x: xy(l)[0], y: xy(l)[1], loss: Math.max(conn[k], 1e-4), which: 'm-connector (optimized)' },
    { x: xy(l)[0], y: xy(l)[1], loss: Math.max(flat[k], 1e-4), which: 'flat simplex of the optima' },
  ]);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'train loss over the simplex of three optima',
      data: { values: rows },
      facet: { column: { field: 'which', type: 'nominal', title: null } },
      spec: {
        width: 260,
        height: 240,
        mark: { type: 'circle', size: 260 },
        encoding: {
          x: { field: 'x', type: 'quantitative', axis: null },
          y: { field: 'y', type: 'quantitative', axis: null },
          color: { field: 'loss', type: 'quantitative', scale: { type: 'log', scheme: 'viridis' } },
        },
      },
    },
    file,
  );
}

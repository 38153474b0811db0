// The pictures of the toy landscape runs.
import { vegaLitePanel, vegaLitePng } from '../viz/vega.ts';
import { compose, cosineMap, writePng } from '../viz/figure.ts';
import type { ConnectorResult, RadialResult } from './toy.ts';
import type { HyperplaneResult } from './toy-hyperplanes.ts';
export async function plotHyperplane(h: HyperplaneResult, path: string): Promise<void> {
  const rows = h.ns.flatMap((n, i) => h.ds.map((d, j) => ({ d, n: `n = ${n}`, rel: Math.max(h.rel[i][j], 1e-8) })));
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `toy landscape, D = ${h.D}: final loss on random d-dimensional hyperplanes (dashed: D - n)`,
      width: 520,
      height: 300,
      layer: [
        {
          data: { values: rows },
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'd', type: 'quantitative', title: 'hyperplane dimension d' },
            y: { field: 'rel', type: 'quantitative', scale: { type: 'log' }, title: 'final loss / initial loss' },
            color: { field: 'n', type: 'nominal', title: 'wedge dimension' },
          },
        },
        {
          data: { values: h.ns.map((n) => ({ x: h.D - n, n: `n = ${n}` })) },
          mark: { type: 'rule', strokeDash: [4, 3] },
          encoding: { x: { field: 'x', type: 'quantitative' }, color: { field: 'n', type: 'nominal' } },
        },
      ],
    },
    path,
  );
}

export async function plotConnector(c: ConnectorResult, path: string, title: string): Promise<void> {
  const rows = c.t.flatMap((t, i) => [
    { t, path: 'straight line', loss: c.line[i] },
    { t, path: 'connector', loss: c.connector[i] },
  ]);
  const lines = await vegaLitePanel({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: 380,
    height: 260,
    data: { values: rows },
    mark: 'line',
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'position along the path' },
      y: { field: 'loss', type: 'quantitative', title: 'loss' },
      color: { field: 'path', type: 'nominal' },
    },
  });
  const cosines = cosineMap(c.cosines, 'cosine similarity of the deviations from the line');
  await writePng(compose([[lines, cosines]], title), path, 2);
}

export async function plotRadial(rr: RadialResult, path: string, title: string): Promise<void> {
  const rows = rr.loss.flatMap((ray, q) => ray.map((l, i) => ({ a: rr.a[i], ray: q, loss: l })));
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title,
      width: 460,
      height: 280,
      data: { values: rows },
      mark: { type: 'line', opacity: 0.35, strokeWidth: 1 },
      encoding: {
        x: { field: 'a', type: 'quantitative', title: 'distance along a random unit direction' },
        y: { field: 'loss', type: 'quantitative', title: 'toy loss' },
        detail: { field: 'ray', type: 'nominal' },
      },
    },
    path,
  );
}

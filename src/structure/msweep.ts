// `connect --m-sweep`: short directions (Hessian participation ratio) at the optimized centre of the m-connector of
// the first m + 1 optima, for every m; resumable per m.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import type { Dataset } from '../data/dataset.ts';
import { checkpointSpec, sameModel, type Checkpoint } from '../models/checkpoint.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { evalCombos, shortDirections } from './connect.ts';
import { type ConnectOptions, flatOf, fortNodes } from './connectors.ts';
/**
 * The number of short directions in the middle of m-connectors against m (the paper's Fig. 4 claim that it grows with
 * m): for m = 1 .. M the centre of the first m + 1 optima's simplex is optimized within the (D - m)-dimensional
 * hyperplane normal to the simplex, and the participation ratio of the Hessian is estimated there, at the flat centre
 * and at the first optimum (m = 0). Resumes from msweep.json (one entry per finished m). Writes msweep.json,
 * short_directions.png and metrics.json into out.
 */
export async function runMSweep(
  gpu: Gpu,
  cks: Checkpoint[],
  data: { train: Dataset; test: Dataset },
  o: ConnectOptions,
  out: string,
  log: (m: string) => void,
): Promise<Record<string, unknown>> {
  if (cks.length < 3) throw new Error('connect --m-sweep: give at least three checkpoints (m = 1 .. count - 1)');
  if (cks.length > 11) throw new Error(`connect --m-sweep: at most 11 checkpoints (m = 10), got ${cks.length}`);
  if (o.probes < 1)
    throw new Error('connect --m-sweep: --probes must be at least 1 (Hutchinson probes for the short-direction count)');
  for (const c of cks.slice(1)) sameModel(cks[0], c);
  writeRunConfig(out, 'msweep', { checkpoints: cks.map((c) => c.path), ...o }, gpu);
  const spec = checkpointSpec(cks[0], data.train.shape);
  const optima = cks.map((c) => flatOf(c.weights));
  const file = join(out, 'msweep.json');
  type Row = {
    m: number;
    flat_centre_short: number;
    centre_short: number;
    flat_centre_train_loss: number;
    centre_train_loss: number;
    centre_test_acc: number;
  };
  const prev = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as {
        probes: number;
        checkpoints: string[];
        optimum_short: number;
        rows: Row[];
      })
    : null;
  const same = prev && prev.probes === o.probes && prev.checkpoints.join() === cks.map((c) => c.path).join();
  const state = same
    ? prev
    : { probes: o.probes, checkpoints: cks.map((c) => c.path), optimum_short: NaN, rows: [] as Row[] };
  if (prev && !same) log(`note: ${file} is of other checkpoints or probes: starting over`);
  const save = () => writeFileSync(file, `${JSON.stringify(state, null, 1)}\n`);
  if (!Number.isFinite(state.optimum_short)) {
    log(`short directions at optimum 1 (${o.probes} probes)`);
    state.optimum_short = (await shortDirections(gpu, spec, [optima[0]], data.train, o))[0];
    save();
  }
  for (let m = 1; m < cks.length; m++) {
    if (state.rows.some((r) => r.m === m)) continue;
    const set = optima.slice(0, m + 1);
    const centre = Array(m + 1).fill(1 / (m + 1));
    log(
      `m = ${m}: optimizing the centre of ${m + 1} optima` +
        ` within the (D - ${m})-dimensional hyperplane normal to their simplex`,
    );
    const [opt] = await fortNodes(gpu, spec, set, [centre], data.train, o, log);
    const flat = Float32Array.from(opt, (_, i) => set.reduce((a, w) => a + w[i], 0) / (m + 1));
    const ev = await evalCombos(
      gpu,
      spec,
      [flat, opt],
      [
        [1, 0],
        [0, 1],
      ],
      data,
      o.images,
      o.seed,
    );
    const [flatShort, optShort] = await shortDirections(gpu, spec, [flat, opt], data.train, o);
    state.rows.push({
      m,
      flat_centre_short: flatShort,
      centre_short: optShort,
      flat_centre_train_loss: ev.train_loss[0],
      centre_train_loss: ev.train_loss[1],
      centre_test_acc: ev.test_acc[1],
    });
    log(
      `  m = ${m}: centre train loss ${ev.train_loss[0].toFixed(3)} -> ${ev.train_loss[1].toFixed(3)};` +
        ` short directions ${optShort.toFixed(1)} (flat centre ${flatShort.toFixed(1)}` +
        `, optimum ${state.optimum_short.toFixed(1)})`,
    );
    save();
  }
  state.rows.sort((a, b) => a.m - b.m);
  const rows = state.rows;
  // least-squares slope of the optimized centre's count against m: the paper predicts it grows
  const mm = rows.map((r) => r.m),
    ys = rows.map((r) => r.centre_short);
  const mbar = mm.reduce((a, b) => a + b, 0) / mm.length,
    ybar = ys.reduce((a, b) => a + b, 0) / ys.length;
  const slope =
    mm.reduce((a, m, i) => a + (m - mbar) * (ys[i] - ybar), 0) / mm.reduce((a, m) => a + (m - mbar) ** 2, 0);
  const metrics = {
    probes: o.probes,
    optimum_short_directions: state.optimum_short,
    m: mm,
    centre_short_directions: ys,
    flat_centre_short_directions: rows.map((r) => r.flat_centre_short),
    centre_train_loss: rows.map((r) => r.centre_train_loss),
    flat_centre_train_loss: rows.map((r) => r.flat_centre_train_loss),
    slope_per_m: slope,
  };
  writeFileSync(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: {
        text: 'short directions at the centre of m-connectors',
        subtitle: `participation ratio tr(H)^2 / tr(H^2) of the Hessian, ${o.probes} Hutchinson probes`,
      },
      width: 420,
      height: 280,
      data: {
        values: [
          { m: 0, n: state.optimum_short, at: 'optimum 1' },
          ...rows.flatMap((r) => [
            { m: r.m, n: r.centre_short, at: 'optimized centre' },
            { m: r.m, n: r.flat_centre_short, at: 'flat centre' },
          ]),
        ],
      },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'm', type: 'quantitative', title: 'm (m + 1 optima)', axis: { tickMinStep: 1 } },
        y: { field: 'n', type: 'quantitative', title: 'short directions' },
        color: { field: 'at', type: 'nominal', title: null },
      },
    },
    join(out, 'short_directions.png'),
  );
  return metrics;
}

// `tunnels --sweep`: tunnel widths of SimpleCNN optima trained with one factor varied at a time around a base
// configuration (learning rate, L2, dropout, batch size; Fort & Jastrzebski 2019, Fig. 5). Each distinct optimum is
// one step (train it, measure its widths), kept under --out/optima with its widths, so the sweep runs as job-array
// tasks (--task i/n) and a gathering draws the plot from the finished optima.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import type { Dataset } from '../data/dataset.ts';
import { readCheckpoint } from '../models/checkpoint.ts';
import { runTrain, trainConfig } from '../landscape/train.ts';
import type { Step } from '../run/tasks.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { runTunnels, widthStats, type TunnelOptions } from './tunnel-rays.ts';

/** The base configuration, and the factors varied one at a time (values as written in the optima's names). */
const BASE: Record<string, string> = { batch: '128', lr: '0.05', wd: '0', dropout: '0' };
const FACTORS: [string, string, string[]][] = [
  ['learning rate', 'lr', ['0.01', '0.03', '0.05', '0.1']],
  ['L2 (weight decay)', 'wd', ['0', '0.0005', '0.005']],
  ['dropout', 'dropout', ['0', '0.25', '0.5']],
  ['batch size', 'batch', ['32', '128', '512']],
];

export interface SweepSettings {
  /** training epochs and images of each optimum */
  epochs: number;
  images: number;
  tunnel: TunnelOptions;
}

const optimumDir = (out: string, flags: Record<string, string>) =>
  join(
    out,
    'optima',
    Object.entries(flags)
      .map(([k, x]) => `${k}${x}`)
      .join('_'),
  );

/** Every point of the sweep: its factor, value and optimum (the base optimum is shared by the four factors). */
function points(out: string) {
  return FACTORS.flatMap(([label, key, values]) =>
    values.map((v) => ({ label, key, value: v, dir: optimumDir(out, { ...BASE, [key]: v }) })),
  );
}

interface Widths {
  options: TunnelOptions;
  width: ReturnType<typeof widthStats>;
  classes: number;
}

/** The widths kept next to an optimum, if they were measured with these tunnel settings. */
function widthsOf(dir: string, o: TunnelOptions): Widths | null {
  const cache = join(dir, 'tunnel-widths.json');
  if (!existsSync(cache) || !existsSync(join(dir, 'metrics.json'))) return null;
  let w: Widths;
  try {
    w = JSON.parse(readFileSync(cache, 'utf8'));
  } catch {
    return null; // cut short while written: measured again
  }
  return JSON.stringify(w.options) === JSON.stringify(o) && typeof w.classes === 'number' ? w : null;
}

/**
 * The sweep's steps, one per distinct optimum (named optima/<configuration> under `out`): train the optimum where
 * its model.safetensors is missing (resuming its checkpoint), then measure its widths. `gpu` and `data` may be null
 * for a gathering, which only asks which steps are done.
 */
export function sweepSteps(
  gpu: Gpu | null,
  data: { train: Dataset; test: Dataset } | null,
  dataDir: string,
  s: SweepSettings,
  out: string,
  log: (m: string) => void,
): Step[] {
  const seen = new Set<string>();
  const steps: Step[] = [];
  for (const { key, value, dir } of points(out)) {
    if (seen.has(dir)) continue;
    seen.add(dir);
    const flags = { ...BASE, [key]: value };
    steps.push({
      name: dir.slice(out.length + 1),
      stage: 1,
      done: () => widthsOf(dir, s.tunnel) !== null,
      run: async () => {
        if (!gpu || !data) throw new Error('tunnels --sweep: a GPU is needed to train the optima');
        if (!existsSync(join(dir, 'model.safetensors'))) {
          log(`training SimpleCNN with ${key} ${value}`);
          const t = trainConfig(
            {
              model: 'simplecnn',
              epochs: s.epochs,
              batch: Number(flags.batch),
              lr: Number(flags.lr),
              wd: Number(flags.wd),
              dropout: Number(flags.dropout),
              trainImages: s.images,
              evalImages: 1000,
              seed: 1,
              data: dataDir,
            },
            () => dataDir,
          );
          const resume = existsSync(join(dir, 'checkpoint', 'state.json'));
          await runTrain(gpu, t, data, dir, resume, { log: (m) => log(`  ${m}`) });
        }
        const ck = readCheckpoint(join(dir, 'model.safetensors'), data.train.shape);
        const width = widthStats((await runTunnels(gpu, ck, data, s.tunnel)).widths);
        const w: Widths = { options: s.tunnel, width, classes: data.train.classes };
        writeFileSync(join(dir, 'tunnel-widths.json'), `${JSON.stringify(w)}\n`);
      },
    });
  }
  return steps;
}

export interface SweepRow {
  factor: string;
  value: number;
  width: number;
  sd: number;
  test_acc: number;
  diverged: boolean;
}

/** The sweep's plot (sweep.png) and metrics.json in `out`, from its finished steps (no GPU). */
export async function gatherSweep(out: string, o: TunnelOptions, log: (m: string) => void): Promise<SweepRow[]> {
  const rows: SweepRow[] = [];
  for (const { label, key, value, dir } of points(out)) {
    const w = widthsOf(dir, o);
    if (!w) throw new Error(`${dir}: no tunnel widths for these settings (the step is not done)`);
    const acc = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')).test_acc;
    // an optimum no better than twice chance did not train (diverged): its "tunnel" says nothing
    const diverged = acc < 2 / w.classes;
    const s = w.width;
    rows.push({ factor: label, value: Number(value), width: s.mean ?? NaN, sd: s.sd ?? NaN, test_acc: acc, diverged });
    log(
      `  ${key}-${value}: width ${s.mean?.toFixed(3) ?? 'none (no crossing)'} +- ${s.sd?.toFixed(3) ?? '-'}` +
        `, test accuracy ${(100 * acc).toFixed(1)}%${diverged ? ': training diverged, left out of the plot' : ''}`,
    );
  }
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'radial tunnel width around SimpleCNN optima (mean +- sd over random directions)',
      data: { values: rows.filter((r) => !r.diverged) },
      facet: { field: 'factor', type: 'nominal', title: null },
      columns: 4,
      resolve: { scale: { x: 'independent' } },
      spec: {
        width: 200,
        height: 180,
        layer: [
          {
            mark: { type: 'line', point: true },
            encoding: {
              x: { field: 'value', type: 'quantitative', title: null },
              y: { field: 'width', type: 'quantitative', title: 'tunnel width' },
            },
          },
          {
            mark: 'errorbar',
            transform: [
              { calculate: 'datum.width - datum.sd', as: 'lo' },
              { calculate: 'datum.width + datum.sd', as: 'hi' },
            ],
            encoding: {
              x: { field: 'value', type: 'quantitative' },
              y: { field: 'lo', type: 'quantitative', title: 'tunnel width' },
              y2: { field: 'hi' },
            },
          },
        ],
      },
    },
    join(out, 'sweep.png'),
  );
  writeFileSync(join(out, 'metrics.json'), `${JSON.stringify({ sweep: rows, delta: o.delta }, null, 2)}\n`);
  return rows;
}

// `loss-atlas bn-compare`: does batch norm (or a skip connection) make more patterns drawable? Random-square
// masks over fill probabilities and seeds, for the plain, batch-norm and skip variants of the random-squares net
// (the MPO reference's section 1.7 experiment). Every run is an ordinary MPO run directory under the
// comparison's directory; finished runs are skipped, so an interrupted comparison continues where it stopped.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { runMpo, type MpoConfig } from './mpo.ts';
import { MPO_OPTIONS, loadData, withMpoFlags } from './command.ts';
import { PRESETS } from './presets.ts';
import { checkTaskFlags, defineCommand, omitOptions, type OptionInput } from '../options/index.ts';
import { checkRunDir, readRunConfig, writeRunConfig } from '../run/run-info.ts';
import { writePng } from '../viz/figure.ts';
import { lineChart } from '../viz/charts.ts';

/** The settings every run of a comparison shares before the flags: CPU-sized by default, the reference's with --full.
 * The mask, variant and seed of each run are the comparison's own. */
const CPU_SIZED: MpoConfig = {
  ...PRESETS.quick,
  experiment: 'bn-compare',
  data: '',
  model: 'squares-small',
  clamp: 5,
  lr: 3e-3,
  batch: 16,
  cellsPerStep: 8,
  steps: 200,
  evalImages: 100,
  pad: 0,
  checkpointEvery: 50,
  logEvery: 10,
};
const FULL: MpoConfig = {
  ...PRESETS['fashion-pattern'],
  experiment: 'bn-compare',
  data: '',
  model: 'squares',
  clamp: 5,
  lr: 3e-4,
  evalImages: 100,
  pad: 0,
};
/** What --help shows as a flag's default: the CPU-sized value, and the --full one where it differs. */
const both = (k: keyof MpoConfig) =>
  CPU_SIZED[k] === FULL[k] ? String(CPU_SIZED[k]) : `${CPU_SIZED[k]}; ${FULL[k]} with --full`;
/** mpo's flags that a comparison sets itself (each run's variant, mask and seed) or has no use for (its defaults are
 * its own, and a random-squares mask has its side in --size). */
const NOT_TAKEN = ['preset', 'quick', 'grid', 'bn', 'skip', 'mask', 'seed', 'resume', 'out'] as const;

export const BN_COMPARE = defineCommand({
  name: 'bn-compare',
  summary: 'MPO on random squares over fill probabilities and seeds: plain vs batch norm vs skip (--help)',
  usage:
    'loss-atlas bn-compare [--full] [--out DIR] [--fills 0.2,0.5,0.8] [--seeds 1,2] [--size N] [--steps N] ' +
    '[mpo flags]',
  description: `\
Trains MPO planes on random-square masks for each fill probability and seed, for the plain, batch-norm and skip
variants, and writes acc_diff and loss_diff against fill probability (mean and standard deviation over seeds):
bn_compare.png (acc_diff), bn_compare_loss.png (loss_diff), bn_compare.json and bn_compare.md in --out (default
runs/bn-compare-<time>). Runs already finished there are kept.
Default: CPU-sized (squares-small net, 10x10 masks, fills 0.2/0.5/0.8, seeds 1-2, 200 steps of 8+8 cells x 16 images,
lr 3e-3, 100 evaluation images; about 12 minutes on lavapipe). At that length the patterns are only starting to form:
loss_diff separates the variants earlier than acc_diff does.
--full: the reference's sizes (squares net, 30x30 masks, fills 0.1..0.9, seeds 1-5, batch 512, 50+50 cells,
11,800 steps, lr 3e-4, tau 5). The other flags are loss-atlas mpo's, and each one given overrides these defaults
(with --full too); mpo's preset, quick, grid, mask, bn, skip, seed and resume are not taken (the variant, mask and
seed of each run are the comparison's own).`,
  options: {
    full: { type: 'boolean', help: "the reference's sizes (for a GPU)" },
    fills: {
      type: 'list',
      of: 'number',
      min: 0,
      max: 1,
      defaultText: '0.2,0.5,0.8; 0.1,0.2,...,0.9 with --full',
      help: 'fill probabilities of the random squares',
    },
    seeds: {
      type: 'list',
      of: 'integer',
      min: 0,
      defaultText: '1,2; 1,2,3,4,5 with --full',
      help: 'mask and training seeds',
    },
    size: { type: 'integer', min: 1, defaultText: '10; 30 with --full', help: 'mask side (cells)' },
    ...omitOptions(MPO_OPTIONS, NOT_TAKEN),
    model: { ...MPO_OPTIONS.model, defaultText: both('model') },
    steps: { ...MPO_OPTIONS.steps, defaultText: both('steps') },
    batch: { ...MPO_OPTIONS.batch, defaultText: both('batch') },
    lr: { ...MPO_OPTIONS.lr, defaultText: both('lr') },
    'cells-per-step': { ...MPO_OPTIONS['cells-per-step'], defaultText: both('cellsPerStep') },
    'neg-coef': { ...MPO_OPTIONS['neg-coef'], defaultText: both('negCoef') },
    clamp: { ...MPO_OPTIONS.clamp, defaultText: both('clamp') },
    clip: { ...MPO_OPTIONS.clip, defaultText: both('clipNorm') },
    'eval-images': { ...MPO_OPTIONS['eval-images'], defaultText: both('evalImages') },
    pad: { ...MPO_OPTIONS.pad, defaultText: both('pad') },
    'warmup-epochs': { ...MPO_OPTIONS['warmup-epochs'], defaultText: `${both('warmupEpochs')}; 0 = off` },
    'checkpoint-every': { ...MPO_OPTIONS['checkpoint-every'], defaultText: both('checkpointEvery') },
    'log-every': { ...MPO_OPTIONS['log-every'], defaultText: both('logEvery') },
    out: {
      type: 'string',
      placeholder: 'DIR',
      defaultText: 'runs/bn-compare-<time>',
      help: 'the comparison directory',
    },
    task: {
      type: 'shard',
      help:
        'run only the runs r with r % n == i (one task of a job array: all tasks share --out), then stop; ' +
        '--gather builds the tables when every task is done',
    },
    gather: {
      type: 'boolean',
      help: 'build the tables and plots from the finished runs in --out (after --task runs); names any missing run',
    },
  },
});

const VARIANTS = [
  { name: 'plain', bn: false, skip: false, color: '#1f77b4' },
  { name: 'batch norm', bn: true, skip: false, color: '#d62728' },
  { name: 'skip', bn: false, skip: true, color: '#2ca02c' },
];

type BnCompareOptions = OptionInput<typeof BN_COMPARE.options>;

/** The settings the runs of a comparison share: the CPU-sized or --full defaults with the mpo flags given over them. */
export function bnCompareConfig(o: BnCompareOptions): MpoConfig {
  return withMpoFlags(o.full ? FULL : CPU_SIZED, o);
}

/** Runs a comparison, one task of it (--task i/n) or its gathering (--gather: no GPU work, `gpu` may be null). */
export async function bnCompare(gpu: Gpu | null, o: BnCompareOptions): Promise<number> {
  checkTaskFlags(o);
  if (!o.gather && !gpu) throw new Error('bn-compare: a GPU is needed to train the runs');
  const full = !!o.full;
  const fills = o.fills ?? (full ? [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] : [0.2, 0.5, 0.8]);
  const seeds = o.seeds ?? (full ? [1, 2, 3, 4, 5] : [1, 2]);
  const base = bnCompareConfig(o);
  const size = o.size ?? (full ? 30 : 10);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const out = o.out ?? join('runs', `bn-compare-${stamp}`);
  checkRunDir(out, 'bn-compare', 'the comparison');
  // the comparison's own config.json: what its runs share (each run's config.json has its variant, mask and seed)
  const { experiment: _e, bn: _b, skip: _s, mask: _m, seed: _d, grid: _g, ...shared } = base;
  const variants = VARIANTS.map((v) => v.name);
  if (!o.gather) writeRunConfig(out, 'bn-compare', { full, fills, seeds, size, variants, ...shared }, gpu);
  const what = o.task ? `task ${o.task.i}/${o.task.n} of ` : o.gather ? 'gathering ' : '';
  console.log(
    `bn-compare: ${what}${out}: ${VARIANTS.length} variants x ${fills.length} fills x ${seeds.length} seeds,` +
      ` model ${base.model}, ${size}x${size} masks, ${base.steps} steps each`,
  );
  const data = o.gather ? null : await loadData(base);
  const missing: string[] = [];
  let r = -1,
    adapter = gpu?.adapterInfo ?? null;
  const results: Record<string, Record<string, number[]>> = {};
  const lossResults: Record<string, Record<string, number[]>> = {};
  const total = VARIANTS.length * fills.length * seeds.length;
  // the runs this invocation handles: every r % n == i one for a task
  const mine = o.task ? Math.max(0, Math.floor((total - 1 - o.task.i) / o.task.n) + 1) : total;
  let done = 0;
  const t0 = performance.now();
  for (const v of VARIANTS) {
    results[v.name] = {};
    lossResults[v.name] = {};
    for (const p of fills) {
      results[v.name][p] = [];
      lossResults[v.name][p] = [];
      for (const seed of seeds) {
        const dir = join(out, `${v.name.replace(' ', '-')}-p${p}-s${seed}`);
        const cfg: MpoConfig = {
          ...base,
          experiment: 'bn-compare',
          bn: v.bn,
          skip: v.skip,
          mask: `random:${p}:${seed}:${size}`,
          seed,
        };
        r++;
        if (o.task && r % o.task.n !== o.task.i) {
          if (!existsSync(join(dir, 'metrics.json'))) missing.push(dir); // another task's
          continue;
        }
        let m: { test: { acc_diff: number; loss_diff: number } };
        if (existsSync(join(dir, 'metrics.json'))) {
          m = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
          adapter ??= readRunConfig(dir, { kind: 'mpo' }).adapter;
        } else if (!gpu || !data) {
          missing.push(dir);
          continue;
        } else m = (await runMpo(gpu, cfg, data, dir, existsSync(join(dir, 'checkpoint', 'state.json')))).metrics;
        results[v.name][p].push(m.test.acc_diff);
        lossResults[v.name][p].push(m.test.loss_diff);
        done++;
        const el = (performance.now() - t0) / 1000;
        console.error(
          `[${done}/${mine}] ${v.name} fill ${p} seed ${seed}:` +
            ` test acc_diff ${m.test.acc_diff.toFixed(3)}, loss_diff ${m.test.loss_diff.toFixed(2)}` +
            `  (${el.toFixed(0)} s, ETA ${((el / done) * (mine - done)).toFixed(0)} s)`,
        );
      }
    }
  }
  if (missing.length) {
    if (o.gather) {
      throw new Error(
        `bn-compare --gather: ${missing.length} of ${total} runs in ${out} are not finished (no metrics.json): ` +
          `${missing.join(', ')}; run their --task (or bn-compare --out ${out} with the same flags) first`,
      );
    }
    if (!o.task) throw new Error(`bn-compare: ${missing.length} runs were not made`); // cannot happen: a GPU trains
    console.log(
      `task ${o.task.i}/${o.task.n} done; ${total - missing.length} of ${total} runs finished. When every task is` +
        ` done: loss-atlas bn-compare --gather --out ${out} (with the same flags)`,
    );
    return 0;
  }
  const stat = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
    return { mean, sd };
  };
  // mean / sd / runs: acc_diff (the reference's plotted metric); lossDiff: the same for loss_diff
  const rows = VARIANTS.map((v) => ({
    variant: v.name,
    byFill: fills.map((p) => ({
      fill: p,
      ...stat(results[v.name][p]),
      runs: results[v.name][p],
      lossDiff: { ...stat(lossResults[v.name][p]), runs: lossResults[v.name][p] },
    })),
  }));
  writeFileSync(
    join(out, 'bn_compare.json'),
    `${JSON.stringify({ adapter, model: base.model, maskSize: size, steps: base.steps, seeds, rows }, null, 2)}\n`,
  );
  const tableOf = (
    metric: string,
    get: (b: (typeof rows)[number]['byFill'][number]) => { mean: number; sd: number },
    digits: number,
  ) => {
    const md = [
      `| variant | ${fills.map((p) => `fill ${p}`).join(' | ')} |`,
      `|---|${fills.map(() => '---:').join('|')}|`,
    ];
    for (const r of rows)
      md.push(
        `| ${r.variant} | ` +
          `${r.byFill.map((b) => `${get(b).mean.toFixed(digits)} ± ${get(b).sd.toFixed(digits)}`).join(' | ')} |`,
      );
    return (
      `test ${metric} (mean ± sd over seeds ${seeds.join(', ')}),` +
      ` ${base.model}, ${size}x${size} random squares, ${base.steps} steps\n\n${md.join('\n')}\n`
    );
  };
  const table = `${tableOf('acc_diff', (b) => b, 3)}\n${tableOf('loss_diff', (b) => b.lossDiff, 2)}`;
  writeFileSync(join(out, 'bn_compare.md'), table);
  const plot = async (
    file: string,
    metric: string,
    get: (b: (typeof rows)[number]['byFill'][number]) => { mean: number; sd: number },
  ) =>
    writePng(
      lineChart(
        VARIANTS.map((v, i) => ({
          name: v.name,
          color: v.color,
          points: rows[i].byFill.map((b) => [b.fill, get(b).mean, get(b).sd] as [number, number, number]),
        })),
        {
          title: `${metric} vs fill (${base.model}, ${base.steps} steps, ${seeds.length} seeds)`,
          xlabel: 'fill probability',
          ylabel: `test ${metric}`,
        },
      ),
      join(out, file),
    );
  await plot('bn_compare.png', 'acc_diff', (b) => b);
  await plot('bn_compare_loss.png', 'loss_diff', (b) => b.lossDiff);
  console.log(`\n${table}\nplots: ${join(out, 'bn_compare.png')}, ${join(out, 'bn_compare_loss.png')}`);
  return 0;
}

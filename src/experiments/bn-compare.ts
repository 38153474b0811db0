// `loss-atlas bn-compare`: does batch norm (or a skip connection) make more patterns drawable? Random-square
// masks over fill probabilities and seeds, for the plain, batch-norm and skip variants of the random-squares net
// (the MPO reference's section 1.7 experiment). Every run is an ordinary MPO run directory under the
// comparison's directory; finished runs are skipped, so an interrupted comparison continues where it stopped.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { runMpo, type MpoConfig } from './mpo.ts';
import { loadData, mpoConfig } from './mpo-cli.ts';
import { lineChart, writePng } from '../viz/figure.ts';

export const BN_COMPARE_HELP = `usage: loss-atlas bn-compare [--full] [--out DIR] [--fills 0.2,0.5,0.8] [--seeds 1,2] [--size N] [--steps N] [mpo flags]

Trains MPO planes on random-square masks for each fill probability and seed, for the plain, batch-norm and skip
variants, and writes acc_diff and loss_diff against fill probability (mean and standard deviation over seeds):
bn_compare.png (acc_diff), bn_compare_loss.png (loss_diff), bn_compare.json and bn_compare.md in --out (default
runs/bn-compare-<time>). Runs already finished there are kept.
Default: CPU-sized (squares-small net, 10x10 masks, fills 0.2/0.5/0.8, seeds 1-2, 200 steps of 8+8 cells x 16 images,
lr 3e-3, 100 evaluation images; about 12 minutes on lavapipe). At that length the patterns are only starting to form:
loss_diff separates the variants earlier than acc_diff does.
--full: the reference's sizes (squares net, 30x30 masks, fills 0.1..0.9, seeds 1-5, batch 512, 50+50 cells,
11,800 steps, lr 3e-4, tau 5).`;

const VARIANTS = [
  { name: 'plain', bn: false, skip: false, color: '#1f77b4' },
  { name: 'batch norm', bn: true, skip: false, color: '#d62728' },
  { name: 'skip', bn: false, skip: true, color: '#2ca02c' },
];

const list = (v: string | boolean | undefined, name: string, d: number[]): number[] => {
  if (typeof v !== 'string') return d;
  const xs = v.split(',').map(Number);
  if (!xs.length || xs.some((x) => !Number.isFinite(x))) throw new Error(`--${name}: comma-separated numbers expected, got "${v}"`);
  return xs;
};

export async function bnCompare(gpu: Gpu, flags: Record<string, string | boolean>): Promise<number> {
  const full = !!flags.full;
  const fills = list(flags.fills, 'fills', full ? [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] : [0.2, 0.5, 0.8]);
  const seeds = list(flags.seeds, 'seeds', full ? [1, 2, 3, 4, 5] : [1, 2]);
  for (const p of fills) if (!(p >= 0 && p <= 1)) throw new Error(`--fills: probabilities in [0, 1] expected, got ${p}`);
  const rest: Record<string, string | boolean> = { ...flags };
  for (const k of ['full', 'fills', 'seeds', 'out', 'size']) delete rest[k];
  const base: MpoConfig = full
    ? { ...mpoConfig({ preset: 'fashion-pattern', ...rest }), model: 'squares', clamp: 5, lr: 3e-4, evalImages: 100, pad: 0 }
    : { ...mpoConfig({ quick: true, ...rest }), model: 'squares-small', clamp: 5, lr: 3e-3, batch: 16, cellsPerStep: 8, steps: 200, evalImages: 100, pad: 0, checkpointEvery: 50, logEvery: 10 };
  if (typeof flags.steps === 'string') base.steps = Number(flags.steps);
  if (typeof flags['eval-images'] === 'string') base.evalImages = Number(flags['eval-images']);
  if (typeof flags.model === 'string') base.model = flags.model;
  const size = typeof flags.size === 'string' ? Number(flags.size) : full ? 30 : 10;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const out = typeof flags.out === 'string' ? flags.out : join('runs', `bn-compare-${stamp}`);
  mkdirSync(out, { recursive: true });
  console.log(`adapter: ${gpu.adapterInfo}\nbn-compare into ${out}: ${VARIANTS.length} variants x ${fills.length} fills x ${seeds.length} seeds, model ${base.model}, ${size}x${size} masks, ${base.steps} steps each`);
  const data = loadData(base);
  const results: Record<string, Record<string, number[]>> = {};
  const lossResults: Record<string, Record<string, number[]>> = {};
  const total = VARIANTS.length * fills.length * seeds.length;
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
        const cfg: MpoConfig = { ...base, experiment: 'bn-compare', bn: v.bn, skip: v.skip, mask: `random:${p}:${seed}:${size}`, seed };
        let m: { test: { acc_diff: number; loss_diff: number } };
        if (existsSync(join(dir, 'metrics.json'))) m = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
        else m = (await runMpo(gpu, cfg, data, dir, existsSync(join(dir, 'checkpoint', 'state.json')))).metrics;
        results[v.name][p].push(m.test.acc_diff);
        lossResults[v.name][p].push(m.test.loss_diff);
        done++;
        const el = (performance.now() - t0) / 1000;
        console.error(`[${done}/${total}] ${v.name} fill ${p} seed ${seed}: test acc_diff ${m.test.acc_diff.toFixed(3)}, loss_diff ${m.test.loss_diff.toFixed(2)}  (${el.toFixed(0)} s, ETA ${((el / done) * (total - done)).toFixed(0)} s)`);
      }
    }
  }
  const stat = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1));
    return { mean, sd };
  };
  // mean / sd / runs: acc_diff (the reference's plotted metric); lossDiff: the same for loss_diff
  const rows = VARIANTS.map((v) => ({
    variant: v.name,
    byFill: fills.map((p) => ({ fill: p, ...stat(results[v.name][p]), runs: results[v.name][p], lossDiff: { ...stat(lossResults[v.name][p]), runs: lossResults[v.name][p] } })),
  }));
  writeFileSync(join(out, 'bn_compare.json'), JSON.stringify({ adapter: gpu.adapterInfo, model: base.model, maskSize: size, steps: base.steps, seeds, rows }, null, 2) + '\n');
  const tableOf = (metric: string, get: (b: (typeof rows)[number]['byFill'][number]) => { mean: number; sd: number }, digits: number) => {
    const md = [`| variant | ${fills.map((p) => `fill ${p}`).join(' | ')} |`, `|---|${fills.map(() => '---:').join('|')}|`];
    for (const r of rows) md.push(`| ${r.variant} | ${r.byFill.map((b) => `${get(b).mean.toFixed(digits)} ± ${get(b).sd.toFixed(digits)}`).join(' | ')} |`);
    return `test ${metric} (mean ± sd over seeds ${seeds.join(', ')}), ${base.model}, ${size}x${size} random squares, ${base.steps} steps\n\n${md.join('\n')}\n`;
  };
  const table = `${tableOf('acc_diff', (b) => b, 3)}\n${tableOf('loss_diff', (b) => b.lossDiff, 2)}`;
  writeFileSync(join(out, 'bn_compare.md'), table);
  const plot = async (file: string, metric: string, get: (b: (typeof rows)[number]['byFill'][number]) => { mean: number; sd: number }) => writePng(
    lineChart(VARIANTS.map((v, i) => ({ name: v.name, color: v.color, points: rows[i].byFill.map((b) => [b.fill, get(b).mean, get(b).sd] as [number, number, number]) })), {
      title: `${metric} vs fill (${base.model}, ${base.steps} steps, ${seeds.length} seeds)`, xlabel: 'fill probability', ylabel: `test ${metric}`,
    }),
    join(out, file),
  );
  await plot('bn_compare.png', 'acc_diff', (b) => b);
  await plot('bn_compare_loss.png', 'loss_diff', (b) => b.lossDiff);
  console.log(`\n${table}\nplots: ${join(out, 'bn_compare.png')}, ${join(out, 'bn_compare_loss.png')}`);
  return 0;
}

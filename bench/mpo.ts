// npm run bench [-- --quick] [--json PATH] [--steps N] [--workloads mpo-fashion,mpo-cifar,surface-icons,surface-onnx]
//                [--cells 1,16,100,400] [--batch 64,512] [--peers tfjs-webgpu,tfjs-cpu|none] [--peer-steps N]
//                [--torch bench/results/torch-*.json]
//                [--surface-side 51] [--surface-images 1000] [--peer-points 50] [--peer-budget-s 60]
//                [--check-dir DIR [--check-only]]
// Times the MPO training step (the exact code `loss-atlas mpo` runs: plane rebuild, one batched forward and
// backward over all sampled cells, plane gradient, Adam) on synthetic batches: wall time per step and GPU time
// from timestamp queries (medians over the timed steps, warm-up excluded), cell-images per second, GFLOP/s
// (3 x the forward FLOPs per cell-image), and peak GPU memory against what per-cell materialized weights and
// activations would take. Writes a markdown table and bench/results/<adapter>-<date>.json.
// Peers: tfjs-webgpu (same Dawn adapter), tfjs-wasm (single-threaded in Node) and tfjs-cpu, as the reference
// formulates the step (a loop over cells with materialized weights, bench/peers/tfjs.ts), after checking that their
// per-cell losses equal ours on the same weights and batch; timed over --peer-steps steps after one warm-up (they
// are slow: on a CPU adapter 5, tfjs-cpu 1; 3 on a GPU). loss-atlas: --steps (10) after 2 warm-up steps. PyTorch:
// bench/torch_reference.py on the GPU machine, merged with --torch.
// surface-icons: points per second of a loss surface (51 x 51 points of the icon net on 1,000 images; 5 x 5 on 100
// with --quick) against the reference's loop of one materialized point at a time (peers timed on --peer-points).
// surface-onnx: the same grid (11 x 11 points on 64 images; 3 x 3 on 4 with --quick) of torchvision's ResNet-18
// imported from ONNX and of the zoo's ResNet-20, on 32x32 colour images: GFLOP/s of each and their ratio.
// --peer-budget-s: a peer's configuration is skipped (and listed under "skipped" in the JSON) when its time,
// predicted from its GFLOP/s on a smaller configuration of the same workload, would exceed this (default: 60 s on a
// GPU, none on a CPU adapter). The JSON is rewritten after every row, so a run cut short keeps what it measured (in
// --json PATH, or bench/results/<adapter>-<date>.partial.json; the dated file itself only when the run finishes).
// --check-dir DIR: writes DIR/<workload>-bn<0|1>.safetensors (plane, batch, 4 cell offsets and loss-atlas's per-cell
// losses) for bench/torch_reference.py --check-dir to compare PyTorch's losses with before it times anything;
// --check-only stops after writing them.
import '../src/platform/node.ts';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { atomicWrite } from '../src/data/formats.ts';
import { exportCheck, predictMs, workloadSpec } from './torch-check.ts';
import { execSync } from 'node:child_process';
import { Gpu } from '../src/engine/device.ts';
import { Adam } from '../src/engine/optim.ts';
import { Profiler } from '../src/engine/profiler.ts';
import { Tensor, numel } from '../src/engine/tensor.ts';
import { randArray, rng } from '../src/engine/random.ts';
import { forwardFlops, layerShapes, paramShapes, parameterCount } from '../src/models/graph.ts';
import type { modelSpec } from '../src/models/zoo.ts';
import { Plane } from '../src/mpo/plane.ts';
import { mpoStep } from '../src/mpo/step.ts';
import { evaluatePoints } from '../src/models/run.ts';
import type { TfBackend } from './peers/tfjs.ts';
import { describeRoofline, roofline, type Roofline } from './roofline.ts';
import {
  UsageError,
  helpRequested,
  parseCommand,
  renderHelp,
  type Globals,
  type OptionValues,
} from '../src/options/index.ts';
import { BENCH, WORKLOADS } from './mpo-flags.ts';
import { surfaceOnnxBench } from './surface-onnx.ts';
import { surfaceBench } from './surface-bench.ts';
import { median, type BenchRow } from './rows.ts';
/** Checks a tfjs peer's per-cell losses against loss-atlas's on the plane's current weights, then times its steps. */
async function timePeer(
  peer: string,
  plane: Plane,
  layers: ReturnType<typeof modelSpec>['layers'],
  offsets: [number, number][],
  nGood: number,
  x: Tensor,
  y: Tensor,
  steps: number,
  gpu: Gpu,
) {
  const tfp = await import('./peers/tfjs.ts');
  const tf = await import('@tensorflow/tfjs');
  const backend = peer.replace('tfjs-', '') as TfBackend;
  await tfp.useBackend(backend);
  const v = await plane.values();
  const shapes = paramShapes(layers).map((p) => p.shape);
  const xs = await x.read(),
    ys = await y.readU32();
  const coefs = Float32Array.from(offsets.flatMap(([di, dj]) => [1, v.scale * dj, v.scale * di]));
  await plane.updateBasis();
  const ours = await evaluatePoints(gpu, plane.model, coefs, x, y);
  const tp = tfp.tfPlane(v, shapes);
  const xt = tf.tensor4d(xs, x.shape as [number, number, number, number]);
  const yt = tf.tensor1d(Int32Array.from(ys), 'int32');
  const theirs = await tfp.cellLosses(layers, tp, offsets, xt, yt);
  const maxDiff = Math.max(...theirs.map((l, k) => Math.abs(l - ours.loss[k])));
  if (!(maxDiff < 1e-3))
    throw new Error(
      `${peer}: per-cell losses differ from loss-atlas's by ${maxDiff}` +
        ` on the same weights: the two formulations disagree`,
    );
  const opt = tf.train.adam(2.5e-4, 0.9, 0.999, 1e-8);
  const walls: number[] = [];
  for (let s = 0; s < steps + 1; s++) {
    const t = performance.now();
    await tfp.tfMpoStep(layers, tp, opt, offsets, nGood, xt, yt, { negCoef: 1, clamp: 2.5, clipNorm: 100 });
    if (s > 0) walls.push(performance.now() - t);
  }
  opt.dispose();
  [...tp.origin, ...tp.right, ...tp.up, tp.scale].forEach((t) => t.dispose());
  xt.dispose();
  yt.dispose();
  return {
    ms: median(walls),
    spread: [+Math.min(...walls).toFixed(3), +Math.max(...walls).toFixed(3)] as [number, number],
    maxDiff,
  };
}

async function main(o: OptionValues<typeof BENCH.options>, g: Globals): Promise<void> {
  const gpu = await Gpu.create({ profile: true, verbose: g.verbose });
  const prof = Profiler.attach(gpu);
  const cpu = gpu.isCpu;
  const quick = o.quick || cpu;
  const workloads: string[] = o.workloads ?? (quick ? ['mpo-fashion', 'surface-icons'] : [...WORKLOADS]);
  const cellsList = o.cells ?? (quick ? [1, 4] : [1, 16, 100, 400]);
  const batches = o.batch ?? (quick ? [16] : [64, 512]);
  const steps = o.steps;
  const peerList = o.peers ?? (quick ? ['tfjs-webgpu', 'tfjs-wasm', 'tfjs-cpu'] : ['tfjs-webgpu', 'tfjs-wasm']);
  const peers = peerList.filter((p) => p !== 'none') as `tfjs-${TfBackend}`[];
  // timed peer steps: tfjs-cpu takes seconds per step on a CPU adapter, the others a fraction of one
  const peerStepsOf = (peer: string) => o.peerSteps ?? (quick ? (peer === 'tfjs-cpu' ? 1 : 5) : 3);
  const budgetS = o.peerBudgetS ?? (cpu ? Infinity : 60);
  const checkDir = o.checkDir;
  if (checkDir) {
    for (const w of workloads.filter((q) => !q.startsWith('surface-')))
      for (const bn of [false, true])
        console.log(
          `loss check for PyTorch: wrote ${await exportCheck(gpu, w, bn, Math.min(16, ...batches), checkDir)}`,
        );
    if (o.checkOnly) {
      prof?.detach();
      gpu.destroy();
      return;
    }
  }
  const warm = 2;
  console.log(
    `adapter: ${gpu.adapterInfo}${quick ? ' (quick sizes)' : ''}; ${steps} timed steps after ${warm} warm-up steps`,
  );
  const roof: Roofline | null = prof
    ? await roofline(gpu, prof, cpu ? 512 : 4096, cpu ? 2 ** 22 : 2 ** 26, cpu ? 3 : 10)
    : null;
  if (roof) console.log(`${describeRoofline(roof)} (the share column is GFLOP/s over this matmul)`);
  const rows: BenchRow[] = [];
  const skipped: { impl: string; workload: string; bn: boolean; cells: number; batch: number; why: string }[] = [];
  const commit = (() => {
    try {
      return execSync('git rev-parse HEAD', { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim();
    } catch {
      return 'unknown';
    }
  })();
  const date = new Date().toISOString();
  const slug = gpu.adapterInfo
    .split(' / ')
    .pop()!
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);
  // rewritten after every row: a run cut short keeps what it measured, in --json PATH or the dated file's .partial
  // twin (so that it does not replace the day's finished results); the dated file is written when the run finishes
  const dated = `bench/results/${slug}-${date.slice(0, 10)}.json`,
    partial = dated.replace(/\.json$/, '.partial.json');
  const paths = [dated, ...(o.json ? [o.json] : [])];
  let torchInfo: {
    file: string;
    adapter: string;
    torch?: string;
    checks: { workload: string; bn: boolean; max_loss_diff: number }[];
  } | null = null;
  const save = (complete: boolean) => {
    const out = {
      adapter: gpu.adapterInfo,
      commit,
      date,
      quick,
      complete,
      roofline: roof,
      note:
        'peak_bytes: live GPU bytes of the engine pool during the step; materialized_bytes: MPO rows, K weight' +
        ' copies plus their activations; surface rows, K weight copies (the reference loop holds one copy at a time' +
        ' and runs the points one after another)',
      torch: torchInfo,
      rows,
      skipped,
    };
    for (const p of complete ? paths : [o.json ?? partial]) {
      mkdirSync(dirname(p), { recursive: true });
      atomicWrite(p, `${JSON.stringify(out, null, 2)}\n`);
    }
    if (complete) rmSync(partial, { force: true });
  };
  console.log(
    '| impl | workload | BN | cells | batch | ms/step (wall) |' +
      ' GPU ms/step | cell-images/s | GFLOP/s | peak MiB | materialized MiB |' +
      '\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const workload of workloads) {
    if (workload === 'surface-onnx') {
      const side = o.surfaceSide ?? (quick ? 3 : 11),
        images = o.surfaceImages ?? (quick ? 4 : 64);
      rows.push(...(await surfaceOnnxBench(gpu, prof, { side, images })));
      save(false);
      continue;
    }
    if (workload === 'surface-icons') {
      const side = o.surfaceSide ?? (quick ? 5 : 51),
        images = o.surfaceImages ?? (quick ? 100 : 1000);
      const peerPoints = o.peerPoints ?? (quick ? 4 : 50);
      const surfacePeers = peers.filter((p) => p !== 'tfjs-cpu');
      rows.push(...(await surfaceBench(gpu, prof, { side, images, peers: surfacePeers, peerPoints, roof })));
      save(false);
      continue;
    }
    for (const bn of [false, true]) {
      const spec = workloadSpec(workload, bn);
      const fl = forwardFlops(spec.layers, spec.input);
      const actPerImage = layerShapes(spec.layers, spec.input).reduce((a, s) => a + numel(s), 0);
      for (const batch of batches) {
        for (const cells of cellsList) {
          const plane = Plane.fresh(gpu, spec.layers, 1);
          const opt = new Adam(gpu, plane.trainables(), { lr: 2.5e-4, maxNorm: 100 });
          const r = rng(cells * 1000 + batch);
          const x = Tensor.fromArray(gpu, [batch, ...spec.input], randArray(r, batch * numel(spec.input)), 'bench.x');
          const y = Tensor.fromArray(
            gpu,
            [batch],
            Array.from({ length: batch }, (_, i) => i % 10),
            'bench.y',
            'u32',
          );
          const nGood = Math.ceil(cells / 2);
          const offsets = Array.from(
            { length: cells },
            (_, k) => [(k % 7) - 3, (Math.floor(k / 7) % 7) - 3] as [number, number],
          );
          const walls: number[] = [],
            gpuMs: number[] = [];
          gpu.pool.resetPeak();
          for (let s = 0; s < warm + steps; s++) {
            await prof?.collect();
            prof?.clear();
            const t = performance.now();
            await mpoStep(gpu, plane, opt, offsets, nGood, x, y, { negCoef: 1, clamp: 2.5 });
            await gpu.sync();
            if (s >= warm) {
              walls.push(performance.now() - t);
              if (prof) {
                await prof.collect();
                gpuMs.push(prof.times.reduce((a, q) => a + q.durNs, 0) / 1e6);
              }
            }
          }
          const ms = median(walls);
          const row: BenchRow = {
            impl: 'loss-atlas',
            workload,
            bn,
            cells,
            batch,
            ms_per_step: +ms.toFixed(3),
            ms_spread: [+Math.min(...walls).toFixed(3), +Math.max(...walls).toFixed(3)],
            gpu_ms_per_step: gpuMs.length ? +median(gpuMs).toFixed(3) : null,
            cell_images_per_s: +((cells * batch) / (ms / 1000)).toFixed(1),
            gflops: +((3 * fl * cells * batch) / (ms * 1e6)).toFixed(2),
            peak_bytes: gpu.pool.peakBytes,
            materialized_bytes: cells * (parameterCount(spec.layers) + batch * actPerImage) * 4,
          };
          row.share_of_matmul = roof ? +(row.gflops / roof.gflops).toFixed(3) : null;
          rows.push(row);
          save(false);
          console.log(
            `| loss-atlas | ${workload} | ${bn ? 'on' : 'off'} | ${cells} | ${batch} |` +
              ` ${row.ms_per_step.toFixed(1)} (${row.ms_spread[0].toFixed(0)}-${row.ms_spread[1].toFixed(0)}) |` +
              ` ${row.gpu_ms_per_step?.toFixed(1) ?? '-'} | ${row.cell_images_per_s.toFixed(0)} |` +
              ` ${row.gflops.toFixed(2)}${roof ? ` (${((100 * row.gflops) / roof.gflops).toFixed(0)}%)` : ''} |` +
              ` ${(row.peak_bytes! / 2 ** 20).toFixed(1)} | ${(row.materialized_bytes / 2 ** 20).toFixed(1)} |`,
          );
          for (const peer of peers) {
            const predicted = predictMs(rows, peer, workload, bn, 3 * fl * cells * batch);
            const peerSteps = peerStepsOf(peer);
            if (predicted !== null && (predicted * (peerSteps + 1)) / 1000 > budgetS) {
              const why =
                `predicted ${(predicted / 1000).toFixed(1)} s per step x ${peerSteps + 1} steps` +
                ` > --peer-budget-s ${budgetS}`;
              skipped.push({ impl: peer, workload, bn, cells, batch, why });
              save(false);
              console.log(`| ${peer} | ${workload} | ${bn ? 'on' : 'off'} | ${cells} | ${batch} | skipped: ${why} |`);
              continue;
            }
            const pr = await timePeer(peer, plane, spec.layers, offsets, nGood, x, y, peerSteps, gpu);
            const prow: BenchRow = {
              impl: peer,
              workload,
              bn,
              cells,
              batch,
              ms_per_step: +pr.ms.toFixed(3),
              ms_spread: pr.spread,
              gpu_ms_per_step: null,
              cell_images_per_s: +((cells * batch) / (pr.ms / 1000)).toFixed(1),
              gflops: +((3 * fl * cells * batch) / (pr.ms * 1e6)).toFixed(3),
              peak_bytes: null,
              materialized_bytes: row.materialized_bytes,
              max_loss_diff: pr.maxDiff,
            };
            rows.push(prow);
            save(false);
            console.log(
              `| ${peer} | ${workload} | ${bn ? 'on' : 'off'} | ${cells} | ${batch} |` +
                ` ${prow.ms_per_step.toFixed(1)} (${pr.spread[0].toFixed(0)}-${pr.spread[1].toFixed(0)}) | - |` +
                ` ${prow.cell_images_per_s.toFixed(1)} | ${prow.gflops.toFixed(3)} | - | - |` +
                ` (losses vs loss-atlas: max diff ${pr.maxDiff.toExponential(1)};` +
                ` ${(pr.ms / row.ms_per_step).toFixed(1)}x loss-atlas's time)`,
            );
          }
          x.dispose();
          y.dispose();
          opt.dispose();
          plane.dispose();
        }
      }
    }
  }
  const torchPath = o.torch;
  if (torchPath) {
    const { readFileSync } = await import('node:fs');
    const t = JSON.parse(readFileSync(torchPath, 'utf8')) as {
      adapter: string;
      torch?: string;
      rows: BenchRow[];
      checks?: { workload: string; bn: boolean; max_loss_diff: number }[];
    };
    torchInfo = { file: torchPath, adapter: t.adapter, torch: t.torch, checks: t.checks ?? [] };
    console.log(`\nPyTorch rows from ${torchPath} (${t.adapter}):`);
    for (const c of t.checks ?? [])
      console.log(
        `  PyTorch losses vs loss-atlas's (${c.workload}, BN ${c.bn ? 'on' : 'off'})` +
          `: max diff ${c.max_loss_diff.toExponential(1)}`,
      );
    if (!t.checks?.length) console.log('  (no loss check in that file: run bench/torch_reference.py with --check-dir)');
    for (const r of t.rows) {
      if (r.workload !== 'surface-icons' && r.gflops == null) {
        const spec = workloadSpec(r.workload, r.bn);
        r.gflops = +((3 * forwardFlops(spec.layers, spec.input) * r.cells * r.batch) / (r.ms_per_step * 1e6)).toFixed(
          2,
        );
      }
      rows.push(r);
      const ours = rows.find(
        (q) =>
          q.impl === 'loss-atlas' &&
          q.workload === r.workload &&
          q.bn === r.bn &&
          q.cells === r.cells &&
          q.batch === r.batch,
      );
      console.log(
        `| ${r.impl} | ${r.workload} | ${r.bn ? 'on' : 'off'} | ${r.cells} | ${r.batch} |` +
          ` ${r.ms_per_step.toFixed(1)} | - | ${r.cell_images_per_s.toFixed(0)} |` +
          ` ${r.gflops != null ? r.gflops.toFixed(2) : '-'} |` +
          ` ${r.peak_bytes ? (r.peak_bytes / 2 ** 20).toFixed(1) : '-'} | - |` +
          `${ours ? ` (${(r.ms_per_step / ours.ms_per_step).toFixed(1)}x loss-atlas's time)` : ''}`,
      );
    }
  }
  save(true);
  console.log(`\nwrote ${paths.join(', ')}`);
  prof?.detach();
  gpu.destroy();
}

const argv = process.argv.slice(2);
let invocation: ReturnType<typeof parseCommand<typeof BENCH.options>> | null = null;
if (helpRequested(argv)) {
  console.log(renderHelp(BENCH));
  process.exit(0);
}
try {
  invocation = parseCommand(BENCH, argv);
} catch (e) {
  if (!(e instanceof UsageError)) throw e;
  console.error(`bench: ${e.message}\n(npm run bench -- --help lists the flags)`);
  process.exit(2);
}
main(invocation.options, invocation.globals).then(
  () => process.exit(0),
  (e) => {
    console.error(e instanceof Error ? (process.env.LOSS_ATLAS_STACK ? e.stack : e.message) : e);
    process.exit(1);
  },
);

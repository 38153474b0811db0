// The imported-model workload of the benchmark: a surface grid (one B = 3 manifold, evaluatePoints in blocks as
// `loss-atlas surface` runs it) of ONNX graphs (bench/onnx-resnet18.ts) beside the same grid of the zoo's ResNet-20
// on the same 32x32 colour images: GFLOP/s of each, and their ratio to the zoo's.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import type { Profiler } from '../src/engine/profiler.ts';
import { randArray, rng } from '../src/engine/random.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { forwardFlops, initParams, parameterCount } from '../src/models/graph.ts';
import { Model } from '../src/models/model.ts';
import { evaluatePoints } from '../src/models/run.ts';
import { type ModelSpec, initialWeights, modelSpec } from '../src/models/zoo.ts';
import { resnet18Onnx, resnet20Onnx } from './onnx-resnet18.ts';
import { type BenchRow, median } from './rows.ts';

async function gridRow(
  gpu: Gpu,
  prof: Profiler | null,
  spec: ModelSpec,
  workload: string,
  o: { side: number; images: number },
): Promise<BenchRow> {
  const r = rng(5);
  const theta = initialWeights(spec, 3);
  const dirs = initParams(spec.layers, 2, 4);
  const model = new Model(
    gpu,
    spec.layers,
    3,
    theta.map((t, i) => {
      const a = new Float32Array(3 * t.length);
      a.set(t);
      a.set(
        dirs[i].map((v) => 0.05 * v),
        t.length,
      );
      return a;
    }),
    spec.weights?.states.map((s) => {
      const a = new Float32Array(3 * s.length);
      a.set(s);
      return a;
    }),
  );
  // both in eval mode (the zoo's running statistics at their fresh values): the same kernels for every network
  model.bnMode = 'running';
  const lin = Array.from({ length: o.side }, (_, i) => -1 + (2 * i) / Math.max(1, o.side - 1));
  const coefs = Float32Array.from(lin.flatMap((b) => lin.flatMap((a) => [1, a, b])));
  const per = spec.input.reduce((a, b) => a * b, 1);
  const x = Tensor.fromArray(gpu, [o.images, ...spec.input], randArray(r, o.images * per), 'x');
  const y = Tensor.fromArray(
    gpu,
    [o.images],
    Array.from({ length: o.images }, (_, i) => i % 10),
    'y',
    'u32',
  );
  const walls: number[] = [],
    gpuMs: number[] = [];
  gpu.pool.resetPeak();
  for (let s = 0; s < 3; s++) {
    await prof?.collect();
    prof?.clear();
    const t = performance.now();
    await evaluatePoints(gpu, model, coefs, x, y);
    if (s === 0) continue;
    walls.push(performance.now() - t);
    if (prof) {
      await prof.collect();
      gpuMs.push(prof.times.reduce((a, q) => a + q.durNs, 0) / 1e6);
    }
  }
  const K = o.side * o.side;
  const ms = median(walls);
  const fl = forwardFlops(spec.layers, spec.input);
  const row: BenchRow = {
    impl: 'loss-atlas',
    workload,
    bn: true,
    cells: K,
    batch: o.images,
    ms_per_step: +ms.toFixed(2),
    ms_spread: [+Math.min(...walls).toFixed(2), +Math.max(...walls).toFixed(2)],
    gpu_ms_per_step: gpuMs.length ? +median(gpuMs).toFixed(2) : null,
    cell_images_per_s: +((K * o.images) / (ms / 1000)).toFixed(1),
    gflops: +((fl * K * o.images) / (ms * 1e6)).toFixed(3),
    peak_bytes: gpu.pool.peakBytes,
    materialized_bytes: K * parameterCount(spec.layers) * 4,
    points_per_s: +(K / (ms / 1000)).toFixed(2),
  };
  x.dispose();
  y.dispose();
  model.dispose();
  console.log(
    `| loss-atlas | ${workload} (${o.side}x${o.side}) | on | ${K} points | ${o.images} images |` +
      ` ${ms.toFixed(1)} per grid | ${row.gpu_ms_per_step?.toFixed(1) ?? '-'} | ${row.points_per_s} points/s |` +
      ` ${row.gflops.toFixed(3)} | ${(row.peak_bytes! / 2 ** 20).toFixed(1)} | - |`,
  );
  return row;
}

/**
 * The zoo's ResNet-20, the same architecture imported from ONNX (the importer's cost: their GFLOP/s should agree),
 * and torchvision's ResNet-18 imported (a different network: its GFLOP/s differ by its shapes, not by the import).
 */
export async function surfaceOnnxBench(
  gpu: Gpu,
  prof: Profiler | null,
  o: { side: number; images: number },
): Promise<BenchRow[]> {
  const tmp = mkdtempSync(join(tmpdir(), 'la-bench-'));
  const f20 = join(tmp, 'resnet20.onnx'),
    f18 = join(tmp, 'resnet18.onnx');
  writeFileSync(f20, resnet20Onnx(10, 32));
  writeFileSync(f18, resnet18Onnx(10, 32));
  const zoo = await gridRow(gpu, prof, modelSpec('resnet20', { input: [3, 32, 32] }), 'surface-resnet20', o);
  const rows = [zoo];
  for (const [file, name] of [
    [f20, 'surface-onnx-resnet20'],
    [f18, 'surface-onnx-resnet18'],
  ]) {
    const row = await gridRow(gpu, prof, modelSpec(file), name, o);
    row.per_flop_vs_zoo = +(row.gflops / zoo.gflops).toFixed(3);
    console.log(`  ${name}: GFLOP/s over the zoo ResNet-20's = ${row.per_flop_vs_zoo} (same grid, images, adapter)`);
    rows.push(row);
  }
  return rows;
}

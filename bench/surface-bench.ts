// The surface workload of the benchmark: a grid of points of the icon net evaluated as one manifold, against a loop
// that evaluates one point at a time.
import type { Gpu } from '../src/engine/device.ts';
import type { Profiler } from '../src/engine/profiler.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { randArray, rng } from '../src/engine/random.ts';
import { forwardFlops, initParams, paramShapes, parameterCount } from '../src/models/graph.ts';
import { Model } from '../src/models/model.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { evaluatePoints } from '../src/models/run.ts';
import type { TfBackend } from './peers/tfjs.ts';
import type { Roofline } from './roofline.ts';
import { median, type BenchRow } from './rows.ts';
/**
 * The loss-surface workload: a grid of points theta + a d1 + b d2 (a B = 3 manifold) of the icon net, each evaluated on
 * the same images, as `loss-atlas surface` does it (evaluatePoints in blocks), against the reference's loop of one
 * materialized point at a time in tfjs (checked first: same losses on a few points).
 */
export async function surfaceBench(
  gpu: Gpu,
  prof: Profiler | null,
  o: { side: number; images: number; peers: string[]; peerPoints: number; roof: Roofline | null },
): Promise<BenchRow[]> {
  const spec = modelSpec('icons');
  const shapes = paramShapes(spec.layers).map((p) => p.shape);
  const r = rng(77);
  const theta = initParams(spec.layers, 1, 3),
    d1 = theta.map((t) => randArray(r, t.length, 0.05)),
    d2 = theta.map((t) => randArray(r, t.length, 0.05));
  const model = new Model(
    gpu,
    spec.layers,
    3,
    theta.map((t, i) => {
      const a = new Float32Array(3 * t.length);
      a.set(t);
      a.set(d1[i], t.length);
      a.set(d2[i], 2 * t.length);
      return a;
    }),
  );
  const lin = Array.from({ length: o.side }, (_, i) => -1 + (2 * i) / Math.max(1, o.side - 1));
  const points = lin.flatMap((b) => lin.map((a) => [a, b] as [number, number]));
  const coefs = Float32Array.from(points.flatMap(([a, b]) => [1, a, b]));
  const xv = randArray(r, o.images * 784),
    yv = Array.from({ length: o.images }, (_, i) => i % 10);
  const x = Tensor.fromArray(gpu, [o.images, 1, 28, 28], xv, 'surf.x'),
    y = Tensor.fromArray(gpu, [o.images], yv, 'surf.y', 'u32');
  const fl = forwardFlops(spec.layers, spec.input);
  const walls: number[] = [],
    gpuMs: number[] = [];
  let ours: Float32Array = new Float32Array();
  gpu.pool.resetPeak();
  for (let s = 0; s < 3; s++) {
    await prof?.collect();
    prof?.clear();
    const t = performance.now();
    ours = (await evaluatePoints(gpu, model, coefs, x, y)).loss;
    if (s > 0) {
      walls.push(performance.now() - t);
      if (prof) {
        await prof.collect();
        gpuMs.push(prof.times.reduce((a, q) => a + q.durNs, 0) / 1e6);
      }
    }
  }
  const ms = median(walls);
  const K = points.length;
  const row: BenchRow = {
    impl: 'loss-atlas',
    workload: 'surface-icons',
    bn: false,
    cells: K,
    batch: o.images,
    ms_per_step: +ms.toFixed(2),
    ms_spread: [+Math.min(...walls).toFixed(2), +Math.max(...walls).toFixed(2)],
    gpu_ms_per_step: gpuMs.length ? +median(gpuMs).toFixed(2) : null,
    cell_images_per_s: +((K * o.images) / (ms / 1000)).toFixed(1),
    gflops: +((fl * K * o.images) / (ms * 1e6)).toFixed(2),
    peak_bytes: gpu.pool.peakBytes,
    materialized_bytes: K * parameterCount(spec.layers) * 4,
    points_per_s: +(K / (ms / 1000)).toFixed(2),
  };
  row.share_of_matmul = o.roof ? +(row.gflops / o.roof.gflops).toFixed(3) : null;
  const rows = [row];
  console.log(
    `| loss-atlas | surface-icons (${o.side}x${o.side}) | off | ${K} points | ${o.images} images |` +
      ` ${ms.toFixed(1)} per grid | ${row.gpu_ms_per_step?.toFixed(1) ?? '-'} | ${row.points_per_s} points/s |` +
      ` ${row.gflops.toFixed(2)} | ${(row.peak_bytes! / 2 ** 20).toFixed(1)} |` +
      ` ${(row.materialized_bytes / 2 ** 20).toFixed(1)} |`,
  );
  for (const peer of o.peers) {
    const tfp = await import('./peers/tfjs.ts');
    const tf = await import('@tensorflow/tfjs');
    await tfp.useBackend(peer.replace('tfjs-', '') as TfBackend);
    const xt = tf.tensor4d(xv, [o.images, 1, 28, 28]),
      yt = tf.tensor1d(Int32Array.from(yv), 'int32');
    const sub = points.slice(0, Math.min(K, o.peerPoints));
    // also the warm-up
    const check = await tfp.surfaceLosses(spec.layers, { theta, d1, d2 }, shapes, sub.slice(0, 2), xt, yt);
    const maxDiff = Math.max(...check.map((l, k) => Math.abs(l - ours[k])));
    if (!(maxDiff < 1e-3)) throw new Error(`${peer}: surface losses differ from loss-atlas's by ${maxDiff}`);
    const t = performance.now();
    await tfp.surfaceLosses(spec.layers, { theta, d1, d2 }, shapes, sub, xt, yt);
    const perPoint = (performance.now() - t) / sub.length;
    xt.dispose();
    yt.dispose();
    const prow: BenchRow = {
      impl: peer,
      workload: 'surface-icons',
      bn: false,
      cells: K,
      batch: o.images,
      ms_per_step: +(perPoint * K).toFixed(1),
      ms_spread: [+(perPoint * K).toFixed(1), +(perPoint * K).toFixed(1)],
      gpu_ms_per_step: null,
      cell_images_per_s: +((o.images * 1000) / perPoint).toFixed(1),
      gflops: +((fl * o.images) / (perPoint * 1e6)).toFixed(3),
      peak_bytes: null,
      materialized_bytes: row.materialized_bytes,
      max_loss_diff: maxDiff,
      points_per_s: +(1000 / perPoint).toFixed(2),
      timed_points: sub.length,
    };
    rows.push(prow);
    console.log(
      `| ${peer} | surface-icons (${o.side}x${o.side}) | off | ${K} points | ${o.images} images |` +
        ` ${prow.ms_per_step.toFixed(0)} per grid (from ${sub.length} points) | - |` +
        ` ${prow.points_per_s} points/s | ${prow.gflops.toFixed(3)} | - | - |` +
        ` (losses vs loss-atlas: max diff ${maxDiff.toExponential(1)};` +
        ` ${(prow.ms_per_step / row.ms_per_step).toFixed(1)}x loss-atlas's time)`,
    );
  }
  x.dispose();
  y.dispose();
  model.dispose();
  return rows;
}

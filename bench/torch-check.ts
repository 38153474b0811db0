// The loss check between loss-atlas and its PyTorch peer (bench/torch_reference.py --check-dir), and the peers'
// time prediction of bench/mpo.ts.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../src/engine/device.ts';
import { Tensor, numel } from '../src/engine/tensor.ts';
import { randArray, rng } from '../src/engine/random.ts';
import { atomicWrite, safetensorsBytes, type NamedTensor } from '../src/data/formats.ts';
import { initParams, paramShapes } from '../src/models/graph.ts';
import { modelSpec, type ModelSpec } from '../src/models/zoo.ts';
import { evaluatePoints } from '../src/models/run.ts';
import { Plane } from '../src/mpo/plane.ts';

/** The net of an MPO benchmark workload (the icon net for mpo-fashion, the CIFAR net for mpo-cifar). */
export const workloadSpec = (workload: string, bn: boolean): ModelSpec =>
  modelSpec(workload === 'mpo-cifar' ? 'cifar' : 'icons', { bn });

/**
 * Writes what bench/torch_reference.py needs to check PyTorch's losses against ours: the plane's trainable tensors
 * (origin, right_param, up_param per parameter, in PyTorch's parameter order, and scale), a batch, cell offsets
 * (di, dj) and loss-atlas's per-cell cross-entropies on them.
 */
export async function exportCheck(
  gpu: Gpu,
  workload: string,
  bn: boolean,
  batch: number,
  dir: string,
  spec = workloadSpec(workload, bn),
): Promise<string> {
  // the default init leaves batch norm's weight and bias at zero in all three tensors, where a swap of the two or a
  // wrong gamma offset would not show: they get random values here
  const r = rng(4242);
  const init = [0, 1, 2].map((t) => initParams(spec.layers, 1, 15 + t));
  paramShapes(spec.layers).forEach((p, i) => {
    if (p.name.includes('.bn.')) for (const v of init) v[i] = randArray(r, v[i].length, 0.3);
  });
  const v = { origin: init[0], right: init[1], up: init[2], scale: 0.1 };
  const plane = new Plane(gpu, spec.layers, v);
  const xv = randArray(r, batch * numel(spec.input));
  const x = Tensor.fromArray(gpu, [batch, ...spec.input], xv, 'check.x');
  const yv = Array.from({ length: batch }, (_, i) => (i * 7) % 10);
  const y = Tensor.fromArray(gpu, [batch], yv, 'check.y', 'u32');
  const offsets: [number, number][] = [
    [0, 0],
    [-3, 2],
    [4, -1],
    [2, 5],
  ];
  await plane.updateBasis();
  const ours = await evaluatePoints(
    gpu,
    plane.model,
    Float32Array.from(offsets.flatMap(([di, dj]) => [1, v.scale * dj, v.scale * di])),
    x,
    y,
  );
  const t: Record<string, NamedTensor> = {};
  paramShapes(spec.layers).forEach((p, i) => {
    t[`origin.${p.name}`] = { shape: p.shape, data: v.origin[i] };
    t[`right_param.${p.name}`] = { shape: p.shape, data: v.right[i] };
    t[`up_param.${p.name}`] = { shape: p.shape, data: v.up[i] };
  });
  t.scale = { shape: [1], data: Float32Array.of(v.scale) };
  t.x = { shape: [batch, ...spec.input], data: xv };
  t.y = { shape: [batch], data: Float32Array.from(yv) };
  t.offsets = { shape: [offsets.length, 2], data: Float32Array.from(offsets.flat()) };
  t.losses = { shape: [offsets.length], data: ours.loss };
  const path = join(dir, `${workload}-bn${bn ? 1 : 0}.safetensors`);
  mkdirSync(dir, { recursive: true });
  atomicWrite(
    path,
    safetensorsBytes(t, {
      workload,
      bn: String(bn),
      adapter: gpu.adapterInfo,
      cell:
        'origin + scale * (dj * right + di * up), right = right_param - origin,' +
        ' up = up_param made orthogonal to right with |up| = |right|',
    }),
  );
  x.dispose();
  y.dispose();
  plane.dispose();
  return path;
}

/** A peer's time for a configuration, predicted from its GFLOP/s on earlier rows of the same workload and BN. */
export function predictMs(
  rows: { impl: string; workload: string; bn: boolean; gflops: number }[],
  peer: string,
  workload: string,
  bn: boolean,
  flop: number,
): number | null {
  const prev = rows.filter((r) => r.impl === peer && r.workload === workload && r.bn === bn);
  if (!prev.length) return null;
  const g = Math.min(...prev.map((r) => r.gflops));
  return flop / (g * 1e6);
}

// The roofline probe of an adapter: an f32 matmul in the way of the conv kernels it runs (tiled or lanes, without
// im2col) and a copy,
// timed with timestamp queries (median of `reps` after one warm-up). Kernel figures are given as shares of these.
import type { Gpu } from '../src/engine/device.ts';
import type { Profiler } from '../src/engine/profiler.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { randArray, rng } from '../src/engine/random.ts';
import { chooseTiles } from '../src/engine/ops/conv-tiled.wgsl.ts';
import { chooseLanes, lanesGrid } from '../src/engine/ops/conv-lanes.wgsl.ts';
import { matmulKernel, matmulLanesKernel } from './matmul.wgsl.ts';
import { elementwiseKernel } from '../src/engine/ops/elementwise.wgsl.ts';
import { type KernelSpec, fold } from '../src/engine/kernel.ts';

export interface Roofline {
  matmulN: number;
  family: string;
  gflops: number;
  copyBytes: number;
  gbps: number;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

export async function roofline(gpu: Gpu, prof: Profiler, mm: number, copyN: number, reps: number): Promise<Roofline> {
  await prof.collect();
  prof.clear();
  const a = Tensor.fromArray(gpu, [mm, mm], randArray(rng(1), mm * mm), 'a');
  const b = Tensor.fromArray(gpu, [mm, mm], randArray(rng(2), mm * mm), 'b');
  const c = new Tensor(gpu, [mm, mm], 'c');
  // the matmul of the conv kernel family this device runs (tiled on a GPU, lanes on a CPU adapter)
  let mk: KernelSpec, groups: [number, number];
  if (gpu.convKernels === 'lanes') {
    const l = chooseLanes(mm, mm);
    mk = matmulLanesKernel(l);
    const [gx, gy] = lanesGrid(l, mm, mm);
    groups = [gx, gy];
  } else {
    const t = chooseTiles(mm, mm);
    mk = matmulKernel(t);
    groups = [Math.ceil(mm / t.BM), Math.ceil(mm / t.BN)];
  }
  for (let i = 0; i < reps + 1; i++)
    gpu.dispatch({
      kernel: mk,
      buffers: { a: a.buffer, b: b.buffer, c: c.buffer },
      uniforms: { M: mm, N: mm, Kd: mm },
      groups,
      what: `matmul ${mm}^3`,
      flops: 2 * mm ** 3,
    });
  const src = new Tensor(gpu, [copyN], 'src'),
    dst = new Tensor(gpu, [copyN], 'dst');
  const per = gpu.elemsPerThread; // as the elementwise ops run it on this device
  const ck = elementwiseKernel('copy', ['a'], 'a', [], '', per);
  for (let i = 0; i < reps + 1; i++)
    gpu.dispatch({
      kernel: ck,
      buffers: { a_: src.buffer, y: dst.buffer },
      uniforms: { n: copyN },
      groups: fold(Math.ceil(copyN / (256 * per))),
      what: 'copy',
      bytes: 8 * copyN,
    });
  await gpu.sync();
  await prof.collect();
  const mmMs = median(
    prof.times
      .filter((x) => x.name === 'matmul')
      .slice(1)
      .map((x) => x.durNs / 1e6),
  );
  const cpMs = median(
    prof.times
      .filter((x) => x.name === 'copy')
      .slice(1)
      .map((x) => x.durNs / 1e6),
  );
  [a, b, c, src, dst].forEach((x) => x.dispose());
  prof.clear();
  return {
    matmulN: mm,
    family: gpu.convKernels,
    gflops: (2 * mm ** 3) / (mmMs * 1e6),
    copyBytes: 4 * copyN,
    gbps: (8 * copyN) / (cpMs * 1e6),
  };
}

export const describeRoofline = (r: Roofline) =>
  `roofline: f32 matmul ${r.matmulN}^3 (${r.family} kernels) ${r.gflops.toFixed(1)} GFLOP/s;` +
  ` copy ${(r.copyBytes / 2 ** 20).toFixed(0)} MiB ${r.gbps.toFixed(1)} GB/s`;

// Training on random hyperplanes of the toy landscape: the threshold dimension d_lim against D - n.
import type { Gpu } from '../engine/device.ts';
import { Param } from '../engine/manifold.ts';
import { randn, rng } from '../engine/random.ts';
import { HostAdam } from '../numerics/adam.ts';
import { projectOut } from '../numerics/linalg.ts';
import { toyLosses } from './wedge.ts';
import { checkFinite } from '../run/diverged.ts';
export interface HyperplaneResult {
  D: number;
  ns: number[];
  ds: number[];
  /** final loss / initial loss, [ns.length][ds.length] */
  rel: number[][];
  /** smallest d whose final relative loss is below `success`, per n (null: none) */
  dLim: (number | null)[];
  success: number;
  steps: number;
}

/** d values around each threshold D - n (+-span) and a coarse sweep, sorted. */
export function sweepDims(D: number, ns: number[], span = 2, coarse = 8): number[] {
  const s = new Set<number>();
  for (const n of ns) for (let d = D - n - span; d <= D - n + span; d++) if (d >= 1 && d <= D) s.add(d);
  for (let i = 1; i <= coarse; i++) s.add(Math.max(1, Math.round((D * i) / (coarse + 1))));
  return [...s].sort((a, b) => a - b);
}

/**
 * (a) Trains theta on every hyperplane of dimension d in ds, for every n in ns, as one batch of K = |ns| x |ds| points;
 * M has N(0, 1/D) entries, P0 N(0, 1).
 */
export async function hyperplaneSweep(
  gpu: Gpu,
  o: { D: number; ns: number[]; ds: number[]; steps: number; lr: number; seed: number; success?: number },
  progress?: (step: number, best: number) => void,
): Promise<HyperplaneResult> {
  const { D, ns, ds } = o;
  const dMax = Math.max(...ds);
  const B = 1 + dMax;
  const r = rng(o.seed);
  const init = new Float32Array(B * D);
  for (let i = 0; i < D; i++) init[i] = randn(r);
  for (let i = D; i < B * D; i++) init[i] = randn(r) / Math.sqrt(D);
  const basis = new Param(gpu, 'P', [D], B, init);
  const pts = ns.flatMap((n) => ds.map((d) => ({ n, d })));
  const K = pts.length;
  const coefs = new Float32Array(K * B);
  const mask = new Uint8Array(K * B);
  pts.forEach((p, k) => {
    coefs[k * B] = 1;
    for (let j = 1; j <= p.d; j++) mask[k * B + j] = 1;
  });
  const keep = pts.map((p) => p.n);
  const opt = new HostAdam(K * B, o.lr, o.steps);
  try {
    const first = await toyLosses(gpu, basis, coefs, keep);
    let last = first.loss;
    for (let s = 0; s < o.steps; s++) {
      const { loss, dcoef } = await toyLosses(gpu, basis, coefs, keep, { coefGrad: true });
      checkFinite(loss, { what: 'toy (the hyperplane sweep)', step: s + 1, advice: `a lower --lr than ${o.lr}` });
      opt.step(coefs, dcoef!, mask);
      last = loss;
      if (progress && (s + 1) % 500 === 0) progress(s + 1, Math.min(...Array.from(loss, (l, k) => l / first.loss[k])));
    }
    last = (await toyLosses(gpu, basis, coefs, keep)).loss;
    const success = o.success ?? 1e-4;
    const rel = ns.map((_, i) => ds.map((_, j) => last[i * ds.length + j] / first.loss[i * ds.length + j]));
    const dLim = rel.map((row) => {
      const j = row.findIndex((v) => v < success);
      return j < 0 ? null : ds[j];
    });
    return { D, ns, ds, rel, dLim, success, steps: o.steps };
  } finally {
    basis.dispose();
  }
}

/** Full-space optimization of K points from random starts (B = K, identity coefficients: basis gradients are
 * per point). */
export async function optimizePoints(
  gpu: Gpu,
  starts: Float32Array[],
  n: number,
  o: { steps: number; lr: number; project?: Float64Array[] },
): Promise<Float32Array[]> {
  const K = starts.length,
    D = starts[0].length;
  const x = new Float32Array(K * D);
  starts.forEach((s, k) => x.set(s, k * D));
  const eye = new Float32Array(K * K);
  for (let k = 0; k < K; k++) eye[k * K + k] = 1;
  const opt = new HostAdam(K * D, o.lr, o.steps);
  const basis = new Param(gpu, 'P', [D], K, x);
  try {
    for (let s = 0; s < o.steps; s++) {
      basis.basis.write(x);
      basis.zeroGrad();
      const { loss } = await toyLosses(gpu, basis, eye, new Array(K).fill(n), { basisGrad: true });
      checkFinite(loss, { what: 'toy (the connector points)', step: s + 1, advice: `a lower --lr than ${o.lr}` });
      const g = Float64Array.from(await basis.grad!.read());
      if (o.project) projectOut(g, D, o.project);
      opt.step(x, g);
      if (o.project) {
        // Adam's per-coordinate scaling tilts the step out of the hyperplane: project the deviation from the start back
        const dev = Float64Array.from(x, (v, i) => v - starts[Math.floor(i / D)][i % D]);
        projectOut(dev, D, o.project);
        for (let i = 0; i < x.length; i++) x[i] = starts[Math.floor(i / D)][i % D] + dev[i];
      }
    }
  } finally {
    basis.dispose();
  }
  return starts.map((_, k) => x.slice(k * D, (k + 1) * D));
}

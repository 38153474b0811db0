// `loss-atlas toy`: the n-wedge toy landscape of Fort & Jastrzebski 2019 (section 3), on the GPU kernel of the
// surrogate loss (the distance to the nearest axis-aligned n-wedge), every experiment batched over manifold points:
//   (a) optimization on random d-dimensional hyperplanes P = P0 + theta M: one basis [P0, M_1 .. M_dmax] holds every
//       hyperplane (d = the first d rows), so all (n, d) pairs train together as the K points of one manifold, and the
//       threshold d_lim (the smallest d that reaches zero loss) is compared with D - n;
//   (b) two optima from random starts, the loss on their straight line, and a low-loss connector built with the
//       paper's algorithm (points on the segment optimized within the hyperplanes normal to it), with the cosine
//       similarities of the deviations from the line (which should cluster in two halves);
//   (c) the radial well: the loss along many random unit directions from a point near a wedge, all rays and distances
//       in one batched evaluation.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { Param } from '../engine/manifold.ts';

import { randn, rng } from '../engine/random.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { UsageError, defineCommand, optionsOf, type OptionInput } from '../options/index.ts';
import { cosine, orthonormal, norm2 } from '../numerics/linalg.ts';
import { plotHyperplane, plotConnector, plotRadial } from './toy-plots.ts';
import { sweepDims, hyperplaneSweep, optimizePoints } from './toy-hyperplanes.ts';
import { toyLosses } from './wedge.ts';
/** Losses of explicit points (host vectors), in one batch. */
async function lossesAt(gpu: Gpu, points: Float32Array[], n: number): Promise<Float32Array> {
  const K = points.length,
    D = points[0].length;
  const all = new Float32Array(K * D);
  points.forEach((p, k) => all.set(p, k * D));
  const basis = new Param(gpu, 'P', [D], K, all);
  const eye = new Float32Array(K * K);
  for (let k = 0; k < K; k++) eye[k * K + k] = 1;
  try {
    return (await toyLosses(gpu, basis, eye, new Array(K).fill(n))).loss;
  } finally {
    basis.dispose();
  }
}

const lerp = (a: Float32Array, b: Float32Array, t: number) => a.map((v, i) => v + t * (b[i] - v));

export interface ConnectorResult {
  /** dense path parameter (0..1 along the polyline) with loss, for the straight line and the connector */
  t: number[];
  line: number[];
  connector: number[];
  barrierLine: number;
  barrierConnector: number;
  /** cosine similarities of the deviations from the line, [J][J] */
  cosines: number[][];
  /** whether the two optima's largest-n coordinate sets differ (different wedges) */
  differentWedges: boolean;
}

/** (b) two optima, their straight line, and the connector of Fort & Jastrzebski (J interior points). */
export async function toyConnector(
  gpu: Gpu,
  o: { D: number; n: number; J: number; steps: number; lr: number; seed: number; dense: number },
): Promise<ConnectorResult> {
  const r = rng(o.seed);
  const starts = [0, 1].map(() => Float32Array.from({ length: o.D }, () => randn(r)));
  const [A, B] = await optimizePoints(gpu, starts, o.n, { steps: o.steps, lr: o.lr });
  const top = (p: Float32Array) =>
    new Set(
      Array.from(p, (v, i) => [Math.abs(v), i])
        .sort((a, b) => b[0] - a[0])
        .slice(0, o.n)
        .map((q) => q[1]),
    );
  const ta = top(A),
    tb = top(B);
  const differentWedges = [...ta].some((i) => !tb.has(i));
  const dir = Float64Array.from(B, (v, i) => v - A[i]);
  const norm = norm2(dir);
  const u = dir.map((v) => v / norm);
  const ts = Array.from({ length: o.J }, (_, j) => (j + 1) / (o.J + 1));
  const onLine = ts.map((t) => lerp(A, B, t));
  const opt = await optimizePoints(gpu, onLine, o.n, { steps: o.steps, lr: o.lr, project: orthonormal([u]) });
  // dense evaluation: along the straight line, and along the polyline A -> opt_1 -> ... -> opt_J -> B
  const nodes = [A, ...opt, B];
  const tDense = Array.from({ length: o.dense }, (_, i) => i / (o.dense - 1));
  const polyAt = (t: number) => {
    const s = t * (nodes.length - 1),
      i = Math.min(nodes.length - 2, Math.floor(s));
    return lerp(nodes[i], nodes[i + 1], s - i);
  };
  const line = await lossesAt(
    gpu,
    tDense.map((t) => lerp(A, B, t)),
    o.n,
  );
  const conn = await lossesAt(gpu, tDense.map(polyAt), o.n);
  const ends = (line[0] + line[line.length - 1]) / 2;
  const dev = opt.map((p, j) => p.map((v, i) => v - onLine[j][i]));
  return {
    t: tDense,
    line: Array.from(line),
    connector: Array.from(conn),
    barrierLine: Math.max(...line) - ends,
    barrierConnector: Math.max(...conn) - ends,
    cosines: dev.map((a) => dev.map((b) => cosine(a, b))),
    differentWedges,
  };
}

export interface RadialResult {
  a: number[] /** [rays][a] */;
  loss: number[][];
  L0: number;
}

/**
 * (c) From a point near a wedge (an optimum plus a small random offset of norm `offset`), the loss along R random unit
 * directions at distances a: the basis [P0, v_1 .. v_R] and the points (1, a e_r), all in one batch.
 */
export async function toyRadial(
  gpu: Gpu,
  o: {
    D: number;
    n: number;
    rays: number;
    aMax: number;
    steps: number;
    lr: number;
    seed: number;
    offset: number;
    points: number;
  },
): Promise<RadialResult> {
  const r = rng(o.seed + 5);
  const [opt] = await optimizePoints(gpu, [Float32Array.from({ length: o.D }, () => randn(r))], o.n, {
    steps: o.steps,
    lr: o.lr,
  });
  const off = Float32Array.from({ length: o.D }, () => randn(r));
  const on = norm2(off);
  const P0 = opt.map((v, i) => v + (o.offset * off[i]) / on);
  const B = 1 + o.rays;
  const init = new Float32Array(B * o.D);
  init.set(P0);
  for (let q = 0; q < o.rays; q++) {
    const v = Float32Array.from({ length: o.D }, () => randn(r));
    const s = norm2(v);
    init.set(
      v.map((x) => x / s),
      (1 + q) * o.D,
    );
  }
  const a = Array.from({ length: o.points }, (_, i) => (o.aMax * i) / (o.points - 1));
  const K = o.rays * o.points;
  const coefs = new Float32Array(K * B);
  for (let q = 0; q < o.rays; q++)
    for (let i = 0; i < o.points; i++) {
      const k = q * o.points + i;
      coefs[k * B] = 1;
      coefs[k * B + 1 + q] = a[i];
    }
  const basis = new Param(gpu, 'P', [o.D], B, init);
  try {
    const { loss } = await toyLosses(gpu, basis, coefs, new Array(K).fill(o.n));
    return {
      a,
      loss: Array.from({ length: o.rays }, (_, q) => Array.from(loss.subarray(q * o.points, (q + 1) * o.points))),
      L0: loss[0],
    };
  } finally {
    basis.dispose();
  }
}

// ---------------------------------------------------------------- plots and the command

export const TOY = defineCommand({
  name: 'toy',
  summary:
    'the n-wedge toy landscape (Fort & Jastrzebski): hyperplane threshold d_lim vs D - n, connector, ' +
    'radial well (--help)',
  description: `\
The n-wedge toy landscape (Fort & Jastrzebski 2019, section 3) on the GPU: (a) training on random d-dimensional
hyperplanes for several n, with the threshold d_lim (smallest d reaching final loss / initial loss < --success)
against D - n; (b) two optima, their straight line and a connector; (c) the radial well.
Writes hyperplanes.png, connector.png, radial.png, metrics.json and toy.json into --out (default runs/toy-<time>).`,
  options: {
    D: { type: 'integer', min: 2, default: 100, help: 'configuration dimension' },
    ns: {
      type: 'list',
      of: 'integer',
      min: 0,
      defaultText: '0.2, 0.4, 0.6, 0.8 x D: 20,40,60,80',
      help: 'wedge dimensions for (a)',
    },
    span: { type: 'integer', min: 0, default: 2, help: 'd from D-n-span to D-n+span per n, plus a coarse sweep' },
    steps: { type: 'integer', min: 1, default: 4000, help: 'Adam steps (cosine decay)' },
    lr: { type: 'number', above: 0, default: 0.02, help: 'Adam learning rate' },
    success: { type: 'number', above: 0, default: 1e-4, help: 'final loss / initial loss that counts as reached' },
    seed: { type: 'integer', min: 0, default: 1, help: 'random seed' },
    n: { type: 'integer', min: 0, defaultText: 'D/2', help: 'wedge dimension for (b), (c)' },
    points: { type: 'integer', min: 1, default: 9, help: 'connector points' },
    rays: { type: 'integer', min: 1, default: 32, help: 'random directions of the radial well' },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/toy-<time>', help: 'run directory' },
  },
});

export async function runToy(
  gpu: Gpu,
  input: OptionInput<typeof TOY.options>,
  out: string,
  log: (m: string) => void,
): Promise<Record<string, unknown>> {
  const o = optionsOf(TOY.options, input);
  const { D, steps, seed, lr, success } = o;
  const ns = o.ns ?? [0.2, 0.4, 0.6, 0.8].map((f) => Math.round(f * D));
  if (ns.some((n) => n >= D)) {
    throw new UsageError(`--ns "${ns.join(',')}": comma-separated wedge dimensions from 0 to D-1 = ${D - 1} expected`);
  }
  const n = o.n ?? Math.round(D / 2);
  if (n >= D) {
    const why = 'with n >= D the loss is zero everywhere';
    throw new UsageError(`--n ${n}: the wedge dimension must be below D = ${D} (${why})`);
  }
  writeRunConfig(out, 'toy', { D, ns, steps, lr, success, seed, n }, gpu);
  const ds = sweepDims(D, ns, o.span);
  log(
    `(a) ${ns.length} wedge dimensions x ${ds.length} hyperplane dimensions = ${ns.length * ds.length}` +
      ` points trained together, ${steps} steps`,
  );
  const h = await hyperplaneSweep(gpu, { D, ns, ds, steps, lr, seed, success }, (s, best) =>
    log(`  step ${s}: best final/initial ${best.toExponential(2)}`),
  );
  h.ns.forEach((nn, i) => log(`  n = ${nn}: d_lim = ${h.dLim[i] ?? 'not reached'} (D - n = ${D - nn})`));
  await plotHyperplane(h, join(out, 'hyperplanes.png'));
  log(`(b) two optima (n = ${n}) and a connector of ${o.points} points`);
  const c = await toyConnector(gpu, { D, n, J: o.points, steps, lr, seed, dense: 101 });
  log(
    `  barrier: straight line ${c.barrierLine.toFixed(3)}, connector ${c.barrierConnector.toFixed(4)}` +
      `; different wedges: ${c.differentWedges}`,
  );
  await plotConnector(
    c,
    join(out, 'connector.png'),
    `toy landscape D = ${D}, n = ${n}: two optima, their line and a connector`,
  );
  log(`(c) radial well: ${o.rays} random directions`);
  const rr = await toyRadial(gpu, { D, n, rays: o.rays, aMax: 3, steps, lr, seed, offset: 0.3, points: 31 });
  await plotRadial(
    rr,
    join(out, 'radial.png'),
    `toy landscape: loss along ${rr.loss.length} random unit directions from a point near a wedge`,
  );
  const at = (q: number) => rr.loss.map((ray) => ray[q]);
  const last = at(rr.a.length - 1);
  const mean = last.reduce((s, v) => s + v, 0) / last.length;
  const sd = Math.sqrt(last.reduce((s, v) => s + (v - mean) ** 2, 0) / last.length);
  const metrics = {
    hyperplanes: {
      D,
      ns,
      d_lim: h.dLim,
      expected: ns.map((nn) => D - nn),
      exact: h.dLim.map((d, i) => d === D - ns[i]),
    },
    connector: {
      n,
      barrier_line: c.barrierLine,
      barrier_connector: c.barrierConnector,
      different_wedges: c.differentWedges,
    },
    radial: { L0: rr.L0, a_max: rr.a[rr.a.length - 1], loss_mean: mean, loss_sd: sd, relative_spread: sd / mean },
  };
  writeFileSync(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  writeFileSync(join(out, 'toy.json'), `${JSON.stringify({ hyperplanes: h, connector: c, radial: rr })}\n`);
  return metrics;
}

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
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { Manifold, Param } from '../engine/manifold.ts';
import * as ops from '../engine/ops/index.ts';
import { wedgeLoss } from './wedge.ts';
import { Tape } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import { randn, rng } from '../engine/random.ts';
import { vegaLitePanel, vegaLitePng } from '../viz/vega.ts';
import { compose, cosineMap, writePng } from '../viz/figure.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { UsageError, defineCommand, optionsOf, type OptionInput } from '../options/index.ts';
import { HostAdam } from '../numerics/adam.ts';
import { orthonormal, projectOut, norm2 } from '../numerics/linalg.ts';
/** Losses (and optionally dL/dC) of K points P_k = sum_b C[k,b] basis[b] of the toy landscape, keep[k] = n of point k. */
export async function toyLosses(
  gpu: Gpu,
  basis: Param,
  coefs: Float32Array,
  keep: number[],
  o: { coefGrad?: boolean; basisGrad?: boolean } = {},
): Promise<{ loss: Float32Array; dcoef: Float32Array | null }> {
  const K = keep.length;
  const manifold = new Manifold(gpu, K, basis.B, coefs);
  const tape = o.coefGrad || o.basisGrad ? new Tape(gpu, manifold, !!o.coefGrad) : null;
  const ctx: ops.Ctx = { gpu, manifold, tape };
  const keepT = Tensor.fromArray(gpu, [K], keep, 'toy.keep', 'u32');
  const x = ops.pointValues(ctx, basis, { basisGrad: !!o.basisGrad });
  const l = wedgeLoss(ctx, x, keepT);
  try {
    if (tape) tape.backward(new Array(K).fill(1));
    const [r, dc] = await Promise.all([l.read(), o.coefGrad ? manifold.dcoef!.read() : null]);
    return { loss: r.loss, dcoef: dc };
  } finally {
    if (tape) tape.dispose();
    else {
      x.dispose();
      l.out.dispose();
    }
    keepT.dispose();
    manifold.dispose();
  }
}

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

/** Full-space optimization of K points from random starts (B = K, identity coefficients: basis gradients are per point). */
async function optimizePoints(
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
      await toyLosses(gpu, basis, eye, new Array(K).fill(n), { basisGrad: true });
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
  const cos = (a: Float32Array, b: Float32Array) => {
    let d = 0,
      na = 0,
      nb = 0;
    for (let i = 0; i < a.length; i++) {
      d += a[i] * b[i];
      na += a[i] * a[i];
      nb += b[i] * b[i];
    }
    return d / Math.sqrt(na * nb + 1e-30);
  };
  return {
    t: tDense,
    line: Array.from(line),
    connector: Array.from(conn),
    barrierLine: Math.max(...line) - ends,
    barrierConnector: Math.max(...conn) - ends,
    cosines: dev.map((a) => dev.map((b) => cos(a, b))),
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

async function plotHyperplane(h: HyperplaneResult, path: string): Promise<void> {
  const rows = h.ns.flatMap((n, i) => h.ds.map((d, j) => ({ d, n: `n = ${n}`, rel: Math.max(h.rel[i][j], 1e-8) })));
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `toy landscape, D = ${h.D}: final loss on random d-dimensional hyperplanes (dashed: D - n)`,
      width: 520,
      height: 300,
      layer: [
        {
          data: { values: rows },
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'd', type: 'quantitative', title: 'hyperplane dimension d' },
            y: { field: 'rel', type: 'quantitative', scale: { type: 'log' }, title: 'final loss / initial loss' },
            color: { field: 'n', type: 'nominal', title: 'wedge dimension' },
          },
        },
        {
          data: { values: h.ns.map((n) => ({ x: h.D - n, n: `n = ${n}` })) },
          mark: { type: 'rule', strokeDash: [4, 3] },
          encoding: { x: { field: 'x', type: 'quantitative' }, color: { field: 'n', type: 'nominal' } },
        },
      ],
    },
    path,
  );
}

async function plotConnector(c: ConnectorResult, path: string, title: string): Promise<void> {
  const rows = c.t.flatMap((t, i) => [
    { t, path: 'straight line', loss: c.line[i] },
    { t, path: 'connector', loss: c.connector[i] },
  ]);
  const lines = await vegaLitePanel({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    width: 380,
    height: 260,
    data: { values: rows },
    mark: 'line',
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'position along the path' },
      y: { field: 'loss', type: 'quantitative', title: 'loss' },
      color: { field: 'path', type: 'nominal' },
    },
  });
  const cosines = cosineMap(c.cosines, 'cosine similarity of the deviations from the line');
  await writePng(compose([[lines, cosines]], title), path, 2);
}

async function plotRadial(rr: RadialResult, path: string, title: string): Promise<void> {
  const rows = rr.loss.flatMap((ray, q) => ray.map((l, i) => ({ a: rr.a[i], ray: q, loss: l })));
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title,
      width: 460,
      height: 280,
      data: { values: rows },
      mark: { type: 'line', opacity: 0.35, strokeWidth: 1 },
      encoding: {
        x: { field: 'a', type: 'quantitative', title: 'distance along a random unit direction' },
        y: { field: 'loss', type: 'quantitative', title: 'toy loss' },
        detail: { field: 'ray', type: 'nominal' },
      },
    },
    path,
  );
}

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
  mkdirSync(out, { recursive: true });
  writeRunConfig(out, 'toy', { D, ns, steps, lr, success, seed, n }, gpu);
  const ds = sweepDims(D, ns, o.span);
  log(
    `(a) ${ns.length} wedge dimensions x ${ds.length} hyperplane dimensions = ${ns.length * ds.length} points trained together, ${steps} steps`,
  );
  const h = await hyperplaneSweep(gpu, { D, ns, ds, steps, lr, seed, success }, (s, best) =>
    log(`  step ${s}: best final/initial ${best.toExponential(2)}`),
  );
  h.ns.forEach((nn, i) => log(`  n = ${nn}: d_lim = ${h.dLim[i] ?? 'not reached'} (D - n = ${D - nn})`));
  await plotHyperplane(h, join(out, 'hyperplanes.png'));
  log(`(b) two optima (n = ${n}) and a connector of ${o.points} points`);
  const c = await toyConnector(gpu, { D, n, J: o.points, steps, lr, seed, dense: 101 });
  log(
    `  barrier: straight line ${c.barrierLine.toFixed(3)}, connector ${c.barrierConnector.toFixed(4)}; different wedges: ${c.differentWedges}`,
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

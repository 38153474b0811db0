// `loss-atlas connect A B [C ...]`: low-loss connectors between trained networks.
// - Fort & Jastrzebski 2019: points in the simplex of the optima (on the segment for two), each optimized with its
//   gradient (and step) kept in the hyperplane normal to the simplex, joined by straight segments. All points train
//   together as the K points of one manifold whose bases are the points themselves (identity coefficients: the basis
//   gradients are the per-point gradients). For m + 1 = 2 optima the path is evaluated densely against the straight
//   line, with the cosine similarities of the deviations; for 3 optima a triangle map of the loss over the connector
//   surface; for more, the centre of the simplex.
// - Garipov et al. 2018: a quadratic Bezier curve or a polygonal chain through one trainable bend (initialised on the
//   line), a batch of random t per step: the curve points are a B = 3 manifold [A, bend, B] with the curve's
//   coefficients, so the bend's gradient is the engine's basis gradient.
// The number of short directions at a point is estimated by the participation ratio tr(H)^2 / tr(H^2) of the Hessian
// (Hutchinson probes with the batched HVPs of `hessian`).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { batchStream, permutation, rng } from '../engine/random.ts';
import { Tensor } from '../engine/tensor.ts';
import { batchOf, type Dataset } from '../data/dataset.ts';
import { safetensorsBytes, type NamedTensor } from '../data/formats.ts';
import { Sequential } from '../models/sequential.ts';
import { paramShapes } from '../models/graph.ts';
import { backwardPoints, evaluateOnImages } from '../models/run.ts';
import { checkpointSpec, sameModel, type Checkpoint } from '../models/checkpoint.ts';
import { orthonormal, projectOut } from '../numerics/linalg.ts';
import { HostAdam } from '../numerics/adam.ts';
import { HvpEngine } from '../numerics/hvp.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { cosineMap, writePng } from '../viz/figure.ts';

const flatOf = (ws: Float32Array[]) => {
  const n = ws.reduce((a, w) => a + w.length, 0);
  const f = new Float32Array(n);
  let o = 0;
  for (const w of ws) {
    f.set(w, o);
    o += w.length;
  }
  return f;
};
const unflat = (f: Float32Array, sizes: number[]) => {
  let o = 0;
  return sizes.map((s) => f.slice(o, (o += s)));
};

/** Bezier (binom(k-1, j) t^j (1-t)^(k-1-j)) and polygonal-chain (max(0, 1 - |t (k-1) - j|)) coefficients of k nodes. */
export function curveCoefs(kind: 'bezier' | 'polychain', t: number, k = 3): number[] {
  const binom = (n: number, j: number) => {
    let r = 1;
    for (let i = 1; i <= j; i++) r = (r * (n - j + i)) / i;
    return r;
  };
  return Array.from({ length: k }, (_, j) =>
    kind === 'bezier' ? binom(k - 1, j) * t ** j * (1 - t) ** (k - 1 - j) : Math.max(0, 1 - Math.abs(t * (k - 1) - j)),
  );
}

/** Barycentric lattice of the m-simplex with resolution r: all (i_0..i_m) / r with sum r. */
export function simplexLattice(m: number, r: number): number[][] {
  const out: number[][] = [];
  const rec = (prefix: number[], left: number) => {
    if (prefix.length === m) {
      out.push([...prefix, left].map((v) => v / r));
      return;
    }
    for (let i = left; i >= 0; i--) rec([...prefix, i], left - i);
  };
  rec([], r);
  return out;
}

export interface ConnectOptions {
  method: 'fort' | 'bezier' | 'polychain';
  /** fort: interior points on the segment (2 optima) or the lattice resolution (3 optima) */
  points: number;
  steps: number;
  lr: number;
  batch: number;
  /** images per split for the dense evaluation */
  images: number;
  /** points of the dense evaluation along a path */
  dense: number;
  seed: number;
  /** Hutchinson probes for the short-direction counts (0: skip) */
  probes: number;
  /** Garipov: random t per step */
  tPerStep: number;
}

interface Trainer {
  model: Sequential;
  sizes: number[];
}

async function pointGrads(
  gpu: Gpu,
  t: Trainer,
  coefs: Float32Array,
  weights: number[],
  data: Dataset,
  idx: ArrayLike<number>,
): Promise<{ grads: Float32Array[]; loss: Float32Array }> {
  const { x, y } = batchOf(data, idx);
  const xt = Tensor.fromArray(gpu, [idx.length, ...data.shape], x, 'connect.x'),
    yt = Tensor.fromArray(gpu, [idx.length], y, 'connect.y', 'u32');
  for (const p of t.model.params) p.zeroGrad();
  const r = await backwardPoints(gpu, t.model, coefs, weights, xt, yt);
  xt.dispose();
  yt.dispose();
  const grads = await Promise.all(t.model.params.map((p) => p.grad!.read()));
  return { grads, loss: r.loss };
}

/** Rows of the basis gradient [B, ...] of every parameter, reassembled per basis vector (flat). */
function gradRows(grads: Float32Array[], sizes: number[], B: number): Float64Array[] {
  const P = sizes.reduce((a, s) => a + s, 0);
  return Array.from({ length: B }, (_, b) => {
    const out = new Float64Array(P);
    let o = 0;
    grads.forEach((g, t) => {
      const s = sizes[t];
      for (let i = 0; i < s; i++) out[o + i] = g[b * s + i];
      o += s;
    });
    return out;
  });
}

function writeBasis(model: Sequential, rows: Float32Array[], sizes: number[]): void {
  const B = rows.length;
  let o = 0;
  model.params.forEach((p, t) => {
    const s = sizes[t];
    const all = new Float32Array(B * s);
    rows.forEach((r, b) => all.set(r.subarray(o, o + s), b * s));
    p.basis.write(all);
    o += s;
  });
}

/** Fort's connector nodes: points of the simplex, each optimized within the hyperplane normal to it. */
async function fortNodes(
  gpu: Gpu,
  spec: ReturnType<typeof checkpointSpec>,
  optima: Float32Array[],
  lambdas: number[][],
  data: Dataset,
  o: ConnectOptions,
  log: (m: string) => void,
): Promise<Float32Array[]> {
  const shapes = paramShapes(spec.layers).map((s) => s.shape.reduce((a, b) => a * b, 1));
  const J = lambdas.length,
    P = optima[0].length;
  const starts = lambdas.map((l) => {
    const x = new Float32Array(P);
    l.forEach((c, i) => {
      for (let q = 0; q < P; q++) x[q] += c * optima[i][q];
    });
    return x;
  });
  const q = orthonormal(optima.slice(1).map((t) => Float64Array.from(t, (v, i) => v - optima[0][i])));
  const model = new Sequential(
    gpu,
    spec.layers,
    J,
    shapes.map((s) => new Float32Array(J * s)),
  );
  const eye = new Float32Array(J * J);
  for (let j = 0; j < J; j++) eye[j * J + j] = 1;
  const x = new Float32Array(J * P);
  starts.forEach((s, j) => x.set(s, j * P));
  const opt = new HostAdam(J * P, o.lr, o.steps);
  const r = rng(o.seed);
  const nextBatch = batchStream(data.n, o.batch, r);
  try {
    for (let s = 0; s < o.steps; s++) {
      const idx = nextBatch();
      writeBasis(
        model,
        starts.map((_, j) => x.subarray(j * P, (j + 1) * P)),
        shapes,
      );
      const { grads, loss } = await pointGrads(gpu, { model, sizes: shapes }, eye, new Array(J).fill(1), data, idx);
      const g = new Float64Array(J * P);
      gradRows(grads, shapes, J).forEach((row, j) => g.set(row, j * P));
      projectOut(g, P, q);
      opt.step(x, g);
      const dev = Float64Array.from(x, (v, i) => v - starts[Math.floor(i / P)][i % P]);
      projectOut(dev, P, q);
      for (let i = 0; i < x.length; i++) x[i] = starts[Math.floor(i / P)][i % P] + dev[i];
      if ((s + 1) % Math.max(1, Math.floor(o.steps / 5)) === 0)
        log(
          `  step ${s + 1}/${o.steps}: mean batch loss of the ${J} points ${(loss.reduce((a, b) => a + b, 0) / J).toFixed(4)}`,
        );
    }
  } finally {
    model.dispose();
  }
  return starts.map((_, j) => x.slice(j * P, (j + 1) * P));
}

/** Garipov et al.'s curve: trains the bend of a 3-node Bezier curve or polygonal chain between A and B. */
async function garipovBend(
  gpu: Gpu,
  spec: ReturnType<typeof checkpointSpec>,
  A: Float32Array,
  Bw: Float32Array,
  kind: 'bezier' | 'polychain',
  data: Dataset,
  o: ConnectOptions,
  log: (m: string) => void,
): Promise<Float32Array> {
  const shapes = paramShapes(spec.layers).map((s) => s.shape.reduce((a, b) => a * b, 1));
  const P = A.length;
  const bend = A.map((v, i) => 0.5 * (v + Bw[i])); // init_linear
  const model = new Sequential(
    gpu,
    spec.layers,
    3,
    shapes.map((s) => new Float32Array(3 * s)),
  );
  const opt = new HostAdam(P, o.lr, o.steps);
  const r = rng(o.seed + 1);
  const nextBatch = batchStream(data.n, o.batch, r);
  try {
    for (let s = 0; s < o.steps; s++) {
      const idx = nextBatch();
      writeBasis(model, [A, bend, Bw], shapes);
      const ts = Array.from({ length: o.tPerStep }, () => r());
      const coefs = Float32Array.from(ts.flatMap((t) => curveCoefs(kind, t)));
      const { grads, loss } = await pointGrads(
        gpu,
        { model, sizes: shapes },
        coefs,
        new Array(ts.length).fill(1 / ts.length),
        data,
        idx,
      );
      opt.step(bend, gradRows(grads, shapes, 3)[1]);
      if ((s + 1) % Math.max(1, Math.floor(o.steps / 5)) === 0)
        log(
          `  step ${s + 1}/${o.steps}: mean loss at the sampled t ${(loss.reduce((a, b) => a + b, 0) / ts.length).toFixed(4)}`,
        );
    }
  } finally {
    model.dispose();
  }
  return bend;
}

/** Losses and accuracies of points given as coefficient rows over node vectors, on train and test images. */
async function evalCombos(
  gpu: Gpu,
  spec: ReturnType<typeof checkpointSpec>,
  nodes: Float32Array[],
  coefs: number[][],
  data: { train: Dataset; test: Dataset },
  images: number,
  seed: number,
) {
  const shapes = paramShapes(spec.layers).map((s) => s.shape.reduce((a, b) => a * b, 1));
  const B = nodes.length;
  const model = new Sequential(
    gpu,
    spec.layers,
    B,
    shapes.map((s) => new Float32Array(B * s)),
  );
  writeBasis(model, nodes, shapes);
  model.bnMode = 'batch';
  const C = Float32Array.from(coefs.flat());
  try {
    const out: Record<string, number[]> = {};
    for (const split of ['train', 'test'] as const) {
      const ds = data[split];
      const pick = Array.from(permutation(ds.n, rng(seed + (split === 'train' ? 3 : 4)))).slice(
        0,
        Math.min(images, ds.n),
      );
      const r = await evaluateOnImages(gpu, model, C, ds, pick);
      out[`${split}_loss`] = Array.from(r.loss);
      out[`${split}_acc`] = Array.from(r.acc);
    }
    return out as { train_loss: number[]; train_acc: number[]; test_loss: number[]; test_acc: number[] };
  } finally {
    model.dispose();
  }
}

/** Participation ratio tr(H)^2 / tr(H^2) at each point (Hutchinson with Rademacher probes, batched HVPs). */
async function shortDirections(
  gpu: Gpu,
  spec: ReturnType<typeof checkpointSpec>,
  points: Float32Array[],
  data: Dataset,
  o: ConnectOptions,
): Promise<number[]> {
  const shapes = paramShapes(spec.layers).map((s) => s.shape.reduce((a, b) => a * b, 1));
  const pick = Array.from(permutation(data.n, rng(o.seed + 9))).slice(0, Math.min(200, data.n));
  const out: number[] = [];
  for (const p of points) {
    const hvp = new HvpEngine(gpu, spec, [{ weights: unflat(p, shapes), states: null }], 'batch', { data, pick }, 1e-3);
    const r = rng(o.seed + 11);
    // Rademacher probes, scaled to unit length for the finite difference (its step is eps along a unit vector); H v is
    // linear in v, so the products are scaled back
    const vs = Array.from({ length: o.probes }, () => Float64Array.from({ length: hvp.n }, () => (r() < 0.5 ? -1 : 1)));
    const scale = Math.sqrt(hvp.n);
    let hv: Float64Array[];
    try {
      hv = (
        await hvp.products(
          vs.map(() => [1]),
          vs.map((v) => v.map((x) => x / scale)),
        )
      ).hv.map((h) => h.map((x) => x * scale));
    } finally {
      hvp.dispose();
    }
    let tr = 0,
      tr2 = 0;
    hv.forEach((h, i) => {
      let a = 0,
        b = 0;
      for (let q = 0; q < h.length; q++) {
        a += vs[i][q] * h[q];
        b += h[q] * h[q];
      }
      tr += a / o.probes;
      tr2 += b / o.probes;
    });
    out.push((tr * tr) / tr2);
  }
  return out;
}

export interface ConnectResult {
  metrics: Record<string, unknown>;
}

export async function runConnect(
  gpu: Gpu,
  cks: Checkpoint[],
  data: { train: Dataset; test: Dataset },
  o: ConnectOptions,
  out: string,
  log: (m: string) => void,
): Promise<ConnectResult> {
  if (cks.length < 2) throw new Error('connect: give at least two checkpoints');
  if (cks.length > 11) throw new Error(`connect: at most 11 checkpoints (m = 10), got ${cks.length}`);
  for (const c of cks.slice(1)) sameModel(cks[0], c);
  if (o.method !== 'fort' && cks.length !== 2)
    throw new Error(`--method ${o.method}: joins two checkpoints, got ${cks.length}`);
  writeRunConfig(out, 'connect', { checkpoints: cks.map((c) => c.path), ...o }, gpu);
  const spec = checkpointSpec(cks[0], data.train.shape);
  if (spec.layers.some((l) => l.type === 'bn'))
    log(
      "note: batch norm is evaluated with each point's batch statistics along the paths (running statistics of a connector point do not exist)",
    );
  const optima = cks.map((c) => flatOf(c.weights));
  const m = cks.length - 1;
  const tDense = Array.from({ length: o.dense }, (_, i) => i / (o.dense - 1));
  const metrics: Record<string, unknown> = { method: o.method, m, checkpoints: cks.map((c) => c.path) };
  const names = paramShapes(spec.layers).map((s) => s.name),
    shapes = paramShapes(spec.layers).map((s) => s.shape);
  const saveNodes = (nodes: Float32Array[], file: string) => {
    const t: Record<string, NamedTensor> = {};
    nodes.forEach((n, j) =>
      unflat(
        n,
        shapes.map((s) => s.reduce((a, b) => a * b, 1)),
      ).forEach((w, i) => (t[`node${j}/${names[i]}`] = { shape: shapes[i], data: w })),
    );
    writeFileSync(join(out, file), safetensorsBytes(t, { model: cks[0].model, method: o.method }));
  };
  if (m === 1) {
    const [A, B] = optima;
    const line = await evalCombos(
      gpu,
      spec,
      [A, B],
      tDense.map((t) => [1 - t, t]),
      data,
      o.images,
      o.seed,
    );
    let nodes: Float32Array[],
      path: typeof line,
      extra: Record<string, unknown> = {};
    if (o.method === 'fort') {
      const ts = Array.from({ length: o.points }, (_, j) => (j + 1) / (o.points + 1));
      log(
        `optimizing ${o.points} points on the segment within the hyperplanes normal to it (${o.steps} steps, all points batched)`,
      );
      const inner = await fortNodes(
        gpu,
        spec,
        [A, B],
        ts.map((t) => [1 - t, t]),
        data.train,
        o,
        log,
      );
      nodes = [A, ...inner, B];
      // the polyline through the nodes, evaluated at the dense t (segment i from node i to i + 1)
      const S = nodes.length - 1;
      path = await evalCombos(
        gpu,
        spec,
        nodes,
        tDense.map((t) => {
          const s = Math.min(S - 1, Math.floor(t * S)),
            f = t * S - s;
          return nodes.map((_, j) => (j === s ? 1 - f : j === s + 1 ? f : 0));
        }),
        data,
        o.images,
        o.seed,
      );
      const dev = inner.map((p, j) => p.map((v, i) => v - ((1 - ts[j]) * A[i] + ts[j] * B[i])));
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
      extra = { cosines: dev.map((a) => dev.map((b) => cos(a, b))) };
      if (o.probes > 0) {
        log(`short directions (participation ratio of the Hessian, ${o.probes} probes) along the connector`);
        extra.short_directions = { t: [0, ...ts, 1], value: await shortDirections(gpu, spec, nodes, data.train, o) };
      }
    } else {
      log(`training the bend of a ${o.method} curve (${o.steps} steps, ${o.tPerStep} t per step batched)`);
      const bend = await garipovBend(gpu, spec, A, B, o.method, data.train, o, log);
      nodes = [A, bend, B];
      path = await evalCombos(
        gpu,
        spec,
        nodes,
        tDense.map((t) => curveCoefs(o.method as 'bezier' | 'polychain', t)),
        data,
        o.images,
        o.seed,
      );
    }
    saveNodes(nodes, 'connector.safetensors');
    const barrier = (l: number[]) => Math.max(...l) - (l[0] + l[l.length - 1]) / 2;
    Object.assign(metrics, {
      barrier_line_train: barrier(line.train_loss),
      barrier_path_train: barrier(path.train_loss),
      barrier_line_test: barrier(line.test_loss),
      barrier_path_test: barrier(path.test_loss),
      endpoint_train_loss: [line.train_loss[0], line.train_loss[o.dense - 1]],
      max_path_test_error: Math.max(...path.test_acc.map((a) => 1 - a)),
      ...('short_directions' in extra ? { short_directions: extra.short_directions } : {}),
    });
    writeFileSync(join(out, 'connect.json'), `${JSON.stringify({ t: tDense, line, path, ...extra })}\n`);
    await plotPaths(tDense, line, path, o.method, join(out, 'connect.png'));
    if (extra.cosines) await plotCosines(extra.cosines as number[][], join(out, 'deviations.png'));
  } else {
    const r = m === 2 ? Math.max(2, o.points) : 0;
    const lat = m === 2 ? simplexLattice(2, r) : [Array(m + 1).fill(1 / (m + 1))];
    const interior = lat.filter((l) => l.filter((v) => v > 0).length > 1 || m > 2);
    log(
      `optimizing ${interior.length} point(s) of the ${m}-simplex within the (D - ${m})-dimensional hyperplanes normal to it`,
    );
    const opt = await fortNodes(gpu, spec, optima, interior, data.train, o, log);
    const centre = Array(m + 1).fill(1 / (m + 1));
    const before = await evalCombos(gpu, spec, optima, [centre], data, o.images, o.seed);
    const optCentre = m === 2 ? null : opt[0];
    Object.assign(metrics, {
      centre_train_loss_before: before.train_loss[0],
      endpoint_train_loss: (
        await evalCombos(
          gpu,
          spec,
          optima,
          optima.map((_, i) => optima.map((__, j) => (i === j ? 1 : 0))),
          data,
          o.images,
          o.seed,
        )
      ).train_loss,
    });
    if (m === 2) {
      // the connector surface: the lattice nodes (vertices = the optima, others optimized), loss at every lattice node
      const nodes = lat.map((l) =>
        l.filter((v) => v > 0).length > 1 ? opt[interior.indexOf(l)] : optima[l.indexOf(1)],
      );
      const ev = await evalCombos(
        gpu,
        spec,
        nodes,
        nodes.map((_, j) => nodes.map((__, q) => (q === j ? 1 : 0))),
        data,
        o.images,
        o.seed,
      );
      const flat = await evalCombos(gpu, spec, optima, lat, data, o.images, o.seed);
      Object.assign(metrics, {
        max_connector_train_loss: Math.max(...ev.train_loss),
        max_flat_simplex_train_loss: Math.max(...flat.train_loss),
      });
      writeFileSync(join(out, 'connect.json'), `${JSON.stringify({ lattice: lat, connector: ev, flat })}\n`);
      await plotTriangle(lat, ev.train_loss, flat.train_loss, join(out, 'triangle.png'));
      saveNodes(nodes, 'connector.safetensors');
    } else {
      const after = await evalCombos(gpu, spec, [optCentre!], [[1]], data, o.images, o.seed);
      Object.assign(metrics, {
        centre_train_loss_after: after.train_loss[0],
        centre_test_acc_after: after.test_acc[0],
      });
      if (o.probes > 0)
        metrics.centre_short_directions = (await shortDirections(gpu, spec, [optCentre!], data.train, o))[0];
      saveNodes([optCentre!], 'connector.safetensors');
      writeFileSync(join(out, 'connect.json'), `${JSON.stringify({ before, after })}\n`);
    }
  }
  writeFileSync(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  return { metrics };
}

/**
 * The number of short directions in the middle of m-connectors against m (the paper's Fig. 4 claim that it grows with
 * m): for m = 1 .. M the centre of the first m + 1 optima's simplex is optimized within the (D - m)-dimensional
 * hyperplane normal to the simplex, and the participation ratio of the Hessian is estimated there, at the flat centre
 * and at the first optimum (m = 0). Resumes from msweep.json (one entry per finished m). Writes msweep.json,
 * short_directions.png and metrics.json into out.
 */
export async function runMSweep(
  gpu: Gpu,
  cks: Checkpoint[],
  data: { train: Dataset; test: Dataset },
  o: ConnectOptions,
  out: string,
  log: (m: string) => void,
): Promise<Record<string, unknown>> {
  if (cks.length < 3) throw new Error('connect --m-sweep: give at least three checkpoints (m = 1 .. count - 1)');
  if (cks.length > 11) throw new Error(`connect --m-sweep: at most 11 checkpoints (m = 10), got ${cks.length}`);
  if (o.probes < 1)
    throw new Error('connect --m-sweep: --probes must be at least 1 (Hutchinson probes for the short-direction count)');
  for (const c of cks.slice(1)) sameModel(cks[0], c);
  writeRunConfig(out, 'msweep', { checkpoints: cks.map((c) => c.path), ...o }, gpu);
  const spec = checkpointSpec(cks[0], data.train.shape);
  const optima = cks.map((c) => flatOf(c.weights));
  const file = join(out, 'msweep.json');
  type Row = {
    m: number;
    flat_centre_short: number;
    centre_short: number;
    flat_centre_train_loss: number;
    centre_train_loss: number;
    centre_test_acc: number;
  };
  const prev = existsSync(file)
    ? (JSON.parse(readFileSync(file, 'utf8')) as {
        probes: number;
        checkpoints: string[];
        optimum_short: number;
        rows: Row[];
      })
    : null;
  const same = prev && prev.probes === o.probes && prev.checkpoints.join() === cks.map((c) => c.path).join();
  const state = same
    ? prev
    : { probes: o.probes, checkpoints: cks.map((c) => c.path), optimum_short: NaN, rows: [] as Row[] };
  if (prev && !same) log(`note: ${file} is of other checkpoints or probes: starting over`);
  const save = () => writeFileSync(file, `${JSON.stringify(state, null, 1)}\n`);
  if (!Number.isFinite(state.optimum_short)) {
    log(`short directions at optimum 1 (${o.probes} probes)`);
    state.optimum_short = (await shortDirections(gpu, spec, [optima[0]], data.train, o))[0];
    save();
  }
  for (let m = 1; m < cks.length; m++) {
    if (state.rows.some((r) => r.m === m)) continue;
    const set = optima.slice(0, m + 1);
    const centre = Array(m + 1).fill(1 / (m + 1));
    log(
      `m = ${m}: optimizing the centre of ${m + 1} optima within the (D - ${m})-dimensional hyperplane normal to their simplex`,
    );
    const [opt] = await fortNodes(gpu, spec, set, [centre], data.train, o, log);
    const flat = Float32Array.from(opt, (_, i) => set.reduce((a, w) => a + w[i], 0) / (m + 1));
    const ev = await evalCombos(
      gpu,
      spec,
      [flat, opt],
      [
        [1, 0],
        [0, 1],
      ],
      data,
      o.images,
      o.seed,
    );
    const [flatShort, optShort] = await shortDirections(gpu, spec, [flat, opt], data.train, o);
    state.rows.push({
      m,
      flat_centre_short: flatShort,
      centre_short: optShort,
      flat_centre_train_loss: ev.train_loss[0],
      centre_train_loss: ev.train_loss[1],
      centre_test_acc: ev.test_acc[1],
    });
    log(
      `  m = ${m}: centre train loss ${ev.train_loss[0].toFixed(3)} -> ${ev.train_loss[1].toFixed(3)}; short directions ${optShort.toFixed(1)} (flat centre ${flatShort.toFixed(1)}, optimum ${state.optimum_short.toFixed(1)})`,
    );
    save();
  }
  state.rows.sort((a, b) => a.m - b.m);
  const rows = state.rows;
  // least-squares slope of the optimized centre's count against m: the paper predicts it grows
  const mm = rows.map((r) => r.m),
    ys = rows.map((r) => r.centre_short);
  const mbar = mm.reduce((a, b) => a + b, 0) / mm.length,
    ybar = ys.reduce((a, b) => a + b, 0) / ys.length;
  const slope =
    mm.reduce((a, m, i) => a + (m - mbar) * (ys[i] - ybar), 0) / mm.reduce((a, m) => a + (m - mbar) ** 2, 0);
  const metrics = {
    probes: o.probes,
    optimum_short_directions: state.optimum_short,
    m: mm,
    centre_short_directions: ys,
    flat_centre_short_directions: rows.map((r) => r.flat_centre_short),
    centre_train_loss: rows.map((r) => r.centre_train_loss),
    flat_centre_train_loss: rows.map((r) => r.flat_centre_train_loss),
    slope_per_m: slope,
  };
  writeFileSync(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: {
        text: 'short directions at the centre of m-connectors',
        subtitle: `participation ratio tr(H)^2 / tr(H^2) of the Hessian, ${o.probes} Hutchinson probes`,
      },
      width: 420,
      height: 280,
      data: {
        values: [
          { m: 0, n: state.optimum_short, at: 'optimum 1' },
          ...rows.flatMap((r) => [
            { m: r.m, n: r.centre_short, at: 'optimized centre' },
            { m: r.m, n: r.flat_centre_short, at: 'flat centre' },
          ]),
        ],
      },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'm', type: 'quantitative', title: 'm (m + 1 optima)', axis: { tickMinStep: 1 } },
        y: { field: 'n', type: 'quantitative', title: 'short directions' },
        color: { field: 'at', type: 'nominal', title: null },
      },
    },
    join(out, 'short_directions.png'),
  );
  return metrics;
}

async function plotPaths(
  t: number[],
  line: Record<string, number[]>,
  path: Record<string, number[]>,
  method: string,
  file: string,
): Promise<void> {
  const rows = t.flatMap((x, i) => [
    { t: x, path: 'straight line', split: 'train', loss: line.train_loss[i] },
    { t: x, path: 'straight line', split: 'test', loss: line.test_loss[i] },
    { t: x, path: `${method} connector`, split: 'train', loss: path.train_loss[i] },
    { t: x, path: `${method} connector`, split: 'test', loss: path.test_loss[i] },
  ]);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `loss between two optima: straight line vs ${method} connector`,
      width: 480,
      height: 300,
      data: { values: rows },
      mark: 'line',
      encoding: {
        x: { field: 't', type: 'quantitative', title: 'position along the path' },
        y: { field: 'loss', type: 'quantitative', title: 'cross-entropy' },
        color: { field: 'path', type: 'nominal' },
        strokeDash: { field: 'split', type: 'nominal' },
      },
    },
    file,
  );
}

async function plotCosines(c: number[][], file: string): Promise<void> {
  await writePng(cosineMap(c, 'cosine similarity of the deviations from the straight line'), file, 2);
}

/** The 2-simplex in the plane: vertex i at angle 90 + 120 i degrees; one dot per lattice point, coloured by loss. */
async function plotTriangle(lat: number[][], conn: number[], flat: number[], file: string): Promise<void> {
  const V = [0, 1, 2].map((i) => [
    Math.cos(((90 + 120 * i) * Math.PI) / 180),
    Math.sin(((90 + 120 * i) * Math.PI) / 180),
  ]);
  const xy = (l: number[]) => [l.reduce((a, c, i) => a + c * V[i][0], 0), l.reduce((a, c, i) => a + c * V[i][1], 0)];
  const rows = lat.flatMap((l, k) => [
    { x: xy(l)[0], y: xy(l)[1], loss: Math.max(conn[k], 1e-4), which: 'm-connector (optimized)' },
    { x: xy(l)[0], y: xy(l)[1], loss: Math.max(flat[k], 1e-4), which: 'flat simplex of the optima' },
  ]);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'train loss over the simplex of three optima',
      data: { values: rows },
      facet: { column: { field: 'which', type: 'nominal', title: null } },
      spec: {
        width: 260,
        height: 240,
        mark: { type: 'circle', size: 260 },
        encoding: {
          x: { field: 'x', type: 'quantitative', axis: null },
          y: { field: 'y', type: 'quantitative', axis: null },
          color: { field: 'loss', type: 'quantitative', scale: { type: 'log', scheme: 'viridis' } },
        },
      },
    },
    file,
  );
}

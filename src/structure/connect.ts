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
import { cosine } from '../numerics/linalg.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { permutation, rng } from '../engine/random.ts';
import type { Dataset } from '../data/dataset.ts';
import { safetensorsBytes, type NamedTensor } from '../data/formats.ts';
import { Model } from '../models/model.ts';
import { paramShapes, stateShapes } from '../models/graph.ts';
import { evaluateOnImages } from '../models/run.ts';
import { checkpointSpec, sameModel, type Checkpoint } from '../models/checkpoint.ts';
import { HvpEngine } from '../numerics/hvp.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { plotPaths, plotCosines, plotTriangle } from './connect-plots.ts';
import { flatOf, unflat, writeBasis, fortNodes, garipovBend, curveCoefs, type ConnectOptions } from './connectors.ts';
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

/** Losses and accuracies of points given as coefficient rows over node vectors, on train and test images. */
export async function evalCombos(
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
  const model = new Model(
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
export async function shortDirections(
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
  if (stateShapes(spec.layers).length)
    log(
      "note: batch norm is evaluated with each point's batch statistics along the paths" +
        ' (running statistics of a connector point do not exist)',
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
        `optimizing ${o.points} points on the segment within the hyperplanes normal to it` +
          ` (${o.steps} steps, all points batched)`,
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
      extra = { cosines: dev.map((a) => dev.map((b) => cosine(a, b))) };
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
      `optimizing ${interior.length} point(s) of the ${m}-simplex` +
        ` within the (D - ${m})-dimensional hyperplanes normal to it`,
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

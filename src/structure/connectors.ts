// The connector algorithms: Fort & Jastrzebski's hyperplane-constrained nodes and Garipov et al.'s Bezier / polygonal
// chains, trained as points of a manifold whose basis tensors are the end points and the nodes.
import type { Gpu } from '../engine/device.ts';
import { batchStream, rng } from '../engine/random.ts';
import { Tensor } from '../engine/tensor.ts';
import { batchOf, type Dataset } from '../data/dataset.ts';
import { Model } from '../models/model.ts';
import { paramShapes } from '../models/graph.ts';
import { backwardPoints } from '../models/run.ts';
import type { checkpointSpec } from '../models/checkpoint.ts';
import { orthonormal, projectOut } from '../numerics/linalg.ts';
import { HostAdam } from '../numerics/adam.ts';
import { checkFinite } from '../run/diverged.ts';

export const flatOf = (ws: Float32Array[]) => {
  const n = ws.reduce((a, w) => a + w.length, 0);
  const f = new Float32Array(n);
  let o = 0;
  for (const w of ws) {
    f.set(w, o);
    o += w.length;
  }
  return f;
};

export const unflat = (f: Float32Array, sizes: number[]) => {
  let o = 0;
  return sizes.map((s) => f.slice(o, (o += s)));
};

export interface Trainer {
  model: Model;
  sizes: number[];
}

export async function pointGrads(
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
export function gradRows(grads: Float32Array[], sizes: number[], B: number): Float64Array[] {
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

export function writeBasis(model: Model, rows: Float32Array[], sizes: number[]): void {
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
export async function fortNodes(
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
  const model = new Model(
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
      checkFinite(loss, {
        what: 'connect (the hyperplane points)',
        step: s + 1,
        advice: `a lower --lr than ${o.lr}`,
        label: (j) => `point ${j + 1}`,
      });
      const g = new Float64Array(J * P);
      gradRows(grads, shapes, J).forEach((row, j) => g.set(row, j * P));
      projectOut(g, P, q);
      opt.step(x, g);
      const dev = Float64Array.from(x, (v, i) => v - starts[Math.floor(i / P)][i % P]);
      projectOut(dev, P, q);
      for (let i = 0; i < x.length; i++) x[i] = starts[Math.floor(i / P)][i % P] + dev[i];
      if ((s + 1) % Math.max(1, Math.floor(o.steps / 5)) === 0)
        log(
          `  step ${s + 1}/${o.steps}: mean batch loss of the ${J} points` +
            ` ${(loss.reduce((a, b) => a + b, 0) / J).toFixed(4)}`,
        );
    }
  } finally {
    model.dispose();
  }
  return starts.map((_, j) => x.slice(j * P, (j + 1) * P));
}

/** Garipov et al.'s curve: trains the bend of a 3-node Bezier curve or polygonal chain between A and B. */
export async function garipovBend(
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
  const model = new Model(
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
      checkFinite(loss, {
        what: `connect (the bend of the ${kind} curve)`,
        step: s + 1,
        advice: `a lower --lr than ${o.lr}`,
        label: (i) => `t = ${ts[i].toFixed(3)}`,
      });
      opt.step(bend, gradRows(grads, shapes, 3)[1]);
      if ((s + 1) % Math.max(1, Math.floor(o.steps / 5)) === 0)
        log(
          `  step ${s + 1}/${o.steps}: mean loss at the sampled t` +
            ` ${(loss.reduce((a, b) => a + b, 0) / ts.length).toFixed(4)}`,
        );
    }
  } finally {
    model.dispose();
  }
  return bend;
}

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

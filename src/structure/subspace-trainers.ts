// The two ways to train theta = theta0 + P z for many d at once: P stored as basis tensors (dense), or only its
// nonzeros (sparse, WGSL kernels expanding theta0 + P z and projecting P^T g).
import type { Gpu } from '../engine/device.ts';
import { Manifold } from '../engine/manifold.ts';
import { crossEntropy } from '../engine/ops/loss.ts';
import { Tape } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import { randn, rng } from '../engine/random.ts';
import type { Dataset } from '../data/dataset.ts';
import { Model } from '../models/model.ts';
import { paramShapes } from '../models/graph.ts';
import type { ModelDef } from '../models/graph.ts';
import { fold } from '../engine/kernel.ts';
import { sparseExpandKernel, sparseProjectKernel } from './sparse.wgsl.ts';
import { evaluateOnImages } from '../models/run.ts';
import { HostAdam } from '../numerics/adam.ts';
import type { SubspaceOptions } from './subspace.ts';

/**
 * The nonzeros of the seeded sparse projection, column by column: column j has round(sqrt(D)) entries of
 * +-1/sqrt(that) at random rows (a row drawn twice holds two entries, which add).
 */
export function sparseEntries(
  D: number,
  d: number,
  seed: number,
): { row: Uint32Array; col: Uint32Array; val: Float32Array } {
  const r = rng(seed);
  const nz = Math.max(1, Math.round(Math.sqrt(D)));
  const row = new Uint32Array(d * nz),
    col = new Uint32Array(d * nz),
    val = new Float32Array(d * nz);
  for (let j = 0, e = 0; j < d; j++) {
    for (let q = 0; q < nz; q++, e++) {
      row[e] = Math.floor(r() * D);
      col[e] = j;
      val[e] = (r() < 0.5 ? -1 : 1) / Math.sqrt(nz);
    }
  }
  return { row, col, val };
}

/**
 * The rows lo .. lo + n - 1 of the sparse P (one parameter tensor) by rows (CSR: rowPtr [n + 1], col, val) and by
 * columns (CSC: colPtr [dmax + 1], row (local), val), from `byRow`, the entry indices sorted by row. Index and value
 * arrays hold at least one element (a binding cannot be empty).
 */
export function sparseBlock(
  e: ReturnType<typeof sparseEntries>,
  byRow: ArrayLike<number>,
  lo: number,
  n: number,
  dMax: number,
) {
  let a = 0;
  while (a < byRow.length && e.row[byRow[a]] < lo) a++;
  let b = a;
  while (b < byRow.length && e.row[byRow[b]] < lo + n) b++;
  const m = b - a,
    size = Math.max(1, m);
  const rowPtr = new Uint32Array(n + 1),
    colPtr = new Uint32Array(dMax + 1);
  const col = new Uint32Array(size),
    rval = new Float32Array(size),
    row = new Uint32Array(size),
    cval = new Float32Array(size);
  for (let q = 0; q < m; q++) {
    const i = byRow[a + q];
    rowPtr[e.row[i] - lo + 1]++;
    colPtr[e.col[i] + 1]++;
    col[q] = e.col[i];
    rval[q] = e.val[i];
  }
  for (let i = 0; i < n; i++) rowPtr[i + 1] += rowPtr[i];
  for (let j = 0; j < dMax; j++) colPtr[j + 1] += colPtr[j];
  const next = colPtr.slice(0, dMax); // counting sort by column, stable in row order
  for (let q = 0; q < m; q++) {
    const i = byRow[a + q],
      at = next[e.col[i]]++;
    row[at] = e.row[i] - lo;
    cval[at] = e.val[i];
  }
  return { rowPtr, col, rval, colPtr, row, cval };
}

/** Columns of P (unit norm for dense), flattened per parameter tensor: basis rows 1..d of each tensor. */
export function projection(D: number, d: number, kind: SubspaceOptions['projection'], seed: number): Float32Array[] {
  const cols = Array.from({ length: d }, () => new Float32Array(D));
  if (kind === 'sparse' || kind === 'sparse-basis') {
    const e = sparseEntries(D, d, seed);
    for (let q = 0; q < e.row.length; q++) cols[e.col[q]][e.row[q]] += e.val[q];
    return cols;
  }
  const r = rng(seed);
  cols.forEach((p, j) => {
    if (kind === 'identity') p[j] = 1;
    else {
      let s = 0;
      for (let i = 0; i < D; i++) {
        p[i] = randn(r);
        s += p[i] * p[i];
      }
      const n = Math.sqrt(s);
      for (let i = 0; i < D; i++) p[i] /= n;
    }
  });
  return cols;
}

/** One way of training the K points z_k (k = one d of the sweep): a step on a batch, evaluation, the final
 * coefficients. */
export interface SubspaceTrainer {
  /** Forward + backward of the K points on the batch and one Adam step on z; returns the batch losses. */
  step(x: Tensor, y: Tensor): Promise<Float32Array>;
  evaluate(d: Dataset, pick: number[]): Promise<{ loss: Float32Array; acc: Float32Array }>;
  /** [K, 1 + dmax]: 1, then z_k (zeros beyond d_k) */
  coefs(): Float32Array;
  dispose(): void;
}

/**
 * P held as basis tensors: the basis is [theta0, p_1 .. p_dmax], point k has coefficients (1, z_k, 0 ...), and dL/dz is
 * the engine's coefficient gradient (a tape without basis gradients). Memory (1 + dmax) * D.
 */
export function basisTrainer(
  gpu: Gpu,
  layers: ModelDef,
  theta0: Float32Array[],
  cols: Float32Array[],
  ds: number[],
  lr: number,
): SubspaceTrainer {
  const B = 1 + cols.length,
    K = ds.length;
  const big = theta0.findIndex((t) => B * t.length * 4 > gpu.bindingLimit);
  if (big >= 0)
    throw new Error(
      `--projection dense: ${paramShapes(layers)[big].name} (${theta0[big].length} weights)` +
        ` with ${B} basis tensors needs ${B * theta0[big].length * 4} bytes in one binding,` +
        ` over the adapter's limit of ${gpu.bindingLimit}` +
        ` (all of P: ${((4 * B * theta0.reduce((a, t) => a + t.length, 0)) / 2 ** 30).toFixed(2)} GiB);` +
        ` use --projection sparse (P never stored densely) or a smaller largest d`,
    );
  let off = 0;
  const model = new Model(
    gpu,
    layers,
    B,
    theta0.map((t) => {
      const all = new Float32Array(B * t.length);
      all.set(t);
      cols.forEach((c, j) => all.set(c.subarray(off, off + t.length), (1 + j) * t.length));
      off += t.length;
      return all;
    }),
  );
  const coefs = new Float32Array(K * B),
    mask = new Uint8Array(K * B);
  ds.forEach((d, k) => {
    coefs[k * B] = 1;
    for (let j = 1; j <= d; j++) mask[k * B + j] = 1;
  });
  const zopt = new HostAdam(K * B, lr, 0); // constant learning rate, as the direct baseline's Adam
  return {
    async step(x, y) {
      const manifold = new Manifold(gpu, K, B, coefs);
      const tape = new Tape(gpu, manifold, true, false); // only dL/dz: no basis gradients
      try {
        const out = crossEntropy({ gpu, manifold, tape }, model.forward({ gpu, manifold, tape }, x), y);
        tape.backward(new Array(K).fill(1));
        const [dc, l] = await Promise.all([manifold.dcoef!.read(), out.read()]);
        zopt.step(coefs, dc, mask);
        return l.loss;
      } finally {
        tape.dispose();
        manifold.dispose();
      }
    },
    evaluate: (d, pick) => evaluateOnImages(gpu, model, coefs, d, pick),
    coefs: () => coefs,
    dispose: () => model.dispose(),
  };
}

/**
 * The sparse P never stored densely: each step builds every point's weights theta_k = theta0 + P z_k with a kernel
 * over P's nonzeros (by rows), trains them as K points with their own weights (basis = the K weight vectors,
 * identity coefficients, so the basis gradients are the per-point gradients), and takes dL/dz_k = P^T g_k with a
 * kernel over the nonzeros by columns. Memory: K * D for the weights and their gradients, 2 * nnz(P) for P.
 */
export function sparseTrainer(
  gpu: Gpu,
  layers: ModelDef,
  theta0: Float32Array[],
  entries: ReturnType<typeof sparseEntries>,
  dMax: number,
  ds: number[],
  lr: number,
): SubspaceTrainer {
  const K = ds.length;
  const sizes = theta0.map((t) => t.length);
  const eye = new Float32Array(K * K);
  for (let k = 0; k < K; k++) eye[k * K + k] = 1;
  const model = new Model(
    gpu,
    layers,
    K,
    sizes.map((n) => new Float32Array(K * n)),
  );
  const z = new Float32Array(K * dMax),
    mask = new Uint8Array(K * dMax);
  ds.forEach((d, k) => mask.fill(1, k * dMax, k * dMax + d));
  const zopt = new HostAdam(K * dMax, lr, 0);
  const owned: Tensor[] = [];
  const keep = (t: Tensor) => {
    owned.push(t);
    return t;
  };
  const zT = keep(new Tensor(gpu, [K, dMax], 'sub.z'));
  const dzT = keep(new Tensor(gpu, [K, dMax], 'sub.dz'));
  const dimsT = keep(Tensor.fromArray(gpu, [K], ds, 'sub.dims', 'u32'));
  // per parameter tensor: theta0, its rows of P by rows (CSR) and by columns (CSC), local row indices
  const byRow = Uint32Array.from(entries.row.keys()).sort((a, b) => entries.row[a] - entries.row[b] || a - b);
  let off = 0;
  const parts = theta0.map((t, ti) => {
    const n = t.length,
      blk = sparseBlock(entries, byRow, off, n, dMax);
    off += n;
    const label = `sub.P(${model.params[ti].name})`;
    const u32 = (a: Uint32Array, name: string) => keep(Tensor.fromArray(gpu, [a.length], a, `${label}.${name}`, 'u32'));
    const f32 = (a: Float32Array, name: string) => keep(Tensor.fromArray(gpu, [a.length], a, `${label}.${name}`));
    return {
      n,
      theta0: keep(Tensor.fromArray(gpu, [n], t, 'sub.theta0')),
      rowPtr: u32(blk.rowPtr, 'rowPtr'),
      col: u32(blk.col, 'col'),
      rval: f32(blk.rval, 'rval'),
      colPtr: u32(blk.colPtr, 'colPtr'),
      row: u32(blk.row, 'row'),
      cval: f32(blk.cval, 'cval'),
    };
  });
  const expandK = sparseExpandKernel(),
    projectK = sparseProjectKernel();
  const expand = () => {
    gpu.write(zT.buffer, z);
    parts.forEach((q, ti) =>
      gpu.dispatch({
        kernel: expandK,
        buffers: {
          theta0: q.theta0.buffer,
          rowPtr: q.rowPtr.buffer,
          col: q.col.buffer,
          val: q.rval.buffer,
          z: zT.buffer,
          dims: dimsT.buffer,
          theta: model.params[ti].basis.buffer,
        },
        uniforms: { K, S: q.n, dmax: dMax },
        groups: fold(Math.ceil((K * q.n) / 256)),
        what: `theta0 + P z of ${model.params[ti].name} (K=${K})`,
      }),
    );
  };
  return {
    async step(x, y) {
      expand();
      const manifold = new Manifold(gpu, K, K, eye);
      const tape = new Tape(gpu, manifold);
      try {
        const out = crossEntropy({ gpu, manifold, tape }, model.forward({ gpu, manifold, tape }, x), y);
        tape.backward(new Array(K).fill(1));
        parts.forEach((q, ti) =>
          gpu.dispatch({
            kernel: projectK,
            buffers: {
              colPtr: q.colPtr.buffer,
              row: q.row.buffer,
              val: q.cval.buffer,
              g: model.params[ti].ensureGrad().buffer,
              dims: dimsT.buffer,
              dz: dzT.buffer,
            },
            uniforms: { K, S: q.n, dmax: dMax, accumulate: ti > 0 ? 1 : 0 },
            groups: fold(Math.ceil((K * dMax) / 256)),
            what: `P^T dL/dtheta of ${model.params[ti].name} (K=${K})`,
          }),
        );
        const [dz, l] = await Promise.all([dzT.read(), out.read()]);
        zopt.step(z, dz, mask);
        return l.loss;
      } finally {
        for (const p of model.params) p.zeroGrad();
        tape.dispose();
        manifold.dispose();
      }
    },
    evaluate(d, pick) {
      expand();
      return evaluateOnImages(gpu, model, eye, d, pick);
    },
    coefs() {
      const c = new Float32Array(K * (1 + dMax));
      for (let k = 0; k < K; k++) {
        c[k * (1 + dMax)] = 1;
        c.set(z.subarray(k * dMax, (k + 1) * dMax), k * (1 + dMax) + 1);
      }
      return c;
    },
    dispose() {
      model.dispose();
      for (const t of owned) t.dispose();
    },
  };
}

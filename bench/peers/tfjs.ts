// The MPO step in TensorFlow.js, formulated as the reference does it: a loop over the sampled cells, each
// with its own materialized weights W = origin + scale * (dj * right + di * up_orth), its own forward and
// backward (tf.variableGrads), gradients accumulated, then Adam with global-norm clipping.
// Backends: 'cpu', 'wasm' (single-threaded in Node; convolutions get a user-level filter gradient, which the
// shipped wasm backend lacks), 'webgpu' (on the same Dawn adapter as loss-atlas). Used by bench/mpo.ts, which first
// checks that the losses equal loss-atlas's.
import * as tf from '@tensorflow/tfjs';
import { INPUT, type ModelDef, toGraph } from '../../src/models/graph.ts';
import { type NodeOp, type OpType, rowOf } from '../../src/models/layers.ts';

export type TfBackend = 'cpu' | 'wasm' | 'webgpu';

/** Loads and selects a backend. webgpu registers itself only when navigator.gpu exists at import time. */
export async function useBackend(b: TfBackend): Promise<void> {
  if (b === 'webgpu') {
    const { create, globals } = await import('webgpu');
    Object.assign(globalThis, globals);
    if (!(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) {
      Object.defineProperty(globalThis, 'navigator', { value: { gpu: create([]) }, configurable: true });
    }
    await import('@tensorflow/tfjs-backend-webgpu');
  } else if (b === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
  }
  if (!(await tf.setBackend(b))) throw new Error(`tfjs backend ${b} could not be initialised`);
  customConv = b === 'wasm';
  await tf.ready();
}

/** Pooling matrix [H*W, OH*OW] of PyTorch's adaptive average pool (overlapping bins). */
function adaptiveMatrix(H: number, W: number, OH: number, OW: number): tf.Tensor2D {
  const m = new Float32Array(H * W * OH * OW);
  for (let oh = 0; oh < OH; oh++)
    for (let ow = 0; ow < OW; ow++) {
      const h0 = Math.floor((oh * H) / OH),
        h1 = Math.ceil(((oh + 1) * H) / OH);
      const w0 = Math.floor((ow * W) / OW),
        w1 = Math.ceil(((ow + 1) * W) / OW);
      for (let h = h0; h < h1; h++)
        for (let w = w0; w < w1; w++) m[(h * W + w) * OH * OW + oh * OW + ow] = 1 / ((h1 - h0) * (w1 - w0));
    }
  return tf.tensor2d(m, [H * W, OH * OW]);
}

let customConv = false;

/**
 * tfjs-wasm ships no Conv2DBackpropFilter kernel: there, convolutions take a user-level gradient (input gradient
 * through conv2dTranspose, filter gradient as a sum over the kernel taps of shifted-input^T x dy matmuls).
 * Stride 1 only (the MPO nets' convolutions).
 */
function conv2dCustom(x: tf.Tensor4D, w: tf.Tensor4D, pad: number): tf.Tensor4D {
  const f = tf.customGrad(((xx: tf.Tensor, ww: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xx, ww]);
    const y = tf.conv2d(
      xx as tf.Tensor4D,
      ww as tf.Tensor4D,
      1,
      pad
        ? [
            [0, 0],
            [pad, pad],
            [pad, pad],
            [0, 0],
          ]
        : 'valid',
    );
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const [KH, KW, Cin, Cout] = ws.shape;
        const [N, OH, OW] = dy.shape;
        const dx = tf.conv2dTranspose(
          dy as tf.Tensor4D,
          ws,
          xs.shape,
          1,
          pad
            ? ([
                [0, 0],
                [pad, pad],
                [pad, pad],
                [0, 0],
              ] as unknown as number)
            : 'valid',
        );
        const xp = pad
          ? tf.pad(xs, [
              [0, 0],
              [pad, pad],
              [pad, pad],
              [0, 0],
            ])
          : xs;
        const dy2 = tf.reshape(dy, [N * OH * OW, Cout]);
        const taps: tf.Tensor[] = [];
        for (let kh = 0; kh < KH; kh++)
          for (let kw = 0; kw < KW; kw++) {
            const sl = tf.reshape(tf.slice(xp, [0, kh, kw, 0], [N, OH, OW, Cin]), [N * OH * OW, Cin]);
            taps.push(tf.matMul(sl, dy2, true, false));
          }
        return [dx, tf.reshape(tf.stack(taps), [KH, KW, Cin, Cout])];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x, w) as tf.Tensor4D;
}

const pads = (p: number | undefined) =>
  p
    ? ([
        [0, 0],
        [p, p],
        [p, p],
        [0, 0],
      ] as unknown as number)
    : 'valid';
type TfOp<T extends OpType> = (l: Extract<NodeOp, { type: T }>, x: tf.Tensor[], p: tf.Tensor[]) => tf.Tensor;

/** Each op of the layer table in tfjs, NHWC, with parameters in loss-atlas's layouts (conv [Cout, Cin, KH, KW],
 * linear [O, F]). */
const TF: { [T in OpType]: TfOp<T> } = {
  conv: (l, [h], [w0, b]) => {
    if ((l.groups ?? 1) > 1) throw new Error('tfjs peer: grouped convolutions are not supported');
    const w = tf.transpose(w0, [2, 3, 1, 0]) as tf.Tensor4D;
    const y =
      customConv && (l.stride ?? 1) === 1
        ? conv2dCustom(h as tf.Tensor4D, w, l.pad ?? 0)
        : tf.conv2d(h as tf.Tensor4D, w, l.stride ?? 1, pads(l.pad) as 'valid');
    return b ? tf.add(y, b) : y;
  },
  linear: (_l, [h], [w, b]) => {
    const y = tf.matMul(h as tf.Tensor2D, w as tf.Tensor2D, false, true);
    return b ? tf.add(y, b) : y;
  },
  bn: (l, [h], [g0, b]) => {
    const g = tf.add(g0, l.reparam ? 1 : 0);
    const { mean, variance } = tf.moments(h, [0, 1, 2]);
    return tf.add(tf.mul(tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, l.eps ?? 1e-5))), g), b);
  },
  relu: (_l, [h]) => tf.relu(h),
  leakyrelu: (l, [h]) => tf.leakyRelu(h, l.alpha),
  tanh: (_l, [h]) => tf.tanh(h),
  sigmoid: (_l, [h]) => tf.sigmoid(h),
  gelu: (l, [h]) => {
    if ((l.form ?? 'erf') === 'tanh')
      return tf.mul(
        tf.mul(h, 0.5),
        tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(h, tf.mul(0.044715, tf.pow(h, 3)))))),
      );
    return tf.mul(tf.mul(h, 0.5), tf.add(1, tf.erf(tf.mul(h, Math.SQRT1_2))));
  },
  silu: (_l, [h]) => tf.mul(h, tf.sigmoid(h)),
  maxpool: (l, [h]) => tf.maxPool(h as tf.Tensor4D, l.k, l.stride ?? l.k, pads(l.pad) as 'valid'),
  avgpool: (l, [h]) => tf.avgPool(h as tf.Tensor4D, l.k, l.stride ?? l.k, 'valid'),
  adaptive: (l, [h]) => {
    const [N, H, W, C] = h.shape;
    const p = tf.matMul(
      tf.transpose(tf.reshape(h, [N, H * W, C]), [0, 2, 1]),
      adaptiveMatrix(H, W, l.size[0], l.size[1]),
    );
    return tf.transpose(tf.reshape(p, [N, C, l.size[0], l.size[1]]), [0, 2, 3, 1]);
  },
  pad: (l, [h]) =>
    tf.pad(h, [
      [0, 0],
      [l.pads[0], l.pads[2]],
      [l.pads[1], l.pads[3]],
      [0, 0],
    ]),
  // loss-atlas's [C, H, W] order, so that the dense weights are shared as they are
  flatten: (_l, [h]) => {
    const [N, H, W, C] = h.shape;
    return tf.reshape(tf.transpose(h, [0, 3, 1, 2]), [N, C * H * W]);
  },
  dropout: (_l, [h]) => h,
  add: (_l, [a, b]) => tf.add(a, b),
};

/** Forward of a model (its graph's nodes in order) in NHWC, parameters as paramShapes lists them. */
export function forward(model: ModelDef, params: tf.Tensor[], x: tf.Tensor4D): tf.Tensor2D {
  const g = toGraph(model);
  const vals = new Map<string, tf.Tensor>([[INPUT, x]]);
  let pi = 0;
  for (const n of g.nodes) {
    const np = rowOf(n.op).params?.(n.op as never, n.name).length ?? 0;
    const f = TF[n.op.type] as TfOp<OpType>;
    vals.set(
      n.name,
      f(
        n.op as never,
        n.inputs.map((i) => vals.get(i)!),
        params.slice(pi, (pi += np)),
      ),
    );
  }
  return vals.get(g.output) as tf.Tensor2D;
}

export function meanCE(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, logits.shape[1]), logits) as tf.Scalar;
}

export interface TfPlane {
  origin: tf.Variable[];
  right: tf.Variable[];
  up: tf.Variable[];
  scale: tf.Variable;
}

export function tfPlane(
  v: { origin: Float32Array[]; right: Float32Array[]; up: Float32Array[]; scale: number },
  shapes: number[][],
): TfPlane {
  const mk = (a: Float32Array[]) => a.map((d, i) => tf.variable(tf.tensor(d, shapes[i])));
  return { origin: mk(v.origin), right: mk(v.right), up: mk(v.up), scale: tf.variable(tf.scalar(v.scale)) };
}

/** The reference's up_orthogonal point: origin + scale * (dj * (right - origin) + di * |r| / |u'| * u'). */
function pointWeights(p: TfPlane, di: number, dj: number): tf.Tensor[] {
  const r = p.right.map((v, i) => tf.sub(v, p.origin[i]));
  // a chain of adds, not tf.addN: webgpu's AddN binds one buffer per input (over its 8-buffer limit)
  const dot = (a: tf.Tensor[], b: tf.Tensor[]) =>
    a.map((x, i) => tf.sum(tf.mul(x, b[i]))).reduce((s, t) => tf.add(s, t)) as tf.Scalar;
  const rr = dot(r, r);
  const alpha = tf.div(dot(p.up, r), rr);
  const u1 = p.up.map((u, i) => tf.sub(u, tf.mul(alpha, r[i])));
  const f = tf.div(tf.sqrt(rr), tf.sqrt(dot(u1, u1)));
  return p.origin.map((o, i) => tf.add(o, tf.mul(p.scale, tf.add(tf.mul(dj, r[i]), tf.mul(tf.mul(di, f), u1[i])))));
}

/** Per-cell mean CE at the plane's current weights (for checking against loss-atlas). Async: webgpu cannot
 * read synchronously in Node. */
export async function cellLosses(
  layers: ModelDef,
  p: TfPlane,
  offsets: [number, number][],
  xNCHW: tf.Tensor4D,
  labels: tf.Tensor1D,
): Promise<number[]> {
  const out: number[] = [];
  for (const [di, dj] of offsets) {
    const l = tf.tidy(() =>
      meanCE(forward(layers, pointWeights(p, di, dj), tf.transpose(xNCHW, [0, 2, 3, 1]) as tf.Tensor4D), labels),
    );
    out.push((await l.data())[0]);
    l.dispose();
  }
  return out;
}

/** One reference-style MPO step: a forward and backward per cell, gradients summed, clipped, Adam. */
export async function tfMpoStep(
  layers: ModelDef,
  p: TfPlane,
  opt: tf.Optimizer,
  offsets: [number, number][],
  nGood: number,
  xNCHW: tf.Tensor4D,
  labels: tf.Tensor1D,
  o: { negCoef: number; clamp: number; clipNorm: number },
): Promise<void> {
  const vars = [...p.origin, ...p.right, ...p.up, p.scale];
  const nBad = offsets.length - nGood;
  const x = tf.transpose(xNCHW, [0, 2, 3, 1]) as tf.Tensor4D;
  let acc: tf.Tensor[] | null = null;
  offsets.forEach(([di, dj], k) => {
    const { grads } = tf.variableGrads(() => {
      const ce = meanCE(forward(layers, pointWeights(p, di, dj), x), labels);
      return k < nGood ? tf.div(ce, nGood) : tf.mul(tf.clipByValue(ce, 0, o.clamp), -o.negCoef / nBad);
    }, vars);
    const g = vars.map((v) => grads[v.name]);
    if (!acc) acc = g;
    else {
      const next = acc.map((a, i) => tf.add(a, g[i]));
      acc.forEach((a) => a.dispose());
      g.forEach((t) => t.dispose());
      acc = next;
    }
  });
  x.dispose();
  const gs = acc as unknown as tf.Tensor[];
  const norm = Math.sqrt(
    (await Promise.all(gs.map((g) => tf.tidy(() => tf.sum(tf.square(g))).data()))).reduce((a, d) => a + d[0], 0),
  );
  const c = o.clipNorm > 0 ? Math.min(1, o.clipNorm / (norm + 1e-6)) : 1;
  const named = vars.map((v, i) => ({ name: v.name, tensor: c < 1 ? tf.mul(gs[i], c) : gs[i] }));
  opt.applyGradients(named);
  named.forEach((n) => n.tensor.dispose());
  gs.forEach((g) => g.dispose());
  await p.scale.data(); // wait for the backend to finish the step
}

/**
 * The reference tool's surface loop: for each grid point, the weights theta + a d1 + b d2 are materialized and the
 * model evaluated on the images (mean CE per point), one point at a time.
 */
export async function surfaceLosses(
  layers: ModelDef,
  basis: { theta: Float32Array[]; d1: Float32Array[]; d2: Float32Array[] },
  shapes: number[][],
  points: [number, number][],
  xNCHW: tf.Tensor4D,
  labels: tf.Tensor1D,
): Promise<number[]> {
  const mk = (a: Float32Array[]) => a.map((d, i) => tf.tensor(d, shapes[i]));
  const th = mk(basis.theta),
    u = mk(basis.d1),
    v = mk(basis.d2);
  const x = tf.transpose(xNCHW, [0, 2, 3, 1]) as tf.Tensor4D;
  const out: number[] = [];
  for (const [a, b] of points) {
    const l = tf.tidy(() =>
      meanCE(
        forward(
          layers,
          th.map((t, i) => tf.add(t, tf.add(tf.mul(u[i], a), tf.mul(v[i], b)))),
          x,
        ),
        labels,
      ),
    );
    out.push((await l.data())[0]);
    l.dispose();
  }
  [...th, ...u, ...v, x].forEach((t) => t.dispose());
  return out;
}

// Checks every op: forward against the CPU reference (atol + rtol*|ref|), backward (input, basis and
// coefficient gradients) against central finite differences of the float64 reference.
// Used by the test suite and by `npm run gradcheck`.
import type { Gpu } from './device.ts';
import { Manifold, Param } from './manifold.ts';
import { Tape } from './tape.ts';
import { Tensor, numel, outSize, type AnyTensor } from './tensor.ts';
import * as ops from './ops.ts';
import * as ref from './reference.ts';
import { randArray, rng } from './random.ts';
export { randArray, randn, rng } from './random.ts';

export interface Inputs {
  x: Float32Array;
  params: Float32Array[];
  coef: Float32Array;
}

export interface OpCase {
  op: string;
  name: string;
  K: number;
  B: number;
  /** Activation input: [K, ...] or shared (no K). */
  x: { shape: number[]; shared?: boolean; scale?: number };
  params?: { name: string; shape: number[]; scale?: number; init?: (r: () => number, n: number) => Float32Array }[];
  gpu: (ctx: ops.Ctx, x: AnyTensor, p: Param[]) => { y: AnyTensor; backward?: (tape: Tape, seed: Float32Array) => void };
  /** Reference forward over all K points (float64), flattened like the GPU output. */
  ref: (x: ArrayLike<number>, p: ArrayLike<number>[], coef: ArrayLike<number>) => Float64Array;
  /** Reference scalar given the seed; default sum(ref * seed). */
  refLoss?: (x: ArrayLike<number>, p: ArrayLike<number>[], coef: ArrayLike<number>, seed: Float32Array) => number;
  /** Length of the compared output when it differs from y (e.g. loss values only). */
  outLen?: number;
  /** Looser forward tolerance, with the reason. */
  atol?: number;
  /** Coefficients [K*B] from the case's random stream (default uniform in +-0.7). */
  coef?: (r: () => number, n: number) => Float32Array;
}

export interface CheckResult {
  op: string;
  name: string;
  fwdErr: number;
  bwdErr: number;
  pass: boolean;
  detail: string;
}

const RTOL = 1e-4;
const FWD_ATOL = 1e-5;
const BWD_TOL = 1e-3;

function sample(n: number, max: number, r: () => number): number[] | undefined {
  if (n <= max) return undefined;
  const s = new Set<number>();
  while (s.size < max) s.add(Math.floor(r() * n));
  return [...s];
}

export async function checkOp(gpu: Gpu, c: OpCase, seed = 1): Promise<CheckResult> {
  const r = rng(seed);
  const xs = c.x.shared ? c.x.shape : [c.K, ...c.x.shape];
  const inputs: Inputs = {
    x: randArray(r, numel(xs), c.x.scale ?? 1),
    params: (c.params ?? []).map((p) => (p.init ? p.init(r, c.B * numel(p.shape)) : randArray(r, c.B * numel(p.shape), p.scale ?? 0.5))),
    coef: c.coef ? c.coef(r, c.K * c.B) : randArray(r, c.K * c.B, 0.7),
  };
  const manifold = new Manifold(gpu, c.K, c.B, inputs.coef);
  const params = (c.params ?? []).map((p, i) => new Param(gpu, p.name, p.shape, c.B, inputs.params[i]));
  const tape = new Tape(gpu, manifold, true);
  const x = Tensor.fromArray(gpu, xs, inputs.x, 'x');
  const errs: string[] = [];
  let fwdErr = 0, bwdErr = 0;
  try {
    const ctx: ops.Ctx = { gpu, manifold, tape };
    const { y, backward } = c.gpu(ctx, x, params);
    const yv = (await gpu.read(y.buffer, (c.outLen ?? y.size) * 4).then((b) => new Float32Array(b)));
    const yr = c.ref(inputs.x, inputs.params, inputs.coef);
    if (yr.length !== yv.length) throw new Error(`${c.op} ${c.name}: GPU output has ${yv.length} values, reference ${yr.length}`);
    const atol = c.atol ?? FWD_ATOL;
    for (let i = 0; i < yr.length; i++) {
      const e = Math.abs(yv[i] - yr[i]);
      const rel = Number.isNaN(e) ? Infinity : e / (atol + RTOL * Math.abs(yr[i])); // NaN never passes
      if (rel > fwdErr) fwdErr = rel;
    }
    if (fwdErr > 1) errs.push(`forward off by ${fwdErr.toFixed(2)}x tolerance`);
    // backward from a random seed gradient
    const seedv = randArray(r, c.outLen ?? y.size);
    if (backward) backward(tape, seedv);
    else tape.backwardFrom(y, Tensor.fromArray(gpu, y.shape, seedv, 'seed'));
    const loss = (xv: ArrayLike<number>, pv: ArrayLike<number>[], cv: ArrayLike<number>) => {
      if (c.refLoss) return c.refLoss(xv, pv, cv, seedv);
      const o = c.ref(xv, pv, cv);
      let s = 0;
      for (let i = 0; i < o.length; i++) s += o[i] * seedv[i];
      return s;
    };
    const compare = (what: string, got: Float32Array, fd: Map<number, number>) => {
      for (const [i, v] of fd) {
        const d = Math.abs(got[i] - v) / (BWD_TOL * (1 + Math.abs(v)));
        const e = Number.isNaN(d) ? Infinity : d; // NaN never passes
        if (e > bwdErr) bwdErr = e;
        if (e > 1 && errs.length < 6) errs.push(`d${what}[${i}] = ${got[i].toPrecision(6)}, finite difference ${v.toPrecision(6)}`);
      }
    };
    if (!c.x.shared) {
      const g = tape.gradOf(x);
      const got = g ? await g.read() : new Float32Array(x.size);
      compare('x', got, ref.finiteDiff((xv) => loss(xv, inputs.params, inputs.coef), inputs.x, sample(x.size, 48, r)));
    }
    for (let i = 0; i < params.length; i++) {
      const got = params[i].grad ? await params[i].grad!.read() : new Float32Array(params[i].basis.size);
      const fd = ref.finiteDiff((pv) => loss(inputs.x, inputs.params.map((q, j) => (j === i ? pv : q)), inputs.coef), inputs.params[i], sample(params[i].basis.size, 48, r));
      compare(params[i].name, got, fd);
    }
    if (params.length) {
      const got = manifold.dcoef ? await manifold.dcoef.read() : new Float32Array(c.K * c.B);
      compare('coef', got, ref.finiteDiff((cv) => loss(inputs.x, inputs.params, cv), inputs.coef));
    }
  } catch (e) {
    errs.push((e as Error).message);
    fwdErr = fwdErr || Infinity;
  } finally {
    tape.dispose();
    x.dispose();
    params.forEach((p) => p.dispose());
    manifold.dispose();
  }
  return { op: c.op, name: c.name, fwdErr, bwdErr, pass: errs.length === 0, detail: errs.join('; ') };
}

// ---------------------------------------------------------------- the cases

/** Reference of a conv over all K points with materialized per-point weights. */
function convRefAll(K: number, B: number, s: ref.ConvRefShape, shared: boolean, hasBias: boolean, relu = false) {
  return (x: ArrayLike<number>, p: ArrayLike<number>[], coef: ArrayLike<number>) => {
    const xs = s.N * s.Cin * s.H * s.W;
    const ws = s.Cout * s.Cin * s.KH * s.KW;
    const parts: Float64Array[] = [];
    for (let k = 0; k < K; k++) {
      const xk = shared ? x : Array.prototype.slice.call(x, k * xs, (k + 1) * xs);
      const y = ref.conv2dRef(xk, ref.combine(p[0], coef, k, B, ws), hasBias ? ref.combine(p[1], coef, k, B, s.Cout) : null, s);
      if (relu) for (let i = 0; i < y.length; i++) y[i] = Math.max(0, y[i]);
      parts.push(y);
    }
    return concat(parts);
  };
}

export function concat(parts: Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function convCase(name: string, K: number, B: number, s: ref.ConvRefShape, o: { shared?: boolean; bias?: boolean; relu?: boolean; foldWgrad?: boolean; maxWgradLayers?: number } = {}): OpCase {
  const bias = o.bias ?? true;
  return {
    op: 'conv2d', name, K, B,
    x: { shape: [s.N, s.Cin, s.H, s.W], shared: o.shared },
    params: [{ name: 'w', shape: [s.Cout, s.Cin, s.KH, s.KW] }, ...(bias ? [{ name: 'b', shape: [s.Cout] }] : [])],
    gpu: (ctx, x, p) => ({ y: ops.conv2d({ ...ctx, foldWgrad: o.foldWgrad, maxWgradLayers: o.maxWgradLayers }, x, p[0], bias ? p[1] : null, { stride: s.stride, pad: s.pad, relu: o.relu }) }),
    ref: convRefAll(K, B, s, !!o.shared, bias, o.relu),
  };
}

function perPoint(K: number, per: number, f: (xk: ArrayLike<number>, k: number) => Float64Array) {
  return (x: ArrayLike<number>) => concat([...Array(K).keys()].map((k) => f(Array.prototype.slice.call(x, k * per, (k + 1) * per), k)));
}

function poolCase(name: string, kind: 'max' | 'avg', K: number, N: number, C: number, H: number, W: number, o: { k?: number; stride?: number; pad?: number; adaptive?: [number, number] }): OpCase {
  const k = o.k ?? 2, stride = o.stride ?? k, pad = o.pad ?? 0;
  const [OH, OW] = o.adaptive ?? [outSize(H, k, stride, pad), outSize(W, k, stride, pad)];
  const p: ref.PoolRef = { planes: N * C, H, W, OH, OW, k, stride, pad, adaptive: !!o.adaptive };
  return {
    op: o.adaptive ? 'adaptive_avgpool2d' : `${kind}pool2d`, name, K, B: 1,
    x: { shape: [N, C, H, W] },
    gpu: (ctx, x) => ({ y: o.adaptive ? ops.adaptiveAvgPool2d(ctx, x, o.adaptive) : kind === 'max' ? ops.maxPool2d(ctx, x, { kernel: k, stride, pad }) : ops.avgPool2d(ctx, x, { kernel: k, stride, pad }) }),
    ref: perPoint(K, N * C * H * W, (xk) => ref.poolRef(xk, p, kind)),
  };
}

function bnCase(name: string, K: number, B: number, N: number, C: number, H: number, W: number, reparam: boolean): OpCase {
  return {
    op: 'batchnorm2d', name, K, B,
    x: { shape: [N, C, H, W], scale: 2 },
    params: [{ name: 'gamma', shape: [C] }, { name: 'beta', shape: [C] }],
    gpu: (ctx, x, p) => ({ y: ops.batchNorm2d(ctx, x, p[0], p[1], { reparam }) }),
    ref: (x, p, coef) => perPoint(K, N * C * H * W, (xk, k) => ref.batchNormRef(xk, ref.combine(p[0], coef, k, B, C, reparam ? 1 : 0), ref.combine(p[1], coef, k, B, C), N, C, H * W, 1e-5))(x),
  };
}

/** Evaluation mode: running mean and variance are manifold tensors too (the "states" directions of Li et al.). */
function bnEvalCase(name: string, K: number, B: number, N: number, C: number, H: number, W: number): OpCase {
  return {
    op: 'batchnorm2d(running)', name, K, B,
    x: { shape: [N, C, H, W], scale: 2 },
    params: [{ name: 'gamma', shape: [C] }, { name: 'beta', shape: [C] }, { name: 'mean', shape: [C] }, { name: 'var', shape: [C], init: (r, n) => Float32Array.from({ length: n }, () => 0.5 + r()) }],
    // positive coefficients and variances in [0.5, 1.5]: every point's combined variance is positive
    coef: (r, n) => Float32Array.from({ length: n }, () => 0.2 + 0.6 * r()),
    gpu: (ctx, x, p) => ({ y: ops.batchNorm2d(ctx, x, p[0], p[1], { running: { mean: p[2], var: p[3], mode: 'use' } }) }),
    ref: (x, p, coef) => perPoint(K, N * C * H * W, (xk, k) => ref.batchNormRef(xk, ref.combine(p[0], coef, k, B, C), ref.combine(p[1], coef, k, B, C), N, C, H * W, 1e-5, { mean: ref.combine(p[2], coef, k, B, C), var: ref.combine(p[3], coef, k, B, C) }))(x),
  };
}

function linearCase(name: string, K: number, B: number, N: number, F: number, O: number, shared = false): OpCase {
  return {
    op: 'linear', name, K, B,
    x: { shape: [N, F], shared },
    params: [{ name: 'w', shape: [O, F] }, { name: 'b', shape: [O] }],
    gpu: (ctx, x, p) => ({ y: ops.linear(ctx, x, p[0], p[1]) }),
    ref: (x, p, coef) => concat([...Array(K).keys()].map((k) => ref.linearRef(shared ? x : Array.prototype.slice.call(x, k * N * F, (k + 1) * N * F), ref.combine(p[0], coef, k, B, O * F), ref.combine(p[1], coef, k, B, O), N, F, O))),
  };
}

function ceCase(name: string, K: number, N: number, C: number, clamp?: number): OpCase {
  const labels = Array.from({ length: N }, (_, i) => (i * 7 + 3) % C);
  let labelsT: Tensor | null = null;
  const refLosses = (x: ArrayLike<number>) => [...Array(K).keys()].map((k) => ref.crossEntropyRef(Array.prototype.slice.call(x, k * N * C, (k + 1) * N * C), labels, N, C));
  return {
    op: 'cross_entropy', name, K, B: 1,
    x: { shape: [N, C], scale: 2 },
    outLen: 2 * K,
    gpu: (ctx, x) => {
      labelsT = ctx.tape!.own(Tensor.fromArray(ctx.gpu, [N], labels, 'labels', 'u32'));
      const l = ops.crossEntropy(ctx, x, labelsT);
      return { y: l.out, backward: (tape, seed) => tape.backward(seed.slice(0, K), { clampAbove: clamp }) };
    },
    ref: (x) => {
      const ls = refLosses(x);
      return Float64Array.from([...ls.map((l) => l.loss), ...ls.map((l) => l.acc)]);
    },
    refLoss: (x, _p, _c, seed) => refLosses(x).reduce((s, l, k) => s + (clamp !== undefined && l.loss > clamp ? 0 : seed[k] * l.loss), 0),
  };
}

/** The toy landscape's loss on the points of a manifold: x = pointValues(P) on a B-basis hyperplane, then the wedge loss. */
function wedgeCase(name: string, K: number, B: number, D: number, keep: number[]): OpCase {
  const values = (p: ArrayLike<number>, coef: ArrayLike<number>) => [...Array(K).keys()].map((k) => ref.combine(p, coef, k, B, D));
  return {
    op: 'wedge_loss', name, K, B,
    x: { shape: [1], shared: true },
    params: [{ name: 'P', shape: [D], scale: 1 }],
    outLen: 2 * K,
    gpu: (ctx, _x, p) => {
      const keepT = ctx.tape!.own(Tensor.fromArray(ctx.gpu, [K], keep, 'keep', 'u32'));
      const l = ops.wedgeLoss(ctx, ops.pointValues(ctx, p[0]), keepT);
      return { y: l.out, backward: (tape, seed) => tape.backward(seed.slice(0, K)) };
    },
    ref: (_x, p, coef) => Float64Array.from([...values(p[0], coef).map((v, k) => ref.wedgeRef(v, keep[k])), ...keep.map(() => 0)]),
    refLoss: (_x, p, coef, seed) => values(p[0], coef).reduce((s, v, k) => s + seed[k] * ref.wedgeRef(v, keep[k]), 0),
  };
}

/** conv2d, linear and flatten-then-linear cases once per conv kernel family (tiled, lanes): both are checked on any adapter. */
function bothConvFamilies(cases: OpCase[]): OpCase[] {
  return cases.flatMap((c) => c.op !== 'conv2d' && c.op !== 'linear' && c.op !== 'flatten' ? [c]
    : (['tiled', 'lanes'] as const).map((f): OpCase => ({ ...c, name: `${c.name} [${f}]`, gpu: (ctx, x, p) => c.gpu({ ...ctx, convKernels: f }, x, p) })));
}

/** Every op, at shapes that do not divide the tiles, stride 1 and 2, padding 0 and 1, Cin = 1, N = 1, K = 1 and 7, B = 1 and 3. */
export function opCases(): OpCase[] {
  const cs = (N: number, Cin: number, H: number, W: number, Cout: number, KH: number, stride: number, pad: number, KW = KH): ref.ConvRefShape => ({ N, Cin, H, W, Cout, KH, KW, stride, pad });
  return bothConvFamilies([
    convCase('K1 B1 3x3 pad1 Cin1', 1, 1, cs(2, 1, 7, 6, 5, 3, 1, 1)),
    convCase('K7 B3 3x3 stride2 pad1', 7, 3, cs(2, 3, 9, 7, 10, 3, 2, 1)),
    convCase('K7 B3 5x5 pad0 N1 no bias', 7, 3, cs(1, 4, 8, 9, 6, 5, 1, 0), { bias: false }),
    convCase('K7 B3 3x3 Cout67, 3 points per weight-gradient layer', 7, 3, cs(2, 3, 5, 4, 67, 3, 1, 1), { maxWgradLayers: 3 }),
    convCase('K3 B1 shared input (per-basis path), fused relu', 3, 1, cs(3, 2, 6, 6, 9, 3, 1, 1), { shared: true, relu: true }),
    convCase('K7 B3 shared input (per-basis path), stride 2', 7, 3, cs(2, 1, 9, 8, 6, 3, 2, 1), { shared: true }),
    convCase('K9 B6 shared input (per-basis path, per-basis weight gradients)', 9, 6, cs(2, 2, 5, 5, 3, 3, 1, 1), { shared: true }),
    convCase('K9 B6 shared input (per-basis path, two fold passes)', 9, 6, cs(2, 2, 5, 5, 3, 3, 1, 1), { shared: true, foldWgrad: true }),
    convCase('K2 B3 shared input (direct path, K <= B)', 2, 3, cs(2, 2, 5, 6, 4, 3, 1, 0), { shared: true, relu: true }),
    convCase('K2 B3 1x1 stride2 Cout33 (point weights, B > K)', 2, 3, cs(2, 5, 5, 5, 33, 1, 2, 0)),
    convCase('K2 B5 3x3 wide (point weights, B > K)', 2, 5, cs(2, 3, 5, 4, 67, 3, 1, 1)),
    convCase('K6 B5 3x3 wide (per-point weight gradients, B > 4)', 6, 5, cs(2, 3, 5, 4, 67, 3, 1, 1)),
    convCase('K6 B5 3x3 wide (basis-folding weight gradient, two passes)', 6, 5, cs(2, 3, 5, 4, 67, 3, 1, 1), { foldWgrad: true }),
    convCase('K3 B11 stride2 no bias (point weights, B > K)', 3, 11, cs(2, 2, 7, 5, 6, 3, 2, 1), { bias: false }),
    convCase('K2 B3 Cin16 Cout60 (lanes: input-gradient weights staged in two chunks)', 2, 3, cs(1, 16, 5, 5, 60, 3, 1, 1)),
    convCase('K2 B2 Cin64 (lanes: forward weights staged in two chunks)', 2, 2, cs(1, 64, 4, 4, 8, 3, 1, 1)),
    convCase('K3 B2 rows 11 wide (lanes: a partial row segment)', 3, 2, cs(2, 2, 3, 11, 5, 3, 1, 1)),
    convCase('K2 B2 20x16 image (lanes: three workgroups of row segments)', 2, 2, cs(2, 2, 20, 16, 5, 3, 1, 1)),
    convCase('K2 B3 3x3 pad1 on a 3x3 image, relu (lanes: per-position kernels, 4 outputs per lane)', 2, 3, cs(4, 3, 3, 3, 6, 3, 1, 1), { relu: true }),
    convCase('K2 B2 1x3 kernel (KH != KW)', 2, 2, cs(2, 2, 5, 6, 4, 1, 1, 1, 3)),
    convCase('K2 B2 3x1 kernel (KH != KW)', 2, 2, cs(2, 2, 6, 5, 4, 3, 1, 1, 1)),
    convCase('K2 B2 1x1 stride 1 (lanes: row kernels with KW = 1)', 2, 2, cs(2, 3, 4, 9, 5, 1, 1, 0)),
    convCase('K2 B2 7x7 pad3 (lanes: row kernels with KW = 7)', 2, 2, cs(1, 2, 6, 8, 3, 7, 1, 3)),
    convCase('K2 B2 9x9 (lanes: per-position kernels, KW > 7)', 2, 2, cs(1, 2, 10, 10, 3, 9, 1, 2)),
    convCase('K2 B2 stride 2, 9 outputs per row (lanes: a partial stride-2 segment)', 2, 2, cs(1, 2, 5, 17, 3, 3, 2, 1)),
    convCase('K3 B2 Cin8 Cout60 stride 2 (lanes: per-position input gradient, two chunks)', 3, 2, cs(1, 8, 5, 5, 60, 3, 2, 1)),
    linearCase('K7 B3', 7, 3, 3, 19, 13),
    linearCase('K2 B2 F600 (lanes: forward weights staged in two chunks)', 2, 2, 3, 600, 16),
    linearCase('K1 B1 N1', 1, 1, 1, 70, 10),
    linearCase('K4 B2 shared input', 4, 2, 5, 11, 7, true),
    linearCase('K2 B2 shared input (direct path)', 2, 2, 3, 9, 5, true),
    linearCase('K2 B7 (point weights, B > K)', 2, 7, 3, 10, 6),
    linearCase('K3 B3 N21 F37 O300 (linear lanes: 2 outputs per lane, 5 lane blocks, 2 row blocks of 11)', 3, 3, 21, 37, 300),
    linearCase('K2 B2 N40 F300 O9 (linear lanes: input gradient with 2 outputs per lane, 3 row blocks)', 2, 2, 40, 300, 9),
    linearCase('K3 B5 N40 F20 O12 (point weights with bias, 2 row blocks of 20)', 3, 5, 40, 20, 12),
    convCase('K3 B2 1x1 conv on a 1x1 image, fused relu (the linear kernels through conv2d)', 3, 2, cs(5, 7, 1, 1, 11, 1, 1, 0), { relu: true }),
    convCase('K2 B3 1x1 conv, stride 2, on a 1x1 image (the linear kernels)', 2, 3, cs(4, 6, 1, 1, 5, 1, 2, 0)),
    linearCase('K2 B4 N20 F13 O40 shared input, point weights (B > K)', 2, 4, 20, 13, 40, true),
    poolCase('2x2 K7', 'max', 7, 2, 3, 7, 6, {}),
    poolCase('3x3 stride2 pad1 K1 N1', 'max', 1, 1, 2, 9, 8, { k: 3, stride: 2, pad: 1 }),
    poolCase('2x2 K3', 'avg', 3, 2, 2, 6, 5, {}),
    poolCase('3x3 stride2 pad1', 'avg', 2, 2, 2, 7, 7, { k: 3, stride: 2, pad: 1 }),
    poolCase('3 -> 4 overlapping bins', 'avg', 7, 2, 3, 3, 3, { adaptive: [4, 4] }),
    poolCase('28 -> 4, 7 -> 3', 'avg', 2, 1, 2, 28, 7, { adaptive: [4, 3] }),
    bnCase('K7 B3', 7, 3, 3, 4, 5, 3, false),
    bnCase('K1 B1 reparam', 1, 1, 4, 3, 3, 3, true),
    bnCase('K6 B5 (two fold passes)', 6, 5, 2, 3, 2, 3, false),
    bnEvalCase('K5 B3', 5, 3, 2, 3, 3, 2),
    bnEvalCase('K1 B1, N*H*W = 1', 1, 1, 1, 4, 1, 1),
    {
      op: 'relu', name: 'K7', K: 7, B: 1, x: { shape: [3, 5, 4] },
      gpu: (ctx, x) => ({ y: ops.relu(ctx, x) }),
      ref: (x) => Float64Array.from(x, (v) => Math.max(0, v)),
    },
    {
      op: 'tanh', name: 'K3', K: 3, B: 1, x: { shape: [2, 17] },
      gpu: (ctx, x) => ({ y: ops.tanh(ctx, x) }),
      ref: (x) => Float64Array.from(x, Math.tanh),
    },
    {
      op: 'gelu', name: 'erf K3 (values to +-6)', K: 3, B: 1, x: { shape: [2, 3, 7], scale: 6 },
      gpu: (ctx, x) => ({ y: ops.gelu(ctx, x, 'erf') }),
      ref: (x) => Float64Array.from(x, ref.geluRef('erf')),
    },
    {
      op: 'gelu', name: 'tanh K2 (values to +-6)', K: 2, B: 1, x: { shape: [3, 19], scale: 6 },
      gpu: (ctx, x) => ({ y: ops.gelu(ctx, x, 'tanh') }),
      ref: (x) => Float64Array.from(x, ref.geluRef('tanh')),
    },
    {
      op: 'silu', name: 'K5 (values to +-8)', K: 5, B: 1, x: { shape: [2, 13], scale: 8 },
      gpu: (ctx, x) => ({ y: ops.silu(ctx, x) }),
      ref: (x) => Float64Array.from(x, ref.siluRef),
    },
    {
      op: 'add', name: 'residual K3 (x + relu(x))', K: 3, B: 1, x: { shape: [2, 3, 4, 4] },
      gpu: (ctx, x) => ({ y: ops.add(ctx, x, ops.relu(ctx, x)) }),
      ref: (x) => Float64Array.from(x, (v) => v + Math.max(0, v)),
    },
    {
      op: 'dropout', name: 'p=0.3 K7', K: 7, B: 1, x: { shape: [3, 11] },
      gpu: (ctx, x) => ({ y: ops.dropout(ctx, x, 0.3, 1234) }),
      ref: (x) => ref.dropoutRef(x, 0.3, 1234),
    },
    {
      op: 'flatten', name: 'then linear K2', K: 2, B: 2, x: { shape: [3, 2, 3, 2] },
      params: [{ name: 'w', shape: [4, 12] }],
      gpu: (ctx, x, p) => ({ y: ops.linear(ctx, ops.flatten(ctx, x as Tensor), p[0], null) }),
      ref: (x, p, coef) => concat([0, 1].map((k) => ref.linearRef(Array.prototype.slice.call(x, k * 36, (k + 1) * 36), ref.combine(p[0], coef, k, 2, 48), null, 3, 12, 4))),
    },
    ceCase('K7 N5 C10', 7, 5, 10),
    ceCase('K4 N3 C10 clamp 2.5', 4, 3, 10, 2.5),
    wedgeCase('K5 B3 D=300 (n = 0, 1, 150, 299, 300)', 5, 3, 300, [0, 1, 150, 299, 300]),
    wedgeCase('K2 B1 D=7', 2, 1, 7, [3, 5]),
  ]);
}

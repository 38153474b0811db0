// Ops over a weight manifold: each dispatches its forward kernel for all K points at once and, when a
// tape is given, records a backward closure. Activations are [K, N, ...]; an input of rank one lower
// ([N, ...]) is the batch shared by all K points.
import type { ConvKernels, Gpu, KernelSpec } from './device.ts';
import type { Manifold, Param } from './manifold.ts';
import type { Tape } from './tape.ts';
import { Tensor, type AnyTensor, outSize, shapeStr } from './tensor.ts';
import * as conv from '../shaders/conv.ts';
import * as pool from '../shaders/pool.ts';
import * as misc from '../shaders/misc.ts';
import * as wedge from '../shaders/wedge.ts';
import { fold, spec } from '../shaders/common.ts';

export interface Ctx {
  gpu: Gpu;
  manifold: Manifold;
  /** null: inference only, nothing recorded. */
  tape: Tape | null;
  /**
   * Points come in pairs (2j, 2j+1) that share their ReLU masks and max-pool choices, taken from the pair's mean
   * pre-activation. Used for Hessian-vector products by central differences at x +- eps v: the two gradients then
   * lie on the same linear piece of a ReLU net, so their difference is the Hessian that double backprop computes,
   * without the kink terms that a finite difference across ReLU switches picks up. ReLUs are not fused then.
   */
  pairedMasks?: boolean;
  /**
   * Conv/linear weight gradients by the basis-folding kernel (one GEMM pass per WGRAD_BMAX basis tensors) even where
   * the per-point path would be taken: that kernel is otherwise only the fallback for per-point gradients too large
   * for a binding, so tests force it here.
   */
  foldWgrad?: boolean;
  /** The conv kernel family for this context's conv2d / linear (default: the device's, see Gpu.convKernels). */
  convKernels?: ConvKernels;
  /** Caps the z layers of the weight-gradient split, so that a layer sums several points (tests). */
  maxWgradLayers?: number;
}

/** The conv kernel family for a layer: the context's, or tiled where the kernel window is too large for lanes. */
function convFamily(ctx: Ctx, s: { KH: number; KW: number }): ConvKernels {
  const f = ctx.convKernels ?? ctx.gpu.convKernels;
  return f === 'lanes' && !conv.lanesFit(s.KH, s.KW) ? 'tiled' : f;
}


export class ShapeError extends Error {}
function check(cond: boolean, op: string, msg: string): asserts cond {
  if (!cond) throw new ShapeError(`${op}: ${msg}`);
}

/** Output tensor, owned by the tape when there is one. */
function out(ctx: Ctx, shape: number[], label: string): Tensor {
  const t = new Tensor(ctx.gpu, shape, label);
  return ctx.tape ? ctx.tape.own(t) : t;
}

const groups1d = (n: number, per = 256): [number, number] => fold(Math.ceil(n / per));

/** Splits x's shape into (K, rest) given whether it carries the K dimension. */
function pointsOf(ctx: Ctx, x: AnyTensor, rank: number, op: string): { K: number; shared: boolean; dims: number[] } {
  const K = ctx.manifold.K;
  if (x.shape.length === rank) {
    check(x.shape[0] === K, op, `input ${shapeStr(x.shape)} has ${x.shape[0]} points but the manifold has K=${K}`);
    return { K, shared: false, dims: x.shape.slice(1) };
  }
  check(x.shape.length === rank - 1, op, `input ${shapeStr(x.shape)} must have rank ${rank} ([K, ...]) or ${rank - 1} (shared by all points)`);
  return { K, shared: true, dims: [...x.shape] };
}

// ---------------------------------------------------------------- conv2d / linear

export interface Conv2dOptions {
  stride?: number;
  pad?: number;
  /** Fuse a ReLU into the output. */
  relu?: boolean;
}

/**
 * y[k] = conv(x[k], W_k) + b_k, W_k = sum_b C[k,b] * weight.basis[b]. x: [K, N, Cin, H, W] or shared [N, Cin, H, W];
 * weight: [Cout, Cin, KH, KW]; bias: [Cout]. Returns [K, N, Cout, OH, OW].
 */
export function conv2d(ctx: Ctx, x: AnyTensor, weight: Param, bias: Param | null, opts: Conv2dOptions = {}): Tensor {
  const op = `conv2d(${weight.name})`;
  const { K, shared, dims } = pointsOf(ctx, x, 5, op);
  const [N, Cin, H, W] = dims;
  check(weight.shape.length === 4, op, `weight ${shapeStr(weight.shape)} must be [Cout, Cin, KH, KW]`);
  const [Cout, wCin, KH, KW] = weight.shape;
  check(wCin === Cin, op, `input ${shapeStr(x.shape)} has ${Cin} channels, weight ${shapeStr(weight.shape)} expects ${wCin}`);
  check(weight.B === ctx.manifold.B, op, `weight has B=${weight.B} basis tensors, manifold B=${ctx.manifold.B}`);
  if (bias) check(bias.shape.length === 1 && bias.shape[0] === Cout, op, `bias ${shapeStr(bias.shape)} must be [${Cout}]`);
  const stride = opts.stride ?? 1, pad = opts.pad ?? 0;
  const OH = outSize(H, KH, stride, pad), OW = outSize(W, KW, stride, pad);
  check(OH > 0 && OW > 0, op, `kernel ${KH}x${KW} with padding ${pad} does not fit input ${H}x${W}`);
  return convCore(ctx, op, x, weight, bias, { K, shared, N, Cin, H, W, Cout, KH, KW, OH, OW, stride, pad, relu: !!opts.relu }, [K, N, Cout, OH, OW]);
}

/** y[k] = x[k] W_k^T + b_k. x: [K, N, F] or shared [N, F]; weight [O, F]; bias [O]. Returns [K, N, O]. */
export function linear(ctx: Ctx, x: AnyTensor, weight: Param, bias: Param | null, opts: { relu?: boolean } = {}): Tensor {
  const op = `linear(${weight.name})`;
  const { K, shared, dims } = pointsOf(ctx, x, 3, op);
  check(dims.length === 2, op, `input ${shapeStr(x.shape)} must be [K, N, F] or [N, F]`);
  const [N, F] = dims;
  check(weight.shape.length === 2 && weight.shape[1] === F, op, `input ${shapeStr(x.shape)} has ${F} features, weight ${shapeStr(weight.shape)} must be [O, ${F}]`);
  check(weight.B === ctx.manifold.B, op, `weight has B=${weight.B} basis tensors, manifold B=${ctx.manifold.B}`);
  const O = weight.shape[0];
  if (bias) check(bias.shape.length === 1 && bias.shape[0] === O, op, `bias ${shapeStr(bias.shape)} must be [${O}]`);
  return convCore(ctx, op, x, weight, bias, { K, shared, N, Cin: F, H: 1, W: 1, Cout: O, KH: 1, KW: 1, OH: 1, OW: 1, stride: 1, pad: 0, relu: !!opts.relu }, [K, N, O]);
}

interface ConvShape {
  K: number; shared: boolean; N: number; Cin: number; H: number; W: number; Cout: number;
  KH: number; KW: number; OH: number; OW: number; stride: number; pad: number; relu: boolean;
}

function convCore(ctx: Ctx, op: string, x: AnyTensor, weight: Param, bias: Param | null, s: ConvShape, yShape: number[]): Tensor {
  if (s.shared && s.K > ctx.manifold.B) return convSharedInput(ctx, op, x, weight, bias, s, yShape);
  const { gpu, manifold } = ctx;
  const { U, what } = convUniforms(ctx, op, x, weight, bias, s);
  // More basis tensors than points (random-subspace training: a few points, up to thousands of basis tensors): each
  // point's weights are built once here, instead of a B-term sum in every weight-tile load of every kernel.
  const direct = manifold.B > s.K;
  const wK = direct ? combineBasis(ctx, weight.basis, `${op}: weights of K=${s.K} points from B=${manifold.B} basis tensors`) : null;
  const bK = direct && bias ? combineBasis(ctx, bias.basis, `${op}: biases of K=${s.K} points`) : null;
  const y = out(ctx, yShape, op);
  convForwardDispatch(ctx, x, wK ?? weight.basis, bias ? bK ?? bias.basis : null, direct ? null : manifold.coef, y, s, U, what);
  const tape = ctx.tape;
  if (!tape) {
    wK?.dispose(); bK?.dispose();
    return y;
  }
  if (wK) tape.own(wK);
  if (bK) tape.own(bK);
  tape.record(op, () => {
    let dy = tape.gradOf(y);
    if (!dy) return;
    if (s.relu) dy = reluMask(ctx, dy, y);
    // input gradient (not for the shared input batch)
    if (!s.shared) {
      const dx = new Tensor(gpu, x.shape, `d${op}.x`);
      const Mi = s.N * s.H * s.W;
      let kernel: KernelSpec, grid: [number, number];
      const lanes = convFamily(ctx, s) === 'lanes';
      const lin = lanes && conv.isLinearShape(s);
      const rl = lanes && !lin && s.stride === 1 ? conv.chooseRowLanes(s.W, s.N * s.H, s.Cin, s.KW, 1) : null;
      if (lin) {
        const l = conv.chooseLinearLanes(s.Cin, s.N);
        kernel = spec(conv.linearLanesKernel, l, 'dgrad', false, 'none', direct);
        grid = conv.lanesGrid(l, s.Cin, s.N);
      } else if (rl) {
        kernel = spec(conv.convInputGradRowKernel, rl, direct);
        grid = conv.rowGrid(rl, s.W, s.N * s.H, s.Cin);
      } else if (lanes) {
        const l = conv.chooseLanes(Mi, s.Cin);
        kernel = spec(conv.convInputGradLanesKernel, l, s.stride === 1, direct);
        grid = conv.lanesGrid(l, Mi, s.Cin);
      } else {
        const td = conv.chooseTiles(s.Cin, Mi);
        kernel = spec(conv.convInputGradKernel, td, s.stride === 1, direct);
        grid = [Math.ceil(Mi / td.BM), Math.ceil(s.Cin / td.BN)];
      }
      gpu.dispatch({
        kernel,
        buffers: { dy: dy.buffer, weight: (wK ?? weight.basis).buffer, ...(direct ? {} : { coef: manifold.coef.buffer }), dx: dx.buffer },
        uniforms: U,
        groups: [...grid, s.K],
        what: `${what} (input gradient)`,
        flops: 2 * s.K * Mi * s.Cin * s.Cout * s.KH * s.KW,
      });
      tape.addGrad(x, dx);
    }
    // one GEMM per point, then folds (pointWeightGrads), unless B <= WGRAD_BMAX basis gradients come out of a
    // single pass of the folding kernel anyway, or the per-point gradients would not fit a binding
    const perPoint = direct || !tape.basisGrad || pointGradsPreferred(ctx, manifold.B, s, U);
    if (perPoint) pointWeightGrads(ctx, what, x, dy, weight, bias, s, U);
    else convWeightGrad(ctx, what, x, dy, weight, bias, s, U, manifold.coef, tape.coefGrad);
    if (s.relu) dy.dispose();
  });
  return y;
}

/** Point values sum_b C[k,b] basis[b] of a basis tensor [B, ...] for the manifold's K points: [K, ...]. */
function combineBasis(ctx: Ctx, basis: Tensor, what: string): Tensor {
  const { K, B, coef } = ctx.manifold;
  const S = basis.size / B;
  const y = new Tensor(ctx.gpu, [K, S], 'conv.point_weights');
  const per = ctx.gpu.elemsPerThread;
  ctx.gpu.dispatch({ kernel: spec(misc.combineKernel, false, per), buffers: { coef: coef.buffer, z: basis.buffer, y: y.buffer }, uniforms: { K, B, S }, groups: groups1d(K * S, 256 * per), what });
  return y;
}

function convUniforms(ctx: Ctx, op: string, x: AnyTensor, weight: Param, bias: Param | null, s: ConvShape) {
  const B = ctx.manifold.B;
  const R0 = s.Cin * s.KH * s.KW;
  const R = R0 + (bias ? 1 : 0);
  const what = `${op}: x ${shapeStr(x.shape)}, w ${shapeStr(weight.shape)}, K=${s.K}, B=${B}, stride ${s.stride}, pad ${s.pad}`;
  const U: Record<string, number> = {
    K: s.K, N: s.N, Cin: s.Cin, H: s.H, W: s.W, Cout: s.Cout, OH: s.OH, OW: s.OW, KH: s.KH, KW: s.KW,
    stride: s.stride, pad: s.pad, B, xKStride: s.shared ? 0 : s.N * s.Cin * s.H * s.W, R0, R,
  };
  return { U, what };
}

/** The forward conv; coef null: weight and bias hold each point's own values ([K, Cout, R0], [K, Cout]). */
function convForwardDispatch(ctx: Ctx, x: AnyTensor, weight: Tensor, bias: Tensor | null, coef: Tensor | null, y: Tensor, s: ConvShape, U: Record<string, number>, what: string): void {
  const M = s.N * s.OH * s.OW;
  const act = s.relu ? 'relu' : 'none';
  let kernel: KernelSpec, grid: [number, number];
  const lanes = convFamily(ctx, s) === 'lanes';
  const lin = lanes && conv.isLinearShape(s);
  const rl = lanes && !lin ? conv.chooseRowLanes(s.OW, s.N * s.OH, s.Cout, s.KW, s.stride) : null;
  if (lin) {
    const l = conv.chooseLinearLanes(s.Cout, s.N);
    kernel = spec(conv.linearLanesKernel, l, 'fwd', !!bias, act, !coef);
    grid = conv.lanesGrid(l, s.Cout, s.N);
  } else if (rl) {
    kernel = spec(conv.convForwardRowKernel, rl, !!bias, act, !coef);
    grid = conv.rowGrid(rl, s.OW, s.N * s.OH, s.Cout);
  } else if (lanes) {
    const l = conv.chooseLanes(M, s.Cout);
    kernel = spec(conv.convForwardLanesKernel, l, !!bias, act, !coef);
    grid = conv.lanesGrid(l, M, s.Cout);
  } else {
    const tf = conv.chooseTiles(s.Cout, M);
    kernel = spec(conv.convForwardKernel, tf, !!bias, act, !coef);
    grid = [Math.ceil(M / tf.BM), Math.ceil(s.Cout / tf.BN)];
  }
  ctx.gpu.dispatch({
    kernel,
    buffers: { x: x.buffer, weight: weight.buffer, ...(bias ? { bias: bias.buffer } : {}), ...(coef ? { coef: coef.buffer } : {}), y: y.buffer },
    uniforms: U,
    groups: [...grid, U.K],
    what,
    flops: 2 * U.K * M * s.Cout * U.R,
  });
}

/**
 * A layer whose input is the shared batch, with more points than basis tensors (K > B): the layer is linear in
 * the weights, so y_k = sum_b C[k,b] Z_b with Z_b = conv(x, P_b) + bias_b: B convolutions instead of K. Backward:
 * dP_b = conv_wgrad(x, sum_k C[k,b] dy_k), and dC[k,b] = <dy_k, Z_b>.
 */
function convSharedInput(ctx: Ctx, op: string, x: AnyTensor, weight: Param, bias: Param | null, s: ConvShape, yShape: number[]): Tensor {
  const { gpu, manifold } = ctx;
  const { K, B } = manifold;
  const sb: ConvShape = { ...s, K: B, relu: false };
  const { U, what } = convUniforms(ctx, op, x, weight, bias, sb);
  const S = s.N * s.Cout * s.OH * s.OW;
  const z = new Tensor(gpu, [B, ...yShape.slice(1)], `${op}.basis_out`);
  convForwardDispatch(ctx, x, weight.basis, bias?.basis ?? null, manifold.eye(), z, sb, U, `${what} (per basis)`);
  const y = out(ctx, yShape, op);
  const per = gpu.elemsPerThread;
  gpu.dispatch({ kernel: spec(misc.combineKernel, s.relu, per), buffers: { coef: manifold.coef.buffer, z: z.buffer, y: y.buffer }, uniforms: { K, B, S }, groups: groups1d(K * S, 256 * per), what: `${op}: combine ${B} basis outputs into K=${K} points` });
  const tape = ctx.tape;
  if (!tape) {
    z.dispose();
    return y;
  }
  tape.own(z);
  tape.record(op, () => {
    let dy = tape.gradOf(y);
    if (!dy) return;
    if (s.relu) dy = reluMask(ctx, dy, y);
    if (tape.basisGrad) {
      const dyB = new Tensor(gpu, z.shape, `${op}.basis_dy`);
      foldBasis(ctx, dy, dyB, { S, accumulate: 0, gOff: 0, gStride: S }, `${op}: fold dy over K=${K} points`);
      if (pointGradsPreferred(ctx, B, sb, U)) pointWeightGrads(ctx, what, x, dyB, weight, bias, sb, U, true);
      else convWeightGrad(ctx, what, x, dyB, weight, bias, sb, U, manifold.eye(), false);
      dyB.dispose();
    }
    if (tape.coefGrad) {
      foldCoef(ctx, z, dy, { S, gOff: 0, gStride: S }, `${op}: coefficient gradient`);
    }
    if (s.relu) dy.dispose();
  });
  return y;
}

/**
 * Basis gradients of a conv over s.K points with coefficients `coef` [s.K, B] (accumulated into weight.grad / bias.grad),
 * and dL/dC when dcoef: the GEMM over positions runs once per WGRAD_BMAX basis tensors, each point's tile folded into
 * them in the kernel (the cheaper way while B <= K).
 */
function convWeightGrad(ctx: Ctx, what: string, x: AnyTensor, dy: Tensor, weight: Param, bias: Param | null, s: ConvShape, U: Record<string, number>, coef: Tensor, dcoef: boolean): void {
  const { gpu, manifold } = ctx;
  const B = manifold.B;
  let sp = wgradSplit(ctx, s, U, B, false);
  // the lanes kernel writes dL/dC partials per lane; where those would pass 32 MiB (wide layers, many points), the
  // tiled kernel (one partial per workgroup) runs this weight gradient instead
  if (dcoef && sp.Z * sp.tilesM * sp.tilesN * sp.dcPerGroup * s.K * B * 4 > Math.min(gpu.bindingLimit, 32 * 2 ** 20)) sp = wgradSplit(ctx, s, U, B, false, 'tiled');
  const { tilesM, tilesN, Z } = sp;
  const part = new Tensor(gpu, [Z, B, s.Cout, U.R], 'conv.wgrad.part');
  const G = Z * tilesM * tilesN * sp.dcPerGroup;
  const dcpart = dcoef ? new Tensor(gpu, [G, s.K, B], 'conv.dcoef.part') : null;
  if (dcpart) gpu.commandEncoder().clearBuffer(dcpart.buffer, 0, dcpart.size * 4);
  const nb = Math.min(B, conv.WGRAD_BMAX);
  for (let bOff = 0; bOff < B; bOff += nb) {
    gpu.dispatch({
      kernel: sp.kernel(nb, !!bias, dcoef),
      buffers: {
        x: x.buffer, dy: dy.buffer, coef: coef.buffer, part: part.buffer,
        ...(dcpart ? { weight: weight.basis.buffer, dcpart: dcpart.buffer, ...(bias ? { bias: bias.basis.buffer } : {}) } : {}),
      },
      uniforms: { ...U, KG: sp.KG, S: sp.S, PS: sp.PS, bOff, tilesM, tilesN },
      groups: [tilesM, tilesN, Z],
      what: `${what} (weight gradient)`,
      flops: 2 * s.K * sp.P * s.Cout * U.R,
    });
  }
  const gw = weight.ensureGrad();
  const gb = bias?.ensureGrad();
  gpu.dispatch({
    kernel: spec(conv.convWgradReduceKernel, !!bias),
    buffers: { part: part.buffer, gw: gw.buffer, ...(gb ? { gb: gb.buffer } : {}) },
    uniforms: { Z, B, Cout: s.Cout, R0: U.R0, R: U.R, accumulate: 1, zPer: Z },
    groups: groups1d(B * s.Cout * U.R),
    what: `${what} (weight gradient reduce)`,
  });
  part.dispose();
  if (dcpart) {
    gpu.dispatch({
      kernel: spec(conv.coefReduceKernel),
      buffers: { part: dcpart.buffer, dcoef: manifold.ensureCoefGrad().buffer },
      uniforms: { G, KB: s.K * B },
      groups: [Math.ceil((s.K * B) / 64)],
      what: `${what} (coefficient gradient)`,
    });
    dcpart.dispose();
  }
}

/**
 * How the weight-gradient reduction over (points, positions) is split into Z = ceil(K / KG) * S workgroup layers, so
 * that enough workgroups run within a partial-buffer budget. perPoint forces one point per layer (KG = 1), so that
 * the partials of point k are layers k*S .. k*S + S - 1.
 */
function wgradSplit(ctx: Ctx, s: ConvShape, U: Record<string, number>, B: number, perPoint: boolean, family = convFamily(ctx, s)) {
  const lanes = family === 'lanes';
  let tilesM: number, tilesN: number, BK: number, kernel: (nb: number, hasBias: boolean, dcoef: boolean) => KernelSpec;
  let dcPerGroup = 1; // dcoef partials per workgroup
  if (lanes) {
    const l = conv.chooseLanes(U.R, s.Cout);
    [tilesM, tilesN] = conv.lanesGrid(l, U.R, s.Cout);
    BK = 1;
    dcPerGroup = l.WG;
    kernel = (nb, hasBias, dcoef) => spec(conv.convWeightGradLanesKernel, l, nb, hasBias, dcoef);
  } else {
    const tw = conv.chooseTiles(s.Cout, U.R);
    tilesM = Math.ceil(U.R / tw.BM); tilesN = Math.ceil(s.Cout / tw.BN);
    BK = tw.BK;
    kernel = (nb, hasBias, dcoef) => spec(conv.convWeightGradKernel, tw, nb, hasBias, dcoef);
  }
  const P = s.N * s.OH * s.OW;
  const budget = Math.min(ctx.gpu.bindingLimit / 4, 8 * 2 ** 20);
  const zMax = Math.max(perPoint ? s.K : 1, Math.min(ctx.maxWgradLayers ?? Infinity, Math.floor(budget / (B * s.Cout * U.R))));
  // a GPU wants ~1024 workgroups in flight; a CPU adapter has a few threads and pays for every partial layer
  const zWant = Math.min(zMax, Math.max(perPoint ? s.K : 1, Math.ceil((lanes ? 16 : 1024) / (tilesM * tilesN))));
  let KG: number, S: number;
  if (zWant <= s.K && !perPoint) {
    S = 1;
    KG = Math.ceil(s.K / zWant);
  } else {
    KG = 1;
    S = Math.max(1, Math.min(Math.floor(zWant / s.K), Math.ceil(P / (BK * 8))));
  }
  const PS = Math.ceil(Math.ceil(P / S) / BK) * BK;
  S = Math.ceil(P / PS);
  return { kernel, tilesM, tilesN, dcPerGroup, P, KG, S, PS, Z: Math.ceil(s.K / KG) * S };
}

/** Bytes of the per-point weight-gradient partials of pointWeightGrads. */
const pointPartBytes = (s: ConvShape, U: Record<string, number>, Z: number) => Z * s.Cout * U.R * 4;

/**
 * With B > WGRAD_BMAX basis tensors, pointWeightGrads (one GEMM) beats convWeightGrad (one GEMM per WGRAD_BMAX basis
 * tensors), unless its per-point partials would not fit one binding, or a test forces the folding kernel.
 */
function pointGradsPreferred(ctx: Ctx, B: number, s: ConvShape, U: Record<string, number>): boolean {
  return B > conv.WGRAD_BMAX && !ctx.foldWgrad && pointPartBytes(s, U, wgradSplit(ctx, s, U, 1, true).Z) <= ctx.gpu.bindingLimit;
}

/**
 * Gradients of a conv through each point's own weight gradient: one GEMM pass with a coefficient of 1 and one point
 * per partial layer, reduced per point to [K, Cout, R0] and [K, Cout], then folded into the basis gradients (when the
 * tape wants them) and dotted with every basis tensor for dL/dC (when it wants those). For B > K, B > WGRAD_BMAX,
 * or a tape without basis gradients, where convWeightGrad would run the GEMM once per WGRAD_BMAX basis tensors.
 */
function pointWeightGrads(ctx: Ctx, what: string, x: AnyTensor, dy: Tensor, weight: Param, bias: Param | null, s: ConvShape, U: Record<string, number>, perBasis = false): void {
  const { gpu } = ctx;
  const K = s.K;
  const sp = wgradSplit(ctx, s, U, 1, true);
  const { tilesM, tilesN, Z } = sp;
  check(pointPartBytes(s, U, Z) <= gpu.bindingLimit, what, `per-point weight gradients of ${K} points (${pointPartBytes(s, U, Z)} bytes) exceed the binding limit ${gpu.bindingLimit}: evaluate fewer points per block`);
  const ones = ctx.manifold.ones(); // K <= max(manifold K, B): points, or basis tensors on the perBasis path
  const part = new Tensor(gpu, [Z, 1, s.Cout, U.R], 'conv.wgrad.part');
  gpu.dispatch({
    kernel: sp.kernel(1, !!bias, false),
    buffers: { x: x.buffer, dy: dy.buffer, coef: ones.buffer, part: part.buffer },
    uniforms: { ...U, B: 1, KG: 1, S: sp.S, PS: sp.PS, bOff: 0, tilesM, tilesN },
    groups: [tilesM, tilesN, Z],
    what: `${what} (per-point weight gradient)`,
    flops: 2 * K * sp.P * s.Cout * U.R,
  });
  // perBasis (the shared-input path, whose "points" are the B basis tensors): straight into the basis gradients
  const gw = perBasis ? weight.ensureGrad() : new Tensor(gpu, [K, s.Cout * U.R0], 'conv.wgrad.points');
  const gb = perBasis ? bias?.ensureGrad() ?? null : bias ? new Tensor(gpu, [K, s.Cout], 'conv.bgrad.points') : null;
  gpu.dispatch({
    kernel: spec(conv.convWgradReduceKernel, !!bias),
    buffers: { part: part.buffer, gw: gw.buffer, ...(gb ? { gb: gb.buffer } : {}) },
    uniforms: { Z, B: 1, Cout: s.Cout, R0: U.R0, R: U.R, accumulate: perBasis ? 1 : 0, zPer: sp.S },
    groups: groups1d(K * s.Cout * U.R),
    what: `${what} (per-point weight gradient reduce)`,
  });
  if (perBasis) {
    part.dispose();
    return;
  }
  foldPointGrads(ctx, gw, [weight], what);
  if (bias && gb) foldPointGrads(ctx, gb, [bias], what);
  part.dispose(); gw.dispose(); gb?.dispose();
}

// ---------------------------------------------------------------- elementwise

function elementwise(ctx: Ctx, name: string, inputs: Record<string, AnyTensor>, expr: string, shape: readonly number[], label: string, extra: Record<string, number> = {}, extraU: KernelSpec['uniforms'] = [], prelude = ''): Tensor {
  const names = Object.keys(inputs);
  const y = new Tensor(ctx.gpu, shape, label);
  const per = ctx.gpu.elemsPerThread;
  const k = spec(misc.elementwiseKernel, name, names, expr, extraU, prelude, per);
  const buffers: Record<string, GPUBuffer> = { y: y.buffer };
  for (const n of names) buffers[`${n}_`] = inputs[n].buffer;
  ctx.gpu.dispatch({ kernel: k, buffers, uniforms: { n: y.size, ...extra }, groups: groups1d(y.size, 256 * per), what: `${name} ${shapeStr(shape)}` });
  return y;
}

/** dy * (y > 0): the ReLU backward, also used for fused ReLUs. Returns a new tensor. */
function reluMask(ctx: Ctx, dy: Tensor, y: AnyTensor): Tensor {
  return elementwise(ctx, 'relu.bwd', { g: dy, o: y }, 'select(0.0, g, o > 0.0)', dy.shape, 'relu.dx');
}

function kLeading(ctx: Ctx, x: AnyTensor, op: string): void {
  check(x.shape.length >= 2 && x.shape[0] === ctx.manifold.K, op, `input ${shapeStr(x.shape)} must be [K=${ctx.manifold.K}, N, ...]`);
}

export function relu(ctx: Ctx, x: AnyTensor): Tensor {
  kLeading(ctx, x, 'relu');
  if (ctx.pairedMasks) return pairedRelu(ctx, x);
  const y = elementwise(ctx, 'relu.fwd', { a: x }, 'max(a, 0.0)', x.shape, 'relu');
  if (ctx.tape) {
    const tape = ctx.tape;
    tape.own(y);
    tape.record('relu', () => {
      const dy = tape.gradOf(y);
      if (dy) tape.addGrad(x, reluMask(ctx, dy, y));
    });
  }
  return y;
}

function pairedRelu(ctx: Ctx, x: AnyTensor): Tensor {
  const K = ctx.manifold.K;
  check(K % 2 === 0, 'relu (paired masks)', `needs an even number of points, got K = ${K}`);
  const S = x.size / K;
  const run = (g: AnyTensor, mode: number, label: string) => {
    const y = new Tensor(ctx.gpu, x.shape, label);
    ctx.gpu.dispatch({ kernel: spec(misc.reluPairedKernel), buffers: { a: x.buffer, g: g.buffer, y: y.buffer }, uniforms: { n: x.size, S, mode }, groups: groups1d(x.size), what: `relu (paired masks) ${shapeStr(x.shape)}` });
    return y;
  };
  const y = run(x, 0, 'relu');
  if (ctx.tape) {
    const tape = ctx.tape;
    tape.own(y);
    tape.record('relu (paired masks)', () => {
      const dy = tape.gradOf(y);
      if (dy) tape.addGrad(x, run(dy, 1, 'relu.dx'));
    });
  }
  return y;
}

/**
 * An activation y = f(a), elementwise, with its backward dx = f'(a) dy written as a WGSL expression of g (the output
 * gradient), a (the input) and o (the output); `prelude` holds the WGSL functions both use.
 */
export interface Activation {
  fwd: string;
  bwd: string;
  prelude?: string;
}

const ERF = `fn erf_(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * z);
  let y = 1.0 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-z * z);
  return select(-y, y, x >= 0.0);
}`;
const GELU_T = `fn gelu_t(a: f32) -> f32 { return tanh(clamp(0.7978845608 * (a + 0.044715 * a * a * a), -20.0, 20.0)); }`;
const SIGMOID = `fn sigmoid_(a: f32) -> f32 { return 1.0 / (1.0 + exp(-a)); }`;

/** The activations computed by one elementwise kernel each way (erf: Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). */
export const ACTIVATIONS = {
  tanh: { fwd: 'tanh(clamp(a, -20.0, 20.0))', bwd: 'g * (1.0 - o * o)' },
  gelu_erf: { prelude: ERF, fwd: '0.5 * a * (1.0 + erf_(a * 0.70710678))', bwd: 'g * (0.5 * (1.0 + erf_(a * 0.70710678)) + a * 0.39894228 * exp(-0.5 * a * a))' },
  gelu_tanh: { prelude: GELU_T, fwd: '0.5 * a * (1.0 + gelu_t(a))', bwd: 'g * (0.5 * (1.0 + gelu_t(a)) + 0.5 * a * (1.0 - gelu_t(a) * gelu_t(a)) * 0.7978845608 * (1.0 + 0.134145 * a * a))' },
  silu: { prelude: SIGMOID, fwd: 'a * sigmoid_(a)', bwd: 'g * sigmoid_(a) * (1.0 + a * (1.0 - sigmoid_(a)))' },
} satisfies Record<string, Activation>;

/** y = f(x) for an activation of ACTIVATIONS, with its backward on the tape. */
export function activation(ctx: Ctx, x: AnyTensor, name: keyof typeof ACTIVATIONS): Tensor {
  kLeading(ctx, x, name);
  const f: Activation = ACTIVATIONS[name];
  const y = elementwise(ctx, `${name}.fwd`, { a: x }, f.fwd, x.shape, name, {}, [], f.prelude);
  if (ctx.tape) {
    const tape = ctx.tape;
    tape.own(y);
    tape.record(name, () => {
      const dy = tape.gradOf(y);
      if (dy) tape.addGrad(x, elementwise(ctx, `${name}.bwd`, { g: dy, a: x, o: y }, f.bwd, x.shape, `${name}.dx`, {}, [], f.prelude));
    });
  }
  return y;
}

export const tanh = (ctx: Ctx, x: AnyTensor): Tensor => activation(ctx, x, 'tanh');
/** GELU, exact (erf) or PyTorch's tanh approximation. */
export const gelu = (ctx: Ctx, x: AnyTensor, form: 'erf' | 'tanh' = 'erf'): Tensor => activation(ctx, x, form === 'erf' ? 'gelu_erf' : 'gelu_tanh');
/** SiLU (swish): x * sigmoid(x). */
export const silu = (ctx: Ctx, x: AnyTensor): Tensor => activation(ctx, x, 'silu');

/** Residual add a + b (same shapes). */
export function add(ctx: Ctx, a: AnyTensor, b: AnyTensor): Tensor {
  check(shapeStr(a.shape) === shapeStr(b.shape), 'add', `shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)} differ`);
  kLeading(ctx, a, 'add');
  const y = elementwise(ctx, 'add.fwd', { a, b }, 'a + b', a.shape, 'add');
  if (ctx.tape) {
    const tape = ctx.tape;
    tape.own(y);
    tape.record('add', () => {
      const dy = tape.gradOf(y);
      if (!dy) return;
      tape.addGrad(a, elementwise(ctx, 'copy', { a: dy }, 'a', a.shape, 'add.da'));
      tape.addGrad(b, elementwise(ctx, 'copy', { a: dy }, 'a', b.shape, 'add.db'));
    });
  }
  return y;
}

/** [K, N, ...rest] -> [K, N, prod(rest)]: a view, no copy. */
/** [K, N, C, H, W] -> [K, N, C*H*W]; a shared image batch [N, C, H, W] -> a shared [N, C*H*W] (e.g. an MLP's input). */
export function flatten(ctx: Ctx, x: Tensor): AnyTensor {
  if (x.shape.length === 4) return x.reshape([x.shape[0], x.size / x.shape[0]]);
  kLeading(ctx, x, 'flatten');
  const [K, N] = x.shape;
  return x.reshape([K, N, x.size / (K * N)]);
}

/** Inverted dropout with a seeded counter-based hash (each point gets its own mask). Identity when p = 0. */
export function dropout(ctx: Ctx, x: AnyTensor, p: number, seed: number): AnyTensor {
  check(p >= 0 && p < 1, 'dropout', `p=${p} must be in [0, 1)`);
  kLeading(ctx, x, 'dropout');
  if (p === 0) return x;
  const expr = 'select(0.0, a * u.scale, uniform01(u.seed, i) >= u.p)';
  const U: KernelSpec['uniforms'] = [['p', 'f32'], ['scale', 'f32'], ['seed', 'u32']];
  const vals = { p, scale: 1 / (1 - p), seed: seed >>> 0 };
  const y = elementwise(ctx, 'dropout', { a: x }, expr, x.shape, 'dropout', vals, U, misc.HASH);
  if (ctx.tape) {
    const tape = ctx.tape;
    tape.own(y);
    tape.record('dropout', () => {
      const dy = tape.gradOf(y);
      if (dy) tape.addGrad(x, elementwise(ctx, 'dropout', { a: dy }, expr, x.shape, 'dropout.dx', vals, U, misc.HASH));
    });
  }
  return y;
}

// ---------------------------------------------------------------- pooling

function poolShape(ctx: Ctx, x: AnyTensor, op: string): number[] {
  check(x.shape.length === 5 && x.shape[0] === ctx.manifold.K, op, `input ${shapeStr(x.shape)} must be [K=${ctx.manifold.K}, N, C, H, W]`);
  return [...x.shape];
}

function poolOp(ctx: Ctx, x: AnyTensor, kind: 'max' | 'avg', u: { OH: number; OW: number; KH: number; KW: number; stride: number; pad: number; adaptive: number }, op: string): Tensor {
  const [K, N, C, H, W] = poolShape(ctx, x, op);
  const planes = K * N * C;
  if (ctx.pairedMasks && kind === 'max') check(K % 2 === 0, op, `paired masks need an even number of points, got K = ${K}`);
  const U = { planes, H, W, ...u, paired: ctx.pairedMasks && kind === 'max' ? 1 : 0, pp: N * C };
  const y = out(ctx, [K, N, C, u.OH, u.OW], op);
  const what = `${op} x ${shapeStr(x.shape)}`;
  const gpu = ctx.gpu;
  let argmax: Tensor | null = null;
  if (kind === 'max') {
    argmax = new Tensor(gpu, y.shape, 'maxpool.argmax', 'u32');
    if (ctx.tape) ctx.tape.own(argmax);
    gpu.dispatch({ kernel: spec(pool.maxPoolForwardKernel, gpu.elemsPerThread), buffers: { x: x.buffer, y: y.buffer, argmax: argmax.buffer }, uniforms: U, groups: groups1d(y.size, 256 * gpu.elemsPerThread), what });
  } else {
    gpu.dispatch({ kernel: spec(pool.avgPoolForwardKernel), buffers: { x: x.buffer, y: y.buffer }, uniforms: U, groups: groups1d(y.size), what });
  }
  const tape = ctx.tape;
  if (!tape) {
    argmax?.dispose();
    return y;
  }
  tape.record(op, () => {
    const dy = tape.gradOf(y);
    if (!dy) return;
    const dx = new Tensor(gpu, x.shape, `d${op}`);
    if (kind === 'max' && !u.adaptive && u.stride >= u.KH && u.stride >= u.KW) {
      gpu.commandEncoder().clearBuffer(dx.buffer, 0, dx.size * 4);
      gpu.dispatch({ kernel: spec(pool.maxPoolScatterKernel), buffers: { dy: dy.buffer, argmax: argmax!.buffer, dx: dx.buffer }, uniforms: U, groups: groups1d(dy.size), what: `${what} (backward, non-overlapping windows)` });
    } else if (kind === 'max') gpu.dispatch({ kernel: spec(pool.maxPoolBackwardKernel), buffers: { dy: dy.buffer, argmax: argmax!.buffer, dx: dx.buffer }, uniforms: U, groups: groups1d(dx.size), what: `${what} (backward)` });
    else gpu.dispatch({ kernel: spec(pool.avgPoolBackwardKernel), buffers: { dy: dy.buffer, dx: dx.buffer }, uniforms: U, groups: groups1d(dx.size), what: `${what} (backward)` });
    tape.addGrad(x, dx);
  });
  return y;
}

export interface PoolOptions {
  kernel: number;
  stride?: number;
  pad?: number;
}

function fixedPool(ctx: Ctx, x: AnyTensor, o: PoolOptions, kind: 'max' | 'avg'): Tensor {
  const op = `${kind}pool2d`;
  const [, , , H, W] = poolShape(ctx, x, op);
  const k = o.kernel, stride = o.stride ?? k, pad = o.pad ?? 0;
  check(pad * 2 <= k, op, `padding ${pad} must be at most half the kernel ${k}`);
  const OH = outSize(H, k, stride, pad), OW = outSize(W, k, stride, pad);
  check(OH > 0 && OW > 0, op, `kernel ${k} does not fit input ${H}x${W}`);
  return poolOp(ctx, x, kind, { OH, OW, KH: k, KW: k, stride, pad, adaptive: 0 }, op);
}

export const maxPool2d = (ctx: Ctx, x: AnyTensor, o: PoolOptions): Tensor => fixedPool(ctx, x, o, 'max');
export const avgPool2d = (ctx: Ctx, x: AnyTensor, o: PoolOptions): Tensor => fixedPool(ctx, x, o, 'avg');

/** PyTorch's AdaptiveAvgPool2d: bin i spans [floor(i*H/OH), ceil((i+1)*H/OH)), overlapping when H is not a multiple of OH. */
export function adaptiveAvgPool2d(ctx: Ctx, x: AnyTensor, size: [number, number]): Tensor {
  poolShape(ctx, x, 'adaptive_avgpool2d');
  check(size[0] > 0 && size[1] > 0, 'adaptive_avgpool2d', `output size ${size} must be positive`);
  return poolOp(ctx, x, 'avg', { OH: size[0], OW: size[1], KH: 0, KW: 0, stride: 1, pad: 0, adaptive: 1 }, 'adaptive_avgpool2d');
}

// ---------------------------------------------------------------- batch norm

export interface BatchNormOptions {
  eps?: number;
  /** The MPO reference's parametrization: gamma_eff = gamma + 1 (gamma initialised to 0). */
  reparam?: boolean;
  /**
   * Running statistics (B basis tensors each, combined per point like any parameter). mode 'use': evaluation mode,
   * normalize with them (constants in the backward); 'update': training mode (batch statistics) and afterwards
   * update them as PyTorch does (one point only).
   */
  running?: { mean: Param; var: Param; mode: 'use' | 'update'; momentum?: number };
}

/**
 * Batch norm over x [K, N, C, H, W]: training mode with per-point statistics over (N, H, W) for each channel, or
 * evaluation mode with (per-point combinations of) running statistics.
 */
export function batchNorm2d(ctx: Ctx, x: AnyTensor, gamma: Param, beta: Param, o: BatchNormOptions = {}): Tensor {
  const op = `batchnorm2d(${gamma.name})`;
  const [K, N, C, H, W] = poolShape(ctx, x, op);
  check(gamma.shape.length === 1 && gamma.shape[0] === C && beta.shape[0] === C, op, `gamma ${shapeStr(gamma.shape)} / beta ${shapeStr(beta.shape)} must be [${C}]`);
  const run = o.running;
  const fixed = run?.mode === 'use';
  if (run) check(run.mean.shape[0] === C && run.var.shape[0] === C, op, `running statistics ${shapeStr(run.mean.shape)} / ${shapeStr(run.var.shape)} must be [${C}]`);
  if (!fixed) check(N * H * W > 1, op, `needs more than one value per channel, got N*H*W = ${N * H * W}`);
  const { gpu, manifold } = ctx;
  const U = { K, N, C, HW: H * W, B: manifold.B, eps: o.eps ?? 1e-5, gammaOffset: o.reparam ? 1 : 0, fixedStats: fixed ? 1 : 0 };
  const what = `${op} x ${shapeStr(x.shape)}`;
  const stats = new Tensor(gpu, [K, C, 2], 'bn.stats');
  if (fixed) {
    gpu.dispatch({ kernel: spec(misc.bnRunningStatsKernel), buffers: { coef: manifold.coef.buffer, rmean: run.mean.basis.buffer, rvar: run.var.basis.buffer, stats: stats.buffer }, uniforms: { K, C, B: manifold.B, eps: U.eps }, groups: groups1d(K * C, 64), what: `${what} (running statistics)` });
  } else {
    gpu.dispatch({ kernel: spec(misc.bnStatsKernel), buffers: { x: x.buffer, stats: stats.buffer }, uniforms: U, groups: [C, K], what });
    if (run) {
      check(K === 1 && manifold.B === 1, op, `updating running statistics needs one point with one basis tensor, got K = ${K}, B = ${manifold.B}`);
      gpu.dispatch({ kernel: spec(misc.bnRunningUpdateKernel), buffers: { stats: stats.buffer, rmean: run.mean.basis.buffer, rvar: run.var.basis.buffer }, uniforms: { C, eps: U.eps, momentum: run.momentum ?? 0.1, M: N * H * W }, groups: groups1d(C, 64), what: `${what} (running statistics update)` });
    }
  }
  const y = out(ctx, [K, N, C, H, W], op);
  const common = { coef: manifold.coef.buffer, gamma: gamma.basis.buffer, beta: beta.basis.buffer };
  gpu.dispatch({ kernel: spec(misc.bnApplyKernel), buffers: { x: x.buffer, stats: stats.buffer, ...common, y: y.buffer }, uniforms: U, groups: groups1d(y.size), what });
  const tape = ctx.tape;
  if (!tape) {
    stats.dispose();
    return y;
  }
  tape.own(stats);
  tape.record(op, () => {
    const dy = tape.gradOf(y);
    if (!dy) return;
    const dx = new Tensor(gpu, x.shape, `d${op}`);
    const pg = new Tensor(gpu, [K, fixed ? 4 : 2, C], 'bn.pointgrad');
    gpu.dispatch({ kernel: spec(misc.bnBackwardKernel), buffers: { dy: dy.buffer, x: x.buffer, stats: stats.buffer, ...common, dx: dx.buffer, pg: pg.buffer }, uniforms: U, groups: [C, K], what: `${what} (backward)` });
    tape.addGrad(x, dx);
    // evaluation mode: the running statistics get basis gradients too (and their share of dL/dC)
    foldPointGrads(ctx, pg, fixed ? [gamma, beta, run.mean, run.var] : [gamma, beta], what);
    pg.dispose();
  });
  return y;
}

/** dp[b, s] (+)= sum_k C[k,b] g[k, gOff + s] (g rows of length gStride), in passes of FOLD_NB basis tensors. */
function foldBasis(ctx: Ctx, g: Tensor, dp: Tensor, u: { S: number; accumulate: number; gOff: number; gStride: number }, what: string): void {
  const { K, B, coef } = ctx.manifold;
  for (let bOff = 0; bOff < B; bOff += misc.FOLD_NB) {
    ctx.gpu.dispatch({ kernel: spec(misc.foldBasisKernel), buffers: { coef: coef.buffer, g: g.buffer, dp: dp.buffer }, uniforms: { K, B, ...u, bOff }, groups: groups1d(u.S), what });
  }
}

/** dcoef[k, b] += sum_s p[b, s] g[k, gOff + s], in passes of FOLD_NB basis tensors. */
function foldCoef(ctx: Ctx, p: Tensor, g: Tensor, u: { S: number; gOff: number; gStride: number }, what: string): void {
  const { K, B } = ctx.manifold;
  const dcoef = ctx.manifold.ensureCoefGrad();
  for (let bOff = 0; bOff < B; bOff += misc.FOLD_NB) {
    ctx.gpu.dispatch({ kernel: spec(misc.foldCoefKernel), buffers: { p: p.buffer, g: g.buffer, dcoef: dcoef.buffer }, uniforms: { K, B, ...u, bOff }, groups: [K], what });
  }
}

/** Per-point gradients g [K, sum of param sizes] (params side by side) -> basis gradients and dcoef. */
function foldPointGrads(ctx: Ctx, g: Tensor, params: Param[], what: string): void {
  const stride = params.reduce((a, p) => a + p.size, 0);
  let off = 0;
  for (const p of params) {
    if (ctx.tape?.basisGrad !== false) foldBasis(ctx, g, p.ensureGrad(), { S: p.size, accumulate: 1, gOff: off, gStride: stride }, `${what} (${p.name} basis gradient)`);
    if (ctx.tape?.coefGrad) foldCoef(ctx, p.basis, g, { S: p.size, gOff: off, gStride: stride }, `${what} (${p.name} coefficient gradient)`);
    off += p.size;
  }
}

// ---------------------------------------------------------------- loss

export interface LossOutput {
  /** [2K]: mean cross-entropy of each point, then accuracy of each point. */
  out: Tensor;
  K: number;
  /** Reads back { loss [K], acc [K] }. */
  read(): Promise<{ loss: Float32Array; acc: Float32Array }>;
}

/** Softmax cross-entropy of logits [K, N, C] against labels [N] (u32): per-point mean loss and accuracy. */
export function crossEntropy(ctx: Ctx, logits: AnyTensor, labels: Tensor): LossOutput {
  const op = 'cross_entropy';
  check(logits.shape.length === 3 && logits.shape[0] === ctx.manifold.K, op, `logits ${shapeStr(logits.shape)} must be [K=${ctx.manifold.K}, N, classes]`);
  const [K, N, C] = logits.shape;
  check(labels.dtype === 'u32' && labels.shape.length === 1 && labels.shape[0] === N, op, `labels ${shapeStr(labels.shape)} must be u32 [${N}]`);
  const { gpu } = ctx;
  const o = out(ctx, [2 * K], 'loss');
  const U = { K, N, C };
  gpu.dispatch({ kernel: spec(misc.crossEntropyForwardKernel), buffers: { logits: logits.buffer, labels: labels.buffer, out: o.buffer }, uniforms: U, groups: [K], what: `${op} logits ${shapeStr(logits.shape)}` });
  const tape = ctx.tape;
  if (tape) {
    tape.loss = {
      K,
      seed: (pw: Tensor) => {
        const dl = new Tensor(gpu, logits.shape, 'dlogits');
        gpu.dispatch({ kernel: spec(misc.crossEntropyBackwardKernel), buffers: { logits: logits.buffer, labels: labels.buffer, out: o.buffer, pw: pw.buffer, dl: dl.buffer }, uniforms: U, groups: groups1d(K * N), what: `${op} backward` });
        tape.addGrad(logits, dl);
      },
    };
  }
  return {
    out: o,
    K,
    async read() {
      const v = await o.read();
      return { loss: v.slice(0, K), acc: v.slice(K) };
    },
  };
}

// ---------------------------------------------------------------- points and the toy loss

/**
 * Every point's value of a parameter, W_k = sum_b C[k,b] basis[b], as [K, ...shape] (e.g. the configuration P of the
 * toy landscape on a hyperplane). Backward: per-point gradients folded into dL/dC and, unless basisGrad is false,
 * into the basis gradient.
 */
export function pointValues(ctx: Ctx, p: Param, o: { basisGrad?: boolean } = {}): Tensor {
  const { gpu, manifold } = ctx;
  const { K, B } = manifold;
  const S = p.size;
  const y = out(ctx, [K, ...p.shape], `points(${p.name})`);
  const per = gpu.elemsPerThread;
  gpu.dispatch({ kernel: spec(misc.combineKernel, false, per), buffers: { coef: manifold.coef.buffer, z: p.basis.buffer, y: y.buffer }, uniforms: { K, B, S }, groups: groups1d(K * S, 256 * per), what: `points(${p.name}) [${K}x${S}]` });
  const tape = ctx.tape;
  if (tape) {
    tape.record(`points(${p.name})`, () => {
      const g = tape.gradOf(y);
      if (!g) return;
      if (o.basisGrad !== false && tape.basisGrad) foldBasis(ctx, g, p.ensureGrad(), { S, accumulate: 1, gOff: 0, gStride: S }, `points(${p.name}) basis gradient`);
      if (tape.coefGrad) foldCoef(ctx, p.basis, g, { S, gOff: 0, gStride: S }, `points(${p.name}) coefficient gradient`);
    });
  }
  return y;
}

/**
 * The n-wedge surrogate loss (Fort & Jastrzebski 2019) of each point x [K, D]: sqrt of the sum of squares of its D - n
 * smallest |x_i|, with n per point (keep, u32 [K]). The output has the cross-entropy's layout ([2K]: loss, then 0).
 */
export function wedgeLoss(ctx: Ctx, x: AnyTensor, keep: Tensor): LossOutput {
  const op = 'wedge_loss';
  check(x.shape.length === 2 && x.shape[0] === ctx.manifold.K, op, `x ${shapeStr(x.shape)} must be [K=${ctx.manifold.K}, D]`);
  const [K, D] = x.shape;
  check(keep.dtype === 'u32' && keep.size === K, op, `keep ${shapeStr(keep.shape)} must be u32 [${K}]`);
  check(K <= ctx.gpu.maxGroups, op, `K = ${K} points exceed the adapter's ${ctx.gpu.maxGroups} workgroups per dimension`);
  const { gpu } = ctx;
  const o = out(ctx, [2 * K], 'wedge.loss');
  const info = new Tensor(gpu, [K, 3], 'wedge.info', 'u32');
  gpu.dispatch({ kernel: spec(wedge.wedgeForwardKernel), buffers: { x: x.buffer, keep: keep.buffer, out: o.buffer, info: info.buffer }, uniforms: { K, D }, groups: [K], what: `${op} x ${shapeStr(x.shape)}` });
  const tape = ctx.tape;
  if (tape) {
    tape.own(info);
    tape.loss = {
      K,
      seed: (pw: Tensor) => {
        const dx = new Tensor(gpu, x.shape, 'dwedge');
        gpu.dispatch({ kernel: spec(wedge.wedgeBackwardKernel), buffers: { x: x.buffer, keep: keep.buffer, out: o.buffer, info: info.buffer, pw: pw.buffer, dx: dx.buffer }, uniforms: { K, D }, groups: groups1d(K * D), what: `${op} backward` });
        tape.addGrad(x, dx);
      },
    };
  } else info.dispose();
  return { out: o, K, async read() { const v = await o.read(); return { loss: v.slice(0, K), acc: v.slice(K) }; } };
}

// conv2d and linear over a weight manifold: forward, input gradient, and basis and coefficient gradients, with the
// kernel family (tiled for GPUs, lanes for CPU adapters) and the weight-gradient path chosen per layer.
import type { ConvKernels } from '../device.ts';
import type { KernelSpec } from '../kernel.ts';
import type { Param } from '../manifold.ts';
import { Tensor, type AnyTensor, outSize, shapeStr } from '../tensor.ts';
import { spec } from '../kernel.ts';
import { WGRAD_BMAX, coefReduceKernel, convWgradReduceKernel } from './conv.wgsl.ts';
import { chooseTiles, convForwardKernel, convInputGradKernel, convWeightGradKernel } from './conv-tiled.wgsl.ts';
import {
  chooseLanes,
  chooseRowLanes,
  convForwardLanesKernel,
  convForwardRowKernel,
  convInputGradLanesKernel,
  convInputGradRowKernel,
  convWeightGradLanesKernel,
  lanesFit,
  lanesGrid,
  rowGrid,
} from './conv-lanes.wgsl.ts';
import { chooseLinearLanes, isLinearShape, linearLanesKernel } from './linear-lanes.wgsl.ts';
import { combineKernel } from './fold.wgsl.ts';
import { type Ctx, check, out, groups1d, keepForBackward, onBackward, pointsOf } from './ctx.ts';
import { combineBasis, foldBasis, foldCoef, foldPointGrads } from './fold.ts';
import { reluMask } from './elementwise.ts';

/** The conv kernel family for a layer: the context's, or tiled where the kernel window is too large for lanes. */
function convFamily(ctx: Ctx, s: { KH: number; KW: number }): ConvKernels {
  const f = ctx.convKernels ?? ctx.gpu.convKernels;
  return f === 'lanes' && !lanesFit(s.KH, s.KW) ? 'tiled' : f;
}

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
  check(
    wCin === Cin,
    op,
    `input ${shapeStr(x.shape)} has ${Cin} channels, weight ${shapeStr(weight.shape)} expects ${wCin}`,
  );
  check(weight.B === ctx.manifold.B, op, `weight has B=${weight.B} basis tensors, manifold B=${ctx.manifold.B}`);
  if (bias)
    check(bias.shape.length === 1 && bias.shape[0] === Cout, op, `bias ${shapeStr(bias.shape)} must be [${Cout}]`);
  const stride = opts.stride ?? 1,
    pad = opts.pad ?? 0;
  const OH = outSize(H, KH, stride, pad),
    OW = outSize(W, KW, stride, pad);
  check(OH > 0 && OW > 0, op, `kernel ${KH}x${KW} with padding ${pad} does not fit input ${H}x${W}`);
  return convCore(
    ctx,
    op,
    x,
    weight,
    bias,
    { K, shared, N, Cin, H, W, Cout, KH, KW, OH, OW, stride, pad, relu: !!opts.relu },
    [K, N, Cout, OH, OW],
  );
}

/** y[k] = x[k] W_k^T + b_k. x: [K, N, F] or shared [N, F]; weight [O, F]; bias [O]. Returns [K, N, O]. */
export function linear(
  ctx: Ctx,
  x: AnyTensor,
  weight: Param,
  bias: Param | null,
  opts: { relu?: boolean } = {},
): Tensor {
  const op = `linear(${weight.name})`;
  const { K, shared, dims } = pointsOf(ctx, x, 3, op);
  check(dims.length === 2, op, `input ${shapeStr(x.shape)} must be [K, N, F] or [N, F]`);
  const [N, F] = dims;
  check(
    weight.shape.length === 2 && weight.shape[1] === F,
    op,
    `input ${shapeStr(x.shape)} has ${F} features, weight ${shapeStr(weight.shape)} must be [O, ${F}]`,
  );
  check(weight.B === ctx.manifold.B, op, `weight has B=${weight.B} basis tensors, manifold B=${ctx.manifold.B}`);
  const O = weight.shape[0];
  if (bias) check(bias.shape.length === 1 && bias.shape[0] === O, op, `bias ${shapeStr(bias.shape)} must be [${O}]`);
  return convCore(
    ctx,
    op,
    x,
    weight,
    bias,
    { K, shared, N, Cin: F, H: 1, W: 1, Cout: O, KH: 1, KW: 1, OH: 1, OW: 1, stride: 1, pad: 0, relu: !!opts.relu },
    [K, N, O],
  );
}

interface ConvShape {
  K: number;
  shared: boolean;
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  KH: number;
  KW: number;
  OH: number;
  OW: number;
  stride: number;
  pad: number;
  relu: boolean;
}

function convCore(
  ctx: Ctx,
  op: string,
  x: AnyTensor,
  weight: Param,
  bias: Param | null,
  s: ConvShape,
  yShape: number[],
): Tensor {
  if (s.shared && s.K > ctx.manifold.B) return convSharedInput(ctx, op, x, weight, bias, s, yShape);
  const { gpu, manifold } = ctx;
  const { U, what } = convUniforms(ctx, op, x, weight, bias, s);
  // More basis tensors than points (random-subspace training: a few points, up to thousands of basis tensors): each
  // point's weights are built once here, instead of a B-term sum in every weight-tile load of every kernel.
  const direct = manifold.B > s.K;
  const wK = direct
    ? combineBasis(ctx, weight.basis, `${op}: weights of K=${s.K} points from B=${manifold.B} basis tensors`)
    : null;
  const bK = direct && bias ? combineBasis(ctx, bias.basis, `${op}: biases of K=${s.K} points`) : null;
  const y = out(ctx, yShape, op);
  convForwardDispatch(
    ctx,
    x,
    wK ?? weight.basis,
    bias ? (bK ?? bias.basis) : null,
    direct ? null : manifold.coef,
    y,
    s,
    U,
    what,
  );
  if (!keepForBackward(ctx, wK, bK)) return y;
  onBackward(ctx, op, y, (dyOut, tape) => {
    const dy = s.relu ? reluMask(ctx, dyOut, y) : dyOut;
    // input gradient (not for the shared input batch)
    if (!s.shared) {
      const dx = new Tensor(gpu, x.shape, `d${op}.x`);
      const Mi = s.N * s.H * s.W;
      let kernel: KernelSpec, grid: [number, number];
      const lanes = convFamily(ctx, s) === 'lanes';
      const lin = lanes && isLinearShape(s);
      const rl = lanes && !lin && s.stride === 1 ? chooseRowLanes(s.W, s.N * s.H, s.Cin, s.KW, 1) : null;
      if (lin) {
        const l = chooseLinearLanes(s.Cin, s.N);
        kernel = spec(linearLanesKernel, l, 'dgrad', false, 'none', direct);
        grid = lanesGrid(l, s.Cin, s.N);
      } else if (rl) {
        kernel = spec(convInputGradRowKernel, rl, direct);
        grid = rowGrid(rl, s.W, s.N * s.H, s.Cin);
      } else if (lanes) {
        const l = chooseLanes(Mi, s.Cin);
        kernel = spec(convInputGradLanesKernel, l, s.stride === 1, direct);
        grid = lanesGrid(l, Mi, s.Cin);
      } else {
        const td = chooseTiles(s.Cin, Mi);
        kernel = spec(convInputGradKernel, td, s.stride === 1, direct);
        grid = [Math.ceil(Mi / td.BM), Math.ceil(s.Cin / td.BN)];
      }
      gpu.dispatch({
        kernel,
        buffers: {
          dy: dy.buffer,
          weight: (wK ?? weight.basis).buffer,
          ...(direct ? {} : { coef: manifold.coef.buffer }),
          dx: dx.buffer,
        },
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

function convUniforms(ctx: Ctx, op: string, x: AnyTensor, weight: Param, bias: Param | null, s: ConvShape) {
  const B = ctx.manifold.B;
  const R0 = s.Cin * s.KH * s.KW;
  const R = R0 + (bias ? 1 : 0);
  const what = `${op}: x ${shapeStr(x.shape)}, w ${shapeStr(weight.shape)}, K=${s.K}, B=${B}, stride ${s.stride}, pad ${s.pad}`;
  const U: Record<string, number> = {
    K: s.K,
    N: s.N,
    Cin: s.Cin,
    H: s.H,
    W: s.W,
    Cout: s.Cout,
    OH: s.OH,
    OW: s.OW,
    KH: s.KH,
    KW: s.KW,
    stride: s.stride,
    pad: s.pad,
    B,
    xKStride: s.shared ? 0 : s.N * s.Cin * s.H * s.W,
    R0,
    R,
  };
  return { U, what };
}

/** The forward conv; coef null: weight and bias hold each point's own values ([K, Cout, R0], [K, Cout]). */
function convForwardDispatch(
  ctx: Ctx,
  x: AnyTensor,
  weight: Tensor,
  bias: Tensor | null,
  coef: Tensor | null,
  y: Tensor,
  s: ConvShape,
  U: Record<string, number>,
  what: string,
): void {
  const M = s.N * s.OH * s.OW;
  const act = s.relu ? 'relu' : 'none';
  let kernel: KernelSpec, grid: [number, number];
  const lanes = convFamily(ctx, s) === 'lanes';
  const lin = lanes && isLinearShape(s);
  const rl = lanes && !lin ? chooseRowLanes(s.OW, s.N * s.OH, s.Cout, s.KW, s.stride) : null;
  if (lin) {
    const l = chooseLinearLanes(s.Cout, s.N);
    kernel = spec(linearLanesKernel, l, 'fwd', !!bias, act, !coef);
    grid = lanesGrid(l, s.Cout, s.N);
  } else if (rl) {
    kernel = spec(convForwardRowKernel, rl, !!bias, act, !coef);
    grid = rowGrid(rl, s.OW, s.N * s.OH, s.Cout);
  } else if (lanes) {
    const l = chooseLanes(M, s.Cout);
    kernel = spec(convForwardLanesKernel, l, !!bias, act, !coef);
    grid = lanesGrid(l, M, s.Cout);
  } else {
    const tf = chooseTiles(s.Cout, M);
    kernel = spec(convForwardKernel, tf, !!bias, act, !coef);
    grid = [Math.ceil(M / tf.BM), Math.ceil(s.Cout / tf.BN)];
  }
  ctx.gpu.dispatch({
    kernel,
    buffers: {
      x: x.buffer,
      weight: weight.buffer,
      ...(bias ? { bias: bias.buffer } : {}),
      ...(coef ? { coef: coef.buffer } : {}),
      y: y.buffer,
    },
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
function convSharedInput(
  ctx: Ctx,
  op: string,
  x: AnyTensor,
  weight: Param,
  bias: Param | null,
  s: ConvShape,
  yShape: number[],
): Tensor {
  const { gpu, manifold } = ctx;
  const { K, B } = manifold;
  const sb: ConvShape = { ...s, K: B, relu: false };
  const { U, what } = convUniforms(ctx, op, x, weight, bias, sb);
  const S = s.N * s.Cout * s.OH * s.OW;
  const z = new Tensor(gpu, [B, ...yShape.slice(1)], `${op}.basis_out`);
  convForwardDispatch(ctx, x, weight.basis, bias?.basis ?? null, manifold.eye(), z, sb, U, `${what} (per basis)`);
  const y = out(ctx, yShape, op);
  const per = gpu.elemsPerThread;
  gpu.dispatch({
    kernel: spec(combineKernel, s.relu, per),
    buffers: { coef: manifold.coef.buffer, z: z.buffer, y: y.buffer },
    uniforms: { K, B, S },
    groups: groups1d(K * S, 256 * per),
    what: `${op}: combine ${B} basis outputs into K=${K} points`,
  });
  if (!keepForBackward(ctx, z)) return y;
  onBackward(ctx, op, y, (dyOut, tape) => {
    const dy = s.relu ? reluMask(ctx, dyOut, y) : dyOut;
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
function convWeightGrad(
  ctx: Ctx,
  what: string,
  x: AnyTensor,
  dy: Tensor,
  weight: Param,
  bias: Param | null,
  s: ConvShape,
  U: Record<string, number>,
  coef: Tensor,
  dcoef: boolean,
): void {
  const { gpu, manifold } = ctx;
  const B = manifold.B;
  let sp = wgradSplit(ctx, s, U, B, false);
  // the lanes kernel writes dL/dC partials per lane; where those would pass 32 MiB (wide layers, many points), the
  // tiled kernel (one partial per workgroup) runs this weight gradient instead
  if (dcoef && sp.Z * sp.tilesM * sp.tilesN * sp.dcPerGroup * s.K * B * 4 > Math.min(gpu.bindingLimit, 32 * 2 ** 20))
    sp = wgradSplit(ctx, s, U, B, false, 'tiled');
  const { tilesM, tilesN, Z } = sp;
  const part = new Tensor(gpu, [Z, B, s.Cout, U.R], 'conv.wgrad.part');
  const G = Z * tilesM * tilesN * sp.dcPerGroup;
  const dcpart = dcoef ? new Tensor(gpu, [G, s.K, B], 'conv.dcoef.part') : null;
  if (dcpart) gpu.commandEncoder().clearBuffer(dcpart.buffer, 0, dcpart.size * 4);
  const nb = Math.min(B, WGRAD_BMAX);
  for (let bOff = 0; bOff < B; bOff += nb) {
    gpu.dispatch({
      kernel: sp.kernel(nb, !!bias, dcoef),
      buffers: {
        x: x.buffer,
        dy: dy.buffer,
        coef: coef.buffer,
        part: part.buffer,
        ...(dcpart
          ? { weight: weight.basis.buffer, dcpart: dcpart.buffer, ...(bias ? { bias: bias.basis.buffer } : {}) }
          : {}),
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
    kernel: spec(convWgradReduceKernel, !!bias),
    buffers: { part: part.buffer, gw: gw.buffer, ...(gb ? { gb: gb.buffer } : {}) },
    uniforms: { Z, B, Cout: s.Cout, R0: U.R0, R: U.R, accumulate: 1, zPer: Z },
    groups: groups1d(B * s.Cout * U.R),
    what: `${what} (weight gradient reduce)`,
  });
  part.dispose();
  if (dcpart) {
    gpu.dispatch({
      kernel: spec(coefReduceKernel),
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
function wgradSplit(
  ctx: Ctx,
  s: ConvShape,
  U: Record<string, number>,
  B: number,
  perPoint: boolean,
  family = convFamily(ctx, s),
) {
  const lanes = family === 'lanes';
  let tilesM: number, tilesN: number, BK: number, kernel: (nb: number, hasBias: boolean, dcoef: boolean) => KernelSpec;
  let dcPerGroup = 1; // dcoef partials per workgroup
  if (lanes) {
    const l = chooseLanes(U.R, s.Cout);
    [tilesM, tilesN] = lanesGrid(l, U.R, s.Cout);
    BK = 1;
    dcPerGroup = l.WG;
    kernel = (nb, hasBias, dcoef) => spec(convWeightGradLanesKernel, l, nb, hasBias, dcoef);
  } else {
    const tw = chooseTiles(s.Cout, U.R);
    tilesM = Math.ceil(U.R / tw.BM);
    tilesN = Math.ceil(s.Cout / tw.BN);
    BK = tw.BK;
    kernel = (nb, hasBias, dcoef) => spec(convWeightGradKernel, tw, nb, hasBias, dcoef);
  }
  const P = s.N * s.OH * s.OW;
  const budget = Math.min(ctx.gpu.bindingLimit / 4, 8 * 2 ** 20);
  const zMax = Math.max(
    perPoint ? s.K : 1,
    Math.min(ctx.maxWgradLayers ?? Infinity, Math.floor(budget / (B * s.Cout * U.R))),
  );
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
  return (
    B > WGRAD_BMAX && !ctx.foldWgrad && pointPartBytes(s, U, wgradSplit(ctx, s, U, 1, true).Z) <= ctx.gpu.bindingLimit
  );
}

/**
 * Gradients of a conv through each point's own weight gradient: one GEMM pass with a coefficient of 1 and one point
 * per partial layer, reduced per point to [K, Cout, R0] and [K, Cout], then folded into the basis gradients (when the
 * tape wants them) and dotted with every basis tensor for dL/dC (when it wants those). For B > K, B > WGRAD_BMAX,
 * or a tape without basis gradients, where convWeightGrad would run the GEMM once per WGRAD_BMAX basis tensors.
 */
function pointWeightGrads(
  ctx: Ctx,
  what: string,
  x: AnyTensor,
  dy: Tensor,
  weight: Param,
  bias: Param | null,
  s: ConvShape,
  U: Record<string, number>,
  perBasis = false,
): void {
  const { gpu } = ctx;
  const K = s.K;
  const sp = wgradSplit(ctx, s, U, 1, true);
  const { tilesM, tilesN, Z } = sp;
  check(
    pointPartBytes(s, U, Z) <= gpu.bindingLimit,
    what,
    `per-point weight gradients of ${K} points (${pointPartBytes(s, U, Z)} bytes) exceed the binding limit ${gpu.bindingLimit}: evaluate fewer points per block`,
  );
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
  const gb = perBasis ? (bias?.ensureGrad() ?? null) : bias ? new Tensor(gpu, [K, s.Cout], 'conv.bgrad.points') : null;
  gpu.dispatch({
    kernel: spec(convWgradReduceKernel, !!bias),
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
  part.dispose();
  gw.dispose();
  gb?.dispose();
}

// ---------------------------------------------------------------- elementwise

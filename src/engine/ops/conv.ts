// conv2d and linear over a weight manifold: forward, input gradient, and basis and coefficient gradients, with the
// kernel family (tiled for GPUs, lanes for CPU adapters) and the weight-gradient path chosen per layer.

import { type KernelSpec, spec } from '../kernel.ts';
import type { Param } from '../manifold.ts';
import { Tensor, type AnyTensor, outSize, shapeStr } from '../tensor.ts';
import { chooseTiles, convForwardKernel, convInputGradKernel } from './conv-tiled.wgsl.ts';
import { chooseLanes, convForwardLanesKernel, convInputGradLanesKernel, lanesGrid } from './conv-lanes.wgsl.ts';
import { chooseRowLanes, convForwardRowKernel, convInputGradRowKernel, rowGrid } from './conv-rows.wgsl.ts';
import { chooseLinearLanes, isLinearShape, linearLanesKernel } from './linear-lanes.wgsl.ts';
import { combineKernel } from './fold.wgsl.ts';
import { type Ctx, check, out, groups1d, keepForBackward, onBackward, pointsOf } from './ctx.ts';
import { combineBasis, foldBasis, foldCoef } from './fold.ts';
import { reluMask } from './elementwise.ts';
import { convFamily, type ConvShape, convWeightGrad, pointGradsPreferred, pointWeightGrads } from './conv-wgrad.ts';
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
  const what =
    `${op}: x ${shapeStr(x.shape)}, w ${shapeStr(weight.shape)},` +
    ` K=${s.K}, B=${B}, stride ${s.stride}, pad ${s.pad}`;
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

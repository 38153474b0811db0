// Grouped and depthwise convolution over a weight manifold: every point's weights made by pointValues (whose
// backward folds the per-point gradients into basis and coefficient gradients), then direct kernels for the forward
// pass and the input, weight and bias gradients. For the few grouped layers of imported graphs; dense convolutions
// take the tiled kernels of conv.ts.
import type { Param } from '../manifold.ts';
import { Tensor, type AnyTensor, outSize, shapeStr } from '../tensor.ts';
import { spec } from '../kernel.ts';
import { gconvForwardKernel, gconvInputGradKernel, gconvWeightGradKernel } from './gconv.wgsl.ts';
import { type Ctx, check, groups1d, onBackward, out, pointsOf } from './ctx.ts';
import { pointValues } from './fold.ts';

export interface GroupConvOptions {
  groups: number;
  stride?: number;
  pad?: number;
}

/**
 * y[k] = conv(x[k], W_k, groups) + b_k. x: [K, N, Cin, H, W] or shared [N, Cin, H, W]; weight [Cout, Cin/G, KH, KW];
 * bias [Cout]. Returns [K, N, Cout, OH, OW].
 */
export function groupConv2d(ctx: Ctx, x: AnyTensor, weight: Param, bias: Param | null, o: GroupConvOptions): Tensor {
  const op = `gconv2d(${weight.name})`;
  const { K, shared, dims } = pointsOf(ctx, x, 5, op);
  const [N, Cin, H, W] = dims;
  const G = o.groups;
  check(weight.shape.length === 4, op, `weight ${shapeStr(weight.shape)} must be [Cout, Cin/groups, KH, KW]`);
  const [Cout, Cg, KH, KW] = weight.shape;
  check(Number.isInteger(G) && G >= 1 && Cin % G === 0 && Cout % G === 0, op, `${G} groups of ${Cin} -> ${Cout}`);
  check(Cg * G === Cin, op, `input ${shapeStr(x.shape)}: weight ${shapeStr(weight.shape)} takes ${Cg * G} channels`);
  if (bias) check(bias.shape.length === 1 && bias.shape[0] === Cout, op, `bias ${shapeStr(bias.shape)} != [${Cout}]`);
  const stride = o.stride ?? 1,
    pad = o.pad ?? 0;
  const OH = outSize(H, KH, stride, pad),
    OW = outSize(W, KW, stride, pad);
  check(OH > 0 && OW > 0, op, `kernel ${KH}x${KW} with padding ${pad} does not fit input ${H}x${W}`);
  const wk = pointValues(ctx, weight);
  const bk = bias ? pointValues(ctx, bias) : null;
  const U = {
    K,
    N,
    Cin,
    H,
    W,
    Cout,
    OH,
    OW,
    KH,
    KW,
    G,
    stride,
    pad,
    xStride: shared ? 0 : N * Cin * H * W,
    hasBias: bias ? 1 : 0,
  };
  const { gpu } = ctx;
  const y = out(ctx, [K, N, Cout, OH, OW], op);
  const what = `${op} x ${shapeStr(x.shape)}`;
  gpu.dispatch({
    kernel: spec(gconvForwardKernel),
    buffers: { x: x.buffer, wt: wk.buffer, b: (bk ?? wk).buffer, y: y.buffer },
    uniforms: U,
    groups: groups1d(y.size),
    what,
  });
  if (!ctx.tape) {
    wk.dispose();
    bk?.dispose();
    return y;
  }
  onBackward(ctx, op, y, (dy, tape) => {
    if (!shared) {
      const dx = new Tensor(gpu, x.shape, `d${op}.x`);
      gpu.dispatch({
        kernel: spec(gconvInputGradKernel),
        buffers: { dy: dy.buffer, wt: wk.buffer, dx: dx.buffer },
        uniforms: U,
        groups: groups1d(dx.size),
        what: `${what} (input gradient)`,
      });
      tape.addGrad(x, dx);
    }
    const dw = new Tensor(gpu, wk.shape, `d${op}.w`);
    const db = new Tensor(gpu, bk ? bk.shape : [1], `d${op}.b`);
    gpu.dispatch({
      kernel: spec(gconvWeightGradKernel),
      buffers: { dy: dy.buffer, x: x.buffer, dw: dw.buffer, db: db.buffer },
      uniforms: U,
      groups: groups1d(dw.size + (bk ? db.size : 0)),
      what: `${what} (weight gradient)`,
    });
    tape.addGrad(wk, dw);
    if (bk) tape.addGrad(bk, db);
    else db.dispose();
  });
  return y;
}

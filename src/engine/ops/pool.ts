// Pooling: max and average pools with a fixed window, and PyTorch's adaptive average pool.
import { Tensor, type AnyTensor, outSize, shapeStr } from '../tensor.ts';
import { spec } from '../kernel.ts';
import {
  avgPoolBackwardKernel,
  avgPoolForwardKernel,
  maxPoolBackwardKernel,
  maxPoolForwardKernel,
  maxPoolScatterKernel,
  padKernel,
} from './pool.wgsl.ts';
import { type Ctx, check, out, groups1d, imageInput, keepForBackward, onBackward } from './ctx.ts';

export function poolOp(
  ctx: Ctx,
  x: AnyTensor,
  kind: 'max' | 'avg',
  u: { OH: number; OW: number; KH: number; KW: number; stride: number; pad: number; adaptive: number },
  op: string,
): Tensor {
  const [K, N, C, H, W] = imageInput(ctx, x, op);
  const planes = K * N * C;
  if (ctx.pairedMasks && kind === 'max')
    check(K % 2 === 0, op, `paired masks need an even number of points, got K = ${K}`);
  const U = { planes, H, W, ...u, paired: ctx.pairedMasks && kind === 'max' ? 1 : 0, pp: N * C };
  const y = out(ctx, [K, N, C, u.OH, u.OW], op);
  const what = `${op} x ${shapeStr(x.shape)}`;
  const gpu = ctx.gpu;
  let argmax: Tensor | null = null;
  if (kind === 'max') {
    argmax = new Tensor(gpu, y.shape, 'maxpool.argmax', 'u32');
    gpu.dispatch({
      kernel: spec(maxPoolForwardKernel, gpu.elemsPerThread),
      buffers: { x: x.buffer, y: y.buffer, argmax: argmax.buffer },
      uniforms: U,
      groups: groups1d(y.size, 256 * gpu.elemsPerThread),
      what,
    });
  } else {
    gpu.dispatch({
      kernel: spec(avgPoolForwardKernel),
      buffers: { x: x.buffer, y: y.buffer },
      uniforms: U,
      groups: groups1d(y.size),
      what,
    });
  }
  if (!keepForBackward(ctx, argmax)) return y;
  onBackward(ctx, op, y, (dy, tape) => {
    const dx = new Tensor(gpu, x.shape, `d${op}`);
    if (kind === 'max' && !u.adaptive && u.stride >= u.KH && u.stride >= u.KW) {
      gpu.commandEncoder().clearBuffer(dx.buffer, 0, dx.size * 4);
      gpu.dispatch({
        kernel: spec(maxPoolScatterKernel),
        buffers: { dy: dy.buffer, argmax: argmax!.buffer, dx: dx.buffer },
        uniforms: U,
        groups: groups1d(dy.size),
        what: `${what} (backward, non-overlapping windows)`,
      });
    } else if (kind === 'max')
      gpu.dispatch({
        kernel: spec(maxPoolBackwardKernel),
        buffers: { dy: dy.buffer, argmax: argmax!.buffer, dx: dx.buffer },
        uniforms: U,
        groups: groups1d(dx.size),
        what: `${what} (backward)`,
      });
    else
      gpu.dispatch({
        kernel: spec(avgPoolBackwardKernel),
        buffers: { dy: dy.buffer, dx: dx.buffer },
        uniforms: U,
        groups: groups1d(dx.size),
        what: `${what} (backward)`,
      });
    tape.addGrad(x, dx);
  });
  return y;
}

export interface PoolOptions {
  kernel: number;
  stride?: number;
  pad?: number;
}

export function fixedPool(ctx: Ctx, x: AnyTensor, o: PoolOptions, kind: 'max' | 'avg'): Tensor {
  const op = `${kind}pool2d`;
  const [, , , H, W] = imageInput(ctx, x, op);
  const k = o.kernel,
    stride = o.stride ?? k,
    pad = o.pad ?? 0;
  check(pad * 2 <= k, op, `padding ${pad} must be at most half the kernel ${k}`);
  const OH = outSize(H, k, stride, pad),
    OW = outSize(W, k, stride, pad);
  check(OH > 0 && OW > 0, op, `kernel ${k} does not fit input ${H}x${W}`);
  return poolOp(ctx, x, kind, { OH, OW, KH: k, KW: k, stride, pad, adaptive: 0 }, op);
}

export const maxPool2d = (ctx: Ctx, x: AnyTensor, o: PoolOptions): Tensor => fixedPool(ctx, x, o, 'max');

export const avgPool2d = (ctx: Ctx, x: AnyTensor, o: PoolOptions): Tensor => fixedPool(ctx, x, o, 'avg');

/** PyTorch's AdaptiveAvgPool2d: bin i spans [floor(i*H/OH), ceil((i+1)*H/OH)), overlapping when H is not a multiple of
 * OH. */
export function adaptiveAvgPool2d(ctx: Ctx, x: AnyTensor, size: [number, number]): Tensor {
  imageInput(ctx, x, 'adaptive_avgpool2d');
  check(size[0] > 0 && size[1] > 0, 'adaptive_avgpool2d', `output size ${size} must be positive`);
  return poolOp(
    ctx,
    x,
    'avg',
    { OH: size[0], OW: size[1], KH: 0, KW: 0, stride: 1, pad: 0, adaptive: 1 },
    'adaptive_avgpool2d',
  );
}

/** Zero padding of the last two axes: [top, left, bottom, right], each >= 0. */
export type Pads = [number, number, number, number];

/**
 * Zero padding of images x: [K, N, C, H, W], or a shared batch [N, C, H, W] (then the output is shared too, with no
 * backward: a shared input is data). The backward crops the output gradient.
 */
export function pad2d(ctx: Ctx, x: AnyTensor, pads: Pads): AnyTensor {
  const op = 'pad2d';
  check(
    pads.every((p) => Number.isInteger(p) && p >= 0),
    op,
    `pads ${pads.join(', ')} must be whole numbers >= 0`,
  );
  const shared = x.shape.length === 4;
  if (!shared) imageInput(ctx, x, op);
  const [H, W] = x.shape.slice(-2);
  const lead = x.shape.slice(0, -2);
  const [top, left, bottom, right] = pads;
  const OH = H + top + bottom,
    OW = W + left + right;
  const planes = lead.reduce((a, b) => a * b, 1);
  const run = (
    src: AnyTensor,
    dst: Tensor,
    u: { H: number; W: number; OH: number; OW: number; t: number; l: number },
  ) =>
    ctx.gpu.dispatch({
      kernel: spec(padKernel),
      buffers: { x: src.buffer, y: dst.buffer },
      uniforms: { planes, H: u.H, W: u.W, OH: u.OH, OW: u.OW, top: u.t, left: u.l },
      groups: groups1d(dst.size),
      what: `${op} ${pads.join(',')} x ${shapeStr(src.shape)}`,
    });
  const y = shared ? new Tensor(ctx.gpu, [...lead, OH, OW], op) : out(ctx, [...lead, OH, OW], op);
  run(x, y, { H, W, OH, OW, t: top, l: left });
  if (shared) return y;
  onBackward(ctx, op, y, (dy, tape) => {
    const dx = new Tensor(ctx.gpu, x.shape, `d${op}`);
    run(dy, dx, { H: OH, W: OW, OH: H, OW: W, t: -top, l: -left });
    tape.addGrad(x, dx);
  });
  return y;
}

// ---------------------------------------------------------------- batch norm

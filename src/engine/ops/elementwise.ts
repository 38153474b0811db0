// Elementwise ops: ReLU (also with masks shared by point pairs), leaky ReLU, the activations of ACTIVATIONS (tanh,
// sigmoid, GELU, SiLU), the
// residual add, flatten (a view) and seeded dropout.
import { type KernelSpec, spec } from '../kernel.ts';
import { Tensor, type AnyTensor, shapeStr } from '../tensor.ts';
import { ACTIVATIONS, type Activation, HASH, elementwiseKernel, reluPairedKernel } from './elementwise.wgsl.ts';
import { type Ctx, check, groups1d, kLeading, onBackward } from './ctx.ts';
export function elementwise(
  ctx: Ctx,
  name: string,
  inputs: Record<string, AnyTensor>,
  expr: string,
  shape: readonly number[],
  label: string,
  extra: Record<string, number> = {},
  extraU: KernelSpec['uniforms'] = [],
  prelude = '',
): Tensor {
  const names = Object.keys(inputs);
  const y = new Tensor(ctx.gpu, shape, label);
  const per = ctx.gpu.elemsPerThread;
  const k = spec(elementwiseKernel, name, names, expr, extraU, prelude, per);
  const buffers: Record<string, GPUBuffer> = { y: y.buffer };
  for (const n of names) buffers[`${n}_`] = inputs[n].buffer;
  ctx.gpu.dispatch({
    kernel: k,
    buffers,
    uniforms: { n: y.size, ...extra },
    groups: groups1d(y.size, 256 * per),
    what: `${name} ${shapeStr(shape)}`,
  });
  return y;
}

/** dy * (y > 0): the ReLU backward, also used for fused ReLUs. Returns a new tensor. */
export function reluMask(ctx: Ctx, dy: Tensor, y: AnyTensor): Tensor {
  return elementwise(ctx, 'relu.bwd', { g: dy, o: y }, 'select(0.0, g, o > 0.0)', dy.shape, 'relu.dx');
}

export function relu(ctx: Ctx, x: AnyTensor): Tensor {
  kLeading(ctx, x, 'relu');
  if (ctx.pairedMasks) return pairedRelu(ctx, x);
  const y = elementwise(ctx, 'relu.fwd', { a: x }, 'max(a, 0.0)', x.shape, 'relu');
  onBackward(ctx, 'relu', y, (dy, tape) => tape.addGrad(x, reluMask(ctx, dy, y)), true);
  return y;
}

export function pairedRelu(ctx: Ctx, x: AnyTensor): Tensor {
  const K = ctx.manifold.K;
  check(K % 2 === 0, 'relu (paired masks)', `needs an even number of points, got K = ${K}`);
  const S = x.size / K;
  const run = (g: AnyTensor, mode: number, label: string) => {
    const y = new Tensor(ctx.gpu, x.shape, label);
    ctx.gpu.dispatch({
      kernel: spec(reluPairedKernel),
      buffers: { a: x.buffer, g: g.buffer, y: y.buffer },
      uniforms: { n: x.size, S, mode },
      groups: groups1d(x.size),
      what: `relu (paired masks) ${shapeStr(x.shape)}`,
    });
    return y;
  };
  const y = run(x, 0, 'relu');
  onBackward(ctx, 'relu (paired masks)', y, (dy, tape) => tape.addGrad(x, run(dy, 1, 'relu.dx')), true);
  return y;
}

/** y = f(x) for an activation of ACTIVATIONS, with its backward on the tape. */
export function activation(ctx: Ctx, x: AnyTensor, name: keyof typeof ACTIVATIONS): Tensor {
  kLeading(ctx, x, name);
  const f: Activation = ACTIVATIONS[name];
  const y = elementwise(ctx, `${name}.fwd`, { a: x }, f.fwd, x.shape, name, {}, [], f.prelude);
  onBackward(
    ctx,
    name,
    y,
    (dy, tape) =>
      tape.addGrad(
        x,
        elementwise(ctx, `${name}.bwd`, { g: dy, a: x, o: y }, f.bwd, x.shape, `${name}.dx`, {}, [], f.prelude),
      ),
    true,
  );
  return y;
}

export const tanh = (ctx: Ctx, x: AnyTensor): Tensor => activation(ctx, x, 'tanh');

/** GELU, exact (erf) or PyTorch's tanh approximation. */
export const gelu = (ctx: Ctx, x: AnyTensor, form: 'erf' | 'tanh' = 'erf'): Tensor =>
  activation(ctx, x, form === 'erf' ? 'gelu_erf' : 'gelu_tanh');

/** SiLU (swish): x * sigmoid(x). */
export const silu = (ctx: Ctx, x: AnyTensor): Tensor => activation(ctx, x, 'silu');

/** The logistic sigmoid 1 / (1 + exp(-x)). */
export const sigmoid = (ctx: Ctx, x: AnyTensor): Tensor => activation(ctx, x, 'sigmoid');

/** Leaky ReLU: x for x > 0, alpha * x otherwise. */
export function leakyRelu(ctx: Ctx, x: AnyTensor, alpha: number): Tensor {
  kLeading(ctx, x, 'leaky_relu');
  const U: KernelSpec['uniforms'] = [['alpha', 'f32']];
  const y = elementwise(
    ctx,
    'leaky_relu.fwd',
    { a: x },
    'select(a * u.alpha, a, a > 0.0)',
    x.shape,
    'leaky_relu',
    {
      alpha,
    },
    U,
  );
  onBackward(
    ctx,
    'leaky_relu',
    y,
    (dy, tape) =>
      tape.addGrad(
        x,
        elementwise(
          ctx,
          'leaky_relu.bwd',
          { g: dy, a: x },
          'select(g * u.alpha, g, a > 0.0)',
          x.shape,
          'leaky_relu.dx',
          {
            alpha,
          },
          U,
        ),
      ),
    true,
  );
  return y;
}

/** Residual add a + b (same shapes). */
export function add(ctx: Ctx, a: AnyTensor, b: AnyTensor): Tensor {
  check(shapeStr(a.shape) === shapeStr(b.shape), 'add', `shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)} differ`);
  kLeading(ctx, a, 'add');
  const y = elementwise(ctx, 'add.fwd', { a, b }, 'a + b', a.shape, 'add');
  onBackward(
    ctx,
    'add',
    y,
    (dy, tape) => {
      tape.addGrad(a, elementwise(ctx, 'copy', { a: dy }, 'a', a.shape, 'add.da'));
      tape.addGrad(b, elementwise(ctx, 'copy', { a: dy }, 'a', b.shape, 'add.db'));
    },
    true,
  );
  return y;
}

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
  const U: KernelSpec['uniforms'] = [
    ['p', 'f32'],
    ['scale', 'f32'],
    ['seed', 'u32'],
  ];
  const vals = { p, scale: 1 / (1 - p), seed: seed >>> 0 };
  const y = elementwise(ctx, 'dropout', { a: x }, expr, x.shape, 'dropout', vals, U, HASH);
  onBackward(
    ctx,
    'dropout',
    y,
    (dy, tape) => tape.addGrad(x, elementwise(ctx, 'dropout', { a: dy }, expr, x.shape, 'dropout.dx', vals, U, HASH)),
    true,
  );
  return y;
}

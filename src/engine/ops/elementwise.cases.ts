// Gradcheck cases of the elementwise ops.
import * as ops from './index.ts';
import * as ref from '../reference.ts';
import type { OpCase } from './case.ts';

/** ReLU, the activations, the residual add and dropout. */
export function elementwiseCases(): OpCase[] {
  return [
    {
      op: 'relu',
      name: 'K7',
      K: 7,
      B: 1,
      x: { shape: [3, 5, 4] },
      gpu: (ctx, x) => ({ y: ops.relu(ctx, x) }),
      ref: (x) => Float64Array.from(x, (v) => Math.max(0, v)),
    },
    {
      op: 'tanh',
      name: 'K3',
      K: 3,
      B: 1,
      x: { shape: [2, 17] },
      gpu: (ctx, x) => ({ y: ops.tanh(ctx, x) }),
      ref: (x) => Float64Array.from(x, Math.tanh),
    },
    {
      op: 'gelu',
      name: 'erf K3 (values to +-6)',
      K: 3,
      B: 1,
      x: { shape: [2, 3, 7], scale: 6 },
      gpu: (ctx, x) => ({ y: ops.gelu(ctx, x, 'erf') }),
      ref: (x) => Float64Array.from(x, ref.geluRef('erf')),
    },
    {
      op: 'gelu',
      name: 'tanh K2 (values to +-6)',
      K: 2,
      B: 1,
      x: { shape: [3, 19], scale: 6 },
      gpu: (ctx, x) => ({ y: ops.gelu(ctx, x, 'tanh') }),
      ref: (x) => Float64Array.from(x, ref.geluRef('tanh')),
    },
    {
      op: 'silu',
      name: 'K5 (values to +-8)',
      K: 5,
      B: 1,
      x: { shape: [2, 13], scale: 8 },
      gpu: (ctx, x) => ({ y: ops.silu(ctx, x) }),
      ref: (x) => Float64Array.from(x, ref.siluRef),
    },
    {
      op: 'sigmoid',
      name: 'K3 (values to +-12)',
      K: 3,
      B: 1,
      x: { shape: [2, 11], scale: 12 },
      gpu: (ctx, x) => ({ y: ops.sigmoid(ctx, x) }),
      ref: (x) => Float64Array.from(x, ref.sigmoidRef),
    },
    {
      op: 'leaky_relu',
      name: 'alpha 0.1 K5',
      K: 5,
      B: 1,
      x: { shape: [3, 7] },
      gpu: (ctx, x) => ({ y: ops.leakyRelu(ctx, x, 0.1) }),
      ref: (x) => Float64Array.from(x, ref.leakyReluRef(0.1)),
    },
    {
      op: 'add',
      name: 'residual K3 (x + relu(x))',
      K: 3,
      B: 1,
      x: { shape: [2, 3, 4, 4] },
      gpu: (ctx, x) => ({ y: ops.add(ctx, x, ops.relu(ctx, x)) }),
      ref: (x) => Float64Array.from(x, (v) => v + Math.max(0, v)),
    },
    {
      op: 'dropout',
      name: 'p=0.3 K7',
      K: 7,
      B: 1,
      x: { shape: [3, 11] },
      gpu: (ctx, x) => ({ y: ops.dropout(ctx, x, 0.3, 1234) }),
      ref: (x) => ref.dropoutRef(x, 0.3, 1234),
    },
  ];
}

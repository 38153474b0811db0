// Gradcheck cases of the pools.
import { outSize } from '../tensor.ts';
import * as ops from './index.ts';
import * as ref from '../reference.ts';
import { type OpCase, perPoint } from './case.ts';

export function poolCase(
  name: string,
  kind: 'max' | 'avg',
  K: number,
  N: number,
  C: number,
  H: number,
  W: number,
  o: { k?: number; stride?: number; pad?: number; adaptive?: [number, number] },
): OpCase {
  const k = o.k ?? 2,
    stride = o.stride ?? k,
    pad = o.pad ?? 0;
  const [OH, OW] = o.adaptive ?? [outSize(H, k, stride, pad), outSize(W, k, stride, pad)];
  const p: ref.PoolRef = { planes: N * C, H, W, OH, OW, k, stride, pad, adaptive: !!o.adaptive };
  return {
    op: o.adaptive ? 'adaptive_avgpool2d' : `${kind}pool2d`,
    name,
    K,
    B: 1,
    x: { shape: [N, C, H, W] },
    gpu: (ctx, x) => ({
      y: o.adaptive
        ? ops.adaptiveAvgPool2d(ctx, x, o.adaptive)
        : kind === 'max'
          ? ops.maxPool2d(ctx, x, { kernel: k, stride, pad })
          : ops.avgPool2d(ctx, x, { kernel: k, stride, pad }),
    }),
    ref: perPoint(K, N * C * H * W, (xk) => ref.poolRef(xk, p, kind)),
  };
}

function padCase(name: string, K: number, N: number, C: number, H: number, W: number, pads: ops.Pads): OpCase {
  return {
    op: 'pad2d',
    name,
    K,
    B: 1,
    x: { shape: [N, C, H, W] },
    gpu: (ctx, x) => ({ y: ops.pad2d(ctx, x, pads) }),
    ref: perPoint(K, N * C * H * W, (xk) => ref.padRef(xk, N * C, H, W, pads)),
  };
}

/** Max, average and adaptive pools: overlapping bins, padding, stride 2; asymmetric zero padding. */
export function poolCases(): OpCase[] {
  return [
    padCase('right and bottom K3', 3, 2, 3, 5, 4, [0, 0, 1, 1]),
    padCase('all sides, uneven K2', 2, 1, 2, 3, 7, [2, 1, 0, 3]),
    poolCase('2x2 K7', 'max', 7, 2, 3, 7, 6, {}),
    poolCase('3x3 stride2 pad1 K1 N1', 'max', 1, 1, 2, 9, 8, { k: 3, stride: 2, pad: 1 }),
    poolCase('2x2 K3', 'avg', 3, 2, 2, 6, 5, {}),
    poolCase('3x3 stride2 pad1', 'avg', 2, 2, 2, 7, 7, { k: 3, stride: 2, pad: 1 }),
    poolCase('3 -> 4 overlapping bins', 'avg', 7, 2, 3, 3, 3, { adaptive: [4, 4] }),
    poolCase('28 -> 4, 7 -> 3', 'avg', 2, 1, 2, 28, 7, { adaptive: [4, 3] }),
  ];
}

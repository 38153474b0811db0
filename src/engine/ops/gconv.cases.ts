// Gradcheck cases of the grouped convolution: depthwise, grouped with a rectangular kernel and stride, a shared input.
import * as ops from './index.ts';
import * as ref from '../reference.ts';
import { type OpCase, concat } from './case.ts';

type GShape = Parameters<typeof ref.groupConvRef>[3];

function gconvCase(name: string, K: number, B: number, s: GShape, o: { shared?: boolean; bias?: boolean }): OpCase {
  const bias = o.bias ?? true;
  const ws = s.Cout * (s.Cin / s.G) * s.KH * s.KW;
  const xs = s.N * s.Cin * s.H * s.W;
  return {
    op: 'gconv2d',
    name,
    K,
    B,
    x: { shape: [s.N, s.Cin, s.H, s.W], shared: o.shared },
    params: [
      { name: 'w', shape: [s.Cout, s.Cin / s.G, s.KH, s.KW] },
      ...(bias ? [{ name: 'b', shape: [s.Cout] }] : []),
    ],
    gpu: (ctx, x, p) => ({
      y: ops.groupConv2d(ctx, x, p[0], bias ? p[1] : null, { groups: s.G, stride: s.stride, pad: s.pad }),
    }),
    ref: (x, p, coef) =>
      concat(
        Array.from({ length: K }, (_, k) =>
          ref.groupConvRef(
            o.shared ? x : Array.prototype.slice.call(x, k * xs, (k + 1) * xs),
            ref.combine(p[0], coef, k, B, ws),
            bias ? ref.combine(p[1], coef, k, B, s.Cout) : null,
            s,
          ),
        ),
      ),
  };
}

export function gconvCases(): OpCase[] {
  const base = { N: 2, H: 5, W: 6, stride: 1, pad: 1 };
  return [
    gconvCase('depthwise 3x3 K3 B2', 3, 2, { ...base, Cin: 3, Cout: 3, KH: 3, KW: 3, G: 3 }, {}),
    gconvCase(
      '2 groups 4 -> 6, 3x2 /2, no bias',
      2,
      3,
      { ...base, Cin: 4, Cout: 6, KH: 3, KW: 2, G: 2, stride: 2, pad: 0 },
      { bias: false },
    ),
    gconvCase(
      'depthwise x2, shared input K4',
      4,
      1,
      { ...base, Cin: 2, Cout: 4, KH: 3, KW: 3, G: 2 },
      { shared: true },
    ),
  ];
}

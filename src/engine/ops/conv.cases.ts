// Gradcheck cases of conv2d and linear (see engine/gradcheck.ts).
import type { Tensor } from '../tensor.ts';
import * as ops from './index.ts';
import * as ref from '../reference.ts';
import { type OpCase, concat } from './case.ts';

/** Reference of a conv over all K points with materialized per-point weights. */
export function convRefAll(K: number, B: number, s: ref.ConvRefShape, shared: boolean, hasBias: boolean, relu = false) {
  return (x: ArrayLike<number>, p: ArrayLike<number>[], coef: ArrayLike<number>) => {
    const xs = s.N * s.Cin * s.H * s.W;
    const ws = s.Cout * s.Cin * s.KH * s.KW;
    const parts: Float64Array[] = [];
    for (let k = 0; k < K; k++) {
      const xk = shared ? x : Array.prototype.slice.call(x, k * xs, (k + 1) * xs);
      const y = ref.conv2dRef(
        xk,
        ref.combine(p[0], coef, k, B, ws),
        hasBias ? ref.combine(p[1], coef, k, B, s.Cout) : null,
        s,
      );
      if (relu) for (let i = 0; i < y.length; i++) y[i] = Math.max(0, y[i]);
      parts.push(y);
    }
    return concat(parts);
  };
}

export function convCase(
  name: string,
  K: number,
  B: number,
  s: ref.ConvRefShape,
  o: {
    shared?: boolean;
    bias?: boolean;
    relu?: boolean;
    foldWgrad?: boolean;
    maxWgradLayers?: number;
    foldChunk?: number;
  } = {},
): OpCase {
  const bias = o.bias ?? true;
  return {
    op: 'conv2d',
    name,
    K,
    B,
    x: { shape: [s.N, s.Cin, s.H, s.W], shared: o.shared },
    params: [{ name: 'w', shape: [s.Cout, s.Cin, s.KH, s.KW] }, ...(bias ? [{ name: 'b', shape: [s.Cout] }] : [])],
    gpu: (ctx, x, p) => ({
      y: ops.conv2d(
        { ...ctx, foldWgrad: o.foldWgrad, maxWgradLayers: o.maxWgradLayers, foldChunk: o.foldChunk },
        x,
        p[0],
        bias ? p[1] : null,
        { stride: s.stride, pad: s.pad, relu: o.relu },
      ),
    }),
    ref: convRefAll(K, B, s, !!o.shared, bias, o.relu),
  };
}

export function linearCase(
  name: string,
  K: number,
  B: number,
  N: number,
  F: number,
  O: number,
  shared = false,
): OpCase {
  return {
    op: 'linear',
    name,
    K,
    B,
    x: { shape: [N, F], shared },
    params: [
      { name: 'w', shape: [O, F] },
      { name: 'b', shape: [O] },
    ],
    gpu: (ctx, x, p) => ({ y: ops.linear(ctx, x, p[0], p[1]) }),
    ref: (x, p, coef) =>
      concat(
        [...Array(K).keys()].map((k) =>
          ref.linearRef(
            shared ? x : Array.prototype.slice.call(x, k * N * F, (k + 1) * N * F),
            ref.combine(p[0], coef, k, B, O * F),
            ref.combine(p[1], coef, k, B, O),
            N,
            F,
            O,
          ),
        ),
      ),
  };
}

/** conv2d, linear and flatten-then-linear cases once per conv kernel family (tiled, lanes): both are checked on any
 * adapter. */
export function bothConvFamilies(cases: OpCase[]): OpCase[] {
  return cases.flatMap((c) =>
    c.op !== 'conv2d' && c.op !== 'linear' && c.op !== 'flatten'
      ? [c]
      : (['tiled', 'lanes'] as const).map(
          (f): OpCase => ({
            ...c,
            name: `${c.name} [${f}]`,
            gpu: (ctx, x, p) => c.gpu({ ...ctx, convKernels: f }, x, p),
          }),
        ),
  );
}

/** conv2d and linear at shapes that do not divide the tiles, stride 1 and 2, padding 0 and 1, Cin = 1, N = 1, K = 1 and
 * 7, B = 1 to 11, every kernel-family path; each case once per conv kernel family. */
export function convCases(): OpCase[] {
  const cs = (
    N: number,
    Cin: number,
    H: number,
    W: number,
    Cout: number,
    KH: number,
    stride: number,
    pad: number,
    KW = KH,
  ): ref.ConvRefShape => ({ N, Cin, H, W, Cout, KH, KW, stride, pad });
  return bothConvFamilies([
    convCase('K1 B1 3x3 pad1 Cin1', 1, 1, cs(2, 1, 7, 6, 5, 3, 1, 1)),
    convCase('K7 B3 3x3 stride2 pad1', 7, 3, cs(2, 3, 9, 7, 10, 3, 2, 1)),
    convCase('K7 B3 5x5 pad0 N1 no bias', 7, 3, cs(1, 4, 8, 9, 6, 5, 1, 0), { bias: false }),
    convCase('K7 B3 3x3 Cout67, 3 points per weight-gradient layer', 7, 3, cs(2, 3, 5, 4, 67, 3, 1, 1), {
      maxWgradLayers: 3,
    }),
    convCase('K3 B1 shared input (per-basis path), fused relu', 3, 1, cs(3, 2, 6, 6, 9, 3, 1, 1), {
      shared: true,
      relu: true,
    }),
    convCase('K7 B3 shared input (per-basis path), stride 2', 7, 3, cs(2, 1, 9, 8, 6, 3, 2, 1), { shared: true }),
    convCase('K9 B6 shared input (per-basis path, per-basis weight gradients)', 9, 6, cs(2, 2, 5, 5, 3, 3, 1, 1), {
      shared: true,
    }),
    convCase('K9 B6 shared input (per-basis path, two fold passes)', 9, 6, cs(2, 2, 5, 5, 3, 3, 1, 1), {
      shared: true,
      foldWgrad: true,
    }),
    // S = 2*3*5*5 = 150 output elements per point in chunks of 40: 4 chunk sums, the last one short; B = 6: 2 passes
    convCase('K7 B6 shared input (coefficient gradient in chunks, two passes)', 7, 6, cs(2, 2, 5, 5, 3, 3, 1, 1), {
      shared: true,
      foldChunk: 40,
    }),
    convCase('K2 B3 shared input (direct path, K <= B)', 2, 3, cs(2, 2, 5, 6, 4, 3, 1, 0), {
      shared: true,
      relu: true,
    }),
    convCase('K2 B3 1x1 stride2 Cout33 (point weights, B > K)', 2, 3, cs(2, 5, 5, 5, 33, 1, 2, 0)),
    convCase('K2 B5 3x3 wide (point weights, B > K)', 2, 5, cs(2, 3, 5, 4, 67, 3, 1, 1)),
    convCase('K6 B5 3x3 wide (per-point weight gradients, B > 4)', 6, 5, cs(2, 3, 5, 4, 67, 3, 1, 1)),
    convCase('K6 B5 3x3 wide (basis-folding weight gradient, two passes)', 6, 5, cs(2, 3, 5, 4, 67, 3, 1, 1), {
      foldWgrad: true,
    }),
    convCase('K3 B11 stride2 no bias (point weights, B > K)', 3, 11, cs(2, 2, 7, 5, 6, 3, 2, 1), { bias: false }),
    convCase(
      'K2 B3 Cin16 Cout60 (lanes: input-gradient weights staged in two chunks)',
      2,
      3,
      cs(1, 16, 5, 5, 60, 3, 1, 1),
    ),
    convCase('K2 B2 Cin64 (lanes: forward weights staged in two chunks)', 2, 2, cs(1, 64, 4, 4, 8, 3, 1, 1)),
    convCase('K3 B2 rows 11 wide (lanes: a partial row segment)', 3, 2, cs(2, 2, 3, 11, 5, 3, 1, 1)),
    convCase('K2 B2 20x16 image (lanes: three workgroups of row segments)', 2, 2, cs(2, 2, 20, 16, 5, 3, 1, 1)),
    convCase(
      'K2 B3 3x3 pad1 on a 3x3 image, relu (lanes: per-position kernels, 4 outputs per lane)',
      2,
      3,
      cs(4, 3, 3, 3, 6, 3, 1, 1),
      { relu: true },
    ),
    convCase('K2 B2 1x3 kernel (KH != KW)', 2, 2, cs(2, 2, 5, 6, 4, 1, 1, 1, 3)),
    convCase('K2 B2 3x1 kernel (KH != KW)', 2, 2, cs(2, 2, 6, 5, 4, 3, 1, 1, 1)),
    convCase('K2 B2 1x1 stride 1 (lanes: row kernels with KW = 1)', 2, 2, cs(2, 3, 4, 9, 5, 1, 1, 0)),
    convCase('K2 B2 7x7 pad3 (lanes: row kernels with KW = 7)', 2, 2, cs(1, 2, 6, 8, 3, 7, 1, 3)),
    convCase('K2 B2 9x9 (lanes: per-position kernels, KW > 7)', 2, 2, cs(1, 2, 10, 10, 3, 9, 1, 2)),
    convCase(
      'K2 B2 stride 2, 9 outputs per row (lanes: a partial stride-2 segment)',
      2,
      2,
      cs(1, 2, 5, 17, 3, 3, 2, 1),
    ),
    convCase(
      'K3 B2 Cin8 Cout60 stride 2 (lanes: per-position input gradient, two chunks)',
      3,
      2,
      cs(1, 8, 5, 5, 60, 3, 2, 1),
    ),
    linearCase('K7 B3', 7, 3, 3, 19, 13),
    linearCase('K2 B2 F600 (lanes: forward weights staged in two chunks)', 2, 2, 3, 600, 16),
    linearCase('K1 B1 N1', 1, 1, 1, 70, 10),
    linearCase('K4 B2 shared input', 4, 2, 5, 11, 7, true),
    linearCase('K2 B2 shared input (direct path)', 2, 2, 3, 9, 5, true),
    linearCase('K2 B7 (point weights, B > K)', 2, 7, 3, 10, 6),
    linearCase(
      'K3 B3 N21 F37 O300 (linear lanes: 2 outputs per lane, 5 lane blocks, 2 row blocks of 11)',
      3,
      3,
      21,
      37,
      300,
    ),
    linearCase(
      'K2 B2 N40 F300 O9 (linear lanes: input gradient with 2 outputs per lane, 3 row blocks)',
      2,
      2,
      40,
      300,
      9,
    ),
    linearCase('K3 B5 N40 F20 O12 (point weights with bias, 2 row blocks of 20)', 3, 5, 40, 20, 12),
    convCase(
      'K3 B2 1x1 conv on a 1x1 image, fused relu (the linear kernels through conv2d)',
      3,
      2,
      cs(5, 7, 1, 1, 11, 1, 1, 0),
      { relu: true },
    ),
    convCase('K2 B3 1x1 conv, stride 2, on a 1x1 image (the linear kernels)', 2, 3, cs(4, 6, 1, 1, 5, 1, 2, 0)),
    linearCase('K2 B4 N20 F13 O40 shared input, point weights (B > K)', 2, 4, 20, 13, 40, true),
    {
      op: 'flatten',
      name: 'then linear K2',
      K: 2,
      B: 2,
      x: { shape: [3, 2, 3, 2] },
      params: [{ name: 'w', shape: [4, 12] }],
      gpu: (ctx, x, p) => ({ y: ops.linear(ctx, ops.flatten(ctx, x as Tensor), p[0], null) }),
      ref: (x, p, coef) =>
        concat(
          [0, 1].map((k) =>
            ref.linearRef(
              Array.prototype.slice.call(x, k * 36, (k + 1) * 36),
              ref.combine(p[0], coef, k, 2, 48),
              null,
              3,
              12,
              4,
            ),
          ),
        ),
    },
  ]);
}

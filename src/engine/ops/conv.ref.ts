// float64 CPU references of conv2d and linear for one point (materialized weights).
import { outSize } from '../tensor.ts';

export interface ConvRefShape {
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  KH: number;
  KW: number;
  stride: number;
  pad: number;
}

export function convOut(s: ConvRefShape): [number, number] {
  return [outSize(s.H, s.KH, s.stride, s.pad), outSize(s.W, s.KW, s.stride, s.pad)];
}

/** One point: x [N, Cin, H, W], w [Cout, Cin, KH, KW], b [Cout] or null -> [N, Cout, OH, OW]. */
export function conv2dRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  s: ConvRefShape,
): Float64Array {
  const [OH, OW] = convOut(s);
  const y = new Float64Array(s.N * s.Cout * OH * OW);
  for (let n = 0; n < s.N; n++)
    for (let co = 0; co < s.Cout; co++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let acc = b ? b[co] : 0;
          for (let ci = 0; ci < s.Cin; ci++)
            for (let kh = 0; kh < s.KH; kh++) {
              const ih = oh * s.stride - s.pad + kh;
              if (ih < 0 || ih >= s.H) continue;
              for (let kw = 0; kw < s.KW; kw++) {
                const iw = ow * s.stride - s.pad + kw;
                if (iw < 0 || iw >= s.W) continue;
                acc += x[((n * s.Cin + ci) * s.H + ih) * s.W + iw] * w[((co * s.Cin + ci) * s.KH + kh) * s.KW + kw];
              }
            }
          y[((n * s.Cout + co) * OH + oh) * OW + ow] = acc;
        }
  return y;
}

/** One point: x [N, F], w [O, F], b [O] -> [N, O]. */
export function linearRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  N: number,
  F: number,
  O: number,
): Float64Array {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      let acc = b ? b[o] : 0;
      for (let f = 0; f < F; f++) acc += x[n * F + f] * w[o * F + f];
      y[n * O + o] = acc;
    }
  return y;
}

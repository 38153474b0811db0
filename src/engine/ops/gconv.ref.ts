// float64 CPU reference of the grouped convolution for one point (materialized weights).
import { outSize } from '../tensor.ts';

/** x [N, Cin, H, W], w [Cout, Cin/G, KH, KW], b [Cout] or null -> [N, Cout, OH, OW]. */
export function groupConvRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number> | null,
  s: {
    N: number;
    Cin: number;
    H: number;
    W: number;
    Cout: number;
    KH: number;
    KW: number;
    stride: number;
    pad: number;
    G: number;
  },
): Float64Array {
  const OH = outSize(s.H, s.KH, s.stride, s.pad),
    OW = outSize(s.W, s.KW, s.stride, s.pad);
  const Cg = s.Cin / s.G,
    Og = s.Cout / s.G;
  const y = new Float64Array(s.N * s.Cout * OH * OW);
  for (let n = 0; n < s.N; n++)
    for (let co = 0; co < s.Cout; co++) {
      const g = Math.floor(co / Og);
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let acc = b ? b[co] : 0;
          for (let ci = 0; ci < Cg; ci++)
            for (let kh = 0; kh < s.KH; kh++) {
              const ih = oh * s.stride - s.pad + kh;
              if (ih < 0 || ih >= s.H) continue;
              for (let kw = 0; kw < s.KW; kw++) {
                const iw = ow * s.stride - s.pad + kw;
                if (iw < 0 || iw >= s.W) continue;
                acc +=
                  x[((n * s.Cin + g * Cg + ci) * s.H + ih) * s.W + iw] * w[((co * Cg + ci) * s.KH + kh) * s.KW + kw];
              }
            }
          y[((n * s.Cout + co) * OH + oh) * OW + ow] = acc;
        }
    }
  return y;
}

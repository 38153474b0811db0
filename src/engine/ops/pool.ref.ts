// float64 CPU reference of the pools for one point.

export interface PoolRef {
  planes: number;
  H: number;
  W: number;
  OH: number;
  OW: number;
  k: number;
  stride: number;
  pad: number;
  adaptive: boolean;
}

export function window(i: number, size: number, osize: number, p: PoolRef): [number, number] {
  if (p.adaptive) return [Math.floor((i * size) / osize), Math.ceil(((i + 1) * size) / osize)];
  const s = i * p.stride - p.pad;
  return [s, s + p.k];
}

export function poolRef(x: ArrayLike<number>, p: PoolRef, kind: 'max' | 'avg'): Float64Array {
  const y = new Float64Array(p.planes * p.OH * p.OW);
  for (let pl = 0; pl < p.planes; pl++)
    for (let oh = 0; oh < p.OH; oh++)
      for (let ow = 0; ow < p.OW; ow++) {
        const [h0, h1] = window(oh, p.H, p.OH, p),
          [w0, w1] = window(ow, p.W, p.OW, p);
        let acc = kind === 'max' ? -Infinity : 0;
        for (let ih = Math.max(h0, 0); ih < Math.min(h1, p.H); ih++)
          for (let iw = Math.max(w0, 0); iw < Math.min(w1, p.W); iw++) {
            const v = x[(pl * p.H + ih) * p.W + iw];
            acc = kind === 'max' ? Math.max(acc, v) : acc + v;
          }
        y[(pl * p.OH + oh) * p.OW + ow] = kind === 'max' ? acc : acc / ((h1 - h0) * (w1 - w0));
      }
  return y;
}

/** Zero padding of [planes, H, W] by [top, left, bottom, right]. */
export function padRef(x: ArrayLike<number>, planes: number, H: number, W: number, pads: number[]): Float64Array {
  const [t, l, b, r] = pads;
  const OH = H + t + b,
    OW = W + l + r;
  const y = new Float64Array(planes * OH * OW);
  for (let p = 0; p < planes; p++)
    for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) y[(p * OH + h + t) * OW + w + l] = x[(p * H + h) * W + w];
  return y;
}

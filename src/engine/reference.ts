// Plain TypeScript CPU references (float64) for every op: the ground truth that kernels are checked
// against, by value, and (through central finite differences) by gradient. Per-point weights are
// materialized here on purpose; the GPU kernels never do that.

import { outSize } from './tensor.ts';

export type Arr = Float64Array;

/** W_k = sum_b coef[k, b] * basis[b] for one point k; basis is [B, size]. */
export function combine(basis: ArrayLike<number>, coef: ArrayLike<number>, k: number, B: number, size: number, offset = 0): Arr {
  const out = new Float64Array(size);
  for (let b = 0; b < B; b++) {
    const c = coef[k * B + b];
    for (let i = 0; i < size; i++) out[i] += c * basis[b * size + i];
  }
  if (offset) for (let i = 0; i < size; i++) out[i] += offset;
  return out;
}

export interface ConvRefShape {
  N: number; Cin: number; H: number; W: number; Cout: number; KH: number; KW: number; stride: number; pad: number;
}

export function convOut(s: ConvRefShape): [number, number] {
  return [outSize(s.H, s.KH, s.stride, s.pad), outSize(s.W, s.KW, s.stride, s.pad)];
}

/** One point: x [N, Cin, H, W], w [Cout, Cin, KH, KW], b [Cout] or null -> [N, Cout, OH, OW]. */
export function conv2dRef(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, s: ConvRefShape): Arr {
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
export function linearRef(x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number> | null, N: number, F: number, O: number): Arr {
  const y = new Float64Array(N * O);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      let acc = b ? b[o] : 0;
      for (let f = 0; f < F; f++) acc += x[n * F + f] * w[o * F + f];
      y[n * O + o] = acc;
    }
  return y;
}

export interface PoolRef {
  planes: number; H: number; W: number; OH: number; OW: number; k: number; stride: number; pad: number; adaptive: boolean;
}

function window(i: number, size: number, osize: number, p: PoolRef): [number, number] {
  if (p.adaptive) return [Math.floor((i * size) / osize), Math.ceil(((i + 1) * size) / osize)];
  const s = i * p.stride - p.pad;
  return [s, s + p.k];
}

export function poolRef(x: ArrayLike<number>, p: PoolRef, kind: 'max' | 'avg'): Arr {
  const y = new Float64Array(p.planes * p.OH * p.OW);
  for (let pl = 0; pl < p.planes; pl++)
    for (let oh = 0; oh < p.OH; oh++)
      for (let ow = 0; ow < p.OW; ow++) {
        const [h0, h1] = window(oh, p.H, p.OH, p), [w0, w1] = window(ow, p.W, p.OW, p);
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

/** One point, training mode: x [N, C, HW], gamma/beta [C]. Biased variance, as PyTorch normalizes. */
/** Batch norm of one point: batch statistics, or the given running statistics (evaluation mode). */
export function batchNormRef(x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>, N: number, C: number, HW: number, eps: number, running?: { mean: ArrayLike<number>; var: ArrayLike<number> }): Arr {
  const y = new Float64Array(N * C * HW);
  const M = N * HW;
  for (let c = 0; c < C; c++) {
    let mean = 0, v = 0;
    if (running) {
      mean = running.mean[c];
      v = Math.max(running.var[c], 0) * M;
    } else {
      for (let n = 0; n < N; n++) for (let q = 0; q < HW; q++) mean += x[(n * C + c) * HW + q];
      mean /= M;
      for (let n = 0; n < N; n++) for (let q = 0; q < HW; q++) v += (x[(n * C + c) * HW + q] - mean) ** 2;
    }
    const istd = 1 / Math.sqrt(v / M + eps);
    for (let n = 0; n < N; n++)
      for (let q = 0; q < HW; q++) {
        const i = (n * C + c) * HW + q;
        y[i] = gamma[c] * (x[i] - mean) * istd + beta[c];
      }
  }
  return y;
}

/** One point: logits [N, C], labels [N] -> mean cross-entropy and accuracy (first maximal index wins). */
export function crossEntropyRef(logits: ArrayLike<number>, labels: ArrayLike<number>, N: number, C: number): { loss: number; acc: number } {
  let loss = 0, correct = 0;
  for (let n = 0; n < N; n++) {
    let mx = -Infinity, am = 0;
    for (let c = 0; c < C; c++) if (logits[n * C + c] > mx) { mx = logits[n * C + c]; am = c; }
    let se = 0;
    for (let c = 0; c < C; c++) se += Math.exp(logits[n * C + c] - mx);
    loss += Math.log(se) + mx - logits[n * C + labels[n]];
    if (am === labels[n]) correct++;
  }
  return { loss: loss / N, acc: correct / N };
}

/** The dropout kernels' hash (PCG-style), bit for bit: uniform in [0, 1) for (seed, index). */
function pcg(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const t = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((t >>> 22) ^ t) >>> 0;
}
export function uniform01(seed: number, i: number): number {
  return (pcg((pcg(i) ^ seed) >>> 0) >>> 8) / 16777216;
}

export function dropoutRef(x: ArrayLike<number>, p: number, seed: number): Arr {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = uniform01(seed >>> 0, i) >= p ? x[i] / (1 - p) : 0;
  return y;
}

/** The error function, float64: its Taylor series below 3, the continued fraction of erfc above (|error| < 1e-14). */
export function erf(x: number): number {
  const z = Math.abs(x);
  if (z < 3) {
    let term = z, sum = z;
    for (let n = 1; n < 100 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * Math.min(1, (2 / Math.sqrt(Math.PI)) * sum);
  }
  // erfc(z) = exp(-z^2) / sqrt(pi) / (z + (1/2) / (z + 1 / (z + (3/2) / (z + 2 / (z + ...))))), evaluated from the tail
  let f = z;
  for (let n = 60; n >= 1; n--) f = z + n / 2 / f;
  return Math.sign(x) * (1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / f);
}

/** GELU, float64: exact (erf) or PyTorch's tanh approximation. */
export const geluRef = (form: 'erf' | 'tanh') =>
  form === 'tanh'
    ? (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)))
    : (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));

export const siluRef = (v: number) => v / (1 + Math.exp(-v));

/** Central finite differences of a scalar function f at x, for the listed indices (all when omitted). */
export function finiteDiff(f: (x: Float64Array) => number, x: ArrayLike<number>, indices?: number[], h = 1e-4): Map<number, number> {
  const xx = Float64Array.from(x);
  const out = new Map<number, number>();
  for (const i of indices ?? [...Array(xx.length).keys()]) {
    const v = xx[i];
    xx[i] = v + h;
    const fp = f(xx);
    xx[i] = v - h;
    const fm = f(xx);
    xx[i] = v;
    out.set(i, (fp - fm) / (2 * h));
  }
  return out;
}

/** PyTorch's SGD step (momentum buffer starts at 0, no dampening), in place. */
export function sgdRef(p: Float64Array, g: ArrayLike<number>, buf: Float64Array, o: { lr: number; momentum: number; weightDecay: number; nesterov: boolean }): void {
  for (let i = 0; i < p.length; i++) {
    const d = g[i] + o.weightDecay * p[i];
    buf[i] = o.momentum * buf[i] + d;
    p[i] -= o.lr * (o.nesterov ? d + o.momentum * buf[i] : buf[i]);
  }
}

/** PyTorch's Adam step t (1-based), L2 weight decay added to the gradient, in place. */
export function adamRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, t: number, o: { lr: number; b1: number; b2: number; eps: number; weightDecay: number }): void {
  for (let i = 0; i < p.length; i++) {
    const d = g[i] + o.weightDecay * p[i];
    m[i] = o.b1 * m[i] + (1 - o.b1) * d;
    v[i] = o.b2 * v[i] + (1 - o.b2) * d * d;
    const mh = m[i] / (1 - o.b1 ** t), vh = v[i] / (1 - o.b2 ** t);
    p[i] -= (o.lr * mh) / (Math.sqrt(vh) + o.eps);
  }
}

/** torch.nn.utils.clip_grad_norm_: scales all gradients by min(1, maxNorm / (norm + 1e-6)); returns the norm. */
export function clipRef(grads: Float64Array[], maxNorm: number): number {
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0));
  const c = maxNorm / (norm + 1e-6);
  if (c < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= c;
  return norm;
}

/** The n-wedge surrogate loss of one point: sqrt of the sum of squares of the D - n smallest |x_i| (sorted). */
export function wedgeRef(x: ArrayLike<number>, n: number): number {
  const a = Array.from(x, Math.abs).sort((p, q) => p - q);
  let s = 0;
  for (let i = 0; i < Math.max(0, a.length - n); i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

// Linear layers on CPU adapters (the lanes family): lanes over features, each lane building its weights once per
// reduction step for a block of images read by broadcast.
import { type KernelSpec, kernel, r, w } from '../kernel.ts';
import { CONV_UNIFORMS, weightLoad } from './conv.wgsl.ts';
import { pow2, clampI } from './conv-tiled.wgsl.ts';
import { type Lanes, lkey, MAIN_L, forJ, forC, laneM } from './conv-lanes.wgsl.ts';

/** A conv that is a linear layer: 1x1 kernel on a 1x1 input without padding, any stride (linear() and
 * flatten-linear). */
export const isLinearShape = (s: { H: number; W: number; KH: number; KW: number; pad: number }) =>
  s.H === 1 && s.W === 1 && s.KH === 1 && s.KW === 1 && s.pad === 0;

/** Lane shape of the linear lanes kernels: WG x TN outputs (features) along the lanes, RC images as uniform rows (each
 * block of RC images rebuilds the weights, so RC is as large as the accumulators allow). */
export function chooseLinearLanes(features: number, images: number): Lanes {
  const WG = clampI(pow2(features), 8, 32);
  // keep a few workgroups per point along the features (two CPU threads and more), at most 2 outputs per lane
  const TN = features >= 8 * WG ? 2 : 1;
  // at most 32 accumulators per lane (64 spilled on llvmpipe: the surface workload's dense layer ran 2x slower)
  const rcMax = LINEAR_ACC_MAX / TN;
  return { WG, TN, RC: Math.ceil(images / Math.ceil(images / rcMax)) };
}

export const LINEAR_ACC_MAX = 32;

/**
 * Linear layers in the lanes family, forward (y[k,n,o] = sum_i x[k,n,i] W_k[o,i] + b_k[o], relu fused) and input
 * gradient (dx[k,n,i] = sum_o dy[k,n,o] W_k[o,i]). The staged kernels are poor here: each weight serves only the
 * batch's N images, so building it into workgroup memory costs as much as using it, and N = 16 positions leave most
 * lanes idle. Here lanes take output features; each lane builds its own weight (a B-term sum of gathered basis
 * values, or the point's own weight when direct) once per reduction step and applies it to RC images, whose inputs
 * every lane reads at the same address (broadcast loads).
 */
export function linearLanesKernel(
  l: Lanes,
  mode: 'fwd' | 'dgrad',
  hasBias: boolean,
  act: 'none' | 'relu',
  direct = false,
): KernelSpec {
  const fwd = mode === 'fwd';
  const [inp, out] = fwd ? ['x', 'y'] : ['dy', 'dx'];
  const bindings = [
    r(inp),
    r('weight'),
    ...(fwd && hasBias ? [r('bias')] : []),
    ...(direct ? [] : [r('coef')]),
    w(out),
  ];
  // lane dimension L (output features) and reduction RED; the weight of lane feature f at reduction index t
  const L = fwd ? 'u.Cout' : 'u.Cin',
    RED = fwd ? 'u.Cin' : 'u.Cout';
  const wIdx = (f: string, t: string) => (fwd ? `${f} * u.R0 + ${t}` : `${t} * u.R0 + ${f}`);
  const inAt = (n: string, t: string) =>
    fwd ? `k * u.xKStride + ${n} * u.Cin + ${t}` : `(k * u.N + ${n}) * u.Cout + ${t}`;
  const body = `
${fwd ? weightLoad(hasBias, direct) : ''}
${MAIN_L(l)} {
  let k = wid.z;
  let n0 = wid.y * ${l.RC}u;
  let step = u.Cout * u.R0;
  var fl: array<u32, ${l.TN}>;
  ${forJ(l, `fl[j] = min(${laneM(l)}, ${L} - 1u);`)}
  var nr: array<u32, ${l.RC}>;
  ${forC(l, 'nr[c] = min(n0 + c, u.N - 1u);')}
  var acc: array<f32, ${l.RC * l.TN}>;
  for (var t = 0u; t < ${RED}; t++) {
    var wv: array<f32, ${l.TN}>;
    ${forJ(
      l,
      direct
        ? `wv[j] = weight[k * step + ${wIdx('fl[j]', 't')}];`
        : `var s = 0.0;
      for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], weight[b * step + ${wIdx('fl[j]', 't')}], s); }
      wv[j] = s;`,
    )}
    ${forC(
      l,
      `let xv = ${inp}[${inAt('nr[c]', 't')}];
      ${forJ(l, `acc[c * ${l.TN}u + j] = fma(xv, wv[j], acc[c * ${l.TN}u + j]);`)}`,
    )}
  }
  ${forJ(
    l,
    `let f = ${laneM(l)};
    if (f < ${L}) {
      ${fwd && hasBias ? 'let bv = wk(k, f, u.R0);' : ''}
      ${forC(
        l,
        `let n = n0 + c;
        if (n < u.N) {
          var v = acc[c * ${l.TN}u + j]${fwd && hasBias ? ' + bv' : ''};
          ${fwd && act === 'relu' ? 'v = max(v, 0.0);' : ''}
          ${out}[(k * u.N + n) * ${L} + f] = v;
        }`,
      )}
    }`,
  )}
}`;
  return kernel(
    fwd ? 'conv2d.fwd' : 'conv2d.dgrad',
    `linear_${lkey(l)}_b${+hasBias}_${act}${direct ? '_direct' : ''}`,
    CONV_UNIFORMS,
    bindings,
    body,
    l.WG,
  );
}

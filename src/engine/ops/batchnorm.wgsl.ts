// Batch norm kernels: per-point batch statistics, apply, backward, running statistics (use and update).
import { type KernelSpec, kernel, r, w, MAIN_1D, FOLDED_ID } from '../kernel.ts';

// ---------------------------------------------------------------- batch norm
// x is [K, N, C, HW]; one workgroup per (k, c) reduces over (n, hw).
// fixedStats = 1: evaluation mode, the statistics are constants (running statistics), so dx = gamma * istd * dy.
export const BN_UNIFORMS: KernelSpec['uniforms'] = [
  ['K', 'u32'],
  ['N', 'u32'],
  ['C', 'u32'],
  ['HW', 'u32'],
  ['B', 'u32'],
  ['eps', 'f32'],
  ['gammaOffset', 'f32'],
  ['fixedStats', 'u32'],
];

export const BN_RED = `
var<workgroup> red: array<f32, 256>;
fn wsum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let t = red[0];
  workgroupBarrier();
  return t;
}
fn at(k: u32, c: u32, i: u32) -> u32 {
  let n = i / u.HW; let q = i % u.HW;
  return ((k * u.N + n) * u.C + c) * u.HW + q;
}`;

export function bnStatsKernel(): KernelSpec {
  const body = `${BN_RED}
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32) {
  let k = wid.y; let c = wid.x;
  let M = u.N * u.HW;
  var s = 0.0;
  for (var i = lid; i < M; i += 256u) { s += x[at(k, c, i)]; }
  let mean = wsum(s, lid) / f32(M);
  var v = 0.0;
  for (var i = lid; i < M; i += 256u) { let d = x[at(k, c, i)] - mean; v += d * d; }
  let variance = wsum(v, lid) / f32(M);
  if (lid == 0u) { stats[2u * (k * u.C + c)] = mean; stats[2u * (k * u.C + c) + 1u] = inverseSqrt(variance + u.eps); }
}`;
  return kernel('batchnorm2d.stats', '', BN_UNIFORMS, [r('x'), w('stats')], body, 256);
}

export function bnApplyKernel(): KernelSpec {
  const body = `${BN_AFFINE}
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= u.K * u.N * u.C * u.HW) { return; }
  let c = (idx / u.HW) % u.C; let k = idx / (u.N * u.C * u.HW);
  let st = 2u * (k * u.C + c);
  let ab = affine(k, c);
  y[idx] = ab.x * (x[idx] - stats[st]) * stats[st + 1u] + ab.y;
}`;
  return kernel(
    'batchnorm2d.apply',
    '',
    BN_UNIFORMS,
    [r('x'), r('stats'), r('coef'), r('gamma'), r('beta'), w('y')],
    body,
    256,
  );
}

/**
 * dx, and per-point dgamma, dbeta (into pg [K, 2, C]: row 0 dgamma, row 1 dbeta; in evaluation mode pg is [K, 4, C]
 * with rows 2, 3 the gradients of the running mean and variance). One workgroup per (k, c).
 */
export function bnBackwardKernel(): KernelSpec {
  const body = `${BN_RED}
${BN_AFFINE}
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32) {
  let k = wid.y; let c = wid.x;
  let M = u.N * u.HW;
  let st = 2u * (k * u.C + c);
  let mean = stats[st]; let istd = stats[st + 1u];
  var sd = 0.0; var sdx = 0.0;
  for (var i = lid; i < M; i += 256u) {
    let j = at(k, c, i);
    let g = dy[j];
    sd += g; sdx += g * (x[j] - mean) * istd;
  }
  let sumd = wsum(sd, lid); let sumdx = wsum(sdx, lid);
  let ab = affine(k, c);
  let f = ab.x * istd;
  let md = sumd / f32(M); let mdx = sumdx / f32(M);
  for (var i = lid; i < M; i += 256u) {
    let j = at(k, c, i);
    if (u.fixedStats == 1u) { dx[j] = f * dy[j]; } else { dx[j] = f * (dy[j] - md - (x[j] - mean) * istd * mdx); }
  }
  if (lid == 0u) {
    let rows = select(2u, 4u, u.fixedStats == 1u);
    pg[(k * rows) * u.C + c] = sumdx; pg[(k * rows + 1u) * u.C + c] = sumd;
    if (u.fixedStats == 1u) {
      // evaluation mode: also dL/d(running mean) and dL/d(running variance) of this point
      pg[(k * rows + 2u) * u.C + c] = -f * sumd;
      pg[(k * rows + 3u) * u.C + c] = -0.5 * f * istd * sumdx;
    }
  }
}`;
  return kernel(
    'batchnorm2d.bwd',
    '',
    BN_UNIFORMS,
    [r('dy'), r('x'), r('stats'), r('coef'), r('gamma'), r('beta'), w('dx'), w('pg')],
    body,
    256,
  );
}

/**
 * Evaluation-mode statistics from running statistics on the manifold: point k's running mean and variance are
 * sum_b C[k,b] * basis[b] (so directions can move them, the reference's "states" mode); stats [K, C, 2] = (mean, istd).
 */
export function bnRunningStatsKernel(): KernelSpec {
  const body = `
${MAIN_1D(64)} {
  ${FOLDED_ID}
  let idx = wg_lin * 64u + lid;
  if (idx >= u.K * u.C) { return; }
  let k = idx / u.C; let c = idx % u.C;
  var m = 0.0; var v = 0.0;
  for (var b = 0u; b < u.B; b++) {
    let cf = coef[k * u.B + b];
    m = fma(cf, rmean[b * u.C + c], m); v = fma(cf, rvar[b * u.C + c], v);
  }
  stats[2u * idx] = m;
  stats[2u * idx + 1u] = inverseSqrt(max(v, 0.0) + u.eps);
}`;
  return kernel(
    'batchnorm2d.running_stats',
    '',
    [
      ['K', 'u32'],
      ['C', 'u32'],
      ['B', 'u32'],
      ['eps', 'f32'],
    ],
    [r('coef'), r('rmean'), r('rvar'), w('stats')],
    body,
    64,
  );
}

/**
 * PyTorch's running-statistics update after a training-mode pass of one point (K = B = 1):
 * mean <- (1 - m) mean + m * batch mean, var <- (1 - m) var + m * unbiased batch variance (M / (M - 1)).
 */
export function bnRunningUpdateKernel(): KernelSpec {
  const body = `
${MAIN_1D(64)} {
  ${FOLDED_ID}
  let c = wg_lin * 64u + lid;
  if (c >= u.C) { return; }
  let istd = stats[2u * c + 1u];
  let biased = max(1.0 / (istd * istd) - u.eps, 0.0);
  rmean[c] = mix(rmean[c], stats[2u * c], u.momentum);
  rvar[c] = mix(rvar[c], biased * u.M / (u.M - 1.0), u.momentum);
}`;
  return kernel(
    'batchnorm2d.running_update',
    '',
    [
      ['C', 'u32'],
      ['eps', 'f32'],
      ['momentum', 'f32'],
      ['M', 'f32'],
    ],
    [r('stats'), w('rmean'), w('rvar')],
    body,
    64,
  );
}

export const BN_AFFINE = `
fn affine(k: u32, c: u32) -> vec2<f32> {
  var g = u.gammaOffset; var bt = 0.0;
  for (var b = 0u; b < u.B; b++) {
    let cf = coef[k * u.B + b];
    g = fma(cf, gamma[b * u.C + c], g); bt = fma(cf, beta[b * u.C + c], bt);
  }
  return vec2<f32>(g, bt);
}`;

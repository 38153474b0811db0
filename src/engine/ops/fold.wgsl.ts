// Manifold folds: point values from basis tensors (combine), per-point gradients folded into basis and coefficient
// gradients, in-place accumulation.
import { type KernelSpec, kernel, r, w, MAIN_1D, FOLDED_ID, perElement } from '../kernel.ts';

/** Basis tensors handled per pass by the fold kernels (more are done in several passes with bOff). */
export const FOLD_NB = 4;

/**
 * Folds per-point gradients g [K, S] into basis gradients: dp[b, s] (+)= sum_k coef[k,b] g[k,s], for
 * b in [bOff, bOff + 4): each thread reads its g[., s] column once for all of them.
 */
export function foldBasisKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['K', 'u32'],
    ['B', 'u32'],
    ['S', 'u32'],
    ['accumulate', 'u32'],
    ['gOff', 'u32'],
    ['gStride', 'u32'],
    ['bOff', 'u32'],
  ];
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let s = wg_lin * 256u + lid;
  if (s >= u.S) { return; }
  let nb = min(${FOLD_NB}u, u.B - u.bOff);
  var acc: array<f32, ${FOLD_NB}>;
  for (var k = 0u; k < u.K; k++) {
    let gv = g[k * u.gStride + u.gOff + s];
    for (var j = 0u; j < nb; j++) { acc[j] = fma(coef[k * u.B + u.bOff + j], gv, acc[j]); }
  }
  for (var j = 0u; j < nb; j++) {
    let o = (u.bOff + j) * u.S + s;
    var v = acc[j];
    if (u.accumulate != 0u) { v += dp[o]; }
    dp[o] = v;
  }
}`;
  return kernel('fold.basis', '', U, [r('coef'), r('g'), w('dp')], body, 256);
}

/** dcoef[k, b] += sum_s p[b, s] * g[k, s] for b in [bOff, bOff + 4): one workgroup per point k reads g[k] once. */
export function foldCoefKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['K', 'u32'],
    ['B', 'u32'],
    ['S', 'u32'],
    ['gOff', 'u32'],
    ['gStride', 'u32'],
    ['bOff', 'u32'],
  ];
  const body = `
var<workgroup> red: array<vec4<f32>, 64>;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = wid.x;
  let nb = min(${FOLD_NB}u, u.B - u.bOff);
  var acc = vec4<f32>(0.0);
  for (var i = lid; i < u.S; i += 64u) {
    let gv = g[k * u.gStride + u.gOff + i];
    for (var j = 0u; j < nb; j++) { acc[j] = fma(p[(u.bOff + j) * u.S + i], gv, acc[j]); }
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var st = 32u; st > 0u; st >>= 1u) {
    if (lid < st) { red[lid] += red[lid + st]; }
    workgroupBarrier();
  }
  if (lid == 0u) { for (var j = 0u; j < nb; j++) { dcoef[k * u.B + u.bOff + j] += red[0][j]; } }
}`;
  return kernel('fold.coef', '', U, [r('p'), r('g'), w('dcoef')], body, 64);
}

/** In-place y += a. */
export function accumulateKernel(): KernelSpec {
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let i = wg_lin * 256u + lid;
  if (i >= u.n) { return; }
  y[i] += a[i];
}`;
  return kernel('add.inplace', '', [['n', 'u32']], [r('a'), w('y')], body, 256);
}

/** y[k, s] = act(sum_b coef[k, b] * z[b, s]): point outputs from per-basis outputs (a layer whose input is shared). */
export function combineKernel(relu: boolean, per = 1): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['K', 'u32'],
    ['B', 'u32'],
    ['S', 'u32'],
  ];
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  ${perElement(
    256,
    per,
    'u.K * u.S',
    `let k = idx / u.S; let s = idx % u.S;
    var v = 0.0;
    for (var b = 0u; b < u.B; b++) { v = fma(coef[k * u.B + b], z[b * u.S + s], v); }
    y[idx] = ${relu ? 'max(v, 0.0)' : 'v'};`,
  )}
}`;
  return kernel(
    'manifold.combine',
    `${relu ? 'relu' : ''}${per === 1 ? '' : `per${per}`}`,
    U,
    [r('coef'), r('z'), w('y')],
    body,
    256,
  );
}

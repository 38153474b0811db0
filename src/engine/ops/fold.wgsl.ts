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

/** Elements of s that one workgroup of the coefficient-gradient fold sums (16 per thread). */
export const FOLD_COEF_CHUNK = 4096;

/**
 * dcoef[k, b] += sum_s p[b, s] * g[k, s] for b in [bOff, bOff + 4), split over s: workgroup (c, k) sums the chunk
 * s in [c * chunk, (c + 1) * chunk) of point k. With one chunk (split false) it adds into dcoef directly; with several
 * (split true) it writes its 4 partial sums to part[k, c, 0..3] and foldCoefReduceKernel adds them up. A layer's
 * output gradient can hold millions of elements per point (the first conv of a net at 512 images): one workgroup per
 * point then leaves most of a GPU idle.
 */
export function foldCoefKernel(split: boolean): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['K', 'u32'],
    ['B', 'u32'],
    ['S', 'u32'],
    ['gOff', 'u32'],
    ['gStride', 'u32'],
    ['bOff', 'u32'],
    ['chunk', 'u32'],
    ['nChunks', 'u32'],
  ];
  const write = split
    ? 'for (var j = 0u; j < 4u; j++) { part[(k * u.nChunks + c) * 4u + j] = red[0][j]; }'
    : 'for (var j = 0u; j < nb; j++) { dcoef[k * u.B + u.bOff + j] += red[0][j]; }';
  const body = `
var<workgroup> red: array<vec4<f32>, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let c = wid.x;
  let k = wid.y;
  let nb = min(${FOLD_NB}u, u.B - u.bOff);
  let end = min(c * u.chunk + u.chunk, u.S);
  let gBase = k * u.gStride + u.gOff;
  var acc = vec4<f32>(0.0);
  for (var i = c * u.chunk + lid; i < end; i += 256u) {
    let gv = g[gBase + i];
    for (var j = 0u; j < nb; j++) { acc[j] = fma(p[(u.bOff + j) * u.S + i], gv, acc[j]); }
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (lid < st) { red[lid] += red[lid + st]; }
    workgroupBarrier();
  }
  if (lid == 0u) { ${write} }
}`;
  return kernel('fold.coef', split ? 'split' : '', U, [r('p'), r('g'), w(split ? 'part' : 'dcoef')], body, 256);
}

/** dcoef[k, bOff + j] += sum_c part[k, c, j]: one workgroup per point k adds up foldCoefKernel's chunk sums. */
export function foldCoefReduceKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['B', 'u32'],
    ['bOff', 'u32'],
    ['nChunks', 'u32'],
  ];
  const body = `
var<workgroup> red: array<vec4<f32>, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let k = wid.x;
  let nb = min(${FOLD_NB}u, u.B - u.bOff);
  var acc = vec4<f32>(0.0);
  for (var c = lid; c < u.nChunks; c += 256u) { acc += part[k * u.nChunks + c]; }
  red[lid] = acc;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (lid < st) { red[lid] += red[lid + st]; }
    workgroupBarrier();
  }
  if (lid == 0u) { for (var j = 0u; j < nb; j++) { dcoef[k * u.B + u.bOff + j] += red[0][j]; } }
}`;
  return kernel('fold.coef_reduce', '', U, [r('part'), w('dcoef')], body, 256, { part: 'vec4<f32>' });
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

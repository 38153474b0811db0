// conv2d (and linear, as a 1x1 conv on a 1x1 image) as implicit-GEMM kernels over a weight manifold: what the two
// kernel families share (uniforms, the weight load, im2col decoding, the weight-gradient reductions). The families
// themselves: conv-tiled.wgsl.ts (GPUs), conv-lanes.wgsl.ts and linear-lanes.wgsl.ts (CPU adapters).
//
// Activations are [K, N, C, H, W]; the input of the first layer may be shared by all K points (kStride 0).
// Point k's weights are built in the weight-tile load: W_k = sum_b coef[k, b] * basis[b]; no K x |W|
// buffer exists. The bias rides along as an extra reduction column whose input is 1.
//
//  fwd:   y[k, (n,oh,ow), co]  = sum_r  im2col(x_k)[(n,oh,ow), r] * W_k[co, r]      (+ fused ReLU)
//  dgrad: dx[k, (n,ih,iw), ci] = sum_r' dy_k gathered[(n,ih,iw), (co,kh,kw)] * W_k[co, ci, kh, kw]
//  wgrad: part[z, b, co, r]    = sum_{k in z} coef[k, b] * sum_{(n,oh,ow) in z} im2col(x_k)[., r] * dy_k[., co]
//         then a reduce over z; optionally dcoef partials: sum_{co,r} basis[b][co, r] * dW_k[co, r]
import { type KernelSpec, kernel, r, w } from '../kernel.ts';

export const CONV_UNIFORMS: KernelSpec['uniforms'] = [
  ['K', 'u32'],
  ['N', 'u32'],
  ['Cin', 'u32'],
  ['H', 'u32'],
  ['W', 'u32'],
  ['Cout', 'u32'],
  ['OH', 'u32'],
  ['OW', 'u32'],
  ['KH', 'u32'],
  ['KW', 'u32'],
  ['stride', 'u32'],
  ['pad', 'u32'],
  ['B', 'u32'],
  ['xKStride', 'u32'],
  ['R0', 'u32'],
  ['R', 'u32'],
];

/**
 * Weight of point k at (co, r): sum_b coef[k,b] * basis; r == R0 reads the bias basis. direct: the weight and bias
 * buffers hold every point's own weights ([K, Cout, R0], [K, Cout], materialized by the caller when B > K).
 */
export function weightLoad(hasBias: boolean, direct: boolean): string {
  if (direct)
    return `
fn wk(k: u32, co: u32, rr: u32) -> f32 {
  if (co >= u.Cout || rr >= u.R) { return 0.0; }
  ${hasBias ? 'if (rr == u.R0) { return bias[k * u.Cout + co]; }' : ''}
  return weight[(k * u.Cout + co) * u.R0 + rr];
}`;
  return `
fn wk(k: u32, co: u32, rr: u32) -> f32 {
  if (co >= u.Cout || rr >= u.R) { return 0.0; }
  var s = 0.0;
  ${
    hasBias
      ? `if (rr == u.R0) {
    for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], bias[b * u.Cout + co], s); }
    return s;
  }`
      : ''
  }
  for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], weight[(b * u.Cout + co) * u.R0 + rr], s); }
  return s;
}`;
}

/** Basis tensor b's weight at (co, r), r == R0 the bias (the dcoef dot products of the weight gradients). */
export const basisAt = (hasBias: boolean) => `
fn basis(b: u32, rr: u32, co: u32) -> f32 {
  if (rr >= u.R || co >= u.Cout) { return 0.0; }
  ${hasBias ? 'if (rr == u.R0) { return bias[b * u.Cout + co]; }' : ''}
  return weight[(b * u.Cout + co) * u.R0 + rr];
}`;

/** Decodes an im2col column r = (ci, kh, kw) into (ci*H*W, kh, kw, kind): kind 1 pixel, 2 bias column, 0 padding. */
export const DECODE_COL = `
fn decodeCol(rr: u32) -> vec4<i32> {
  if (rr >= u.R) { return vec4<i32>(0, 0, 0, 0); }
  if (rr == u.R0) { return vec4<i32>(0, 0, 0, 2); }
  let khw = u.KH * u.KW; let q = rr % khw;
  return vec4<i32>(i32((rr / khw) * u.H * u.W), i32(q / u.KW), i32(q % u.KW), 1);
}`;

/** Decodes an output position m = (n, oh, ow) into (n, oh*stride - pad, ow*stride - pad, valid). */
export const DECODE_POS = `
fn decodePos(m: u32, limit: u32) -> vec4<i32> {
  if (m >= limit) { return vec4<i32>(0, 0, 0, 0); }
  let P = u.OH * u.OW; let p = m % P;
  return vec4<i32>(i32(m / P), i32((p / u.OW) * u.stride) - i32(u.pad), i32((p % u.OW) * u.stride) - i32(u.pad), 1);
}`;

/** x at point k for decoded position pos and decoded column col (the im2col element). */
export const X_AT = `
fn xAt(k: u32, pos: vec4<i32>, col: vec4<i32>) -> f32 {
  if (pos.w == 0 || col.w == 0) { return 0.0; }
  if (col.w == 2) { return 1.0; }
  let ih = pos.y + col.y; let iw = pos.z + col.z;
  if (ih < 0 || iw < 0 || ih >= i32(u.H) || iw >= i32(u.W)) { return 0.0; }
  return x[k * u.xKStride + u32(pos.x) * u.Cin * u.H * u.W + u32(col.x + ih * i32(u.W) + iw)];
}`;

export const WGRAD_BMAX = 4;

/**
 * Sums the split-K partials [Z, B, Cout, R] into the weight [G, B, Cout, R0] and bias [G, B, Cout] gradients (+= when
 * accumulate), G = Z / zPer groups of zPer consecutive partials each (G = 1 for basis gradients; one group per point
 * for per-point gradients).
 */
export function convWgradReduceKernel(hasBias: boolean): KernelSpec {
  const uniforms: KernelSpec['uniforms'] = [
    ['Z', 'u32'],
    ['B', 'u32'],
    ['Cout', 'u32'],
    ['R0', 'u32'],
    ['R', 'u32'],
    ['accumulate', 'u32'],
    ['zPer', 'u32'],
  ];
  const bindings = [r('part'), w('gw'), ...(hasBias ? [w('gb')] : [])];
  const body = `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.y * nwg.x + wid.x) * 256u + lid;
  let per = u.B * u.Cout * u.R;
  if (idx >= (u.Z / u.zPer) * per) { return; }
  let grp = idx / per; let inner = idx % per;
  var s = 0.0;
  for (var z = grp * u.zPer; z < (grp + 1u) * u.zPer; z++) { s += part[z * per + inner]; }
  let rr = inner % u.R; let bc = grp * u.B * u.Cout + inner / u.R;
  if (rr < u.R0) {
    let o = bc * u.R0 + rr;
    if (u.accumulate != 0u) { s += gw[o]; }
    gw[o] = s;
  }${
    hasBias
      ? ` else {
    if (u.accumulate != 0u) { s += gb[bc]; }
    gb[bc] = s;
  }`
      : ''
  }
}`;
  return kernel('conv2d.wgrad_reduce', `b${+hasBias}`, uniforms, bindings, body, 256);
}

/** dcoef[k, b] (+)= sum over workgroups of the per-workgroup partial dots [G, K, B]. */
export function coefReduceKernel(): KernelSpec {
  const uniforms: KernelSpec['uniforms'] = [
    ['G', 'u32'],
    ['KB', 'u32'],
  ];
  const body = `
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= u.KB) { return; }
  var s = 0.0;
  for (var g = 0u; g < u.G; g++) { s += part[g * u.KB + i]; }
  dcoef[i] += s;
}`;
  return kernel('coef.reduce', '', uniforms, [r('part'), w('dcoef')], body, 64);
}

/**
 * The uniforms and bindings both weight-gradient kernel families take (conv-tiled.wgsl.ts, conv-lanes.wgsl.ts): the
 * split of the reduction into z layers (KG points per layer, S position chunks of PS), the basis tensors of this
 * pass (bOff), and, with dcoef, the basis tensors the dcoef partials dot the point tiles with.
 */
export function wgradInterface(hasBias: boolean, dcoef: boolean) {
  const uniforms: KernelSpec['uniforms'] = [
    ...CONV_UNIFORMS,
    ['KG', 'u32'],
    ['S', 'u32'],
    ['PS', 'u32'],
    ['bOff', 'u32'],
    ['tilesM', 'u32'],
    ['tilesN', 'u32'],
  ];
  const bindings = [
    r('x'),
    r('dy'),
    r('coef'),
    w('part'),
    ...(dcoef ? [r('weight'), ...(hasBias ? [r('bias')] : []), w('dcpart')] : []),
  ];
  return { uniforms, bindings };
}

// The MPO plane ("up_orthogonal"): from trainable origin o, right_param rp, up_param up (one tensor each per
// model parameter) the model's basis is [o, r, u_perp] with r = rp - o and u_perp = beta * (up - alpha * r),
// where alpha = (up.r)/(r.r) and beta = |r| / |up - alpha r| over the whole parameter vector.
// Dot products are reduced per workgroup here and summed in float64 on the host.
import { type KernelSpec, kernel, r, w, MAIN_1D, FOLDED_ID } from '../engine/kernel.ts';

/**
 * Partial dot products per workgroup of 1024 elements (by `wg` threads: 256 on a GPU, 8 on a CPU adapter), 3 per
 * workgroup into part[(off + wg) * 3 + t]:
 * mode 0: (up.r, r.r, up.up); mode 1: (g.up, g.r, 0) with g the up-row of the model gradient (g[2n + i]).
 */
export function planeDotsKernel(wg = 256): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['n', 'u32'],
    ['off', 'u32'],
    ['mode', 'u32'],
  ];
  const body = `
var<workgroup> red: array<vec3<f32>, ${wg}>;
${MAIN_1D(wg)} {
  ${FOLDED_ID}
  var s = vec3<f32>(0.0);
  for (var j = 0u; j < ${1024 / wg}u; j++) {
    let i = wg_lin * 1024u + j * ${wg}u + lid;
    if (i < u.n) {
      let rr = rp[i] - o[i]; let uu = up[i];
      if (u.mode == 0u) { s += vec3<f32>(uu * rr, rr * rr, uu * uu); }
      else { let gg = g[2u * u.n + i]; s += vec3<f32>(gg * uu, gg * rr, 0.0); }
    }
  }
  red[lid] = s;
  workgroupBarrier();
  for (var st = ${wg / 2}u; st > 0u; st >>= 1u) {
    if (lid < st) { red[lid] += red[lid + st]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let b = (u.off + wg_lin) * 3u; part[b] = red[0].x; part[b + 1u] = red[0].y; part[b + 2u] = red[0].z;
  }
}`;
  return kernel('plane.dots', `wg${wg}`, U, [r('o'), r('rp'), r('up'), r('g'), w('part')], body, wg);
}

/** basis [3, n] = [o, rp - o, beta * (up - alpha * (rp - o))]. */
export function planeBasisKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['n', 'u32'],
    ['alpha', 'f32'],
    ['beta', 'f32'],
  ];
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let i = wg_lin * 256u + lid;
  if (i >= u.n) { return; }
  let rr = rp[i] - o[i];
  basis[i] = o[i];
  basis[u.n + i] = rr;
  basis[2u * u.n + i] = u.beta * (up[i] - u.alpha * rr);
}`;
  return kernel('plane.basis', '', U, [r('o'), r('rp'), r('up'), w('basis')], body, 256);
}

/**
 * Chain rule from the basis gradient g [3, n] = (g_o, g_r, g_u) to the trainable tensors:
 * d_up = a1 g_u + a2 up + a3 r;  E = e1 g_u + e2 up + e3 r (the part of dL/dr that goes through u_perp);
 * d_rp = g_r + E;  d_o = g_o - g_r - E.
 */
export function planeGradKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['n', 'u32'],
    ['a1', 'f32'],
    ['a2', 'f32'],
    ['a3', 'f32'],
    ['e1', 'f32'],
    ['e2', 'f32'],
    ['e3', 'f32'],
  ];
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let i = wg_lin * 256u + lid;
  if (i >= u.n) { return; }
  let rr = rp[i] - o[i]; let uu = up[i];
  let go = g[i]; let gr = g[u.n + i]; let gu = g[2u * u.n + i];
  let e = u.e1 * gu + u.e2 * uu + u.e3 * rr;
  dup[i] = u.a1 * gu + u.a2 * uu + u.a3 * rr;
  drp[i] = gr + e;
  dorig[i] = go - gr - e;
}`;
  return kernel('plane.grad', '', U, [r('o'), r('rp'), r('up'), r('g'), w('dorig'), w('drp'), w('dup')], body, 256);
}

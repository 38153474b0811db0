// The n-wedge surrogate loss of Fort & Jastrzebski 2019 (their toy landscape): for a configuration P in R^D, the L2
// distance to the nearest axis-aligned n-wedge, sqrt(sum of squares of the D - n smallest |P_i|). One workgroup per
// point finds the n-th largest |P_i| by a binary search over the IEEE bit patterns of |P_i| (monotone for
// non-negative floats): 31 counting passes, no sort and no extra memory, so D can be millions.
import { type KernelSpec, kernel, r, w } from '../engine/kernel.ts';

const WG = 256;

/**
 * Forward: x [K, D], keep [K] (n of each point: how many of the largest coordinates are free) ->
 * out [2K] (loss, then 0 in the accuracy slots), info [K, 3] (threshold bits t, count of |x| bits > t, count == t).
 */
export function wedgeForwardKernel(): KernelSpec {
  const body = `
var<workgroup> cnt: array<atomic<u32>, 2>;
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32) {
  let k = wid.x;
  let base = k * u.D;
  let n = keep[k];
  // t: the largest bit pattern with count(bits >= t) >= n (the n-th largest |x|); n = 0: nothing is excluded
  var lo = 0u; var hi = 0x7f800001u;
  for (var it = 0u; it < 32u; it++) {
    let mid = lo + (hi - lo) / 2u;
    if (lid == 0u) { atomicStore(&cnt[0], 0u); }
    workgroupBarrier();
    var c = 0u;
    for (var i = lid; i < u.D; i += ${WG}u) { c += select(0u, 1u, (bitcast<u32>(x[base + i]) & 0x7fffffffu) >= mid); }
    atomicAdd(&cnt[0], c);
    workgroupBarrier();
    let total = atomicLoad(&cnt[0]);
    // invariant: count(bits >= lo) >= n > count(bits >= hi); once hi = lo + 1, mid = lo and nothing changes
    lo = select(lo, mid, total >= n);
    hi = select(mid, hi, total >= n);
    workgroupBarrier();
  }
  let t = select(lo, 0xffffffffu, n == 0u);
  // counts above and at the threshold, and the sum of squares below it
  if (lid == 0u) { atomicStore(&cnt[0], 0u); atomicStore(&cnt[1], 0u); }
  workgroupBarrier();
  var gt = 0u; var eq = 0u; var s = 0.0;
  for (var i = lid; i < u.D; i += ${WG}u) {
    let v = x[base + i];
    let b = bitcast<u32>(v) & 0x7fffffffu;
    if (b > t) { gt++; } else if (b == t) { eq++; } else { s = fma(v, v, s); }
  }
  atomicAdd(&cnt[0], gt); atomicAdd(&cnt[1], eq);
  red[lid] = s;
  workgroupBarrier();
  for (var h = ${WG / 2}u; h > 0u; h >>= 1u) {
    if (lid < h) { red[lid] += red[lid + h]; }
    workgroupBarrier();
  }
  let ngt = atomicLoad(&cnt[0]); let neq = atomicLoad(&cnt[1]);
  if (lid == 0u) {
    // ties at the threshold: n - ngt of them are excluded, the others count
    let tval = bitcast<f32>(t);
    let incl = select(0u, neq - min(neq, n - min(n, ngt)), n < u.D);
    var tot = red[0];
    if (incl > 0u) { tot += f32(incl) * tval * tval; }
    if (n >= u.D) { tot = 0.0; }
    out[k] = sqrt(tot);
    out[u.K + k] = 0.0;
    info[3u * k] = t; info[3u * k + 1u] = ngt; info[3u * k + 2u] = neq;
  }
}`;
  return kernel(
    'wedge.fwd',
    '',
    [
      ['K', 'u32'],
      ['D', 'u32'],
    ],
    [r('x'), r('keep'), w('out'), w('info')],
    body,
    WG,
    { keep: 'u32', info: 'u32' },
  );
}

/** Backward: dx[k, i] = pw[k] * x_i / L_k on the counted coordinates (ties share the counted fraction), else 0. */
export function wedgeBackwardKernel(): KernelSpec {
  const body = `
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.y * nwg.x + wid.x) * ${WG}u + lid;
  if (idx >= u.K * u.D) { return; }
  let k = idx / u.D;
  let L = out[k];
  let t = info[3u * k]; let ngt = info[3u * k + 1u]; let neq = info[3u * k + 2u];
  let n = keep[k];
  let b = bitcast<u32>(x[idx]) & 0x7fffffffu;
  var f = select(0.0, 1.0, b < t);
  if (b == t && neq > 0u) { f = f32(neq - min(neq, n - min(n, ngt))) / f32(neq); }
  dx[idx] = select(0.0, pw[k] * f * x[idx] / L, L > 0.0);
}`;
  return kernel(
    'wedge.bwd',
    '',
    [
      ['K', 'u32'],
      ['D', 'u32'],
    ],
    [r('x'), r('keep'), r('out'), r('info'), r('pw'), w('dx')],
    body,
    WG,
    { keep: 'u32', info: 'u32' },
  );
}

// Softmax cross-entropy kernels: per-point mean loss and accuracy, and the weighted, clamped backward.
import { type KernelSpec, kernel, r, w, MAIN_1D, FOLDED_ID } from '../kernel.ts';

// ---------------------------------------------------------------- loss
/** Per-point softmax cross-entropy and accuracy: logits [K, N, C], labels [N] (u32). One workgroup per point. */
export function crossEntropyForwardKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['K', 'u32'],
    ['N', 'u32'],
    ['C', 'u32'],
  ];
  const body = `
var<workgroup> rl: array<f32, 256>;
var<workgroup> ra: array<f32, 256>;
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32) {
  let k = wid.x;
  var sl = 0.0; var sa = 0.0;
  for (var n = lid; n < u.N; n += 256u) {
    let base = (k * u.N + n) * u.C;
    var mx = logits[base]; var am = 0u;
    for (var c = 1u; c < u.C; c++) { let v = logits[base + c]; if (v > mx) { mx = v; am = c; } }
    var se = 0.0;
    for (var c = 0u; c < u.C; c++) { se += exp(logits[base + c] - mx); }
    let lab = labels[n];
    sl += log(se) + mx - logits[base + lab];
    if (am == lab) { sa += 1.0; }
  }
  rl[lid] = sl; ra[lid] = sa;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { rl[lid] += rl[lid + s]; ra[lid] += ra[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[k] = rl[0] / f32(u.N); out[u.K + k] = ra[0] / f32(u.N); }
}`;
  return kernel('cross_entropy.fwd', '', U, [r('logits'), r('labels'), w('out')], body, 256, { labels: 'u32' });
}

/**
 * dlogits[k, n, c] = w_k * (softmax - onehot) / N, where w_k = pw[k] unless the point's loss is above
 * its clamp threshold pw[K + k] (then 0: a clamped point contributes no gradient).
 */
export function crossEntropyBackwardKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['K', 'u32'],
    ['N', 'u32'],
    ['C', 'u32'],
  ];
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= u.K * u.N) { return; }
  let k = idx / u.N; let n = idx % u.N;
  let base = idx * u.C;
  var wk = pw[k];
  if (out[k] > pw[u.K + k]) { wk = 0.0; }
  var mx = logits[base];
  for (var c = 1u; c < u.C; c++) { mx = max(mx, logits[base + c]); }
  var se = 0.0;
  for (var c = 0u; c < u.C; c++) { se += exp(logits[base + c] - mx); }
  let lab = labels[n];
  let f = wk / f32(u.N);
  for (var c = 0u; c < u.C; c++) {
    let p = exp(logits[base + c] - mx) / se;
    dl[base + c] = f * (p - select(0.0, 1.0, c == lab));
  }
}`;
  return kernel('cross_entropy.bwd', '', U, [r('logits'), r('labels'), r('out'), r('pw'), w('dl')], body, 256, {
    labels: 'u32',
  });
}

// Batch norm (per-point batch statistics), elementwise ops, seeded dropout, softmax cross-entropy,
// basis/coefficient folds for per-point parameter gradients, optimizers and gradient-norm reductions.
import type { KernelSpec } from '../engine/device.ts';
import { kernel, r, w, MAIN_1D, FOLDED_ID, perElement } from './common.ts';

// ---------------------------------------------------------------- batch norm
// x is [K, N, C, HW]; one workgroup per (k, c) reduces over (n, hw).
// fixedStats = 1: evaluation mode, the statistics are constants (running statistics), so dx = gamma * istd * dy.
const BN_UNIFORMS: KernelSpec['uniforms'] = [['K', 'u32'], ['N', 'u32'], ['C', 'u32'], ['HW', 'u32'], ['B', 'u32'], ['eps', 'f32'], ['gammaOffset', 'f32'], ['fixedStats', 'u32']];
const BN_RED = `
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
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
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

const BN_AFFINE = `
fn affine(k: u32, c: u32) -> vec2<f32> {
  var g = u.gammaOffset; var bt = 0.0;
  for (var b = 0u; b < u.B; b++) {
    let cf = coef[k * u.B + b];
    g = fma(cf, gamma[b * u.C + c], g); bt = fma(cf, beta[b * u.C + c], bt);
  }
  return vec2<f32>(g, bt);
}`;

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
  return kernel('batchnorm2d.apply', '', BN_UNIFORMS, [r('x'), r('stats'), r('coef'), r('gamma'), r('beta'), w('y')], body, 256);
}

/**
 * dx, and per-point dgamma, dbeta (into pg [K, 2, C]: row 0 dgamma, row 1 dbeta; in evaluation mode pg is [K, 4, C] with
 * rows 2, 3 the gradients of the running mean and variance). One workgroup per (k, c).
 */
export function bnBackwardKernel(): KernelSpec {
  const body = `${BN_RED}
${BN_AFFINE}
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
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
  return kernel('batchnorm2d.bwd', '', BN_UNIFORMS, [r('dy'), r('x'), r('stats'), r('coef'), r('gamma'), r('beta'), w('dx'), w('pg')], body, 256);
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
  return kernel('batchnorm2d.running_stats', '', [['K', 'u32'], ['C', 'u32'], ['B', 'u32'], ['eps', 'f32']], [r('coef'), r('rmean'), r('rvar'), w('stats')], body, 64);
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
  return kernel('batchnorm2d.running_update', '', [['C', 'u32'], ['eps', 'f32'], ['momentum', 'f32'], ['M', 'f32']], [r('stats'), w('rmean'), w('rvar')], body, 64);
}

/** Basis tensors handled per pass by the fold kernels (more are done in several passes with bOff). */
export const FOLD_NB = 4;

/**
 * Folds per-point gradients g [K, S] into basis gradients: dp[b, s] (+)= sum_k coef[k,b] g[k,s], for
 * b in [bOff, bOff + 4): each thread reads its g[., s] column once for all of them.
 */
export function foldBasisKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [['K', 'u32'], ['B', 'u32'], ['S', 'u32'], ['accumulate', 'u32'], ['gOff', 'u32'], ['gStride', 'u32'], ['bOff', 'u32']];
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
  const U: KernelSpec['uniforms'] = [['K', 'u32'], ['B', 'u32'], ['S', 'u32'], ['gOff', 'u32'], ['gStride', 'u32'], ['bOff', 'u32']];
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

// ---------------------------------------------------------------- elementwise
/** y[i] = expr over named inputs a, b, ... (f32 arrays of the same length); `i` and `s` (a f32 uniform) are in scope. */
export function elementwiseKernel(name: string, inputs: string[], expr: string, extraUniforms: KernelSpec['uniforms'] = [], prelude = '', per = 1): KernelSpec {
  const U: KernelSpec['uniforms'] = [['n', 'u32'], ...extraUniforms];
  const body = `${prelude}
${MAIN_1D(256)} {
  ${FOLDED_ID}
  ${perElement(256, per, 'u.n', `let i = idx;
    ${inputs.map((a) => `let ${a} = ${a}_[i];`).join(' ')}
    y[i] = ${expr};`)}
}`;
  return kernel(name, per === 1 ? '' : `per${per}`, U, [...inputs.map((a) => r(`${a}_`)), w('y')], body, 256);
}

/**
 * ReLU with the mask shared by points 2j and 2j+1: mask = (a[k] + a[k ^ 1] > 0), S values per point. mode 0: forward
 * y = mask ? a : 0; mode 1: backward y = mask ? g : 0 (g the output gradient).
 */
export function reluPairedKernel(): KernelSpec {
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let i = wg_lin * 256u + lid;
  if (i >= u.n) { return; }
  let k = i / u.S;
  let j = (k ^ 1u) * u.S + i % u.S;
  let on = a[i] + a[j] > 0.0;
  if (u.mode == 0u) { y[i] = select(0.0, a[i], on); } else { y[i] = select(0.0, g[i], on); }
}`;
  return kernel('relu.paired', '', [['n', 'u32'], ['S', 'u32'], ['mode', 'u32']], [r('a'), r('g'), w('y')], body, 256);
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

/** Counter-based hash (PCG-style) giving a uniform float in [0, 1) for (seed, index). */
export const HASH = `
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let t = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (t >> 22u) ^ t;
}
fn uniform01(seed: u32, i: u32) -> f32 { return f32(pcg(pcg(i) ^ seed) >> 8u) / 16777216.0; }`;

// ---------------------------------------------------------------- loss
/** Per-point softmax cross-entropy and accuracy: logits [K, N, C], labels [N] (u32). One workgroup per point. */
export function crossEntropyForwardKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [['K', 'u32'], ['N', 'u32'], ['C', 'u32']];
  const body = `
var<workgroup> rl: array<f32, 256>;
var<workgroup> ra: array<f32, 256>;
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
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
  const U: KernelSpec['uniforms'] = [['K', 'u32'], ['N', 'u32'], ['C', 'u32']];
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
  return kernel('cross_entropy.bwd', '', U, [r('logits'), r('labels'), r('out'), r('pw'), w('dl')], body, 256, { labels: 'u32' });
}

// ---------------------------------------------------------------- optimizers
/**
 * Partial sums of squares: part[off + workgroup] = sum over the workgroup's 1024 elements of g^2, by `wg` threads
 * (256 on a GPU; 8 on a CPU adapter, where the tree's barriers cost more than the longer per-thread loop).
 */
export function sumSquaresKernel(wg = 256): KernelSpec {
  const U: KernelSpec['uniforms'] = [['n', 'u32'], ['off', 'u32']];
  const body = `
var<workgroup> red: array<f32, ${wg}>;
${MAIN_1D(wg)} {
  ${FOLDED_ID}
  var s = 0.0;
  for (var j = 0u; j < ${1024 / wg}u; j++) {
    let i = wg_lin * 1024u + j * ${wg}u + lid;
    if (i < u.n) { s = fma(g[i], g[i], s); }
  }
  red[lid] = s;
  workgroupBarrier();
  for (var st = ${wg / 2}u; st > 0u; st >>= 1u) {
    if (lid < st) { red[lid] += red[lid + st]; }
    workgroupBarrier();
  }
  if (lid == 0u) { part[u.off + wg_lin] = red[0]; }
}`;
  return kernel('grad.sumsq', `wg${wg}`, U, [r('g'), w('part')], body, wg);
}

/** norm[0] = sqrt(sum of part[0..n)); norm[1] = clip scale min(1, maxNorm / (norm + 1e-6)) (1 when maxNorm <= 0). */
export function normFinishKernel(): KernelSpec {
  const U: KernelSpec['uniforms'] = [['n', 'u32'], ['maxNorm', 'f32']];
  const body = `
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256) fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < u.n; i += 256u) { s += part[i]; }
  red[lid] = s;
  workgroupBarrier();
  for (var st = 128u; st > 0u; st >>= 1u) {
    if (lid < st) { red[lid] += red[lid + st]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let nrm = sqrt(red[0]);
    norm[0] = nrm;
    norm[1] = select(1.0, min(1.0, u.maxNorm / (nrm + 1e-6)), u.maxNorm > 0.0);
  }
}`;
  return kernel('grad.norm', '', U, [r('part'), w('norm')], body, 256);
}

/** An optimizer kernel over n elements, `per` consecutive ones per invocation (the gradient already clip-scaled). */
const optKernel = (name: string, U: KernelSpec['uniforms'], bindings: ReturnType<typeof w>[], per: number, update: string): KernelSpec =>
  kernel(name, per === 1 ? '' : `per${per}`, U, bindings, `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  ${perElement(256, per, 'u.n', `let i = idx;
    let p0 = p[i];
    let g = g_[i] * norm[1] + u.wd * p0;
    ${update}`)}
}`, 256);

/** PyTorch SGD: buf = mu*buf + g; step = nesterov ? g + mu*buf : buf; p -= lr*step (g includes weight decay). */
export function sgdKernel(per = 1): KernelSpec {
  const U: KernelSpec['uniforms'] = [['n', 'u32'], ['lr', 'f32'], ['mu', 'f32'], ['wd', 'f32'], ['nesterov', 'u32']];
  return optKernel('optim.sgd', U, [w('p'), r('g_'), w('m'), r('norm')], per, `let b = u.mu * m[i] + g;
    m[i] = b;
    let st = select(b, g + u.mu * b, u.nesterov != 0u);
    p[i] = p0 - u.lr * st;`);
}

/** PyTorch Adam (L2 weight decay added to the gradient); c1, c2 are the bias corrections 1 - beta^t. */
export function adamKernel(per = 1): KernelSpec {
  const U: KernelSpec['uniforms'] = [['n', 'u32'], ['lr', 'f32'], ['b1', 'f32'], ['b2', 'f32'], ['eps', 'f32'], ['wd', 'f32'], ['c1', 'f32'], ['c2', 'f32']];
  return optKernel('optim.adam', U, [w('p'), r('g_'), w('m'), w('v'), r('norm')], per, `let mm = u.b1 * m[i] + (1.0 - u.b1) * g;
    let vv = u.b2 * v[i] + (1.0 - u.b2) * g * g;
    m[i] = mm; v[i] = vv;
    p[i] = p0 - u.lr * (mm / u.c1) / (sqrt(vv / u.c2) + u.eps);`);
}

/** y[k, s] = act(sum_b coef[k, b] * z[b, s]): point outputs from per-basis outputs (a layer whose input is shared). */
export function combineKernel(relu: boolean, per = 1): KernelSpec {
  const U: KernelSpec['uniforms'] = [['K', 'u32'], ['B', 'u32'], ['S', 'u32']];
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  ${perElement(256, per, 'u.K * u.S', `let k = idx / u.S; let s = idx % u.S;
    var v = 0.0;
    for (var b = 0u; b < u.B; b++) { v = fma(coef[k * u.B + b], z[b * u.S + s], v); }
    y[idx] = ${relu ? 'max(v, 0.0)' : 'v'};`)}
}`;
  return kernel('manifold.combine', `${relu ? 'relu' : ''}${per === 1 ? '' : `per${per}`}`, U, [r('coef'), r('z'), w('y')], body, 256);
}

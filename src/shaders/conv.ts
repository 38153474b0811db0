// conv2d (and linear, as a 1x1 conv on a 1x1 image) as tiled implicit-GEMM kernels over a weight manifold.
//
// Activations are [K, N, C, H, W]; the input of the first layer may be shared by all K points (kStride 0).
// Point k's weights are built in the weight-tile load: W_k = sum_b coef[k, b] * basis[b]; no K x |W|
// buffer exists. The bias rides along as an extra reduction column whose input is 1.
//
//  fwd:   y[k, (n,oh,ow), co]  = sum_r  im2col(x_k)[(n,oh,ow), r] * W_k[co, r]      (+ fused ReLU)
//  dgrad: dx[k, (n,ih,iw), ci] = sum_r' dy_k gathered[(n,ih,iw), (co,kh,kw)] * W_k[co, ci, kh, kw]
//  wgrad: part[z, b, co, r]    = sum_{k in z} coef[k, b] * sum_{(n,oh,ow) in z} im2col(x_k)[., r] * dy_k[., co]
//         then a reduce over z; optionally dcoef partials: sum_{co,r} basis[b][co, r] * dW_k[co, r]
//
// Each workgroup computes a BM x BN tile of the GEMM with TM x TN outputs per thread (register blocking),
// staging BK-deep slices of both operands in workgroup memory.
import type { KernelSpec } from '../engine/device.ts';
import { kernel, r, w } from './common.ts';

export interface Tiles {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));
const clampI = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

/**
 * Tile shape for a GEMM of `rows` x `cols`: 4 x 4 outputs per thread where the tile allows, columns
 * rounded up to a power of two in [8, 64], rows filling up to 256 threads (fewer when rows are few),
 * BK chosen so both staged slices fit in 16 KiB of workgroup memory.
 */
export function chooseTiles(cols: number, rows = 1 << 20): Tiles {
  const BN = clampI(pow2(cols), 8, 64);
  const TN = Math.min(4, BN / 2);
  const TX = BN / TN;
  const TM = 4;
  const TY = clampI(pow2(Math.ceil(rows / TM)), Math.max(1, 32 / TX), 256 / TX);
  const BM = TY * TM;
  const BK = (16 * (BM + BN) * 4 <= 16384) ? 16 : 8;
  return { BM, BN, BK, TM, TN };
}

const tkey = (t: Tiles) => `${t.BM}x${t.BN}x${t.BK}_${t.TM}x${t.TN}`;
const threads = (t: Tiles) => (t.BM / t.TM) * (t.BN / t.TN);

const CONV_UNIFORMS: KernelSpec['uniforms'] = [
  ['K', 'u32'], ['N', 'u32'], ['Cin', 'u32'], ['H', 'u32'], ['W', 'u32'], ['Cout', 'u32'],
  ['OH', 'u32'], ['OW', 'u32'], ['KH', 'u32'], ['KW', 'u32'], ['stride', 'u32'], ['pad', 'u32'],
  ['B', 'u32'], ['xKStride', 'u32'], ['R0', 'u32'], ['R', 'u32'],
];

/** im2col gather of x for point k: row m = (n, oh, ow), column r = (ci, kh, kw); r == R0 is the bias column. */
const IM2COL = `
fn im2col(k: u32, m: u32, rr: u32) -> f32 {
  if (rr >= u.R || m >= u.N * u.OH * u.OW) { return 0.0; }
  if (rr == u.R0) { return 1.0; }
  let n = m / (u.OH * u.OW); let p = m % (u.OH * u.OW);
  let oh = p / u.OW; let ow = p % u.OW;
  let khw = u.KH * u.KW;
  let ci = rr / khw; let q = rr % khw;
  let ih = i32(oh * u.stride + q / u.KW) - i32(u.pad);
  let iw = i32(ow * u.stride + q % u.KW) - i32(u.pad);
  if (ih < 0 || iw < 0 || ih >= i32(u.H) || iw >= i32(u.W)) { return 0.0; }
  return x[k * u.xKStride + ((n * u.Cin + ci) * u.H + u32(ih)) * u.W + u32(iw)];
}`;

/** Shared GEMM pieces: tile buffers, the cooperative loads, and the register-blocked inner product. */
function gemmParts(t: Tiles) {
  const TX = t.BN / t.TN;
  const T = threads(t);
  return {
    decl: `
var<workgroup> As: array<f32, ${t.BK * t.BM}>;
var<workgroup> Bs: array<f32, ${t.BK * t.BN}>;`,
    /** Loads the BK slice starting at r0; loadA(m, r) and loadB(r, n) are expressions in m, rr, n. */
    load: (loadA: string, loadB: string) => `
    for (var i = lid; i < ${t.BK * t.BM}u; i += ${T}u) {
      let m = m0 + i % ${t.BM}u; let rr = r0 + i / ${t.BM}u;
      As[i] = ${loadA};
    }
    for (var i = lid; i < ${t.BK * t.BN}u; i += ${T}u) {
      let n = n0 + i % ${t.BN}u; let rr = r0 + i / ${t.BN}u;
      Bs[i] = ${loadB};
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${t.BK}u; kk++) {
      var a: array<f32, ${t.TM}>; var bv: array<f32, ${t.TN}>;
      for (var i = 0u; i < ${t.TM}u; i++) { a[i] = As[kk * ${t.BM}u + ty * ${t.TM}u + i]; }
      for (var j = 0u; j < ${t.TN}u; j++) { bv[j] = Bs[kk * ${t.BN}u + tx * ${t.TN}u + j]; }
      for (var i = 0u; i < ${t.TM}u; i++) {
        for (var j = 0u; j < ${t.TN}u; j++) { acc[i * ${t.TN}u + j] = fma(a[i], bv[j], acc[i * ${t.TN}u + j]); }
      }
    }
    workgroupBarrier();`,
    ids: `let tx = lid % ${TX}u; let ty = lid / ${TX}u;`,
    main: `@compute @workgroup_size(${T}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32)`,
  };
}

/** Weight of point k at (co, r): sum_b coef[k,b] * basis; r == R0 reads the bias basis. */
function weightLoad(hasBias: boolean): string {
  return `
fn wk(k: u32, co: u32, rr: u32) -> f32 {
  if (co >= u.Cout || rr >= u.R) { return 0.0; }
  var s = 0.0;
  ${hasBias ? `if (rr == u.R0) {
    for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], bias[b * u.Cout + co], s); }
    return s;
  }` : ''}
  for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], weight[(b * u.Cout + co) * u.R0 + rr], s); }
  return s;
}`;
}

export function convForwardKernel(t: Tiles, hasBias: boolean, act: 'none' | 'relu'): KernelSpec {
  const g = gemmParts(t);
  const bindings = [r('x'), r('weight'), ...(hasBias ? [r('bias')] : []), r('coef'), w('y')];
  const body = `${g.decl}
${IM2COL}
${weightLoad(hasBias)}
${g.main} {
  ${g.ids}
  let k = wid.z;
  let m0 = wid.x * ${t.BM}u; let n0 = wid.y * ${t.BN}u;
  let M = u.N * u.OH * u.OW;
  var acc: array<f32, ${t.TM * t.TN}>;
  for (var r0 = 0u; r0 < u.R; r0 += ${t.BK}u) {
    ${g.load('im2col(k, m, rr)', 'wk(k, n, rr)')}
  }
  let P = u.OH * u.OW;
  for (var i = 0u; i < ${t.TM}u; i++) {
    let m = m0 + ty * ${t.TM}u + i;
    if (m >= M) { continue; }
    let n = m / P; let p = m % P;
    for (var j = 0u; j < ${t.TN}u; j++) {
      let co = n0 + tx * ${t.TN}u + j;
      if (co >= u.Cout) { continue; }
      var v = acc[i * ${t.TN}u + j];
      ${act === 'relu' ? 'v = max(v, 0.0);' : ''}
      y[((k * u.N + n) * u.Cout + co) * P + p] = v;
    }
  }
}`;
  return kernel('conv2d.fwd', `${tkey(t)}_b${+hasBias}_${act}`, CONV_UNIFORMS, bindings, body, threads(t));
}

export function convInputGradKernel(t: Tiles): KernelSpec {
  const g = gemmParts(t);
  const bindings = [r('dy'), r('weight'), r('coef'), w('dx')];
  // GEMM: rows m = (n, ih, iw), columns ci, reduction rr = (co, kh, kw).
  const body = `${g.decl}
fn dyg(k: u32, m: u32, rr: u32) -> f32 {
  let khw = u.KH * u.KW;
  if (m >= u.N * u.H * u.W || rr >= u.Cout * khw) { return 0.0; }
  let n = m / (u.H * u.W); let p = m % (u.H * u.W);
  let ih = p / u.W; let iw = p % u.W;
  let co = rr / khw; let q = rr % khw;
  let th = i32(ih + u.pad) - i32(q / u.KW);
  let tw = i32(iw + u.pad) - i32(q % u.KW);
  if (th < 0 || tw < 0) { return 0.0; }
  let s = i32(u.stride);
  if (th % s != 0 || tw % s != 0) { return 0.0; }
  let oh = u32(th / s); let ow = u32(tw / s);
  if (oh >= u.OH || ow >= u.OW) { return 0.0; }
  return dy[((k * u.N + n) * u.Cout + co) * u.OH * u.OW + oh * u.OW + ow];
}
fn wt(k: u32, rr: u32, ci: u32) -> f32 {
  let khw = u.KH * u.KW;
  if (ci >= u.Cin || rr >= u.Cout * khw) { return 0.0; }
  let co = rr / khw; let q = rr % khw;
  var s = 0.0;
  for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], weight[(b * u.Cout + co) * u.R0 + ci * khw + q], s); }
  return s;
}
${g.main} {
  ${g.ids}
  let k = wid.z;
  let m0 = wid.x * ${t.BM}u; let n0 = wid.y * ${t.BN}u;
  let M = u.N * u.H * u.W;
  let RR = u.Cout * u.KH * u.KW;
  var acc: array<f32, ${t.TM * t.TN}>;
  for (var r0 = 0u; r0 < RR; r0 += ${t.BK}u) {
    ${g.load('dyg(k, m, rr)', 'wt(k, rr, n)')}
  }
  let P = u.H * u.W;
  for (var i = 0u; i < ${t.TM}u; i++) {
    let m = m0 + ty * ${t.TM}u + i;
    if (m >= M) { continue; }
    let n = m / P; let p = m % P;
    for (var j = 0u; j < ${t.TN}u; j++) {
      let ci = n0 + tx * ${t.TN}u + j;
      if (ci >= u.Cin) { continue; }
      dx[((k * u.N + n) * u.Cin + ci) * P + p] = acc[i * ${t.TN}u + j];
    }
  }
}`;
  return kernel('conv2d.dgrad', tkey(t), CONV_UNIFORMS, bindings, body, threads(t));
}

export const WGRAD_BMAX = 4;

/**
 * Weight gradient, split over z = (point group, position chunk). GEMM rows are r = (ci, kh, kw) (+ bias
 * column), columns co, reduction over positions (n, oh, ow) of each point k; after each point the
 * per-point tile is folded into up to WGRAD_BMAX basis accumulators with coef[k, b].
 * With dcoef, each point's tile is also dotted with the basis (sum over the tile of basis_b * dW_k),
 * reduced across the workgroup and written per (workgroup, k, b).
 */
export function convWeightGradKernel(t: Tiles, nb: number, hasBias: boolean, dcoef: boolean): KernelSpec {
  const g = gemmParts(t);
  const T = threads(t);
  const uniforms: KernelSpec['uniforms'] = [...CONV_UNIFORMS, ['KG', 'u32'], ['S', 'u32'], ['PS', 'u32'], ['bOff', 'u32'], ['tilesM', 'u32'], ['tilesN', 'u32']];
  const bindings = [r('x'), r('dy'), r('coef'), w('part'), ...(dcoef ? [r('weight'), ...(hasBias ? [r('bias')] : []), w('dcpart')] : [])];
  const body = `${g.decl}
${dcoef ? `var<workgroup> red: array<f32, ${T}>;` : ''}
${IM2COL}
fn dyv(k: u32, p: u32, co: u32, pEnd: u32) -> f32 {
  if (p >= pEnd || co >= u.Cout) { return 0.0; }
  let P = u.OH * u.OW;
  return dy[((k * u.N + p / P) * u.Cout + co) * P + p % P];
}
${dcoef ? `fn basis(b: u32, rr: u32, co: u32) -> f32 {
  if (rr >= u.R || co >= u.Cout) { return 0.0; }
  ${hasBias ? 'if (rr == u.R0) { return bias[b * u.Cout + co]; }' : ''}
  return weight[(b * u.Cout + co) * u.R0 + rr];
}` : ''}
${g.main} {
  ${g.ids}
  let z = wid.z;
  let kg = z / u.S; let s = z % u.S;
  let kBegin = kg * u.KG; let kEnd = min(u.K, kBegin + u.KG);
  let Ptot = u.N * u.OH * u.OW;
  let pBegin = s * u.PS; let pEnd = min(Ptot, pBegin + u.PS);
  let m0 = wid.x * ${t.BM}u; let n0 = wid.y * ${t.BN}u;
  var tot: array<array<f32, ${t.TM * t.TN}>, ${nb}>;
  for (var k = kBegin; k < kEnd; k++) {
    var acc: array<f32, ${t.TM * t.TN}>;
    for (var r0 = pBegin; r0 < pEnd; r0 += ${t.BK}u) {
      ${g.load('select(0.0, im2col(k, rr, m), rr < pEnd)', 'dyv(k, rr, n, pEnd)')}
    }
    for (var b = 0u; b < ${nb}u; b++) {
      if (u.bOff + b >= u.B) { break; }
      let c = coef[k * u.B + u.bOff + b];
      for (var i = 0u; i < ${t.TM * t.TN}u; i++) { tot[b][i] = fma(c, acc[i], tot[b][i]); }
    }
    ${dcoef ? `
    let wgl = (z * u.tilesM + wid.x) * u.tilesN + wid.y;
    for (var b = 0u; b < ${nb}u; b++) {
      let bb = min(u.bOff + b, u.B - 1u);
      var d = 0.0;
      for (var i = 0u; i < ${t.TM}u; i++) {
        for (var j = 0u; j < ${t.TN}u; j++) {
          d = fma(acc[i * ${t.TN}u + j], basis(bb, m0 + ty * ${t.TM}u + i, n0 + tx * ${t.TN}u + j), d);
        }
      }
      red[lid] = d;
      workgroupBarrier();
      for (var st = ${T / 2}u; st > 0u; st >>= 1u) {
        if (lid < st) { red[lid] += red[lid + st]; }
        workgroupBarrier();
      }
      if (lid == 0u && u.bOff + b < u.B) { dcpart[(wgl * u.K + k) * u.B + u.bOff + b] = red[0]; }
      workgroupBarrier();
    }` : ''}
  }
  for (var b = 0u; b < ${nb}u; b++) {
    if (u.bOff + b >= u.B) { break; }
    for (var i = 0u; i < ${t.TM}u; i++) {
      let rr = m0 + ty * ${t.TM}u + i;
      if (rr >= u.R) { continue; }
      for (var j = 0u; j < ${t.TN}u; j++) {
        let co = n0 + tx * ${t.TN}u + j;
        if (co >= u.Cout) { continue; }
        part[((z * u.B + u.bOff + b) * u.Cout + co) * u.R + rr] = tot[b][i * ${t.TN}u + j];
      }
    }
  }
}`;
  return kernel('conv2d.wgrad', `${tkey(t)}_nb${nb}_b${+hasBias}_dc${+dcoef}`, uniforms, bindings, body, T);
}

/** Sums the split-K partials [Z, B, Cout, R] into the weight [B, Cout, R0] and bias [B, Cout] gradients (+= when accumulate). */
export function convWgradReduceKernel(hasBias: boolean): KernelSpec {
  const uniforms: KernelSpec['uniforms'] = [['Z', 'u32'], ['B', 'u32'], ['Cout', 'u32'], ['R0', 'u32'], ['R', 'u32'], ['accumulate', 'u32']];
  const bindings = [r('part'), w('gw'), ...(hasBias ? [w('gb')] : [])];
  const body = `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.y * nwg.x + wid.x) * 256u + lid;
  let total = u.B * u.Cout * u.R;
  if (idx >= total) { return; }
  var s = 0.0;
  for (var z = 0u; z < u.Z; z++) { s += part[z * total + idx]; }
  let rr = idx % u.R; let bc = idx / u.R;
  if (rr < u.R0) {
    let o = bc * u.R0 + rr;
    if (u.accumulate != 0u) { s += gw[o]; }
    gw[o] = s;
  }${hasBias ? ` else {
    if (u.accumulate != 0u) { s += gb[bc]; }
    gb[bc] = s;
  }` : ''}
}`;
  return kernel('conv2d.wgrad_reduce', `b${+hasBias}`, uniforms, bindings, body, 256);
}

/** dcoef[k, b] (+)= sum over workgroups of the per-workgroup partial dots [G, K, B]. */
export function coefReduceKernel(): KernelSpec {
  const uniforms: KernelSpec['uniforms'] = [['G', 'u32'], ['KB', 'u32']];
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

/** Plain C[M, N] = A[M, Kd] B[Kd, N] with the same tiling as the conv kernels: the roofline probe of bench:kernels. */
export function matmulKernel(t: Tiles): KernelSpec {
  const g = gemmParts(t);
  const U: KernelSpec['uniforms'] = [['M', 'u32'], ['N', 'u32'], ['Kd', 'u32']];
  const body = `${g.decl}
fn la(m: u32, rr: u32) -> f32 { if (m < u.M && rr < u.Kd) { return a[m * u.Kd + rr]; } return 0.0; }
fn lb(rr: u32, n: u32) -> f32 { if (n < u.N && rr < u.Kd) { return b[rr * u.N + n]; } return 0.0; }
${g.main} {
  ${g.ids}
  let m0 = wid.x * ${t.BM}u; let n0 = wid.y * ${t.BN}u;
  var acc: array<f32, ${t.TM * t.TN}>;
  for (var r0 = 0u; r0 < u.Kd; r0 += ${t.BK}u) {
    ${g.load('la(m, rr)', 'lb(rr, n)')}
  }
  for (var i = 0u; i < ${t.TM}u; i++) {
    let m = m0 + ty * ${t.TM}u + i;
    for (var j = 0u; j < ${t.TN}u; j++) {
      let n = n0 + tx * ${t.TN}u + j;
      if (m < u.M && n < u.N) { c[m * u.N + n] = acc[i * ${t.TN}u + j]; }
    }
  }
}`;
  return kernel('matmul', tkey(t), U, [r('a'), r('b'), w('c')], body, threads(t));
}

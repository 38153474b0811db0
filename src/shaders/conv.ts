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
 * Tile shape for a GEMM of `rows` x `cols`: up to 4 x 4 outputs per thread, columns
 * rounded up to a power of two in [8, 64], rows filling up to 256 threads (fewer when rows are few; then the
 * workgroup size need not be a power of two),
 * BK chosen so both staged slices fit in 16 KiB of workgroup memory.
 */
export function chooseTiles(cols: number, rows = 1 << 20): Tiles {
  const BN = clampI(pow2(cols), 8, 64);
  const TN = Math.min(4, BN / 2);
  const TX = BN / TN;
  const TM = rows <= 16 ? 1 : rows <= 48 ? 2 : 4; // few rows (a weight gradient of a thin layer): smaller tiles
  // rows not rounded to a power of two: a 73-row weight gradient gets a 76-row tile, not 128
  const TY = clampI(Math.ceil(rows / TM), Math.max(1, 32 / TX), 256 / TX);
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

/**
 * The GEMM main loop. Per thread, the A-tile rows it loads are decoded once (rowInfo); per BK slice, the
 * BK reduction indices are decoded once per workgroup into workgroup memory (decode), double-buffered so
 * the next slice's decode shares the existing barrier. Loads then need no integer division.
 *   loadA: expression in a (row info, vec4<i32>), ri (reduction info, vec4<i32>), m, rr
 *   loadB: expression in ri, n, rr
 */
function gemm(t: Tiles, o: { rBegin: string; rEnd: string; loadA: string; loadB: string }): { decl: string; setup: string; loop: string } {
  const T = threads(t);
  const RA = Math.max(1, t.BM / T);
  const LA = (t.BK * t.BM) / T;
  const slot = T >= t.BM ? '0u' : `j % ${RA}u`;
  const rowOf = T >= t.BM ? `lid % ${t.BM}u` : `lid + s * ${T}u`;
  return {
    decl: `
var<workgroup> As: array<f32, ${t.BK * t.BM}>;
var<workgroup> Bs: array<f32, ${t.BK * t.BN}>;
var<workgroup> Ri: array<vec4<i32>, ${2 * t.BK}>;`,
    setup: `
  let tx = lid % ${t.BN / t.TN}u; let ty = lid / ${t.BN / t.TN}u;
  var ra: array<vec4<i32>, ${RA}>;
  for (var s = 0u; s < ${RA}u; s++) { ra[s] = rowInfo(m0 + ${rowOf}); }`,
    loop: `
    if (lid < ${t.BK}u) { Ri[lid] = decode(${o.rBegin} + lid); }
    workgroupBarrier();
    var cur = 0u;
    for (var r0 = ${o.rBegin}; r0 < ${o.rEnd}; r0 += ${t.BK}u) {
      for (var j = 0u; j < ${LA}u; j++) {
        let i = lid + j * ${T}u;
        let rl = i / ${t.BM}u;
        let a = ra[${slot}]; let ri = Ri[cur * ${t.BK}u + rl]; let rr = r0 + rl; let m = m0 + i % ${t.BM}u;
        As[i] = ${o.loadA};
      }
      for (var i = lid; i < ${t.BK * t.BN}u; i += ${T}u) {
        let rl = i / ${t.BN}u;
        let ri = Ri[cur * ${t.BK}u + rl]; let rr = r0 + rl; let n = n0 + i % ${t.BN}u;
        Bs[i] = ${o.loadB};
      }
      if (lid < ${t.BK}u) { Ri[(1u - cur) * ${t.BK}u + lid] = decode(r0 + ${t.BK}u + lid); }
      workgroupBarrier();
      for (var kk = 0u; kk < ${t.BK}u; kk++) {
        var av: array<f32, ${t.TM}>; var bv: array<f32, ${t.TN}>;
        for (var i = 0u; i < ${t.TM}u; i++) { av[i] = As[kk * ${t.BM}u + ty * ${t.TM}u + i]; }
        for (var jj = 0u; jj < ${t.TN}u; jj++) { bv[jj] = Bs[kk * ${t.BN}u + tx * ${t.TN}u + jj]; }
        for (var i = 0u; i < ${t.TM}u; i++) {
          for (var jj = 0u; jj < ${t.TN}u; jj++) { acc[i * ${t.TN}u + jj] = fma(av[i], bv[jj], acc[i * ${t.TN}u + jj]); }
        }
      }
      workgroupBarrier();
      cur = 1u - cur;
    }`,
  };
}

const MAIN = (t: Tiles) => `@compute @workgroup_size(${threads(t)}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32)`;

/**
 * Weight of point k at (co, r): sum_b coef[k,b] * basis; r == R0 reads the bias basis. direct: the weight and bias
 * buffers hold every point's own weights ([K, Cout, R0], [K, Cout], materialized by the caller when B > K).
 */
function weightLoad(hasBias: boolean, direct: boolean): string {
  if (direct) return `
fn wk(k: u32, co: u32, rr: u32) -> f32 {
  if (co >= u.Cout || rr >= u.R) { return 0.0; }
  ${hasBias ? 'if (rr == u.R0) { return bias[k * u.Cout + co]; }' : ''}
  return weight[(k * u.Cout + co) * u.R0 + rr];
}`;
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

/** Basis tensor b's weight at (co, r), r == R0 the bias (the dcoef dot products of the weight gradients). */
const basisAt = (hasBias: boolean) => `
fn basis(b: u32, rr: u32, co: u32) -> f32 {
  if (rr >= u.R || co >= u.Cout) { return 0.0; }
  ${hasBias ? 'if (rr == u.R0) { return bias[b * u.Cout + co]; }' : ''}
  return weight[(b * u.Cout + co) * u.R0 + rr];
}`;

/** Decodes an im2col column r = (ci, kh, kw) into (ci*H*W, kh, kw, kind): kind 1 pixel, 2 bias column, 0 padding. */
const DECODE_COL = `
fn decodeCol(rr: u32) -> vec4<i32> {
  if (rr >= u.R) { return vec4<i32>(0, 0, 0, 0); }
  if (rr == u.R0) { return vec4<i32>(0, 0, 0, 2); }
  let khw = u.KH * u.KW; let q = rr % khw;
  return vec4<i32>(i32((rr / khw) * u.H * u.W), i32(q / u.KW), i32(q % u.KW), 1);
}`;

/** Decodes an output position m = (n, oh, ow) into (n, oh*stride - pad, ow*stride - pad, valid). */
const DECODE_POS = `
fn decodePos(m: u32, limit: u32) -> vec4<i32> {
  if (m >= limit) { return vec4<i32>(0, 0, 0, 0); }
  let P = u.OH * u.OW; let p = m % P;
  return vec4<i32>(i32(m / P), i32((p / u.OW) * u.stride) - i32(u.pad), i32((p % u.OW) * u.stride) - i32(u.pad), 1);
}`;

/** x at point k for decoded position pos and decoded column col (the im2col element). */
const X_AT = `
fn xAt(k: u32, pos: vec4<i32>, col: vec4<i32>) -> f32 {
  if (pos.w == 0 || col.w == 0) { return 0.0; }
  if (col.w == 2) { return 1.0; }
  let ih = pos.y + col.y; let iw = pos.z + col.z;
  if (ih < 0 || iw < 0 || ih >= i32(u.H) || iw >= i32(u.W)) { return 0.0; }
  return x[k * u.xKStride + u32(pos.x) * u.Cin * u.H * u.W + u32(col.x + ih * i32(u.W) + iw)];
}`;

export function convForwardKernel(t: Tiles, hasBias: boolean, act: 'none' | 'relu', direct = false): KernelSpec {
  const bindings = [r('x'), r('weight'), ...(hasBias ? [r('bias')] : []), ...(direct ? [] : [r('coef')]), w('y')];
  const g = gemm(t, { rBegin: '0u', rEnd: 'u.R', loadA: 'xAt(k, a, ri)', loadB: 'wk(k, n, rr)' });
  const body = `${g.decl}
${DECODE_COL}
${DECODE_POS}
${X_AT}
${weightLoad(hasBias, direct)}
fn rowInfo(m: u32) -> vec4<i32> { return decodePos(m, u.N * u.OH * u.OW); }
fn decode(rr: u32) -> vec4<i32> { return decodeCol(rr); }
${MAIN(t)} {
  let k = wid.z;
  let m0 = wid.x * ${t.BM}u; let n0 = wid.y * ${t.BN}u;
  let M = u.N * u.OH * u.OW;
  ${g.setup}
  var acc: array<f32, ${t.TM * t.TN}>;
  ${g.loop}
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
  return kernel('conv2d.fwd', `${tkey(t)}_b${+hasBias}_${act}${direct ? '_direct' : ''}`, CONV_UNIFORMS, bindings, body, threads(t));
}

export function convInputGradKernel(t: Tiles, unitStride: boolean, direct = false): KernelSpec {
  const bindings = [r('dy'), r('weight'), ...(direct ? [] : [r('coef')]), w('dx')];
  // GEMM: rows m = (n, ih, iw), columns ci, reduction rr = (co, kh, kw).
  const g = gemm(t, { rBegin: '0u', rEnd: 'u.Cout * u.KH * u.KW', loadA: 'dyAt(k, a, ri)', loadB: 'wt(k, ri, n)' });
  const body = `${g.decl}
fn rowInfo(m: u32) -> vec4<i32> {
  if (m >= u.N * u.H * u.W) { return vec4<i32>(0, 0, 0, 0); }
  let p = m % (u.H * u.W);
  return vec4<i32>(i32(m / (u.H * u.W)), i32(p / u.W + u.pad), i32(p % u.W + u.pad), 1);
}
fn decode(rr: u32) -> vec4<i32> {
  let khw = u.KH * u.KW;
  if (rr >= u.Cout * khw) { return vec4<i32>(0, 0, 0, 0); }
  let q = rr % khw;
  return vec4<i32>(i32(rr / khw), i32(q / u.KW), i32(q % u.KW), 1);
}
fn dyAt(k: u32, a: vec4<i32>, ri: vec4<i32>) -> f32 {
  if (a.w == 0 || ri.w == 0) { return 0.0; }
  let th = a.y - ri.y; let tw = a.z - ri.z;
  if (th < 0 || tw < 0) { return 0.0; }
  ${unitStride ? 'let oh = u32(th); let ow = u32(tw);' : `let s = i32(u.stride);
  if (th % s != 0 || tw % s != 0) { return 0.0; }
  let oh = u32(th / s); let ow = u32(tw / s);`}
  if (oh >= u.OH || ow >= u.OW) { return 0.0; }
  return dy[((k * u.N + u32(a.x)) * u.Cout + u32(ri.x)) * u.OH * u.OW + oh * u.OW + ow];
}
fn wt(k: u32, ri: vec4<i32>, ci: u32) -> f32 {
  if (ci >= u.Cin || ri.w == 0) { return 0.0; }
  let idx = u32(ri.x) * u.R0 + ci * u.KH * u.KW + u32(ri.y) * u.KW + u32(ri.z);
  let step = u.Cout * u.R0;
  ${direct ? 'return weight[k * step + idx];' : `var s = 0.0;
  for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], weight[b * step + idx], s); }
  return s;`}
}
${MAIN(t)} {
  let k = wid.z;
  let m0 = wid.x * ${t.BM}u; let n0 = wid.y * ${t.BN}u;
  let M = u.N * u.H * u.W;
  ${g.setup}
  var acc: array<f32, ${t.TM * t.TN}>;
  ${g.loop}
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
  return kernel('conv2d.dgrad', `${tkey(t)}_s${unitStride ? 1 : 'n'}${direct ? '_direct' : ''}`, CONV_UNIFORMS, bindings, body, threads(t));
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
  const T = threads(t);
  const uniforms: KernelSpec['uniforms'] = [...CONV_UNIFORMS, ['KG', 'u32'], ['S', 'u32'], ['PS', 'u32'], ['bOff', 'u32'], ['tilesM', 'u32'], ['tilesN', 'u32']];
  const bindings = [r('x'), r('dy'), r('coef'), w('part'), ...(dcoef ? [r('weight'), ...(hasBias ? [r('bias')] : []), w('dcpart')] : [])];
  const g = gemm(t, { rBegin: 'pBegin', rEnd: 'pEnd', loadA: 'xAt(k, ri, a)', loadB: 'dyv(k, ri, n)' });
  const body = `${g.decl}
${dcoef ? `var<workgroup> red: array<f32, ${T}>;` : ''}
${DECODE_COL}
${DECODE_POS}
${X_AT}
var<private> pEndP: u32;
fn rowInfo(rr: u32) -> vec4<i32> { return decodeCol(rr); }
fn decode(p: u32) -> vec4<i32> { return decodePos(p, pEndP); }
fn dyv(k: u32, pos: vec4<i32>, co: u32) -> f32 {
  if (pos.w == 0 || co >= u.Cout) { return 0.0; }
  let oh = u32(pos.y + i32(u.pad)) / u.stride; let ow = u32(pos.z + i32(u.pad)) / u.stride;
  return dy[((k * u.N + u32(pos.x)) * u.Cout + co) * u.OH * u.OW + oh * u.OW + ow];
}
${dcoef ? basisAt(hasBias) : ''}
${MAIN(t)} {
  let z = wid.z;
  let kg = z / u.S; let sidx = z % u.S;
  let kBegin = kg * u.KG; let kEnd = min(u.K, kBegin + u.KG);
  let Ptot = u.N * u.OH * u.OW;
  let pBegin = sidx * u.PS; let pEnd = min(Ptot, pBegin + u.PS);
  pEndP = pEnd;
  let m0 = wid.x * ${t.BM}u; let n0 = wid.y * ${t.BN}u;
  ${g.setup}
  var tot: array<array<f32, ${t.TM * t.TN}>, ${nb}>;
  for (var k = kBegin; k < kEnd; k++) {
    var acc = array<f32, ${t.TM * t.TN}>(); // zeroed explicitly: a bare declaration in a loop was not re-zeroed per point (Dawn/Tint on Vulkan)
    ${g.loop}
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
      for (var st = ${pow2(T) / 2}u; st > 0u; st >>= 1u) {
        if (lid < st && lid + st < ${T}u) { red[lid] += red[lid + st]; }
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

/**
 * Sums the split-K partials [Z, B, Cout, R] into the weight [G, B, Cout, R0] and bias [G, B, Cout] gradients (+= when
 * accumulate), G = Z / zPer groups of zPer consecutive partials each (G = 1 for basis gradients; one group per point
 * for per-point gradients).
 */
export function convWgradReduceKernel(hasBias: boolean): KernelSpec {
  const uniforms: KernelSpec['uniforms'] = [['Z', 'u32'], ['B', 'u32'], ['Cout', 'u32'], ['R0', 'u32'], ['R', 'u32'], ['accumulate', 'u32'], ['zPer', 'u32']];
  const bindings = [r('part'), w('gw'), ...(hasBias ? [w('gb')] : [])];
  const body = `
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
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

// ---------------------------------------------------------------- the lanes family (CPU adapters)
//
// llvmpipe runs a workgroup's invocations as the SIMD lanes of one CPU thread. A load whose address is the same for
// every invocation (it depends only on the workgroup id and loop counters) becomes one scalar load and a broadcast;
// any other load is a gather, one element per lane. The tiled kernels above stage both operands through workgroup
// memory with barriers, which on a CPU is only more loads. These kernels give each workgroup a block of RC "uniform"
// rows (output channels in fwd and wgrad, input channels in dgrad), whose weights or output gradients are the
// broadcast operand, and spread the other GEMM dimension over WG lanes x TN outputs per lane (positions in fwd and
// dgrad, reduction columns r in wgrad), whose im2col values are the gathered operand: per reduction step RC broadcast
// and TN gathered loads feed RC x TN fused multiply-adds. No workgroup memory, no barriers (but the dcoef reduction).
// Same bindings, uniforms and outputs as the tiled kernels; only the dispatch grid differs (see lanesGrid).

/**
 * Floats of workgroup memory (16 KiB, WebGPU's guaranteed minimum) holding point k's weights for the workgroup's RC
 * channels, one chunk of the reduction at a time: fwd and dgrad then read them with broadcast loads instead of a
 * B-term sum per weight. Kernels with KH * KW * RC above this are not run by the lanes family (lanesFit).
 */
export const LANES_WS = 4096;

/** Most uniform channels per lanes workgroup (RC). */
const LANES_RC_MAX = 8;

/** Whether a conv's kernel window fits the lanes family's staged weight chunk (one channel's window x RC). */
export const lanesFit = (KH: number, KW: number) => KH * KW * LANES_RC_MAX <= LANES_WS;

export interface Lanes {
  /** Invocations per workgroup (SIMD lanes). */
  WG: number;
  /** Outputs per lane along the lane dimension, strided by WG. */
  TN: number;
  /** Uniform rows per workgroup. */
  RC: number;
}

/** Uniform rows per workgroup: at most LANES_RC_MAX, dividing uniDim as evenly as it can. */
const laneRC = (uniDim: number) => Math.ceil(uniDim / Math.ceil(uniDim / LANES_RC_MAX));

/** Lane shape for a GEMM with `laneDim` outputs along the lanes and `uniDim` uniform rows. */
export function chooseLanes(laneDim: number, uniDim: number): Lanes {
  const TN = laneDim >= 64 ? 8 : laneDim >= 32 ? 4 : laneDim >= 16 ? 2 : 1;
  const WG = clampI(pow2(Math.ceil(laneDim / TN)), 8, 32);
  return { WG, TN, RC: laneRC(uniDim) };
}

/** Workgroups along x (lane blocks) and y (uniform blocks). */
export const lanesGrid = (l: Lanes, laneDim: number, uniDim: number): [number, number] => [Math.ceil(laneDim / (l.WG * l.TN)), Math.ceil(uniDim / l.RC)];

const lkey = (l: Lanes) => `lanes${l.WG}x${l.TN}x${l.RC}`;
const MAIN_L = (l: Lanes) => `@compute @workgroup_size(${l.WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32)`;
/** Unrolled-by-the-compiler loops over the lane outputs j and the uniform rows c. */
const forJ = (l: Lanes, body: string) => `for (var j = 0u; j < ${l.TN}u; j++) { ${body} }`;
const forC = (l: Lanes, body: string) => `for (var c = 0u; c < ${l.RC}u; c++) { ${body} }`;
const laneM = (l: Lanes) => `wid.x * ${l.WG * l.TN}u + lid + j * ${l.WG}u`;

/** The input-gradient kernels' weight of point k at (co, ci, kh, kw): a B-term sum, or the point's own when direct. */
const dgradWeight = (direct: boolean) => `
fn wt(k: u32, co: u32, ci: u32, kh: u32, kw: u32) -> f32 {
  if (ci >= u.Cin) { return 0.0; }
  let idx = co * u.R0 + (ci * u.KH + kh) * u.KW + kw;
  let step = u.Cout * u.R0;
  ${direct ? 'return weight[k * step + idx];' : `var s = 0.0;
  for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], weight[b * step + idx], s); }
  return s;`}
}`;

/**
 * Opens the loop over chunks [cs, ce) of the reduction channels `over` (u.Cin in fwd, u.Cout in dgrad): point k's
 * weights of the workgroup's RC channels for the chunk, CH = (ce - cs) * khw of them per channel, are built into Ws
 * by `fill` (Ws[i], i < RC * CH), between barriers; `rl` then counts the chunk's (channel, kh, kw) steps. KW is the
 * kernel width as WGSL (u.KW, or a constant in the row kernels). The caller closes the loop.
 */
function stagedChunks(l: Lanes, over: string, KW: string, fill: string): string {
  return `
  let khw = u.KH * ${KW};
  let per = max(1u, ${Math.floor(LANES_WS / l.RC)}u / khw); // channels per chunk (lanesFit: >= 1)
  for (var cs = 0u; cs < ${over}; cs += per) {
    let ce = min(${over}, cs + per); let CH = (ce - cs) * khw;
    workgroupBarrier();
    for (var i = lid; i < ${l.RC}u * CH; i += ${l.WG}u) { ${fill} }
    workgroupBarrier();
    var rl = 0u;`;
}
const FWD_FILL = 'Ws[i] = wk(k, co0 + i / CH, cs * khw + i % CH);';
const dgradFill = (KW: string) => `let q = i % CH; let t = q % khw; Ws[i] = wt(k, cs + q / khw, ci0 + i / CH, t / ${KW}, t % ${KW});`;

export function convForwardLanesKernel(l: Lanes, hasBias: boolean, act: 'none' | 'relu', direct = false): KernelSpec {
  const bindings = [r('x'), r('weight'), ...(hasBias ? [r('bias')] : []), ...(direct ? [] : [r('coef')]), w('y')];
  const body = `
var<workgroup> Ws: array<f32, ${LANES_WS}>;
${weightLoad(hasBias, direct)}
${MAIN_L(l)} {
  let k = wid.z;
  let P = u.OH * u.OW; let M = u.N * P; let HW = u.H * u.W;
  let co0 = wid.y * ${l.RC}u;
  // per lane output: the image's offset in x and the top-left input pixel (rows far out of range when m >= M)
  var xb: array<i32, ${l.TN}>; var ihb: array<i32, ${l.TN}>; var iwb: array<i32, ${l.TN}>;
  ${forJ(l, `let m = ${laneM(l)}; let p = m % P;
    xb[j] = i32(k * u.xKStride + min(m / P, u.N - 1u) * u.Cin * HW);
    ihb[j] = select(-1073741824, i32((p / u.OW) * u.stride) - i32(u.pad), m < M);
    iwb[j] = i32((p % u.OW) * u.stride) - i32(u.pad);`)}
  var acc: array<f32, ${l.RC * l.TN}>;
  ${stagedChunks(l, 'u.Cin', 'u.KW', FWD_FILL)}
    for (var ci = cs; ci < ce; ci++) {
      for (var kh = 0u; kh < u.KH; kh++) {
        var row: array<i32, ${l.TN}>;
        ${forJ(l, `let ih = ihb[j] + i32(kh); row[j] = select(-1, xb[j] + i32(ci * HW) + ih * i32(u.W), ih >= 0 && ih < i32(u.H));`)}
        for (var kw = 0u; kw < u.KW; kw++) {
          var wv: array<f32, ${l.RC}>;
          ${forC(l, 'wv[c] = Ws[c * CH + rl];')}
          ${forJ(l, `let iw = iwb[j] + i32(kw);
            var xv = 0.0;
            if (row[j] >= 0 && iw >= 0 && iw < i32(u.W)) { xv = x[row[j] + iw]; }
            ${forC(l, `acc[c * ${l.TN}u + j] = fma(wv[c], xv, acc[c * ${l.TN}u + j]);`)}`)}
          rl++;
        }
      }
    }
  }
  ${hasBias ? `${forC(l, `let bv = wk(k, co0 + c, u.R0); ${forJ(l, `acc[c * ${l.TN}u + j] += bv;`)}`)}` : ''}
  ${forJ(l, `let m = ${laneM(l)};
    if (m < M) {
      let n = m / P; let p = m % P;
      ${forC(l, `let co = co0 + c;
        if (co < u.Cout) {
          var v = acc[c * ${l.TN}u + j];
          ${act === 'relu' ? 'v = max(v, 0.0);' : ''}
          y[((k * u.N + n) * u.Cout + co) * P + p] = v;
        }`)}
    }`)}
}`;
  return kernel('conv2d.fwd', `${lkey(l)}_b${+hasBias}_${act}${direct ? '_direct' : ''}`, CONV_UNIFORMS, bindings, body, l.WG);
}

export function convInputGradLanesKernel(l: Lanes, unitStride: boolean, direct = false): KernelSpec {
  const bindings = [r('dy'), r('weight'), ...(direct ? [] : [r('coef')]), w('dx')];
  // lanes: input positions m = (n, ih, iw); uniform rows: input channels ci; reduction (co, kh, kw)
  const ohOf = (t: string, o: string, lim: string) => unitStride
    ? `let ${o} = ${t}; let ok_${o} = ${t} >= 0 && ${t} < i32(${lim});`
    : `let ${o} = ${t} / i32(u.stride); let ok_${o} = ${t} >= 0 && ${t} % i32(u.stride) == 0 && ${o} < i32(${lim});`;
  const body = `
var<workgroup> Ws: array<f32, ${LANES_WS}>;
${dgradWeight(direct)}
${MAIN_L(l)} {
  let k = wid.z;
  let HW = u.H * u.W; let M = u.N * HW; let P = u.OH * u.OW;
  let ci0 = wid.y * ${l.RC}u;
  var db: array<i32, ${l.TN}>; var thb: array<i32, ${l.TN}>; var twb: array<i32, ${l.TN}>;
  ${forJ(l, `let m = ${laneM(l)}; let p = m % HW;
    db[j] = i32((k * u.N + min(m / HW, u.N - 1u)) * u.Cout * P);
    thb[j] = select(-1073741824, i32(p / u.W + u.pad), m < M);
    twb[j] = i32(p % u.W + u.pad);`)}
  var acc: array<f32, ${l.RC * l.TN}>;
  ${stagedChunks(l, 'u.Cout', 'u.KW', dgradFill('u.KW'))}
    for (var co = cs; co < ce; co++) {
      for (var kh = 0u; kh < u.KH; kh++) {
        var row: array<i32, ${l.TN}>;
        ${forJ(l, `let th = thb[j] - i32(kh); ${ohOf('th', 'oh', 'u.OH')}
          row[j] = select(-1, db[j] + i32(co * P) + oh * i32(u.OW), ok_oh);`)}
        for (var kw = 0u; kw < u.KW; kw++) {
          var wv: array<f32, ${l.RC}>;
          ${forC(l, 'wv[c] = Ws[c * CH + rl];')}
          ${forJ(l, `let tw = twb[j] - i32(kw); ${ohOf('tw', 'ow', 'u.OW')}
            var g = 0.0;
            if (row[j] >= 0 && ok_ow) { g = dy[row[j] + ow]; }
            ${forC(l, `acc[c * ${l.TN}u + j] = fma(wv[c], g, acc[c * ${l.TN}u + j]);`)}`)}
          rl++;
        }
      }
    }
  }
  ${forJ(l, `let m = ${laneM(l)};
    if (m < M) {
      let n = m / HW; let p = m % HW;
      ${forC(l, `let ci = ci0 + c;
        if (ci < u.Cin) { dx[((k * u.N + n) * u.Cin + ci) * HW + p] = acc[c * ${l.TN}u + j]; }`)}
    }`)}
}`;
  return kernel('conv2d.dgrad', `${lkey(l)}_s${unitStride ? 1 : 'n'}${direct ? '_direct' : ''}`, CONV_UNIFORMS, bindings, body, l.WG);
}

// Row variants: each lane computes TN consecutive outputs of one image row, so that the input values one kernel row
// needs for all of them are one span of (TN - 1) * stride + KW consecutive pixels, loaded once and reused by every
// kernel column (KW x fewer gathers and bounds checks than one load per output and tap). KW and the stride are
// compile-time; for rows narrower than 4 the plain lanes kernels run (linear layers: linearLanesKernel).

/** Lanes with WG lanes of one row segment each, TN consecutive outputs per segment; KW and the stride compile-time. */
export interface RowLanes extends Lanes {
  KW: number;
  stride: number;
}

/** Row shape for outputs of width `rowW` in `rows` rows (all images), `uniDim` uniform channels; null: use plain lanes. */
export function chooseRowLanes(rowW: number, rows: number, uniDim: number, KW: number, stride: number): RowLanes | null {
  if (rowW < 4 || KW > 7 || stride > 2) return null;
  // a divisor of the row width in 5..8 wastes no lanes; else 8 (a partial last segment)
  const TN = [8, 7, 6, 5].find((t) => rowW % t === 0) ?? Math.min(8, rowW);
  const segs = rows * Math.ceil(rowW / TN);
  const WG = clampI(pow2(segs), 8, 32);
  return { WG, TN, RC: laneRC(uniDim), KW, stride };
}

/** Workgroups along x (segments) and y (uniform blocks). */
export const rowGrid = (l: RowLanes, rowW: number, rows: number, uniDim: number): [number, number] =>
  [Math.ceil((rows * Math.ceil(rowW / l.TN)) / l.WG), Math.ceil(uniDim / l.RC)];

const rkey = (l: RowLanes) => `row${l.WG}x${l.TN}x${l.RC}_kw${l.KW}s${l.stride}`;

export function convForwardRowKernel(l: RowLanes, hasBias: boolean, act: 'none' | 'relu', direct = false): KernelSpec {
  const bindings = [r('x'), r('weight'), ...(hasBias ? [r('bias')] : []), ...(direct ? [] : [r('coef')]), w('y')];
  const SPAN = (l.TN - 1) * l.stride + l.KW;
  const body = `
var<workgroup> Ws: array<f32, ${LANES_WS}>;
${weightLoad(hasBias, direct)}
${MAIN_L(l)} {
  let k = wid.z;
  let P = u.OH * u.OW; let HW = u.H * u.W;
  let co0 = wid.y * ${l.RC}u;
  let SB = (u.OW + ${l.TN - 1}u) / ${l.TN}u; // segments per output row
  let g = wid.x * ${l.WG}u + lid;
  let valid = g < u.N * u.OH * SB;
  let n = min(g / (u.OH * SB), u.N - 1u); let oh = (g / SB) % u.OH; let ow0 = (g % SB) * ${l.TN}u;
  let xb = i32(k * u.xKStride + n * u.Cin * HW);
  let ih0 = select(-1073741824, i32(oh * u.stride) - i32(u.pad), valid);
  let iw0 = i32(ow0 * u.stride) - i32(u.pad);
  var acc: array<f32, ${l.RC * l.TN}>;
  ${stagedChunks(l, 'u.Cin', `${l.KW}u`, FWD_FILL)}
    for (var ci = cs; ci < ce; ci++) {
      for (var kh = 0u; kh < u.KH; kh++) {
        let ih = ih0 + i32(kh);
        let rowOk = ih >= 0 && ih < i32(u.H);
        let rb = xb + i32(ci * HW) + ih * i32(u.W);
        var xs: array<f32, ${SPAN}>;
        for (var t = 0u; t < ${SPAN}u; t++) {
          let iw = iw0 + i32(t);
          var v = 0.0;
          if (rowOk && iw >= 0 && iw < i32(u.W)) { v = x[rb + iw]; }
          xs[t] = v;
        }
        for (var kw = 0u; kw < ${l.KW}u; kw++) {
          var wv: array<f32, ${l.RC}>;
          ${forC(l, 'wv[c] = Ws[c * CH + rl + kw];')}
          ${forJ(l, `let xv = xs[j * ${l.stride}u + kw]; ${forC(l, `acc[c * ${l.TN}u + j] = fma(wv[c], xv, acc[c * ${l.TN}u + j]);`)}`)}
        }
        rl += ${l.KW}u;
      }
    }
  }
  ${hasBias ? `${forC(l, `let bv = wk(k, co0 + c, u.R0); ${forJ(l, `acc[c * ${l.TN}u + j] += bv;`)}`)}` : ''}
  if (valid) {
    ${forJ(l, `let ow = ow0 + j;
      if (ow < u.OW) {
        ${forC(l, `let co = co0 + c;
          if (co < u.Cout) {
            var v = acc[c * ${l.TN}u + j];
            ${act === 'relu' ? 'v = max(v, 0.0);' : ''}
            y[((k * u.N + n) * u.Cout + co) * P + oh * u.OW + ow] = v;
          }`)}
      }`)}
  }
}`;
  return kernel('conv2d.fwd', `${rkey(l)}_b${+hasBias}_${act}${direct ? '_direct' : ''}`, CONV_UNIFORMS, bindings, body, l.WG);
}

/** Input gradient for stride 1 with row segments: dx[ih, iw0 + j] reads dy[ih + pad - kh, iw0 + j + pad - kw]. */
export function convInputGradRowKernel(l: RowLanes, direct = false): KernelSpec {
  if (l.stride !== 1) throw new Error('convInputGradRowKernel: stride 1 only');
  const bindings = [r('dy'), r('weight'), ...(direct ? [] : [r('coef')]), w('dx')];
  const SPAN = l.TN + l.KW - 1;
  const body = `
var<workgroup> Ws: array<f32, ${LANES_WS}>;
${dgradWeight(direct)}
${MAIN_L(l)} {
  let k = wid.z;
  let HW = u.H * u.W; let P = u.OH * u.OW;
  let ci0 = wid.y * ${l.RC}u;
  let SB = (u.W + ${l.TN - 1}u) / ${l.TN}u;
  let g = wid.x * ${l.WG}u + lid;
  let valid = g < u.N * u.H * SB;
  let n = min(g / (u.H * SB), u.N - 1u); let ih = (g / SB) % u.H; let iw0 = (g % SB) * ${l.TN}u;
  let db = i32((k * u.N + n) * u.Cout * P);
  let th0 = select(-1073741824, i32(ih + u.pad), valid);
  let tw0 = i32(iw0 + u.pad) - ${l.KW - 1}; // dy column of span slot 0
  var acc: array<f32, ${l.RC * l.TN}>;
  ${stagedChunks(l, 'u.Cout', `${l.KW}u`, dgradFill(`${l.KW}u`))}
    for (var co = cs; co < ce; co++) {
      for (var kh = 0u; kh < u.KH; kh++) {
        let oh = th0 - i32(kh);
        let rowOk = oh >= 0 && oh < i32(u.OH);
        let rb = db + i32(co * P) + oh * i32(u.OW);
        var ys: array<f32, ${SPAN}>;
        for (var t = 0u; t < ${SPAN}u; t++) {
          let ow = tw0 + i32(t);
          var v = 0.0;
          if (rowOk && ow >= 0 && ow < i32(u.OW)) { v = dy[rb + ow]; }
          ys[t] = v;
        }
        for (var kw = 0u; kw < ${l.KW}u; kw++) {
          var wv: array<f32, ${l.RC}>;
          ${forC(l, 'wv[c] = Ws[c * CH + rl + kw];')}
          ${forJ(l, `let g2 = ys[j + ${l.KW - 1}u - kw]; ${forC(l, `acc[c * ${l.TN}u + j] = fma(wv[c], g2, acc[c * ${l.TN}u + j]);`)}`)}
        }
        rl += ${l.KW}u;
      }
    }
  }
  if (valid) {
    ${forJ(l, `let iw = iw0 + j;
      if (iw < u.W) {
        ${forC(l, `let ci = ci0 + c;
          if (ci < u.Cin) { dx[((k * u.N + n) * u.Cin + ci) * HW + ih * u.W + iw] = acc[c * ${l.TN}u + j]; }`)}
      }`)}
  }
}`;
  return kernel('conv2d.dgrad', `${rkey(l)}${direct ? '_direct' : ''}`, CONV_UNIFORMS, bindings, body, l.WG);
}

/**
 * The weight gradient of convWeightGradKernel (same split over z, same partial layout, same basis folding; dcoef
 * partials per lane, [G * WG, K, B], since a workgroup reduction costs a barrier per step on a CPU) with lanes over reduction columns r = (ci, kh, kw) (+ the bias column) and uniform rows co;
 * the reduction runs over the positions (n, oh, ow) of the z layer's chunk, walked incrementally.
 */
export function convWeightGradLanesKernel(l: Lanes, nb: number, hasBias: boolean, dcoef: boolean): KernelSpec {
  const uniforms: KernelSpec['uniforms'] = [...CONV_UNIFORMS, ['KG', 'u32'], ['S', 'u32'], ['PS', 'u32'], ['bOff', 'u32'], ['tilesM', 'u32'], ['tilesN', 'u32']];
  const bindings = [r('x'), r('dy'), r('coef'), w('part'), ...(dcoef ? [r('weight'), ...(hasBias ? [r('bias')] : []), w('dcpart')] : [])];
  const T = l.RC * l.TN;
  const body = `
${dcoef ? basisAt(hasBias) : ''}
${MAIN_L(l)} {
  let z = wid.z;
  let kg = z / u.S; let sidx = z % u.S;
  let kBegin = kg * u.KG; let kEnd = min(u.K, kBegin + u.KG);
  let P = u.OH * u.OW; let HW = u.H * u.W;
  let pBegin = sidx * u.PS; let pEnd = min(u.N * P, pBegin + u.PS);
  let co0 = wid.y * ${l.RC}u;
  let khw = u.KH * u.KW;
  // per lane column: x offset of its input channel, its kernel offsets, kind (1 pixel, 2 bias column, 0 none)
  var cb: array<i32, ${l.TN}>; var ckh: array<i32, ${l.TN}>; var ckw: array<i32, ${l.TN}>; var kind: array<u32, ${l.TN}>;
  ${forJ(l, `let rr = ${laneM(l)}; let q = rr % khw;
    cb[j] = i32((rr / khw) * HW); ckh[j] = i32(q / u.KW); ckw[j] = i32(q % u.KW);
    kind[j] = select(select(0u, 1u, rr < u.R0), 2u, ${hasBias ? 'rr == u.R0' : 'false'});`)}
  var tot: array<f32, ${nb * T}>;
  for (var k = kBegin; k < kEnd; k++) {
    var acc = array<f32, ${T}>(); // zeroed explicitly (see convWeightGradKernel)
    let xk = k * u.xKStride;
    var n = pBegin / P; var q = pBegin % P; var oh = q / u.OW; var ow = q % u.OW;
    for (var p = pBegin; p < pEnd; p++) {
      let gb = (k * u.N + n) * u.Cout * P + oh * u.OW + ow;
      var g = array<f32, ${l.RC}>();
      ${forC(l, 'if (co0 + c < u.Cout) { g[c] = dy[gb + (co0 + c) * P]; }')}
      let ih0 = i32(oh * u.stride) - i32(u.pad); let iw0 = i32(ow * u.stride) - i32(u.pad);
      let xb = i32(xk + n * u.Cin * HW);
      ${forJ(l, `let ih = ih0 + ckh[j]; let iw = iw0 + ckw[j];
        var xv = select(0.0, 1.0, kind[j] == 2u);
        if (kind[j] == 1u && ih >= 0 && iw >= 0 && ih < i32(u.H) && iw < i32(u.W)) { xv = x[xb + cb[j] + ih * i32(u.W) + iw]; }
        ${forC(l, `acc[c * ${l.TN}u + j] = fma(g[c], xv, acc[c * ${l.TN}u + j]);`)}`)}
      ow++;
      if (ow == u.OW) { ow = 0u; oh++; if (oh == u.OH) { oh = 0u; n++; } }
    }
    for (var b = 0u; b < ${nb}u; b++) {
      if (u.bOff + b >= u.B) { break; }
      let cf = coef[k * u.B + u.bOff + b];
      for (var i = 0u; i < ${T}u; i++) { tot[b * ${T}u + i] = fma(cf, acc[i], tot[b * ${T}u + i]); }
    }
    ${dcoef ? `
    let wgl = (z * u.tilesM + wid.x) * u.tilesN + wid.y;
    for (var b = 0u; b < ${nb}u; b++) {
      let bb = min(u.bOff + b, u.B - 1u);
      var d = 0.0;
      ${forJ(l, `let rr = ${laneM(l)}; ${forC(l, `d = fma(acc[c * ${l.TN}u + j], basis(bb, rr, co0 + c), d);`)}`)}
      if (u.bOff + b < u.B) { dcpart[((wgl * ${l.WG}u + lid) * u.K + k) * u.B + u.bOff + b] = d; }
    }` : ''}
  }
  for (var b = 0u; b < ${nb}u; b++) {
    if (u.bOff + b >= u.B) { break; }
    ${forJ(l, `let rr = ${laneM(l)};
      if (rr < u.R) {
        ${forC(l, `let co = co0 + c;
          if (co < u.Cout) { part[((z * u.B + u.bOff + b) * u.Cout + co) * u.R + rr] = tot[b * ${T}u + c * ${l.TN}u + j]; }`)}
      }`)}
  }
}`;
  return kernel('conv2d.wgrad', `${lkey(l)}_nb${nb}_b${+hasBias}_dc${+dcoef}`, uniforms, bindings, body, l.WG);
}

/** Plain C[M, N] = A[M, Kd] B[Kd, N] with the same tiling as the conv kernels: the roofline probe of bench:kernels. */
export function matmulKernel(t: Tiles): KernelSpec {
  const U: KernelSpec['uniforms'] = [['M', 'u32'], ['N', 'u32'], ['Kd', 'u32']];
  const g = gemm(t, { rBegin: '0u', rEnd: 'u.Kd', loadA: 'la(m, rr)', loadB: 'lb(rr, n)' });
  const body = `${g.decl}
fn rowInfo(m: u32) -> vec4<i32> { return vec4<i32>(0); }
fn decode(rr: u32) -> vec4<i32> { return vec4<i32>(0); }
fn la(m: u32, rr: u32) -> f32 { if (m < u.M && rr < u.Kd) { return a[m * u.Kd + rr]; } return 0.0; }
fn lb(rr: u32, n: u32) -> f32 { if (n < u.N && rr < u.Kd) { return b[rr * u.N + n]; } return 0.0; }
${MAIN(t)} {
  let m0 = wid.x * ${t.BM}u; let n0 = wid.y * ${t.BN}u;
  ${g.setup}
  var acc: array<f32, ${t.TM * t.TN}>;
  ${g.loop}
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

/**
 * C[M, N] = A[M, Kd] B[Kd, N] in the lanes family's way (the roofline probe on CPU adapters): each workgroup takes RC
 * rows of A, read at the same address by every lane, and WG x TN columns of B, gathered per lane.
 */
export function matmulLanesKernel(l: Lanes): KernelSpec {
  const U: KernelSpec['uniforms'] = [['M', 'u32'], ['N', 'u32'], ['Kd', 'u32']];
  const body = `
${MAIN_L(l)} {
  let m0 = wid.y * ${l.RC}u;
  var acc: array<f32, ${l.RC * l.TN}>;
  for (var kk = 0u; kk < u.Kd; kk++) {
    var bv: array<f32, ${l.TN}>;
    ${forJ(l, `let n = ${laneM(l)}; bv[j] = select(0.0, b[kk * u.N + min(n, u.N - 1u)], n < u.N);`)}
    ${forC(l, `let av = select(0.0, a[min(m0 + c, u.M - 1u) * u.Kd + kk], m0 + c < u.M); ${forJ(l, `acc[c * ${l.TN}u + j] = fma(av, bv[j], acc[c * ${l.TN}u + j]);`)}`)}
  }
  for (var i = 0u; i < ${l.RC}u; i++) {
    let m = m0 + i;
    ${forJ(l, `let n = ${laneM(l)}; if (m < u.M && n < u.N) { c[m * u.N + n] = acc[i * ${l.TN}u + j]; }`)}
  }
}`;
  return kernel('matmul', lkey(l), U, [r('a'), r('b'), w('c')], body, l.WG);
}

/** A conv that is a linear layer: 1x1 kernel on a 1x1 input without padding, any stride (linear() and flatten-linear). */
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
const LINEAR_ACC_MAX = 32;

/**
 * Linear layers in the lanes family, forward (y[k,n,o] = sum_i x[k,n,i] W_k[o,i] + b_k[o], relu fused) and input
 * gradient (dx[k,n,i] = sum_o dy[k,n,o] W_k[o,i]). The staged kernels are poor here: each weight serves only the
 * batch's N images, so building it into workgroup memory costs as much as using it, and N = 16 positions leave most
 * lanes idle. Here lanes take output features; each lane builds its own weight (a B-term sum of gathered basis
 * values, or the point's own weight when direct) once per reduction step and applies it to RC images, whose inputs
 * every lane reads at the same address (broadcast loads).
 */
export function linearLanesKernel(l: Lanes, mode: 'fwd' | 'dgrad', hasBias: boolean, act: 'none' | 'relu', direct = false): KernelSpec {
  const fwd = mode === 'fwd';
  const [inp, out] = fwd ? ['x', 'y'] : ['dy', 'dx'];
  const bindings = [r(inp), r('weight'), ...(fwd && hasBias ? [r('bias')] : []), ...(direct ? [] : [r('coef')]), w(out)];
  // lane dimension L (output features) and reduction RED; the weight of lane feature f at reduction index t
  const L = fwd ? 'u.Cout' : 'u.Cin', RED = fwd ? 'u.Cin' : 'u.Cout';
  const wIdx = (f: string, t: string) => (fwd ? `${f} * u.R0 + ${t}` : `${t} * u.R0 + ${f}`);
  const inAt = (n: string, t: string) => (fwd ? `k * u.xKStride + ${n} * u.Cin + ${t}` : `(k * u.N + ${n}) * u.Cout + ${t}`);
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
    ${forJ(l, direct ? `wv[j] = weight[k * step + ${wIdx('fl[j]', 't')}];` : `var s = 0.0;
      for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], weight[b * step + ${wIdx('fl[j]', 't')}], s); }
      wv[j] = s;`)}
    ${forC(l, `let xv = ${inp}[${inAt('nr[c]', 't')}]; ${forJ(l, `acc[c * ${l.TN}u + j] = fma(xv, wv[j], acc[c * ${l.TN}u + j]);`)}`)}
  }
  ${forJ(l, `let f = ${laneM(l)};
    if (f < ${L}) {
      ${fwd && hasBias ? 'let bv = wk(k, f, u.R0);' : ''}
      ${forC(l, `let n = n0 + c;
        if (n < u.N) {
          var v = acc[c * ${l.TN}u + j]${fwd && hasBias ? ' + bv' : ''};
          ${fwd && act === 'relu' ? 'v = max(v, 0.0);' : ''}
          ${out}[(k * u.N + n) * ${L} + f] = v;
        }`)}
    }`)}
}`;
  return kernel(fwd ? 'conv2d.fwd' : 'conv2d.dgrad', `linear_${lkey(l)}_b${+hasBias}_${act}${direct ? '_direct' : ''}`, CONV_UNIFORMS, bindings, body, l.WG);
}

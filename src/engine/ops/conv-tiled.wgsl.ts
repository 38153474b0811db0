// The tiled conv family for GPUs: implicit-GEMM kernels with workgroup-memory tiles (forward, input gradient, weight
// gradient folded over basis tensors). Each workgroup computes a BM x BN tile of the GEMM with TM x TN outputs per
// thread (register blocking), staging BK-deep slices of both operands in workgroup memory.
import { type KernelSpec, kernel, r, w } from '../kernel.ts';
import { CONV_UNIFORMS, weightLoad, basisAt, DECODE_COL, DECODE_POS, X_AT, wgradInterface } from './conv.wgsl.ts';

export interface Tiles {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

export const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

export const clampI = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

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
  const BK = 16 * (BM + BN) * 4 <= 16384 ? 16 : 8;
  return { BM, BN, BK, TM, TN };
}

export const tkey = (t: Tiles) => `${t.BM}x${t.BN}x${t.BK}_${t.TM}x${t.TN}`;

export const threads = (t: Tiles) => (t.BM / t.TM) * (t.BN / t.TN);

/**
 * The GEMM main loop. Per thread, the A-tile rows it loads are decoded once (rowInfo); per BK slice, the
 * BK reduction indices are decoded once per workgroup into workgroup memory (decode), double-buffered so
 * the next slice's decode shares the existing barrier. Loads then need no integer division.
 *   loadA: expression in a (row info, vec4<i32>), ri (reduction info, vec4<i32>), m, rr
 *   loadB: expression in ri, n, rr
 */
export function gemm(
  t: Tiles,
  o: { rBegin: string; rEnd: string; loadA: string; loadB: string },
): { decl: string; setup: string; loop: string } {
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
          for (var jj = 0u; jj < ${t.TN}u; jj++) {
            acc[i * ${t.TN}u + jj] = fma(av[i], bv[jj], acc[i * ${t.TN}u + jj]);
          }
        }
      }
      workgroupBarrier();
      cur = 1u - cur;
    }`,
  };
}

export const MAIN = (t: Tiles) =>
  `@compute @workgroup_size(${threads(t)}) fn main(@builtin(workgroup_id) wid: vec3<u32>,` +
  ` @builtin(local_invocation_index) lid: u32)`;

/**
 * The entry point of the forward and input-gradient kernels: point k = wid.z, the GEMM over this workgroup's tile,
 * then its TM x TN outputs written to out[((k * N + n) * cols + c) * P + p] for the rows m = (n, p) of the N * P
 * positions and the columns c < cols (through a ReLU when asked).
 */
function gemmMain(
  t: Tiles,
  g: ReturnType<typeof gemm>,
  o: { P: string; cols: string; out: string; relu?: boolean },
): string {
  return `${MAIN(t)} {
  let k = wid.z;
  let m0 = wid.x * ${t.BM}u; let n0 = wid.y * ${t.BN}u;
  let P = ${o.P};
  let M = u.N * P;
  ${g.setup}
  var acc: array<f32, ${t.TM * t.TN}>;
  ${g.loop}
  for (var i = 0u; i < ${t.TM}u; i++) {
    let m = m0 + ty * ${t.TM}u + i;
    if (m >= M) { continue; }
    let n = m / P; let p = m % P;
    for (var j = 0u; j < ${t.TN}u; j++) {
      let c = n0 + tx * ${t.TN}u + j;
      if (c >= ${o.cols}) { continue; }
      var v = acc[i * ${t.TN}u + j];
      ${o.relu ? 'v = max(v, 0.0);' : ''}
      ${o.out}[((k * u.N + n) * ${o.cols} + c) * P + p] = v;
    }
  }
}`;
}

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
${gemmMain(t, g, { P: 'u.OH * u.OW', cols: 'u.Cout', out: 'y', relu: act === 'relu' })}`;
  return kernel(
    'conv2d.fwd',
    `${tkey(t)}_b${+hasBias}_${act}${direct ? '_direct' : ''}`,
    CONV_UNIFORMS,
    bindings,
    body,
    threads(t),
  );
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
  ${
    unitStride
      ? 'let oh = u32(th); let ow = u32(tw);'
      : `let s = i32(u.stride);
  if (th % s != 0 || tw % s != 0) { return 0.0; }
  let oh = u32(th / s); let ow = u32(tw / s);`
  }
  if (oh >= u.OH || ow >= u.OW) { return 0.0; }
  return dy[((k * u.N + u32(a.x)) * u.Cout + u32(ri.x)) * u.OH * u.OW + oh * u.OW + ow];
}
fn wt(k: u32, ri: vec4<i32>, ci: u32) -> f32 {
  if (ci >= u.Cin || ri.w == 0) { return 0.0; }
  let idx = u32(ri.x) * u.R0 + ci * u.KH * u.KW + u32(ri.y) * u.KW + u32(ri.z);
  let step = u.Cout * u.R0;
  ${
    direct
      ? 'return weight[k * step + idx];'
      : `var s = 0.0;
  for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], weight[b * step + idx], s); }
  return s;`
  }
}
${gemmMain(t, g, { P: 'u.H * u.W', cols: 'u.Cin', out: 'dx' })}`;
  return kernel(
    'conv2d.dgrad',
    `${tkey(t)}_s${unitStride ? 1 : 'n'}${direct ? '_direct' : ''}`,
    CONV_UNIFORMS,
    bindings,
    body,
    threads(t),
  );
}

/**
 * Weight gradient, split over z = (point group, position chunk). GEMM rows are r = (ci, kh, kw) (+ bias
 * column), columns co, reduction over positions (n, oh, ow) of each point k; after each point the
 * per-point tile is folded into up to WGRAD_BMAX basis accumulators with coef[k, b].
 * With dcoef, each point's tile is also dotted with the basis (sum over the tile of basis_b * dW_k),
 * reduced across the workgroup and written per (workgroup, k, b).
 */
export function convWeightGradKernel(t: Tiles, nb: number, hasBias: boolean, dcoef: boolean): KernelSpec {
  const T = threads(t);
  const { uniforms, bindings } = wgradInterface(hasBias, dcoef);
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
    // zeroed explicitly: a bare declaration in a loop was not re-zeroed per point (Dawn/Tint on Vulkan)
    var acc = array<f32, ${t.TM * t.TN}>();
    ${g.loop}
    for (var b = 0u; b < ${nb}u; b++) {
      if (u.bOff + b >= u.B) { break; }
      let c = coef[k * u.B + u.bOff + b];
      for (var i = 0u; i < ${t.TM * t.TN}u; i++) { tot[b][i] = fma(c, acc[i], tot[b][i]); }
    }
    ${
      dcoef
        ? `
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
    }`
        : ''
    }
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

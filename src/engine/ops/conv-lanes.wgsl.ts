// The lanes conv family for CPU adapters: one operand broadcast across the workgroup, the other per lane (row-segment
// variants in conv-rows.wgsl.ts, linear layers in linear-lanes.wgsl.ts).
//
// llvmpipe runs a workgroup's invocations as the SIMD lanes of one CPU thread. A load whose address is the same for
// every invocation (it depends only on the workgroup id and loop counters) becomes one scalar load and a broadcast;
// any other load is a gather, one element per lane. The tiled kernels (conv-tiled.wgsl.ts) stage both operands
// through workgroup memory with barriers, which on a CPU is only more loads. These kernels give each workgroup a block
// of RC "uniform" rows (output channels in fwd and wgrad, input channels in dgrad), whose weights or output gradients
// are the broadcast operand, and spread the other GEMM dimension over WG lanes x TN outputs per lane (positions in fwd
// and dgrad, reduction columns r in wgrad), whose im2col values are the gathered operand: per reduction step RC
// broadcast and TN gathered loads feed RC x TN fused multiply-adds. The only workgroup memory holds point k's weights
// for the RC rows (fwd and dgrad, staged once per reduction chunk, see LANES_WS); the only barriers are around those
// chunks and in the dcoef reduction. Same bindings, uniforms and outputs as the tiled kernels; only the dispatch grid
// differs (see lanesGrid).
import { type KernelSpec, kernel, r, w } from '../kernel.ts';
import { CONV_UNIFORMS, weightLoad, basisAt, wgradInterface } from './conv.wgsl.ts';
import { pow2, clampI } from './conv-tiled.wgsl.ts';
/**
 * Floats of workgroup memory (16 KiB, WebGPU's guaranteed minimum) holding point k's weights for the workgroup's RC
 * channels, one chunk of the reduction at a time: fwd and dgrad then read them with broadcast loads instead of a
 * B-term sum per weight. Kernels with KH * KW * RC above this are not run by the lanes family (lanesFit).
 */
export const LANES_WS = 4096;

/** Most uniform channels per lanes workgroup (RC). */
export const LANES_RC_MAX = 8;

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
export const laneRC = (uniDim: number) => Math.ceil(uniDim / Math.ceil(uniDim / LANES_RC_MAX));

/** Lane shape for a GEMM with `laneDim` outputs along the lanes and `uniDim` uniform rows. */
export function chooseLanes(laneDim: number, uniDim: number): Lanes {
  const TN = laneDim >= 64 ? 8 : laneDim >= 32 ? 4 : laneDim >= 16 ? 2 : 1;
  const WG = clampI(pow2(Math.ceil(laneDim / TN)), 8, 32);
  return { WG, TN, RC: laneRC(uniDim) };
}

/** Workgroups along x (lane blocks) and y (uniform blocks). */
export const lanesGrid = (l: Lanes, laneDim: number, uniDim: number): [number, number] => [
  Math.ceil(laneDim / (l.WG * l.TN)),
  Math.ceil(uniDim / l.RC),
];

export const lkey = (l: Lanes) => `lanes${l.WG}x${l.TN}x${l.RC}`;

export const MAIN_L = (l: Lanes) =>
  `@compute @workgroup_size(${l.WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>,` +
  ` @builtin(local_invocation_index) lid: u32)`;

/** Unrolled-by-the-compiler loops over the lane outputs j and the uniform rows c. */
export const forJ = (l: Lanes, body: string) => `for (var j = 0u; j < ${l.TN}u; j++) { ${body} }`;

export const forC = (l: Lanes, body: string) => `for (var c = 0u; c < ${l.RC}u; c++) { ${body} }`;

export const laneM = (l: Lanes) => `wid.x * ${l.WG * l.TN}u + lid + j * ${l.WG}u`;

/** The input-gradient kernels' weight of point k at (co, ci, kh, kw): a B-term sum, or the point's own when direct. */
export const dgradWeight = (direct: boolean) => `
fn wt(k: u32, co: u32, ci: u32, kh: u32, kw: u32) -> f32 {
  if (ci >= u.Cin) { return 0.0; }
  let idx = co * u.R0 + (ci * u.KH + kh) * u.KW + kw;
  let step = u.Cout * u.R0;
  ${
    direct
      ? 'return weight[k * step + idx];'
      : `var s = 0.0;
  for (var b = 0u; b < u.B; b++) { s = fma(coef[k * u.B + b], weight[b * step + idx], s); }
  return s;`
  }
}`;

/**
 * Opens the loop over chunks [cs, ce) of the reduction channels `over` (u.Cin in fwd, u.Cout in dgrad): point k's
 * weights of the workgroup's RC channels for the chunk, CH = (ce - cs) * khw of them per channel, are built into Ws
 * by `fill` (Ws[i], i < RC * CH), between barriers; `rl` then counts the chunk's (channel, kh, kw) steps. KW is the
 * kernel width as WGSL (u.KW, or a constant in the row kernels). The caller closes the loop.
 */
export function stagedChunks(l: Lanes, over: string, KW: string, fill: string): string {
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

export const FWD_FILL = 'Ws[i] = wk(k, co0 + i / CH, cs * khw + i % CH);';

export const dgradFill = (KW: string) =>
  `let q = i % CH; let t = q % khw; Ws[i] = wt(k, cs + q / khw, ci0 + i / CH, t / ${KW}, t % ${KW});`;

/**
 * The forward kernels' write of lane output j for the workgroup's RC output channels co = co0 + c: acc[c, j] to
 * y[at] (a WGSL index expression of co and the position), through a ReLU when asked.
 */
export const writeChannels = (l: Lanes, act: 'none' | 'relu', at: string) =>
  forC(
    l,
    `let co = co0 + c;
    if (co < u.Cout) {
      var v = acc[c * ${l.TN}u + j];
      ${act === 'relu' ? 'v = max(v, 0.0);' : ''}
      y[${at}] = v;
    }`,
  );

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
  ${forJ(
    l,
    `let m = ${laneM(l)}; let p = m % P;
    xb[j] = i32(k * u.xKStride + min(m / P, u.N - 1u) * u.Cin * HW);
    ihb[j] = select(-1073741824, i32((p / u.OW) * u.stride) - i32(u.pad), m < M);
    iwb[j] = i32((p % u.OW) * u.stride) - i32(u.pad);`,
  )}
  var acc: array<f32, ${l.RC * l.TN}>;
  ${stagedChunks(l, 'u.Cin', 'u.KW', FWD_FILL)}
    for (var ci = cs; ci < ce; ci++) {
      for (var kh = 0u; kh < u.KH; kh++) {
        var row: array<i32, ${l.TN}>;
        ${forJ(
          l,
          `let ih = ihb[j] + i32(kh);
          row[j] = select(-1, xb[j] + i32(ci * HW) + ih * i32(u.W), ih >= 0 && ih < i32(u.H));`,
        )}
        for (var kw = 0u; kw < u.KW; kw++) {
          var wv: array<f32, ${l.RC}>;
          ${forC(l, 'wv[c] = Ws[c * CH + rl];')}
          ${forJ(
            l,
            `let iw = iwb[j] + i32(kw);
            var xv = 0.0;
            if (row[j] >= 0 && iw >= 0 && iw < i32(u.W)) { xv = x[row[j] + iw]; }
            ${forC(l, `acc[c * ${l.TN}u + j] = fma(wv[c], xv, acc[c * ${l.TN}u + j]);`)}`,
          )}
          rl++;
        }
      }
    }
  }
  ${hasBias ? `${forC(l, `let bv = wk(k, co0 + c, u.R0); ${forJ(l, `acc[c * ${l.TN}u + j] += bv;`)}`)}` : ''}
  ${forJ(
    l,
    `let m = ${laneM(l)};
    if (m < M) {
      let n = m / P; let p = m % P;
      ${writeChannels(l, act, '((k * u.N + n) * u.Cout + co) * P + p')}
    }`,
  )}
}`;
  return kernel(
    'conv2d.fwd',
    `${lkey(l)}_b${+hasBias}_${act}${direct ? '_direct' : ''}`,
    CONV_UNIFORMS,
    bindings,
    body,
    l.WG,
  );
}

export function convInputGradLanesKernel(l: Lanes, unitStride: boolean, direct = false): KernelSpec {
  const bindings = [r('dy'), r('weight'), ...(direct ? [] : [r('coef')]), w('dx')];
  // lanes: input positions m = (n, ih, iw); uniform rows: input channels ci; reduction (co, kh, kw)
  const ohOf = (t: string, o: string, lim: string) =>
    unitStride
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
  ${forJ(
    l,
    `let m = ${laneM(l)}; let p = m % HW;
    db[j] = i32((k * u.N + min(m / HW, u.N - 1u)) * u.Cout * P);
    thb[j] = select(-1073741824, i32(p / u.W + u.pad), m < M);
    twb[j] = i32(p % u.W + u.pad);`,
  )}
  var acc: array<f32, ${l.RC * l.TN}>;
  ${stagedChunks(l, 'u.Cout', 'u.KW', dgradFill('u.KW'))}
    for (var co = cs; co < ce; co++) {
      for (var kh = 0u; kh < u.KH; kh++) {
        var row: array<i32, ${l.TN}>;
        ${forJ(
          l,
          `let th = thb[j] - i32(kh); ${ohOf('th', 'oh', 'u.OH')}
          row[j] = select(-1, db[j] + i32(co * P) + oh * i32(u.OW), ok_oh);`,
        )}
        for (var kw = 0u; kw < u.KW; kw++) {
          var wv: array<f32, ${l.RC}>;
          ${forC(l, 'wv[c] = Ws[c * CH + rl];')}
          ${forJ(
            l,
            `let tw = twb[j] - i32(kw); ${ohOf('tw', 'ow', 'u.OW')}
            var g = 0.0;
            if (row[j] >= 0 && ok_ow) { g = dy[row[j] + ow]; }
            ${forC(l, `acc[c * ${l.TN}u + j] = fma(wv[c], g, acc[c * ${l.TN}u + j]);`)}`,
          )}
          rl++;
        }
      }
    }
  }
  ${forJ(
    l,
    `let m = ${laneM(l)};
    if (m < M) {
      let n = m / HW; let p = m % HW;
      ${forC(
        l,
        `let ci = ci0 + c;
        if (ci < u.Cin) { dx[((k * u.N + n) * u.Cin + ci) * HW + p] = acc[c * ${l.TN}u + j]; }`,
      )}
    }`,
  )}
}`;
  return kernel(
    'conv2d.dgrad',
    `${lkey(l)}_s${unitStride ? 1 : 'n'}${direct ? '_direct' : ''}`,
    CONV_UNIFORMS,
    bindings,
    body,
    l.WG,
  );
}

// Row variants: each lane computes TN consecutive outputs of one image row, so that the input values one kernel row
// needs for all of them are one span of (TN - 1) * stride + KW consecutive pixels, loaded once and reused by every
// kernel column (KW x fewer gathers and bounds checks than one load per output and tap). KW and the stride are
// compile-time; for rows narrower than 4 the plain lanes kernels run (linear layers: linearLanesKernel).

/**
 * The weight gradient of convWeightGradKernel (same split over z, same partial layout, same basis folding; dcoef
 * partials per lane, [G * WG, K, B], since a workgroup reduction costs a barrier per step on a CPU) with lanes over
 * reduction columns r = (ci, kh, kw) (+ the bias column) and uniform rows co; the reduction runs over the positions
 * (n, oh, ow) of the z layer's chunk, walked incrementally.
 */
export function convWeightGradLanesKernel(l: Lanes, nb: number, hasBias: boolean, dcoef: boolean): KernelSpec {
  const { uniforms, bindings } = wgradInterface(hasBias, dcoef);
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
  var cb: array<i32, ${l.TN}>; var ckh: array<i32, ${l.TN}>; var ckw: array<i32, ${l.TN}>;
  var kind: array<u32, ${l.TN}>;
  ${forJ(
    l,
    `let rr = ${laneM(l)}; let q = rr % khw;
    cb[j] = i32((rr / khw) * HW); ckh[j] = i32(q / u.KW); ckw[j] = i32(q % u.KW);
    kind[j] = select(select(0u, 1u, rr < u.R0), 2u, ${hasBias ? 'rr == u.R0' : 'false'});`,
  )}
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
      ${forJ(
        l,
        `let ih = ih0 + ckh[j]; let iw = iw0 + ckw[j];
        var xv = select(0.0, 1.0, kind[j] == 2u);
        if (kind[j] == 1u && ih >= 0 && iw >= 0 && ih < i32(u.H) && iw < i32(u.W)) {
          xv = x[xb + cb[j] + ih * i32(u.W) + iw];
        }
        ${forC(l, `acc[c * ${l.TN}u + j] = fma(g[c], xv, acc[c * ${l.TN}u + j]);`)}`,
      )}
      ow++;
      if (ow == u.OW) { ow = 0u; oh++; if (oh == u.OH) { oh = 0u; n++; } }
    }
    for (var b = 0u; b < ${nb}u; b++) {
      if (u.bOff + b >= u.B) { break; }
      let cf = coef[k * u.B + u.bOff + b];
      for (var i = 0u; i < ${T}u; i++) { tot[b * ${T}u + i] = fma(cf, acc[i], tot[b * ${T}u + i]); }
    }
    ${
      dcoef
        ? `
    let wgl = (z * u.tilesM + wid.x) * u.tilesN + wid.y;
    for (var b = 0u; b < ${nb}u; b++) {
      let bb = min(u.bOff + b, u.B - 1u);
      var d = 0.0;
      ${forJ(l, `let rr = ${laneM(l)}; ${forC(l, `d = fma(acc[c * ${l.TN}u + j], basis(bb, rr, co0 + c), d);`)}`)}
      if (u.bOff + b < u.B) { dcpart[((wgl * ${l.WG}u + lid) * u.K + k) * u.B + u.bOff + b] = d; }
    }`
        : ''
    }
  }
  for (var b = 0u; b < ${nb}u; b++) {
    if (u.bOff + b >= u.B) { break; }
    ${forJ(
      l,
      `let rr = ${laneM(l)};
      if (rr < u.R) {
        ${forC(
          l,
          `let co = co0 + c;
          if (co < u.Cout) {
            part[((z * u.B + u.bOff + b) * u.Cout + co) * u.R + rr] = tot[b * ${T}u + c * ${l.TN}u + j];
          }`,
        )}
      }`,
    )}
  }
}`;
  return kernel('conv2d.wgrad', `${lkey(l)}_nb${nb}_b${+hasBias}_dc${+dcoef}`, uniforms, bindings, body, l.WG);
}

// The row-segment variants of the lanes family: a lane computes up to 8 consecutive outputs of a row and loads each
// kernel row's input span once for all kernel columns (stride <= 2 forward, stride-1 input gradient).
import { type KernelSpec, kernel, r, w } from '../kernel.ts';
import { CONV_UNIFORMS, weightLoad } from './conv.wgsl.ts';
import { pow2, clampI } from './conv-tiled.wgsl.ts';
import {
  LANES_WS,
  type Lanes,
  laneRC,
  MAIN_L,
  forJ,
  forC,
  dgradWeight,
  stagedChunks,
  FWD_FILL,
  dgradFill,
  writeChannels,
} from './conv-lanes.wgsl.ts';

/** Lanes with WG lanes of one row segment each, TN consecutive outputs per segment; KW and the stride compile-time. */
export interface RowLanes extends Lanes {
  KW: number;
  stride: number;
}

/** Row shape for outputs of width `rowW` in `rows` rows (all images), `uniDim` uniform channels; null: use plain
 * lanes. */
export function chooseRowLanes(
  rowW: number,
  rows: number,
  uniDim: number,
  KW: number,
  stride: number,
): RowLanes | null {
  if (rowW < 4 || KW > 7 || stride > 2) return null;
  // a divisor of the row width in 5..8 wastes no lanes; else 8 (a partial last segment)
  const TN = [8, 7, 6, 5].find((t) => rowW % t === 0) ?? Math.min(8, rowW);
  const segs = rows * Math.ceil(rowW / TN);
  const WG = clampI(pow2(segs), 8, 32);
  return { WG, TN, RC: laneRC(uniDim), KW, stride };
}

/** Workgroups along x (segments) and y (uniform blocks). */
export const rowGrid = (l: RowLanes, rowW: number, rows: number, uniDim: number): [number, number] => [
  Math.ceil((rows * Math.ceil(rowW / l.TN)) / l.WG),
  Math.ceil(uniDim / l.RC),
];

export const rkey = (l: RowLanes) => `row${l.WG}x${l.TN}x${l.RC}_kw${l.KW}s${l.stride}`;

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
          ${forJ(
            l,
            `let xv = xs[j * ${l.stride}u + kw];
            ${forC(l, `acc[c * ${l.TN}u + j] = fma(wv[c], xv, acc[c * ${l.TN}u + j]);`)}`,
          )}
        }
        rl += ${l.KW}u;
      }
    }
  }
  ${hasBias ? `${forC(l, `let bv = wk(k, co0 + c, u.R0); ${forJ(l, `acc[c * ${l.TN}u + j] += bv;`)}`)}` : ''}
  if (valid) {
    ${forJ(
      l,
      `let ow = ow0 + j;
      if (ow < u.OW) {
        ${writeChannels(l, act, '((k * u.N + n) * u.Cout + co) * P + oh * u.OW + ow')}
      }`,
    )}
  }
}`;
  return kernel(
    'conv2d.fwd',
    `${rkey(l)}_b${+hasBias}_${act}${direct ? '_direct' : ''}`,
    CONV_UNIFORMS,
    bindings,
    body,
    l.WG,
  );
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
          ${forJ(
            l,
            `let g2 = ys[j + ${l.KW - 1}u - kw];
            ${forC(l, `acc[c * ${l.TN}u + j] = fma(wv[c], g2, acc[c * ${l.TN}u + j]);`)}`,
          )}
        }
        rl += ${l.KW}u;
      }
    }
  }
  if (valid) {
    ${forJ(
      l,
      `let iw = iw0 + j;
      if (iw < u.W) {
        ${forC(
          l,
          `let ci = ci0 + c;
          if (ci < u.Cin) { dx[((k * u.N + n) * u.Cin + ci) * HW + ih * u.W + iw] = acc[c * ${l.TN}u + j]; }`,
        )}
      }`,
    )}
  }
}`;
  return kernel('conv2d.dgrad', `${rkey(l)}${direct ? '_direct' : ''}`, CONV_UNIFORMS, bindings, body, l.WG);
}

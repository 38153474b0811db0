// Grouped (and depthwise) convolution kernels over per-point weights w [K, Cout, Cin/G, KH, KW]: direct loops, one
// thread per output, input-gradient, weight-gradient or bias-gradient value. x is [K, N, Cin, H, W], or shared by
// all points (xStride 0).
import { type KernelSpec, kernel, r, w, MAIN_1D, FOLDED_ID } from '../kernel.ts';

const U: KernelSpec['uniforms'] = [
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
  ['G', 'u32'],
  ['stride', 'u32'],
  ['pad', 'u32'],
  // elements between points of x (0: shared)
  ['xStride', 'u32'],
  ['hasBias', 'u32'],
];

const HEAD = (total: string) => `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= ${total}) { return; }
  let Cg = u.Cin / u.G; let Og = u.Cout / u.G;`;

/** y[k, n, co, oh, ow] = b[k, co] + sum over the group's input channels and the window. */
export function gconvForwardKernel(): KernelSpec {
  const body = `${HEAD('u.K * u.N * u.Cout * u.OH * u.OW')}
  let ow = idx % u.OW; let oh = (idx / u.OW) % u.OH; let co = (idx / (u.OW * u.OH)) % u.Cout;
  let n = (idx / (u.OW * u.OH * u.Cout)) % u.N; let k = idx / (u.OW * u.OH * u.Cout * u.N);
  let g = co / Og;
  var acc = select(0.0, b[k * u.Cout + co], u.hasBias != 0u);
  for (var ci = 0u; ci < Cg; ci++) {
    let xb = k * u.xStride + (n * u.Cin + g * Cg + ci) * u.H * u.W;
    let wb = ((k * u.Cout + co) * Cg + ci) * u.KH * u.KW;
    for (var kh = 0u; kh < u.KH; kh++) {
      let ih = i32(oh * u.stride + kh) - i32(u.pad);
      if (ih < 0 || ih >= i32(u.H)) { continue; }
      for (var kw = 0u; kw < u.KW; kw++) {
        let iw = i32(ow * u.stride + kw) - i32(u.pad);
        if (iw < 0 || iw >= i32(u.W)) { continue; }
        acc += x[xb + u32(ih) * u.W + u32(iw)] * wt[wb + kh * u.KW + kw];
      }
    }
  }
  y[idx] = acc;
}`;
  return kernel('gconv2d.fwd', '', U, [r('x'), r('wt'), r('b'), w('y')], body, 256);
}

/** dx[k, n, ci, ih, iw] = sum over the group's output channels and the windows that contain (ih, iw). */
export function gconvInputGradKernel(): KernelSpec {
  const body = `${HEAD('u.K * u.N * u.Cin * u.H * u.W')}
  let iw = idx % u.W; let ih = (idx / u.W) % u.H; let cin = (idx / (u.W * u.H)) % u.Cin;
  let n = (idx / (u.W * u.H * u.Cin)) % u.N; let k = idx / (u.W * u.H * u.Cin * u.N);
  let g = cin / Cg; let ci = cin % Cg;
  var acc = 0.0;
  for (var o = 0u; o < Og; o++) {
    let co = g * Og + o;
    let yb = ((k * u.N + n) * u.Cout + co) * u.OH * u.OW;
    let wb = ((k * u.Cout + co) * Cg + ci) * u.KH * u.KW;
    for (var kh = 0u; kh < u.KH; kh++) {
      let t = i32(ih + u.pad) - i32(kh);
      if (t < 0 || t % i32(u.stride) != 0) { continue; }
      let oh = u32(t) / u.stride;
      if (oh >= u.OH) { continue; }
      for (var kw = 0u; kw < u.KW; kw++) {
        let s = i32(iw + u.pad) - i32(kw);
        if (s < 0 || s % i32(u.stride) != 0) { continue; }
        let ow = u32(s) / u.stride;
        if (ow >= u.OW) { continue; }
        acc += dy[yb + oh * u.OW + ow] * wt[wb + kh * u.KW + kw];
      }
    }
  }
  dx[idx] = acc;
}`;
  return kernel('gconv2d.dx', '', U, [r('dy'), r('wt'), w('dx')], body, 256);
}

/** Per-point dW[k, co, ci, kh, kw] = sum over n, oh, ow; with the bias (threads after the weights') db[k, co]. */
export function gconvWeightGradKernel(): KernelSpec {
  const body = `${HEAD('u.K * u.Cout * (u.Cin / u.G * u.KH * u.KW + u.hasBias)')}
  let per = Cg * u.KH * u.KW;
  let nw = u.K * u.Cout * per;
  if (idx >= nw) {
    // bias gradient of (k, co)
    let j = idx - nw; let co = j % u.Cout; let k = j / u.Cout;
    var sb = 0.0;
    for (var n = 0u; n < u.N; n++) {
      let yb = ((k * u.N + n) * u.Cout + co) * u.OH * u.OW;
      for (var q = 0u; q < u.OH * u.OW; q++) { sb += dy[yb + q]; }
    }
    db[j] = sb;
    return;
  }
  let kw = idx % u.KW; let kh = (idx / u.KW) % u.KH; let ci = (idx / (u.KW * u.KH)) % Cg;
  let co = (idx / per) % u.Cout; let k = idx / (per * u.Cout);
  let cin = (co / Og) * Cg + ci;
  var acc = 0.0;
  for (var n = 0u; n < u.N; n++) {
    let yb = ((k * u.N + n) * u.Cout + co) * u.OH * u.OW;
    let xb = k * u.xStride + (n * u.Cin + cin) * u.H * u.W;
    for (var oh = 0u; oh < u.OH; oh++) {
      let ih = i32(oh * u.stride + kh) - i32(u.pad);
      if (ih < 0 || ih >= i32(u.H)) { continue; }
      for (var ow = 0u; ow < u.OW; ow++) {
        let iw = i32(ow * u.stride + kw) - i32(u.pad);
        if (iw < 0 || iw >= i32(u.W)) { continue; }
        acc += dy[yb + oh * u.OW + ow] * x[xb + u32(ih) * u.W + u32(iw)];
      }
    }
  }
  dw[idx] = acc;
}`;
  return kernel('gconv2d.dw', '', U, [r('dy'), r('x'), w('dw'), w('db')], body, 256);
}

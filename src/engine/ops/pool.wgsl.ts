// Pooling over [K*N*C, H, W] planes: max pool (with argmax for the backward), average pool
// (count_include_pad as PyTorch's default) and PyTorch-exact adaptive average pool, whose bins
// [floor(i*H/OH), ceil((i+1)*H/OH)) may overlap.
import { type KernelSpec, kernel, r, w, MAIN_1D, FOLDED_ID, perElement } from '../kernel.ts';

const POOL_UNIFORMS: KernelSpec['uniforms'] = [
  ['planes', 'u32'],
  ['H', 'u32'],
  ['W', 'u32'],
  ['OH', 'u32'],
  ['OW', 'u32'],
  ['KH', 'u32'],
  ['KW', 'u32'],
  ['stride', 'u32'],
  ['pad', 'u32'],
  ['adaptive', 'u32'],
  // paired = 1: points 2j and 2j+1 pick the argmax of their mean window (pp planes per point), see ops.Ctx.pairedMasks
  ['paired', 'u32'],
  ['pp', 'u32'],
];

/** Window rows [start, end) of output row i along one axis. */
const WINDOW = `
fn win(i: u32, size: u32, osize: u32, k: u32) -> vec2<i32> {
  if (u.adaptive != 0u) {
    return vec2<i32>(i32((i * size) / osize), i32(((i + 1u) * size + osize - 1u) / osize));
  }
  let s = i32(i * u.stride) - i32(u.pad);
  return vec2<i32>(s, s + i32(k));
}`;

export function maxPoolForwardKernel(per = 1): KernelSpec {
  const body = `${WINDOW}
${MAIN_1D(256)} {
  ${FOLDED_ID}
  ${perElement(
    256,
    per,
    'u.planes * u.OH * u.OW',
    `
  let pl = idx / (u.OH * u.OW); let q = idx % (u.OH * u.OW);
  let hw = win(q / u.OW, u.H, u.OH, u.KH); let ww = win(q % u.OW, u.W, u.OW, u.KW);
  var best = -3.4e38; var arg = 0u;
  // the partner plane of the paired mode (the same plane when not paired)
  let kp = pl / u.pp;
  let partner = select(pl, ((kp ^ 1u) * u.pp + pl % u.pp), u.paired != 0u);
  for (var ih = max(hw.x, 0); ih < min(hw.y, i32(u.H)); ih++) {
    for (var iw = max(ww.x, 0); iw < min(ww.y, i32(u.W)); iw++) {
      let o = u32(ih) * u.W + u32(iw);
      let v = x[pl * u.H * u.W + o] + x[partner * u.H * u.W + o];
      if (v > best) { best = v; arg = o; }
    }
  }
  y[idx] = x[pl * u.H * u.W + arg];
  argmax[idx] = arg;`,
  )}
}`;
  return kernel(
    'maxpool2d.fwd',
    per === 1 ? '' : `per${per}`,
    POOL_UNIFORMS,
    [r('x'), w('y'), w('argmax')],
    body,
    256,
    { argmax: 'u32' },
  );
}

/** Output rows whose window may contain input row i (a superset for adaptive pools; checked by the caller). */
const RANGE = `
fn orange(i: u32, size: u32, osize: u32, k: u32) -> vec2<u32> {
  if (u.adaptive != 0u) {
    // bin o covers [floor(o*size/osize), ceil((o+1)*size/osize)); candidates around i*osize/size.
    let c = (i * osize) / size;
    return vec2<u32>(select(0u, c - 1u, c > 0u), min(osize, ((i + 1u) * osize) / size + 1u));
  }
  let t = i32(i + u.pad);
  let lo = max(0, (t - i32(k) + i32(u.stride)) / i32(u.stride));
  let hi = min(i32(osize), t / i32(u.stride) + 1);
  return vec2<u32>(u32(lo), u32(max(hi, lo)));
}`;

export function maxPoolBackwardKernel(): KernelSpec {
  const body = `${RANGE}
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= u.planes * u.H * u.W) { return; }
  let pl = idx / (u.H * u.W); let q = idx % (u.H * u.W);
  let ih = q / u.W; let iw = q % u.W;
  let hr = orange(ih, u.H, u.OH, u.KH); let wr = orange(iw, u.W, u.OW, u.KW);
  var s = 0.0;
  for (var oh = hr.x; oh < hr.y; oh++) {
    for (var ow = wr.x; ow < wr.y; ow++) {
      let o = pl * u.OH * u.OW + oh * u.OW + ow;
      if (argmax[o] == q) { s += dy[o]; }
    }
  }
  dx[idx] = s;
}`;
  return kernel('maxpool2d.bwd', '', POOL_UNIFORMS, [r('dy'), r('argmax'), w('dx')], body, 256, { argmax: 'u32' });
}

export function avgPoolForwardKernel(): KernelSpec {
  const body = `${WINDOW}
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= u.planes * u.OH * u.OW) { return; }
  let pl = idx / (u.OH * u.OW); let q = idx % (u.OH * u.OW);
  let hw = win(q / u.OW, u.H, u.OH, u.KH); let ww = win(q % u.OW, u.W, u.OW, u.KW);
  var s = 0.0;
  for (var ih = max(hw.x, 0); ih < min(hw.y, i32(u.H)); ih++) {
    for (var iw = max(ww.x, 0); iw < min(ww.y, i32(u.W)); iw++) {
      s += x[pl * u.H * u.W + u32(ih) * u.W + u32(iw)];
    }
  }
  y[idx] = s / f32((hw.y - hw.x) * (ww.y - ww.x));
}`;
  return kernel('avgpool2d.fwd', '', POOL_UNIFORMS, [r('x'), w('y')], body, 256);
}

export function avgPoolBackwardKernel(): KernelSpec {
  const body = `${WINDOW}
${RANGE}
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= u.planes * u.H * u.W) { return; }
  let pl = idx / (u.H * u.W); let q = idx % (u.H * u.W);
  let ih = i32(q / u.W); let iw = i32(q % u.W);
  let hr = orange(u32(ih), u.H, u.OH, u.KH); let wr = orange(u32(iw), u.W, u.OW, u.KW);
  var s = 0.0;
  for (var oh = hr.x; oh < hr.y; oh++) {
    let hw = win(oh, u.H, u.OH, u.KH);
    if (ih < hw.x || ih >= hw.y) { continue; }
    for (var ow = wr.x; ow < wr.y; ow++) {
      let ww = win(ow, u.W, u.OW, u.KW);
      if (iw < ww.x || iw >= ww.y) { continue; }
      s += dy[pl * u.OH * u.OW + oh * u.OW + ow] / f32((hw.y - hw.x) * (ww.y - ww.x));
    }
  }
  dx[idx] = s;
}`;
  return kernel('avgpool2d.bwd', '', POOL_UNIFORMS, [r('dy'), w('dx')], body, 256);
}

/** Max-pool backward when windows do not overlap (stride >= kernel): each output sends dy to its argmax; dx is cleared
 * first. */
export function maxPoolScatterKernel(): KernelSpec {
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= u.planes * u.OH * u.OW) { return; }
  let pl = idx / (u.OH * u.OW);
  dx[pl * u.H * u.W + argmax[idx]] = dy[idx];
}`;
  return kernel('maxpool2d.bwd_scatter', '', POOL_UNIFORMS, [r('dy'), r('argmax'), w('dx')], body, 256, {
    argmax: 'u32',
  });
}

/**
 * Zero padding and its inverse, the crop, over [planes, H, W] -> [planes, OH, OW]: y[oh, ow] = x[oh - top, ow - left]
 * where that lies inside x, else 0 (top and left negative for the crop that is the padding's backward).
 */
export function padKernel(): KernelSpec {
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= u.planes * u.OH * u.OW) { return; }
  let pl = idx / (u.OH * u.OW); let q = idx % (u.OH * u.OW);
  let ih = i32(q / u.OW) - u.top; let iw = i32(q % u.OW) - u.left;
  let inside = ih >= 0 && ih < i32(u.H) && iw >= 0 && iw < i32(u.W);
  let src = pl * u.H * u.W + u32(max(ih, 0)) * u.W + u32(max(iw, 0));
  y[idx] = select(0.0, x[min(src, u.planes * u.H * u.W - 1u)], inside);
}`;
  const U: KernelSpec['uniforms'] = [
    ['planes', 'u32'],
    ['H', 'u32'],
    ['W', 'u32'],
    ['OH', 'u32'],
    ['OW', 'u32'],
    ['top', 'i32'],
    ['left', 'i32'],
  ];
  return kernel('pad2d', '', U, [r('x'), w('y')], body, 256);
}

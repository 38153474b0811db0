// The roofline probes of the benchmarks: plain matmuls with the conv kernels' tiling (tiled) and lane layout (lanes).
import { type KernelSpec, kernel, r, w } from '../src/engine/kernel.ts';
import { type Tiles, tkey, threads, gemm, MAIN } from '../src/engine/ops/conv-tiled.wgsl.ts';
import { type Lanes, lkey, MAIN_L, forJ, forC, laneM } from '../src/engine/ops/conv-lanes.wgsl.ts';
/** Plain C[M, N] = A[M, Kd] B[Kd, N] with the same tiling as the conv kernels: the roofline probe of bench:kernels. */
export function matmulKernel(t: Tiles): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['M', 'u32'],
    ['N', 'u32'],
    ['Kd', 'u32'],
  ];
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
  const U: KernelSpec['uniforms'] = [
    ['M', 'u32'],
    ['N', 'u32'],
    ['Kd', 'u32'],
  ];
  const body = `
${MAIN_L(l)} {
  let m0 = wid.y * ${l.RC}u;
  var acc: array<f32, ${l.RC * l.TN}>;
  for (var kk = 0u; kk < u.Kd; kk++) {
    var bv: array<f32, ${l.TN}>;
    ${forJ(l, `let n = ${laneM(l)}; bv[j] = select(0.0, b[kk * u.N + min(n, u.N - 1u)], n < u.N);`)}
    ${forC(
      l,
      `let av = select(0.0, a[min(m0 + c, u.M - 1u) * u.Kd + kk], m0 + c < u.M);
      ${forJ(l, `acc[c * ${l.TN}u + j] = fma(av, bv[j], acc[c * ${l.TN}u + j]);`)}`,
    )}
  }
  for (var i = 0u; i < ${l.RC}u; i++) {
    let m = m0 + i;
    ${forJ(l, `let n = ${laneM(l)}; if (m < u.M && n < u.N) { c[m * u.N + n] = acc[i * ${l.TN}u + j]; }`)}
  }
}`;
  return kernel('matmul', lkey(l), U, [r('a'), r('b'), w('c')], body, l.WG);
}

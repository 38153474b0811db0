// A seeded sparse random projection P [D, dmax] that is never stored densely (random-subspace training for large D):
// only its nonzeros, once by rows (CSR, for theta = theta0 + P z) and once by columns (CSC, for dL/dz = P^T dL/dtheta).
// Every point k has its own z_k and its own dimension d_k (columns j >= d_k are left out), so that a sweep over d
// trains as the K points of one batched pass. Both kernels are exact sums in a fixed order (no atomics).
import { type KernelSpec, FOLDED_ID, MAIN_1D, kernel, r, w } from '../engine/kernel.ts';

const U: KernelSpec['uniforms'] = [
  ['K', 'u32'],
  ['S', 'u32'],
  ['dmax', 'u32'],
];

/**
 * theta [K, S] = theta0 [S] + P z_k over the rows of one parameter tensor: rowPtr [S + 1] (local rows), col and val
 * (the row-ordered nonzeros), z [K, dmax], dims [K] (d_k).
 */
export function sparseExpandKernel(): KernelSpec {
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= u.K * u.S) { return; }
  let k = idx / u.S; let i = idx % u.S;
  var s = theta0[i];
  for (var e = rowPtr[i]; e < rowPtr[i + 1u]; e++) {
    let j = col[e];
    if (j < dims[k]) { s = fma(val[e], z[k * u.dmax + j], s); }
  }
  theta[idx] = s;
}`;
  return kernel(
    'sparse.expand',
    '',
    U,
    [r('theta0'), r('rowPtr'), r('col'), r('val'), r('z'), r('dims'), w('theta')],
    body,
    256,
    { rowPtr: 'u32', col: 'u32', dims: 'u32' },
  );
}

/**
 * dz [K, dmax] (+)= P^T g_k over the rows of one parameter tensor: colPtr [dmax + 1], row (local) and val (the
 * column-ordered nonzeros), g [K, S] (each point's gradient with respect to its own weights); 0 for j >= d_k.
 */
export function sparseProjectKernel(): KernelSpec {
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let idx = wg_lin * 256u + lid;
  if (idx >= u.K * u.dmax) { return; }
  let k = idx / u.dmax; let j = idx % u.dmax;
  var s = 0.0;
  if (j < dims[k]) {
    for (var e = colPtr[j]; e < colPtr[j + 1u]; e++) { s = fma(val[e], g[k * u.S + row[e]], s); }
  }
  if (u.accumulate != 0u) { s += dz[idx]; }
  dz[idx] = s;
}`;
  return kernel(
    'sparse.project',
    '',
    [...U, ['accumulate', 'u32']],
    [r('colPtr'), r('row'), r('val'), r('g'), r('dims'), w('dz')],
    body,
    256,
    { colPtr: 'u32', row: 'u32', dims: 'u32' },
  );
}

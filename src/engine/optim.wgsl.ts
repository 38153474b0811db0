// Optimizer kernels: gradient-norm reduction and clipping factor, SGD and Adam steps.
import { type KernelSpec, kernel, r, w, MAIN_1D, FOLDED_ID, perElement } from './kernel.ts';

// ---------------------------------------------------------------- optimizers
/**
 * Partial sums of squares: part[off + workgroup] = sum over the workgroup's 1024 elements of g^2, by `wg` threads
 * (256 on a GPU; 8 on a CPU adapter, where the tree's barriers cost more than the longer per-thread loop).
 */
export function sumSquaresKernel(wg = 256): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['n', 'u32'],
    ['off', 'u32'],
  ];
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
  const U: KernelSpec['uniforms'] = [
    ['n', 'u32'],
    ['maxNorm', 'f32'],
  ];
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

/** PyTorch SGD: buf = mu*buf + g; step = nesterov ? g + mu*buf : buf; p -= lr*step (g includes weight decay). */
export function sgdKernel(per = 1): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['n', 'u32'],
    ['lr', 'f32'],
    ['mu', 'f32'],
    ['wd', 'f32'],
    ['nesterov', 'u32'],
  ];
  return optKernel(
    'optim.sgd',
    U,
    [w('p'), r('g_'), w('m'), r('norm')],
    per,
    `let b = u.mu * m[i] + g;
    m[i] = b;
    let st = select(b, g + u.mu * b, u.nesterov != 0u);
    p[i] = p0 - u.lr * st;`,
  );
}

/** PyTorch Adam (L2 weight decay added to the gradient); c1, c2 are the bias corrections 1 - beta^t. */
export function adamKernel(per = 1): KernelSpec {
  const U: KernelSpec['uniforms'] = [
    ['n', 'u32'],
    ['lr', 'f32'],
    ['b1', 'f32'],
    ['b2', 'f32'],
    ['eps', 'f32'],
    ['wd', 'f32'],
    ['c1', 'f32'],
    ['c2', 'f32'],
  ];
  return optKernel(
    'optim.adam',
    U,
    [w('p'), r('g_'), w('m'), w('v'), r('norm')],
    per,
    `let mm = u.b1 * m[i] + (1.0 - u.b1) * g;
    let vv = u.b2 * v[i] + (1.0 - u.b2) * g * g;
    m[i] = mm; v[i] = vv;
    p[i] = p0 - u.lr * (mm / u.c1) / (sqrt(vv / u.c2) + u.eps);`,
  );
}

/** An optimizer kernel over n elements, `per` consecutive ones per invocation (the gradient already clip-scaled). */
export const optKernel = (
  name: string,
  U: KernelSpec['uniforms'],
  bindings: ReturnType<typeof w>[],
  per: number,
  update: string,
): KernelSpec =>
  kernel(
    name,
    per === 1 ? '' : `per${per}`,
    U,
    bindings,
    `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  ${perElement(
    256,
    per,
    'u.n',
    `let i = idx;
    let p0 = p[i];
    let g = g_[i] * norm[1] + u.wd * p0;
    ${update}`,
  )}
}`,
    256,
  );

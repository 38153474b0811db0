// Elementwise kernels: one generated kernel per expression over named inputs (the activations of ACTIVATIONS, their
// backward expressions, dropout, copies), ReLU with masks shared by point pairs, and the dropout hash.
import { type KernelSpec, kernel, r, w, MAIN_1D, FOLDED_ID, perElement } from '../kernel.ts';
// ---------------------------------------------------------------- elementwise
/** y[i] = expr over named inputs a, b, ... (f32 arrays of the same length); `i` and `s` (a f32 uniform) are in
 * scope. */
export function elementwiseKernel(
  name: string,
  inputs: string[],
  expr: string,
  extraUniforms: KernelSpec['uniforms'] = [],
  prelude = '',
  per = 1,
): KernelSpec {
  const U: KernelSpec['uniforms'] = [['n', 'u32'], ...extraUniforms];
  const body = `${prelude}
${MAIN_1D(256)} {
  ${FOLDED_ID}
  ${perElement(
    256,
    per,
    'u.n',
    `let i = idx;
    ${inputs.map((a) => `let ${a} = ${a}_[i];`).join(' ')}
    y[i] = ${expr};`,
  )}
}`;
  return kernel(name, per === 1 ? '' : `per${per}`, U, [...inputs.map((a) => r(`${a}_`)), w('y')], body, 256);
}

/**
 * ReLU with the mask shared by points 2j and 2j+1: mask = (a[k] + a[k ^ 1] > 0), S values per point. mode 0: forward
 * y = mask ? a : 0; mode 1: backward y = mask ? g : 0 (g the output gradient).
 */
export function reluPairedKernel(): KernelSpec {
  const body = `
${MAIN_1D(256)} {
  ${FOLDED_ID}
  let i = wg_lin * 256u + lid;
  if (i >= u.n) { return; }
  let k = i / u.S;
  let j = (k ^ 1u) * u.S + i % u.S;
  let on = a[i] + a[j] > 0.0;
  if (u.mode == 0u) { y[i] = select(0.0, a[i], on); } else { y[i] = select(0.0, g[i], on); }
}`;
  return kernel(
    'relu.paired',
    '',
    [
      ['n', 'u32'],
      ['S', 'u32'],
      ['mode', 'u32'],
    ],
    [r('a'), r('g'), w('y')],
    body,
    256,
  );
}

/** Counter-based hash (PCG-style) giving a uniform float in [0, 1) for (seed, index). */
export const HASH = `
fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let t = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (t >> 22u) ^ t;
}
fn uniform01(seed: u32, i: u32) -> f32 { return f32(pcg(pcg(i) ^ seed) >> 8u) / 16777216.0; }`;

/**
 * An activation y = f(a), elementwise, with its backward dx = f'(a) dy written as a WGSL expression of g (the output
 * gradient), a (the input) and o (the output); `prelude` holds the WGSL functions both use.
 */
export interface Activation {
  fwd: string;
  bwd: string;
  prelude?: string;
}

export const ERF = `fn erf_(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * z);
  let y = 1.0 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592)
      * t * exp(-z * z);
  return select(-y, y, x >= 0.0);
}`;

export const GELU_T = `fn gelu_t(a: f32) -> f32 {
  return tanh(clamp(0.7978845608 * (a + 0.044715 * a * a * a), -20.0, 20.0));
}`;

export const SIGMOID = `fn sigmoid_(a: f32) -> f32 { return 1.0 / (1.0 + exp(-a)); }`;

/** The activations computed by one elementwise kernel each way (erf: Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). */
export const ACTIVATIONS = {
  tanh: { fwd: 'tanh(clamp(a, -20.0, 20.0))', bwd: 'g * (1.0 - o * o)' },
  gelu_erf: {
    prelude: ERF,
    fwd: '0.5 * a * (1.0 + erf_(a * 0.70710678))',
    bwd: 'g * (0.5 * (1.0 + erf_(a * 0.70710678)) + a * 0.39894228 * exp(-0.5 * a * a))',
  },
  gelu_tanh: {
    prelude: GELU_T,
    fwd: '0.5 * a * (1.0 + gelu_t(a))',
    bwd:
      'g * (0.5 * (1.0 + gelu_t(a)) + 0.5 * a * (1.0 - gelu_t(a) * gelu_t(a))' +
      ' * 0.7978845608 * (1.0 + 0.134145 * a * a))',
  },
  sigmoid: { prelude: SIGMOID, fwd: 'sigmoid_(a)', bwd: 'g * o * (1.0 - o)' },
  silu: { prelude: SIGMOID, fwd: 'a * sigmoid_(a)', bwd: 'g * sigmoid_(a) * (1.0 + a * (1.0 - sigmoid_(a)))' },
} satisfies Record<string, Activation>;

// Checks every op: forward against the CPU reference (atol + rtol*|ref|), backward (input, basis and
// coefficient gradients) against central finite differences of the float64 reference.
// Used by the test suite and by `npm run gradcheck`.
import type { Gpu } from './device.ts';
import { Manifold, Param } from './manifold.ts';
import { Tape } from './tape.ts';
import { Tensor, numel } from './tensor.ts';
import type * as ops from './ops/index.ts';
import * as ref from './reference.ts';
import { randArray, rng } from './random.ts';
import type { OpCase } from './ops/case.ts';
import { convCases } from './ops/conv.cases.ts';
import { gconvCases } from './ops/gconv.cases.ts';
import { poolCases } from './ops/pool.cases.ts';
import { batchnormCases } from './ops/batchnorm.cases.ts';
import { elementwiseCases } from './ops/elementwise.cases.ts';
import { lossCases } from './ops/loss.cases.ts';
export { randArray, randn, rng } from './random.ts';

export interface Inputs {
  x: Float32Array;
  params: Float32Array[];
  coef: Float32Array;
}

export interface CheckResult {
  op: string;
  name: string;
  fwdErr: number;
  bwdErr: number;
  pass: boolean;
  detail: string;
}

const RTOL = 1e-4;
const FWD_ATOL = 1e-5;
const BWD_TOL = 1e-3;

function sample(n: number, max: number, r: () => number): number[] | undefined {
  if (n <= max) return undefined;
  const s = new Set<number>();
  while (s.size < max) s.add(Math.floor(r() * n));
  return [...s];
}

export async function checkOp(gpu: Gpu, c: OpCase, seed = 1): Promise<CheckResult> {
  const r = rng(seed);
  const xs = c.x.shared ? c.x.shape : [c.K, ...c.x.shape];
  const inputs: Inputs = {
    x: randArray(r, numel(xs), c.x.scale ?? 1),
    params: (c.params ?? []).map((p) =>
      p.init ? p.init(r, c.B * numel(p.shape)) : randArray(r, c.B * numel(p.shape), p.scale ?? 0.5),
    ),
    coef: c.coef ? c.coef(r, c.K * c.B) : randArray(r, c.K * c.B, 0.7),
  };
  const manifold = new Manifold(gpu, c.K, c.B, inputs.coef);
  const params = (c.params ?? []).map((p, i) => new Param(gpu, p.name, p.shape, c.B, inputs.params[i]));
  const tape = new Tape(gpu, manifold, true);
  const x = Tensor.fromArray(gpu, xs, inputs.x, 'x');
  const errs: string[] = [];
  let fwdErr = 0,
    bwdErr = 0;
  try {
    const ctx: ops.Ctx = { gpu, manifold, tape };
    const { y, backward } = c.gpu(ctx, x, params);
    const yv = await gpu.read(y.buffer, (c.outLen ?? y.size) * 4).then((b) => new Float32Array(b));
    const yr = c.ref(inputs.x, inputs.params, inputs.coef);
    if (yr.length !== yv.length)
      throw new Error(`${c.op} ${c.name}: GPU output has ${yv.length} values, reference ${yr.length}`);
    const atol = c.atol ?? FWD_ATOL;
    for (let i = 0; i < yr.length; i++) {
      const e = Math.abs(yv[i] - yr[i]);
      const rel = Number.isNaN(e) ? Infinity : e / (atol + RTOL * Math.abs(yr[i])); // NaN never passes
      if (rel > fwdErr) fwdErr = rel;
    }
    if (fwdErr > 1) errs.push(`forward off by ${fwdErr.toFixed(2)}x tolerance`);
    // backward from a random seed gradient
    const seedv = randArray(r, c.outLen ?? y.size);
    if (backward) backward(tape, seedv);
    else tape.backwardFrom(y, Tensor.fromArray(gpu, y.shape, seedv, 'seed'));
    const loss = (xv: ArrayLike<number>, pv: ArrayLike<number>[], cv: ArrayLike<number>) => {
      if (c.refLoss) return c.refLoss(xv, pv, cv, seedv);
      const o = c.ref(xv, pv, cv);
      let s = 0;
      for (let i = 0; i < o.length; i++) s += o[i] * seedv[i];
      return s;
    };
    const compare = (what: string, got: Float32Array, fd: Map<number, number>) => {
      for (const [i, v] of fd) {
        const d = Math.abs(got[i] - v) / (BWD_TOL * (1 + Math.abs(v)));
        const e = Number.isNaN(d) ? Infinity : d; // NaN never passes
        if (e > bwdErr) bwdErr = e;
        if (e > 1 && errs.length < 6)
          errs.push(`d${what}[${i}] = ${got[i].toPrecision(6)}, finite difference ${v.toPrecision(6)}`);
      }
    };
    if (!c.x.shared) {
      const g = tape.gradOf(x);
      const got = g ? await g.read() : new Float32Array(x.size);
      compare(
        'x',
        got,
        ref.finiteDiff((xv) => loss(xv, inputs.params, inputs.coef), inputs.x, sample(x.size, 48, r)),
      );
    }
    for (let i = 0; i < params.length; i++) {
      const got = params[i].grad ? await params[i].grad!.read() : new Float32Array(params[i].basis.size);
      const fd = ref.finiteDiff(
        (pv) =>
          loss(
            inputs.x,
            inputs.params.map((q, j) => (j === i ? pv : q)),
            inputs.coef,
          ),
        inputs.params[i],
        sample(params[i].basis.size, 48, r),
      );
      compare(params[i].name, got, fd);
    }
    if (params.length) {
      const got = manifold.dcoef ? await manifold.dcoef.read() : new Float32Array(c.K * c.B);
      compare(
        'coef',
        got,
        ref.finiteDiff((cv) => loss(inputs.x, inputs.params, cv), inputs.coef),
      );
    }
  } catch (e) {
    errs.push((e as Error).message);
    fwdErr = fwdErr || Infinity;
  } finally {
    tape.dispose();
    x.dispose();
    params.forEach((p) => p.dispose());
    manifold.dispose();
  }
  return { op: c.op, name: c.name, fwdErr, bwdErr, pass: errs.length === 0, detail: errs.join('; ') };
}

// ---------------------------------------------------------------- the cases

/** Every op of the engine, checked by checkOp (forward vs the CPU reference, backward vs central differences). */
export function opCases(): OpCase[] {
  return [...convCases(), ...gconvCases(), ...poolCases(), ...batchnormCases(), ...elementwiseCases(), ...lossCases()];
}

// Directions in weight space for loss-surface plots (Li et al. 2018, as the reference tool makes them):
// random Gaussian per parameter tensor, normalized per filter (each slice along dim 0 gets the norm of the same
// slice of the weights), per layer, elementwise by the weights, or not at all; tensors of dim <= 1 (biases, BN)
// set to 0 with ignoreBiasBn, else copied from the weights. Or a target direction theta2 - theta1.
import { rng, randn } from '../engine/random.ts';
import type { WeightSet } from '../models/checkpoint.ts';
import { readSafetensors, type NamedTensor } from '../data/formats.ts';
import { paramShapes, stateShapes } from '../models/graph.ts';
import type { ModelDef } from '../models/graph.ts';

export type DirNorm = 'filter' | 'layer' | 'weight' | 'none';
export const DIR_NORMS = ['filter', 'layer', 'weight', 'none'] as const satisfies readonly DirNorm[];

const norm2 = (a: ArrayLike<number>, from = 0, to = a.length) => {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i] * a[i];
  return Math.sqrt(s);
};

export function randomDirection(
  weights: Float32Array[],
  shapes: number[][],
  o: { seed: number; norm: DirNorm; ignoreBiasBn: boolean },
): Float32Array[] {
  const r = rng(o.seed);
  return weights.map((w, t) => {
    const d = Float32Array.from(w, () => randn(r));
    if (shapes[t].length <= 1) return o.ignoreBiasBn ? new Float32Array(w.length) : Float32Array.from(w);
    if (o.norm === 'filter') {
      const per = w.length / shapes[t][0];
      for (let f = 0; f < shapes[t][0]; f++) {
        const s = norm2(w, f * per, (f + 1) * per) / (norm2(d, f * per, (f + 1) * per) + 1e-10);
        for (let i = f * per; i < (f + 1) * per; i++) d[i] *= s;
      }
    } else if (o.norm === 'layer') {
      const s = norm2(w) / (norm2(d) + 1e-10);
      for (let i = 0; i < d.length; i++) d[i] *= s;
    } else if (o.norm === 'weight') {
      for (let i = 0; i < d.length; i++) d[i] *= w[i];
    }
    return d;
  });
}

export function targetDirection(from: Float32Array[], to: Float32Array[]): Float32Array[] {
  return from.map((a, t) => Float32Array.from(a, (v, i) => to[t][i] - v));
}

/** 'weights': directions over the parameters only; 'states': also over the BN running statistics (the reference's
 * dir_type). */
export type DirType = 'weights' | 'states';

/**
 * A random direction over a checkpoint's parameters and, in states mode, its running statistics (1-D tensors: zero
 * with ignoreBiasBn, else a copy of the statistics, as the reference treats every tensor of dim <= 1).
 */
export function randomDirectionSet(
  a: WeightSet,
  shapes: number[][],
  o: { seed: number; norm: DirNorm; ignoreBiasBn: boolean; dirType: DirType },
): WeightSet {
  return {
    weights: randomDirection(a.weights, shapes, o),
    states:
      o.dirType === 'states' && a.states
        ? a.states.map((s) => (o.ignoreBiasBn ? new Float32Array(s.length) : Float32Array.from(s)))
        : null,
  };
}

/** theta2 - theta1 over the parameters and, in states mode, the running statistics. */
export function targetDirectionSet(a: WeightSet, b: WeightSet, dirType: DirType): WeightSet {
  return {
    weights: targetDirection(a.weights, b.weights),
    states: dirType === 'states' && a.states && b.states ? targetDirection(a.states, b.states) : null,
  };
}

/** A direction as named tensors (parameter and running-statistic names, prefixed), for directions.safetensors. */
export function directionTensors(prefix: string, layers: ModelDef, d: WeightSet): Record<string, NamedTensor> {
  const t: Record<string, NamedTensor> = {};
  paramShapes(layers).forEach((s, i) => (t[`${prefix}${s.name}`] = { shape: s.shape, data: d.weights[i] }));
  if (d.states)
    stateShapes(layers).forEach((s, i) => (t[`${prefix}${s.name}`] = { shape: s.shape, data: d.states![i] }));
  return t;
}

/**
 * Directions saved by surface / hessian (tensors prefixed x/ and y/) or interpolate (no prefix) read back as
 * WeightSets, for `--dir-file`: each parameter must be there with its shape; running statistics are optional.
 */
export function readDirections(path: string, layers: ModelDef, prefixes: string[]): WeightSet[] {
  const { tensors } = readSafetensors(path);
  return prefixes.map((prefix) => {
    const weights = paramShapes(layers).map((s) => {
      const t = tensors[`${prefix}${s.name}`];
      const n = s.shape.reduce((a, b) => a * b, 1);
      if (!t)
        throw new Error(
          `${path}: no tensor ${prefix}${s.name} (a direction file of another model, or not a direction file?)`,
        );
      if (t.data.length !== n)
        throw new Error(`${path}: tensor ${prefix}${s.name} has ${t.data.length} values, the model needs ${n}`);
      return t.data;
    });
    const st = stateShapes(layers);
    const states =
      st.length && st.every((s) => tensors[`${prefix}${s.name}`])
        ? st.map((s) => tensors[`${prefix}${s.name}`].data)
        : null;
    return { weights, states };
  });
}

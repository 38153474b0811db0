// The plane theta + a * d1 + b * d2 of the Li et al. tools (surface, hessian): the model, its two directions
// (targets B - A and C - A, random ones normalized per `norm`, or given ones) and how batch norm is evaluated.
import { paramShapes } from '../models/graph.ts';
import { bnModeFor, checkpointSpec, sameModel, type Checkpoint, type WeightSet } from '../models/checkpoint.ts';
import { randomDirectionSet, targetDirectionSet, type DirNorm, type DirType } from './directions.ts';

export interface PlaneOptions {
  norm: DirNorm;
  ignoreBiasBn: boolean;
  dirType: DirType;
  bnStats: 'running' | 'batch';
  seed: number;
  /** Explicit directions (e.g. PCA components), used as they are instead of targets or random ones. */
  directions?: [WeightSet, WeightSet];
}

/** The plane around checkpoint a: d1 from targets[0] (or random with seed), d2 from targets[1] (or seed + 1). */
export function planeOf(
  a: Checkpoint,
  targets: [Checkpoint | null, Checkpoint | null],
  input: [number, number, number],
  o: PlaneOptions,
) {
  const spec = checkpointSpec(a, input);
  const shapes = paramShapes(spec.layers).map((p) => p.shape);
  const bnMode = bnModeFor(a, o.bnStats, spec.layers);
  for (const t of targets) if (t) sameModel(a, t);
  const dir = (t: Checkpoint | null, seed: number): WeightSet =>
    t
      ? targetDirectionSet(a, t, o.dirType)
      : randomDirectionSet(a, shapes, { seed, norm: o.norm, ignoreBiasBn: o.ignoreBiasBn, dirType: o.dirType });
  const [d1, d2] = o.directions ?? [dir(targets[0], o.seed), dir(targets[1], o.seed + 1)];
  return { spec, d1, d2, bnMode };
}

// Trained weights as the loss-surface tools read them (a model.safetensors of `loss-atlas train`, whose metadata
// names the architecture), and models whose basis tensors are a checkpoint plus directions: the manifold
// theta + sum_i c_i d_i that interpolate, surface and hessian evaluate in batched blocks of points.
import { existsSync } from 'node:fs';
import type { Gpu } from '../engine/device.ts';
import { readSafetensors } from '../data/formats.ts';
import { Model } from './model.ts';
import { paramShapes, stateShapes } from './graph.ts';
import type { BnMode } from './layers.ts';
import { modelSpec, type ModelSpec } from './zoo.ts';

export interface Checkpoint {
  path: string;
  model: string;
  bn: boolean;
  skip: boolean;
  width: number;
  dropout: number;
  names: string[];
  weights: Float32Array[];
  /** BN running statistics (running_mean, running_var per BN layer); null when the file has none. */
  states: Float32Array[] | null;
}

/** A point or direction in the space of weights and running statistics. */
export interface WeightSet {
  weights: Float32Array[];
  /** null: no running statistics (a model without BN, or a direction that leaves them alone). */
  states: Float32Array[] | null;
}

/** Reads a model.safetensors written by `loss-atlas train` (its metadata names the architecture). */
export function readCheckpoint(path: string, input: [number, number, number]): Checkpoint {
  if (!existsSync(path))
    throw new Error(`${path}: no such checkpoint file (a model.safetensors written by loss-atlas train expected)`);
  const { tensors, metadata } = readSafetensors(path);
  const model = metadata.model;
  if (!model) throw new Error(`${path}: no model name in the metadata (write it with loss-atlas train)`);
  const bn = metadata.bn === 'true',
    skip = metadata.skip === 'true',
    width = Number(metadata.width ?? 1),
    dropout = Number(metadata.dropout ?? 0);
  const spec = modelSpec(model, { bn, skip, input, width, dropout });
  const read = (s: { name: string; shape: number[] }) => {
    const t = tensors[s.name];
    if (!t) throw new Error(`${path}: tensor ${s.name} of model ${model} missing`);
    if (t.data.length !== s.shape.reduce((a, b) => a * b, 1))
      throw new Error(`${path}: tensor ${s.name} has ${t.data.length} values, expected shape [${s.shape}]`);
    return t.data;
  };
  const shapes = paramShapes(spec.layers);
  const st = stateShapes(spec.layers);
  const states = st.length && st.every((s) => tensors[s.name]) ? st.map(read) : null;
  return { path, model, bn, skip, width, dropout, names: shapes.map((s) => s.name), weights: shapes.map(read), states };
}

export function checkpointSpec(a: Checkpoint, input: [number, number, number]): ModelSpec {
  return modelSpec(a.model, { bn: a.bn, skip: a.skip, input, width: a.width, dropout: a.dropout });
}

/** Checks that two checkpoints are the same architecture. */
export function sameModel(a: Checkpoint, b: Checkpoint): void {
  if (b.model !== a.model || b.bn !== a.bn || b.skip !== a.skip || b.width !== a.width)
    throw new Error(`${b.path} is a different model (${b.model}) from ${a.path} (${a.model})`);
}

/**
 * How batch norm is evaluated: 'running' normalizes with the checkpoint's running statistics (PyTorch's eval(), as
 * the reference tool), 'batch' with each point's statistics of the evaluated batch. 'running' needs the statistics.
 */
export function bnModeFor(
  a: Checkpoint,
  bnStats: 'running' | 'batch',
  layers = checkpointSpec(a, [1, 28, 28]).layers,
): BnMode {
  if (!stateShapes(layers).length || bnStats === 'batch') return 'batch';
  if (!a.states)
    throw new Error(`${a.path}: no running statistics (running_mean/running_var) in the file; use --bn-stats batch`);
  return 'running';
}

/** A B = bases.length model whose basis b holds bases[b] (weights, and running statistics where given). */
export function manifoldModel(gpu: Gpu, spec: ModelSpec, bases: WeightSet[], bnMode: BnMode): Model {
  const B = bases.length;
  const stack = (get: (w: WeightSet) => Float32Array[] | null, sizes: number[]) =>
    sizes.map((n, t) => {
      const all = new Float32Array(B * n);
      bases.forEach((w, b) => {
        const v = get(w);
        if (v) all.set(v[t], b * n);
      });
      return all;
    });
  const wSizes = paramShapes(spec.layers).map((s) => s.shape.reduce((a, b) => a * b, 1));
  const sSizes = stateShapes(spec.layers).map((s) => s.shape.reduce((a, b) => a * b, 1));
  const states = bases[0].states ? stack((w) => w.states, sSizes) : undefined;
  const model = new Model(
    gpu,
    spec.layers,
    B,
    stack((w) => w.weights, wSizes),
    states,
  );
  model.bnMode = bnMode;
  return model;
}

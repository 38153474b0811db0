// Trained weights as the loss-surface tools read them (a model.safetensors of `loss-atlas train`, whose metadata
// names the architecture), and models whose basis tensors are a checkpoint plus directions: the manifold
// theta + sum_i c_i d_i that interpolate, surface and hessian evaluate in batched blocks of points.
import { platform } from '../platform/index.ts';
import type { Gpu } from '../engine/device.ts';
import { readSafetensors, type NamedTensor } from '../data/formats.ts';
import { Model } from './model.ts';
import { type ModelDef, paramShapes, stateShapes } from './graph.ts';
import type { BnMode, ParamSpec, StateSpec } from './layers.ts';
import { MODEL_NAMES, modelSpec, type ModelSpec } from './zoo.ts';
import { isOnnxPath } from './onnx.ts';
import { matchWeights, weightsGiven } from './weights.ts';

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

/** The images of the data sets: the inputs a checkpoint can have been trained on. */
const INPUTS: [number, number, number][] = [
  [1, 28, 28],
  [3, 32, 32],
];

/** A model as messages name it: `tiny + BN on [1,28,28] inputs`. */
export function modelName(model: string, o: { bn?: boolean; skip?: boolean; width?: number; input: number[] }): string {
  const width = o.width !== undefined && o.width !== 1 ? ` (width ${o.width})` : '';
  return `${model}${o.bn ? ' + BN' : ''}${o.skip ? ' with skips' : ''}${width} on [${o.input}] inputs`;
}

/**
 * Which zoo models a file's tensors are of: `fits` is asked about each model (with and without BN and skips, on each
 * data set's images). Their names (at most three), or null when none fits.
 */
export function identifyModel(fits: (params: ParamSpec[], states: StateSpec[]) => boolean, width = 1): string | null {
  const found: string[] = [],
    seen = new Set<string>();
  for (const model of MODEL_NAMES)
    for (const input of INPUTS)
      for (const bn of [false, true])
        for (const skip of [false, true]) {
          const w = model.startsWith('resnet') ? width : 1;
          let layers: ModelSpec['layers'];
          try {
            layers = modelSpec(model, { bn, skip, input, width: w }).layers;
          } catch {
            continue;
          }
          const params = paramShapes(layers),
            states = stateShapes(layers);
          const key = `${model} ${JSON.stringify([params, states])}`;
          if (seen.has(key) || !fits(params, states)) continue;
          seen.add(key);
          found.push(modelName(model, { bn, skip, width: w, input }));
        }
  return found.length ? found.slice(0, 3).join(' or ') : null;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
/** A tensor's shape fits a parameter's: the same, or flattened. */
const fitsShape = (has: number[], want: number[]) =>
  has.join() === want.join() || (has.length === 1 && has[0] === numel(want));

/** An ONNX file as a checkpoint: its graph, its initializers as the weights, its BN running statistics. */
function onnxCheckpoint(path: string, input: [number, number, number]): Checkpoint {
  const spec = modelSpec(path, { input });
  const st = spec.weights?.states ?? [];
  return {
    path,
    // as train's checkpoints name the graph they were trained from: the same model wherever the path is relative to
    model: platform().resolvePath(path),
    bn: false,
    skip: false,
    width: 1,
    dropout: 0,
    names: paramShapes(spec.layers).map((s) => s.name),
    weights: spec.weights?.params ?? [],
    states: st.length ? st : null,
  };
}

/**
 * Reads a model.safetensors written by `loss-atlas train` (its metadata names the architecture), or an ONNX file
 * (FILE.onnx: its initializers are the weights).
 */
export function readCheckpoint(path: string, input: [number, number, number]): Checkpoint {
  if (isOnnxPath(path)) return onnxCheckpoint(path, input);
  if (weightsGiven())
    throw new Error(`--weights ${weightsGiven()}: ${path} holds its own weights (--weights goes with an ONNX graph)`);
  const { tensors, metadata } = readSafetensors(path, 'a checkpoint (a model.safetensors written by loss-atlas train)');
  const model = metadata.model;
  if (!model) throw new Error(`${path}: no model name in the metadata (write it with loss-atlas train)`);
  const bn = metadata.bn === 'true',
    skip = metadata.skip === 'true',
    width = Number(metadata.width ?? 1),
    dropout = Number(metadata.dropout ?? 0);
  let spec: ModelSpec;
  try {
    spec = modelSpec(model, { bn, skip, input, width, dropout });
  } catch (e) {
    throw new Error(`${path}: its metadata names a model loss-atlas cannot build: ${(e as Error).message}`);
  }
  const shapes = paramShapes(spec.layers);
  const st = stateShapes(spec.layers);
  // what the file holds, by its tensors' names and shapes, and what this run expects
  const why = () => {
    const held = identifyModel(
      (ps, ss) =>
        ps.every((p) => tensors[p.name] && fitsShape(tensors[p.name].shape, p.shape)) &&
        Object.keys(tensors).every((k) => ps.some((p) => p.name === k) || ss.some((s) => s.name === k)),
      width,
    );
    return (
      `: by its tensors the file holds ${held ?? 'no model of the zoo'} (its metadata says ${model}),` +
      ` this run expects ${modelName(model, { bn, skip, width, input })}`
    );
  };
  const read = (s: { name: string; shape: number[] }) => {
    const t = tensors[s.name];
    if (!t) throw new Error(`${path}: tensor ${s.name} of model ${model} missing${why()}`);
    if (!fitsShape(t.shape, s.shape))
      throw new Error(
        `${path}: tensor ${s.name} has ${t.data.length} values [${t.shape}], [${s.shape}] expected${why()}`,
      );
    return t.data;
  };
  const states = st.length && st.every((s) => tensors[s.name]) ? st.map(read) : null;
  return { path, model, bn, skip, width, dropout, names: shapes.map((s) => s.name), weights: shapes.map(read), states };
}

/**
 * Checks that the flattened tensors PREFIX0, PREFIX1, ... (one per parameter) are of the model of `layers`
 * (`expects` names it); else the error names the file, the model their sizes are of and the one expected.
 */
export function checkParamSizes(
  path: string,
  tensors: Record<string, NamedTensor>,
  prefix: string,
  layers: ModelDef,
  expects: string,
): void {
  const sizes = Object.keys(tensors)
    .filter((k) => k.startsWith(prefix))
    .map((_, i) => tensors[`${prefix}${i}`]?.data.length ?? 0);
  const want = paramShapes(layers).map((p) => numel(p.shape));
  if (sizes.length === want.length && sizes.every((n, i) => n === want[i])) return;
  const held = identifyModel((ps) => ps.length === sizes.length && ps.every((p, i) => numel(p.shape) === sizes[i]));
  const total = (ns: number[]) => `${ns.length} tensors, ${ns.reduce((a, b) => a + b, 0)} parameters`;
  throw new Error(
    `${path}: a checkpoint of ${held ?? 'no model of the zoo'} (${total(sizes)}),` +
      ` this run expects ${expects} (${total(want)})`,
  );
}

/** Checks that a file holds exactly the tensors `want` names, each with the number of values it gives. */
export function checkTensorSizes(path: string, tensors: Record<string, NamedTensor>, want: [string, number][]): void {
  for (const [name, n] of want)
    if (tensors[name]?.data.length !== n)
      throw new Error(`${path}: tensor ${name}: ${n} values expected, found ${tensors[name]?.data.length ?? 'none'}`);
  const names = new Set(want.map(([name]) => name));
  const extra = Object.keys(tensors).filter((k) => !names.has(k));
  if (extra.length) throw new Error(`${path}: unexpected tensors ${extra.slice(0, 5).join(', ')}`);
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

/** Loads weights by name (matchWeights) into a fresh B = 1 model. */
export function loadModel(gpu: Gpu, layers: ModelDef, path: string): Model {
  const w = matchWeights(path, layers);
  return new Model(gpu, layers, 1, w.params, w.states ?? undefined);
}

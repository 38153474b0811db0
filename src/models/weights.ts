// Weights by name: a model.safetensors of loss-atlas or a PyTorch state_dict saved with safetensors, matched onto a
// model's parameters and BN running statistics; and the global --weights, which gives every command's model (an
// ONNX graph's initializers, a zoo model's starting point) the weights of such a file.
import { readSafetensors } from '../data/formats.ts';
import { type ModelDef, paramShapes, stateShapes } from './graph.ts';

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
/** A tensor's shape fits a parameter's: the same, or flattened. */
const fitsShape = (has: number[], want: number[]) =>
  has.join() === want.join() || (has.length === 1 && has[0] === numel(want));

let weightsFile: string | null = null;

/** The --weights of this command line: a state_dict the model of the command starts from. */
export function setWeightsFile(f: string | undefined): void {
  weightsFile = f ?? null;
}

export const weightsGiven = (): string | null => weightsFile;

/** The --weights file matched onto a model (null when none was given). */
export function givenWeights(
  layers: ModelDef,
  expects: string,
): { params: Float32Array[]; states: Float32Array[] | null } | null {
  return weightsFile ? matchWeights(weightsFile, layers, expects) : null;
}

/**
 * Weights by name (a model.safetensors of loss-atlas, or a PyTorch state_dict saved with safetensors) for a model's
 * parameters and BN running statistics. One error lists every missing and unexpected name and every shape that
 * differs (PyTorch's num_batches_tracked counters are ignored). Statistics absent from the file: null.
 */
export function matchWeights(
  path: string,
  layers: ModelDef,
  expects = 'the model',
): { params: Float32Array[]; states: Float32Array[] | null } {
  const { tensors } = readSafetensors(path, 'weights (a safetensors file of named tensors)');
  const ps = paramShapes(layers),
    ss = stateShapes(layers);
  const hasStates = ss.some((s) => tensors[s.name]);
  const want = [...ps, ...(hasStates ? ss : [])];
  const names = new Set([...ps, ...ss].map((s) => s.name));
  const missing = want.filter((s) => !tensors[s.name]).map((s) => s.name);
  const unexpected = Object.keys(tensors).filter((k) => !names.has(k) && !k.endsWith('num_batches_tracked'));
  const shapes = want
    .filter((s) => tensors[s.name] && !fitsShape(tensors[s.name].shape, s.shape))
    .map((s) => `${s.name} [${tensors[s.name].shape.join(', ')}] where ${expects} has [${s.shape.join(', ')}]`);
  if (missing.length || unexpected.length || shapes.length) {
    const list = (what: string, l: string[]) =>
      l.length ? [`${what} (${l.length}): ${l.slice(0, 12).join(', ')}${l.length > 12 ? ', ...' : ''}`] : [];
    throw new Error(
      [
        `${path}: the tensors do not match ${expects}`,
        ...list('missing', missing),
        ...list('unexpected', unexpected),
        ...list('shapes differ', shapes),
      ].join('\n  '),
    );
  }
  if (!hasStates && ss.length)
    console.warn(`${path}: no batch-norm running statistics in the file: starting them at mean 0, variance 1`);
  return {
    params: ps.map((s) => tensors[s.name].data),
    states: hasStates ? ss.map((s) => tensors[s.name].data) : null,
  };
}

// The named models: the MPO reference's conv nets (parameter counts as the reference's) and a small CPU-sized net.
import { convNet, paramShapes, type Layer } from './sequential.ts';
import { numel } from '../engine/tensor.ts';

export interface ModelSpec {
  layers: Layer[];
  /** Input [C, H, W]. */
  input: [number, number, number];
  description: string;
}

export const MODEL_NAMES = ['tiny', 'small', 'icons', 'squares', 'cifar'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

/**
 * bn: batch norm in every conv block (the reference's gamma = weight + 1 form); skip: residual blocks where
 * channels repeat; input: the data's [C, H, W] for the size-agnostic nets (tiny, small).
 */
export function modelSpec(name: string, o: { bn?: boolean; skip?: boolean; input?: [number, number, number] } = {}): ModelSpec {
  const bn = !!o.bn, reparam = true;
  const input = o.input ?? [1, 28, 28];
  switch (name) {
    case 'tiny':
      return { layers: convNet({ channels: [input[0], 4], dense: [8], maxpool: true, bn, reparam, pool: [2, 2] }), input, description: `conv ${input[0]}-4 + max-pool, adaptive pool 2x2, dense 16-8-10 (for tests)` };
    case 'small':
      return { layers: convNet({ channels: [input[0], 8, 16], dense: [32], maxpool: true, bn, reparam }), input, description: `conv ${input[0]}-8-16 + max-pool, adaptive pool 4x4, dense 256-32-10` };
    case 'icons':
      return { layers: convNet({ channels: [1, 8, 32, 64], dense: [128], maxpool: true, bn, reparam }), input: [1, 28, 28], description: 'the reference icon net: conv 1-8-32-64 + max-pool, adaptive pool 4x4, dense 1024-128-10' };
    case 'squares':
      return { layers: convNet({ channels: [1, 8, 8, 32, 32, 64, 64], dense: [128], maxpool: false, bn, reparam, skip: o.skip }), input: [1, 28, 28], description: `the reference random-squares net: conv 1-8-8-32-32-64-64, no max-pool${o.skip ? ', residual blocks' : ''}, adaptive pool 4x4, dense 1024-128-10` };
    case 'cifar':
      return { layers: convNet({ channels: [3, 16, 32, 64], dense: [128], maxpool: false, bn, reparam }), input: [3, 32, 32], description: 'the reference CIFAR net: conv 3-16-32-64, no max-pool, adaptive pool 4x4, dense 1024-128-10' };
    default:
      throw new Error(`--model "${name}": one of ${MODEL_NAMES.join(', ')} expected`);
  }
}

export function parameterCount(layers: Layer[]): number {
  return paramShapes(layers).reduce((a, p) => a + numel(p.shape), 0);
}

// The flags that interpolate, surface and hessian share: the checkpoints, and the directions (their normalization,
// the saved directions of an earlier run).
import { existsSync } from 'node:fs';
import { readSafetensors } from '../data/formats.ts';
import { checkpointSpec, type Checkpoint, type WeightSet } from '../models/checkpoint.ts';
import { DIR_NORMS, readDirections } from '../landscape/directions.ts';
import type { OptionTable, OptionValues } from '../options/index.ts';

/** The direction flags of interpolate, surface and hessian; `images`: the default of --images. */
export const directionOptions = (images: number) =>
  ({
    norm: { type: 'enum', choices: DIR_NORMS, default: 'filter', help: 'normalization of a random direction' },
    ignore: { type: 'enum', choices: ['biasbn'], help: 'zero the direction on biases and BN parameters' },
    'dir-type': {
      type: 'enum',
      choices: ['weights', 'states'],
      default: 'weights',
      help: 'states also moves the BN running statistics along the directions',
    },
    'bn-stats': {
      type: 'enum',
      choices: ['running', 'batch'],
      default: 'running',
      help: "BN with the checkpoint's running statistics (eval mode), or each point's batch statistics",
    },
    images: { type: 'count', default: images, help: 'images per split' },
    'dir-file': {
      type: 'string',
      placeholder: 'FILE',
      help: 'reuse the directions saved by an earlier run (directions.safetensors / direction.safetensors)',
    },
  }) as const satisfies OptionTable;

/** --model-file and the targets of the two directions, for surface and hessian. */
export const checkpointOptions = {
  'model-file': {
    type: 'string',
    placeholder: 'FILE',
    required: true,
    help: 'the checkpoint: a model.safetensors of loss-atlas train, or an ONNX file (its initializers)',
  },
  'model-file2': { type: 'string', placeholder: 'FILE', help: 'target of the first direction: d1 = B - A' },
  'model-file3': { type: 'string', placeholder: 'FILE', help: 'target of the second direction: d2 = C - A' },
} as const;

/** --dir-file F: directions saved by an earlier run (surface/hessian: x/ and y/ tensors; interpolate: none or x/). */
export function dirFile(
  f: string | undefined,
  a: Checkpoint,
  input: [number, number, number],
  prefixes: string[],
): WeightSet[] | undefined {
  if (f === undefined) return undefined;
  if (!existsSync(f)) throw new Error(`--dir-file: ${f}: no such file`);
  const layers = checkpointSpec(a, input).layers;
  if (prefixes.length === 1 && prefixes[0] === '') {
    // interpolate: its own direction file has no prefix; a surface's x/ direction works too
    const t = readSafetensors(f).tensors;
    return readDirections(f, layers, [Object.keys(t).some((k) => k.startsWith('x/')) ? 'x/' : '']);
  }
  return readDirections(f, layers, prefixes);
}

/** The direction settings of interpolate, surface and hessian from their parsed flags. */
type DirectionFlags = OptionValues<ReturnType<typeof directionOptions>>;
export const directionSettings = (o: DirectionFlags) => ({
  norm: o.norm,
  ignoreBiasBn: o.ignore === 'biasbn',
  images: o.images,
  dirType: o.dirType,
  bnStats: o.bnStats,
});

// An MPO plane as a file (plane.safetensors, written by `loss-atlas mpo` and by the web page): origin/NAME, right/NAME
// and up/NAME per parameter tensor, the scale, and metadata naming the model, batch norm, the mask and its grid.
// Read back as a model of B = 3 basis tensors, so that its grid evaluates wherever the plane was made.
import { parseSafetensors, type NamedTensor } from '../data/formats.ts';
import type { Gpu } from '../engine/device.ts';
import { paramShapes } from '../models/graph.ts';
import { Model } from '../models/model.ts';
import { type ModelSpec, modelSpec } from '../models/zoo.ts';
import type { Mask } from './masks.ts';

export interface PlaneFile {
  model: string;
  bn: boolean;
  /** the mask's spec (an icon name, random:..., a file) as it was given */
  maskName: string;
  H: number;
  W: number;
  /** the mask's cells (row-major, 1 = white) when the file holds them */
  cells: Uint8Array | null;
  scale: number;
  tensors: Record<string, NamedTensor>;
  metadata: Record<string, string>;
}

/** The metadata a plane file carries beside its tensors. */
export function planeMetadata(model: string, bn: boolean, mask: Mask, extra: Record<string, string> = {}) {
  return {
    model,
    bn: String(bn),
    mask: mask.name,
    grid: `${mask.H}x${mask.W}`,
    mask_cells: Array.from(mask.data).join(''),
    cell: 'origin + scale * ((j - W//2) * right + (i - H//2) * up)',
    ...extra,
  };
}

/** A plane file's bytes; errors name `path`. */
export function parsePlane(bytes: Uint8Array, path: string): PlaneFile {
  const { tensors, metadata } = parseSafetensors(bytes, path, 'an MPO plane (plane.safetensors)');
  const bad = (why: string) => new Error(`${path}: ${why} (an MPO plane: plane.safetensors of loss-atlas mpo)`);
  if (!metadata.model) throw bad('no model in the metadata');
  const g = /^(\d+)x(\d+)$/.exec(metadata.grid ?? '');
  if (!g) throw bad(`grid ${JSON.stringify(metadata.grid)} in the metadata: HxW expected`);
  const [H, W] = [Number(g[1]), Number(g[2])];
  if (tensors.scale?.data.length !== 1) throw bad('no scale tensor');
  const c = metadata.mask_cells;
  if (c !== undefined && (c.length !== H * W || /[^01]/.test(c))) throw bad(`mask_cells: ${H * W} of 0 and 1 expected`);
  return {
    model: metadata.model,
    bn: metadata.bn === 'true',
    maskName: metadata.mask ?? 'unknown',
    H,
    W,
    cells: c === undefined ? null : Uint8Array.from(c, (ch) => Number(ch)),
    scale: tensors.scale.data[0],
    tensors,
    metadata,
  };
}

/** The plane as a model of B = 3 basis tensors (origin, right, up) of the architecture its metadata names. */
export function planeModel(gpu: Gpu, p: PlaneFile, path: string, input: [number, number, number]) {
  const spec: ModelSpec = modelSpec(p.model, { bn: p.bn, input });
  const init = paramShapes(spec.layers).map((s) => {
    const size = s.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(3 * size);
    ['origin', 'right', 'up'].forEach((part, b) => {
      const t = p.tensors[`${part}/${s.name}`];
      if (!t) throw new Error(`${path}: tensor ${part}/${s.name} of model ${p.model} missing`);
      if (t.data.length !== size)
        throw new Error(`${path}: tensor ${part}/${s.name} has ${t.data.length} values, ${size} expected`);
      out.set(t.data, b * size);
    });
    return out;
  });
  return { spec, model: new Model(gpu, spec.layers, 3, init) };
}

// The datasets: both splits, read from a directory (Fashion-MNIST's IDX files, CIFAR-10's binary batches, an image
// folder with train/ and test/) or from .npy arrays (npy:X.npy,y.npy,...), with the --normalize of the command
// line applied in place of the data set's own normalization.
import { loadFashionMnist } from './fashion-mnist.ts';
import type { Dataset } from './dataset.ts';
import { CIFAR_MEAN, CIFAR_STD, loadCifar10 } from './cifar10.ts';
import { isImageFolder, isNpySpec, loadImageFolder, loadNpySplits, normalizeImages, parseNormalize } from './own.ts';

export type DatasetName = 'fashion-mnist' | 'cifar10';

let normalize: number[] | null = null;

/** The --normalize of this command line (per-channel means and stds), for every data set loaded after it. */
export function setNormalize(v: number[] | undefined): void {
  normalize = v ?? null;
}

/** What a --data value is, in words (for messages and configs). */
export function dataKind(name: DatasetName, dir: string): string {
  return isNpySpec(dir) ? 'npy arrays' : isImageFolder(dir) ? 'an image folder' : name;
}

/**
 * Both splits of the data `dir` names: npy:..., an image folder (resized to `shape` when given), or the directory of
 * the data set `name`.
 */
export async function loadSplits(
  name: DatasetName,
  dir: string,
  o: { shape?: [number, number, number] } = {},
): Promise<{ train: Dataset; test: Dataset }> {
  let d: { train: Dataset; test: Dataset };
  // the normalization the loader applied (undone when --normalize replaces it)
  let own: { mean: number[]; std: number[] } | null = null;
  if (isNpySpec(dir)) d = loadNpySplits(dir);
  else if (isImageFolder(dir)) d = await loadImageFolder(dir, o.shape);
  else if (name === 'cifar10') {
    d = { train: loadCifar10(dir, 'train'), test: loadCifar10(dir, 'test') };
    own = { mean: CIFAR_MEAN, std: CIFAR_STD };
  } else d = { train: loadFashionMnist(dir, 'train'), test: loadFashionMnist(dir, 't10k') };
  if (normalize) {
    const C = d.train.shape[0];
    const n = parseNormalize(normalize, C);
    // x = (x01 - m0) / s0 -> (x01 - m) / s  is  x * (s0 / s) + (m0 - m) / s; m0 = 0, s0 = 1 without own
    const m0 = own?.mean ?? Array(C).fill(0),
      s0 = own?.std ?? Array(C).fill(1);
    const combined = { mean: n.mean.map((m, c) => (m - m0[c]) / s0[c]), std: n.std.map((s, c) => s / s0[c]) };
    normalizeImages(d.train, combined);
    if (d.test !== d.train) normalizeImages(d.test, combined);
  }
  return d;
}

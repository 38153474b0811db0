// Fashion-MNIST from Debian's dataset-fashion-mnist (gzip IDX; unpacked IDX files without .gz are read too).
// Pixels scaled to [0, 1] (ToTensor, as the MPO reference).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readIdx, DataError } from './idx.ts';
import type { Dataset } from './dataset.ts';
export const DEFAULT_FASHION_MNIST = '/usr/share/datasets/fashion-mnist';

export function fashionMnistDir(flag?: string | boolean): string {
  if (typeof flag === 'string') return flag;
  return process.env.LOSS_ATLAS_FASHION_MNIST ?? DEFAULT_FASHION_MNIST;
}

/** DIR/NAME.gz, or DIR/NAME where only the unpacked file is there (errors then name the .gz). */
function idxFile(dir: string, name: string): string {
  const gz = join(dir, `${name}.gz`),
    raw = join(dir, name);
  return !existsSync(gz) && existsSync(raw) ? raw : gz;
}

export function loadFashionMnist(dir: string, split: 'train' | 't10k', limit?: number): Dataset {
  const imgPath = idxFile(dir, `${split}-images-idx3-ubyte`),
    labPath = idxFile(dir, `${split}-labels-idx1-ubyte`);
  const img = readIdx(imgPath, 3);
  const lab = readIdx(labPath, 1);
  const [n, h, w] = img.dims;
  if (h !== 28 || w !== 28) throw new DataError(`${imgPath}: 28x28 images expected, found ${h}x${w}`);
  if (n === 0) throw new DataError(`${imgPath}: no images (dims [0, 28, 28]); at least one image expected`);
  if (lab.dims[0] !== n) throw new DataError(`${labPath}: ${n} labels expected (one per image), found ${lab.dims[0]}`);
  const m = Math.min(n, limit ?? n);
  const images = new Float32Array(m * 784);
  for (let i = 0; i < m * 784; i++) images[i] = img.data[i] / 255;
  const labels = new Uint32Array(m);
  for (let i = 0; i < m; i++) {
    if (lab.data[i] > 9) throw new DataError(`${labPath}: label ${lab.data[i]} at ${i}, expected 0..9`);
    labels[i] = lab.data[i];
  }
  return { images, labels, n: m, shape: [1, 28, 28], classes: 10 };
}

// The datasets by name: both splits, read from a directory.
import { loadFashionMnist } from './fashion-mnist.ts';
import type { Dataset } from './dataset.ts';
import { loadCifar10 } from './cifar10.ts';

export type DatasetName = 'fashion-mnist' | 'cifar10';

export function loadSplits(name: DatasetName, dir: string): { train: Dataset; test: Dataset } {
  if (name === 'cifar10') return { train: loadCifar10(dir, 'train'), test: loadCifar10(dir, 'test') };
  return { train: loadFashionMnist(dir, 'train'), test: loadFashionMnist(dir, 't10k') };
}

// The MPO presets: the settings of `mpo --preset NAME` (and of the web page's playground, which takes the quick one).
import type { MpoConfig } from './mpo.ts';

/** A preset: every setting of a run but its data directory and experiment name. */
export type MpoPreset = Omit<MpoConfig, 'data' | 'experiment'>;

/** The reference's Fashion-MNIST icon settings (icons-mask-hpo.yml at HEAD). */
const FASHION_PATTERN: MpoPreset = {
  dataset: 'fashion-mnist',
  model: 'icons',
  bn: false,
  skip: false,
  mask: 'heart',
  grid: 50,
  steps: 11_800,
  batch: 512,
  lr: 2.5e-4,
  cellsPerStep: 50,
  negCoef: 1,
  clamp: 2.5,
  clipNorm: 100,
  seed: 42,
  evalImages: 1000,
  pad: 5,
  warmupEpochs: 30,
  trainImages: 0,
  checkpointEvery: 500,
  logEvery: 50,
};

export const PRESETS: Record<string, MpoPreset> = {
  /** Sized for a 2-core CPU with no GPU (lavapipe): a 12x12 heart on the 9.8k-parameter net, about 4 minutes there. */
  quick: {
    dataset: 'fashion-mnist',
    model: 'small',
    bn: false,
    skip: false,
    mask: 'heart',
    grid: 12,
    steps: 700,
    batch: 16,
    lr: 1e-3,
    cellsPerStep: 8,
    negCoef: 1,
    clamp: 2.5,
    clipNorm: 100,
    seed: 42,
    evalImages: 250,
    pad: 3,
    warmupEpochs: 0,
    trainImages: 0,
    checkpointEvery: 50,
    logEvery: 10,
  },
  'fashion-pattern': FASHION_PATTERN,
  /** The reference's CIFAR-10 settings: the Fashion-MNIST ones on the cifar net, batch 256, 100 epochs, warm-up 50. */
  'cifar-pattern': {
    ...FASHION_PATTERN,
    dataset: 'cifar10',
    model: 'cifar',
    steps: 19_600,
    batch: 256,
    warmupEpochs: 50,
  },
};

// `loss-atlas train`: ordinary training (K = 1, B = 1) of the project's models, for the loss-surface toolkit:
// SGD with momentum / Nesterov, weight decay and a step schedule, seeded; per-epoch evaluation, atomic
// checkpoints with --resume, optional per-epoch snapshots (for trajectories), and the final weights as
// model.safetensors (one tensor per parameter, named as the model's parameters).
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { Manifold } from '../engine/manifold.ts';
import { crossEntropy } from '../engine/ops/loss.ts';
import { SGD } from '../engine/optim.ts';
import { Tape } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import { permutation, rng } from '../engine/random.ts';
import { batchOf, type Dataset } from '../data/dataset.ts';
import { atomicWrite, readSafetensors, safetensorsBytes, type NamedTensor } from '../data/formats.ts';
import { Model } from '../models/model.ts';
import { parameterCount } from '../models/graph.ts';
import { loadModel } from '../models/checkpoint.ts';
import {
  MODEL_HELP,
  checkClasses,
  colourModel,
  initialWeights,
  modelCheck,
  modelId,
  modelSpec,
} from '../models/zoo.ts';
import { defineCommand, optionsOf, type OptionInput } from '../options/index.ts';
import { evaluatePoints } from '../models/run.ts';
import { writeRunConfig, makeRunDir } from '../run/run-info.ts';
import { Interrupted, resumeWith } from '../run/interrupted.ts';

export interface TrainConfig {
  model: string;
  bn: boolean;
  skip: boolean;
  /** Channel multiplier of the ResNets (1 for the other models). */
  width: number;
  /** Dropout probability of the models that have a dropout layer (simplecnn). */
  dropout: number;
  /** Start from these weights (a model.safetensors) instead of a fresh initialization. */
  init: string | null;
  /** Save a snapshot every this many steps as well (0: only per epoch with --snapshots). */
  snapshotSteps: number;
  dataset: 'fashion-mnist' | 'cifar10';
  data: string;
  epochs: number;
  batch: number;
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  /** Epochs after which the learning rate is multiplied by `gamma`. */
  milestones: number[];
  gamma: number;
  seed: number;
  /** Test images evaluated after each epoch (0 = all). */
  evalImages: number;
  /** Save the weights after every epoch as snapshots/epoch-<n>.safetensors. */
  snapshots: boolean;
  /** Training images used (0 = all). */
  trainImages: number;
}

export interface TrainResult {
  train_loss: number;
  train_acc: number;
  test_loss: number;
  test_acc: number;
  epochs: number;
  seconds: number;
}

/** The learning rate of an epoch (0-based) under the step schedule. */
export const lrAt = (c: TrainConfig, epoch: number) => c.lr * c.gamma ** c.milestones.filter((m) => epoch >= m).length;

/** Parameters and BN running statistics (PyTorch's state_dict names), one tensor each. */
async function weightsOf(model: Model): Promise<Record<string, NamedTensor>> {
  const t: Record<string, NamedTensor> = {};
  for (const p of [...model.params, ...model.states]) t[p.name] = { shape: [...p.shape], data: await p.basis.read() };
  return t;
}

export async function runTrain(
  gpu: Gpu,
  cfg: TrainConfig,
  data: { train: Dataset; test: Dataset },
  out: string,
  resume: boolean,
  hooks: { log?: (m: string) => void; shouldStop?: () => boolean } = {},
): Promise<TrainResult> {
  const log = hooks.log ?? (() => {});
  makeRunDir(out);
  const spec = modelSpec(cfg.model, {
    bn: cfg.bn,
    skip: cfg.skip,
    input: data.train.shape,
    width: cfg.width,
    dropout: cfg.dropout,
  });
  checkClasses(spec, cfg.model, data.train);
  const train: Dataset =
    cfg.trainImages > 0 && cfg.trainImages < data.train.n ? { ...data.train, n: cfg.trainImages } : data.train;
  const ckDir = join(out, 'checkpoint');
  let epoch0 = 0,
    seconds0 = 0;
  let model: Model;
  if (resume && existsSync(join(ckDir, 'state.json'))) {
    const st = JSON.parse(readFileSync(join(ckDir, 'state.json'), 'utf8')) as { epoch: number; seconds: number };
    epoch0 = st.epoch;
    seconds0 = st.seconds;
    model = loadModel(gpu, spec.layers, join(ckDir, 'model.safetensors'));
  } else {
    if (!resume) {
      writeRunConfig(out, 'train', { ...cfg, parameters: parameterCount(spec.layers) }, gpu);
      writeFileSync(join(out, 'log.jsonl'), '');
    }
    model = cfg.init
      ? loadModel(gpu, spec.layers, cfg.init)
      : new Model(gpu, spec.layers, 1, initialWeights(spec, cfg.seed), spec.weights?.states);
  }
  const opt = new SGD(gpu, model.params, {
    lr: lrAt(cfg, epoch0),
    momentum: cfg.momentum,
    nesterov: cfg.nesterov,
    weightDecay: cfg.weightDecay,
  });
  if (epoch0 > 0) {
    const { tensors } = readSafetensors(join(ckDir, 'momentum.safetensors'));
    for (const p of model.params) opt.stateOf(p)[0].write(tensors[p.name].data);
    const lines = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l && JSON.parse(l).epoch <= epoch0);
    writeFileSync(join(out, 'log.jsonl'), lines.map((l) => `${l}\n`).join(''));
    log(`resuming ${out} after epoch ${epoch0}`);
  }
  const manifold = Manifold.single(gpu);
  let step = epoch0 * Math.ceil(train.n / cfg.batch);
  const testPick = Array.from(permutation(data.test.n, rng(cfg.seed + 7))).slice(
    0,
    cfg.evalImages > 0 ? cfg.evalImages : data.test.n,
  );
  const evalTest = async () => {
    model.bnMode = 'running'; // PyTorch's eval(): batch norm with the running statistics, no dropout
    model.dropoutActive = false;
    let loss = 0,
      acc = 0;
    for (let i = 0; i < testPick.length; i += 500) {
      const idx = testPick.slice(i, i + 500);
      const { x, y } = batchOf(data.test, idx);
      const xt = Tensor.fromArray(gpu, [idx.length, ...data.test.shape], x, 'test.x'),
        yt = Tensor.fromArray(gpu, [idx.length], y, 'test.y', 'u32');
      const r = await evaluatePoints(gpu, model, Float32Array.of(1), xt, yt);
      xt.dispose();
      yt.dispose();
      loss += (r.loss[0] * idx.length) / testPick.length;
      acc += (r.acc[0] * idx.length) / testPick.length;
    }
    return { loss, acc };
  };
  const t0 = performance.now() - seconds0 * 1000;
  let last: TrainResult | null = null;
  try {
    for (let epoch = epoch0; epoch < cfg.epochs; epoch++) {
      opt.o.lr = lrAt(cfg, epoch);
      const perm = permutation(train.n, rng(cfg.seed * 7919 + epoch));
      let sl = 0,
        sa = 0,
        n = 0;
      model.bnMode = 'update'; // batch statistics, running statistics updated (PyTorch's train())
      model.dropoutActive = true;
      for (let b = 0; b < train.n; b += cfg.batch) {
        const idx = perm.subarray(b, Math.min(train.n, b + cfg.batch));
        const { x, y } = batchOf(train, idx);
        const xt = Tensor.fromArray(gpu, [idx.length, ...train.shape], x, 'x'),
          yt = Tensor.fromArray(gpu, [idx.length], y, 'y', 'u32');
        const tape = new Tape(gpu, manifold);
        const o = crossEntropy(
          { gpu, manifold, tape },
          model.forward({ gpu, manifold, tape }, xt, cfg.seed * 1_000_003 + epoch * 100_003 + b),
          yt,
        );
        tape.backward([1]);
        opt.step();
        const r = await o.read();
        if (!Number.isFinite(r.loss[0]))
          throw new Error(
            `training diverged at step ${step + 1} (epoch ${epoch + 1}): the loss is ${r.loss[0]}; try a lower --lr` +
              ` than ${cfg.lr}` +
              (epoch > 0
                ? `; the checkpoint of epoch ${epoch} in ${ckDir} is kept: continue with loss-atlas train` +
                  ` --resume ${out} --lr LOWER`
                : '; no checkpoint was saved'),
          );
        sl += r.loss[0] * idx.length;
        sa += r.acc[0] * idx.length;
        n += idx.length;
        step++;
        if (cfg.snapshotSteps > 0 && step % cfg.snapshotSteps === 0) {
          mkdirSync(join(out, 'snapshots'), { recursive: true });
          atomicWrite(
            join(out, 'snapshots', `step-${step}.safetensors`),
            safetensorsBytes(await weightsOf(model), {
              step: String(step),
              model: cfg.model,
              bn: String(cfg.bn),
              skip: String(cfg.skip),
              width: String(cfg.width),
              dropout: String(cfg.dropout),
            }),
          );
        }
        tape.dispose();
        xt.dispose();
        yt.dispose();
      }
      const te = await evalTest();
      const seconds = (performance.now() - t0) / 1000;
      last = {
        train_loss: sl / n,
        train_acc: sa / n,
        test_loss: te.loss,
        test_acc: te.acc,
        epochs: epoch + 1,
        seconds: +seconds.toFixed(2),
      };
      appendFileSync(join(out, 'log.jsonl'), `${JSON.stringify({ epoch: epoch + 1, lr: opt.o.lr, ...last })}\n`);
      log(
        `epoch ${epoch + 1}/${cfg.epochs}  lr ${opt.o.lr.toPrecision(3)}` +
          `  train loss ${last.train_loss.toFixed(4)} acc ${(last.train_acc * 100).toFixed(1)}%` +
          `  test loss ${te.loss.toFixed(4)} acc ${(te.acc * 100).toFixed(1)}%  ${seconds.toFixed(0)} s`,
      );
      const w = await weightsOf(model);
      if (cfg.snapshots) {
        mkdirSync(join(out, 'snapshots'), { recursive: true });
        atomicWrite(
          join(out, 'snapshots', `epoch-${epoch + 1}.safetensors`),
          safetensorsBytes(w, {
            epoch: String(epoch + 1),
            model: cfg.model,
            bn: String(cfg.bn),
            skip: String(cfg.skip),
            width: String(cfg.width),
            dropout: String(cfg.dropout),
          }),
        );
      }
      const mom: Record<string, NamedTensor> = {};
      for (const p of model.params) mom[p.name] = { shape: [...p.shape], data: await opt.stateOf(p)[0].read() };
      mkdirSync(ckDir, { recursive: true });
      atomicWrite(join(ckDir, 'model.safetensors'), safetensorsBytes(w));
      atomicWrite(join(ckDir, 'momentum.safetensors'), safetensorsBytes(mom));
      atomicWrite(join(ckDir, 'state.json'), `${JSON.stringify({ epoch: epoch + 1, seconds })}\n`);
      if (hooks.shouldStop?.() && epoch + 1 < cfg.epochs) {
        const msg = `interrupted after epoch ${epoch + 1}; checkpoint saved in ${ckDir}`;
        throw new Interrupted(msg, out, resumeWith('train', out));
      }
    }
    if (!last) {
      const te = await evalTest();
      const lines = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n');
      const prev = JSON.parse(lines[lines.length - 1]);
      last = {
        train_loss: prev.train_loss,
        train_acc: prev.train_acc,
        test_loss: te.loss,
        test_acc: te.acc,
        epochs: cfg.epochs,
        seconds: prev.seconds,
      };
    }
    atomicWrite(
      join(out, 'model.safetensors'),
      safetensorsBytes(await weightsOf(model), {
        model: cfg.model,
        bn: String(cfg.bn),
        skip: String(cfg.skip),
        width: String(cfg.width),
        dropout: String(cfg.dropout),
        epochs: String(cfg.epochs),
      }),
    );
    atomicWrite(join(out, 'metrics.json'), `${JSON.stringify(last, null, 2)}\n`);
    return last;
  } finally {
    opt.dispose();
    model.dispose();
    manifold.dispose();
  }
}

export const TRAIN = defineCommand({
  name: 'train',
  summary: 'ordinary training of a model (SGD, momentum/Nesterov, step schedule), checkpoints and snapshots (--help)',
  description: `\
Ordinary training (one weight vector) of a model, for loss-surface plots. Writes config.json, log.jsonl (one line
per epoch), checkpoint/ (after every epoch, atomically), snapshots/epoch-<n>.safetensors (--snapshots) and, at the
end, model.safetensors and metrics.json ({train_loss, train_acc, test_loss, test_acc, epochs, seconds}).`,
  options: {
    model: {
      type: 'string',
      placeholder: 'NAME',
      default: 'small',
      check: modelCheck,
      help: `${MODEL_HELP}, or FILE.onnx`,
    },
    bn: { type: 'boolean', help: 'batch norm (the ResNets always have BN)' },
    skip: { type: 'boolean', help: 'residual blocks' },
    width: { type: 'number', min: 1 / 16, default: 1, help: 'ResNet channel multiplier (0.25 gives 4-8-16 channels)' },
    dropout: { type: 'number', min: 0, default: 0, placeholder: 'P', help: 'dropout probability (simplecnn)' },
    dataset: {
      type: 'enum',
      choices: ['fashion-mnist', 'cifar10'],
      defaultText: "the model's",
      help: 'the training data',
    },
    data: { type: 'string', placeholder: 'DIR', help: 'dataset directory' },
    epochs: { type: 'integer', min: 1, default: 3, help: 'epochs' },
    batch: { type: 'integer', min: 1, default: 128, help: 'images per step' },
    lr: { type: 'number', min: 0, default: 0.05, help: 'SGD learning rate' },
    momentum: { type: 'number', min: 0, default: 0.9, help: 'SGD momentum' },
    nesterov: { type: 'boolean', negatable: true, default: true, help: 'Nesterov momentum' },
    wd: { type: 'number', min: 0, default: 5e-4, help: 'weight decay' },
    milestones: {
      type: 'list',
      of: 'integer',
      min: 1,
      placeholder: 'E1,E2,...',
      defaultText: 'none',
      help: 'epochs after which the learning rate is multiplied by --gamma',
    },
    gamma: { type: 'number', min: 0, default: 0.1, help: 'learning-rate factor at each milestone' },
    seed: { type: 'integer', min: 0, default: 1, help: 'initialization and batch-order seed' },
    'eval-images': { type: 'count', min: 1, default: 1000, help: 'test images evaluated after each epoch' },
    'train-images': { type: 'integer', min: 0, default: 0, help: 'training images used (0 = all)' },
    snapshots: { type: 'boolean', help: 'save the weights after every epoch as snapshots/epoch-<n>.safetensors' },
    'snapshot-steps': {
      type: 'integer',
      min: 0,
      default: 0,
      help: 'also save snapshots/step-<n>.safetensors every N steps',
    },
    init: {
      type: 'string',
      placeholder: 'FILE',
      help: 'start from these weights by name: a model.safetensors, or a PyTorch state_dict saved with safetensors',
    },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/train-<model>-<time>', help: 'run directory' },
    resume: { type: 'string', placeholder: 'DIR', help: 'continue the run in DIR (settings from DIR/config.json)' },
  },
});
export type TrainOptions = OptionInput<typeof TRAIN.options>;

export function trainConfig(
  input: TrainOptions,
  dirFor: (dataset: TrainConfig['dataset'], dir?: string) => string,
): TrainConfig {
  const o = optionsOf(TRAIN.options, input);
  modelSpec(o.model, { width: o.width, dropout: o.dropout }); // validates the name, the width and the dropout
  if (o.init !== undefined && !existsSync(o.init)) throw new Error(`--init: ${o.init}: no such weights file`);
  const dataset = o.dataset ?? (colourModel(o.model) ? 'cifar10' : 'fashion-mnist');
  return {
    model: modelId(o.model),
    bn: o.bn,
    skip: o.skip,
    width: o.width,
    dropout: o.dropout,
    init: o.init ?? null,
    snapshotSteps: o.snapshotSteps,
    dataset,
    data: dirFor(dataset, o.data),
    epochs: o.epochs,
    batch: o.batch,
    lr: o.lr,
    momentum: o.momentum,
    nesterov: o.nesterov,
    weightDecay: o.wd,
    milestones: o.milestones ?? [],
    gamma: o.gamma,
    seed: o.seed,
    evalImages: o.evalImages,
    trainImages: o.trainImages,
    snapshots: o.snapshots,
  };
}

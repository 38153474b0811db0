// `loss-atlas train`: ordinary training (K = 1, B = 1) of the project's models, for the loss-surface toolkit:
// SGD with momentum / Nesterov, weight decay and a step schedule, seeded; per-epoch evaluation, atomic
// checkpoints with --resume, optional per-epoch snapshots (for trajectories), and the final weights as
// model.safetensors (one tensor per parameter, named as the model's parameters).
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { Manifold } from '../engine/manifold.ts';
import { crossEntropy } from '../engine/ops.ts';
import { SGD } from '../engine/optim.ts';
import { Tape } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import { permutation, rng } from '../engine/random.ts';
import { batchOf, type Dataset } from '../data/fashion-mnist.ts';
import { atomicWrite, readSafetensors, safetensorsBytes, type NamedTensor } from '../data/formats.ts';
import { Sequential } from '../models/sequential.ts';
import { initParams } from '../models/graph.ts';
import { MODEL_HELP, modelSpec } from '../models/zoo.ts';
import { parameterCount } from '../models/graph.ts';
import { evaluatePoints } from '../models/run.ts';

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
async function weightsOf(model: Sequential): Promise<Record<string, NamedTensor>> {
  const t: Record<string, NamedTensor> = {};
  for (const p of [...model.params, ...model.states]) t[p.name] = { shape: [...p.shape], data: await p.basis.read() };
  return t;
}

/** Loads model.safetensors-style weights (one tensor per parameter / running statistic) into a fresh B = 1 model. */
export function loadModel(gpu: Gpu, layers: ReturnType<typeof modelSpec>['layers'], path: string): Sequential {
  const { tensors } = readSafetensors(path);
  const init = initParams(layers, 1, 0);
  const model = new Sequential(gpu, layers, 1, init);
  const noStates = model.states.every((p) => !tensors[p.name]);
  if (noStates && model.states.length) console.warn(`${path}: no batch-norm running statistics in the file (written before loss-atlas kept them): starting them at mean 0, variance 1`);
  for (const p of [...model.params, ...(noStates ? [] : model.states)]) {
    const t = tensors[p.name];
    if (!t) throw new Error(`${path}: no tensor ${p.name} (is it a checkpoint of another model?)`);
    if (t.data.length !== p.size) throw new Error(`${path}: tensor ${p.name} has ${t.data.length} values, the model needs ${p.size}`);
    p.basis.write(t.data);
  }
  return model;
}

export async function runTrain(gpu: Gpu, cfg: TrainConfig, data: { train: Dataset; test: Dataset }, out: string, resume: boolean, hooks: { log?: (m: string) => void; shouldStop?: () => boolean } = {}): Promise<TrainResult> {
  const log = hooks.log ?? (() => {});
  mkdirSync(out, { recursive: true });
  const spec = modelSpec(cfg.model, { bn: cfg.bn, skip: cfg.skip, input: data.train.shape, width: cfg.width, dropout: cfg.dropout });
  const train: Dataset = cfg.trainImages > 0 && cfg.trainImages < data.train.n ? { ...data.train, n: cfg.trainImages } : data.train;
  const ckDir = join(out, 'checkpoint');
  let epoch0 = 0, seconds0 = 0;
  let model: Sequential;
  if (resume && existsSync(join(ckDir, 'state.json'))) {
    const st = JSON.parse(readFileSync(join(ckDir, 'state.json'), 'utf8')) as { epoch: number; seconds: number };
    epoch0 = st.epoch; seconds0 = st.seconds;
    model = loadModel(gpu, spec.layers, join(ckDir, 'model.safetensors'));
  } else {
    if (!resume) {
      atomicWrite(join(out, 'config.json'), JSON.stringify({ ...cfg, adapter: gpu.adapterInfo, parameters: parameterCount(spec.layers), created: new Date().toISOString() }, null, 2) + '\n');
      writeFileSync(join(out, 'log.jsonl'), '');
    }
    model = cfg.init ? loadModel(gpu, spec.layers, cfg.init) : new Sequential(gpu, spec.layers, 1, initParams(spec.layers, 1, cfg.seed));
  }
  const opt = new SGD(gpu, model.params, { lr: lrAt(cfg, epoch0), momentum: cfg.momentum, nesterov: cfg.nesterov, weightDecay: cfg.weightDecay });
  if (epoch0 > 0) {
    const { tensors } = readSafetensors(join(ckDir, 'momentum.safetensors'));
    for (const p of model.params) opt.stateOf(p)[0].write(tensors[p.name].data);
    const lines = readFileSync(join(out, 'log.jsonl'), 'utf8').split('\n').filter((l) => l && JSON.parse(l).epoch <= epoch0);
    writeFileSync(join(out, 'log.jsonl'), lines.map((l) => l + '\n').join(''));
    log(`resuming ${out} after epoch ${epoch0}`);
  }
  const manifold = Manifold.single(gpu);
  let step = epoch0 * Math.ceil(train.n / cfg.batch);
  const testPick = Array.from(permutation(data.test.n, rng(cfg.seed + 7))).slice(0, cfg.evalImages > 0 ? cfg.evalImages : data.test.n);
  const evalTest = async () => {
    model.bnMode = 'running'; // PyTorch's eval(): batch norm with the running statistics, no dropout
    model.dropoutActive = false;
    let loss = 0, acc = 0;
    for (let i = 0; i < testPick.length; i += 500) {
      const idx = testPick.slice(i, i + 500);
      const { x, y } = batchOf(data.test, idx);
      const xt = Tensor.fromArray(gpu, [idx.length, ...data.test.shape], x, 'test.x'), yt = Tensor.fromArray(gpu, [idx.length], y, 'test.y', 'u32');
      const r = await evaluatePoints(gpu, model, Float32Array.of(1), xt, yt);
      xt.dispose(); yt.dispose();
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
      let sl = 0, sa = 0, n = 0;
      model.bnMode = 'update'; // batch statistics, running statistics updated (PyTorch's train())
      model.dropoutActive = true;
      for (let b = 0; b < train.n; b += cfg.batch) {
        const idx = perm.subarray(b, Math.min(train.n, b + cfg.batch));
        const { x, y } = batchOf(train, idx);
        const xt = Tensor.fromArray(gpu, [idx.length, ...train.shape], x, 'x'), yt = Tensor.fromArray(gpu, [idx.length], y, 'y', 'u32');
        const tape = new Tape(gpu, manifold);
        const o = crossEntropy({ gpu, manifold, tape }, model.forward({ gpu, manifold, tape }, xt, cfg.seed * 1_000_003 + epoch * 100_003 + b), yt);
        tape.backward([1]);
        opt.step();
        const r = await o.read();
        if (!Number.isFinite(r.loss[0])) throw new Error(`training diverged in epoch ${epoch + 1}: the loss is ${r.loss[0]} (try a lower --lr than ${cfg.lr})`);
        sl += r.loss[0] * idx.length; sa += r.acc[0] * idx.length; n += idx.length;
        step++;
        if (cfg.snapshotSteps > 0 && step % cfg.snapshotSteps === 0) {
          mkdirSync(join(out, 'snapshots'), { recursive: true });
          atomicWrite(join(out, 'snapshots', `step-${step}.safetensors`), safetensorsBytes(await weightsOf(model), { step: String(step), model: cfg.model, bn: String(cfg.bn), skip: String(cfg.skip), width: String(cfg.width), dropout: String(cfg.dropout) }));
        }
        tape.dispose(); xt.dispose(); yt.dispose();
      }
      const te = await evalTest();
      const seconds = (performance.now() - t0) / 1000;
      last = { train_loss: sl / n, train_acc: sa / n, test_loss: te.loss, test_acc: te.acc, epochs: epoch + 1, seconds: +seconds.toFixed(2) };
      appendFileSync(join(out, 'log.jsonl'), JSON.stringify({ epoch: epoch + 1, lr: opt.o.lr, ...last }) + '\n');
      log(`epoch ${epoch + 1}/${cfg.epochs}  lr ${opt.o.lr.toPrecision(3)}  train loss ${last.train_loss.toFixed(4)} acc ${(last.train_acc * 100).toFixed(1)}%  test loss ${te.loss.toFixed(4)} acc ${(te.acc * 100).toFixed(1)}%  ${seconds.toFixed(0)} s`);
      const w = await weightsOf(model);
      if (cfg.snapshots) {
        mkdirSync(join(out, 'snapshots'), { recursive: true });
        atomicWrite(join(out, 'snapshots', `epoch-${epoch + 1}.safetensors`), safetensorsBytes(w, { epoch: String(epoch + 1), model: cfg.model, bn: String(cfg.bn), skip: String(cfg.skip), width: String(cfg.width), dropout: String(cfg.dropout) }));
      }
      const mom: Record<string, NamedTensor> = {};
      for (const p of model.params) mom[p.name] = { shape: [...p.shape], data: await opt.stateOf(p)[0].read() };
      mkdirSync(ckDir, { recursive: true });
      atomicWrite(join(ckDir, 'model.safetensors'), safetensorsBytes(w));
      atomicWrite(join(ckDir, 'momentum.safetensors'), safetensorsBytes(mom));
      atomicWrite(join(ckDir, 'state.json'), JSON.stringify({ epoch: epoch + 1, seconds }) + '\n');
      if (hooks.shouldStop?.() && epoch + 1 < cfg.epochs) throw new TrainInterrupted(`interrupted after epoch ${epoch + 1}; checkpoint saved in ${ckDir}`);
    }
    if (!last) {
      const te = await evalTest();
      const lines = readFileSync(join(out, 'log.jsonl'), 'utf8').trim().split('\n');
      const prev = JSON.parse(lines[lines.length - 1]);
      last = { train_loss: prev.train_loss, train_acc: prev.train_acc, test_loss: te.loss, test_acc: te.acc, epochs: cfg.epochs, seconds: prev.seconds };
    }
    atomicWrite(join(out, 'model.safetensors'), safetensorsBytes(await weightsOf(model), { model: cfg.model, bn: String(cfg.bn), skip: String(cfg.skip), width: String(cfg.width), dropout: String(cfg.dropout), epochs: String(cfg.epochs) }));
    atomicWrite(join(out, 'metrics.json'), JSON.stringify(last, null, 2) + '\n');
    return last;
  } finally {
    opt.dispose();
    model.dispose();
    manifold.dispose();
  }
}

export class TrainInterrupted extends Error {}

export const TRAIN_HELP = `usage: loss-atlas train [flags]

Ordinary training (one weight vector) of a model, for loss-surface plots. Writes config.json, log.jsonl (one line
per epoch), checkpoint/ (after every epoch, atomically), snapshots/epoch-<n>.safetensors (--snapshots) and, at the
end, model.safetensors and metrics.json ({train_loss, train_acc, test_loss, test_acc, epochs, seconds}).

  --model NAME         ${MODEL_HELP} (default small)
  --bn / --skip        batch norm / residual blocks (the ResNets always have BN)   --width W  ResNet channel multiplier (1; 0.25 gives 4-8-16 channels)
  --dataset fashion-mnist|cifar10   --data DIR
  --epochs N (3)       --batch N (128)      --lr X (0.05)  --momentum X (0.9)   --nesterov / --no-nesterov
  --wd X (5e-4)        --milestones E1,E2,...  --gamma X (0.1): lr x gamma after each milestone epoch
  --seed N             --eval-images N|all (1000)          --train-images N (0 = all)   --snapshots
  --snapshot-steps N   also save snapshots/step-<n>.safetensors every N steps       --dropout P (simplecnn)
  --init FILE          start from these weights (e.g. for SWA-style runs from a pretrained net)
  --out DIR            (default runs/train-<model>-<time>)  --resume DIR`;

const TRAIN_FLAGS = new Set(['model', 'bn', 'skip', 'width', 'dropout', 'init', 'snapshot-steps', 'dataset', 'data', 'epochs', 'batch', 'lr', 'momentum', 'nesterov', 'no-nesterov', 'wd', 'milestones', 'gamma', 'seed', 'eval-images', 'train-images', 'snapshots', 'out', 'resume', 'verbose', 'help']);

export function trainConfig(flags: Record<string, string | boolean>, dirFor: (dataset: TrainConfig['dataset'], flag?: string | boolean) => string): TrainConfig {
  for (const k of Object.keys(flags)) if (!TRAIN_FLAGS.has(k)) throw new Error(`unknown flag --${k} (see loss-atlas train --help)`);
  const num = (k: string, d: number, o: { int?: boolean; min?: number } = {}) => {
    const v = flags[k];
    if (v === undefined) return d;
    const n = Number(v);
    if (typeof v !== 'string' || !Number.isFinite(n) || (o.int && !Number.isInteger(n)) || (o.min !== undefined && n < o.min)) throw new Error(`--${k}: ${o.int ? 'an integer' : 'a number'}${o.min !== undefined ? ` >= ${o.min}` : ''} expected, got "${v}"`);
    return n;
  };
  const model = typeof flags.model === 'string' ? flags.model : 'small';
  const width = num('width', 1, { min: 1 / 16 });
  const dropout = num('dropout', 0, { min: 0 });
  modelSpec(model, { width, dropout }); // validates the name, the width and the dropout
  if (flags.init !== undefined && (typeof flags.init !== 'string' || !existsSync(flags.init))) throw new Error(`--init: ${flags.init}: no such weights file`);
  const dataset = (typeof flags.dataset === 'string' ? flags.dataset : model === 'cifar' ? 'cifar10' : 'fashion-mnist') as TrainConfig['dataset'];
  if (dataset !== 'fashion-mnist' && dataset !== 'cifar10') throw new Error(`--dataset "${dataset}": fashion-mnist or cifar10 expected`);
  const milestones = typeof flags.milestones === 'string' ? flags.milestones.split(',').map(Number) : [];
  if (milestones.some((m) => !Number.isInteger(m) || m < 1)) throw new Error(`--milestones: comma-separated epoch numbers expected, got "${flags.milestones}"`);
  return {
    model, bn: !!flags.bn, skip: !!flags.skip, width, dropout, init: typeof flags.init === 'string' ? flags.init : null, snapshotSteps: num('snapshot-steps', 0, { int: true, min: 0 }), dataset, data: dirFor(dataset, flags.data),
    epochs: num('epochs', 3, { int: true, min: 1 }), batch: num('batch', 128, { int: true, min: 1 }), lr: num('lr', 0.05, { min: 0 }),
    momentum: num('momentum', 0.9, { min: 0 }), nesterov: !flags['no-nesterov'], weightDecay: num('wd', 5e-4, { min: 0 }),
    milestones, gamma: num('gamma', 0.1, { min: 0 }), seed: num('seed', 1, { int: true, min: 0 }),
    evalImages: flags['eval-images'] === 'all' ? 0 : num('eval-images', 1000, { int: true, min: 1 }),
    trainImages: num('train-images', 0, { int: true, min: 0 }), snapshots: !!flags.snapshots,
  };
}

// Multi-point optimization (Skorokhodov & Burtsev 2019): train a plane of weights so that the loss over a
// grid of cells draws a picture. Follows the reference (shared/docs/algorithms.md section 1) except where
// noted in README.md ("MPO: where we differ from the reference").
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { permutation } from '../engine/random.ts';
import { checkClasses, givenStart, modelSpec } from '../models/zoo.ts';
import { parameterCount, paramShapes } from '../models/graph.ts';
import { checkParamSizes, checkTensorSizes, modelName } from '../models/checkpoint.ts';
import type { ModelDef } from '../models/graph.ts';
import type { Dataset } from '../data/dataset.ts';
import { atomicWrite, npyBytes, readSafetensors, safetensorsBytes, type NamedTensor } from '../data/formats.ts';
import { checkFields, FIELD, readJsonObject } from '../data/read.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { Interrupted, resumeWith } from '../run/interrupted.ts';
import { loadMask, ternary } from './masks.ts';
import {
  accMap,
  compose,
  type HeatmapOptions,
  lossMap,
  maskPanel,
  type Panel,
  textPanel,
  writePng,
} from '../viz/figure.ts';
import { padded, scoreGrid, type SplitMetrics } from './evaluate.ts';
import { MpoTrainer, type TrainerSettings, type TrainerStep, type TrainState, streamFor } from './trainer.ts';
import { planeMetadata } from './plane-file.ts';
import { Diverged } from '../run/diverged.ts';
export interface MpoConfig extends TrainerSettings {
  experiment: string;
  dataset: 'fashion-mnist' | 'cifar10';
  data: string;
  model: string;
  bn: boolean;
  skip: boolean;
  mask: string;
  grid: number;
  steps: number;
  /** Images per split for the grid evaluation; 0 = all. */
  evalImages: number;
  /** Cells of margin around the mask in the evaluated grid. */
  pad: number;
  /** Training images used (0 = all). */
  trainImages: number;
  checkpointEvery: number;
  logEvery: number;
}

export interface Datasets {
  train: Dataset;
  test: Dataset;
}

export interface RunResult {
  out: string;
  metrics: { train: SplitMetrics; test: SplitMetrics; steps: number; seconds: number };
  stoppedEarly: boolean;
}

/** Reads checkpoint/state.json and its weights for a run of the model of `layers` (`expects` names it). */
export function readMpoCheckpoint(ckDir: string, layers: ModelDef, expects: string) {
  const file = join(ckDir, 'state.json'),
    wfile = join(ckDir, 'checkpoint.safetensors');
  const state = readJsonObject(file, 'the state of an MPO checkpoint');
  const F = FIELD;
  checkFields(file, state, { step: F.count, seconds: F.seconds, epochDiff: F.number, epochSteps: F.count });
  checkFields(file, state, { epochAccs: F.numbers, stoppedEarly: F.boolean });
  const { tensors: st, metadata } = readSafetensors(wfile, 'the weights of an MPO checkpoint');
  if (metadata.step !== String(state.step))
    throw new Error(
      `${wfile}: saved at step ${metadata.step}, ${file} at step ${state.step}` +
        ' (a save cut short between the two files: the run cannot resume from them)',
    );
  checkParamSizes(wfile, st, 'origin/', layers, expects);
  const sizes = paramShapes(layers).map((p) => p.shape.reduce((a, b) => a * b, 1)),
    all = [...sizes, ...sizes, ...sizes, 1];
  const named = (tag: string, ns: number[]) => ns.map((n, i) => [`${tag}/${i}`, n] as [string, number]);
  const [o, r, u] = ['origin', 'right_param', 'up_param'].map((tag) => named(tag, sizes));
  checkTensorSizes(wfile, st, [...o, ...r, ...u, ['scale', 1], ...named('adam_m', all), ...named('adam_v', all)]);
  const vals = (tag: string) => sizes.map((_, i) => st[`${tag}/${i}`].data);
  return {
    state: state as unknown as TrainState,
    plane: { origin: vals('origin'), right: vals('right_param'), up: vals('up_param'), scale: st.scale.data[0] },
    adam: all.map((_, i) => ({ m: st[`adam_m/${i}`].data, v: st[`adam_v/${i}`].data })),
  };
}

export interface MpoHooks {
  /** Progress after each step. */
  onStep?: (step: number, total: number, good: number, bad: number, secs: number) => void | Promise<void>;
  /** Polled after each step: when true, checkpoint and stop (SIGINT). */
  shouldStop?: () => boolean;
  log?: (msg: string) => void;
}

/**
 * One split's grid as files in `out`: grid_SPLIT.npy ([GH, GW, 2] = mean CE, accuracy), loss_SPLIT.png and
 * acc_SPLIT.png; returns the two panels.
 */
export async function writeGridFiles(
  out: string,
  split: string,
  loss: ArrayLike<number>,
  acc: ArrayLike<number>,
  GH: number,
  GW: number,
  outline?: HeatmapOptions['outline'],
): Promise<[Panel, Panel]> {
  const grid = new Float32Array(GH * GW * 2);
  for (let k = 0; k < GH * GW; k++) grid.set([loss[k], acc[k]], 2 * k);
  atomicWrite(join(out, `grid_${split}.npy`), npyBytes(grid, [GH, GW, 2]));
  const l = lossMap(loss, GH, GW, `${split} loss (cross-entropy, log scale)`, outline);
  const a = accMap(acc, GH, GW, `${split} accuracy`, outline);
  await writePng(l, join(out, `loss_${split}.png`));
  await writePng(a, join(out, `acc_${split}.png`));
  return [l, a];
}

/** Trains (or resumes) an MPO run in `out`, evaluates it and writes every output. */
export async function runMpo(
  gpu: Gpu,
  cfg: MpoConfig,
  data: Datasets,
  out: string,
  resume: boolean,
  hooks: MpoHooks = {},
): Promise<RunResult> {
  const log = hooks.log ?? (() => {});
  mkdirSync(out, { recursive: true });
  const mask = await loadMask(cfg.mask, cfg.grid, cfg.seed);
  const tern = ternary(mask);
  const spec = modelSpec(cfg.model, { bn: cfg.bn, skip: cfg.skip, input: data.train.shape });
  if (data.train.shape.join() !== spec.input.join())
    throw new Error(`model ${cfg.model} expects images [${spec.input}], the data has [${data.train.shape}]`);
  checkClasses(spec, cfg.model, data.train);
  const train: Dataset =
    cfg.trainImages > 0 && cfg.trainImages < data.train.n ? { ...data.train, n: cfg.trainImages } : data.train;

  if (!resume) {
    writeRunConfig(out, 'mpo', { ...cfg, parameters: parameterCount(spec.layers) }, gpu);
    writeFileSync(join(out, 'log.jsonl'), '');
  }
  const signed = Int8Array.from(mask.data, (v) => (v ? 1 : -1));
  await writePng(
    compose([
      [
        maskPanel(signed, mask.H, mask.W, `target: ${mask.name} (${mask.H}x${mask.W})`),
        maskPanel(tern, mask.H, mask.W, 'trained cells: white +1, black -1, grey ignored'),
      ],
    ]),
    join(out, 'mask.png'),
  );

  // state: fresh or from the checkpoint
  const ckDir = join(out, 'checkpoint');
  let trainer: MpoTrainer;
  if (resume && existsSync(join(ckDir, 'state.json'))) {
    const saved = readMpoCheckpoint(ckDir, spec.layers, modelName(cfg.model, { ...cfg, input: spec.input }));
    trainer = MpoTrainer.saved(gpu, spec, mask, train, cfg, saved.plane, saved.adam, saved.state);
    // drop log lines written after the checkpoint
    const lines = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l && JSON.parse(l).step <= saved.state.step);
    writeFileSync(join(out, 'log.jsonl'), lines.map((l) => `${l}\n`).join(''));
    log(`resuming ${out} from step ${saved.state.step}`);
  } else trainer = MpoTrainer.fresh(gpu, spec, mask, train, cfg, givenStart(spec));
  const { plane, opt, state: ck } = trainer;

  const saveCheckpoint = async () => {
    const v = await plane.values();
    const t: Record<string, NamedTensor> = {};
    v.origin.forEach((d, i) => (t[`origin/${i}`] = { shape: [d.length], data: d }));
    v.right.forEach((d, i) => (t[`right_param/${i}`] = { shape: [d.length], data: d }));
    v.up.forEach((d, i) => (t[`up_param/${i}`] = { shape: [d.length], data: d }));
    t.scale = { shape: [1], data: Float32Array.of(v.scale) };
    const ps = plane.trainables();
    for (let i = 0; i < ps.length; i++) {
      const [m, vv] = opt.stateOf(ps[i]);
      t[`adam_m/${i}`] = { shape: [m.size], data: await m.read() };
      t[`adam_v/${i}`] = { shape: [vv.size], data: await vv.read() };
    }
    mkdirSync(ckDir, { recursive: true });
    atomicWrite(join(ckDir, 'checkpoint.safetensors'), safetensorsBytes(t, { step: String(ck.step) }));
    atomicWrite(join(ckDir, 'state.json'), `${JSON.stringify(ck)}\n`);
  };

  const t0 = performance.now() - ck.seconds * 1000;
  const stepsBefore = ck.step;
  const diverged = (at: number, why: string) =>
    new Error(
      `training diverged at step ${at}: ${why} (try a lower --lr than ${cfg.lr}, a --clip, or a lower --clamp); ` +
        (existsSync(join(ckDir, 'state.json'))
          ? `the last good checkpoint in ${ckDir} is kept: continue with --resume ${out} --lr LOWER`
          : 'no checkpoint was saved'),
    );
  try {
    while (ck.step < cfg.steps && !ck.stoppedEarly) {
      let res: TrainerStep;
      try {
        res = await trainer.step();
      } catch (e) {
        if (e instanceof Diverged) throw diverged(ck.step + 1, e.message);
        throw e;
      }
      const { goodLoss: gl, badLoss: bl, goodAcc: ga, badAcc: ba, scale: s } = res;
      const secs = (performance.now() - t0) / 1000;
      ck.seconds = secs;
      const logging = ck.step % cfg.logEvery === 0 || ck.step === cfg.steps;
      const saving = ck.step % cfg.checkpointEvery === 0 || ck.step === cfg.steps;
      // the gradient norm is read at log lines and before each save, so that no checkpoint holds a diverged plane
      const norm = logging || saving || hooks.shouldStop?.() ? await opt.lastNorm() : null;
      if (norm !== null && !Number.isFinite(norm)) throw diverged(ck.step, `the gradient norm is ${norm}`);
      if (logging) {
        appendFileSync(
          join(out, 'log.jsonl'),
          `${JSON.stringify({
            step: ck.step,
            good_loss: gl,
            bad_loss: bl,
            good_acc: ga,
            bad_acc: ba,
            scale: s,
            grad_norm: norm,
            seconds: +secs.toFixed(3),
          })}\n`,
        );
      }
      await hooks.onStep?.(ck.step, cfg.steps, gl, bl, secs);
      if (res.epochEnd !== null && ck.stoppedEarly) {
        const epoch = ck.epochAccs.length;
        log(`early stop after epoch ${epoch}: good - bad accuracy ${res.epochEnd.toFixed(4)} < 0.01`);
      }
      if (saving || ck.stoppedEarly) await saveCheckpoint();
      if (hooks.shouldStop?.() && ck.step < cfg.steps) {
        await saveCheckpoint();
        const msg = `interrupted at step ${ck.step} of ${cfg.steps}; checkpoint saved in ${ckDir}`;
        throw new Interrupted(msg, out, resumeWith('mpo', out));
      }
    }
    if (ck.step === stepsBefore && stepsBefore > 0) log(`training already complete (${ck.step} steps)`);

    // evaluation over the padded grid
    log('evaluating the grid ...');
    const metrics = { train: {} as SplitMetrics, test: {} as SplitMetrics, steps: ck.step, seconds: 0 };
    const GH = mask.H + 2 * cfg.pad,
      GW = mask.W + 2 * cfg.pad;
    const outline = { data: mask.data, H: mask.H, W: mask.W, pad: cfg.pad };
    const panels: Record<string, { loss: Float32Array; acc: Float32Array }> = {};
    for (const split of ['train', 'test'] as const) {
      const d = split === 'train' ? train : data.test;
      const n = cfg.evalImages > 0 ? Math.min(cfg.evalImages, d.n) : d.n;
      const pick = Array.from(permutation(d.n, streamFor(cfg.seed, 0, split === 'train' ? 3 : 4)).subarray(0, n));
      const { loss, acc } = await trainer.evaluate(d, pick, cfg.pad);
      panels[split] = { loss, acc };
      metrics[split] = scoreGrid(loss, acc, mask, tern, cfg.pad);
      await writeGridFiles(out, split, loss, acc, GH, GW, outline);
    }
    metrics.seconds = +((performance.now() - t0) / 1000).toFixed(2);
    // the plane
    const st = await trainer.planeTensors();
    atomicWrite(
      join(out, 'plane.safetensors'),
      safetensorsBytes(st, planeMetadata(cfg.model, cfg.bn, { ...mask, name: cfg.mask })),
    );
    const fmt = (m: SplitMetrics) => `acc_diff ${m.acc_diff.toFixed(3)}  agreement ${m.agreement.toFixed(3)}`;
    await writePng(
      compose(
        [
          [
            maskPanel(padded(signed, mask.H, mask.W, cfg.pad), GH, GW, 'target (grey: margin outside the mask)'),
            lossMap(panels.test.loss, GH, GW, 'test loss (log scale)', outline),
            accMap(panels.test.acc, GH, GW, 'test accuracy', outline),
          ],
          [
            textPanel(
              [
                `${cfg.experiment}: ${cfg.model}${cfg.bn ? ' + BN' : ''}`,
                `mask ${mask.name}, ${ck.step} steps`,
                `test:  ${fmt(metrics.test)}`,
                `train: ${fmt(metrics.train)}`,
                `${gpu.adapterInfo.split(' / ').pop()!.slice(0, 44)}`,
              ],
              380,
            ),
            lossMap(panels.train.loss, GH, GW, 'train loss (log scale)', outline),
            accMap(panels.train.acc, GH, GW, 'train accuracy', outline),
          ],
        ],
        `loss-atlas MPO: ${mask.name} drawn into the loss landscape`,
      ),
      join(out, 'summary.png'),
    );
    // written last: its presence marks the run complete
    atomicWrite(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
    return { out, metrics, stoppedEarly: ck.stoppedEarly };
  } finally {
    trainer.dispose();
  }
}

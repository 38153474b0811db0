// `loss-atlas swa`: weight averaging against prediction ensembling (Fort & Jastrzebski 2019, section 4.5). From a
// pretrained network, SGD runs at a low and a high learning rate (constant, or cyclic from the rate down to 1% of it
// in each cycle) and saves a snapshot every --every steps. The snapshots are the basis of one manifold: each snapshot
// is a point (identity coefficients), their weight average is the point with coefficients 1/N, so individual
// accuracies, the average's accuracy and the ensemble's (mean of the softmax outputs, from the points' logits) come
// from batched passes. The paper's prediction: at a high learning rate the snapshots sit on different wedges and their
// average leaves the low-loss region, while the ensemble still gains.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { Manifold } from '../engine/manifold.ts';
import { crossEntropy } from '../engine/ops/loss.ts';
import { SGD } from '../engine/optim.ts';
import { Tape } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import { batchStream, permutation, rng } from '../engine/random.ts';
import { batchOf, type Dataset } from '../data/dataset.ts';
import { safetensorsBytes, type NamedTensor } from '../data/formats.ts';
import { Model } from '../models/model.ts';
import { paramShapes, stateShapes } from '../models/graph.ts';
import { checkpointSpec, readCheckpoint, type Checkpoint } from '../models/checkpoint.ts';
import { writeRunConfig } from '../run/run-info.ts';
import { pointsPerBlock } from '../models/run.ts';
import { vegaLitePng } from '../viz/vega.ts';
import { defineCommand, optionsOf, type OptionInput } from '../options/index.ts';
import { checkFinite } from '../run/diverged.ts';

export interface SwaOptions {
  lrs: number[];
  schedule: 'constant' | 'cyclic';
  snapshots: number;
  every: number;
  batch: number;
  momentum: number;
  images: number;
  seed: number;
}

export interface SwaRun {
  lr: number;
  individual: number[];
  individualLoss: number[];
  swa: number;
  swaLoss: number;
  ensemble: number;
  ensembleLoss: number;
}

/** Learning rate at step s (0-based) of a cycle of `every` steps: constant, or linear from lr down to lr / 100. */
export const swaLr = (o: Pick<SwaOptions, 'schedule' | 'every'>, lr: number, s: number) =>
  o.schedule === 'constant' ? lr : lr * (1 - 0.99 * ((s % o.every) / Math.max(1, o.every - 1)));

async function snapshotsFrom(
  gpu: Gpu,
  ck: Checkpoint,
  spec: ReturnType<typeof checkpointSpec>,
  train: Dataset,
  lr: number,
  o: SwaOptions,
): Promise<Float32Array[][]> {
  const model = new Model(
    gpu,
    spec.layers,
    1,
    ck.weights.map((w) => Float32Array.from(w)),
    ck.states ?? undefined,
  );
  model.bnMode = ck.states ? 'update' : 'batch';
  model.dropoutActive = true;
  const opt = new SGD(gpu, model.params, { lr, momentum: o.momentum, nesterov: false, weightDecay: 0 });
  const manifold = Manifold.single(gpu);
  const r = rng(o.seed);
  const nextBatch = batchStream(train.n, o.batch, r);
  const snaps: Float32Array[][] = [];
  try {
    for (let s = 0; snaps.length < o.snapshots; s++) {
      const idx = nextBatch();
      const { x, y } = batchOf(train, idx);
      const xt = Tensor.fromArray(gpu, [idx.length, ...train.shape], x, 'swa.x'),
        yt = Tensor.fromArray(gpu, [idx.length], y, 'swa.y', 'u32');
      opt.o.lr = swaLr(o, lr, s);
      const tape = new Tape(gpu, manifold);
      const out = crossEntropy(
        { gpu, manifold, tape },
        model.forward({ gpu, manifold, tape }, xt, o.seed * 7919 + s),
        yt,
      );
      tape.backward([1]);
      opt.step();
      const l = await out.read();
      tape.dispose();
      xt.dispose();
      yt.dispose();
      checkFinite(l.loss, { what: `swa (lr ${lr})`, step: s + 1, advice: 'a lower --lrs value' });
      if ((s + 1) % o.every === 0) snaps.push(await Promise.all(model.params.map((p) => p.basis.read())));
    }
  } finally {
    opt.dispose();
    model.dispose();
    manifold.dispose();
  }
  return snaps;
}

/** Individual, averaged and ensembled test accuracy and loss of snapshots, from batched passes. */
export async function evaluateSnapshots(
  gpu: Gpu,
  spec: ReturnType<typeof checkpointSpec>,
  snaps: Float32Array[][],
  test: Dataset,
  pick: number[],
): Promise<Omit<SwaRun, 'lr'>> {
  const N = snaps.length;
  const model = new Model(
    gpu,
    spec.layers,
    N,
    snaps[0].map((_, t) => {
      const all = new Float32Array(N * snaps[0][t].length);
      snaps.forEach((s, j) => all.set(s[t], j * s[t].length));
      return all;
    }),
  );
  const K = N + 1; // the snapshots, then their average
  const coefs = new Float32Array(K * N);
  for (let j = 0; j < N; j++) {
    coefs[j * N + j] = 1;
    coefs[N * N + j] = 1 / N;
  }
  const chunk = 250;
  const perBlock = pointsPerBlock(gpu, spec.layers, chunk, test.shape, K); // points per pass within the binding limit
  const correct = new Float64Array(K),
    lossSum = new Float64Array(K);
  let ensCorrect = 0,
    ensLoss = 0;
  try {
    for (let i0 = 0; i0 < pick.length; i0 += chunk) {
      const idx = pick.slice(i0, i0 + chunk);
      const { x, y } = batchOf(test, idx);
      const xt = Tensor.fromArray(gpu, [idx.length, ...test.shape], x, 'swa.ex');
      const parts: Float32Array[] = [];
      for (let k0 = 0; k0 < K; k0 += perBlock) {
        const kb = Math.min(perBlock, K - k0);
        const manifold = new Manifold(gpu, kb, N, coefs.subarray(k0 * N, (k0 + kb) * N));
        const logits = model.forward({ gpu, manifold, tape: null }, xt);
        parts.push(await logits.read());
        logits.dispose();
        manifold.dispose();
      }
      xt.dispose();
      const lg = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
      let o = 0;
      for (const p of parts) {
        lg.set(p, o);
        o += p.length;
      }
      const C = lg.length / (K * idx.length);
      for (let n = 0; n < idx.length; n++) {
        const ens = new Float64Array(C);
        for (let k = 0; k < K; k++) {
          const row = lg.subarray((k * idx.length + n) * C, (k * idx.length + n + 1) * C);
          let mx = -Infinity,
            am = 0;
          for (let c = 0; c < C; c++)
            if (row[c] > mx) {
              mx = row[c];
              am = c;
            }
          let se = 0;
          for (let c = 0; c < C; c++) se += Math.exp(row[c] - mx);
          if (am === y[n]) correct[k]++;
          lossSum[k] += Math.log(se) + mx - row[y[n]];
          if (k < N) for (let c = 0; c < C; c++) ens[c] += Math.exp(row[c] - mx) / se / N;
        }
        let best = 0;
        for (let c = 1; c < C; c++) if (ens[c] > ens[best]) best = c;
        if (best === y[n]) ensCorrect++;
        ensLoss -= Math.log(Math.max(ens[y[n]], 1e-30));
      }
    }
  } finally {
    model.dispose();
  }
  const M = pick.length;
  return {
    individual: Array.from(correct.subarray(0, N), (c) => c / M),
    individualLoss: Array.from(lossSum.subarray(0, N), (l) => l / M),
    swa: correct[N] / M,
    swaLoss: lossSum[N] / M,
    ensemble: ensCorrect / M,
    ensembleLoss: ensLoss / M,
  };
}

export async function runSwa(
  gpu: Gpu,
  ck: Checkpoint,
  data: { train: Dataset; test: Dataset },
  o: SwaOptions,
  out: string,
  log: (m: string) => void,
): Promise<SwaRun[]> {
  writeRunConfig(out, 'swa', { modelFile: ck.path, ...o }, gpu);
  const spec = checkpointSpec(ck, data.train.shape);
  if (stateShapes(spec.layers).length)
    log(
      'note: batch norm is evaluated with batch statistics here' +
        ' (an average of weights has no running statistics of its own)',
    );
  const pick = Array.from(permutation(data.test.n, rng(o.seed + 1))).slice(0, Math.min(o.images, data.test.n));
  const runs: SwaRun[] = [];
  for (const lr of o.lrs) {
    log(`lr ${lr} (${o.schedule}): ${o.snapshots} snapshots, one every ${o.every} steps`);
    const snaps = await snapshotsFrom(gpu, ck, spec, data.train, lr, o);
    const names = paramShapes(spec.layers);
    const t: Record<string, NamedTensor> = {};
    snaps.forEach((s, j) => names.forEach((p, i) => (t[`snap${j}/${p.name}`] = { shape: p.shape, data: s[i] })));
    writeFileSync(join(out, `snapshots-lr${lr}.safetensors`), safetensorsBytes(t, { model: ck.model, lr: String(lr) }));
    const r = { lr, ...(await evaluateSnapshots(gpu, spec, snaps, data.test, pick)) };
    const mean = r.individual.reduce((a, b) => a + b, 0) / r.individual.length;
    log(
      `  individual ${(100 * mean).toFixed(1)}% (mean), weight average ${(100 * r.swa).toFixed(1)}%` +
        `, ensemble ${(100 * r.ensemble).toFixed(1)}%`,
    );
    runs.push(r);
  }
  const rows = runs.flatMap((r) => [
    {
      lr: String(r.lr),
      what: 'snapshots (mean)',
      acc: 100 * (r.individual.reduce((a, b) => a + b, 0) / r.individual.length),
    },
    { lr: String(r.lr), what: 'weight average (SWA)', acc: 100 * r.swa },
    { lr: String(r.lr), what: 'prediction ensemble', acc: 100 * r.ensemble },
  ]);
  await vegaLitePng(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `weight averaging vs ensembling of ${o.snapshots} snapshots (${o.schedule} learning rate)`,
      data: { values: rows },
      facet: { column: { field: 'lr', type: 'nominal', title: 'learning rate' } },
      spec: {
        width: 180,
        height: 240,
        mark: 'bar',
        encoding: {
          x: { field: 'what', type: 'nominal', title: null, axis: { labelAngle: -30 } },
          y: { field: 'acc', type: 'quantitative', title: 'test accuracy %', scale: { zero: false } },
          color: { field: 'what', type: 'nominal', legend: null },
        },
      },
    },
    join(out, 'swa.png'),
  );
  const metrics = {
    schedule: o.schedule,
    snapshots: o.snapshots,
    every: o.every,
    runs: runs.map((r) => ({
      lr: r.lr,
      mean_individual_acc: r.individual.reduce((a, b) => a + b, 0) / r.individual.length,
      swa_acc: r.swa,
      ensemble_acc: r.ensemble,
      swa_loss: r.swaLoss,
      ensemble_loss: r.ensembleLoss,
    })),
  };
  writeFileSync(join(out, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  writeFileSync(join(out, 'swa.json'), `${JSON.stringify(runs)}\n`);
  return runs;
}

export const SWA = defineCommand({
  name: 'swa',
  summary: 'weight averaging vs prediction ensembling of snapshots at a low and a high learning rate (--help)',
  usage: 'loss-atlas swa --model-file PRETRAINED.safetensors [flags]',
  description: `\
From a pretrained network, SGD at each learning rate of --lrs (constant, or --schedule cyclic: from the rate down to 1%
of it over each cycle of --every steps) saving a snapshot every --every steps; then the test accuracy of each snapshot,
of their weight average (SWA) and of their prediction ensemble. Writes swa.png, metrics.json, swa.json and the
snapshots into --out (default runs/swa-<time>).`,
  options: {
    'model-file': {
      type: 'string',
      placeholder: 'FILE',
      required: true,
      help: 'a pretrained model.safetensors of loss-atlas train, or an ONNX file (its initializers)',
    },
    lrs: { type: 'list', of: 'number', above: 0, default: [0.01, 0.2], help: 'learning rates (low and high)' },
    schedule: {
      type: 'enum',
      choices: ['constant', 'cyclic'],
      default: 'constant',
      help: 'learning rate over each cycle',
    },
    snapshots: { type: 'integer', min: 1, default: 6, help: 'snapshots per learning rate' },
    every: { type: 'integer', min: 1, default: 50, help: 'steps between snapshots (a cycle)' },
    batch: { type: 'integer', min: 1, default: 64, help: 'images per step' },
    momentum: { type: 'number', min: 0, below: 1, default: 0.9, help: 'SGD momentum' },
    images: { type: 'integer', min: 1, default: 2000, help: 'test images' },
    seed: { type: 'integer', min: 1, default: 1, help: 'batch-order and test-image seed' },
    data: { type: 'string', placeholder: 'DIR', help: 'Fashion-MNIST directory' },
    out: { type: 'string', placeholder: 'DIR', defaultText: 'runs/swa-<time>', help: 'run directory' },
  },
});

export async function swaCommand(
  gpu: Gpu,
  data: { train: Dataset; test: Dataset },
  input: OptionInput<typeof SWA.options>,
  out: string,
  log: (m: string) => void,
): Promise<SwaRun[]> {
  const o = optionsOf(SWA.options, input);
  const ck = readCheckpoint(o.modelFile, data.train.shape);
  const { lrs, schedule, snapshots, every, batch, momentum, images, seed } = o;
  return runSwa(gpu, ck, data, { lrs, schedule, snapshots, every, batch, momentum, images, seed }, out, log);
}

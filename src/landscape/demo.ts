// `loss-atlas demo`: trains a small conv net on Fashion-MNIST (K = 1), then
// evaluates 21 points on a line through the trained weights along a filter-normalized random direction
// in one batched pass per block (K = 21, B = 2), and prints the 1-D loss profile.
import type { Gpu } from '../engine/device.ts';
import { Manifold } from '../engine/manifold.ts';
import { crossEntropy } from '../engine/ops/loss.ts';
import { Adam } from '../engine/optim.ts';
import { Tape } from '../engine/tape.ts';
import { Tensor } from '../engine/tensor.ts';
import { rng } from '../engine/random.ts';
import { randomDirection } from './directions.ts';
import { fashionMnistDir, loadFashionMnist } from '../data/fashion-mnist.ts';
import { batchOf } from '../data/dataset.ts';
import { Model } from '../models/model.ts';
import { convNet } from '../models/zoo.ts';
import { paramShapes } from '../models/graph.ts';
import { evaluatePoints } from '../models/run.ts';
import { defineCommand, optionsOf, type OptionInput } from '../options/index.ts';

export const DEMO = defineCommand({
  name: 'demo',
  summary:
    'train a small conv net on Fashion-MNIST (K=1), then a 1-D loss profile: 21 points on a line in one ' +
    'batched pass',
  description: `\
Trains a small conv net on 6,000 Fashion-MNIST images (Adam), then evaluates 21 points on a line through the
trained weights along a filter-normalized random direction in one batched pass, and prints the 1-D loss profile.`,
  options: {
    steps: { type: 'integer', min: 1, default: 150, help: 'training steps' },
    batch: { type: 'integer', min: 1, default: 64, help: 'images per step' },
    data: { type: 'string', placeholder: 'DIR', help: 'Fashion-MNIST directory' },
  },
});

export async function runDemo(gpu: Gpu, input: OptionInput<typeof DEMO.options>): Promise<number> {
  const { steps, batch, data } = optionsOf(DEMO.options, input);
  const dir = fashionMnistDir(data);
  const train = loadFashionMnist(dir, 'train', 6000);
  const test = loadFashionMnist(dir, 't10k', 500);
  console.log(`Fashion-MNIST from ${dir}: ${train.n} training and ${test.n} test images`);
  const layers = convNet({ channels: [1, 8, 16], dense: [32], maxpool: true });
  const model = Model.create(gpu, layers, 1, 1);
  console.log(`model: conv 1-8-16 + max-pool, adaptive pool 4x4, dense 256-32-10 (${model.pointSize} parameters)`);
  const opt = new Adam(gpu, model.params, { lr: 2e-3 });
  const manifold = Manifold.single(gpu);
  const r = rng(7);
  const t0 = performance.now();
  let run = 0;
  for (let step = 1; step <= steps; step++) {
    const idx = Array.from({ length: batch }, () => Math.floor(r() * train.n));
    const { x, y } = batchOf(train, idx);
    const xt = Tensor.fromArray(gpu, [batch, 1, 28, 28], x, 'x'),
      yt = Tensor.fromArray(gpu, [batch], y, 'y', 'u32');
    const tape = new Tape(gpu, manifold);
    const out = crossEntropy({ gpu, manifold, tape }, model.forward({ gpu, manifold, tape }, xt), yt);
    tape.backward([1]);
    opt.step();
    if (step % 10 === 0 || step === steps) {
      const { loss, acc } = await out.read();
      run = run ? 0.7 * run + 0.3 * loss[0] : loss[0];
      const s = (performance.now() - t0) / 1000;
      console.log(
        `step ${String(step).padStart(4)}/${steps}  loss ${loss[0].toFixed(3)} (smoothed ${run.toFixed(3)})` +
          `  batch acc ${(acc[0] * 100).toFixed(0)}%  ${((step * batch) / s).toFixed(0)} images/s`,
      );
    }
    tape.dispose();
    xt.dispose();
    yt.dispose();
  }
  // a line through the trained weights: basis [theta, d], point k = theta + alpha_k d (d filter-normalized)
  const trained = await Promise.all(model.params.map((p) => p.basis.read()));
  const d = randomDirection(
    trained,
    paramShapes(layers).map((p) => p.shape),
    { seed: 123, norm: 'filter', ignoreBiasBn: true },
  );
  const init = trained.map((w, i) => {
    const both = new Float32Array(2 * w.length);
    both.set(w);
    both.set(d[i], w.length);
    return both;
  });
  const line = new Model(gpu, layers, 2, init);
  const K = 21;
  const alphas = Array.from({ length: K }, (_, k) => -1 + (2 * k) / (K - 1));
  const coefs = Float32Array.from(alphas.flatMap((a) => [1, a]));
  const xt = Tensor.fromArray(gpu, [test.n, 1, 28, 28], test.images, 'test.x'),
    yt = Tensor.fromArray(gpu, [test.n], test.labels, 'test.y', 'u32');
  const te = performance.now();
  const { loss, acc } = await evaluatePoints(gpu, line, coefs, xt, yt);
  console.log(
    `\n${K} points on a filter-normalized random line through the trained weights,` +
      ` ${test.n} test images each, one batched pass (${((performance.now() - te) / 1000).toFixed(1)} s):`,
  );
  const maxL = Math.max(...loss);
  alphas.forEach((a, k) => {
    const bar = '#'.repeat(Math.round((loss[k] / maxL) * 40));
    console.log(
      `  alpha ${a >= 0 ? ' ' : ''}${a.toFixed(1)}  loss ${loss[k].toFixed(3).padStart(7)}` +
        `  acc ${(acc[k] * 100).toFixed(1).padStart(5)}%  ${bar}`,
    );
  });
  xt.dispose();
  yt.dispose();
  line.dispose();
  model.dispose();
  opt.dispose();
  manifold.dispose();
  return 0;
}

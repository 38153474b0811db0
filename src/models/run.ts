// Running a model over many manifold points: K is split into blocks so that no binding exceeds the
// adapter's limit and no dispatch exceeds its workgroup-count limit; each block is one batched pass.
import type { Gpu } from '../engine/device.ts';
import { Manifold } from '../engine/manifold.ts';
import { crossEntropy } from '../engine/ops/loss.ts';
import { Tape } from '../engine/tape.ts';
import { Tensor, numel } from '../engine/tensor.ts';
import { type ModelDef, layerShapes } from './graph.ts';
import type { Model } from './model.ts';
import { batchOf, type Dataset } from '../data/dataset.ts';
/** Largest number of points per block for a batch of N samples (at most K). */
export function pointsPerBlock(gpu: Gpu, layers: ModelDef, N: number, inShape: number[], K: number): number {
  const maxAct = Math.max(...layerShapes(layers, inShape).map(numel), numel(inShape)) * N * 4;
  const byBinding = Math.floor(gpu.bindingLimit / maxAct);
  if (byBinding < 1)
    throw new Error(
      `one point's activations (${maxAct} bytes for a batch of ${N})` +
        ` exceed the binding limit ${gpu.bindingLimit}: use a smaller batch`,
    );
  return Math.max(1, Math.min(K, byBinding, gpu.maxGroups));
}

/**
 * Mean cross-entropy and accuracy of every point (coefs [K, B]) on one batch x [N, ...] with labels [N],
 * in blocks of at most `block` points (default: as many as fit).
 */
export async function evaluatePoints(
  gpu: Gpu,
  model: Model,
  coefs: Float32Array,
  x: Tensor,
  labels: Tensor,
  block?: number,
): Promise<{ loss: Float32Array; acc: Float32Array }> {
  const B = model.B;
  const K = coefs.length / B;
  const N = x.shape[0];
  const bs = block ?? pointsPerBlock(gpu, model.layers, N, x.shape.slice(1), K);
  const loss = new Float32Array(K),
    acc = new Float32Array(K);
  for (let k0 = 0; k0 < K; k0 += bs) {
    const kb = Math.min(bs, K - k0);
    const manifold = new Manifold(gpu, kb, B, coefs.subarray(k0 * B, (k0 + kb) * B));
    const ctx = { gpu, manifold, tape: null };
    const logits = model.forward(ctx, x);
    const out = crossEntropy(ctx, logits, labels);
    logits.dispose();
    const r = await out.read();
    out.out.dispose();
    manifold.dispose();
    loss.set(r.loss, k0);
    acc.set(r.acc, k0);
  }
  return { loss, acc };
}

/**
 * Forward and backward of sum_k weights[k] * L_k over blocks of points, accumulating basis gradients
 * (unless basisGrad is false) and dL/dC into the returned array when coefGrad. Returns per-point losses and accuracies.
 */
export async function backwardPoints(
  gpu: Gpu,
  model: Model,
  coefs: Float32Array,
  weights: ArrayLike<number>,
  x: Tensor,
  labels: Tensor,
  o: {
    block?: number;
    clampAbove?: number | ArrayLike<number>;
    coefGrad?: boolean;
    basisGrad?: boolean;
    pairedMasks?: boolean;
  } = {},
): Promise<{ loss: Float32Array; acc: Float32Array; dcoef: Float32Array | null }> {
  const B = model.B;
  const K = coefs.length / B;
  const N = x.shape[0];
  let bs = o.block ?? pointsPerBlock(gpu, model.layers, N, x.shape.slice(1), K);
  if (o.pairedMasks) {
    if (K % 2 !== 0) throw new Error(`backwardPoints: paired masks need an even number of points, got ${K}`);
    bs = Math.max(2, bs - (bs % 2)); // pairs stay in one block
  }
  const loss = new Float32Array(K),
    acc = new Float32Array(K);
  const dcoef = o.coefGrad ? new Float32Array(K * B) : null;
  const clamp = o.clampAbove;
  for (let k0 = 0; k0 < K; k0 += bs) {
    const kb = Math.min(bs, K - k0);
    const manifold = new Manifold(gpu, kb, B, coefs.subarray(k0 * B, (k0 + kb) * B));
    const tape = new Tape(gpu, manifold, !!o.coefGrad, o.basisGrad ?? true);
    const ctx = { gpu, manifold, tape, pairedMasks: o.pairedMasks };
    const out = crossEntropy(ctx, model.forward(ctx, x), labels);
    tape.backward(Array.from(weights).slice(k0, k0 + kb), {
      clampAbove: clamp === undefined || typeof clamp === 'number' ? clamp : Array.from(clamp).slice(k0, k0 + kb),
    });
    // both read-backs in flight together: one wait for the GPU, not two
    const [r, dc] = await Promise.all([out.read(), dcoef && manifold.dcoef ? manifold.dcoef.read() : null]);
    if (dcoef && dc) dcoef.set(dc, k0 * B);
    tape.dispose();
    manifold.dispose();
    loss.set(r.loss, k0);
    acc.set(r.acc, k0);
  }
  return { loss, acc, dcoef };
}

/**
 * Mean CE and accuracy of every point (coefs [K, B]) over the picked images of a dataset, in image chunks (each chunk
 * one batched pass per block of points), weighted by chunk size.
 */
export async function evaluateOnImages(
  gpu: Gpu,
  model: Model,
  coefs: Float32Array,
  d: Dataset,
  pick: ArrayLike<number>,
  chunk = 500,
): Promise<{ loss: Float32Array; acc: Float32Array }> {
  const K = coefs.length / model.B;
  const loss = new Float32Array(K),
    acc = new Float32Array(K);
  for (let i0 = 0; i0 < pick.length; i0 += chunk) {
    const idx = Array.prototype.slice.call(pick, i0, i0 + chunk) as number[];
    const { x, y } = batchOf(d, idx);
    const xt = Tensor.fromArray(gpu, [idx.length, ...d.shape], x, 'eval.x');
    const yt = Tensor.fromArray(gpu, [idx.length], y, 'eval.y', 'u32');
    const r = await evaluatePoints(gpu, model, coefs, xt, yt);
    xt.dispose();
    yt.dispose();
    for (let k = 0; k < K; k++) {
      loss[k] += (r.loss[k] * idx.length) / pick.length;
      acc[k] += (r.acc[k] * idx.length) / pick.length;
    }
  }
  return { loss, acc };
}

// Gradcheck cases of the cross-entropy loss.
import { Tensor } from '../tensor.ts';
import * as ops from './index.ts';
import * as ref from '../reference.ts';
import type { OpCase } from './case.ts';

export function ceCase(name: string, K: number, N: number, C: number, clamp?: number): OpCase {
  const labels = Array.from({ length: N }, (_, i) => (i * 7 + 3) % C);
  let labelsT: Tensor | null = null;
  const refLosses = (x: ArrayLike<number>) =>
    [...Array(K).keys()].map((k) =>
      ref.crossEntropyRef(Array.prototype.slice.call(x, k * N * C, (k + 1) * N * C), labels, N, C),
    );
  return {
    op: 'cross_entropy',
    name,
    K,
    B: 1,
    x: { shape: [N, C], scale: 2 },
    outLen: 2 * K,
    gpu: (ctx, x) => {
      labelsT = ctx.tape!.own(Tensor.fromArray(ctx.gpu, [N], labels, 'labels', 'u32'));
      const l = ops.crossEntropy(ctx, x, labelsT);
      return { y: l.out, backward: (tape, seed) => tape.backward(seed.slice(0, K), { clampAbove: clamp }) };
    },
    ref: (x) => {
      const ls = refLosses(x);
      return Float64Array.from([...ls.map((l) => l.loss), ...ls.map((l) => l.acc)]);
    },
    refLoss: (x, _p, _c, seed) =>
      refLosses(x).reduce((s, l, k) => s + (clamp !== undefined && l.loss > clamp ? 0 : seed[k] * l.loss), 0),
  };
}

/** Cross-entropy, plain and with the clamp of bad points. */
export function lossCases(): OpCase[] {
  return [ceCase('K7 N5 C10', 7, 5, 10), ceCase('K4 N3 C10 clamp 2.5', 4, 3, 10, 2.5)];
}

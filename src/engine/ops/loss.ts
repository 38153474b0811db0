// The loss: per-point softmax cross-entropy and accuracy; its backward seeds the tape with per-point weights and
// clamps.
import { Tensor, type AnyTensor, shapeStr } from '../tensor.ts';
import { spec } from '../kernel.ts';
import { crossEntropyBackwardKernel, crossEntropyForwardKernel } from './loss.wgsl.ts';
import { type Ctx, check, out, groups1d } from './ctx.ts';

export interface LossOutput {
  /** [2K]: mean cross-entropy of each point, then accuracy of each point. */
  out: Tensor;
  K: number;
  /** Reads back { loss [K], acc [K] }. */
  read(): Promise<{ loss: Float32Array; acc: Float32Array }>;
}

/** Softmax cross-entropy of logits [K, N, C] against labels [N] (u32): per-point mean loss and accuracy. */
export function crossEntropy(ctx: Ctx, logits: AnyTensor, labels: Tensor): LossOutput {
  const op = 'cross_entropy';
  check(
    logits.shape.length === 3 && logits.shape[0] === ctx.manifold.K,
    op,
    `logits ${shapeStr(logits.shape)} must be [K=${ctx.manifold.K}, N, classes]`,
  );
  const [K, N, C] = logits.shape;
  check(
    labels.dtype === 'u32' && labels.shape.length === 1 && labels.shape[0] === N,
    op,
    `labels ${shapeStr(labels.shape)} must be u32 [${N}]`,
  );
  const { gpu } = ctx;
  const o = out(ctx, [2 * K], 'loss');
  const U = { K, N, C };
  gpu.dispatch({
    kernel: spec(crossEntropyForwardKernel),
    buffers: { logits: logits.buffer, labels: labels.buffer, out: o.buffer },
    uniforms: U,
    groups: [K],
    what: `${op} logits ${shapeStr(logits.shape)}`,
  });
  const tape = ctx.tape;
  if (tape) {
    tape.loss = {
      K,
      seed: (pw: Tensor) => {
        const dl = new Tensor(gpu, logits.shape, 'dlogits');
        gpu.dispatch({
          kernel: spec(crossEntropyBackwardKernel),
          buffers: { logits: logits.buffer, labels: labels.buffer, out: o.buffer, pw: pw.buffer, dl: dl.buffer },
          uniforms: U,
          groups: groups1d(K * N),
          what: `${op} backward`,
        });
        tape.addGrad(logits, dl);
      },
    };
  }
  return {
    out: o,
    K,
    async read() {
      const v = await o.read();
      return { loss: v.slice(0, K), acc: v.slice(K) };
    },
  };
}

// ---------------------------------------------------------------- points and the toy loss

// The tape: ops push backward closures while they run forward; backward() runs them in reverse.
// Activation gradients live in a map keyed by the tensor that owns the storage (views share it);
// parameter gradients accumulate into Param.grad (basis space) and Manifold.dcoef.
import type { Gpu } from './device.ts';
import type { Manifold } from './manifold.ts';
import { Tensor, TensorView, type AnyTensor, shapeStr } from './tensor.ts';
import { accumulateKernel } from './ops/fold.wgsl.ts';
import { fold } from './kernel.ts';

export const baseOf = (t: AnyTensor): Tensor => (t instanceof TensorView ? t.base : t);

const K_ACCUMULATE = accumulateKernel();

interface Entry {
  name: string;
  run: () => void;
}

/** The per-point loss node that backward(weights) seeds. */
export interface LossNode {
  K: number;
  /** Runs the loss backward with per-point weights and clamp thresholds [2K] on the GPU. */
  seed: (pw: Tensor) => void;
}

export interface BackwardOptions {
  /** Per-point clamp threshold (or one for all): a point whose loss is above it gets zero gradient. */
  clampAbove?: number | ArrayLike<number>;
}

export class Tape {
  private entries: Entry[] = [];
  private grads = new Map<Tensor, Tensor>();
  private owned: Tensor[] = [];
  loss: LossNode | null = null;

  /**
   * coefGrad: also accumulate dL/dC into manifold.dcoef. basisGrad = false skips the basis gradients (each Param's
   * grad is left untouched): for callers that train only the coefficients (random-subspace training), where the
   * basis gradients would cost one weight-gradient pass per few basis tensors.
   */
  constructor(
    readonly gpu: Gpu,
    readonly manifold: Manifold,
    readonly coefGrad = false,
    readonly basisGrad = true,
  ) {
    if (!coefGrad && !basisGrad)
      throw new Error('Tape: neither coefficient nor basis gradients requested: nothing to compute');
  }

  record(name: string, run: () => void): void {
    this.entries.push({ name, run });
  }

  /** Keeps a tensor alive until the tape is disposed. */
  own<T extends Tensor>(t: T): T {
    this.owned.push(t);
    return t;
  }

  gradOf(t: AnyTensor): Tensor | null {
    return this.grads.get(baseOf(t)) ?? null;
  }

  /** Adds g to t's gradient (takes ownership of g). */
  addGrad(t: AnyTensor, g: Tensor): void {
    const b = baseOf(t);
    if (g.size !== b.size)
      throw new Error(`tape: gradient ${shapeStr(g.shape)} does not match ${b.label} ${shapeStr(b.shape)}`);
    const prev = this.grads.get(b);
    if (!prev) {
      this.grads.set(b, g);
      return;
    }
    const [gx, gy] = fold(Math.ceil(g.size / 256));
    this.gpu.dispatch({
      kernel: K_ACCUMULATE,
      buffers: { a: g.buffer, y: prev.buffer },
      uniforms: { n: g.size },
      groups: [gx, gy],
      what: `grad of ${b.label} ${shapeStr(b.shape)}`,
    });
    g.dispose();
  }

  /** Runs the recorded backward closures in reverse, from a seed gradient dy of output y. */
  backwardFrom(y: AnyTensor, dy: Tensor): void {
    this.addGrad(y, dy);
    this.runAll();
  }

  /**
   * Gradients of sum_k weights[k] * L_k (L from the recorded cross-entropy) for every basis tensor on the
   * tape, and for the coefficients when the tape was made with coefGrad.
   */
  backward(weights: ArrayLike<number>, opts: BackwardOptions = {}): void {
    if (!this.loss) throw new Error('tape.backward: no loss was recorded (call crossEntropy with this tape)');
    const K = this.loss.K;
    if (weights.length !== K) throw new Error(`tape.backward: ${weights.length} weights for ${K} points`);
    const pw = new Float32Array(2 * K);
    pw.set(Array.from(weights));
    const c = opts.clampAbove;
    for (let k = 0; k < K; k++) pw[K + k] = c === undefined ? Infinity : typeof c === 'number' ? c : c[k];
    const t = this.own(Tensor.fromArray(this.gpu, [2 * K], pw, 'loss.weights'));
    this.loss.seed(t);
    this.runAll();
  }

  private runAll(): void {
    for (let i = this.entries.length - 1; i >= 0; i--) this.entries[i].run();
    this.entries = [];
  }

  dispose(): void {
    for (const g of this.grads.values()) g.dispose();
    this.grads.clear();
    for (const t of this.owned) t.dispose();
    this.owned = [];
    this.entries = [];
    this.loss = null;
  }
}

// Optimizers over basis tensors (and any other trainable tensors held as Params): SGD with momentum,
// Nesterov and weight decay, and Adam, both PyTorch-exact; optional global-norm gradient clipping over
// all parameters, computed on the GPU (no read-back inside a step).
import type { Gpu } from './device.ts';
import type { Param } from './manifold.ts';
import { Tensor } from './tensor.ts';
import { adamKernel, normFinishKernel, sgdKernel, sumSquaresKernel } from './optim.wgsl.ts';
import { fold, spec } from './kernel.ts';

const K_NORM = normFinishKernel();

export interface ClipOptions {
  /** Clip the global L2 norm of all gradients to this value (like torch.nn.utils.clip_grad_norm_); 0 = off. */
  maxNorm?: number;
}

/** Writes [norm, scale] of the gradients of `params` into a 2-float tensor. */
export function gradNorm(gpu: Gpu, params: Param[], maxNorm = 0): Tensor {
  const counts = params.map((p) => Math.ceil((p.size * p.B) / 1024));
  const total = counts.reduce((a, b) => a + b, 0);
  const part = new Tensor(gpu, [Math.max(1, total)], 'grad.sumsq');
  let off = 0;
  params.forEach((p, i) => {
    const g = p.ensureGrad();
    gpu.dispatch({
      kernel: spec(sumSquaresKernel, gpu.reduceThreads),
      buffers: { g: g.buffer, part: part.buffer },
      uniforms: { n: g.size, off },
      groups: fold(counts[i]),
      what: `grad norm of ${p.name}`,
    });
    off += counts[i];
  });
  const norm = new Tensor(gpu, [2], 'grad.norm');
  gpu.dispatch({
    kernel: K_NORM,
    buffers: { part: part.buffer, norm: norm.buffer },
    uniforms: { n: total, maxNorm },
    groups: [1],
    what: 'grad norm',
  });
  part.dispose();
  return norm;
}

export abstract class Optimizer {
  abstract readonly stateSize: number;
  protected t = 0;
  /** The last step's gradient norm [norm, clip scale] (before clipping); read it with lastNorm(). */
  private norm: Tensor | null = null;
  constructor(
    readonly gpu: Gpu,
    readonly params: Param[],
    readonly clip: ClipOptions = {},
  ) {}

  /** Number of updates applied (Adam's bias-correction step); settable when restoring a checkpoint. */
  get steps(): number {
    return this.t;
  }
  set steps(v: number) {
    this.t = v;
  }

  /** Applies one update from the accumulated gradients, then zeroes them. */
  step(): void {
    this.t++;
    this.norm?.dispose();
    this.norm = gradNorm(this.gpu, this.params, this.clip.maxNorm ?? 0);
    for (const p of this.params) this.update(p, this.norm);
    for (const p of this.params) p.zeroGrad();
  }

  async lastNorm(): Promise<number | null> {
    return this.norm ? (await this.norm.read())[0] : null;
  }

  protected abstract update(p: Param, norm: Tensor): void;

  /** Per-parameter state tensors (momentum; Adam's m and v), allocated on first use. */
  stateOf(p: Param, n = this.stateSize): Tensor[] {
    while (p.state.length < n) p.state.push(Tensor.zeros(this.gpu, p.basis.shape, `opt.${p.name}.${p.state.length}`));
    return p.state;
  }

  dispose(): void {
    this.norm?.dispose();
    this.norm = null;
  }
}

export interface SgdOptions extends ClipOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD extends Optimizer {
  readonly stateSize = 1;
  constructor(
    gpu: Gpu,
    params: Param[],
    public o: SgdOptions,
  ) {
    super(gpu, params, o);
  }
  protected update(p: Param, norm: Tensor): void {
    const [m] = this.stateOf(p, 1);
    const n = p.basis.size;
    this.gpu.dispatch({
      kernel: spec(sgdKernel, this.gpu.elemsPerThread),
      buffers: { p: p.basis.buffer, g_: p.ensureGrad().buffer, m: m.buffer, norm: norm.buffer },
      uniforms: {
        n,
        lr: this.o.lr,
        mu: this.o.momentum ?? 0,
        wd: this.o.weightDecay ?? 0,
        nesterov: this.o.nesterov ? 1 : 0,
      },
      groups: fold(Math.ceil(n / (256 * this.gpu.elemsPerThread))),
      what: `sgd ${p.name}`,
    });
  }
}

export interface AdamOptions extends ClipOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class Adam extends Optimizer {
  readonly stateSize = 2;
  constructor(
    gpu: Gpu,
    params: Param[],
    public o: AdamOptions,
  ) {
    super(gpu, params, o);
  }
  protected update(p: Param, norm: Tensor): void {
    const [m, v] = this.stateOf(p, 2);
    const b1 = this.o.beta1 ?? 0.9,
      b2 = this.o.beta2 ?? 0.999;
    const n = p.basis.size;
    this.gpu.dispatch({
      kernel: spec(adamKernel, this.gpu.elemsPerThread),
      buffers: { p: p.basis.buffer, g_: p.ensureGrad().buffer, m: m.buffer, v: v.buffer, norm: norm.buffer },
      uniforms: {
        n,
        lr: this.o.lr,
        b1,
        b2,
        eps: this.o.eps ?? 1e-8,
        wd: this.o.weightDecay ?? 0,
        c1: 1 - b1 ** this.t,
        c2: 1 - b2 ** this.t,
      },
      groups: fold(Math.ceil(n / (256 * this.gpu.elemsPerThread))),
      what: `adam ${p.name}`,
    });
  }
}

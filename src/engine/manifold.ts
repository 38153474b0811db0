// The weight manifold: K points, B basis vectors, one coefficient table C [K, B] shared by every parameter.
// Point k's value of a parameter is W_k = sum_b C[k, b] * basis[b]. Ordinary training: K = B = 1, C = [[1]].
import type { Gpu } from './device.ts';
import { Tensor, numel, shapeStr } from './tensor.ts';

export class Manifold {
  readonly coef: Tensor;
  /** dL/dC [K, B], accumulated by backward when the tape asks for coefficient gradients. */
  dcoef: Tensor | null = null;

  constructor(
    readonly gpu: Gpu,
    readonly K: number,
    readonly B: number,
    coefs?: ArrayLike<number>,
  ) {
    const values = coefs ?? (K === 1 && B === 1 ? [1] : undefined);
    if (!values) throw new Error(`manifold: coefficients [${K},${B}] required`);
    this.coef = Tensor.fromArray(gpu, [K, B], values, 'manifold.coef');
  }

  static single(gpu: Gpu): Manifold {
    return new Manifold(gpu, 1, 1, [1]);
  }

  setCoefs(values: ArrayLike<number>): void {
    this.coef.write(values);
  }

  private _eye: Tensor | null = null;
  /** The B x B identity: coefficients of B "points" that are the basis vectors themselves. */
  eye(): Tensor {
    if (!this._eye)
      this._eye = Tensor.fromArray(
        this.gpu,
        [this.B, this.B],
        Array.from({ length: this.B * this.B }, (_, i) => (i % (this.B + 1) === 0 ? 1 : 0)),
        'manifold.eye',
      );
    return this._eye;
  }

  private _ones: Tensor | null = null;
  /** max(K, B) ones: the coefficients of a pass whose points (or basis tensors) each have their own single "basis". */
  ones(): Tensor {
    if (!this._ones)
      this._ones = Tensor.fromArray(
        this.gpu,
        [Math.max(this.K, this.B)],
        new Float32Array(Math.max(this.K, this.B)).fill(1),
        'manifold.ones',
      );
    return this._ones;
  }

  ensureCoefGrad(): Tensor {
    if (!this.dcoef) this.dcoef = Tensor.zeros(this.gpu, [this.K, this.B], 'manifold.dcoef');
    return this.dcoef;
  }

  dispose(): void {
    this.coef.dispose();
    this._eye?.dispose();
    this._ones?.dispose();
    this._eye = null;
    this._ones = null;
    this.dcoef?.dispose();
    this.dcoef = null;
  }
}

/** A parameter tensor held as B basis tensors [B, ...shape], with its basis gradient (accumulated). */
export class Param {
  readonly basis: Tensor;
  grad: Tensor | null = null;
  /** Optimizer state (momentum, Adam moments), allocated by the optimizer. */
  state: Tensor[] = [];

  constructor(
    readonly gpu: Gpu,
    readonly name: string,
    readonly shape: readonly number[],
    readonly B: number,
    init?: ArrayLike<number>,
  ) {
    this.basis = new Tensor(gpu, [B, ...shape], `param.${name}`);
    if (init) {
      if (init.length !== B * numel(shape))
        throw new Error(`param ${name}: ${init.length} values for basis [${B}]x${shapeStr(shape)}`);
      this.basis.write(init);
    }
  }

  get size(): number {
    return numel(this.shape);
  }

  ensureGrad(): Tensor {
    if (!this.grad) this.grad = Tensor.zeros(this.gpu, this.basis.shape, `grad.${this.name}`);
    return this.grad;
  }

  zeroGrad(): void {
    if (this.grad) this.gpu.commandEncoder().clearBuffer(this.grad.buffer, 0, this.grad.size * 4);
  }

  dispose(): void {
    this.basis.dispose();
    this.grad?.dispose();
    this.grad = null;
    for (const s of this.state) s.dispose();
    this.state = [];
  }
}

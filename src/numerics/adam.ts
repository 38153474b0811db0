// Adam on the host over a flat vector (for the few coefficients of low-dimensional training).

/** Adam over a flat vector, with a mask of trainable entries and a cosine learning-rate decay (host side: d is
 * small). */
export class HostAdam {
  private m: Float64Array;
  private v: Float64Array;
  private t = 0;
  /** steps: the cosine decay's length (0: a constant learning rate, as Adam in PyTorch). */
  constructor(
    n: number,
    readonly lr: number,
    readonly steps: number,
  ) {
    this.m = new Float64Array(n);
    this.v = new Float64Array(n);
  }
  step(x: Float32Array, g: ArrayLike<number>, mask?: Uint8Array): void {
    this.t++;
    const lr =
      this.steps > 0 ? this.lr * 0.5 * (1 + Math.cos((Math.PI * Math.min(this.t, this.steps)) / this.steps)) : this.lr;
    const c1 = 1 - 0.9 ** this.t,
      c2 = 1 - 0.999 ** this.t;
    for (let i = 0; i < x.length; i++) {
      if (mask && !mask[i]) continue;
      this.m[i] = 0.9 * this.m[i] + 0.1 * g[i];
      this.v[i] = 0.999 * this.v[i] + 0.001 * g[i] * g[i];
      x[i] -= (lr * this.m[i]) / c1 / (Math.sqrt(this.v[i] / c2) + 1e-8);
    }
  }
}

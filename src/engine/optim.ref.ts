// float64 CPU references of the optimizer steps (PyTorch's SGD and Adam, gradient-norm clipping).

/** PyTorch's SGD step (momentum buffer starts at 0, no dampening), in place. */
export function sgdRef(
  p: Float64Array,
  g: ArrayLike<number>,
  buf: Float64Array,
  o: { lr: number; momentum: number; weightDecay: number; nesterov: boolean },
): void {
  for (let i = 0; i < p.length; i++) {
    const d = g[i] + o.weightDecay * p[i];
    buf[i] = o.momentum * buf[i] + d;
    p[i] -= o.lr * (o.nesterov ? d + o.momentum * buf[i] : buf[i]);
  }
}

/** PyTorch's Adam step t (1-based), L2 weight decay added to the gradient, in place. */
export function adamRef(
  p: Float64Array,
  g: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  t: number,
  o: { lr: number; b1: number; b2: number; eps: number; weightDecay: number },
): void {
  for (let i = 0; i < p.length; i++) {
    const d = g[i] + o.weightDecay * p[i];
    m[i] = o.b1 * m[i] + (1 - o.b1) * d;
    v[i] = o.b2 * v[i] + (1 - o.b2) * d * d;
    const mh = m[i] / (1 - o.b1 ** t),
      vh = v[i] / (1 - o.b2 ** t);
    p[i] -= (o.lr * mh) / (Math.sqrt(vh) + o.eps);
  }
}

/** torch.nn.utils.clip_grad_norm_: scales all gradients by min(1, maxNorm / (norm + 1e-6)); returns the norm. */
export function clipRef(grads: Float64Array[], maxNorm: number): number {
  const norm = Math.sqrt(grads.reduce((s, g) => s + g.reduce((a, v) => a + v * v, 0), 0));
  const c = maxNorm / (norm + 1e-6);
  if (c < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= c;
  return norm;
}

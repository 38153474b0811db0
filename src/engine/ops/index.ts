// The engine's ops over a weight manifold, one module per family (each beside its kernels, its float64 reference
// and its gradcheck cases): every op dispatches its forward kernel for all K points at once and, when the context
// has a tape, records its backward.
export * from './ctx.ts';
export * from './conv.ts';
export * from './gconv.ts';
export * from './pool.ts';
export * from './batchnorm.ts';
export * from './elementwise.ts';
export * from './fold.ts';
export * from './loss.ts';

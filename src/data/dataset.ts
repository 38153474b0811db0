// A labelled image data set in memory, and batches of it.

export interface Dataset {
  /** [n, C, H, W] floats. */
  images: Float32Array;
  labels: Uint32Array;
  n: number;
  shape: [number, number, number];
  classes: number;
}

/** The images and labels at the given indices, as one batch. */
export function batchOf(d: Dataset, idx: ArrayLike<number>): { x: Float32Array; y: Uint32Array } {
  const per = d.shape[0] * d.shape[1] * d.shape[2];
  const x = new Float32Array(idx.length * per);
  const y = new Uint32Array(idx.length);
  for (let i = 0; i < idx.length; i++) {
    x.set(d.images.subarray(idx[i] * per, (idx[i] + 1) * per), i * per);
    y[i] = d.labels[idx[i]];
  }
  return { x, y };
}

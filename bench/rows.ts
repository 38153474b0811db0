// A row of the benchmark table, and the median the rows are made of.

export const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

export interface BenchRow {
  impl: string;
  workload: string;
  bn: boolean;
  cells: number;
  batch: number;
  ms_per_step: number;
  /** min..max of the timed steps' wall times */
  ms_spread: [number, number];
  gpu_ms_per_step: number | null;
  cell_images_per_s: number;
  gflops: number;
  peak_bytes: number | null;
  /** bytes that K materialized weight copies and their activations would take */
  materialized_bytes: number;
  /** GFLOP/s as a share of the adapter's matmul in the conv kernels' family (the roofline probe) */
  share_of_matmul?: number | null;
  /** peers: largest difference of the per-cell losses from loss-atlas's on the same weights and batch */
  max_loss_diff?: number;
  /** surface workloads: grid points evaluated per second (cells = points, batch = images per point) */
  points_per_s?: number;
  /** peers timed on a subset of the points (their per-point rate is what is reported) */
  timed_points?: number;
  /** the imported-model workload: its GFLOP/s over the zoo ResNet's on the same grid and images */
  per_flop_vs_zoo?: number;
}

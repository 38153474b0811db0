// The MPO training loop without files: the plane and its optimizer, the batch and the cells of each step drawn from
// (seed, step) alone, the epoch bookkeeping of the early stop, the grid evaluation and the plane's tensors. The
// command (mpo.ts) adds checkpoints, logs and pictures around it; the web page runs it as it is, so that a page and
// the command line with the same settings take the same steps.
import type { Gpu } from '../engine/device.ts';
import { Adam } from '../engine/optim.ts';
import { permutation, rng } from '../engine/random.ts';
import { Tensor } from '../engine/tensor.ts';
import { batchOf, type Dataset } from '../data/dataset.ts';
import type { NamedTensor } from '../data/formats.ts';
import type { ModelSpec } from '../models/zoo.ts';
import { type Mask, ternary } from './masks.ts';
import { Plane, type PlaneValues } from './plane.ts';
import { evaluateGrid, gridCoefs } from './evaluate.ts';
import { type StepResult, mpoStep } from './step.ts';

/** The settings a step depends on (MpoConfig has them, with the run's other settings). */
export interface TrainerSettings {
  batch: number;
  lr: number;
  /** Good and bad cells sampled per step (each at most this many). */
  cellsPerStep: number;
  /** c in J = mean_good CE - c * mean_bad clamp(CE, 0, tau). */
  negCoef: number;
  /** tau: a bad cell above it gets no gradient. */
  clamp: number;
  clipNorm: number;
  seed: number;
  /** Early stop after this many epochs when good_acc - bad_acc < 0.01 over an epoch; 0 = off. */
  warmupEpochs: number;
}

/** What a checkpoint keeps of the loop besides the plane and the optimizer. */
export interface TrainState {
  step: number;
  seconds: number;
  /** good - bad accuracy of the sampled cells, summed over the current epoch's steps */
  epochDiff: number;
  epochSteps: number;
  epochAccs: number[];
  stoppedEarly: boolean;
}

export const freshState = (): TrainState => ({
  step: 0,
  seconds: 0,
  epochDiff: 0,
  epochSteps: 0,
  epochAccs: [],
  stoppedEarly: false,
});

/** A deterministic stream for (seed, step, tag): sampling depends only on these, so resumed runs repeat it exactly. */
export const streamFor = (seed: number, step: number, tag: number) =>
  rng((seed * 1_000_003 + step * 7919 + tag * 104_729) >>> 0);

function sampleWithout(n: number, k: number, r: () => number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < Math.min(k, n); i++) {
    const j = i + Math.floor(r() * (n - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, Math.min(k, n));
}

/** One step's outcome: the step result with the cells it sampled (grid indices, good ones first). */
export interface TrainerStep extends StepResult {
  step: number;
  cells: number[];
  nGood: number;
  /** the epoch ended with this step; its mean good - bad accuracy */
  epochEnd: number | null;
}

export class MpoTrainer {
  readonly tern: Int8Array;
  readonly good: number[] = [];
  readonly bad: number[] = [];
  readonly opt: Adam;
  private perm: Uint32Array | null = null;
  private permEpoch = -1;

  constructor(
    readonly gpu: Gpu,
    readonly spec: ModelSpec,
    readonly mask: Mask,
    readonly train: Dataset,
    readonly s: TrainerSettings,
    readonly plane: Plane,
    readonly state: TrainState = freshState(),
  ) {
    this.tern = ternary(mask);
    this.tern.forEach((v, i) => (v > 0 ? this.good.push(i) : v < 0 ? this.bad.push(i) : 0));
    this.opt = new Adam(gpu, plane.trainables(), { lr: s.lr, maxNorm: s.clipNorm });
    this.opt.steps = state.step;
  }

  /** A fresh plane through the model's start (its given weights, or an initialization from the seed). */
  static fresh(
    gpu: Gpu,
    spec: ModelSpec,
    mask: Mask,
    train: Dataset,
    s: TrainerSettings,
    start?: Float32Array[],
  ): MpoTrainer {
    return new MpoTrainer(gpu, spec, mask, train, s, Plane.fresh(gpu, spec.layers, s.seed, start));
  }

  /** A plane from saved values, its optimizer state and the loop's state (a checkpoint). */
  static saved(
    gpu: Gpu,
    spec: ModelSpec,
    mask: Mask,
    train: Dataset,
    s: TrainerSettings,
    plane: PlaneValues,
    adam: { m: Float32Array; v: Float32Array }[],
    state: TrainState,
  ): MpoTrainer {
    const t = new MpoTrainer(gpu, spec, mask, train, s, new Plane(gpu, spec.layers, plane), state);
    t.plane.trainables().forEach((p, i) => {
      const [m, v] = t.opt.stateOf(p);
      m.write(adam[i].m);
      v.write(adam[i].v);
    });
    return t;
  }

  get itersPerEpoch(): number {
    return Math.ceil(this.train.n / this.s.batch);
  }

  /** (row, column) of a cell relative to the mask's centre. */
  offsetOf(cell: number): [number, number] {
    const { H, W } = this.mask;
    return [Math.floor(cell / W) - Math.floor(H / 2), (cell % W) - Math.floor(W / 2)];
  }

  /** Takes the next step (its batch and cells drawn from the seed and the step's index) and updates the state. */
  async step(): Promise<TrainerStep> {
    const { s, state, train } = this;
    const step = state.step;
    const epoch = Math.floor(step / this.itersPerEpoch),
      bi = step % this.itersPerEpoch;
    if (epoch !== this.permEpoch) {
      this.perm = permutation(train.n, streamFor(s.seed, epoch, 1));
      this.permEpoch = epoch;
    }
    const idx = this.perm!.subarray(bi * s.batch, Math.min(train.n, (bi + 1) * s.batch));
    const { x, y } = batchOf(train, idx);
    const cr = streamFor(s.seed, step, 2);
    const gs = sampleWithout(this.good.length, s.cellsPerStep, cr).map((i) => this.good[i]);
    const bs = sampleWithout(this.bad.length, s.cellsPerStep, cr).map((i) => this.bad[i]);
    const cells = [...gs, ...bs];
    const xt = Tensor.fromArray(this.gpu, [idx.length, ...this.spec.input], x, 'batch.x');
    const yt = Tensor.fromArray(this.gpu, [idx.length], y, 'batch.y', 'u32');
    let res: StepResult;
    try {
      res = await mpoStep(
        this.gpu,
        this.plane,
        this.opt,
        cells.map((c) => this.offsetOf(c)),
        gs.length,
        xt,
        yt,
        s,
      );
    } finally {
      xt.dispose();
      yt.dispose();
    }
    state.step = step + 1;
    state.epochDiff += res.goodAcc - res.badAcc;
    state.epochSteps++;
    let epochEnd: number | null = null;
    if (bi === this.itersPerEpoch - 1) {
      epochEnd = state.epochDiff / state.epochSteps;
      state.epochAccs.push(epochEnd);
      if (s.warmupEpochs > 0 && epoch + 1 >= s.warmupEpochs && epochEnd < 0.01) state.stoppedEarly = true;
      state.epochDiff = 0;
      state.epochSteps = 0;
    }
    return { ...res, step: state.step, cells, nGood: gs.length, epochEnd };
  }

  /** Loss and accuracy of every cell of the padded grid on the picked images of d. */
  async evaluate(d: Dataset, pick: number[], pad: number) {
    const scale = (await this.plane.scale.basis.read())[0];
    const { coefs, GH, GW } = gridCoefs(this.mask.H, this.mask.W, scale, pad);
    return { ...(await evaluateGrid(this.gpu, this.plane, coefs, d, pick)), GH, GW };
  }

  /** The plane as named tensors (origin/NAME, right/NAME, up/NAME, scale), as plane.safetensors holds it. */
  async planeTensors(): Promise<Record<string, NamedTensor>> {
    const e = await this.plane.effective();
    const scale = (await this.plane.scale.basis.read())[0];
    const st: Record<string, NamedTensor> = {};
    e.names.forEach((nm, i) => {
      st[`origin/${nm}`] = { shape: e.shapes[i], data: e.origin[i] };
      st[`right/${nm}`] = { shape: e.shapes[i], data: e.right[i] };
      st[`up/${nm}`] = { shape: e.shapes[i], data: e.up[i] };
    });
    st.scale = { shape: [1], data: Float32Array.of(scale) };
    return st;
  }

  dispose(): void {
    this.opt.dispose();
    this.plane.dispose();
  }
}

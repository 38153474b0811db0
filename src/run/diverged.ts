// The one way a training loop reports divergence: the losses it reads back each step hold NaN or Inf. It stops at
// once, before anything is written as complete, with a message naming the step, the value and what to try.

/** A training loop's losses stopped being finite. */
export class Diverged extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Diverged';
  }
}

export interface DivergedAt {
  /** What was training, for the message: 'connect (the bend of the bezier curve)'. */
  what: string;
  /** The 1-based step whose losses were read. */
  step: number;
  /** What to try: 'a lower --lr than 0.01'. */
  advice: string;
  /** What became of the run's saved state: 'no checkpoint is kept (the run is short: start it again)'. */
  kept?: string;
  /** Names point i of a batched loss ('d = 40'), when there is more than one. */
  label?: (i: number) => string;
}

/** Throws Diverged when one of `losses` is NaN or Inf. */
export function checkFinite(losses: ArrayLike<number>, at: DivergedAt): void {
  for (let i = 0; i < losses.length; i++) {
    const v = losses[i];
    if (Number.isFinite(v)) continue;
    const of = losses.length > 1 ? ` of ${at.label ? at.label(i) : `point ${i}`}` : '';
    const kept = at.kept ?? 'nothing was written as complete (no metrics.json)';
    throw new Diverged(
      `${at.what}: training diverged at step ${at.step}: the loss${of} is ${v}; try ${at.advice}; ${kept}`,
    );
  }
}

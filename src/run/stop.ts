// Ctrl-C (SIGINT) and SIGTERM for long runs: the first asks the run to stop at its next checkpointable point; one
// arriving more than REPEAT_MS later quits at once. A repeat within REPEAT_MS is the same Ctrl-C relayed again: the
// terminal signals npm, npx, tsx and node together, and the wrappers pass it on (two SIGINTs arrived at node in
// most runs under `npx tsx` and `timeout --signal=INT`), which used to end the run before its checkpoint.
import { Interrupted } from './interrupted.ts';

export const REPEAT_MS = 2000;

export interface StopSignal {
  /** Whether a stop was asked for. */
  readonly stopped: () => boolean;
  /** Removes the handlers. */
  dispose(): void;
}

export function stopOnSignal(
  message: string,
  signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'],
  now = () => Date.now(),
): StopSignal {
  let first = -1;
  const onSig = () => {
    const t = now();
    if (first < 0) {
      first = t;
      process.stderr.write(`\n${message}\n`);
    } else if (t - first > REPEAT_MS) {
      process.exit(130);
    }
  };
  for (const s of signals) process.on(s, onSig);
  return { stopped: () => first >= 0, dispose: () => signals.forEach((s) => process.off(s, onSig)) };
}

/**
 * Runs a long job that Ctrl-C / SIGTERM ask to stop at its next checkpointable point (`after`: "this step", "this
 * block"): a job that stops so throws Interrupted, whose message and way to continue are printed; the exit status is
 * then 130 (as for SIGINT).
 */
export async function untilStopped(
  after: string,
  run: (shouldStop: () => boolean) => Promise<number>,
): Promise<number> {
  const sig = stopOnSignal(`stopping after ${after} (Ctrl-C again to quit at once) ...`);
  try {
    return await run(sig.stopped);
  } catch (e) {
    if (!(e instanceof Interrupted)) throw e;
    console.error(`\n${e.advice}`);
    return 130;
  } finally {
    sig.dispose();
  }
}

// Ctrl-C (SIGINT) and SIGTERM for long runs: the first asks the run to stop at its next checkpointable point; one
// arriving more than REPEAT_MS later quits at once. A repeat within REPEAT_MS is the same Ctrl-C relayed again: the
// terminal signals npm, npx, tsx and node together, and the wrappers pass it on (two SIGINTs arrived at node in
// most runs under `npx tsx` and `timeout --signal=INT`), which used to end the run before its checkpoint.
export const REPEAT_MS = 2000;

export interface StopSignal {
  /** Whether a stop was asked for. */
  readonly stopped: () => boolean;
  /** Removes the handlers. */
  dispose(): void;
}

export function stopOnSignal(message: string, signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'], now = () => Date.now()): StopSignal {
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

// Quiet by default. On CPU adapters (lavapipe, SwiftShader) Dawn prints two "artificially reduced" limit warnings
// from native code straight to the process's stderr when the first adapter is made: JavaScript cannot hold them back
// inside that process. So the command line runs the command as a child process whose stderr passes through a line
// filter that drops exactly those two lines; everything else (progress, errors) passes unchanged and at once.
// --verbose, or LOSS_ATLAS_ONE_PROCESS=1, runs in one process and shows them.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** The two warnings Dawn prints on adapters that report unbounded dynamic-buffer limits. */
export const DAWN_NOISE = new RegExp(
  '^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \\d+ to \\d+' +
    ' to fit dynamic offset allocation limit\\.$',
);
const PREFIX = 'Warning: maxDynamic';

/**
 * A line filter: text goes in by chunks, lines matching `drop` are held back, the rest comes out as soon as it is
 * known not to be such a line (a partial line is held only while it could still become one).
 */
export function lineFilter(drop: RegExp, write: (s: string) => void) {
  let pending = '';
  const flushPartial = () => {
    if (pending && !(PREFIX.startsWith(pending) || pending.startsWith(PREFIX))) {
      write(pending);
      pending = '';
    }
  };
  return {
    push(chunk: string) {
      pending += chunk;
      let nl = pending.indexOf('\n');
      while (nl >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!drop.test(line.replace(/\r$/, ''))) write(`${line}\n`);
        nl = pending.indexOf('\n');
      }
      flushPartial();
    },
    end() {
      if (pending && !drop.test(pending)) write(pending);
      pending = '';
    },
  };
}

/** Whether this process should run the command itself (rather than as a filtered child). */
export function runsItself(argv: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  return env.LOSS_ATLAS_ONE_PROCESS === '1' || env.LOSS_ATLAS_PARENT !== undefined || argv.includes('--verbose');
}

/**
 * Runs this program again as a child with the same arguments, its stderr filtered; resolves to its exit code
 * (128 + the signal's number when a signal ended it). SIGINT and SIGTERM are passed on (a terminal's Ctrl-C reaches
 * both processes: the command takes the two as one request).
 */
export function runFiltered(script: string, argv: string[]): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, script, ...argv], {
    stdio: ['inherit', 'inherit', 'pipe'],
    env: { ...process.env, LOSS_ATLAS_PARENT: String(process.pid) },
  });
  const f = lineFilter(DAWN_NOISE, (s) => process.stderr.write(s));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => f.push(c));
  const pass = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onInt = pass('SIGINT'),
    onTerm = pass('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return new Promise((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`loss-atlas: cannot start the command (${e.message})\n`);
      resolve(1);
    });
    child.on('close', (code, sig) => {
      f.end();
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(code ?? 128 + (sig ? (constants.signals[sig] ?? 0) : 0));
    });
  });
}

/**
 * In the child: when the parent is gone (killed with SIGKILL, which it cannot pass on), stop as on SIGTERM, so that
 * a run saves its checkpoint and ends instead of running on unseen.
 */
export function stopWithParent(env: NodeJS.ProcessEnv = process.env): void {
  const parent = Number(env.LOSS_ATLAS_PARENT);
  if (!Number.isInteger(parent) || parent <= 0) return;
  // with the parent gone, stderr is a pipe nobody reads: its write errors must not end the run before it saves
  process.stderr.on('error', () => {});
  const t = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(t);
    process.kill(process.pid, 'SIGTERM');
  }, 500);
  t.unref();
}

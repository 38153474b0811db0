// Job-array tasks of a multi-run command (the figure sets, the tunnel sweep): the command lists its steps, each with
// the directory it writes and the test of being done; `--task i/n` runs every n-th step of each stage, `--gather`
// builds the tables and plots once every step is done. Stage-2 steps need the outputs of stage-1 steps (a connector
// needs its optima): a task runs those whose inputs are there and names the others, so the same job array run a
// second time (after the first) finishes them.
import type { Shard } from './grid.ts';
import { readRunConfig } from './run-info.ts';

export interface Step {
  /** The step's directory relative to --out (what the messages name). */
  name: string;
  /** 1: needs nothing of the other steps; 2: needs the outputs of stage-1 steps. */
  stage: 1 | 2;
  done: () => boolean;
  /** Stage 2: the names of the steps whose outputs it needs and that are not done yet. */
  waitsFor?: () => string[];
  run: () => Promise<void>;
}

/**
 * Refuses a task or gathering whose settings (`keys` of `settings`) differ from those the set in `out` was started
 * with (its config.json), naming the first that differs: the tasks of one set share its sizes.
 */
export function checkSameSettings(out: string, settings: Record<string, unknown>, keys: string[]): void {
  let saved: Record<string, unknown>;
  try {
    saved = readRunConfig(out).settings;
  } catch {
    return; // no config.json yet: the first task writes it
  }
  for (const k of keys) {
    if (JSON.stringify(saved[k]) !== JSON.stringify(settings[k])) {
      throw new Error(
        `${out}/config.json: the set was started with ${k} ${JSON.stringify(saved[k])}, this command has ` +
          `${JSON.stringify(settings[k])}; give every task and the gathering the same flags (or another --out)`,
      );
    }
  }
}

/** The steps `task` owns: every n-th step of each stage, counted within the stage (all of them without a task). */
export function stepsOf(steps: Step[], task: Shard | undefined): Step[] {
  if (!task) return steps;
  const mine: Step[] = [];
  for (const stage of [1, 2]) {
    const s = steps.filter((x) => x.stage === stage);
    mine.push(...s.filter((_, j) => j % task.n === task.i));
  }
  return mine;
}

export interface TaskResult {
  ran: string[];
  /** The task's stage-2 steps whose inputs are not done, each with what it waits for. */
  waiting: { name: string; waitsFor: string[] }[];
}

/**
 * Runs the steps `task` owns that are not done (every step without a task, in the order given), stage 1 first. A
 * stage-2 step whose inputs are missing is left waiting in a task and is an error without one.
 */
export async function runSteps(steps: Step[], task: Shard | undefined): Promise<TaskResult> {
  const r: TaskResult = { ran: [], waiting: [] };
  for (const s of stepsOf(steps, task)) {
    if (s.done()) continue;
    const missing = s.waitsFor?.() ?? [];
    if (missing.length) {
      if (!task) throw new Error(`${s.name}: its inputs ${missing.join(', ')} are missing (steps out of order)`);
      r.waiting.push({ name: s.name, waitsFor: missing });
      continue;
    }
    await s.run();
    r.ran.push(s.name);
  }
  return r;
}

/** The names of the steps not done, for --gather. */
function unfinished(steps: Step[]): string[] {
  return steps.filter((s) => !s.done()).map((s) => s.name);
}

/** What a task says when it stops: what it ran, what waits, and the next command. */
export function taskSummary(command: string, out: string, task: Shard, steps: Step[], r: TaskResult): string {
  const left = unfinished(steps);
  const head =
    `task ${task.i}/${task.n}: ${r.ran.length} steps run, ${stepsOf(steps, task).length} owned; ` +
    `${steps.length - left.length} of ${steps.length} steps of ${out} done.`;
  if (r.waiting.length) {
    const w = r.waiting.map((x) => `${x.name} (needs ${x.waitsFor.join(', ')})`).join('; ');
    return (
      `${head} Waiting for other tasks: ${w}. Run this task again once the other tasks are done, then ` +
      `loss-atlas ${command} --gather --out ${out} (with the same flags)`
    );
  }
  return `${head} When every task is done: loss-atlas ${command} --gather --out ${out} (with the same flags)`;
}

const SECOND_RUN = "a second run of the array finishes the steps that need other tasks' results";

/** The --gather refusal naming the steps not done. */
function gatherMissing(command: string, out: string, steps: Step[], left: string[]): Error {
  const later = steps.some((s) => s.stage === 2 && left.includes(s.name));
  return new Error(
    `${command} --gather: ${left.length} of ${steps.length} steps in ${out} are not done: ${left.join(', ')}; ` +
      `run their --task first${later ? ` (${SECOND_RUN})` : ''}`,
  );
}

/**
 * The flow every multi-run command shares. Without --gather: run the steps this invocation owns (all of them without
 * --task); a task then says what it ran and what waits, and the result is false. Otherwise every step must be done
 * (a refusal names those that are not) and the result is true: the caller builds the tables and plots.
 */
export async function runOrGather(
  command: string,
  out: string,
  steps: Step[],
  o: { task?: Shard; gather?: boolean },
  log: (m: string) => void,
): Promise<boolean> {
  if (!o.gather) {
    const r = await runSteps(steps, o.task);
    if (o.task) {
      log(taskSummary(command, out, o.task, steps, r));
      return false;
    }
  }
  const left = unfinished(steps);
  if (left.length) throw gatherMissing(command, out, steps, left);
  return true;
}

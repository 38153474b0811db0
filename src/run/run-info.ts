// What every run directory records about how it was made: config.json with the run's kind, the command line, every
// setting, the adapter, the git commit of the code and the time. The settings sit at the top level of the file
// (next to kind, argv, adapter, commit and created), so a resumed run reads its settings back as they were written.
import { execSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Gpu } from '../engine/device.ts';
import { atomicWrite } from '../data/formats.ts';

/** The kinds of run directory; the report names a run by its kind. */
export const RUN_KINDS = [
  'mpo',
  'bn-compare',
  'train',
  'interpolate',
  'surface',
  'hessian',
  'trajectory',
  'li-figures',
  'connect',
  'msweep',
  'tunnels',
  'subspace',
  'swa',
  'toy',
  'fort-figures',
] as const;
export type RunKind = (typeof RUN_KINDS)[number];

/** config.json, read back: the settings are every field other than the five below. */
export interface RunConfig<S = Record<string, unknown>> {
  kind: RunKind;
  /** The command line after the program name (process.argv without node and the script). */
  argv: string[];
  settings: S;
  /** The GPU adapter the run used (null for runs without one, e.g. a merge of shards). */
  adapter: string | null;
  commit: string;
  /** ISO time of writing. */
  created: string;
}

const RESERVED = ['kind', 'argv', 'adapter', 'commit', 'created'] as const;

/** The commit of the checked-out code ('unknown' outside a git checkout). */
export function gitCommit(): string {
  try {
    const cwd = new URL('../..', import.meta.url).pathname;
    return execSync('git rev-parse HEAD', { stdio: ['ignore', 'pipe', 'ignore'], cwd })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

/** The default run directory runs/<name>-<UTC time, to the second>. */
export function defaultRunDir(name: string, now = new Date()): string {
  return join('runs', `${name}-${now.toISOString().replace(/[:.]/g, '-').slice(0, 19)}`);
}

/**
 * Writes out/config.json (creating out): {kind, argv, ...settings, adapter, commit, created}. A setting may not use
 * one of those five names. Returns what was written, as readRunConfig would read it.
 */
export function writeRunConfig<S extends Record<string, unknown>>(
  out: string,
  kind: RunKind,
  settings: S,
  gpu: Gpu | string | null,
  argv: string[] = process.argv.slice(2),
): RunConfig<S> {
  if (!(RUN_KINDS as readonly string[]).includes(kind)) throw new Error(`writeRunConfig: unknown run kind "${kind}"`);
  const clash = RESERVED.filter((k) => k in settings);
  if (clash.length) {
    throw new Error(`writeRunConfig: the settings of a ${kind} run may not be named ${clash.join(', ')}`);
  }
  const adapter = gpu === null ? null : typeof gpu === 'string' ? gpu : gpu.adapterInfo;
  const commit = gitCommit();
  const created = new Date().toISOString();
  makeRunDir(out);
  const file = { kind, argv, ...settings, adapter, commit, created };
  atomicWrite(join(out, 'config.json'), `${JSON.stringify(file, null, 2)}\n`);
  return { kind, argv: [...argv], settings, adapter, commit, created };
}

/** config.json files written before the kind field: their `command` field, where there was one, names the kind. */
const LEGACY_COMMANDS: Record<string, RunKind> = {
  tunnels: 'tunnels',
  'tunnels --sweep': 'tunnels',
  connect: 'connect',
  'connect --m-sweep': 'msweep',
  subspace: 'subspace',
  swa: 'swa',
};

/**
 * Reads and checks dir/config.json; every error names the file. A file without `kind` (written by an older version)
 * is refused unless `legacy` gives the kind to assume; its `command` field, if any, names the kind instead. With
 * `kind`, a run of another kind is refused (naming the kind found and the one expected).
 */
export function readRunConfig(dir: string, o: { kind?: RunKind; legacy?: RunKind } = {}): RunConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new Error(`${file}: no such file (not a run directory?)`);
  const text = readFileSync(file, 'utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message}; truncated or edited by hand?)`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: a JSON object expected`);
  const { kind, argv, adapter, commit, created, ...rest } = raw as Record<string, unknown>;
  const bad = (field: string, want: string, got: unknown) =>
    new Error(`${file}: "${field}" should be ${want}, got ${JSON.stringify(got) ?? 'nothing'}`);
  let k: RunKind;
  if (kind === undefined) {
    const legacy = typeof rest.command === 'string' ? LEGACY_COMMANDS[rest.command] : undefined;
    if (!legacy && !o.legacy) throw new Error(`${file}: no "kind" (written by an older loss-atlas?)`);
    k = (legacy ?? o.legacy)!;
    delete rest.command;
  } else if (typeof kind === 'string' && (RUN_KINDS as readonly string[]).includes(kind)) {
    k = kind as RunKind;
  } else {
    throw bad('kind', `one of ${RUN_KINDS.join(', ')}`, kind);
  }
  if (o.kind && k !== o.kind) {
    throw new Error(`${file}: kind "${k}" where "${o.kind}" is expected (not a ${o.kind} run directory?)`);
  }
  const old = kind === undefined; // older files: argv, commit and created may be missing
  if (!(argv === undefined && old) && !(Array.isArray(argv) && argv.every((a) => typeof a === 'string'))) {
    throw bad('argv', 'a list of strings', argv);
  }
  if (!(adapter === undefined && old) && adapter !== null && typeof adapter !== 'string') {
    throw bad('adapter', 'a string or null', adapter);
  }
  if (!(commit === undefined && old) && typeof commit !== 'string') throw bad('commit', 'a string', commit);
  if (!(created === undefined && old) && (typeof created !== 'string' || Number.isNaN(Date.parse(created)))) {
    throw bad('created', 'an ISO date', created);
  }
  return {
    kind: k,
    argv: (argv as string[] | undefined) ?? [],
    settings: rest,
    adapter: (adapter as string | null) ?? null,
    commit: (commit as string | undefined) ?? 'unknown',
    created: (created as string | undefined) ?? '',
  };
}

/**
 * Refuses to write a `kind` run into a directory whose config.json is of another kind (or unreadable), which it would
 * overwrite; `what` names what was to be written there, for the advice to use another --out.
 */
export function checkRunDir(dir: string, kind: RunKind, what = `the ${kind} run`): void {
  if (!existsSync(join(dir, 'config.json'))) return;
  let found: RunKind;
  try {
    found = readRunConfig(dir).kind;
  } catch (e) {
    throw new Error(`${(e as Error).message}; use another --out for ${what}`);
  }
  if (found !== kind) {
    throw new Error(`${dir} holds a ${found} run (config.json), not a ${kind}: use another --out for ${what}`);
  }
}

/** Pseudo file systems, where a run directory can never be made (mkdirSync may even loop there). */
const PSEUDO = /^\/(proc|sys|dev)(\/|$)/;

/**
 * Creates the run directory `dir` (and its parents), refusing with a message naming `flag` what mkdirSync would fail
 * at obscurely or hang on: the nearest existing ancestor must be a writable directory outside /proc, /sys and /dev
 * (/dev/shm aside).
 */
export function makeRunDir(dir: string, flag = '--out'): void {
  const abs = resolve(dir);
  let near = abs;
  while (!existsSync(near) && dirname(near) !== near) near = dirname(near);
  const refuse = (why: string) => new Error(`${flag} ${dir}: ${why}; choose another ${flag}`);
  let real = near;
  try {
    real = realpathSync(near);
  } catch {}
  if (PSEUDO.test(real) && !/^\/dev\/shm(\/|$)/.test(real)) {
    throw refuse(`${near} is on a system file system (/proc, /sys, /dev), not a place for a run directory`);
  }
  const st = statSync(near);
  if (!st.isDirectory()) {
    throw refuse(near === abs ? 'exists and is not a directory' : `${near} exists and is not a directory`);
  }
  try {
    accessSync(near, constants.W_OK | constants.X_OK);
  } catch {
    throw refuse(`no permission to write in ${near}`);
  }
  try {
    mkdirSync(abs, { recursive: true });
  } catch (e) {
    throw refuse(`cannot be created (${(e as Error).message})`);
  }
}

/**
 * Readies `dir` for a new `kind` run of `command` (before any GPU work): a directory whose run saved something to
 * resume from (`saved`, relative to it) is refused with the advice to --resume; one holding only the config.json of a
 * run that stopped before its first save is reused, and the returned note says so. Creates the directory.
 */
export function freshRunDir(
  dir: string,
  kind: RunKind,
  command: string,
  saved: string[] = ['checkpoint', 'metrics.json'],
): string | null {
  checkRunDir(dir, kind);
  let note: string | null = null;
  if (existsSync(join(dir, 'config.json'))) {
    const found = saved.filter((f) => existsSync(join(dir, f)));
    if (found.length) {
      throw new Error(
        `--out ${dir} already holds a run (${found.join(', ')}); use loss-atlas ${command} --resume ${dir} ` +
          'to continue it, or another --out',
      );
    }
    note = `${dir} holds a run that stopped before its first checkpoint: starting it over there`;
  }
  makeRunDir(dir);
  return note;
}

/**
 * Checks that --resume `dir` has a checkpoint to resume from (`checkpoint`, relative to it); without one, the message
 * says whether metrics.json marks the run complete or how to start it over.
 */
export function checkResumable(dir: string, command: string, checkpoint = join('checkpoint', 'state.json')): void {
  if (existsSync(join(dir, checkpoint))) return;
  const done = existsSync(join(dir, 'metrics.json'));
  throw new Error(
    `--resume ${dir}: no checkpoint there (${join(dir, checkpoint)} is missing); ` +
      (done
        ? 'its metrics.json says the run is already complete'
        : `the run stopped before its first checkpoint: start it over with loss-atlas ${command} --out ${dir} ` +
          'and the same flags'),
  );
}

/**
 * --resume DIR --lr X: continues with learning rate X (a lower rate after a divergence); config.json records it, so
 * that a later --resume keeps it. Returns X.
 */
export function resumeWithLr(dir: string, lr: number, was: number): number {
  const file = join(dir, 'config.json');
  const raw = JSON.parse(readFileSync(file, 'utf8'));
  console.error(`--lr ${lr}: resuming with learning rate ${lr} instead of ${was} (recorded in ${file})`);
  atomicWrite(file, `${JSON.stringify({ ...raw, lr }, null, 2)}\n`);
  return lr;
}

// What every run directory records about how it was made: config.json with the run's kind, the command line, every
// setting, the adapter, the git commit of the code and the time. The settings sit at the top level of the file
// (next to kind, argv, adapter, commit and created), so a resumed run reads its settings back as they were written.
import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
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
  mkdirSync(out, { recursive: true });
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

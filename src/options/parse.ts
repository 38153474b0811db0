// parseCommand: a command's argv read with node:util parseArgs (strict) against its table, every value converted and
// validated once; a UsageError names the flag, what it expects and what it got (and the nearest flag to a slip).
import { parseArgs } from 'node:util';
import {
  GLOBAL_OPTIONS,
  UsageError,
  acceptedFlags,
  camelCase,
  globalsOf,
  placeholderOf,
  type CommandSpec,
  type Globals,
  type Invocation,
  type OptionTable,
  type OptionValues,
} from './table.ts';
import { convert, defaultOf } from './values.ts';

/** Optimal string alignment distance (Levenshtein with transpositions). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i ? (j ? 0 : i) : j)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** The candidate nearest to `word`, if it is near enough to be a slip (or `word` starts only it). */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined,
    bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestD) {
      best = c;
      bestD = dist;
    }
  }
  if (best !== undefined && word.length > 2 && bestD <= Math.max(1, Math.floor(word.length / 3))) return best;
  const starts = word.length >= 3 ? candidates.filter((c) => c.startsWith(word)) : [];
  return starts.length === 1 ? starts[0] : undefined;
}

/** --help (or -h) anywhere before a -- : the command prints its help and does nothing else. */
export function helpRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/**
 * Parses a command's argv (the words after its name): every flag of its table and the global ones it takes, each
 * value converted and validated; positionals only where the command takes them. Throws a UsageError that names the
 * flag, what it expects and what it got.
 */
export function parseCommand<O extends OptionTable>(spec: CommandSpec<O>, argv: readonly string[]): Invocation<O> {
  const globals = globalsOf(spec);
  const table: OptionTable = { ...spec.options, ...globals };
  const config: Record<string, { type: 'boolean' | 'string'; short?: string }> = {};
  for (const [name, o] of Object.entries(table)) {
    config[name] = { type: o.type === 'boolean' ? 'boolean' : 'string' };
    if (o.type === 'boolean' && o.negatable) config[`no-${name}`] = { type: 'boolean' };
  }
  if (config.help) config.help.short = 'h';
  const flags = acceptedFlags(spec);
  const isBool = (name: string) => config[name]?.type === 'boolean';
  const cmd = spec.program ? spec.program : `loss-atlas ${spec.name}`;

  // A first, lenient pass to explain what the strict one would refuse, and to join a value that starts with a dash
  // to its flag (--x -1:1:5 is --x=-1:1:5; parseArgs would take -1:1:5 for a flag).
  const loose = parseArgs({ args: [...argv], options: config, strict: false, allowPositionals: true, tokens: true });
  const args: (string | null)[] = [...argv];
  let lastSwitch: { rawName: string; name: string; index: number } | null = null;
  for (const t of loose.tokens) {
    if (t.kind === 'option') {
      if (!config[t.name]) {
        const word = argv[t.index].split('=')[0];
        const near = nearest(word.replace(/^-+/, ''), flags);
        throw new UsageError(`unknown flag ${word}${near ? ` (did you mean --${near}?)` : ''}`);
      }
      if (isBool(t.name)) {
        if (t.value !== undefined) throw new UsageError(takesNoValue(t.rawName, t.value, table, t.name));
      } else if (t.value === undefined || (!t.inlineValue && t.value.startsWith('--'))) {
        const o = table[t.name];
        const after = t.value === undefined ? '' : `, got the flag ${t.value}`;
        throw new UsageError(`${t.rawName} needs a value (${placeholderOf(o)}: ${o.help})${after}`);
      } else if (!t.inlineValue && t.value.startsWith('-')) {
        args[t.index] = `${t.rawName}=${t.value}`;
        args[t.index + 1] = null;
      }
    } else if (t.kind === 'positional') {
      const sw = lastSwitch?.index === t.index - 1 ? lastSwitch : null;
      if (sw && (!spec.positionals || /^(true|false|on|off|yes|no)$/i.test(t.value))) {
        throw new UsageError(takesNoValue(sw.rawName, t.value, table, sw.name));
      }
      if (!spec.positionals) throw new UsageError(`${cmd} takes no arguments besides flags, got "${t.value}"`);
    }
    lastSwitch = t.kind === 'option' && isBool(t.name) && t.value === undefined ? t : null;
  }

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: args.filter((a): a is string => a !== null),
      options: config,
      strict: true,
      allowPositionals: !!spec.positionals,
      tokens: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  // the last occurrence of a flag counts (--no-NAME included), or the first where the command says so
  const raw: Record<string, string | boolean> = {};
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== 'option') continue;
    const neg = t.name.startsWith('no-') && !table[t.name];
    const name = neg ? t.name.slice(3) : t.name;
    if (spec.repeated === 'first' && name in raw) continue;
    raw[name] = neg ? false : (t.value ?? true);
  }
  const values: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(table)) {
    const v = raw[name];
    const value = v === undefined ? defaultOf(name, o) : typeof v === 'boolean' ? v : convert(name, o, v);
    if (value === undefined && o.required) {
      throw new UsageError(`--${name} ${placeholderOf(o)} is required (${o.help})`);
    }
    values[name] = value;
  }
  const positionals = parsed.positionals;
  const p = spec.positionals;
  if (p && positionals.length < (p.min ?? 0)) {
    const what = `${p.min} ${p.placeholder} argument${p.min === 1 ? '' : 's'}`;
    throw new UsageError(p.missing ?? `${cmd} needs at least ${what}`);
  }
  if (p?.max !== undefined && positionals.length > p.max) {
    const what = `${p.max} ${p.placeholder} argument${p.max === 1 ? '' : 's'}`;
    throw new UsageError(`${cmd} takes at most ${what}, got ${positionals.length}`);
  }
  const g: Globals = {
    verbose: values.verbose === true,
    profile: values.profile === true,
    trace: typeof values.trace === 'string' && 'trace' in globals ? values.trace : GLOBAL_OPTIONS.trace.default,
    normalize: Array.isArray(values.normalize) ? (values.normalize as number[]) : undefined,
    weights: typeof values.weights === 'string' ? values.weights : undefined,
  };
  if ('trace' in globals && raw.trace !== undefined && !g.profile) {
    throw new UsageError('--trace PATH goes with --profile');
  }
  const options: Record<string, unknown> = {};
  for (const name of Object.keys(spec.options)) options[camelCase(name)] = values[name];
  return { options: options as OptionValues<O>, positionals, globals: g, given: Object.keys(raw) };
}

/** The message for a value given to a flag that takes none (--bn false, --bn=maybe). */
function takesNoValue(rawName: string, value: string, table: OptionTable, name: string): string {
  const base = table[name] ? name : name.slice(3); // --no-NAME
  const o = table[base];
  const negatable = o?.type === 'boolean' && o.negatable;
  const how = negatable ? `--${base} turns it on, --no-${base} off` : `--${base} alone turns it on`;
  return `${rawName} takes no value, got "${value}" (${how})`;
}

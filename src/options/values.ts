// Converting and validating one option's value once, and the defaults of the options not given.
import {
  GLOBAL_OPTIONS,
  UsageError,
  camelCase,
  placeholderOf,
  type Bounds,
  type OptionInput,
  type OptionSpec,
  type OptionTable,
  type OptionValues,
  type Range,
  type Shard,
} from './table.ts';

const boundsText = (o: Bounds): string => {
  const p: string[] = [];
  if (o.min !== undefined) p.push(`>= ${o.min}`);
  if (o.above !== undefined) p.push(`> ${o.above}`);
  if (o.max !== undefined) p.push(`<= ${o.max}`);
  if (o.below !== undefined) p.push(`< ${o.below}`);
  return p.length ? ` ${p.join(' and ')}` : '';
};
const inBounds = (v: number, o: Bounds) =>
  (o.min === undefined || v >= o.min) &&
  (o.max === undefined || v <= o.max) &&
  (o.above === undefined || v > o.above) &&
  (o.below === undefined || v < o.below);
export const choicesText = (cs: readonly string[]) =>
  cs.length === 1 ? cs[0] : cs.length === 2 ? `${cs[0]} or ${cs[1]}` : `one of ${cs.join(', ')}`;

/** A number as written on a command line ('' and '  ' are not 0, as Number() would have them). */
const numberOf = (s: string) => (s.trim() === '' ? NaN : Number(s));

/** Parses min:max:num as numpy.linspace. */
export function linspace(spec: string, flag: string): number[] {
  const parts = spec.split(':').map(numberOf);
  const ok = parts.length === 3 && parts.every((x) => Number.isFinite(x)) && Number.isInteger(parts[2]);
  if (!ok || parts[2] < 1 || parts[2] > 100_000) {
    const expected = 'min:max:num expected (num a whole number from 1 to 100000), e.g. -1:1:51';
    throw new UsageError(`--${flag} "${spec}": ${expected}`);
  }
  const [a, b, n] = parts;
  return Array.from({ length: n }, (_, i) => (n === 1 ? a : a + ((b - a) * i) / (n - 1)));
}

/** Converts and validates the value `raw` given to --name. */
export function convert(name: string, o: OptionSpec, raw: string): unknown {
  const bad = (expected: string): never => {
    throw new UsageError(`--${name}: ${expected} expected, got "${raw}"`);
  };
  switch (o.type) {
    case 'boolean':
      return bad('no value');
    case 'string': {
      const why = raw === '' ? `a ${placeholderOf(o)}` : o.check?.(raw);
      return why ? bad(why) : raw;
    }
    case 'integer':
    case 'number': {
      const v = numberOf(raw);
      const ok = Number.isFinite(v) && (o.type === 'number' || Number.isInteger(v)) && inBounds(v, o);
      return ok ? v : bad(`${o.type === 'integer' ? 'an integer' : 'a number'}${boundsText(o)}`);
    }
    case 'count': {
      if (raw === 'all') return 0;
      const v = numberOf(raw),
        min = o.min ?? 0;
      return Number.isInteger(v) && v >= min ? v : bad(`an integer >= ${min} or all`);
    }
    case 'enum':
      return o.choices.includes(raw) ? raw : bad(choicesText(o.choices));
    case 'range':
      return { spec: raw, values: linspace(raw, name) } satisfies Range;
    case 'shard': {
      const m = /^(\d+)\/(\d+)$/.exec(raw);
      if (!m || Number(m[2]) < 1 || Number(m[1]) >= Number(m[2])) bad('i/n with 0 <= i < n (e.g. 0/4)');
      return { i: Number(m![1]), n: Number(m![2]) } satisfies Shard;
    }
    case 'list': {
      const parts = raw.split(',');
      if (o.of === 'string') {
        const what = o.choices ? `comma-separated values from ${o.choices.join(', ')}` : 'comma-separated names';
        return parts.every((p) => p !== '' && (!o.choices || o.choices.includes(p))) ? parts : bad(what);
      }
      const vs = parts.map(numberOf);
      const ok = vs.every((v) => Number.isFinite(v) && (o.of === 'number' || Number.isInteger(v)) && inBounds(v, o));
      return ok ? vs : bad(`comma-separated ${o.of === 'integer' ? 'integers' : 'numbers'}${boundsText(o)}`);
    }
  }
}

/** The value of an option that was not given: its default (a range's spec converted), false, or undefined. */
export function defaultOf(name: string, o: OptionSpec): unknown {
  if (o.type === 'boolean') return o.default ?? false;
  if (o.type === 'range' && o.default !== undefined) return convert(name, o, o.default);
  if (o.type === 'list' && o.default !== undefined) return [...o.default];
  return 'default' in o ? o.default : undefined;
}

/** The full options of a table from what a caller gives (the defaults filled in; the values are trusted). */
export function optionsOf<O extends OptionTable>(table: O, input: OptionInput<O>): OptionValues<O> {
  const given = input as Record<string, unknown>;
  const r: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(table)) {
    const key = camelCase(name);
    r[key] = given[key] !== undefined ? given[key] : defaultOf(name, o);
    if (r[key] === undefined && o.required) throw new Error(`--${name} ${placeholderOf(o)} is required (${o.help})`);
  }
  return r as OptionValues<O>;
}

/**
 * --resume DIR continues a run with the settings in DIR/config.json: a flag given beside it that would change them
 * (any but `allowed` and the global ones) is a usage error, not silently ignored.
 */
export function checkResumeFlags(given: string[] | undefined, dir: string, allowed: string[] = []): void {
  const keep = new Set(['resume', ...allowed, ...Object.keys(GLOBAL_OPTIONS)]);
  const extra = (given ?? []).filter((n) => !keep.has(n));
  if (!extra.length) return;
  const can = allowed.length ? `; only ${allowed.map((a) => `--${a}`).join(', ')} can change on --resume` : '';
  throw new UsageError(
    `${extra.map((e) => `--${e}`).join(', ')}: --resume ${dir} continues with the settings in its config.json` +
      `${can} (for other settings start a new run with another --out)`,
  );
}

/** --task and --gather of a job array each need the shared --out, and are separate steps. */
export function checkTaskFlags(o: { task?: Shard; gather?: boolean; out?: string }): void {
  if ((o.task || o.gather) && o.out === undefined) {
    throw new UsageError(`${o.task ? '--task' : '--gather'} needs --out DIR (the directory every task shares)`);
  }
  if (o.task && o.gather) throw new UsageError('--task and --gather are separate steps: give one of them');
}

// The option tables: the types of an option (boolean, string, integer, number, N|all, enum, min:max:num range, i/n
// shard, comma-separated list), a command's table, the global flags, and the TypeScript types a table gives its
// parsed values (camelCase keys, defaults filled in).
import type { Shard } from '../run/grid.ts';

export class UsageError extends Error {}

/** min:max:num, as numpy.linspace: the spec as given and its values. */
export interface Range {
  spec: string;
  values: number[];
}
/** --shard i/n: the points k with k % n == i (the grid job's shard). */
export type { Shard };

interface Common {
  /** One line for --help. */
  help: string;
  /** The value's name in --help (N, X, DIR, ...); each type has its own default. */
  placeholder?: string;
  /** What --help shows as the default when it is not the table's `default` (a default that depends on other flags). */
  defaultText?: string;
  /** Refused when not given. */
  required?: boolean;
}
export interface BooleanOption extends Common {
  type: 'boolean';
  default?: boolean;
  /** --no-NAME turns it off */
  negatable?: boolean;
}
export interface StringOption extends Common {
  type: 'string';
  default?: string;
  /** What was expected, when `v` is refused (null: accepted). */
  check?: (v: string) => string | null;
}
export interface Bounds {
  min?: number;
  max?: number;
  /** exclusive lower bound */
  above?: number;
  /** exclusive upper bound */
  below?: number;
}
export interface IntegerOption extends Common, Bounds {
  type: 'integer';
  default?: number;
}
export interface NumberOption extends Common, Bounds {
  type: 'number';
  default?: number;
}
/** N|all: a whole number, or all (the value 0). */
export interface CountOption extends Common {
  type: 'count';
  default?: number;
  min?: number;
}
export interface EnumOption extends Common {
  type: 'enum';
  choices: readonly string[];
  default?: string;
}
export interface RangeOption extends Common {
  type: 'range';
  default?: string;
}
export interface ShardOption extends Common {
  type: 'shard';
}
/** Comma-separated values: integers, numbers (with bounds) or strings (optionally from `choices`). */
export interface ListOption extends Common, Bounds {
  type: 'list';
  of: 'integer' | 'number' | 'string';
  default?: readonly (number | string)[];
  choices?: readonly string[];
}
export type OptionSpec =
  | BooleanOption
  | StringOption
  | IntegerOption
  | NumberOption
  | CountOption
  | EnumOption
  | RangeOption
  | ShardOption
  | ListOption;
export type OptionTable = Record<string, OptionSpec>;

/** The flags every command line may take (a command lists those it takes in `globals`). */
export const GLOBAL_OPTIONS = {
  verbose: { type: 'boolean', help: 'print the GPU adapter and its limits' },
  profile: {
    type: 'boolean',
    help: 'time every GPU dispatch of the command: per-kernel table and Chrome trace at the end',
  },
  trace: {
    type: 'string',
    placeholder: 'PATH',
    default: 'profile-trace.json',
    help: 'with --profile: the Chrome trace file',
  },
  normalize: {
    type: 'list',
    of: 'number',
    placeholder: 'MEAN,STD',
    help: "the data's per-channel normalization (MEAN,STD, or C means then C stds) in place of its own",
  },
  weights: {
    type: 'string',
    placeholder: 'FILE',
    help: 'start the model from a state_dict saved with safetensors (matched by name)',
  },
  help: { type: 'boolean', help: 'this help' },
} as const satisfies OptionTable;
export type GlobalName = keyof typeof GLOBAL_OPTIONS;
export interface Globals {
  verbose: boolean;
  profile: boolean;
  trace: string;
  /** --normalize: per-channel means and stds of the data (undefined: the data set's own). */
  normalize?: number[];
  /** --weights: a state_dict the command's model starts from. */
  weights?: string;
}

export interface CommandSpec<O extends OptionTable = OptionTable> {
  /** The command's name (loss-atlas NAME). */
  name: string;
  /** One line for the list of commands. */
  summary: string;
  /** The usage line after "usage: " (default: the program, the name, the required flags and positionals). */
  usage?: string;
  /** The paragraph under the usage line. */
  description: string;
  options: O;
  positionals?: {
    placeholder: string;
    help: string;
    min?: number;
    max?: number;
    /** The message when there are too few. */
    missing?: string;
  };
  /** The global flags taken (default: all). */
  globals?: readonly GlobalName[];
  /** Printed after the flags. */
  footer?: string;
  /** The program in the usage line (default loss-atlas). */
  program?: string;
  /** Which occurrence of a flag given twice counts (default: the last). */
  repeated?: 'first' | 'last';
}

/** A command's table with its literal types kept, for OptionValues / OptionInput. */
export function defineCommand<const O extends OptionTable>(spec: CommandSpec<O>): CommandSpec<O> {
  return spec;
}

/** The table without the named options (a command that takes another's flags but a few). */
export function omitOptions<O extends OptionTable, K extends keyof O>(o: O, drop: readonly K[]): Omit<O, K> {
  const r: Partial<O> = { ...o };
  for (const k of drop) delete r[k];
  return r as Omit<O, K>;
}

type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type ValueOf<T> = T extends { type: 'boolean' }
  ? boolean
  : T extends { type: 'enum'; choices: readonly (infer C)[] }
    ? C
    : T extends { type: 'integer' | 'number' | 'count' }
      ? number
      : T extends { type: 'range' }
        ? Range
        : T extends { type: 'shard' }
          ? Shard
          : T extends { type: 'list'; of: 'string'; choices: readonly (infer C)[] }
            ? C[]
            : T extends { type: 'list'; of: 'string' }
              ? string[]
              : T extends { type: 'list' }
                ? number[]
                : string;
type Always<T> = T extends { type: 'boolean' }
  ? true
  : T extends { default: NonNullable<unknown> }
    ? true
    : T extends { required: true }
      ? true
      : false;
type Needed<T> = T extends { required: true } ? (T extends { default: NonNullable<unknown> } ? false : true) : false;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The parsed options of a table: keys in camelCase (--cells-per-step: cellsPerStep), defaults filled in. */
export type OptionValues<O extends OptionTable> = Simplify<
  { -readonly [K in keyof O as Always<O[K]> extends true ? Camel<K & string> : never]: ValueOf<O[K]> } & {
    -readonly [K in keyof O as Always<O[K]> extends true ? never : Camel<K & string>]?: ValueOf<O[K]>;
  }
>;
/** What a caller inside the program gives for a table: only the required options without a default are needed. */
export type OptionInput<O extends OptionTable> = Simplify<
  { -readonly [K in keyof O as Needed<O[K]> extends true ? Camel<K & string> : never]: ValueOf<O[K]> } & {
    -readonly [K in keyof O as Needed<O[K]> extends true ? never : Camel<K & string>]?: ValueOf<O[K]>;
  }
>;

export interface Invocation<O extends OptionTable> {
  options: OptionValues<O>;
  positionals: string[];
  globals: Globals;
  /** The flags on the command line (their table names, globals included), defaults left out. */
  given?: string[];
}

export const camelCase = (flag: string) => flag.replace(/-([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());

/** The global options a command takes. */
export function globalsOf(spec: CommandSpec): OptionTable {
  const names = spec.globals ?? (Object.keys(GLOBAL_OPTIONS) as GlobalName[]);
  const own = new Set(Object.keys(spec.options));
  return Object.fromEntries(names.filter((n) => !own.has(n)).map((n) => [n, GLOBAL_OPTIONS[n]]));
}

/** Every long flag the command line accepts (with --no-NAME of the negatable ones), for the tests and suggestions. */
export function acceptedFlags(spec: CommandSpec): string[] {
  const all = { ...spec.options, ...globalsOf(spec) };
  return Object.entries(all).flatMap(([n, o]) => (o.type === 'boolean' && o.negatable ? [n, `no-${n}`] : [n]));
}

export const placeholderOf = (o: OptionSpec): string => {
  if (o.placeholder) return o.placeholder;
  switch (o.type) {
    case 'boolean':
      return '';
    case 'integer':
      return 'N';
    case 'number':
      return 'X';
    case 'count':
      return 'N|all';
    case 'enum':
      return o.choices.join('|');
    case 'range':
      return 'min:max:num';
    case 'shard':
      return 'i/n';
    case 'list':
      if (o.of === 'string') return o.choices ? o.choices.join(',') : 'A,B,...';
      return o.of === 'integer' ? 'N,N,...' : 'X,X,...';
    case 'string':
      return 'VALUE';
  }
};

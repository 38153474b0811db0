// The command line's parsing layer, without a GPU: every command's --help lists exactly the flags its table takes and
// each of them parses; values a flag does not take, unknown flags, bad numbers and misplaced words are refused with a
// message naming the flag. Two end-to-end runs check the exit codes (2 for a usage error, 1 for a command's error).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS } from '../src/cli/commands.ts';
import {
  GLOBAL_OPTIONS,
  UsageError,
  acceptedFlags,
  camelCase,
  helpRequested,
  optionsOf,
  parseCommand,
  renderHelp,
  type CommandSpec,
  type OptionSpec,
} from '../src/options/index.ts';
import { MPO, mpoConfig, mpoRunDir } from '../src/mpo/command.ts';
import { CONNECT } from '../src/cli/structure.ts';
import { TOY } from '../src/structure/toy.ts';
import { SWA } from '../src/structure/swa.ts';
import { HESSIAN, MERGE, SURFACE } from '../src/cli/grids.ts';
import { TRAIN } from '../src/landscape/train.ts';
import { BENCH } from '../bench/mpo-flags.ts';
import { writeRunConfig } from '../src/run/run-info.ts';

const specs: [string, CommandSpec][] = [
  ...Object.entries(COMMANDS).map(([n, c]) => [n, c.spec] as [string, CommandSpec]),
  ['bench', BENCH],
];

/** A value the option accepts. */
function sample(o: OptionSpec): string | null {
  const low = (b: { min?: number; above?: number }, int: boolean) =>
    b.min ?? (b.above !== undefined ? b.above + (int ? 1 : 0.5) : 1);
  switch (o.type) {
    case 'boolean':
      return null;
    case 'string':
      // a --model takes a model's name
      return o.default ?? (o.check?.('x') ? 'tiny' : 'x');
    case 'integer':
    case 'number':
      return String(o.default ?? low(o, o.type === 'integer'));
    case 'count':
      return 'all';
    case 'enum':
      return o.choices[o.choices.length - 1];
    case 'range':
      return '-1:1:3';
    case 'shard':
      return '1/2';
    case 'list':
      return o.of === 'string' ? (o.choices?.[0] ?? 'mlp') : String(low(o, o.of === 'integer'));
  }
}

/** The flags and positionals a command cannot go without. */
function needed(spec: CommandSpec): string[] {
  const req = Object.entries(spec.options)
    .filter(([, o]) => o.required)
    .flatMap(([n, o]) => [`--${n}`, sample(o)!]);
  return [...req, ...Array.from({ length: spec.positionals?.min ?? 0 }, (_, i) => `arg${i}`)];
}

const refused = (spec: CommandSpec, argv: string[]) => {
  try {
    parseCommand(spec, argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`${spec.name} ${argv.join(' ')}: accepted`);
};

describe('every command: --help and the table agree', () => {
  it('covers the commands of the command line', () => {
    expect(Object.keys(COMMANDS)).toEqual([
      'inspect',
      'mpo',
      'plane',
      'train',
      'interpolate',
      'surface',
      'trajectory',
      'report',
      'hessian',
      'merge',
      'connect',
      'subspace',
      'tunnels',
      'swa',
      'fort-figures',
      'toy',
      'li-figures',
      'bn-compare',
      'profile',
      'data:cifar10',
      'demo',
      'gradcheck',
    ]);
  });

  for (const [name, spec] of specs) {
    it(`${name}: --help lists exactly the accepted flags, each parses; every flag its text names is accepted`, () => {
      const help = renderHelp(spec);
      const accepted = acceptedFlags(spec).sort();
      const rows = [...help.matchAll(/^ {2}--([\w-]+)(?:, --([\w-]+))?/gm)];
      const listed = rows.flatMap((m) => m.slice(1).filter(Boolean)).sort();
      expect(listed).toEqual(accepted);
      expect(new Set(listed).size).toBe(listed.length);
      for (const m of help.matchAll(/--([a-zA-Z][\w-]*)/g)) {
        expect(accepted, `"--${m[1]}" in the help of ${name}`).toContain(m[1]);
      }
      const table: Record<string, OptionSpec> = { ...spec.options };
      const all: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...spec.options };
      for (const flag of accepted) {
        const o = all[flag] ?? all[flag.replace(/^no-/, '')];
        const v = sample(o);
        const argv = [...needed(spec), `--${flag}`, ...(v === null ? [] : [v])];
        if (flag === 'trace' && !table.trace) argv.push('--profile');
        const inv = parseCommand(spec, argv);
        if (!table[flag] && !table[flag.replace(/^no-/, '')]) continue; // a global flag
        const got = (inv.options as Record<string, unknown>)[camelCase(o === table[flag] ? flag : flag.slice(3))];
        if (o.type === 'boolean') expect(got, flag).toBe(!flag.startsWith('no-') || !!table[flag]);
        else expect(got, flag).toBeDefined();
      }
      expect(helpRequested(['--help'])).toBe(true);
    });
  }

  it('the help shows the defaults, the usage line and the description', () => {
    const h = renderHelp(CONNECT);
    expect(h).toMatch(/^usage: loss-atlas connect A\.safetensors B\.safetensors/);
    expect(h).toMatch(/Fort & Jastrzebski's connector/);
    expect(h).toMatch(/--method fort\|bezier\|polychain\s+the connector \(default fort\)/);
    expect(h).toMatch(/--m-sweep +with three or more checkpoints/);
    expect(h).toMatch(/global flags:\n {2}--verbose/);
    expect(renderHelp(TRAIN)).toMatch(/--nesterov, --no-nesterov\s+Nesterov momentum \(default on\)/);
    // mpo's help names the flags it always took but did not list
    for (const f of ['--neg-coef', '--checkpoint-every', '--log-every']) expect(renderHelp(MPO)).toContain(f);
    const steps = /--steps N +training steps \(default 700 quick, 11800 fashion-pattern, 19600 cifar-pattern\)/;
    expect(renderHelp(MPO)).toMatch(steps);
    for (const l of renderHelp(MPO).split('\n')) expect(l.length, l).toBeLessThanOrEqual(120);
  });
});

describe('switches take no value; a flag given twice', () => {
  it('mpo --bn false and --bn=maybe are refused, naming --bn', () => {
    expect(refused(MPO, ['--quick', '--bn', 'false'])).toMatch(/^--bn takes no value, got "false"/);
    expect(refused(MPO, ['--bn=maybe'])).toMatch(/^--bn takes no value, got "maybe"/);
    expect(refused(MPO, ['--bn=true'])).toMatch(/--bn takes no value/);
    expect(mpoConfig(parseCommand(MPO, ['--quick', '--bn']).options).bn).toBe(true);
    expect(mpoConfig(parseCommand(MPO, ['--quick']).options).bn).toBe(false);
  });

  it('hessian --path is a switch: a word after it is refused', () => {
    const argv = ['--model-file', 'a.safetensors', '--path', 'nonexistent'];
    expect(refused(HESSIAN, argv)).toMatch(/--path takes no value, got "nonexistent"/);
    const o = parseCommand(HESSIAN, ['--model-file', 'a.safetensors', '--path']).options;
    expect(o.path).toBe(true);
    expect(o.y).toBeUndefined();
  });

  it('connect: --m-sweep is a switch, so every checkpoint is kept wherever it stands', () => {
    const a = parseCommand(CONNECT, ['a', 'b', 'c', '--m-sweep']);
    expect(a.positionals).toEqual(['a', 'b', 'c']);
    expect(a.options.mSweep).toBe(true);
    const b = parseCommand(CONNECT, ['--m-sweep', 'A', 'B', 'C', 'D', '--steps', '5']);
    expect(b.positionals).toEqual(['A', 'B', 'C', 'D']);
    expect(b.options).toMatchObject({ mSweep: true, steps: 5, method: 'fort', lr: 1e-3, dense: 41 });
    expect(b.options.points).toBeUndefined(); // its default depends on the number of checkpoints
    expect(refused(CONNECT, ['a', 'b', '--m-sweep', 'true'])).toMatch(/--m-sweep takes no value, got "true"/);
    expect(refused(CONNECT, ['a'])).toMatch(/give two or more checkpoint files/);
  });

  it("bench: the first occurrence of a flag counts (the scripts put the user's flags first)", () => {
    const o = parseCommand(BENCH, ['--steps', '20', '--cells', '1,16', '--steps', '10', '--cells', '4']).options;
    expect(o).toMatchObject({ steps: 20, cells: [1, 16] });
    expect(parseCommand(MPO, ['--steps', '20', '--steps', '10']).options.steps).toBe(10);
  });

  it('--no-NAME turns a negatable switch off; the last one given counts', () => {
    expect(parseCommand(TRAIN, ['--no-nesterov']).options.nesterov).toBe(false);
    expect(parseCommand(TRAIN, ['--no-nesterov', '--nesterov']).options.nesterov).toBe(true);
    expect(parseCommand(TRAIN, []).options.nesterov).toBe(true);
    expect(refused(TRAIN, ['--no-nesterov=1'])).toMatch(/--no-nesterov takes no value/);
    expect(refused(MPO, ['--no-bn'])).toMatch(/unknown flag --no-bn/);
  });
});

describe('refused command lines name the flag', () => {
  it('an unknown flag gets the nearest valid name', () => {
    expect(refused(MPO, ['--stpes', '4'])).toBe('unknown flag --stpes (did you mean --steps?)');
    expect(refused(SURFACE, ['--model-fil', 'a'])).toBe('unknown flag --model-fil (did you mean --model-file?)');
    expect(refused(CONNECT, ['a', 'b', '--msweep'])).toBe('unknown flag --msweep (did you mean --m-sweep?)');
    expect(refused(TOY, ['--zzzzzz'])).toBe('unknown flag --zzzzzz');
    expect(refused(MPO, ['-q'])).toBe('unknown flag -q');
  });

  it('numbers that are not numbers, not whole or out of range', () => {
    expect(refused(MPO, ['--steps', 'many'])).toBe('--steps: an integer >= 0 expected, got "many"');
    expect(refused(MPO, ['--grid', '500'])).toBe('--grid: an integer >= 3 and <= 200 expected, got "500"');
    expect(refused(MPO, ['--grid', '12.5'])).toMatch(/--grid: an integer/);
    expect(refused(MPO, ['--lr', 'abc'])).toBe('--lr: a number >= 1e-8 and <= 1 expected, got "abc"');
    expect(refused(MPO, ['--lr', ''])).toMatch(/--lr: a number/);
    expect(refused(MPO, ['--eval-images', 'some'])).toBe('--eval-images: an integer >= 1 or all expected, got "some"');
    const swa = (...argv: string[]) => refused(SWA, ['--model-file', 'm', ...argv]);
    expect(swa('--momentum', '1')).toBe('--momentum: a number >= 0 and < 1 expected, got "1"');
    expect(swa('--lrs', '0.1,-2')).toBe('--lrs: comma-separated numbers > 0 expected, got "0.1,-2"');
    expect(refused(CONNECT, ['a', 'b', '--dense', '2'])).toBe('--dense: an integer >= 3 expected, got "2"');
    const hessian = (...argv: string[]) => refused(HESSIAN, ['--model-file', 'a', ...argv]);
    expect(hessian('--shard', '2/2')).toMatch(/^--shard: i\/n with 0 <= i < n .* got "2\/2"/);
    expect(hessian('--x', '1:-1:0')).toMatch(/--x "1:-1:0": min:max:num expected/);
    expect(hessian('--split', 'val')).toBe('--split: train or test expected, got "val"');
    expect(refused(TOY, ['--D', '1'])).toBe('--D: an integer >= 2 expected, got "1"');
  });

  it('missing values, required flags, stray words and --trace without --profile', () => {
    expect(refused(MPO, ['--steps'])).toMatch(/^--steps needs a value \(N: training steps\)/);
    expect(refused(MPO, ['--out', '--quick'])).toMatch(/^--out needs a value .*, got the flag --quick/);
    expect(refused(SURFACE, [])).toMatch(/^--model-file FILE is required/);
    expect(refused(MPO, ['heart'])).toBe('loss-atlas mpo takes no arguments besides flags, got "heart"');
    expect(refused(MPO, ['--quick', 'heart'])).toMatch(/^--quick takes no value, got "heart"/);
    expect(refused(MPO, ['--trace', 't.json'])).toBe('--trace PATH goes with --profile');
    const { globals } = parseCommand(MPO, ['--profile', '--trace', 't.json', '--verbose']);
    expect(globals).toEqual({ verbose: true, profile: true, trace: 't.json' });
  });

  it('--zmax 0 (no clip) parses for surface and merge; a negative value does not', () => {
    expect(parseCommand(SURFACE, ['--model-file', 'a', '--zmax', '0']).options.zmax).toBe(0);
    expect(parseCommand(MERGE, ['s0', 's1', '--out', 'm', '--zmax', '0']).options.zmax).toBe(0);
    expect(refused(SURFACE, ['--model-file', 'a', '--zmax', '-1'])).toBe('--zmax: a number >= 0 expected, got "-1"');
  });

  it('values that start with a dash are values', () => {
    const o = parseCommand(SURFACE, ['--model-file', 'a', '--x', '-1:1:5', '--y=-0.5:0.5:3']).options;
    expect(o.x.values).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(o.y).toEqual({ spec: '-0.5:0.5:3', values: [-0.5, 0, 0.5] });
    expect(o.images).toBe(1000);
    expect(o.shard).toBeUndefined();
    expect(refused(TOY, ['--lr', '-1'])).toBe('--lr: a number > 0 expected, got "-1"');
  });

  it('options for a caller inside the program: the defaults filled in, the required ones checked', () => {
    expect(optionsOf(TOY.options, { D: 10 })).toMatchObject({ D: 10, steps: 4000, span: 2, lr: 0.02, ns: undefined });
    expect(() => optionsOf(SWA.options, {} as never)).toThrow(/--model-file FILE is required/);
  });
});

describe('a run directory of another kind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'la-cli-kind-'));
  const mpoRun = join(dir, 'mpo-run'),
    trainRun = join(dir, 'train-run');
  writeRunConfig(mpoRun, 'mpo', { model: 'tiny', steps: 6, dataset: 'fashion-mnist', data: join(dir, 'none') }, 'a');
  writeRunConfig(trainRun, 'train', { model: 'tiny', epochs: 1, dataset: 'fashion-mnist', data: join(dir, 'x') }, 'a');
  const refusal = (cmd: string, argv: string[]) => COMMANDS[cmd].run(parseCommand(COMMANDS[cmd].spec, argv));

  it('train --resume and trajectory --run refuse an mpo run, mpo --resume a train run, naming the file', async () => {
    const mpoFile = join(mpoRun, 'config.json'),
      trainFile = join(trainRun, 'config.json');
    const before = readFileSync(mpoFile, 'utf8');
    await expect(refusal('train', ['--resume', mpoRun])).rejects.toThrow(
      `${mpoFile}: kind "mpo" where "train" is expected (not a train run directory?)`,
    );
    await expect(refusal('trajectory', ['--run', mpoRun])).rejects.toThrow(
      `${mpoFile}: kind "mpo" where "train" is expected`,
    );
    await expect(refusal('mpo', ['--resume', trainRun])).rejects.toThrow(
      `${trainFile}: kind "train" where "mpo" is expected (not a mpo run directory?)`,
    );
    expect(readFileSync(mpoFile, 'utf8')).toBe(before);
  });

  it("mpo --resume reads the run's settings without the header fields of config.json", () => {
    expect(() => mpoRunDir({ resume: mpoRun })).toThrow(
      /no checkpoint there .*start it over with loss-atlas mpo --out/,
    );
    mkdirSync(join(mpoRun, 'checkpoint'));
    writeFileSync(join(mpoRun, 'checkpoint', 'state.json'), '{}');
    const { cfg, out, resume } = mpoRunDir({ resume: mpoRun });
    expect([out, resume]).toEqual([mpoRun, true]);
    expect(cfg).toEqual({ model: 'tiny', steps: 6, dataset: 'fashion-mnist', data: join(dir, 'none') });
  });
});

describe('the command line end to end', () => {
  const root = join(import.meta.dirname, '..');
  const cli = (...argv: string[]) =>
    spawnSync('npx', ['tsx', 'src/cli.ts', ...argv], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
    });

  it('a usage error exits 2 with the message on stderr, before any work', () => {
    const r = cli('mpo', '--quick', '--bn', 'false');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/loss-atlas mpo: --bn takes no value, got "false"/);
    expect(r.stdout).toBe('');
  });

  it("a command's own error exits 1", () => {
    const r = cli('report', join(root, 'no-such-folder-here'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no-such-folder-here does not exist/);
  });
});

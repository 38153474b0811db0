// Run infrastructure without a GPU: config.json written and read one way (errors name the file), the one
// Interrupted, and the progress line.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUN_KINDS, defaultRunDir, readRunConfig, writeRunConfig } from '../src/run/run-info.ts';
import { Interrupted, RUN_AGAIN, resumeWith } from '../src/run/interrupted.ts';
import { formatDuration, progress } from '../src/run/progress.ts';

const dir = mkdtempSync(join(tmpdir(), 'la-run-'));

describe('config.json', () => {
  it('is written as {kind, argv, ...settings, adapter, commit, created} and read back with the settings apart', () => {
    const out = join(dir, 'a', 'b');
    const settings = { lr: 0.05, milestones: [2, 4], model: 'small', init: null };
    const w = writeRunConfig(out, 'train', settings, 'lavapipe', ['train', '--lr', '0.05']);
    const file = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(Object.keys(file)).toEqual([
      'kind',
      'argv',
      'lr',
      'milestones',
      'model',
      'init',
      'adapter',
      'commit',
      'created',
    ]);
    expect(file).toMatchObject({ kind: 'train', argv: ['train', '--lr', '0.05'], lr: 0.05, adapter: 'lavapipe' });
    expect(typeof file.commit).toBe('string');
    expect(Number.isNaN(Date.parse(file.created))).toBe(false);
    const r = readRunConfig(out);
    expect(r).toEqual(w);
    expect(r.settings).toEqual(settings);
    expect(writeRunConfig(join(dir, 'none'), 'surface', {}, null).adapter).toBeNull();
  });

  it('refuses unknown kinds and settings named like the header fields', () => {
    expect(() => writeRunConfig(join(dir, 'x'), 'bogus' as 'train', {}, null)).toThrow(/unknown run kind "bogus"/);
    expect(() => writeRunConfig(join(dir, 'x'), 'train', { adapter: 'mine' }, null)).toThrow(
      /may not be named adapter/,
    );
  });

  it('a truncated, missing or malformed config.json is an error naming the file', () => {
    const out = join(dir, 'broken');
    writeRunConfig(out, 'mpo', { steps: 700 }, 'gpu');
    const file = join(out, 'config.json');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, text.length / 2));
    expect(() => readRunConfig(out)).toThrow(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not valid JSON`),
    );
    expect(() => readRunConfig(join(dir, 'nowhere'))).toThrow(/nowhere[/\\]config\.json: no such file/);
    writeFileSync(file, '[1, 2]');
    expect(() => readRunConfig(out)).toThrow(/config\.json: a JSON object expected/);
    writeFileSync(
      file,
      JSON.stringify({ kind: 'mpo', argv: 'mpo --quick', adapter: 'a', commit: 'c', created: '2024-01-01' }),
    );
    expect(() => readRunConfig(out)).toThrow(/config\.json: "argv" should be a list of strings, got "mpo --quick"/);
    writeFileSync(
      file,
      JSON.stringify({ kind: 'painting', argv: [], adapter: 'a', commit: 'c', created: '2024-01-01' }),
    );
    expect(() => readRunConfig(out)).toThrow(/config\.json: "kind" should be one of mpo, .*got "painting"/);
  });

  it('files written before the kind field: their command names it, or the caller says what to assume', () => {
    const old = join(dir, 'old');
    mkdirSync(old);
    writeFileSync(
      join(old, 'config.json'),
      JSON.stringify({ command: 'connect --m-sweep', points: 4, adapter: 'a', commit: 'c' }),
    );
    expect(readRunConfig(old)).toMatchObject({ kind: 'msweep', settings: { points: 4 }, adapter: 'a', argv: [] });
    writeFileSync(join(old, 'config.json'), JSON.stringify({ mask: 'heart', steps: 6, adapter: 'a' }));
    expect(() => readRunConfig(old)).toThrow(/config\.json: no "kind"/);
    expect(readRunConfig(old, { legacy: 'mpo' })).toMatchObject({ kind: 'mpo', settings: { mask: 'heart', steps: 6 } });
  });

  it('every declared kind is one that some command writes', () => {
    const files = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? files(join(d, e.name)) : e.name.endsWith('.ts') ? [join(d, e.name)] : [],
      );
    const written = new Set<string>();
    for (const f of files(join(import.meta.dirname, '..', 'src'))) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/writeRunConfig\(\s*[^,]+,\s*'([\w-]+)'/g)) written.add(m[1]);
      // the grid jobs: the kind of their GridFiles
      for (const m of text.matchAll(/GridFiles<[^=]*=\s*\{[^}]*?\bkind: '([\w-]+)'/g)) written.add(m[1]);
    }
    expect([...RUN_KINDS].filter((k) => !written.has(k))).toEqual([]);
    expect([...written].filter((k) => !(RUN_KINDS as readonly string[]).includes(k))).toEqual([]);
  });

  it('a kind other than the one expected is refused, naming the file and both kinds', () => {
    const out = join(dir, 'kinds');
    writeRunConfig(out, 'mpo', { steps: 6 }, 'gpu');
    expect(readRunConfig(out, { kind: 'mpo' }).settings).toEqual({ steps: 6 });
    expect(() => readRunConfig(out, { kind: 'train', legacy: 'train' })).toThrow(
      `${join(out, 'config.json')}: kind "mpo" where "train" is expected (not a train run directory?)`,
    );
    // an old file without a kind: the kind assumed is checked too
    writeFileSync(join(out, 'config.json'), JSON.stringify({ command: 'connect', points: 4 }));
    expect(() => readRunConfig(out, { kind: 'train', legacy: 'train' })).toThrow(/kind "connect" where "train"/);
    writeFileSync(join(out, 'config.json'), JSON.stringify({ epochs: 4 }));
    expect(readRunConfig(out, { kind: 'train', legacy: 'train' }).kind).toBe('train');
  });

  it('the default run directory is runs/<name>-<UTC time>', () => {
    expect(defaultRunDir('surface', new Date('2025-03-04T05:06:07.891Z'))).toBe(
      join('runs', 'surface-2025-03-04T05-06-07'),
    );
  });
});

describe('Interrupted', () => {
  it('carries the run directory and how to continue', () => {
    const e = new Interrupted('interrupted at step 3 of 6', '/r/x', resumeWith('mpo', '/r/x'));
    expect(e).toBeInstanceOf(Error);
    expect(e.dir).toBe('/r/x');
    expect(e.advice).toBe('interrupted at step 3 of 6\ncontinue with: loss-atlas mpo --resume /r/x');
    expect(new Interrupted('m', 'd', RUN_AGAIN).advice).toBe('m\nrun the same command again to continue');
  });
});

describe('progress', () => {
  const sink = (isTTY: boolean) => {
    const lines: string[] = [];
    return { lines, stream: { isTTY, write: (s: string) => lines.push(s) } };
  };

  it('label, bar, done/total, fields, rate from the first report and the time left', () => {
    const { lines, stream } = sink(false);
    const bar = progress('quick', { unit: 'step', stream, width: 10 });
    bar(10, 100, { 'good loss': '0.500' }, 30); // the first report: no rate yet
    bar(20, 100, { 'good loss': '0.400' }, 35);
    expect(lines[0]).toBe('quick [#.........] step 10/100  good loss 0.500  ? s/step  ETA ?\n');
    expect(lines[1]).toBe('quick [##........] step 20/100  good loss 0.400  0.50 s/step  ETA 40s\n');
  });

  it('off a terminal, a line about every 5% and the last; on one, a redrawn line ending with a newline', () => {
    const log = sink(false);
    let t = 0;
    const bar = progress('grid', { unit: 'point', stream: log.stream, now: () => t });
    for (let k = 0; k <= 1000; k++) {
      t = k / 10;
      bar(k, 1000);
    }
    expect(log.lines.length).toBe(21);
    expect(log.lines[20]).toBe(`grid [${'#'.repeat(24)}] point 1000/1000  0.10 s/point  ETA 0s\n`);
    const tty = sink(true);
    const b2 = progress('grid', { unit: 'point', stream: tty.stream, now: () => 0 });
    b2(1, 2);
    b2(2, 2);
    expect(tty.lines.map((l) => [l.startsWith('\r'), l.endsWith('\n')])).toEqual([
      [true, false],
      [true, true],
    ]);
  });

  it('durations for people', () => {
    expect([formatDuration(42), formatDuration(187), formatDuration(7500), formatDuration(NaN)]).toEqual([
      '42s',
      '3m07s',
      '2h05m',
      '?',
    ]);
  });
});

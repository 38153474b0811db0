// The layout docs/architecture.md describes: the folders of src/ import each other without a loop, and no source
// file grows past about 400 lines unless its first comment says why it is one piece.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const src = join(root, 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The top folder of src/ a file belongs to ('.' for src/cli.ts and other files directly in src/). */
const folderOf = (p: string) => {
  const parts = relative(src, p).split('/');
  return parts.length > 1 ? parts[0] : '.';
};

function folderGraph(): Map<string, Map<string, string>> {
  const g = new Map<string, Map<string, string>>();
  for (const f of files(src)) {
    const from = folderOf(f);
    if (!g.has(from)) g.set(from, new Map());
    for (const m of readFileSync(f, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)) {
      const to = folderOf(resolve(dirname(f), m[1]));
      if (to !== from && !g.get(from)!.has(to)) g.get(from)!.set(to, relative(root, f));
    }
  }
  return g;
}

describe('architecture', () => {
  it('the folders of src/ form no import loop', () => {
    const g = folderGraph();
    expect(g.size).toBeGreaterThan(5);
    const state = new Map<string, 'open' | 'done'>();
    const path: string[] = [];
    const visit = (n: string) => {
      if (state.get(n) === 'done') return;
      if (state.get(n) === 'open') {
        const loop = [...path.slice(path.indexOf(n)), n];
        const why = loop.slice(0, -1).map((a, i) => `${a} -> ${loop[i + 1]} (${g.get(a)!.get(loop[i + 1])})`);
        throw new Error(`import loop: ${why.join(', ')}`);
      }
      state.set(n, 'open');
      path.push(n);
      for (const m of g.get(n)?.keys() ?? []) visit(m);
      path.pop();
      state.set(n, 'done');
    };
    for (const n of g.keys()) visit(n);
    // the engine stands on nothing of the project's but the platform seam, which stands on nothing
    expect([...(g.get('engine')?.keys() ?? [])]).toEqual(['platform']);
    expect([...(g.get('platform')?.keys() ?? [])]).toEqual([]);
  });

  it('no exported name is declared in two files of src/ (one declaration, imported where needed)', () => {
    const where = new Map<string, string[]>();
    for (const f of files(src)) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(
        /^export (?:declare )?(?:async )?(?:type|interface|const|function|class|enum) (\w+)/gm,
      ))
        where.set(m[1], [...(where.get(m[1]) ?? []), relative(root, f)]);
    }
    expect([...where].filter(([, fs]) => fs.length > 1).map(([n, fs]) => `${n}: ${fs.join(', ')}`)).toEqual([]);
  });

  it('no source or test file is over 400 lines unless its first comment says why it is one piece', () => {
    const long = ['src', 'test', 'bench']
      .flatMap((d) => files(join(root, d)))
      .map((f) => ({ f: relative(root, f), text: readFileSync(f, 'utf8') }))
      .filter(({ text }) => text.split('\n').length > 400 && !/^\/\/[^\n]*(\n\/\/[^\n]*)*one piece/.test(text));
    expect(long.map((l) => l.f)).toEqual([]);
  });

  it('no line of a .ts file in src/, test/ or bench/ is over 120 characters (the width biome.json sets)', () => {
    const over = ['src', 'test', 'bench']
      .flatMap((d) => files(join(root, d)))
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .flatMap((l, i) => (l.length > 120 ? [`${relative(root, f)}:${i + 1} (${l.length})`] : [])),
      );
    expect(over).toEqual([]);
  });
});

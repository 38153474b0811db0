// The README's command lines against the commands' option tables: every `--flag` the manual shows for a command
// is one that command accepts (the manual cannot drift from the CLI).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BENCH } from '../bench/mpo-flags.ts';
import { COMMANDS } from '../src/cli/commands.ts';
import { type CommandSpec, acceptedFlags } from '../src/options/index.ts';

const root = join(import.meta.dirname, '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const scripts: Record<string, string> = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts;

/** The command (and preset words) an npm script runs, e.g. exp:surface -> ['surface'], start -> ['mpo', '--quick']. */
function scriptCommand(name: string): string[] | null {
  const s = scripts[name];
  const m = s && /^tsx src\/cli\.ts (.*)$/.exec(s);
  if (m) return m[1].split(/\s+/);
  if (s?.startsWith('tsx bench/mpo.ts')) return ['bench'];
  return null;
}

const spec = (cmd: string): CommandSpec | undefined => (cmd === 'bench' ? BENCH : COMMANDS[cmd]?.spec);

/** Command lines in code spans and code blocks: `npx loss-atlas CMD ...`, `loss-atlas CMD ...`,
 * `npm run SCRIPT -- ...`. */
function commandLines(): { line: string; cmd: string; words: string[] }[] {
  const out: { line: string; cmd: string; words: string[] }[] = [];
  const texts = [...readme.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]).concat(readme.split('\n'));
  for (const t of texts) {
    for (const m of t.matchAll(/(?:npx )?loss-atlas ([a-z][\w:-]*)((?: [^|#`]*)?)/g)) {
      if (spec(m[1])) out.push({ line: m[0], cmd: m[1], words: m[2].split(/\s+/) });
    }
    for (const m of t.matchAll(/npm (?:run )?([\w:-]+)((?: [^|#`]*)?)/g)) {
      const c = scriptCommand(m[1]);
      if (c && spec(c[0])) out.push({ line: m[0], cmd: c[0], words: [...c.slice(1), ...m[2].split(/\s+/)] });
    }
  }
  return out;
}

describe('README', () => {
  const lines = commandLines();

  it('shows command lines of most commands', () => {
    const cmds = new Set(lines.map((l) => l.cmd));
    expect(cmds.size).toBeGreaterThanOrEqual(15);
  });

  it('says which commands take which global flag (--verbose, --profile)', () => {
    const para = /\*\*Global flags:\*\*([\s\S]*?)\n\n/.exec(readme)?.[1] ?? '';
    const rest = /Every command takes both except: ([\s\S]*)$/.exec(para)?.[1];
    expect(rest, 'the README names the commands that do not take both').toBeDefined();
    const all: [string, CommandSpec][] = Object.entries(COMMANDS).map(([n, c]) => [n, c.spec]);
    all.push(['bench', BENCH]);
    const takes = (s: CommandSpec) => ['verbose', 'profile'].filter((f) => acceptedFlags(s).includes(f)).join(',');
    const told = new Map<string, string>();
    for (const clause of rest!.split(';')) {
      const what = /take(?:s)? neither/.test(clause) ? '' : /takes? `--verbose` only/.test(clause) ? 'verbose' : null;
      expect(what, clause).not.toBeNull();
      const names = [...clause.matchAll(/`([a-z][\w:-]*)`/g)].map((m) => m[1]).filter((n) => spec(n));
      for (const n of names) told.set(n, what!);
    }
    const actual = new Map(all.filter(([, s]) => takes(s) !== 'verbose,profile').map(([n, s]) => [n, takes(s)]));
    expect(Object.fromEntries(told)).toEqual(Object.fromEntries(actual));
  });

  it('names only flags that its commands accept', () => {
    const bad: string[] = [];
    for (const { line, cmd, words } of lines) {
      const ok = new Set(acceptedFlags(spec(cmd)!));
      for (const w of words) {
        const f = /^\[?--([a-z][\w-]*)/.exec(w)?.[1];
        if (f && !ok.has(f) && f !== 'help') bad.push(`${cmd}: --${f} in "${line.trim()}"`);
      }
    }
    expect(bad).toEqual([]);
  });
});

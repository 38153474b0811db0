// renderHelp: a command's --help from its table (usage line, description, arguments, flags with their defaults, the
// global flags), so the help lists exactly the flags the command takes.
import { globalsOf, placeholderOf, type CommandSpec, type OptionSpec, type OptionTable } from './table.ts';
import { choicesText } from './values.ts';

const defaultTextOf = (o: OptionSpec): string | null => {
  if (o.defaultText !== undefined) return o.defaultText;
  if (o.type === 'boolean') return o.negatable && o.default ? 'on' : null;
  if (!('default' in o) || o.default === undefined) return null;
  if (o.type === 'count' && o.default === 0) return 'all';
  if (o.type === 'list') return o.default!.join(',');
  return String(o.default);
};

/** Word-wraps `text` to `width` columns, the lines after the first indented by `indent`. */
function wrap(text: string, width: number, indent: number): string[] {
  const out: string[] = [];
  const lead = /^ */.exec(text)![0];
  let line = lead;
  for (const w of text.slice(lead.length).split(' ')) {
    if (line.trim() && line.length + 1 + w.length > width) {
      out.push(line);
      line = ' '.repeat(indent) + w;
    } else line = line.trim() ? `${line} ${w}` : line + w;
  }
  if (line) out.push(line);
  return out;
}

function rows(table: OptionTable): string[] {
  const left = Object.entries(table).map(([n, o]) => {
    const ph = placeholderOf(o);
    const flag = o.type === 'boolean' && o.negatable ? `--${n}, --no-${n}` : `--${n}${ph ? ` ${ph}` : ''}`;
    return n === 'help' ? `${flag}, -h` : flag;
  });
  const col = Math.min(24, Math.max(...left.map((l) => l.length)) + 2);
  return Object.values(table).flatMap((o, i) => {
    const d = defaultTextOf(o);
    const listed = o.type === 'enum' || o.type === 'list' ? o.choices : undefined;
    const from = listed && (o.type === 'list' ? `from ${listed.join(', ')}` : choicesText(listed));
    const choices = from && o.placeholder ? `: ${from}` : '';
    const text = `${o.help}${choices}${o.required ? ' (required)' : d !== null ? ` (default ${d})` : ''}`;
    const head = `  ${left[i]}`;
    if (head.length + 1 > col + 2) return [head, ...wrap(' '.repeat(col + 2) + text, 118, col + 2)];
    return wrap(head.padEnd(col + 2) + text, 118, col + 2);
  });
}

function defaultUsage(spec: CommandSpec): string {
  const req = Object.entries(spec.options)
    .filter(([, o]) => o.required)
    .map(([n, o]) => ` --${n} ${placeholderOf(o)}`);
  const p = spec.positionals;
  const some = (n: number) => Array(n).fill(p!.placeholder).join(' ');
  const pos = !p ? '' : !p.min ? ` [${p.placeholder}]` : ` ${some(p.min)}${p.max === p.min ? '' : ' ...'}`;
  return `${spec.program ?? 'loss-atlas'} ${spec.name}${req.join('')}${pos} [flags]`;
}

/** The command's --help: usage line, description, arguments, flags with their defaults, global flags. */
export function renderHelp(spec: CommandSpec): string {
  const lines = [`usage: ${spec.usage ?? defaultUsage(spec)}`, '', spec.description];
  const p = spec.positionals;
  if (p) lines.push('', 'arguments:', ...wrap(`  ${p.placeholder}  ${p.help}`, 118, 4));
  if (Object.keys(spec.options).length) lines.push('', 'flags:', ...rows(spec.options));
  const g = globalsOf(spec);
  if (Object.keys(g).length) lines.push('', 'global flags:', ...rows(g));
  if (spec.footer) lines.push('', spec.footer);
  return lines.join('\n');
}

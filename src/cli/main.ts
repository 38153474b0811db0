// The command line: the command's name, then its flags, parsed once against the command's table. Usage errors exit
// with code 2 (message on stderr), the command's own errors with 1.
import { COMMANDS } from './commands.ts';
import { setNormalize } from '../data/datasets.ts';
import { setWeightsFile } from '../models/weights.ts';
import { UsageError, helpRequested, nearest, parseCommand, renderHelp } from '../options/index.ts';

function topHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 2;
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}${c.spec.summary}`);
  return [
    'usage: loss-atlas <command> [flags]   (loss-atlas <command> --help: its flags)',
    '',
    'commands:',
    ...lines,
    '',
    'global flags: --verbose (print the GPU adapter and its limits), --profile [--trace PATH] (per-kernel GPU times),',
    "  --normalize MEAN,STD (the data's per-channel normalization, e.g. the one an ONNX model was trained with),",
    '  --weights FILE (a state_dict saved with safetensors: the weights the model starts from)',
  ].join('\n');
}

/** Runs the command line `argv` (the words after the program); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    const c = cmd === 'help' && rest[0] !== undefined ? COMMANDS[rest[0]] : undefined;
    console.log(c ? renderHelp(c.spec) : topHelp());
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    const near = nearest(cmd, Object.keys(COMMANDS));
    const hint = near ? ` (did you mean ${near}?)` : '';
    console.error(`unknown command "${cmd}"${hint}; loss-atlas help lists the commands`);
    return 2;
  }
  if (helpRequested(rest)) {
    console.log(renderHelp(c.spec));
    return 0;
  }
  try {
    const inv = parseCommand(c.spec, rest);
    setNormalize(inv.globals.normalize);
    setWeightsFile(inv.globals.weights);
    return await c.run(inv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`loss-atlas ${cmd}: ${e.message}\n(loss-atlas ${cmd} --help lists the flags)`);
    return 2;
  }
}

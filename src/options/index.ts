// Command-line options: one table per command, each option with its type, default, value placeholder and a one-line
// help. parseCommand reads argv with node:util parseArgs (strict), converts and validates every value once, and
// renderHelp writes the command's --help from the same table, so the accepted flags and the help cannot drift apart.
// A usage error (unknown flag, a value a flag does not take, a value out of range...) is a UsageError: the command
// line exits with code 2 and the message on stderr.

export * from './table.ts';
export { checkResumeFlags, checkTaskFlags, linspace, optionsOf } from './values.ts';
export { helpRequested, nearest, parseCommand } from './parse.ts';
export { renderHelp } from './help.ts';

// Every command of loss-atlas, in the order `loss-atlas help` lists them.
import type { Command } from './common.ts';
import { MPO_COMMANDS } from './mpo.ts';
import { LANDSCAPE_COMMANDS } from './landscape.ts';
import { GRID_COMMANDS } from './grids.ts';
import { STRUCTURE_COMMANDS } from './structure.ts';
import { TOOL_COMMANDS } from './tools.ts';

const all: Record<string, Command> = {
  ...MPO_COMMANDS,
  ...LANDSCAPE_COMMANDS,
  ...GRID_COMMANDS,
  ...STRUCTURE_COMMANDS,
  ...TOOL_COMMANDS,
};
const ORDER = [
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
];

export const COMMANDS: Record<string, Command> = Object.fromEntries(
  [...ORDER, ...Object.keys(all).filter((n) => !ORDER.includes(n))].map((n) => [n, all[n]]),
);

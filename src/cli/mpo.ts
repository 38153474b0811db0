// The multi-point optimization commands: mpo, plane, bn-compare and profile.
import { MPO, mpoCommand, mpoRunDir } from '../mpo/command.ts';
import { BN_COMPARE, bnCompare } from '../mpo/bn-compare.ts';
import { PROFILE, profileCommand } from '../mpo/profile.ts';
import { PLANE, planeCommand } from '../mpo/plane-command.ts';
import { command, withGpu, type Command } from './common.ts';

export const MPO_COMMANDS: Record<string, Command> = {
  mpo: command(MPO, async ({ options, globals, given }) => {
    const run = mpoRunDir(options, undefined, given); // a bad --resume or --out is refused before the GPU starts
    return withGpu(globals, (gpu) => mpoCommand(gpu, run));
  }),
  'bn-compare': command(BN_COMPARE, async ({ options, globals }) =>
    options.gather ? bnCompare(null, options) : withGpu(globals, (gpu) => bnCompare(gpu, options)),
  ),
  plane: command(PLANE, async ({ options, globals, positionals }) =>
    withGpu(globals, (gpu) => planeCommand(gpu, positionals[0], options)),
  ),
  profile: command(PROFILE, async ({ options, globals }) =>
    withGpu(globals, (gpu) => profileCommand(gpu, options), { profile: true }),
  ),
};

// loss-atlas command line: the entry point (package.json scripts and bin/loss-atlas.js run this file). The commands
// live in src/cli/, one file per group, each declared by its option table (src/options/); `loss-atlas help`
// lists them.
import { main } from './cli/main.ts';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? (process.env.LOSS_ATLAS_STACK ? e.stack : e.message) : e);
    process.exit(1);
  },
);

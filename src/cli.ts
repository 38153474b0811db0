// loss-atlas command line: the entry point (package.json scripts and bin/loss-atlas.js run this file). The commands
// live in src/cli/, one file per group, each declared by its option table (src/options/); `loss-atlas help`
// lists them. Without --verbose the command runs in a child process whose stderr is filtered (src/cli/quiet.ts).
import './platform/node.ts';
import { main } from './cli/main.ts';
import { runFiltered, runsItself, stopWithParent } from './cli/quiet.ts';

const argv = process.argv.slice(2);
if (runsItself(argv)) {
  stopWithParent();
  main(argv).then(
    (code) => process.exit(code),
    (e) => {
      console.error(e instanceof Error ? (process.env.LOSS_ATLAS_STACK ? e.stack : e.message) : e);
      process.exit(1);
    },
  );
} else {
  runFiltered(process.argv[1], argv).then((code) => process.exit(code));
}

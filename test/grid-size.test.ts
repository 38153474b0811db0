// What a long grid says before it starts: its size line, the refusal of more than 1e6 points without --yes (a usage
// error, before any file is read), and the progress line's first estimate of the time left after one block.
import { describe, expect, it } from 'vitest';
import { GRID_COMMANDS, HESSIAN, SURFACE } from '../src/cli/grids.ts';
import { UsageError, parseCommand, renderHelp } from '../src/options/index.ts';
import { gridSizeLine } from '../src/run/grid.ts';
import { progress } from '../src/run/progress.ts';

const start = (name: 'surface' | 'hessian', argv: string[]) => {
  const argvAll = ['--model-file', '/no/such/model.safetensors', ...argv];
  const inv = name === 'surface' ? parseCommand(SURFACE, argvAll) : parseCommand(HESSIAN, argvAll);
  return GRID_COMMANDS[name].run(inv as Parameters<(typeof GRID_COMMANDS)[string]['run']>[0]);
};

describe('grids of more than 1e6 points', () => {
  it('surface --x -1:1:100000 is refused without --yes, naming --x/--y, the count and --yes', async () => {
    const e = await start('surface', ['--x', '-1:1:100000']).catch((x) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect(e.message).toMatch(/^--x\/--y: 100000 x 51 = 5100000 points, more than 1e6; .*add --yes/);
  });

  it('hessian: 1001 x 1000 points are refused, a grid of exactly 1e6 points starts', async () => {
    const e = await start('hessian', ['--x', '-1:1:1001', '--y', '-1:1:1000']).catch((x) => x);
    expect(e).toBeInstanceOf(UsageError);
    expect(e.message).toMatch(/^--x\/--y: 1001 x 1000 = 1001000 points, more than 1e6; .*--yes/);
    // past the check: the missing checkpoint is the error, not the size
    const ok = await start('hessian', ['--x', '-1:1:1000', '--y', '-1:1:1000']).catch((x) => x);
    expect(ok).not.toBeInstanceOf(UsageError);
    expect(ok.message).toMatch(/model\.safetensors/);
  });

  it('with --yes the grid goes on (to the missing checkpoint here); --help lists --yes', async () => {
    const e = await start('surface', ['--x', '-1:1:100000', '--yes']).catch((x) => x);
    expect(e).not.toBeInstanceOf(UsageError);
    expect(e.message).toMatch(/model\.safetensors/);
    for (const spec of [SURFACE, HESSIAN]) expect(renderHelp(spec)).toMatch(/--yes +run a grid of more than 1e6/);
  });
});

describe('the size line and the first estimate', () => {
  it('says points, points left, blocks and images per point', () => {
    expect(gridSizeLine('surface', 2601, 2601, 256, '1000 train images per point')).toBe(
      'surface: 2601 points, 11 blocks of up to 256 points, 1000 train images per point',
    );
    expect(gridSizeLine('Hessian map', 121, 9, 8)).toBe('Hessian map: 121 points (9 left), 2 blocks of up to 8 points');
    expect(gridSizeLine('surface', 4, 0, 2)).toBe('surface: 4 points, all done');
  });

  it('a log (not a terminal) gets a line with the time left after the first block, not only every 5%', () => {
    const lines: string[] = [];
    let t = 0;
    const stream = { write: (s: string) => lines.push(s) };
    const p = progress('surface', { unit: 'point', stream, now: () => t, firstEstimate: true });
    p(0, 100000);
    t = 10;
    p(256, 100000); // 0.256%: no new 5% bucket, but the first rate
    t = 20;
    p(512, 100000);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/point 256\/100000 .* 0\.04 s\/point {2}ETA 1h04m/);
  });
});

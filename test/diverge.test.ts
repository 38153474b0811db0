// Divergence in the structure toolkit's training loops (connect, subspace, swa, toy): a learning rate far too high
// makes the losses they read back non-finite; each stops with a message naming the command, the step, the value and
// the flag to lower, and writes no metrics.json. (mpo and train: run-dir.test.ts and train.test.ts.)
import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMANDS } from '../src/cli/commands.ts';
import { parseCommand } from '../src/options/index.ts';
import { writeIdx, writeInitCheckpoint } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'la-diverge-'));
const data = join(dir, 'fmnist');
mkdirSync(data);
writeIdx(join(data, 'train'), 64, 1);
writeIdx(join(data, 't10k'), 20, 2);
const [a, b] = [1, 2].map((s) => {
  const f = join(dir, `m${s}.safetensors`);
  writeInitCheckpoint(f, 'tiny', s);
  return f;
});
/** The divergence message of `what`, then `rest`. */
const re = (what: string, rest: string) => new RegExp(`${what}training diverged at step \\d+: ${rest}`);
const run = (cmd: string, argv: string[]) => COMMANDS[cmd].run(parseCommand(COMMANDS[cmd].spec, argv));

describe('a diverging training loop stops, names the step and the flag, and marks nothing complete', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'connect',
      [a, b, '--points', '3', '--steps', '4', '--batch', '16', '--images', '10', '--dense', '3', '--lr', '1e30'],
      re(
        'connect \\(the hyperplane points\\): ',
        'the loss of point \\d+ is (NaN|Infinity); try a lower --lr than 1e\\+30',
      ),
    ],
    [
      'connect',
      [a, b, '--method', 'bezier', '--steps', '4', '--batch', '16', '--images', '10', '--dense', '3', '--lr', '1e30'],
      re('connect \\(the bend of the bezier curve\\): ', 'the loss of t = [\\d.]+ is (NaN|Infinity)'),
    ],
    [
      'subspace',
      ['--models', 'tiny', '--ds', '2,4', '--steps', '4', '--batch', '16', '--eval-images', '10', '--lr', '1e38'],
      /subspace: training diverged at step \d+: the loss of d = [24] is (NaN|Infinity); try a lower --lr than 1e\+38/,
    ],
    [
      'swa',
      ['--model-file', a, '--lrs', '1e30', '--snapshots', '2', '--every', '2', '--batch', '16', '--images', '10'],
      /swa \(lr 1e\+30\): training diverged at step \d+: the loss is (NaN|Infinity); try a lower --lrs value/,
    ],
    [
      'toy',
      ['--D', '12', '--steps', '3', '--points', '3', '--lr', '1e38'],
      /toy \(the hyperplane sweep\): training diverged at step \d+: the loss of point \d+ is (NaN|Infinity)/,
    ],
  ];
  for (const [cmd, argv, message] of cases) {
    it(`${cmd} ${argv.slice(-2).join(' ')}${argv.includes('bezier') ? ' (bezier)' : ''}`, async () => {
      const out = join(dir, `${cmd}-${argv.includes('bezier') ? 'bezier' : 'run'}`);
      const withData = cmd === 'toy' ? [] : ['--data', data];
      await expect(run(cmd, [...argv, ...withData, '--out', out])).rejects.toThrow(message);
      expect(existsSync(join(out, 'metrics.json'))).toBe(false);
    });
  }
});

describe('train: a divergence after a checkpoint, resumed with a lower --lr', () => {
  it('stops in epoch 2 keeping epoch 1; --resume --lr continues to the end; other flags are refused', async () => {
    const out = join(dir, 'train');
    const flags = ['--model', 'tiny', '--epochs', '2', '--batch', '16', '--train-images', '64', '--eval-images', '10'];
    // the rate jumps by 1e30 after epoch 1: epoch 2 diverges
    const bad = [...flags, '--lr', '0.05', '--milestones', '1', '--gamma', '1e30', '--data', data, '--out', out];
    await expect(run('train', bad)).rejects.toThrow(
      new RegExp(
        'training diverged at step \\d+ \\(epoch 2\\): the loss is (NaN|Infinity); try a lower --lr than 0\\.05; ' +
          'the checkpoint of epoch 1 in .* is kept: continue with loss-atlas train --resume',
      ),
    );
    expect(existsSync(join(out, 'metrics.json'))).toBe(false);
    await expect(run('train', ['--resume', out, '--epochs', '5'])).rejects.toThrow(
      /--epochs: --resume .* continues with the settings in its config\.json; only --lr can change on --resume/,
    );
    expect(await run('train', ['--resume', out, '--lr', '1e-32'])).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')).epochs).toBe(2);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).lr).toBe(1e-32);
  });
});

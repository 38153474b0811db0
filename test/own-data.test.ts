// A user's own data: .npy arrays and image folders as --data, --normalize, the refusals of bad data (each naming
// the file or folder), and an ONNX model's surface on npy data with its normalization.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSplits, setNormalize } from '../src/data/datasets.ts';
import { readNpy } from '../src/data/formats.ts';
import * as ref from '../src/engine/reference.ts';
import { graphRef } from '../src/models/graph.ts';
import { importOnnx } from '../src/models/onnx.ts';
import { CLI_ARGS } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'la-own-data-'));
afterEach(() => setNormalize(undefined));

/** A .npy file of the given dtype (descr) and values. */
function npy(path: string, descr: '|u1' | '<i8' | '<f4' | '<i4', shape: number[], values: ArrayLike<number>): string {
  const dims = `${shape.join(', ')}${shape.length === 1 ? ',' : ''}`;
  const header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  const padded = header.padEnd(Math.ceil((header.length + 11) / 64) * 64 - 11, ' ') + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre.writeUInt16LE(padded.length, 8);
  const n = values.length;
  const size = { '|u1': 1, '<i8': 8, '<f4': 4, '<i4': 4 }[descr];
  const body = Buffer.alloc(n * size);
  for (let i = 0; i < n; i++) {
    if (descr === '|u1') body[i] = values[i];
    else if (descr === '<i8') body.writeBigInt64LE(BigInt(values[i]), 8 * i);
    else if (descr === '<i4') body.writeInt32LE(values[i], 4 * i);
    else body.writeFloatLE(values[i], 4 * i);
  }
  writeFileSync(path, Buffer.concat([pre, Buffer.from(padded, 'latin1'), body]));
  return path;
}

const N = 40;
const bytes = Uint8Array.from({ length: N * 784 }, (_, i) => (i * 37 + (i >> 7)) % 256);
const labels = Array.from({ length: N }, (_, i) => i % 10);
const X = npy(join(dir, 'x.npy'), '|u1', [N, 1, 28, 28], bytes);
const Y = npy(join(dir, 'y.npy'), '<i8', [N], labels);

describe('npy arrays as --data', () => {
  it('uint8 images scaled to [0, 1], int64 labels; two files: the test split is the training set', async () => {
    const d = await loadSplits('fashion-mnist', `npy:${X},${Y}`);
    expect(d.train.shape).toEqual([1, 28, 28]);
    expect(d.train.n).toBe(N);
    expect(d.train.classes).toBe(10);
    expect(d.train.images[5]).toBeCloseTo(bytes[5] / 255, 6);
    expect(Array.from(d.train.labels)).toEqual(labels);
    expect(d.test).toBe(d.train);
  });

  it('--normalize MEAN,STD applies (x - mean) / std once to each split', async () => {
    setNormalize([0.5, 0.25]);
    const d = await loadSplits('fashion-mnist', `npy:${X},${Y},${X},${Y}`);
    for (const s of [d.train, d.test]) expect(s.images[7]).toBeCloseTo((bytes[7] / 255 - 0.5) / 0.25, 5);
    setNormalize([0.1, 0.2, 0.3, 0.4]);
    await expect(loadSplits('fashion-mnist', `npy:${X},${Y}`)).rejects.toThrow(
      /--normalize: MEAN,STD or 1 means then 1 stds expected, got 4 numbers/,
    );
    for (const std of [0, -1]) {
      setNormalize([0.5, std]);
      await expect(loadSplits('fashion-mnist', `npy:${X},${Y}`)).rejects.toThrow(
        `--normalize: the std must be > 0, got ${std}`,
      );
    }
  });

  it('bad arrays are refused, naming the file', async () => {
    const whole = readFileSync(X);
    const cut = join(dir, 'cut.npy');
    writeFileSync(cut, whole.subarray(0, whole.length - 100));
    await expect(loadSplits('fashion-mnist', `npy:${cut},${Y}`)).rejects.toThrow(/cut\.npy: shape .* \(truncated\)/);
    const flat = npy(join(dir, 'flat.npy'), '<f4', [N, 784], new Float32Array(N * 784));
    await expect(loadSplits('fashion-mnist', `npy:${flat},${Y}`)).rejects.toThrow(
      /flat\.npy: images \[N, C, H, W\] expected, the array has shape \[40, 784\]/,
    );
    const short = npy(join(dir, 'short.npy'), '<i4', [N - 1], labels.slice(1));
    await expect(loadSplits('fashion-mnist', `npy:${X},${short}`)).rejects.toThrow(
      /short\.npy: labels \[40\] expected \(one per image of .*x\.npy\), got \[39\]/,
    );
    const neg = npy(join(dir, 'neg.npy'), '<i8', [N], [...labels.slice(0, N - 1), -3]);
    await expect(loadSplits('fashion-mnist', `npy:${X},${neg}`)).rejects.toThrow(/neg\.npy: label 39 is -3/);
    await expect(loadSplits('fashion-mnist', `npy:${X}`)).rejects.toThrow(/npy:X\.npy,y\.npy or .* \(1 files given\)/);
  });
});

describe('an image folder as --data', () => {
  const root = join(dir, 'images');
  const png = (path: string, w: number, h: number, v: number) =>
    sharp({ create: { width: w, height: h, channels: 3, background: { r: v, g: v, b: v } } })
      .png()
      .toFile(path);

  it('train/ and test/ with a folder per class (sorted), resized to the asked shape', async () => {
    for (const split of ['train', 'test'])
      for (const [c, v] of [
        ['cat', 255],
        ['ant', 0],
      ] as const) {
        mkdirSync(join(root, split, c), { recursive: true });
        await png(join(root, split, c, 'a.png'), 12, 10, v);
        await png(join(root, split, c, 'b.png'), 7, 7, v);
      }
    const d = await loadSplits('fashion-mnist', root, { shape: [1, 8, 8] });
    expect(d.train.shape).toEqual([1, 8, 8]);
    expect(d.train.classes).toBe(2);
    expect(Array.from(d.train.labels)).toEqual([0, 0, 1, 1]); // ant, ant, cat, cat
    expect(d.train.images[0]).toBe(0);
    expect(d.train.images[3 * 64 + 5]).toBeCloseTo(1, 6);
    // without a shape: the first image's size, grey or colour as it is
    const own = await loadSplits('fashion-mnist', root);
    expect(own.test.shape).toEqual([3, 10, 12]);
  });

  it('an empty class folder and an image that does not decode are refused, naming them', async () => {
    const bad = join(dir, 'bad-images');
    mkdirSync(join(bad, 'train', 'a'), { recursive: true });
    mkdirSync(join(bad, 'test', 'a'), { recursive: true });
    await png(join(bad, 'train', 'a', 'x.png'), 4, 4, 9);
    await expect(loadSplits('fashion-mnist', bad)).rejects.toThrow(/test\/a: an empty class folder/);
    writeFileSync(join(bad, 'test', 'a', 'broken.png'), 'not a png');
    await expect(loadSplits('fashion-mnist', bad)).rejects.toThrow(/broken\.png: cannot decode the image/);
    // a class only under test/ would be silently left out: refused, naming it and train/'s classes
    mkdirSync(join(bad, 'test', 'zebra'));
    await expect(loadSplits('fashion-mnist', bad)).rejects.toThrow(
      `${join(bad, 'test')}: class folder zebra not in ${join(bad, 'train')} (train/ names the classes: a)`,
    );
  });
});

describe('an ONNX model on npy data with its normalization', () => {
  it("surface: the centre is the CPU reference's loss on the normalized images", () => {
    const out = join(dir, 'surface');
    const net = 'test/fixtures/onnx/fmnist.onnx';
    const r = spawnSync(
      process.execPath,
      [...CLI_ARGS, 'surface', '--model-file', net, '--data', `npy:${X},${Y}`, '--normalize', '0.2860,0.3530'].concat([
        '--x',
        '-1:1:3',
        '--y',
        '-1:1:3',
        '--out',
        out,
      ]),
      { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } },
    );
    expect(r.status, r.stderr).toBe(0);
    const m = importOnnx(net);
    const x = Float32Array.from(bytes, (v) => (v / 255 - 0.286) / 0.353);
    const want = ref.crossEntropyRef(graphRef(m.graph, m.params, x, N, m.input, 0, m.states).y, labels, N, 10).loss;
    expect(Math.abs(readNpy(join(out, 'surface_loss.npy')).data[4] - want)).toBeLessThan(1e-4 * want);
  });
});

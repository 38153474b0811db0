// Bad input files and flags, one case each: every reader refuses them with one error that names the file (or the
// flag) and what was expected. The MPO cases go through a resumed run; the rest call the readers.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import type { Gpu } from '../src/engine/device.ts';
import { cifar10Records, loadCifar10 } from '../src/data/cifar10.ts';
import { loadFashionMnist } from '../src/data/fashion-mnist.ts';
import { npyBytes, readNpy, readSafetensors, safetensorsBytes } from '../src/data/formats.ts';
import { readIdx } from '../src/data/idx.ts';
import { readCheckpoint } from '../src/models/checkpoint.ts';
import { initParams, paramShapes } from '../src/models/graph.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { loadMask } from '../src/mpo/masks.ts';
import { readMpoCheckpoint, runMpo } from '../src/mpo/mpo.ts';
import { mpoConfig } from '../src/mpo/command.ts';
import { testGpu, writeIdx } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'la-readers-'));
let gpu: Gpu | undefined;
afterAll(() => gpu?.destroy());

/** The path as a regular expression, for messages that must name it. */
const re = (path: string, rest = '') => new RegExp(`${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}${rest}`);

/** A safetensors file with a hand-written header (the data bytes after it). */
function rawSafetensors(path: string, header: unknown, data: Buffer = Buffer.alloc(0)): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

describe('safetensors', () => {
  const f32 = (n: number) => Buffer.from(new Float32Array(n).buffer);
  /** A tensor's header entry. */
  const T = (shape: number[], begin: number, end: number, dtype = 'F32') => ({
    dtype,
    shape,
    data_offsets: [begin, end],
  });
  it('a shape that disagrees with its byte range is refused, naming the file, the tensor and both sizes', () => {
    const p = rawSafetensors(join(dir, 'shape.safetensors'), { w: T([2, 3], 0, 16) }, f32(4));
    const msg = ': tensor w: shape \\[2,3\\] of F32 is 24 bytes, its data_offsets \\[0,16\\] hold 16';
    expect(() => readSafetensors(p)).toThrow(re(p, msg));
  });
  it('checks dtype, offsets inside the data, no overlap or gap, the header (JSON, an object, string metadata)', () => {
    const cases: [unknown, Buffer, string][] = [
      [{ w: T([2], 0, 4, 'F16') }, f32(1), 'tensor w is F16, F32 expected'],
      [{ w: T([1], 0, 4, 'F99') }, f32(1), 'tensor w: unknown dtype "F99"'],
      [{ w: T([4], 0, 16) }, f32(2), 'tensor w runs past the end of the file'],
      [{ w: T([2], 0, 8), v: T([2], 4, 12) }, f32(3), 'the data of tensors w and v overlap'],
      [{ w: T([1], 4, 8) }, f32(2), '4 bytes between the header and tensor w belong to no tensor'],
      [{ w: T([1], 0, 4) }, f32(2), "4 bytes after the last tensor's data \\(w\\) belong to no tensor"],
      [{ w: T([-1], 0, 4) }, f32(1), 'tensor w: shape should be a list of sizes'],
      [{ w: T([1], 4, 0) }, f32(1), 'tensor w: data_offsets should be \\[begin, end\\]'],
      [{ w: [1, 2] }, f32(1), 'tensor w: \\{dtype, shape, data_offsets\\} expected'],
      [{ __metadata__: { step: 3 } }, f32(0), 'corrupt safetensors header: __metadata__ should map names to strings'],
      ['{"w": {"dtype": "F32"', f32(0), 'corrupt safetensors header: not valid JSON'],
      ['[1, 2, 3]', f32(0), 'corrupt safetensors header: a JSON object expected'],
    ];
    cases.forEach(([header, data, msg], i) => {
      const p = rawSafetensors(join(dir, `bad-${i}.safetensors`), header, data);
      expect(() => readSafetensors(p)).toThrow(re(p, `: ${msg}`));
    });
    const long = join(dir, 'long-header.safetensors');
    writeFileSync(long, Buffer.concat([Buffer.from([100, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]));
    expect(() => readSafetensors(long)).toThrow(re(long, ': header of 100 bytes but the file has 10 \\(truncated'));
    writeFileSync(join(dir, 'short.safetensors'), Buffer.from([1, 2, 3]));
    expect(() => readSafetensors(join(dir, 'short.safetensors'))).toThrow(/short\.safetensors: 3 bytes, too short/);
  });
  it('a missing file names the file and the kind of file expected', () => {
    const p = join(dir, 'nowhere', 'm.safetensors');
    expect(() => readSafetensors(p)).toThrow(re(p, ': file not found \\(a \\.safetensors file expected\\)'));
    expect(() => readSafetensors(dir)).toThrow(re(dir, ': a directory, not a file'));
  });
});

describe('model checkpoints', () => {
  const write = (path: string, model: string, input: [number, number, number], meta: Record<string, string> = {}) => {
    const layers = modelSpec(model, { input }).layers;
    const w = initParams(layers, 1, 3);
    const t = Object.fromEntries(paramShapes(layers).map((s, i) => [s.name, { shape: s.shape, data: w[i] }]));
    writeFileSync(path, safetensorsBytes(t, { model, bn: 'false', skip: 'false', ...meta }));
    return t;
  };
  it('a checkpoint of another model says which model the file holds and which the run expects', () => {
    const p = join(dir, 'cifar-tiny.safetensors');
    write(p, 'tiny', [3, 32, 32]);
    expect(() => readCheckpoint(p, [1, 28, 28])).toThrow(
      re(
        p,
        ': tensor 0\\.conv\\.weight has 108 values \\[4,3,3,3\\], \\[4,1,3,3\\] expected:' +
          ' by its tensors the file holds' +
          ' tiny on \\[3,32,32\\] inputs \\(its metadata says tiny\\), this run expects tiny on \\[1,28,28\\] inputs',
      ),
    );
    const q = join(dir, 'named-small.safetensors');
    write(q, 'tiny', [1, 28, 28], { model: 'small' });
    expect(() => readCheckpoint(q, [1, 28, 28])).toThrow(
      re(q, ': tensor \\S+ (of model small missing|has \\d+ values).*the file holds tiny on \\[1,28,28\\] inputs'),
    );
  });
  it('a tensor of the right size but another shape is refused', () => {
    const p = join(dir, 'transposed.safetensors');
    const t = write(p, 'tiny', [1, 28, 28]);
    t['0.conv.weight'].shape = [1, 4, 3, 3];
    writeFileSync(p, safetensorsBytes(t, { model: 'tiny', bn: 'false', skip: 'false' }));
    expect(() => readCheckpoint(p, [1, 28, 28])).toThrow(
      re(p, ': tensor 0\\.conv\\.weight has 36 values \\[1,4,3,3\\], \\[4,1,3,3\\] expected'),
    );
  });
  it('a missing model file, a directory and an unknown model name are named', () => {
    const p = join(dir, 'none', 'model.safetensors');
    expect(() => readCheckpoint(p, [1, 28, 28])).toThrow(
      re(p, ': file not found \\(a checkpoint \\(a model\\.safetensors written by loss-atlas train\\) expected\\)'),
    );
    expect(() => readCheckpoint(dir, [1, 28, 28])).toThrow(re(dir, ': a directory, not a file'));
    const q = join(dir, 'unknown.safetensors');
    writeFileSync(q, safetensorsBytes({}, { model: 'resnet9000' }));
    expect(() => readCheckpoint(q, [1, 28, 28])).toThrow(re(q, ': its metadata names a model loss-atlas cannot build'));
  });
});

describe('CIFAR-10 batches', () => {
  const R = 3073;
  const batch = (n: number, label = 3) => {
    const b = Buffer.alloc(n * R, 7);
    for (let i = 0; i < n; i++) b[i * R] = label;
    return b;
  };
  it('a batch cut at a record boundary is refused: a batch holds exactly 10,000 records', () => {
    const d = join(dir, 'cifar-cut');
    mkdirSync(d);
    writeFileSync(join(d, 'test_batch.bin'), batch(9_999));
    expect(() => loadCifar10(d, 'test', undefined, 10_000)).toThrow(
      re(
        join(d, 'test_batch.bin'),
        ': 9999 records of 3073 bytes \\(30726927 bytes\\), 10000 expected \\(30730000 bytes\\)',
      ),
    );
    writeFileSync(join(d, 'test_batch.bin'), batch(10_000));
    expect(loadCifar10(d, 'test', 5, 10_000).n).toBe(5);
  });
  it('LOSS_ATLAS_CIFAR10_RECORDS sets the count (any: a small test set), a bad value is named', () => {
    const d = join(dir, 'cifar-small');
    mkdirSync(d);
    writeFileSync(join(d, 'test_batch.bin'), batch(6));
    const old = process.env.LOSS_ATLAS_CIFAR10_RECORDS;
    try {
      process.env.LOSS_ATLAS_CIFAR10_RECORDS = 'any';
      expect(loadCifar10(d, 'test').n).toBe(6);
      process.env.LOSS_ATLAS_CIFAR10_RECORDS = '6';
      expect(loadCifar10(d, 'test').n).toBe(6);
      process.env.LOSS_ATLAS_CIFAR10_RECORDS = 'lots';
      expect(() => cifar10Records()).toThrow(/LOSS_ATLAS_CIFAR10_RECORDS: a record count >= 1 or "any" expected/);
      delete process.env.LOSS_ATLAS_CIFAR10_RECORDS;
      expect(() => loadCifar10(d, 'test')).toThrow(/6 records of 3073 bytes .*10000 expected/);
    } finally {
      if (old === undefined) delete process.env.LOSS_ATLAS_CIFAR10_RECORDS;
      else process.env.LOSS_ATLAS_CIFAR10_RECORDS = old;
    }
  });
  it('a label over 9 names the file and the record', () => {
    const d = join(dir, 'cifar-label');
    mkdirSync(d);
    const b = batch(4);
    b[2 * R] = 12;
    writeFileSync(join(d, 'test_batch.bin'), b);
    expect(() => loadCifar10(d, 'test', undefined, 4)).toThrow(
      re(join(d, 'test_batch.bin'), ': record 2 has label 12, expected 0\\.\\.9'),
    );
  });
});

describe('npy', () => {
  const good = Buffer.from(
    npyBytes(
      Float32Array.from({ length: 12 }, (_, i) => i),
      [3, 4],
    ),
  );
  const npy = (name: string, b: Buffer) => {
    writeFileSync(join(dir, name), b);
    return join(dir, name);
  };
  const withHeader = (header: string, data: Buffer) => {
    const h = Buffer.alloc(10);
    h.write('\x93NUMPY', 0, 'latin1');
    h[6] = 1;
    h.writeUInt16LE(header.length, 8);
    return Buffer.concat([h, Buffer.from(header, 'latin1'), data]);
  };
  it('truncated data, a bad magic, an unsupported dtype and a shape that disagrees with the data are refused', () => {
    const cut = npy('cut.npy', good.subarray(0, good.length - 5));
    expect(() => readNpy(cut)).toThrow(
      re(cut, ': shape \\[3,4\\] needs 48 bytes of data, the file has 43 \\(truncated\\)'),
    );
    const magic = npy('magic.npy', Buffer.concat([Buffer.from('PK'), good.subarray(2)]));
    expect(() => readNpy(magic)).toThrow(re(magic, ': not a \\.npy file \\(magic'));
    const f8 = npy(
      'f8.npy',
      withHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }\n", Buffer.alloc(16)),
    );
    expect(() => readNpy(f8)).toThrow(re(f8, ": dtype '<f8' not supported"));
    const more = npy('more.npy', Buffer.concat([good, Buffer.alloc(8)]));
    expect(() => readNpy(more)).toThrow(
      re(more, ': shape \\[3,4\\] needs 48 bytes of data, the file has 56 \\(8 bytes too many\\)'),
    );
    const head = npy('head.npy', good.subarray(0, 40));
    expect(() => readNpy(head)).toThrow(re(head, ': a header of \\d+ bytes but the file has 40 \\(truncated\\)'));
    const tiny = npy('tiny.npy', good.subarray(0, 4));
    expect(() => readNpy(tiny)).toThrow(re(tiny, ': 4 bytes, too short for a \\.npy header'));
    const fortran = npy(
      'fortran.npy',
      withHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", Buffer.alloc(16)),
    );
    expect(() => readNpy(fortran)).toThrow(re(fortran, ': Fortran-order array'));
    const shape = npy(
      'shape.npy',
      withHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }\n", Buffer.alloc(8)),
    );
    expect(() => readNpy(shape)).toThrow(re(shape, ': shape \\(2,x\\) is not a tuple of sizes'));
    expect(() => readNpy(join(dir, 'gone.npy'))).toThrow(
      re(join(dir, 'gone.npy'), ': file not found \\(a float32 \\.npy file expected\\)'),
    );
  });
  it('reads what it writes, scalars and version 2 headers', () => {
    expect(readNpy(npy('good.npy', good))).toMatchObject({ shape: [3, 4] });
    const v2 = Buffer.concat([
      Buffer.from('\x93NUMPY\x02\x00', 'latin1'),
      Buffer.alloc(4),
      Buffer.from("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n"),
      Buffer.alloc(4),
    ]);
    v2.writeUInt32LE(v2.length - 12 - 4, 8);
    expect(readNpy(npy('v2.npy', v2))).toMatchObject({ shape: [] });
  });
});

describe('IDX', () => {
  it('a header cut inside the sizes, a wrong magic number, truncated or extra data are refused naming the file', () => {
    const p = join(dir, 'h-images-idx3-ubyte');
    writeFileSync(p, Buffer.from([0, 0, 8, 3, 0, 0]));
    expect(() => readIdx(p, 3)).toThrow(re(p, ': 6 bytes, too short for the header of a 3-dimensional IDX file'));
    writeFileSync(p, Buffer.from([0, 0, 0x0d, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]));
    expect(() => readIdx(p, 3)).toThrow(
      re(p, ': IDX magic 0x00000803 \\(unsigned bytes\\) expected, found 0x00000d03'),
    );
    writeFileSync(p, Buffer.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3]));
    expect(() => readIdx(p, 3)).toThrow(
      re(p, ': dims \\[2, 2, 2\\] need 24 bytes after decompression, found 19 \\(truncated\\)'),
    );
    writeFileSync(p, Buffer.from([0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3]));
    expect(() => readIdx(p, 1)).toThrow(re(p, ': dims \\[2\\] need 10 bytes .*found 11 \\(extra bytes at the end\\)'));
    writeFileSync(p, gzipSync(Buffer.from([0, 0, 8, 3, 0, 0, 0])));
    expect(() => readIdx(p, 3)).toThrow(re(p, ': 7 bytes, too short for the header'));
    expect(() => readIdx(dir, 3)).toThrow(re(dir, ': a directory, not a file'));
  });
  it('a Fashion-MNIST file of no images is refused', () => {
    const d = join(dir, 'fm-empty');
    mkdirSync(d);
    writeIdx(join(d, 't10k'), 0, 1);
    expect(() => loadFashionMnist(d, 't10k')).toThrow(re(join(d, 't10k-images-idx3-ubyte.gz'), ': no images'));
  });
});

describe('--mask', () => {
  it('every part of a random:P:SEED:SIZE spec is checked, naming --mask and the expected form', async () => {
    const form = ' \\(random:P\\[:SEED\\[:SIZE\\]\\] expected\\)';
    await expect(loadMask('random:0.5:abc', 10)).rejects.toThrow(
      new RegExp(`^--mask random:0\\.5:abc: SEED should be an integer 0 <= SEED < 2\\^32, got "abc"${form}`),
    );
    const specs = 'random:1.5 P, random: P, random:-0.2 P, random:half P, random:0.5:1.5 SEED, random:0.5:-3 SEED';
    for (const [spec, part] of `${specs}, random:0.5:1:5 SIZE, random:0.5:1:30x SIZE`
      .split(', ')
      .map((c) => c.split(' ')))
      await expect(loadMask(spec, 10)).rejects.toThrow(new RegExp(`^--mask ${spec}: ${part} should be .*${form}`));
    await expect(loadMask('random:0.5:1:30:4', 10)).rejects.toThrow(/^--mask random:0\.5:1:30:4: too many parts/);
    await expect(loadMask('grid:2.5', 10)).rejects.toThrow(/^--mask grid:N needs an integer 1 <= N <= 50, got "2\.5"/);
    await expect(loadMask('grid: 3', 10)).rejects.toThrow(/^--mask grid:N needs an integer/);
    expect((await loadMask('random:0.5:7:12', 10)).H).toBe(12);
  });
  it('a PNG cut inside its image data names the file', async () => {
    const p = join(dir, 'cut.png');
    const square = { create: { width: 8, height: 8, channels: 3 as const, background: '#ffffff' } };
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#808080' } })
      .composite([{ input: square, left: 4, top: 4 }])
      .png()
      .toBuffer();
    writeFileSync(p, png.subarray(0, png.length - 30));
    await expect(loadMask(p, 10)).rejects.toThrow(re(p, ': not a readable image \\(pngload: end of stream; a PNG'));
  });
});

/** A valid MPO checkpoint of `model` at `step`, as runMpo saves it. */
function writeMpoCheckpoint(ckDir: string, model: string, step: number): void {
  const layers = modelSpec(model, { input: [1, 28, 28] }).layers;
  const [o, r, u] = [0, 1, 2].map((k) => initParams(layers, 1, k));
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  const put = (tag: string, vs: Float32Array[]) =>
    vs.forEach((d, i) => (t[`${tag}/${i}`] = { shape: [d.length], data: d }));
  put('origin', o);
  put('right_param', r);
  put('up_param', u);
  t.scale = { shape: [1], data: Float32Array.of(0.1) };
  const all = [...o, ...r, ...u, Float32Array.of(0)];
  put(
    'adam_m',
    all.map((d) => new Float32Array(d.length)),
  );
  put(
    'adam_v',
    all.map((d) => new Float32Array(d.length)),
  );
  mkdirSync(ckDir, { recursive: true });
  writeFileSync(join(ckDir, 'checkpoint.safetensors'), safetensorsBytes(t, { step: String(step) }));
  const state = { step, seconds: 1.5, epochDiff: 0.25, epochSteps: step, epochAccs: [], stoppedEarly: false };
  writeFileSync(join(ckDir, 'state.json'), `${JSON.stringify(state)}\n`);
}

describe('MPO checkpoints', () => {
  const layers = modelSpec('tiny', { input: [1, 28, 28] }).layers;
  const expects = 'tiny on [1,28,28] inputs';

  it('a resumed run with a truncated state.json, or a checkpoint of another model, names the file', async () => {
    gpu = await testGpu();
    const fm = join(dir, 'fm');
    mkdirSync(fm);
    writeIdx(join(fm, 'train'), 40, 1);
    writeIdx(join(fm, 't10k'), 20, 2);
    const data = { train: loadFashionMnist(fm, 'train'), test: loadFashionMnist(fm, 't10k') };
    const cfg = { ...mpoConfig({ quick: true, data: fm }), model: 'tiny', mask: 'plus', grid: 6, steps: 4, batch: 8 };
    const out = join(dir, 'mpo-run');
    const ck = join(out, 'checkpoint');
    writeMpoCheckpoint(ck, 'tiny', 2);
    writeFileSync(join(out, 'log.jsonl'), '');
    const state = readFileSync(join(ck, 'state.json'), 'utf8');
    writeFileSync(join(ck, 'state.json'), state.slice(0, 30));
    await expect(runMpo(gpu, cfg, data, out, true)).rejects.toThrow(
      re(join(ck, 'state.json'), ': truncated JSON \\(30 bytes; the state of an MPO checkpoint expected'),
    );
    writeMpoCheckpoint(ck, 'small', 2);
    await expect(runMpo(gpu, cfg, data, out, true)).rejects.toThrow(
      re(
        join(ck, 'checkpoint.safetensors'),
        ': a checkpoint of small on \\[1,28,28\\] inputs .*\\(\\d+ tensors, \\d+ parameters\\),' +
          ' this run expects tiny on \\[1,28,28\\] inputs \\(\\d+ tensors, \\d+ parameters\\)',
      ),
    );
  });

  it('state.json: not JSON, not an object, a field of the wrong type; the weights: missing, another step', () => {
    const ck = join(dir, 'mpo-ck');
    const file = join(ck, 'state.json');
    const bad = (text: string, msg: string) => {
      writeMpoCheckpoint(ck, 'tiny', 2);
      writeFileSync(file, text);
      expect(() => readMpoCheckpoint(ck, layers, expects)).toThrow(re(file, `: ${msg}`));
    };
    bad('{"step": 2,, }', 'not valid JSON \\(14 bytes; the state of an MPO checkpoint expected');
    bad('', 'truncated JSON \\(0 bytes');
    bad('[2]', 'a JSON object expected');
    bad('{"step": "2"}', '"step" should be an integer >= 0, got "2"');
    const fields = '"seconds": 1, "epochDiff": 0, "epochSteps": 2';
    bad(`{"step": 2, ${fields}, "epochAccs": [0.1, "x"]}`, '"epochAccs" should be a list of finite numbers');
    bad(`{"step": 2, ${fields}, "epochAccs": []}`, '"stoppedEarly" should be true or false, got nothing');
    writeMpoCheckpoint(ck, 'tiny', 2);
    writeFileSync(file, `{"step": 3, ${fields}, "epochAccs": [], "stoppedEarly": false}`);
    expect(() => readMpoCheckpoint(ck, layers, expects)).toThrow(
      re(join(ck, 'checkpoint.safetensors'), ': saved at step 2, .*state\\.json at step 3'),
    );
    writeMpoCheckpoint(ck, 'tiny', 2);
    const w = join(ck, 'checkpoint.safetensors');
    const t = readSafetensors(w).tensors;
    delete t['adam_v/3'];
    writeFileSync(w, safetensorsBytes(t, { step: '2' }));
    expect(() => readMpoCheckpoint(ck, layers, expects)).toThrow(
      re(w, ': tensor adam_v/3: \\d+ values expected, found none'),
    );
    writeFileSync(w, Buffer.alloc(0));
    expect(() => readMpoCheckpoint(ck, layers, expects)).toThrow(
      re(w, ': 0 bytes, too short for a safetensors file \\(the weights of an MPO checkpoint expected'),
    );
    writeMpoCheckpoint(ck, 'tiny', 2);
    const ok = readMpoCheckpoint(ck, layers, expects);
    expect(ok.state.step).toBe(2);
    expect(ok.plane.origin.length).toBe(paramShapes(layers).length);
    expect(ok.adam.length).toBe(3 * paramShapes(layers).length + 1);
  });
});

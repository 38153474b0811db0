// The readers against broken files: for each reader a valid small file, cut at every structural boundary (header,
// fields, records, tensors) and at sampled lengths, a few seeded random files and seeded single-byte corruptions.
// Each case must throw an Error whose message names the file, or (a corruption that leaves the file valid) return a
// result of the right shape: never crash, hang or throw anything else. The readers run in a worker thread so that a
// case past its time limit can be stopped; the same seed gives the same cases.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { rng } from '../src/engine/random.ts';
import { npyBytes, safetensorsBytes } from '../src/data/formats.ts';
import { initParams, paramShapes } from '../src/models/graph.ts';
import { modelSpec } from '../src/models/zoo.ts';
import { RUN_KINDS } from '../src/run/run-info.ts';

const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const root = resolve(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'la-fuzz-'));
const CASE_LIMIT_MS = 5000;
const TINY = paramShapes(modelSpec('tiny', { input: [1, 28, 28] }).layers).map((p) => p.shape.reduce((a, b) => a * b));

/** The worker: runs one reader per message and answers with a summary of its result or what it threw. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { tsImport } = await import('tsx/esm/api');
  const load = (f) => tsImport(workerData.root + '/src/' + f, workerData.parent);
  await load('platform/node.ts');
  const [fm, cifar, formats, masks, runInfo, mpo, zoo] = await Promise.all(
    ['data/fashion-mnist.ts', 'data/cifar10.ts', 'data/formats.ts', 'mpo/masks.ts', 'run/run-info.ts', 'mpo/mpo.ts',
      'models/zoo.ts'].map(load));
  (await import('sharp')).default.cache(false);
  const layers = zoo.modelSpec('tiny', { input: [1, 28, 28] }).layers;
  const maxOf = (a) => a.reduce((m, v) => Math.max(m, v), 0);
  const set = (d) => ({ n: d.n, images: d.images.length, labels: d.labels.length, maxLabel: maxOf(d.labels) });
  const readers = {
    fashion: (c) => set(fm.loadFashionMnist(c.dir, 't10k')),
    cifar: (c) => set(cifar.loadCifar10(c.dir, 'test', undefined, 3)),
    safetensors: (c) => {
      const r = formats.readSafetensors(c.path);
      const tensors = Object.values(r.tensors).map((t) => [t.shape, t.data.length]);
      return { tensors, meta: Object.values(r.metadata) };
    },
    npy: (c) => ((r) => ({ shape: r.shape, values: r.data.length }))(formats.readNpy(c.path)),
    mask: (c) => masks.loadMask(c.path, 10).then((m) => ({ H: m.H, W: m.W, cells: m.data })),
    config: (c) => ((r) => ({ kind: r.kind, argv: Array.isArray(r.argv) }))(runInfo.readRunConfig(c.dir)),
    mpo: (c) => {
      const r = mpo.readMpoCheckpoint(c.dir, layers, 'tiny on [1,28,28] inputs');
      return { step: r.state.step, origin: r.plane.origin.map((d) => d.length), adam: r.adam.length };
    },
  };
  parentPort.on('message', async (c) => {
    try {
      parentPort.postMessage({ id: c.id, ok: await readers[c.reader](c) });
    } catch (e) {
      const err = { isError: e instanceof Error, type: e?.constructor?.name, message: String(e?.message ?? e) };
      parentPort.postMessage({ id: c.id, err });
    }
  });
  parentPort.postMessage({ ready: true });
})().catch((e) => parentPort.postMessage({ fatal: String(e?.stack ?? e) }));
`;

type Reader = 'fashion' | 'cifar' | 'safetensors' | 'npy' | 'mask' | 'config' | 'mpo';
type Summary = Record<string, unknown>;
type Answer = { ok?: Summary; err?: { isError: boolean; type: string; message: string } };

/** One valid input: the files of its directory, the one to break, and what a valid result must look like. */
interface Fixture {
  name: string;
  reader: Reader;
  files: Record<string, Buffer>;
  target: string;
  /** A cut file may still be valid (text and PNG); else every cut must be refused. */
  loose?: true;
  /** Structural boundaries of the target, as lengths to cut it at. */
  boundaries: number[];
  /** Where single-byte corruptions are most telling: [begin, end) of the header. */
  header?: [number, number];
  /** Prefix for random files (a magic number), so they get past the first check. */
  magic?: Buffer;
  valid: (s: Summary) => boolean;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
/** Positions just after each structural character of a JSON (or Python literal) text, offset by `at`. */
const tokenEnds = (text: string, at: number, chars = '{}[]:,"') =>
  [...text].flatMap((ch, i) => (chars.includes(ch) ? [at + i, at + i + 1] : []));

function idxBytes(dims: number[], fill: (i: number) => number): Buffer {
  const b = Buffer.alloc(4 + 4 * dims.length + numel(dims));
  b.writeUInt32BE(0x800 + dims.length, 0);
  dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
  for (let i = 4 + 4 * dims.length; i < b.length; i++) b[i] = fill(i);
  return b;
}

function safetensorsBoundaries(b: Buffer, sample?: () => number): { boundaries: number[]; header: [number, number] } {
  const n = Number(b.readBigUInt64LE(0));
  const json = b.toString('utf8', 8, 8 + n);
  const header = JSON.parse(json) as Record<string, { data_offsets?: [number, number] }>;
  const ends = Object.values(header).flatMap((t) => (t.data_offsets ? [8 + n + t.data_offsets[1]] : []));
  let tokens = tokenEnds(json, 8);
  if (sample) tokens = tokens.filter(() => sample() < 0.1);
  return { boundaries: [...Array(9).keys(), 8 + n, ...ends, ...tokens], header: [0, 8 + n] };
}

async function fixtures(): Promise<Fixture[]> {
  const r = rng(7);
  const images = idxBytes([3, 28, 28], () => Math.floor(256 * r()));
  const labels = idxBytes([3], (i) => i % 10);
  const fashionValid = (s: Summary) =>
    s.n === 3 && s.images === 3 * 784 && s.labels === 3 && (s.maxLabel as number) <= 9;
  const idxBounds = (b: Buffer, dims: number[]) => [
    ...Array(5).keys(),
    ...dims.map((_, i) => 8 + 4 * i),
    ...Array.from({ length: dims[0] }, (_, k) => 4 + 4 * dims.length + k * numel(dims.slice(1))),
    b.length - 1,
  ];
  const gzBounds = (b: Buffer) => [...Array(11).keys(), b.length - 8, b.length - 4, b.length - 1];
  const fashion: Fixture[] = [];
  for (const gz of [false, true])
    for (const which of ['images', 'labels'] as const) {
      const [img, lab] = gz ? [gzipSync(images), gzipSync(labels)] : [images, labels];
      const suffix = gz ? '.gz' : '';
      const target = `t10k-${which}-idx${which === 'images' ? 3 : 1}-ubyte${suffix}`;
      const t = which === 'images' ? img : lab;
      fashion.push({
        name: `IDX ${which}${gz ? ' (gzip)' : ''}`,
        reader: 'fashion',
        files: { [`t10k-images-idx3-ubyte${suffix}`]: img, [`t10k-labels-idx1-ubyte${suffix}`]: lab },
        target,
        boundaries: gz ? gzBounds(t) : idxBounds(t, which === 'images' ? [3, 28, 28] : [3]),
        header: gz ? [0, 10] : [0, which === 'images' ? 16 : 8],
        magic: gz ? t.subarray(0, 10) : t.subarray(0, 4),
        valid: fashionValid,
      });
    }

  const cifar = Buffer.alloc(3 * 3073);
  for (let i = 0; i < cifar.length; i++) cifar[i] = i % 3073 === 0 ? (i / 3073) % 10 : Math.floor(256 * r());
  const cifarFixture: Fixture = {
    name: 'CIFAR-10 batch',
    reader: 'cifar',
    files: { 'test_batch.bin': cifar },
    target: 'test_batch.bin',
    boundaries: [0, 1, 2].flatMap((k) => [0, 1, 1025, 2049, 3072].map((o) => 3073 * k + o)).concat([3 * 3073 - 1]),
    valid: (s) => s.n === 3 && s.images === 3 * 3072 && s.labels === 3 && (s.maxLabel as number) <= 9,
  };

  const tensors = {
    'a.weight': { shape: [2, 3], data: Float32Array.from({ length: 6 }, () => r()) },
    'b.bias': { shape: [4], data: Float32Array.from({ length: 4 }, () => r()) },
    empty: { shape: [0, 5], data: new Float32Array(0) },
    scalar: { shape: [], data: Float32Array.of(3) },
  };
  const st = asBuffer(safetensorsBytes(tensors, { model: 'tiny', note: 'fuzz' }));
  const stFixture: Fixture = {
    name: 'safetensors',
    reader: 'safetensors',
    files: { 'm.safetensors': st },
    target: 'm.safetensors',
    ...safetensorsBoundaries(st),
    magic: st.subarray(0, 8),
    valid: (s) =>
      (s.tensors as [number[], number][]).every(([shape, n]) => numel(shape) === n) &&
      (s.meta as unknown[]).every((v) => typeof v === 'string'),
  };

  const values = Float32Array.from({ length: 24 }, () => r());
  const npy = asBuffer(npyBytes(values, [2, 3, 4]));
  const hl = npy.readUInt16LE(8);
  const npyFixture: Fixture = {
    name: 'npy',
    reader: 'npy',
    files: { 'a.npy': npy },
    target: 'a.npy',
    boundaries: [
      ...Array(11).keys(),
      ...tokenEnds(npy.toString('latin1', 10, 10 + hl), 10, "{}():,'"),
      ...[0, 1].map((k) => 10 + hl + 48 * k),
      npy.length - 1,
    ],
    header: [0, 10 + hl],
    magic: npy.subarray(0, 10),
    valid: (s) => numel(s.shape as number[]) === s.values,
  };

  const png = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#000000' } })
    .composite([{ input: { create: { width: 10, height: 10, channels: 3, background: '#ffffff' } }, left: 5, top: 5 }])
    .png()
    .toBuffer();
  const chunks: number[] = [8];
  for (let p = 8; p + 8 <= png.length; p += 12 + png.readUInt32BE(p)) {
    const l = png.readUInt32BE(p);
    chunks.push(p + 4, p + 8, p + 8 + l, p + 12 + l);
  }
  const pngFixture: Fixture = {
    name: 'PNG mask',
    reader: 'mask',
    files: { 'mask.png': png },
    target: 'mask.png',
    loose: true,
    boundaries: [0, 4, ...chunks],
    header: [0, 33],
    magic: png.subarray(0, 16),
    valid: ({ H, W, cells }) => H === 10 && W === 10 && (cells as Uint8Array).filter((v) => v <= 1).length === 100,
  };

  const meta = { adapter: 'lavapipe', commit: '0123abc', created: '2025-01-02T03:04:05.000Z' };
  const settings = { mask: 'heart', steps: 700, lr: 0.001, bn: false };
  const config = `${JSON.stringify({ kind: 'mpo', argv: ['mpo', '--quick'], ...settings, ...meta }, null, 2)}\n`;
  const configFixture: Fixture = {
    name: 'config.json',
    reader: 'config',
    files: { 'config.json': Buffer.from(config) },
    target: 'config.json',
    loose: true,
    boundaries: tokenEnds(config, 0),
    valid: (s) => (RUN_KINDS as readonly string[]).includes(s.kind as string) && s.argv === true,
  };

  // an MPO checkpoint of tiny as runMpo saves it
  const layers = modelSpec('tiny', { input: [1, 28, 28] }).layers;
  const [o, rp, up] = [0, 1, 2].map((k) => initParams(layers, 1, k));
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  const put = (tag: string, vs: Float32Array[]) =>
    vs.forEach((d, i) => (t[`${tag}/${i}`] = { shape: [d.length], data: d }));
  put('origin', o);
  put('right_param', rp);
  put('up_param', up);
  t.scale = { shape: [1], data: Float32Array.of(0.1) };
  const all = [...o, ...rp, ...up, Float32Array.of(0)];
  const zeros = all.map((d) => new Float32Array(d.length));
  put('adam_m', zeros);
  put('adam_v', zeros);
  const weights = asBuffer(safetensorsBytes(t, { step: '4' }));
  const fields = { step: 4, seconds: 2.5, epochDiff: 0.5, epochSteps: 4, epochAccs: [0.1, 0.2], stoppedEarly: false };
  const state = `${JSON.stringify(fields)}\n`;
  const mpoValid = (s: Summary) =>
    Number.isSafeInteger(s.step) && (s.origin as number[]).join() === TINY.join() && s.adam === 3 * TINY.length + 1;
  const mpoFiles = { 'state.json': Buffer.from(state), 'checkpoint.safetensors': weights };
  const mpoState: Fixture = {
    name: 'MPO state.json',
    reader: 'mpo',
    files: mpoFiles,
    target: 'state.json',
    loose: true,
    boundaries: tokenEnds(state, 0),
    valid: mpoValid,
  };
  const mpoWeights: Fixture = {
    name: 'MPO checkpoint.safetensors',
    reader: 'mpo',
    files: mpoFiles,
    target: 'checkpoint.safetensors',
    ...safetensorsBoundaries(weights, rng(11)),
    magic: weights.subarray(0, 8),
    valid: mpoValid,
  };
  return [...fashion, cifarFixture, stFixture, npyFixture, pngFixture, configFixture, mpoState, mpoWeights];
}

/** A broken input: the fixture with its target replaced by `bytes` (`cut`: a truncation of it). */
type Case = { fixture: Fixture; what: string; bytes: Buffer; cut: boolean };

/** The cases of a fixture: cuts at its boundaries (and next to them) and at sampled lengths, random files, and
 * single-byte corruptions (half of them in the header). */
function casesOf(f: Fixture, r: () => number): Case[] {
  const b = f.files[f.target];
  const lengths = new Set<number>();
  for (const x of f.boundaries) for (const d of [-1, 0, 1]) if (x + d >= 0 && x + d < b.length) lengths.add(x + d);
  for (let i = 0; i < 20; i++) lengths.add(Math.floor(r() * b.length));
  const cases: Case[] = [...lengths]
    .sort((x, y) => x - y)
    .map((n) => ({ fixture: f, what: `cut to ${n} of ${b.length} bytes`, bytes: b.subarray(0, n), cut: true }));
  for (const n of [1, 16, 300, 5000]) {
    const rand = Buffer.from(Array.from({ length: n }, () => Math.floor(256 * r())));
    cases.push({ fixture: f, what: `${n} random bytes`, bytes: rand, cut: false });
    if (f.magic)
      cases.push({ fixture: f, what: `magic + ${n} random bytes`, bytes: Buffer.concat([f.magic, rand]), cut: false });
  }
  for (let i = 0; i < 40; i++) {
    const [lo, hi] = f.header && i % 2 === 0 ? f.header : [0, b.length];
    const at = lo + Math.floor(r() * (hi - lo));
    const c = Buffer.from(b);
    c[at] ^= 1 + Math.floor(r() * 255);
    cases.push({ fixture: f, what: `byte ${at} changed from ${b[at]} to ${c[at]}`, bytes: c, cut: false });
  }
  return cases;
}

/** Whether a result is of the fixture's shape (a check that trips over garbage counts as no). */
function isValid(f: Fixture, s: Summary): boolean {
  try {
    return f.valid(s);
  } catch {
    return false;
  }
}

let worker: Worker;
const pending = new Map<number, (a: Answer) => void>();
let died: string | null = null;

beforeAll(async () => {
  worker = new Worker(WORKER, { eval: true, workerData: { root, parent: import.meta.url } });
  await new Promise<void>((ok, fail) => {
    worker.on('message', (m: { ready?: boolean; fatal?: string; id?: number } & Answer) => {
      if (m.ready) ok();
      else if (m.fatal) fail(new Error(m.fatal));
      else pending.get(m.id!)?.(m);
    });
    const stop = (why: string) => {
      died = why;
      for (const p of pending.values()) p({ err: { isError: false, type: 'crash', message: why } });
      fail(new Error(why));
    };
    worker.on('error', (e) => stop(`worker crashed: ${e.stack}`));
    worker.on('exit', (code) => stop(`worker exited (${code})`));
  });
}, 60_000);
afterAll(async () => {
  worker?.removeAllListeners('exit');
  await worker?.terminate();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs one case in the worker: its answer, or 'timeout' past the limit. */
async function run(id: number, c: Case): Promise<Answer | 'timeout'> {
  const d = join(dir, `c${id}`);
  mkdirSync(d);
  for (const [name, bytes] of Object.entries(c.fixture.files)) writeFileSync(join(d, name), bytes);
  writeFileSync(join(d, c.fixture.target), c.bytes);
  let timer: NodeJS.Timeout | undefined;
  const answer = Promise.race([
    new Promise<Answer>((ok) => pending.set(id, ok)),
    new Promise<'timeout'>((ok) => (timer = setTimeout(() => ok('timeout'), CASE_LIMIT_MS))),
  ]);
  worker.postMessage({ id, reader: c.fixture.reader, dir: d, path: join(d, c.fixture.target) });
  const a = await answer;
  clearTimeout(timer);
  pending.delete(id);
  rmSync(d, { recursive: true, force: true });
  return a;
}

describe('fuzzed input files', () => {
  it('every reader refuses broken files with an Error naming the file, or reads a valid one', async () => {
    const t0 = performance.now();
    const r = rng(20_250_611);
    const all = (await fixtures()).flatMap((f) => casesOf(f, r));
    const problems: string[] = [];
    const tally: Record<string, { cases: number; read: number }> = {};
    let refused = 0,
      slowest = 0;
    for (let id = 0; id < all.length && !died; id++) {
      const c = all[id];
      const path = join(dir, `c${id}`, c.fixture.target);
      const t = performance.now();
      const a = await run(id, c);
      slowest = Math.max(slowest, performance.now() - t);
      const tag = `${c.fixture.name}, ${c.what}`;
      if (a === 'timeout') {
        problems.push(`${tag}: no answer within ${CASE_LIMIT_MS} ms`);
        break; // the worker is stuck: the remaining cases cannot run
      }
      const n = (tally[c.fixture.name] ??= { cases: 0, read: 0 });
      n.cases++;
      if (a.err) {
        refused++;
        if (!a.err.isError) problems.push(`${tag}: threw a non-Error (${a.err.type}): ${a.err.message}`);
        else if (!a.err.message.includes(path))
          problems.push(`${tag}: ${a.err.type} without the file's path: ${a.err.message}`);
        else if (['TypeError', 'RangeError', 'SyntaxError'].includes(a.err.type))
          problems.push(`${tag}: an unhandled ${a.err.type}: ${a.err.message}`);
      } else {
        n.read++;
        if (c.cut && !c.fixture.loose) problems.push(`${tag}: a cut file was read as valid: ${JSON.stringify(a.ok)}`);
        else if (!isValid(c.fixture, a.ok!))
          problems.push(`${tag}: read, but not of the right shape: ${JSON.stringify(a.ok)}`);
      }
    }
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `fuzz: ${all.length} cases (${refused} refused, ${all.length - refused} read) in ${secs.toFixed(1)} s,` +
        ` slowest case ${slowest.toFixed(0)} ms;`,
      Object.entries(tally)
        .map(([k, v]) => `${k} ${v.cases} (${v.read} read)`)
        .join(', '),
    );
    expect(died).toBeNull();
    expect(problems).toEqual([]);
    expect(all.length).toBeGreaterThan(1000);
  }, 90_000);
});

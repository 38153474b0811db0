import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Gpu } from '../src/engine/device.ts';
import { rng } from '../src/engine/gradcheck.ts';
import { safetensorsBytes } from '../src/data/formats.ts';
import { initParams, paramShapes } from '../src/models/graph.ts';
import { modelSpec } from '../src/models/zoo.ts';

/** One GPU device per test file; destroyed after the file so the process can exit. */
export async function testGpu(): Promise<Gpu> {
  return Gpu.create({});
}

/** IDX files like Fashion-MNIST's: class c images are a bright band at row 2c (learnable), plus noise. */
export function writeIdx(path: string, n: number, seed: number) {
  const r = rng(seed);
  const img = Buffer.alloc(16 + n * 784),
    lab = Buffer.alloc(8 + n);
  img.writeUInt32BE(0x803, 0);
  img.writeUInt32BE(n, 4);
  img.writeUInt32BE(28, 8);
  img.writeUInt32BE(28, 12);
  lab.writeUInt32BE(0x801, 0);
  lab.writeUInt32BE(n, 4);
  for (let i = 0; i < n; i++) {
    const c = i % 10;
    lab[8 + i] = c;
    for (let p = 0; p < 784; p++)
      img[16 + i * 784 + p] = Math.floor(Math.floor(p / 28) >> 1 === c ? 200 + 50 * r() : 40 * r());
  }
  writeFileSync(`${path}-images-idx3-ubyte.gz`, gzipSync(img));
  writeFileSync(`${path}-labels-idx1-ubyte.gz`, gzipSync(lab));
}

/** A model.safetensors as loss-atlas train writes it, holding a seeded random initialization of a zoo model. */
export function writeInitCheckpoint(path: string, model: string, seed: number, o: { dropout?: number } = {}): void {
  const spec = modelSpec(model, o.dropout ? { dropout: o.dropout } : {});
  const w = initParams(spec.layers, 1, seed);
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  paramShapes(spec.layers).forEach((s, i) => (t[s.name] = { shape: s.shape, data: w[i] }));
  writeFileSync(
    path,
    safetensorsBytes(t, { model, bn: 'false', skip: 'false', ...(o.dropout ? { dropout: String(o.dropout) } : {}) }),
  );
}

const dot = (a: Float64Array[], b: Float64Array[]) =>
  a.reduce((s, x, i) => s + x.reduce((t, v, j) => t + v * b[i][j], 0), 0);

/** The reference's compute_point for cell offsets (x: rows, y: columns), float64, per parameter tensor. */
export function pointWeights(
  o: Float64Array[],
  rp: Float64Array[],
  up: Float64Array[],
  s: number,
  x: number,
  y: number,
): Float64Array[] {
  const r = rp.map((v, i) => v.map((w, j) => w - o[i][j]));
  const a = dot(up, r),
    c = dot(r, r);
  const u1 = up.map((v, i) => v.map((w, j) => w - (a / c) * r[i][j]));
  const f = Math.sqrt(c) / Math.sqrt(dot(u1, u1));
  return o.map((v, i) => v.map((w, j) => w + s * (y * r[i][j] + x * f * u1[i][j])));
}

/** A CIFAR-10 binary batch of n random records (labels 0..9 in turn); readers need LOSS_ATLAS_CIFAR10_RECORDS=any. */
export function writeCifar(d: string, file: string, n: number, seed: number) {
  const r = rng(seed);
  const b = Buffer.alloc(n * 3073);
  for (let i = 0; i < n; i++) {
    b[i * 3073] = i % 10;
    for (let p = 0; p < 3072; p++) b[i * 3073 + 1 + p] = Math.floor(256 * r());
  }
  writeFileSync(join(d, file), b);
}

/** A temporary folder holding a small Fashion-MNIST in IDX files (200 training, 40 test images) under fmnist/. */
export function fashionFixture(prefix: string): { dir: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const data = join(dir, 'fmnist');
  mkdirSync(data);
  writeIdx(join(data, 'train'), 200, 1);
  writeIdx(join(data, 't10k'), 40, 2);
  return { dir, data };
}

/**
 * node's arguments that run the command line in the spawned process itself (node --import tsx src/cli.ts; tsx's own
 * cli would put a process of its own in between, which a SIGKILL would leave running).
 */
export const CLI_ARGS = [
  '--import',
  createRequire(import.meta.url).resolve('tsx'),
  join(import.meta.dirname, '..', 'src', 'cli.ts'),
];

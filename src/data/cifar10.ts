// CIFAR-10, binary version: data_batch_1..5.bin and test_batch.bin, records of 1 label byte + 3072 pixel bytes
// (1024 red, 1024 green, 1024 blue, row-major 32 x 32). Normalized as the MPO reference:
// mean (0.4914, 0.4822, 0.4465), std (0.2023, 0.1994, 0.2010).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DataError, readBytes } from './read.ts';
import type { Dataset } from './dataset.ts';
export const CIFAR10 = {
  url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
  bytes: 170_052_171,
  md5: 'c32a1d4ab5d03f1284b67883e8d87530',
  folder: 'cifar-10-batches-bin',
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: ['test_batch.bin'],
  extra: ['batches.meta.txt', 'readme.html'],
  recordBytes: 3073,
  recordsPerFile: 10_000,
};
export const CIFAR_MEAN = [0.4914, 0.4822, 0.4465];
export const CIFAR_STD = [0.2023, 0.1994, 0.201];

export const DEFAULT_CIFAR10 = join('data', CIFAR10.folder);

export function cifar10Dir(flag?: string | boolean): string {
  if (typeof flag === 'string') return flag;
  return process.env.LOSS_ATLAS_CIFAR10 ?? DEFAULT_CIFAR10;
}

function missing(dir: string, file: string): DataError {
  return new DataError(
    `${join(dir, file)}: file not found. Run \`npm run data:cifar10\`` +
      ` to download CIFAR-10 (binary version, ${CIFAR10.bytes} bytes, MD5 ${CIFAR10.md5}), ` +
      `or put ${[...CIFAR10.train, ...CIFAR10.test].join(', ')} from ${CIFAR10.url}` +
      ` into ${dir} (or point --data / LOSS_ATLAS_CIFAR10 at them).`,
  );
}

/**
 * Records each batch file must hold: CIFAR10.recordsPerFile, or LOSS_ATLAS_CIFAR10_RECORDS (a count, or `any` for a
 * small test set: any whole number of records).
 */
export function cifar10Records(): number | 'any' {
  const v = process.env.LOSS_ATLAS_CIFAR10_RECORDS;
  if (v === undefined || v === '') return CIFAR10.recordsPerFile;
  if (v === 'any') return 'any';
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new DataError(`LOSS_ATLAS_CIFAR10_RECORDS: a record count >= 1 or "any" expected, got "${v}"`);
  return Number(v);
}

/** Reads the split's batch files, each of exactly `records` records (any whole number with 'any'). */
export function loadCifar10(
  dir: string,
  split: 'train' | 'test',
  limit?: number,
  records: number | 'any' = cifar10Records(),
): Dataset {
  const files = split === 'train' ? CIFAR10.train : CIFAR10.test;
  const R = CIFAR10.recordBytes;
  const bufs: Buffer[] = [];
  for (const f of files) {
    const p = join(dir, f);
    if (!existsSync(p)) throw missing(dir, f);
    const raw = readBytes(p, 'a CIFAR-10 binary batch');
    const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    if (b.length === 0 || b.length % R !== 0) {
      throw new DataError(
        `${p}: ${b.length} bytes is not a whole number of ${R}-byte records` +
          ` (the official files are ${R * CIFAR10.recordsPerFile} bytes)` +
          `: truncated or not a CIFAR-10 binary batch`,
      );
    }
    if (records !== 'any' && b.length !== records * R) {
      throw new DataError(
        `${p}: ${b.length / R} records of ${R} bytes (${b.length} bytes), ${records} expected` +
          ` (${records * R} bytes): truncated or not a CIFAR-10 binary batch` +
          (records === CIFAR10.recordsPerFile ? ' (a smaller test set needs LOSS_ATLAS_CIFAR10_RECORDS=any)' : ''),
      );
    }
    for (let i = 0; i < b.length / R; i++)
      if (b[i * R] > 9) throw new DataError(`${p}: record ${i} has label ${b[i * R]}, expected 0..9 (corrupt file?)`);
    bufs.push(b);
  }
  const all = Buffer.concat(bufs);
  const total = all.length / R;
  const n = Math.min(total, limit ?? total);
  const images = new Float32Array(n * 3072);
  const labels = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * R;
    labels[i] = all[o];
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < 1024; p++)
        images[i * 3072 + c * 1024 + p] = (all[o + 1 + c * 1024 + p] / 255 - CIFAR_MEAN[c]) / CIFAR_STD[c];
  }
  return { images, labels, n, shape: [3, 32, 32], classes: 10 };
}

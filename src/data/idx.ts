// IDX files (the MNIST family's format), gzip-compressed or not. Errors name the file, what was expected and what was
// found.
import { statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DataError, readBytes } from './read.ts';

export { DataError } from './read.ts';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Reads an unsigned-byte IDX file (magic 0x0000 08 NDIM, NDIM big-endian uint32 sizes, the bytes). */
export function readIdx(path: string, expectDims?: number): IdxArray {
  const dims = expectDims === 1 ? ' of 1 dimension' : expectDims ? ` of ${expectDims} dimensions` : '';
  const what = `an unsigned-byte IDX file${dims}`;
  const raw = readBytes(path, what);
  let buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new DataError(
        `${path}: corrupt or truncated gzip data (${statSync(path).size} bytes on disk): ${(e as Error).message}`,
      );
    }
  }
  if (buf.length < 4)
    throw new DataError(`${path}: ${buf.length} bytes, too short for an IDX header (${what} expected; truncated?)`);
  const magic = buf.readUInt32BE(0);
  const ndim = magic & 0xff;
  if (magic >>> 8 !== 0x08 || ndim < 1 || ndim > 4) {
    throw new DataError(
      `${path}: IDX magic 0x0000080${expectDims ?? 'n'} (unsigned bytes)` +
        ` expected, found 0x${magic.toString(16).padStart(8, '0')}`,
    );
  }
  if (expectDims !== undefined && ndim !== expectDims)
    throw new DataError(`${path}: ${expectDims}-dimensional IDX expected, found ${ndim} dimensions`);
  const header = 4 + 4 * ndim;
  if (buf.length < header)
    throw new DataError(
      `${path}: ${buf.length} bytes, too short for the header of a ${ndim}-dimensional IDX file` +
        ` (${header} bytes; truncated)`,
    );
  const sizes = Array.from({ length: ndim }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const need = header + sizes.reduce((a, b) => a * b, 1);
  if (buf.length !== need)
    throw new DataError(
      `${path}: dims [${sizes.join(', ')}] need ${need} bytes after decompression,` +
        ` found ${buf.length}${buf.length < need ? ' (truncated)' : ' (extra bytes at the end)'}`,
    );
  return { dims: sizes, data: new Uint8Array(buf.buffer, buf.byteOffset + header, need - header) };
}
